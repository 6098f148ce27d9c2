"""Requests to be contacted: the same email or phone within a day writes one referral and
sends one email, and referrals are limited per address and per contact (email or phone)."""

from __future__ import annotations

import copy
import datetime
import logging
import re
from typing import Any

import pytest
from django.core import mail
from django.test import Client
from django.utils import timezone

from patients.models import Match, Patient
from patients.prescreen import guard, questions
from tests.patients.test_prescreen import CONTACT, RESECTABLE, cleaned
from tests.patients.test_prescreen_replay import (  # noqa: F401  (fixtures)
    answered,
    form_settings,
    north,
    page_token,
    post,
    text_of,
    walk,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("north")]


def ask_to_be_contacted(client: Client, **changes: str) -> Any:
    results = walk(client)
    token = page_token(client, results)
    return post(client, results + "contact/", {**CONTACT, **changes}, token)


# --- duplicate referrals ------------------------------------------------------------------------


def received_page(client: Client, response: Any) -> str:
    assert response.status_code == 302, text_of(response)[:2000]
    assert response["Location"].endswith("/thanks/")
    return text_of(client.get(response["Location"]))


def test_the_same_email_within_a_day_makes_one_referral_and_one_email() -> None:
    first = Client()
    first_page = received_page(first, ask_to_be_contacted(first))
    code = re.search(r"WEB-[A-Z2-9]{8}", first_page)
    assert code is not None
    matches = Match.objects.count()

    again = Client()
    page = received_page(again, ask_to_be_contacted(again, email="ALEX@Example.org", name="Sam"))

    assert Patient.objects.count() == 1
    assert Match.objects.count() == matches
    assert len(mail.outbox) == 1
    assert "We already have your request" in page
    # Nothing of the earlier request shows: not its code, not its name.
    assert code.group(0) not in page
    assert "WEB-" not in page
    assert "Alex" not in page
    assert Patient.objects.get().given_name == "Alex Example"  # not overwritten


def test_after_a_duplicate_the_results_lead_to_the_same_message() -> None:
    received_page(Client(), ask_to_be_contacted(Client()))
    visitor = Client()
    results = walk(visitor)
    post(visitor, results + "contact/", CONTACT, page_token(visitor, results))

    assert visitor.get(results)["Location"] == results + "thanks/"
    assert visitor.post(results + "contact/", CONTACT)["Location"] == results
    assert Patient.objects.count() == 1


def test_the_same_phone_number_written_another_way_is_the_same_contact() -> None:
    first = Client()
    received_page(first, ask_to_be_contacted(first, email="", phone="+1 212 555 0100"))
    again = Client()
    page = received_page(again, ask_to_be_contacted(again, email="", phone="+1 (212) 555-0100"))

    assert "We already have your request" in page
    assert Patient.objects.count() == 1
    assert len(mail.outbox) == 1


def test_after_the_window_the_same_contact_is_a_new_referral(settings: Any) -> None:
    first = Client()
    received_page(first, ask_to_be_contacted(first))
    Patient.objects.update(created_at=timezone.now() - datetime.timedelta(hours=25))

    again = Client()
    page = received_page(again, ask_to_be_contacted(again))

    assert re.search(r"WEB-[A-Z2-9]{8}", page)
    assert Patient.objects.count() == 2
    assert len(mail.outbox) == 2


def test_the_window_follows_the_setting(settings: Any) -> None:
    settings.PRESCREEN_REFERRAL_DUPLICATE_HOURS = 1
    first = Client()
    received_page(first, ask_to_be_contacted(first))
    Patient.objects.update(created_at=timezone.now() - datetime.timedelta(hours=2))

    again = Client()
    received_page(again, ask_to_be_contacted(again))

    assert Patient.objects.count() == 2


# --- referral limits ----------------------------------------------------------------------------


def test_the_default_limits() -> None:
    from django.conf import settings

    assert settings.PRESCREEN_REFERRAL_RATE_PER_IP == "3/h"
    assert settings.PRESCREEN_REFERRAL_RATE_PER_CONTACT == "3/d"
    assert settings.PRESCREEN_REFERRAL_DUPLICATE_HOURS == 24


def test_referrals_per_address_are_limited_with_a_kind_message() -> None:
    statuses = [
        ask_to_be_contacted(Client(), email=f"person{n}@example.org").status_code for n in range(3)
    ]
    assert statuses == [302, 302, 302]

    visitor = Client()
    refused = ask_to_be_contacted(visitor, email="person4@example.org", name="Robin Example")

    assert refused.status_code == 429
    assert 0 < int(refused["Retry-After"]) <= 3600
    text = text_of(refused)
    assert guard.MESSAGE_REFERRAL_LIMIT.split(",")[0] in text
    assert "Traceback" not in text
    assert re.search(r'<input[^>]*name="name"[^>]*value="Robin Example"', refused.content.decode())
    assert answered(visitor) == {step.slug for step in questions.STEPS}  # answers kept
    assert Patient.objects.count() == 3
    assert len(mail.outbox) == 3
    # Another address is not affected.
    other = Client(REMOTE_ADDR="198.51.100.7")
    assert ask_to_be_contacted(other, email="person5@example.org").status_code == 302


def test_the_address_is_the_one_the_trusted_proxies_give(settings: Any) -> None:
    settings.NUM_PROXIES = 1

    def from_behind_the_proxy(n: int) -> int:
        client = Client(REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR=f"192.0.2.{n}, 203.0.113.5")
        return ask_to_be_contacted(client, email=f"p{n}@example.org").status_code

    assert [from_behind_the_proxy(n) for n in range(4)] == [302, 302, 302, 429]


def test_referrals_per_email_are_limited_across_addresses(settings: Any) -> None:
    settings.PRESCREEN_REFERRAL_DUPLICATE_HOURS = 0  # no de-duplication: the limit alone
    statuses = [
        ask_to_be_contacted(Client(REMOTE_ADDR=f"198.51.100.{n}")).status_code for n in range(4)
    ]

    assert statuses == [302, 302, 302, 429]
    assert Patient.objects.count() == 3


def test_the_limits_follow_the_settings(settings: Any) -> None:
    settings.PRESCREEN_REFERRAL_RATE_PER_IP = "1/h"
    assert ask_to_be_contacted(Client(), email="a@example.org").status_code == 302
    assert ask_to_be_contacted(Client(), email="b@example.org").status_code == 429
    settings.PRESCREEN_REFERRAL_RATE_PER_IP = ""
    settings.PRESCREEN_REFERRAL_RATE_PER_CONTACT = ""
    assert ask_to_be_contacted(Client(), email="c@example.org").status_code == 302


def test_the_finding_scenario_one_address_many_referrals() -> None:
    """One address, one email, 25 requests in an hour: one patient, one email."""
    original = copy.deepcopy(CONTACT)
    outcomes = [ask_to_be_contacted(Client(), **original).status_code for _ in range(25)]

    assert outcomes[:3] == [302, 302, 302]
    assert set(outcomes[3:]) == {429}
    assert Patient.objects.count() == 1
    assert len(mail.outbox) == 1


def test_a_request_with_the_same_details_under_way_is_not_stored_twice() -> None:
    from patients.prescreen.referral import Contact, contact_keys, create_referral_unless_recent

    contact = Contact("Alex Example", "alex@example.org", "+1 212 555 0100", "Mornings")
    answers = cleaned(RESECTABLE)
    other_writing = Contact("Sam", "ALEX@example.org", "", "Any time")
    with guard.contact_lock(contact_keys(other_writing)) as free:
        assert free
        assert create_referral_unless_recent(answers, contact, today=timezone.localdate()) is None

    assert Patient.objects.count() == 0
    assert mail.outbox == []
    # Released afterwards.
    assert create_referral_unless_recent(answers, contact, today=timezone.localdate())
    assert Patient.objects.count() == 1


def test_a_cache_outage_lets_referrals_through(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("cache down")

    monkeypatch.setattr(guard, "_count", broken)
    # The level production logs at: a test worker run earlier in the session may have raised
    # the root logger's.
    caplog.set_level(logging.WARNING, logger=guard.logger.name)

    assert ask_to_be_contacted(Client()).status_code == 302
    assert Patient.objects.count() == 1
    assert "cache is unavailable" in caplog.text
