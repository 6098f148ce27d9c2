"""Input that parses but cannot be used is refused at the edge, with a clear 4xx, never a 5xx.

Each case here was a 500 (on PostgreSQL, where NUL and over-long text are database errors; on
any database for the stack-deep JSON and the non-ASCII digit) or an HTML 400 where the API
promises its JSON error format.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client, override_settings

from config.input_limits import MAX_JSON_DEPTH, json_flaw, loads, text_flaw
from patients.access import SITE_ADMIN_GROUP
from patients.models import Patient
from patients.services import ImportReport, import_patient_document_file
from tests.patients.conftest import example
from tests.patients.test_admin_scoping import client_for, make_site, make_staff

pytestmark = pytest.mark.django_db

DEEP = "[" * 50_000 + "]" * 50_000


@pytest.fixture
def admin_a(db: None) -> User:
    return make_staff("admin-a", make_site("site-a", "Site A"), role=SITE_ADMIN_GROUP)


@pytest.fixture
def root(db: None) -> User:
    return User.objects.create_superuser("root", "root@example.org", "x")


def api_error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"].startswith("application/json")
    error = response.json()["error"]
    assert error["status"] == status
    return error


def profile(external_id: str = "P-1") -> dict[str, Any]:
    return {
        "external_id": external_id,
        "sex": "female",
        "birth_date": "1962-06-15",
        "primary_cancer": {"site": "stomach", "histology": "adenocarcinoma"},
    }


def bundle_with_mrn(mrn: str) -> dict[str, Any]:
    bundle = copy.deepcopy(example("EX1"))
    for entry in bundle["entry"]:
        if entry["resource"]["resourceType"] == "Patient":
            entry["resource"]["identifier"][0]["value"] = mrn
    return bundle


# --- query strings ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/trials/?status=%00",
        "/api/v1/patients/?search=a%00b",
        "/api/v1/matches/?site=%00",
    ],
)
def test_a_nul_in_an_api_query_is_a_json_400(admin_a: User, path: str) -> None:
    error = api_error(client_for(admin_a).get(path), 400)
    assert "NUL" in error["message"]


@pytest.mark.parametrize(
    "path",
    [
        "/admin/trials/trial/?overall_status__exact=%00",
        "/admin/patients/match/?trial=%00",
        "/admin/patients/patient/?q=%00",
        "/admin/autocomplete/?app_label=patients&model_name=review&field_name=patient&term=%00",
        "/admin/patients/match/%00/change/",
    ],
)
def test_a_nul_in_an_admin_address_is_a_plain_400(root: User, path: str) -> None:
    response = client_for(root).get(path)
    assert response.status_code == 400
    assert b"NUL" in response.content
    assert b"Traceback" not in response.content


@pytest.mark.parametrize("value", ["\u00b2", "\u0661", "9" * 30, "-1", "1 "])
def test_the_queue_site_filter_takes_only_ascii_ids(root: User, value: str) -> None:
    from tests.patients.test_admin_scoping import make_match, make_trials

    site = make_site("site-q", "Site Q")
    patient = Patient.objects.create(site=site, external_id="Q-1")
    make_match(patient, make_trials(1, prefix="NCT7")[0], "possible", flagged=True)
    shown = client_for(root).get("/admin/patients/match/", {"site": str(site.pk)})
    assert shown.context["cl"].result_count == 1
    response = client_for(root).get("/admin/patients/match/", {"site": value})
    assert response.status_code == 200
    # Not an id: the filter matches nothing, rather than failing or being ignored.
    assert response.context["cl"].result_count == 0


def test_a_match_id_with_non_ascii_digits_is_404(admin_a: User) -> None:
    response = client_for(admin_a).get("/api/v1/matches/\u00b2-1/")
    assert response.status_code == 404


# --- JSON bodies --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/api/v1/match/", "/api/v1/patients/", "/api/v1/patients/import/"]
)
def test_json_nested_past_the_limit_is_a_400_naming_the_reason(admin_a: User, path: str) -> None:
    response = client_for(admin_a).post(path, DEEP, content_type="application/json")
    error = api_error(response, 400)
    assert "nested" in error["message"]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ('{"external_id": "P-1", "sex": NaN}', "NaN"),
        ('{"external_id": "P-1", "height_cm": Infinity}', "Infinity"),
        ('{"external_id": "P-1", "weight": 1e999}', "not finite"),
        ('{"external_id": "P-\\u0000"}', "NUL"),
        ('{"external_id": "P-\\ud800"}', "surrogate"),
        ('{"external_id\\u0000": "P-1"}', "NUL"),
    ],
)
def test_json_the_database_cannot_hold_is_refused(admin_a: User, body: str, reason: str) -> None:
    response = client_for(admin_a).post("/api/v1/patients/", body, content_type="application/json")
    error = api_error(response, 400)
    assert reason in error["message"]
    assert not Patient.objects.exists()


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1024 * 1024)
def test_a_body_past_the_limit_is_a_json_413(admin_a: User) -> None:
    body = json.dumps({"external_id": "P-1", "padding": "x" * (1024 * 1024)})
    response = client_for(admin_a).post("/api/v1/patients/", body, content_type="application/json")
    error = api_error(response, 413)
    assert error["code"] == "too_large"
    assert str(1024 * 1024) in error["message"]


# --- values the model cannot hold ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("mrn", "reason"), [("M" * 65, "at most 64 characters"), ("MRN\x007", "NUL")]
)
def test_a_fhir_mrn_the_model_cannot_hold_is_a_400(admin_a: User, mrn: str, reason: str) -> None:
    response = client_for(admin_a).post(
        "/api/v1/patients/import/", bundle_with_mrn(mrn), content_type="application/json"
    )
    error = api_error(response, 400)
    assert reason in error["message"]
    assert "MRN" in error["message"] or "identifier[0].value" in error["message"]
    assert not Patient.objects.exists()


def test_a_file_whose_mrn_the_model_cannot_hold_is_rejected_alone(tmp_path: Path) -> None:
    report = ImportReport()
    long_mrn = tmp_path / "long.json"
    long_mrn.write_text(json.dumps(bundle_with_mrn("M" * 65)))
    nul = tmp_path / "nul.json"
    nul.write_text(json.dumps(bundle_with_mrn("A\x00B")))
    good = tmp_path / "good.json"
    good.write_text(json.dumps(example("EX1")))
    for path in (long_mrn, nul, good):
        import_patient_document_file(path, report)
    assert report.rejected == 2
    assert report.created == 1
    reasons = " ".join(problem.message for problem in report.problems)
    assert "at most 64 characters" in reasons
    assert "NUL" in reasons
    assert Patient.objects.count() == 1


# --- the rule itself ----------------------------------------------------------------------------


def test_the_rule_names_where_and_why() -> None:
    assert text_flaw("plain text, é and 中文") is None
    assert json_flaw({"a": [{"b": "ok"}, {"c": "x\x00"}]}) == "a[1].c: text holds a NUL character"
    assert json_flaw([[[]]], max_depth=2) is None
    assert json_flaw([[[[]]]], max_depth=2) == "[0][0][0]: nested more than 2 levels deep"
    assert json_flaw({"n": float("nan")}) == (
        "n: a number that is not finite (NaN, Infinity or too large)"
    )
    assert loads("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH) is not None
    with pytest.raises(ValueError, match="nested"):
        loads("[" * (MAX_JSON_DEPTH + 2) + "]" * (MAX_JSON_DEPTH + 2))
    with pytest.raises(ValueError, match="nested"):
        loads(DEEP)


def test_no_request_with_a_nul_reaches_a_view_even_anonymous() -> None:
    response = Client().get("/prescreen/?x=%00")
    assert response.status_code == 400


def test_names_from_any_source_lose_their_invisible_controls(admin_a: User) -> None:
    """A right-to-left override in a stored name would show it reversed in the workspace and
    in emails, whichever source wrote it; the zero-width non-joiner of a Persian name stays."""
    from patients.profile import ProfileData
    from patients.services import patient_upsert

    written = ProfileData(external_id="F-7", given_name="\u2066Alex\u202eelpmaxE\u2069")
    written.family_name = "Mi\u200cra\u200f"
    written.email = "a@exa\u202emple.org"
    written.city = "Ber\u200blin"
    result = patient_upsert(written, source="api")
    assert result.patient is not None
    stored = Patient.objects.get(pk=result.patient.pk)
    assert (stored.given_name, stored.family_name) == ("AlexelpmaxE", "Mi\u200cra")
    assert (stored.email, stored.city) == ("a@example.org", "Berlin")
