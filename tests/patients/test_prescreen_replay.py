"""Replaying the public form: a form token is good for one submission of one step, in the
session it was shown in.

The walks here post what a browser posts: each page's own token, taken from the page."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from patients.models import Patient, Site
from patients.prescreen import guard, questions
from tests.patients.test_prescreen import CONTACT, RESECTABLE

pytestmark = pytest.mark.django_db

STEP_URLS = [reverse("prescreen:step", args=[n]) for n in range(1, len(questions.STEPS) + 1)]


@pytest.fixture(autouse=True)
def form_settings(settings: Any) -> Any:
    settings.PRESCREEN_MIN_FILL_SECONDS = 0
    settings.PRESCREEN_RATE_PER_IP = "10000/h"
    settings.PRESCREEN_RATE_PER_SESSION = "10000/h"
    settings.NUM_PROXIES = 0
    return settings


@pytest.fixture
def north(db: None) -> Site:
    site = Site.objects.create(
        code="north", name="North Hospital", latitude=40.75, longitude=-73.99
    )
    user = get_user_model().objects.create_user(
        "coord", email="coord@example.org", password="x" * 16
    )
    site.coordinators.add(user)
    return site


def page_token(client: Client, url: str) -> str:
    """The form token of the page at ``url``, as a browser would send it back."""
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return str(response.context["form_token"])


def post(client: Client, url: str, data: dict[str, Any], token: str) -> Any:
    return client.post(url, {**data, guard.FORM_TOKEN_FIELD: token, guard.HONEYPOT_FIELD: ""})


def walk(client: Client) -> str:
    """Every step answered with each page's token; returns the results address."""
    response = None
    for url, step in zip(STEP_URLS, questions.STEPS, strict=True):
        response = post(client, url, RESECTABLE[step.slug], page_token(client, url))
        assert response.status_code == 302, response.content.decode()[:2000]
    assert response is not None
    return str(response["Location"])


def ask_to_be_contacted(client: Client, **changes: str) -> Any:
    results = walk(client)
    token = page_token(client, results)
    return post(client, results + "contact/", {**CONTACT, **changes}, token)


def text_of(response: Any) -> str:
    return " ".join(response.content.decode().split())


def answered(client: Client) -> set[str]:
    state = client.session.get("prescreen") or {}
    return set(state.get("answers") or {})


# --- the form token -----------------------------------------------------------------------------


def test_a_token_fetched_once_passes_no_step_of_any_new_session() -> None:
    token = page_token(Client(), STEP_URLS[0])  # fetched once, by a client keeping no cookies
    visitors = [Client() for _ in range(3)]
    for visitor in visitors:
        for url, step in zip(STEP_URLS, questions.STEPS, strict=True):
            post(visitor, url, RESECTABLE[step.slug], token)

    # Its one use answered the first step of the first session; nothing more, anywhere.
    assert [answered(visitor) for visitor in visitors] == [{"about"}, set(), set()]


def test_a_used_token_is_refused_with_a_kind_message_and_the_answers_stay_on_the_page() -> None:
    token = page_token(Client(), STEP_URLS[0])
    assert post(Client(), STEP_URLS[0], RESECTABLE["about"], token).status_code == 302

    response = post(Client(), STEP_URLS[0], {"age": "71", "sex": "female"}, token)

    assert response.status_code == 200
    assert guard.MESSAGE_USED in text_of(response)
    assert "Traceback" not in text_of(response)
    assert re.search(r'<input[^>]*name="age"[^>]*value="71"', response.content.decode())
    assert re.search(r'name="sex" value="female"[^>]*checked', response.content.decode())


def test_a_token_belongs_to_the_session_it_was_shown_in() -> None:
    owner, other = Client(), Client()
    for visitor in (owner, other):
        post(visitor, STEP_URLS[0], RESECTABLE["about"], page_token(visitor, STEP_URLS[0]))
    owners_token = page_token(owner, STEP_URLS[1])

    refused = post(other, STEP_URLS[1], RESECTABLE["cancer"], owners_token)

    assert refused.status_code == 200
    assert guard.MESSAGE_EXPIRED in text_of(refused)
    assert answered(other) == {"about"}  # what it had is kept
    # Refused elsewhere, the token still works where it was shown.
    assert post(owner, STEP_URLS[1], RESECTABLE["cancer"], owners_token).status_code == 302
    assert answered(owner) == {"about", "cancer"}


def test_a_token_belongs_to_its_step() -> None:
    visitor = Client()
    post(visitor, STEP_URLS[0], RESECTABLE["about"], page_token(visitor, STEP_URLS[0]))
    post(visitor, STEP_URLS[1], RESECTABLE["cancer"], page_token(visitor, STEP_URLS[1]))
    third_steps_token = page_token(visitor, STEP_URLS[2])

    refused = post(
        visitor, STEP_URLS[1], {**RESECTABLE["cancer"], "site": "gej"}, third_steps_token
    )

    assert refused.status_code == 200
    assert guard.MESSAGE_UNCHECKED in text_of(refused)
    assert client_answers(visitor)["cancer"]["site"] == "stomach"


def client_answers(client: Client) -> dict[str, Any]:
    return dict(client.session["prescreen"]["answers"])


def test_a_double_click_moves_on_without_storing_the_second_post() -> None:
    visitor = Client()
    token = page_token(visitor, STEP_URLS[0])
    assert post(visitor, STEP_URLS[0], RESECTABLE["about"], token)["Location"] == STEP_URLS[1]

    again = post(visitor, STEP_URLS[0], {"age": "30", "sex": "female"}, token)

    assert again.status_code == 302
    assert again["Location"] == STEP_URLS[1]
    assert client_answers(visitor)["about"]["age"] == 62


def test_a_page_sent_twice_after_an_error_shows_the_error_again() -> None:
    visitor = Client()
    post(visitor, STEP_URLS[0], RESECTABLE["about"], page_token(visitor, STEP_URLS[0]))
    token = page_token(visitor, STEP_URLS[0])  # back to step 1, to change the age
    wrong = {"age": "250", "sex": "male"}
    assert post(visitor, STEP_URLS[0], wrong, token).status_code == 200

    again = post(visitor, STEP_URLS[0], wrong, token)

    assert again.status_code == 200  # not moved on as if the change had been taken
    assert guard.MESSAGE_USED in text_of(again)
    assert client_answers(visitor)["about"]["age"] == 62


def test_the_contact_token_is_single_use_too(north: Site) -> None:
    visitor = Client()
    results = walk(visitor)
    token = page_token(visitor, results)
    assert post(visitor, results + "contact/", CONTACT, token).status_code == 302

    # In the same session, on new results: used once, refused as used.
    again_results = walk(visitor)
    assert again_results != results
    again = post(visitor, again_results + "contact/", {**CONTACT, "email": "b@x.org"}, token)
    assert again.status_code == 200
    assert guard.MESSAGE_USED in text_of(again)

    replayer = Client()
    replayed_results = walk(replayer)
    response = post(replayer, replayed_results + "contact/", {**CONTACT, "email": "c@x.org"}, token)

    assert response.status_code == 200
    assert Patient.objects.count() == 1
