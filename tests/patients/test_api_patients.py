"""The patient-data endpoints of the REST API: site scoping (BOLA), mass assignment, writes,
FHIR import, matching without storing, the review workflow, the audit trail and query counts.

Callers sign in with the admin session (``force_login``); the token authentication, throttling
and error format are the platform's (``config/api_*``) and tested there.
"""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from django.apps import apps
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from patients.access import SITE_ADMIN_GROUP
from patients.matching import MATCHER_VERSION
from patients.models import Match, Patient, PerformanceStatus, Review, Source
from tests.patients.conftest import example
from tests.patients.test_admin_scoping import make_site, make_staff, make_trials
from tests.patients.test_prescreen import registry  # noqa: F401 - a fixture

pytestmark = pytest.mark.django_db

LogEntry: Any = apps.get_model("auditlog", "LogEntry")


def rows(response: Any) -> list[dict[str, Any]]:
    body = response.json()
    return body["results"] if isinstance(body, dict) else body


def errors(response: Any) -> dict[str, Any]:
    """The field errors of a 400, in the API's error format or DRF's plain one."""
    assert response.status_code == 400, response.content
    body = response.json()
    return body["error"].get("fields") or {} if "error" in body else body


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def profile(external_id: str = "P-1", **extra: Any) -> dict[str, Any]:
    return {
        "external_id": external_id,
        "sex": "female",
        "birth_date": "1962-06-15",
        "country": "DE",
        "primary_cancer": {"site": "stomach", "histology": "adenocarcinoma"},
        "staging": [{"context": "clinical", "category": "T", "value": "T3"}],
        "performance_status": [{"scale": "ecog", "value": 1}],
        **extra,
    }


def accesses(purpose: str) -> int:
    return LogEntry.objects.filter(
        action=LogEntry.Action.ACCESS, additional_data__purpose=f"api: {purpose}"
    ).count()


@pytest.fixture
def world(db: None) -> dict[str, Any]:
    """Two sites, a coordinator and a site admin of A, a patient and a match on each side."""
    a, b = make_site("site-a", "Site A"), make_site("site-b", "Site B")
    coordinator = make_staff("coord-a", a)
    admin = make_staff("admin-a", a, role=SITE_ADMIN_GROUP)
    other = make_staff("coord-b", b)
    trial = make_trials(1)[0]
    now = timezone.now()
    patients = {}
    for site, mrn in ((a, "A-1"), (b, "B-1")):
        patient = Patient.objects.create(
            site=site, external_id=mrn, birth_date=datetime.date(1960, 1, 1)
        )
        PerformanceStatus.objects.create(patient=patient, value=1)
        Match.objects.create(
            patient=patient,
            trial=trial,
            verdict="possible",
            score=50,
            flagged=True,
            engine_version=MATCHER_VERSION,
            patient_facts_at=patient.facts_changed_at,
            trial_inputs_at=trial.matching_inputs_at,
            evaluated_on=now.date(),
        )
        patients[site.code] = patient
    return {
        "a": a,
        "b": b,
        "coordinator": coordinator,
        "admin": admin,
        "other": other,
        "trial": trial,
        "mine": patients["site-a"],
        "theirs": patients["site-b"],
    }


# --- BOLA: another site's ids are 404 everywhere ----------------------------------------------


def test_another_sites_ids_are_404_on_every_endpoint(world: dict[str, Any]) -> None:
    client = client_for(world["admin"])  # the strongest role short of superuser
    theirs, trial = world["theirs"], world["trial"]
    pair = f"/api/v1/matches/{theirs.pk}-{trial.pk}/"
    calls = [
        client.get(f"/api/v1/patients/{theirs.pk}/"),
        client.put(
            f"/api/v1/patients/{theirs.pk}/",
            profile(theirs.external_id),
            content_type="application/json",
        ),
        client.get(f"/api/v1/patients/{theirs.pk}/matches/"),
        client.get(pair),
        client.post(f"{pair}review/", {"status": "under_review"}, content_type="application/json"),
    ]
    assert [response.status_code for response in calls] == [404] * len(calls)
    # Deleting is no site admin's: refused alike for their own patient and another site's.
    for patient in (theirs, world["mine"]):
        assert client.delete(f"/api/v1/patients/{patient.pk}/").status_code == 403
    assert Patient.objects.filter(pk=theirs.pk).exists()
    assert not Review.objects.exists()
    listed = rows(client.get("/api/v1/patients/"))
    assert [row["external_id"] for row in listed] == ["A-1"]
    assert rows(client.get("/api/v1/patients/?site=site-b")) == []
    assert [row["patient"] for row in rows(client.get("/api/v1/matches/"))] == [world["mine"].pk]
    assert rows(client.get("/api/v1/matches/?site=site-b")) == []


def test_anonymous_callers_get_nothing(world: dict[str, Any]) -> None:
    client = Client()
    for url in ("/api/v1/patients/", "/api/v1/matches/", f"/api/v1/patients/{world['mine'].pk}/"):
        assert client.get(url).status_code in (401, 403)
    assert client.post("/api/v1/match/", {}, content_type="application/json").status_code in (
        401,
        403,
    )


# --- Patients: create, read, update, delete ---------------------------------------------------


def test_a_site_admin_creates_reads_and_updates_a_patient_a_superuser_deletes_it(
    world: dict[str, Any],
) -> None:
    client = client_for(world["admin"])
    created = client.post(
        "/api/v1/patients/", profile(site="site-a"), content_type="application/json"
    )
    assert created.status_code == 201, created.json()
    body = created.json()
    patient = Patient.objects.get(pk=body["id"])
    assert (patient.site, patient.source, patient.sex) == (world["a"], Source.API, "female")
    assert body["site"] == "site-a"
    assert body["staging"][0]["value"] == "T3"
    assert LogEntry.objects.filter(
        object_pk=str(patient.pk), action=LogEntry.Action.CREATE
    ).exists()

    read = client.get(f"/api/v1/patients/{patient.pk}/")
    assert read.status_code == 200
    assert read.json()["external_id"] == "P-1"
    assert accesses("patient read") == 1

    document = read.json()
    document["sex"] = "male"
    document["staging"] = [{"context": "clinical", "category": "T", "value": "T4a"}]
    updated = client.put(
        f"/api/v1/patients/{patient.pk}/", document, content_type="application/json"
    )
    assert updated.status_code == 200, updated.json()
    patient.refresh_from_db()
    assert patient.sex == "male"
    assert [s.value for s in patient.stages.all()] == ["T4a"]
    assert LogEntry.objects.filter(
        object_pk=str(patient.pk), action=LogEntry.Action.UPDATE
    ).exists()

    assert client.delete(f"/api/v1/patients/{patient.pk}/").status_code == 403
    root = make_staff("root", superuser=True)
    assert client_for(root).delete(f"/api/v1/patients/{patient.pk}/").status_code == 204
    assert not Patient.objects.filter(pk=patient.pk).exists()
    assert LogEntry.objects.filter(
        object_pk=str(patient.pk), action=LogEntry.Action.DELETE, actor=root
    ).exists()


def test_a_coordinator_may_not_add_or_delete_patients(world: dict[str, Any]) -> None:
    client = client_for(world["coordinator"])
    assert (
        client.post("/api/v1/patients/", profile(site="site-a"), content_type="application/json")
    ).status_code == 403
    assert client.delete(f"/api/v1/patients/{world['mine'].pk}/").status_code == 403
    assert client.get(f"/api/v1/patients/{world['mine'].pk}/").status_code == 200


def test_no_mass_assignment_of_site_audit_or_derived_fields(world: dict[str, Any]) -> None:
    client = client_for(world["admin"])
    other_site = client.post(
        "/api/v1/patients/", profile(site="site-b"), content_type="application/json"
    )
    assert "site" in errors(other_site)
    for field, value in (
        ("source", "fhir"),
        ("created_at", "2020-01-01T00:00:00Z"),
        ("bundle_hash", "x"),
        ("review_status", "enrolled"),
        ("latitude", 1.0),
    ):
        response = client.post(
            "/api/v1/patients/",
            {**profile(site="site-a"), field: value},
            content_type="application/json",
        )
        assert response.status_code == 400, field
    # Computed values of the format are accepted on the way in and ignored.
    ignored = client.post(
        "/api/v1/patients/",
        profile(site="site-a", surgical_candidate=False, age=3),
        content_type="application/json",
    )
    assert ignored.status_code == 201
    assert ignored.json()["age"] != 3
    mine = world["mine"]
    moved = client.put(
        f"/api/v1/patients/{mine.pk}/",
        profile(mine.external_id, site="site-b"),
        content_type="application/json",
    )
    assert "site" in errors(moved)
    renamed = client.put(
        f"/api/v1/patients/{mine.pk}/", profile("OTHER"), content_type="application/json"
    )
    assert "external_id" in errors(renamed)
    mine.refresh_from_db()
    assert (mine.site, mine.external_id) == (world["a"], "A-1")


def test_format_errors_name_the_field(world: dict[str, Any]) -> None:
    client = client_for(world["admin"])
    bad = profile(site="site-a", sex="sometimes")
    response = client.post("/api/v1/patients/", bad, content_type="application/json")
    assert "sex" in errors(response)
    duplicate = client.post(
        "/api/v1/patients/", profile("A-1", site="site-a"), content_type="application/json"
    )
    assert "external_id" in errors(duplicate)


def test_the_fhir_import_creates_then_updates(world: dict[str, Any]) -> None:
    client = client_for(world["admin"])
    bundle = example("EX1")
    first = client.post("/api/v1/patients/import/", bundle, content_type="application/json")
    assert first.status_code == 201, first.json()
    patient = Patient.objects.get(pk=first.json()["id"])
    assert patient.site == world["a"]
    assert patient.source == Source.FHIR
    assert patient.primary_cancer.site == "stomach"
    again = client.post("/api/v1/patients/import/", bundle, content_type="application/json")
    assert again.status_code == 200
    assert again.json()["status"] == "unchanged"
    # The document read back and sent again does not copy the bundle's facts as API facts.
    document = client.get(f"/api/v1/patients/{patient.pk}/").json()
    facts = patient.stages.count() + patient.labs.count()
    document["sex"] = "female"
    put = client.put(f"/api/v1/patients/{patient.pk}/", document, content_type="application/json")
    assert put.status_code == 200, put.json()
    assert patient.stages.count() + patient.labs.count() == facts
    assert any("its source" in note for note in put.json()["problems"])
    refused = client.post(
        "/api/v1/patients/import/?site=site-b", bundle, content_type="application/json"
    )
    assert "site" in errors(refused)
    not_bundle = client.post("/api/v1/patients/import/", profile(), content_type="application/json")
    assert not_bundle.status_code == 400


def test_a_write_whose_matching_fails_stores_nothing(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A patient import and its matching succeed or fail together: a stored patient never sits
    without the matches of what is stored."""
    client = client_for(world["admin"])
    bundle = example("EX1")

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise ValueError("math domain error")

    monkeypatch.setattr("patients.matching.evaluate_with", broken)
    before = Patient.objects.count(), accesses("patient write")
    answer = client.post("/api/v1/patients/import/", bundle, content_type="application/json")
    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "matching_failed"
    assert "nothing changed" in answer.json()["error"]["message"]
    created = client.post("/api/v1/patients/", profile("P-9"), content_type="application/json")
    assert created.status_code == 503
    mine = world["mine"]
    document = client.get(f"/api/v1/patients/{mine.pk}/").json()
    document["sex"] = "male"
    put = client.put(f"/api/v1/patients/{mine.pk}/", document, content_type="application/json")
    assert put.status_code == 503
    assert (Patient.objects.count(), accesses("patient write")) == before
    mine.refresh_from_db()
    assert mine.sex != "male"
    assert Match.objects.filter(patient=mine).count() == 1


# --- Matches --------------------------------------------------------------------------------


def test_a_patients_matches_have_criteria_and_review_status(world: dict[str, Any]) -> None:
    client = client_for(world["coordinator"])
    response = client.get(f"/api/v1/patients/{world['mine'].pk}/matches/")
    assert response.status_code == 200
    assert response.json()["count"] == 1
    (item,) = response.json()["results"]
    assert item["nct_id"] == world["trial"].nct_id
    assert item["flagged"] is True
    assert item["current"] is True
    assert item["review_status"] == "new"
    assert isinstance(item["criteria"], list)
    assert accesses("patient matches") == 1


def test_a_patients_matches_come_a_page_at_a_time_best_first(world: dict[str, Any]) -> None:
    mine = world["mine"]
    trials = make_trials(7, prefix="NCT6")
    for n, trial in enumerate(trials):
        Match.objects.create(
            patient=mine,
            trial=trial,
            verdict="ineligible" if n % 2 else "possible",
            score=n,
            engine_version=MATCHER_VERSION,
            patient_facts_at=mine.facts_changed_at,
            trial_inputs_at=trial.matching_inputs_at,
            evaluated_on=timezone.localdate(),
        )
    client = client_for(world["coordinator"])
    url = f"/api/v1/patients/{mine.pk}/matches/"
    first = client.get(f"{url}?page_size=3").json()
    assert first["count"] == 8  # the world's flagged match and these seven
    assert len(first["results"]) == 3
    assert first["previous"] is None
    assert first["results"][0]["flagged"] is True
    assert [r["verdict"] for r in first["results"][1:]] == ["possible", "possible"]
    assert first["results"][1]["score"] > first["results"][2]["score"]
    rest = (
        client.get(first["next"]).json()["results"]
        + client.get(client.get(first["next"]).json()["next"]).json()["results"]
    )
    assert len(rest) == 5
    assert {r["verdict"] for r in rest[-3:]} == {"ineligible"}
    assert client.get(f"{url}?verdict=ineligible").json()["count"] == 3
    assert client.get(f"{url}?flagged=true").json()["count"] == 1
    assert "verdict" in errors(client.get(f"{url}?verdict=maybe"))
    assert client.get(f"{url}?page=99").status_code == 404


def test_review_moves_follow_the_workflow(world: dict[str, Any]) -> None:
    client = client_for(world["coordinator"])
    url = f"/api/v1/matches/{world['mine'].pk}-{world['trial'].pk}/review/"
    no_reason = client.post(url, {"status": "not_eligible"}, content_type="application/json")
    assert "reason" in errors(no_reason)["status"][0]
    skip = client.post(url, {"status": "enrolled"}, content_type="application/json")
    assert "status" in errors(skip)
    moved = client.post(
        url,
        {"status": "not_eligible", "reason": "HER2 positive", "note": "checked the report"},
        content_type="application/json",
    )
    assert moved.status_code == 200, moved.json()
    assert moved.json()["review_status"] == "not_eligible"
    assert moved.json()["notes"][0]["text"] == "checked the report"
    review = Review.objects.get()
    assert (review.status, review.status_reason) == ("not_eligible", "HER2 positive")
    assert review.transitions.get().actor == world["coordinator"]
    assigned = client.post(url, {"assignee": world["admin"].pk}, content_type="application/json")
    assert assigned.status_code == 200
    assert assigned.json()["assignee"] == world["admin"].pk
    outsider = client.post(url, {"assignee": world["other"].pk}, content_type="application/json")
    assert "assignee" in errors(outsider)
    queue = rows(client.get("/api/v1/matches/?review_status=not_eligible"))
    assert [row["review_status"] for row in queue] == ["not_eligible"]
    assert rows(client.get("/api/v1/matches/?review_status=new")) == []


def test_the_queue_filters_and_orders_as_the_admin(world: dict[str, Any]) -> None:
    trials = make_trials(2, prefix="NCT8")
    mine = world["mine"]
    for trial, verdict, flagged, score in (
        (trials[0], "eligible", False, 90),
        (trials[1], "ineligible", False, 99),
    ):
        Match.objects.create(
            patient=mine,
            trial=trial,
            verdict=verdict,
            score=score,
            flagged=flagged,
            engine_version=MATCHER_VERSION,
            patient_facts_at=mine.facts_changed_at,
            trial_inputs_at=trial.matching_inputs_at,
            evaluated_on=timezone.localdate(),
        )
    client = client_for(world["coordinator"])
    listed = rows(client.get("/api/v1/matches/"))
    assert [row["verdict"] for row in listed] == ["possible", "eligible", "ineligible"]
    assert [
        r["nct_id"] for r in rows(client.get(f"/api/v1/matches/?trial={trials[0].nct_id}"))
    ] == [trials[0].nct_id]
    assert len(rows(client.get("/api/v1/matches/?flagged=true"))) == 1
    assert len(rows(client.get("/api/v1/matches/?verdict=ineligible"))) == 1
    detail = client.get(f"/api/v1/matches/{mine.pk}-{trials[0].pk}/")
    assert detail.status_code == 200
    assert detail.json()["verdict"] == "eligible"
    assert accesses("match list") >= 1
    assert accesses("match read") == 1


def test_lists_take_a_bounded_number_of_queries(
    world: dict[str, Any], django_assert_max_num_queries: Any
) -> None:
    site = world["a"]
    trials = make_trials(5, prefix="NCT7")
    now = timezone.localdate()
    patients = Patient.objects.bulk_create(
        [Patient(site=site, external_id=f"Q-{n}") for n in range(20)]
    )
    Match.objects.bulk_create(
        [
            Match(
                patient=p,
                trial=t,
                verdict="possible",
                score=10,
                engine_version=MATCHER_VERSION,
                patient_facts_at=p.facts_changed_at,
                trial_inputs_at=t.matching_inputs_at,
                evaluated_on=now,
            )
            for p in patients
            for t in trials
        ]
    )
    client = client_for(world["coordinator"])
    client.get("/api/v1/patients/")  # session and user loaded once
    # Each request also loads the device that verified the sign-in (two-factor): one query.
    with django_assert_max_num_queries(13):
        assert len(rows(client.get("/api/v1/patients/"))) >= 20
    with django_assert_max_num_queries(13):
        assert len(rows(client.get("/api/v1/matches/"))) >= 20
    with django_assert_max_num_queries(15):
        assert len(rows(client.get(f"/api/v1/patients/{patients[0].pk}/matches/"))) == 5


# --- Matching without storing -----------------------------------------------------------------


def test_matching_a_bundle_stores_nothing_and_ranks_flagged_first(
    registry: int,  # noqa: F811 - the fixture
    expectations: dict[str, Any],
) -> None:
    site = make_site("site-a", "Site A")
    user = make_staff("coord", site)
    patients, matches, entries = (
        Patient.objects.count(),
        Match.objects.count(),
        LogEntry.objects.count(),
    )
    response = client_for(user).post(
        "/api/v1/match/", example("EX1"), content_type="application/json"
    )
    assert response.status_code == 200, response.json()
    ranked = response.json()["trials"]
    expected = expectations["patients"]["EX1"]
    flagged = [t["nct_id"] for t in ranked if t["flagged"]]
    assert sorted(flagged) == sorted(expected["flagged"])
    assert [t["flagged"] for t in ranked[: len(flagged)]] == [True] * len(flagged)
    verdicts = {t["nct_id"]: t["verdict"] for t in ranked}
    for nct_id, outcome in expected["outcomes"].items():
        if outcome == "ineligible":
            assert verdicts.get(nct_id, "ineligible") == "ineligible", nct_id
        else:
            assert verdicts[nct_id] != "ineligible", nct_id
    assert all(t["criteria"] and all(c["reason"] for c in t["criteria"]) for t in ranked)
    assert (Patient.objects.count(), Match.objects.count()) == (patients, matches)
    # One audit entry (the data was read), pointing at no patient and naming none.
    (entry,) = LogEntry.objects.all()[entries:]
    assert entry.action == LogEntry.Action.ACCESS
    assert entry.actor == user
    assert entry.object_pk == "-"
    assert entry.object_id is None
    assert entry.additional_data == {"purpose": "api: match without storing", "format": "fhir"}
    assert "EX1" not in str(entry.__dict__)


def test_matching_a_profile_document_stores_nothing(world: dict[str, Any]) -> None:
    client = client_for(world["coordinator"])
    before = (Patient.objects.count(), Match.objects.count())
    response = client.post("/api/v1/match/", profile(), content_type="application/json")
    assert response.status_code == 200, response.json()
    assert set(response.json()) >= {"trials", "checked", "problems"}
    assert (Patient.objects.count(), Match.objects.count()) == before
    assert accesses("match without storing") == 1
    bad = client.post("/api/v1/match/", {"sex": "sometimes"}, content_type="application/json")
    assert "sex" in errors(bad)


def test_a_token_write_names_its_actor_and_the_trusted_address(
    world: dict[str, Any], settings: Any
) -> None:
    """With ``Authorization: Token`` the audit middleware once read the user before the API
    had authenticated it, and stored writes with no actor; and the address came from the
    first X-Forwarded-For entry, which the client writes."""
    from patients.models import ApiToken

    settings.NUM_PROXIES = 1  # one trusted proxy, which appends the address it saw
    writer = make_staff("root", superuser=True)  # who may also delete
    _, key = ApiToken.issue(writer, "EHR")
    client = Client(
        HTTP_AUTHORIZATION=f"Token {key}",
        HTTP_X_FORWARDED_FOR="6.6.6.6, 198.51.100.7",  # forged, then the proxy's
        REMOTE_ADDR="10.0.0.2",
    )
    created = client.post(
        "/api/v1/patients/", profile(site="site-a"), content_type="application/json"
    )
    assert created.status_code == 201, created.content
    pk = created.json()["id"]
    assert client.delete(f"/api/v1/patients/{pk}/").status_code == 204

    entries = LogEntry.objects.filter(object_pk=str(pk)).exclude(action=LogEntry.Action.ACCESS)
    assert {e.action for e in entries} >= {LogEntry.Action.CREATE, LogEntry.Action.DELETE}
    assert {e.actor_id for e in entries} == {writer.pk}
    assert {e.remote_addr for e in entries} == {"198.51.100.7"}


def test_without_a_trusted_proxy_the_forwarded_header_is_ignored(world: dict[str, Any]) -> None:
    before = LogEntry.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    client = client_for(world["admin"])
    created = client.post(
        "/api/v1/patients/",
        profile(site="site-a"),
        content_type="application/json",
        HTTP_X_FORWARDED_FOR="6.6.6.6",
        REMOTE_ADDR="203.0.113.20",
    )
    assert created.status_code == 201
    entries = LogEntry.objects.filter(action=LogEntry.Action.CREATE, pk__gt=before)
    assert entries.exists()
    assert {(e.actor_id, e.remote_addr) for e in entries} == {(world["admin"].pk, "203.0.113.20")}


def test_patient_data_answers_are_never_stored_by_a_cache(world: dict[str, Any]) -> None:
    """Patient-data API answers say Cache-Control: no-store."""
    client = client_for(world["admin"])
    mine = world["mine"]
    for response in (
        client.get("/api/v1/patients/"),
        client.get(f"/api/v1/patients/{mine.pk}/"),
        client.get(f"/api/v1/patients/{mine.pk}/matches/"),
        client.get("/api/v1/matches/"),
        client.get("/api/v1/patients/999999/"),  # an error answer too
    ):
        assert response["Cache-Control"] == "no-store", response.request["PATH_INFO"]
