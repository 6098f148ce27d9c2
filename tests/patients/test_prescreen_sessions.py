"""What the public form keeps in ``django_session``, and for how long: nothing for a visitor who
only looks, answers for as long as the privacy notice promises (a short idle time, whatever the
staff's session length), and an hourly purge that deletes what has expired."""

from __future__ import annotations

import datetime
from importlib import import_module
from typing import Any

import pytest
from celery.schedules import crontab
from django.conf import settings
from django.contrib.sessions.models import Session
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from config.celery import app
from patients.prescreen import guard
from patients.tasks import clear_expired_sessions_task
from tests.patients.test_prescreen import RESECTABLE

pytestmark = pytest.mark.django_db

PURGE_TASK = "patients.tasks.clear_expired_sessions_task"


@pytest.fixture(autouse=True)
def quick(settings: Any) -> None:
    settings.PRESCREEN_MIN_FILL_SECONDS = 0
    settings.PRESCREEN_RATE_PER_IP = "10000/h"
    settings.PRESCREEN_RATE_PER_SESSION = "10000/h"


def answer_first_step(client: Client) -> Any:
    page = client.get(reverse("prescreen:step", args=[1]))
    token = page.context["form_token"]
    payload = {**RESECTABLE["about"], guard.FORM_TOKEN_FIELD: token, guard.HONEYPOT_FIELD: ""}
    response = client.post(reverse("prescreen:step", args=[1]), payload)
    assert response.status_code == 302, response.content.decode()[:2000]
    return response


def session_row(client: Client) -> Session:
    return Session.objects.get(session_key=client.cookies[settings.SESSION_COOKIE_NAME].value)


@pytest.mark.parametrize("method", ["get", "head"])
def test_looking_at_the_form_without_a_cookie_stores_no_session(method: str) -> None:
    client = Client()
    for page in (reverse("prescreen:intro"), reverse("prescreen:step", args=[1])):
        response = getattr(client, method)(page)
        assert response.status_code == 200, page
        assert settings.SESSION_COOKIE_NAME not in response.cookies, page
    # Pages further on send a new visitor back to the first step, also without a session.
    assert client.get(reverse("prescreen:step", args=[3])).status_code == 302

    assert Session.objects.count() == 0


def test_the_privacy_promise_is_on_the_first_page() -> None:
    html = " ".join(Client().get(reverse("prescreen:intro")).content.decode().split())

    assert "Your answers are kept only while you use this page" in html
    assert "30 minutes" in html


def test_answers_expire_after_the_promised_idle_time_whatever_the_staff_session_length(
    settings: Any,
) -> None:
    settings.SESSION_COOKIE_AGE = 8 * 3600  # a long staff session must not keep answers
    settings.PRESCREEN_SESSION_IDLE_TIMEOUT = 30 * 60
    client = Client()
    before = timezone.now()
    response = answer_first_step(client)
    after = timezone.now()

    idle = datetime.timedelta(seconds=30 * 60)
    assert before + idle <= session_row(client).expire_date <= after + idle
    assert session_row(client).get_decoded()["prescreen"]["answers"]["about"]["age"] == 62
    # Still a browser-session cookie: closing the browser ends it too.
    cookie = response.cookies[settings.SESSION_COOKIE_NAME]
    assert cookie["max-age"] == ""
    assert cookie["expires"] == ""


def test_each_answer_renews_the_idle_time(settings: Any) -> None:
    settings.PRESCREEN_SESSION_IDLE_TIMEOUT = 600
    client = Client()
    answer_first_step(client)
    Session.objects.filter(pk=session_row(client).pk).update(
        expire_date=timezone.now() + datetime.timedelta(seconds=5)
    )

    before = timezone.now()
    client.get(reverse("prescreen:step", args=[2]))

    assert session_row(client).expire_date >= before + datetime.timedelta(seconds=600)


def test_expired_answers_are_gone_for_the_visitor() -> None:
    client = Client()
    answer_first_step(client)
    Session.objects.filter(pk=session_row(client).pk).update(
        expire_date=timezone.now() - datetime.timedelta(seconds=1)
    )

    response = client.get(reverse("prescreen:step", args=[2]))

    assert response["Location"] == reverse("prescreen:step", args=[1])


def test_a_signed_in_session_keeps_the_staff_idle_timeout(settings: Any) -> None:
    settings.SESSION_COOKIE_AGE = 2 * 3600
    settings.PRESCREEN_SESSION_IDLE_TIMEOUT = 600
    store = import_module(settings.SESSION_ENGINE).SessionStore()
    store["_auth_user_id"] = "1"
    store.create()

    assert store.get_expiry_age() == 2 * 3600


def test_beat_purges_expired_sessions_every_hour() -> None:
    entries = [e for e in settings.CELERY_BEAT_SCHEDULE.values() if e["task"] == PURGE_TASK]

    assert len(entries) == 1
    assert isinstance(entries[0]["schedule"], crontab)
    schedule: Any = entries[0]["schedule"]  # (crontab's parsed fields are not typed)
    assert len(schedule.hour) == 24  # every hour
    assert len(schedule.minute) == 1
    assert PURGE_TASK in app.tasks


def test_the_purge_deletes_expired_sessions_and_keeps_live_ones() -> None:
    engine = import_module(settings.SESSION_ENGINE)
    expired, live = engine.SessionStore(), engine.SessionStore()
    expired["prescreen"] = {"answers": {"health": {"conditions": ["hiv"]}}}
    expired.set_expiry(timezone.now() - datetime.timedelta(minutes=1))
    expired.create()
    live["prescreen"] = {"answers": {}}
    live.create()

    clear_expired_sessions_task.apply().get()

    assert list(Session.objects.values_list("session_key", flat=True)) == [live.session_key]
