"""Logs: one JSON object a line with the request's or task's id, and no personal data.

A known MRN and a known name go through the REST API (a write, a search by MRN, a refused
duplicate), the public form's referral (name, email, phone), a registry sync and the matching
that follows it, and a request that fails with both in its exception's message. Every line
logged meanwhile, at the levels production logs, is then searched for them.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from rest_framework.test import APIClient

from config.logs import JsonFormatter, RequestIdFilter, SecretPathFilter
from patients.access import SITE_ADMIN_GROUP
from patients.models import ApiToken, Patient, Site
from patients.prescreen import guard
from patients.tasks import match_patients_task
from tests.fakes.ctgov_server import FakeCtgovServer
from tests.patients.test_admin_scoping import make_site, make_staff
from tests.patients.test_matching import recorded_registry
from tests.patients.test_prescreen import RESECTABLE, contact_url, north, registry, walk  # noqa: F401
from trials.tasks import sync_trials_task

MRN = "MRN-QX-559031"
GIVEN, FAMILY = "Philomena", "Quartermaine-Zed"
EMAIL, PHONE = "philomena.qz@example.org", "+1 212 555 0199"
SECRETS = (MRN, GIVEN, FAMILY, EMAIL, PHONE, "5550199", "559031")


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """Everything logged, at the configured levels, in the production format."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter(exception_messages=False))
    handler.addFilter(RequestIdFilter())
    handler.addFilter(SecretPathFilter())
    root = logging.getLogger()
    # The level production logs at (LOGGING's root level): a test before this one may have
    # raised it (a Celery test worker sets up its own logging).
    previous = root.level
    root.setLevel(settings.LOGGING["root"]["level"])
    root.addHandler(handler)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


@pytest.mark.django_db
def test_each_line_is_json_with_the_request_id(captured: io.StringIO) -> None:
    response = Client().get("/healthz", HTTP_X_REQUEST_ID="edge-1234abcd")
    assert response["X-Request-ID"] == "edge-1234abcd"
    response = Client().get("/prescreen/", HTTP_X_REQUEST_ID="bad id with spaces")
    fresh = response["X-Request-ID"]
    assert fresh != "bad id with spaces"
    assert len(fresh) == 32
    logged = lines(captured)
    access = [entry for entry in logged if entry["logger"] == "trialmatch.access"]
    assert [(entry["request_id"], entry["path"], entry["status"]) for entry in access] == [
        ("edge-1234abcd", "/healthz", 200),
        (fresh, "/prescreen/", 200),
    ]
    assert all({"time", "level", "logger", "message", "request_id"} <= set(e) for e in logged)


@pytest.mark.django_db
def test_a_results_token_is_never_logged(
    captured: io.StringIO,
    registry: int,  # noqa: F811 - the recorded trials
) -> None:
    """The token in a results address opens the visitor's answers: the logs name the route."""
    visitor = Client()
    results = walk(visitor, RESECTABLE)
    token = results.rstrip("/").rsplit("/", 1)[-1]
    assert visitor.get(results).status_code == 200
    assert Client().get(results).status_code in (404, 410)  # another browser: not its token
    assert Client().get("/prescreen/results/guessed-token-123/contact/").status_code in (404, 410)
    logged = captured.getvalue()
    assert token not in logged
    assert "guessed-token-123" not in logged
    paths = {entry.get("path") for entry in lines(captured)}
    assert "/prescreen/results/<token>/" in paths
    assert "/prescreen/results/<token>/contact/" in paths


@pytest.mark.django_db(transaction=True)
def test_no_personal_data_in_any_log_line(
    captured: io.StringIO,
    registry: int,  # noqa: F811 - the recorded trials
    north: Site,  # noqa: F811
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    site = make_site("site-a", "Site A")
    admin = make_staff("admin-a", site, role=SITE_ADMIN_GROUP)
    authorization = f"Token {ApiToken.issue(admin, name='logs')[1]}"
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=authorization)

    # A request: a write, a search by MRN (query string), a refused duplicate.
    profile = {"external_id": MRN, "sex": "female", "birth_date": "1960-02-03", "site": "site-a"}
    assert api.post("/api/v1/patients/", profile, format="json").status_code == 201
    assert api.get(f"/api/v1/patients/?external_id={MRN}").json()["count"] == 1
    assert api.post("/api/v1/patients/", profile, format="json").status_code == 400

    # The public form: a referral with a name, an email and a phone number.
    visitor = Client()
    results = walk(visitor, RESECTABLE)
    contact = {
        "name": f"{GIVEN} {FAMILY}",
        "email": EMAIL,
        "phone": PHONE,
        "contact_time": "morning",
        "consent": "on",
        guard.FORM_TOKEN_FIELD: visitor.get(results).context["form_token"],
        guard.HONEYPOT_FIELD: "",
    }
    assert visitor.post(contact_url(results), contact).status_code == 302
    assert Patient.objects.filter(given_name__startswith=GIVEN).exists()

    # A sync, and the matching of the patients that follows it (as tasks, with task ids).
    with FakeCtgovServer(recorded_registry()) as server:
        settings.CTGOV_BASE_URL = server.base_url
        settings.CTGOV_SYNC_QUERY = ""
        settings.CTGOV_MIN_REQUEST_INTERVAL = 0
        assert sync_trials_task.apply(kwargs={"full": True}).get()["status"] == "succeeded"
    match_patients_task.apply(args=(list(Patient.objects.values_list("pk", flat=True)),)).get()

    # An error whose message quotes the MRN and the name.
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"could not store {MRN} for {GIVEN} {FAMILY}")

    monkeypatch.setattr("patients.api.patient_upsert", fail)
    failing = APIClient(raise_request_exception=False)
    failing.credentials(HTTP_AUTHORIZATION=authorization)
    other = {**profile, "external_id": f"{MRN}-2"}
    assert failing.post("/api/v1/patients/", other, format="json").status_code == 500

    logged = lines(captured)
    errors = [entry for entry in logged if entry.get("exception")]
    assert errors  # the error was logged, with the id of its request ...
    assert all(entry["request_id"] not in ("-", "") for entry in errors)
    assert any(entry["request_id"].startswith("task:") for entry in logged)
    assert any(entry["logger"] == "trialmatch.access" for entry in logged)
    text = captured.getvalue()
    for secret in SECRETS:
        assert secret not in text, secret  # ... without what its message said
