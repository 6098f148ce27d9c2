"""Every read and write of patient data, through every surface, is one audit entry with its true
actor and the client address the trusted proxy chain gives.

Behind one trusted proxy (``NUM_PROXIES=1``) each request arrives from the proxy's address
with ``X-Forwarded-For: <forged by the client>, <appended by the proxy>``: the entry must name
the proxy-appended address, never the forged one nor the proxy's. Surfaces: the admin (pages
by GET, HEAD and a change form sent back with errors; lists; the queue and its CSV export;
autocomplete; the dashboard), the API with a session and with a token (reads, matching without
storing, review moves, writes, deletion), the export commands and the public form's referral.
"""

from __future__ import annotations

import datetime
import io
from collections.abc import Callable
from html.parser import HTMLParser
from typing import Any

import pytest
from django.apps import apps
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client

from patients.access import SITE_ADMIN_GROUP
from patients.models import ApiToken, FlagEvent, Match, Patient, PerformanceStatus, Site
from tests.patients.test_admin_scoping import make_match, make_site, make_staff, make_trials
from tests.patients.test_prescreen import (  # noqa: F401 - fixtures
    CONTACT,
    RESECTABLE,
    north,
    post_contact,
    registry,
    walk,
)

pytestmark = pytest.mark.django_db

LogEntry: Any = apps.get_model("auditlog", "LogEntry")

PROXY = "10.0.0.2"
CLIENT = "198.51.100.7"
FORGED = "6.6.6.6"
BEHIND_PROXY: dict[str, Any] = {"REMOTE_ADDR": PROXY, "HTTP_X_FORWARDED_FOR": f"{FORGED}, {CLIENT}"}


class _FormFields(HTMLParser):
    """The fields the admin change form would send back as it is shown."""

    def __init__(self) -> None:
        super().__init__()
        self.data: dict[str, Any] = {}
        self._select: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        given = dict(attrs)
        name = given.get("name")
        if tag == "input" and name and given.get("type") not in ("submit", "button", "file"):
            if given.get("type") in ("checkbox", "radio") and "checked" not in given:
                return
            self.data[name] = given.get("value") or ""
        elif tag == "select" and name:
            self._select = name
            self.data.setdefault(name, "")
        elif tag == "option" and self._select and "selected" in given:
            self.data[self._select] = given.get("value") or ""
        elif tag == "textarea" and name:
            self.data[name] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None


def form_fields(html: str) -> dict[str, Any]:
    parser = _FormFields()
    parser.feed(html)
    return parser.data


@pytest.fixture
def world(db: None, settings: Any) -> dict[str, Any]:
    settings.NUM_PROXIES = 1
    site = make_site("site-a", "Site A")
    coordinator = make_staff("coord-a", site)
    admin = make_staff("admin-a", site, role=SITE_ADMIN_GROUP)
    trial = make_trials(1)[0]
    patient = Patient.objects.create(
        site=site, external_id="A-1", sex="female", birth_date=datetime.date(1960, 1, 1)
    )
    PerformanceStatus.objects.create(patient=patient, value=1)
    make_match(patient, trial, "possible", flagged=True)
    FlagEvent.objects.create(
        patient=patient, trial=trial, kind=FlagEvent.Kind.NEW, verdict="possible"
    )
    session = Client(**BEHIND_PROXY)
    session.force_login(coordinator)
    _, key = ApiToken.issue(admin, "EHR")
    token = Client(HTTP_AUTHORIZATION=f"Token {key}", **BEHIND_PROXY)
    root = User.objects.create_superuser("root", "root@example.org", "x")
    _, root_key = ApiToken.issue(root, "maintenance")
    root_token = Client(HTTP_AUTHORIZATION=f"Token {root_key}", **BEHIND_PROXY)
    return {
        "site": site,
        "coordinator": coordinator,
        "admin": admin,
        "trial": trial,
        "patient": patient,
        "session": session,
        "token": token,
        "root": root,
        "root_token": root_token,
    }


def entries_during(act: Callable[[], Any]) -> tuple[Any, list[Any]]:
    last = LogEntry.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    result = act()
    return result, list(LogEntry.objects.filter(pk__gt=last).order_by("pk"))


def reads(entries: list[Any]) -> list[Any]:
    return [entry for entry in entries if entry.action == LogEntry.Action.ACCESS]


def assert_one_read(entries: list[Any], purpose: str, actor: User | None) -> None:
    accessed = reads(entries)
    assert [entry.additional_data["purpose"] for entry in accessed] == [purpose], [
        (entry.action, entry.additional_data) for entry in entries
    ]
    (entry,) = accessed
    assert entry.actor == actor, (purpose, entry.actor)
    assert entry.remote_addr == CLIENT, (purpose, entry.remote_addr)


def assert_writes_named(entries: list[Any], actor: User) -> None:
    written = [entry for entry in entries if entry.action != LogEntry.Action.ACCESS]
    assert written, "the write left no entry"
    for entry in written:
        assert entry.actor == actor, (entry.action, entry.object_repr, entry.actor)
        assert entry.remote_addr == CLIENT, (entry.action, entry.remote_addr)


def test_every_admin_read_is_one_entry_with_the_actor_and_the_client_address(
    world: dict[str, Any],
) -> None:
    client, who, patient = world["session"], world["coordinator"], world["patient"]
    change = f"/admin/patients/patient/{patient.pk}/change/"
    match = Match.objects.get(patient=patient)
    surfaces: list[tuple[str, Callable[[], Any]]] = [
        ("admin: profile viewed", lambda: client.get(change)),
        ("admin: profile viewed", lambda: client.head(change)),
        ("admin: patient list", lambda: client.get("/admin/patients/patient/")),
        ("admin: review queue", lambda: client.get("/admin/patients/match/")),
        (
            "admin: match viewed",
            lambda: client.get(f"/admin/patients/match/pair/{patient.pk}/{world['trial'].pk}/"),
        ),
        (
            "admin: trial page, matched patients",
            lambda: client.get(f"/admin/trials/trial/{world['trial'].pk}/change/"),
        ),
        (
            "admin: review queue CSV export",
            lambda: client.post(
                "/admin/patients/match/",
                {"action": "export_csv", "index": "0", "_selected_action": [str(match.pk)]},
            ),
        ),
        (
            "admin: autocomplete",
            lambda: client.get(
                "/admin/autocomplete/",
                {
                    "app_label": "patients",
                    "model_name": "review",
                    "field_name": "patient",
                    "term": "A-1",
                },
            ),
        ),
        ("dashboard", lambda: client.get("/admin/")),
    ]
    for purpose, act in surfaces:
        response, entries = entries_during(act)
        assert response.status_code == 200, (purpose, response.status_code)
        assert_one_read(entries, purpose, who)


def test_an_admin_form_sent_back_with_errors_is_recorded_and_other_methods_are_refused(
    world: dict[str, Any],
) -> None:
    client, patient = world["session"], world["patient"]
    change = f"/admin/patients/patient/{patient.pk}/change/"
    data = form_fields(client.get(change).content.decode())
    data["birth_date"] = "not a date"
    response, entries = entries_during(lambda: client.post(change, data))
    assert response.status_code == 200  # the form again, with its errors and the profile
    assert_one_read(entries, "admin: profile viewed", world["coordinator"])
    for method in ("options", "trace", "put", "patch", "delete"):
        send = getattr(client, method)
        response, entries = entries_during(lambda: send(change))  # noqa: B023 - called at once
        assert response.status_code == 405, method
        assert entries == []


def test_an_admin_write_names_its_actor_and_address(world: dict[str, Any]) -> None:
    client, patient = world["session"], world["patient"]
    change = f"/admin/patients/patient/{patient.pk}/change/"
    data = form_fields(client.get(change).content.decode())
    data["postal_code"] = "10115"
    response, entries = entries_during(lambda: client.post(change, data))
    assert response.status_code == 302, response.content.decode()[:2000]
    assert_writes_named(entries, world["coordinator"])


@pytest.mark.parametrize("caller", ["session", "token"])
def test_every_api_read_is_one_entry_with_the_actor_and_the_client_address(
    world: dict[str, Any], caller: str
) -> None:
    client = world[caller]
    who = world["coordinator"] if caller == "session" else world["admin"]
    patient = world["patient"]
    pair = f"{patient.pk}-{world['trial'].pk}"
    profile = {"external_id": "X-1", "sex": "female", "birth_date": "1960-01-01"}
    surfaces: list[tuple[str, Callable[[], Any]]] = [
        ("api: patient list", lambda: client.get("/api/v1/patients/")),
        ("api: patient read", lambda: client.get(f"/api/v1/patients/{patient.pk}/")),
        ("api: patient matches", lambda: client.get(f"/api/v1/patients/{patient.pk}/matches/")),
        ("api: match list", lambda: client.get("/api/v1/matches/")),
        ("api: match read", lambda: client.get(f"/api/v1/matches/{pair}/")),
        (
            "api: match without storing",
            lambda: client.post("/api/v1/match/", profile, content_type="application/json"),
        ),
    ]
    for purpose, act in surfaces:
        response, entries = entries_during(act)
        assert response.status_code == 200, (purpose, response.status_code)
        assert_one_read(entries, purpose, who)


@pytest.mark.parametrize("caller", ["session", "token"])
def test_every_api_write_names_its_actor_and_address(world: dict[str, Any], caller: str) -> None:
    client = world[caller]
    who = world["coordinator"] if caller == "session" else world["admin"]
    patient = world["patient"]
    pair = f"{patient.pk}-{world['trial'].pk}"
    move = {"status": "not_eligible", "reason": "HER2 positive", "note": "checked the report"}
    response, entries = entries_during(
        lambda: client.post(
            f"/api/v1/matches/{pair}/review/", move, content_type="application/json"
        )
    )
    assert response.status_code == 200, response.content
    assert_one_read(entries, "api: review move", who)
    assert_writes_named(entries, who)
    if caller == "session":
        return  # a coordinator may not write profiles; the site admin's token does below
    document = client.get(f"/api/v1/patients/{patient.pk}/").json()
    document["postal_code"] = "10115"
    response, entries = entries_during(
        lambda: client.put(
            f"/api/v1/patients/{patient.pk}/", document, content_type="application/json"
        )
    )
    assert response.status_code == 200, response.content
    assert_one_read(entries, "api: patient write", who)
    assert_writes_named(entries, who)
    # Deleting a patient is for superusers (it takes the review history with it).
    root = world["root_token"]
    response, entries = entries_during(lambda: root.delete(f"/api/v1/patients/{patient.pk}/"))
    assert response.status_code == 204
    assert_one_read(entries, "api: patient delete", world["root"])
    assert_writes_named(entries, world["root"])


def test_the_export_commands_record_what_they_read(world: dict[str, Any]) -> None:
    for command, purpose in (
        ("export_patients", "export_patients command"),
        ("export_matches", "export_matches command"),
    ):
        name = command
        _, entries = entries_during(lambda: call_command(name, stdout=io.StringIO()))  # noqa: B023
        accessed = reads(entries)
        assert [entry.additional_data["purpose"] for entry in accessed] == [purpose]
        assert accessed[0].object_id == world["patient"].pk


def test_a_referral_records_the_consent_from_the_client_address(
    registry: int,  # noqa: F811
    north: Site,  # noqa: F811
    settings: Any,
) -> None:
    settings.NUM_PROXIES = 1
    visitor = Client(**BEHIND_PROXY)
    results = walk(visitor, RESECTABLE)
    response, entries = entries_during(lambda: post_contact(visitor, results, CONTACT))
    assert response.status_code == 302
    (entry,) = reads(entries)
    assert entry.additional_data["purpose"] == "web referral consent"
    assert entry.actor is None  # the visitor has no account
    assert entry.object_id == Patient.objects.get().pk
    assert entry.remote_addr == CLIENT
