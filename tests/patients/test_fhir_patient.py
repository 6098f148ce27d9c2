"""The Patient resource as real senders write it: which identifier is the MRN, two systems'
equal MRNs, sex without ``gender``, the current address, death, and a Patient refused with the
reason why.

The shapes come from the FHIR R4 Patient resource, the HL7 v2 identifier types (``MR``) and
US Core's sex extensions, as the shared external bundles use them.
"""

from __future__ import annotations

import copy
import datetime
from typing import Any

import pytest

from patients import matching
from patients.fhir import BundleError, read_bundle
from patients.models import Match, Patient, Site, Source
from patients.services import ProfileRejected, patient_upsert
from tests.patients.conftest import example
from tests.patients.test_prescreen import registry  # noqa: F401 - a fixture

pytestmark = pytest.mark.django_db

MR_TYPE = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]}


def bundle(**patient: Any) -> dict[str, Any]:
    """EX1 (a resectable gastric cancer) with its Patient's fields replaced by ``patient``."""
    document = copy.deepcopy(example("EX1"))
    for entry in document["entry"]:
        if entry["resource"]["resourceType"] == "Patient":
            entry["resource"].update(patient)
            for name, value in list(patient.items()):
                if value is None:
                    del entry["resource"][name]
    return document


def imported(document: dict[str, Any], site: Site) -> Patient:
    result = patient_upsert(read_bundle(document, origin="x.json"), source=Source.FHIR, site=site)
    assert result.patient is not None
    return result.patient


@pytest.fixture
def site(db: None) -> Site:
    return Site.objects.create(code="north", name="North")


def test_the_mrn_is_the_identifier_typed_mr_whatever_its_position() -> None:
    profile = read_bundle(
        bundle(
            identifier=[
                {"system": "urn:oid:2.16.840.1.113883.4.1", "value": "123-45-6789"},  # SSN
                {"system": "urn:hospital:mrn", "type": MR_TYPE, "value": " M-77 "},
            ]
        ),
        origin="x.json",
    )
    assert (profile.identifier_system, profile.external_id) == ("urn:hospital:mrn", "M-77")


def test_a_first_identifier_without_value_does_not_refuse_the_patient() -> None:
    profile = read_bundle(
        bundle(
            identifier=[
                {"system": "urn:a", "type": MR_TYPE},
                {"system": "urn:b", "value": "B-1"},
            ]
        ),
        origin="x.json",
    )
    assert profile.external_id == "B-1"


def test_a_configured_system_is_preferred_over_the_first(settings: Any) -> None:
    settings.FHIR_MRN_SYSTEMS = ["urn:hospital:mrn"]
    profile = read_bundle(
        bundle(
            identifier=[
                {"system": "urn:payer:member", "value": "P-1"},
                {"system": "urn:hospital:mrn", "value": "H-1"},
            ]
        ),
        origin="x.json",
    )
    assert profile.external_id == "H-1"


def test_equal_mrns_of_two_systems_are_two_patients(site: Site) -> None:
    first = imported(bundle(identifier=[{"system": "urn:a", "value": "a123"}]), site)
    second_document = bundle(
        identifier=[{"system": "urn:b", "value": "a123"}], birthDate="1980-01-01"
    )
    second = imported(second_document, site)
    assert first.pk != second.pk
    first.refresh_from_db()
    assert first.birth_date == datetime.date(1962, 6, 15)  # not overwritten
    assert Patient.objects.filter(external_id="a123").count() == 2


def test_an_import_that_would_change_birth_date_or_sex_is_refused(site: Site) -> None:
    held = imported(bundle(), site)
    for change in ({"birthDate": "1970-01-01"}, {"gender": "male"}):
        with pytest.raises(ProfileRejected, match=r"another (birth date|sex)") as refused:
            imported(bundle(**change), site)
        assert "Nothing was changed" in str(refused.value)
    held.refresh_from_db()
    assert (held.birth_date, held.sex) == (datetime.date(1962, 6, 15), "female")


def test_the_api_import_answers_the_refusal_in_its_error_format(
    site: Site, admin_client: Any
) -> None:
    imported(bundle(), site)
    answer = admin_client.post(
        "/api/v1/patients/import/?site=north",
        bundle(birthDate="1970-01-01"),
        content_type="application/json",
    )
    assert answer.status_code == 400
    assert "another birth date" in answer.json()["error"]["message"]


@pytest.mark.parametrize(
    ("extension", "sex"),
    [
        (
            {
                "url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-individual-sex",
                "valueCoding": {"system": "http://snomed.info/sct", "code": "248152002"},
            },
            "female",
        ),
        (
            {
                "url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex",
                "valueCode": "M",
            },
            "male",
        ),
    ],
)
def test_sex_comes_from_the_us_core_extensions_without_gender(
    extension: dict[str, Any], sex: str
) -> None:
    profile = read_bundle(bundle(gender=None, extension=[extension]), origin="x.json")
    assert profile.sex == sex


def test_the_current_address_is_taken_not_an_old_one() -> None:
    profile = read_bundle(
        bundle(
            address=[
                {"use": "old", "postalCode": "02139", "city": "Cambridge", "country": "US"},
                {
                    "use": "home",
                    "postalCode": "94110",
                    "city": "San Francisco",
                    "country": "US",
                    "period": {"start": "2001-01-01", "end": "2010-01-01"},
                },
                {"use": "home", "postalCode": "10021", "city": "New York", "country": "US"},
            ]
        ),
        origin="x.json",
    )
    assert (profile.postal_code, profile.city) == ("10021", "New York")


def test_a_patient_whose_every_address_is_past_has_none() -> None:
    profile = read_bundle(bundle(address=[{"use": "old", "postalCode": "02139"}]), origin="x")
    assert profile.postal_code == ""


def test_a_deceased_patient_is_kept_marked_and_never_matched(
    site: Site,
    registry: int,  # noqa: F811 - the recorded trials, criteria read
) -> None:
    patient = imported(bundle(), site)
    matching.match_patients([patient.pk])
    assert Match.objects.filter(patient=patient, flagged=True).exists()

    patient = imported(bundle(deceasedDateTime="2026-11-02T08:00:00Z"), site)
    matching.match_patients([patient.pk])
    patient.refresh_from_db()
    assert (patient.deceased, patient.deceased_on) == (True, datetime.date(2026, 11, 2))
    assert not Match.objects.filter(patient=patient).exists()
    assert patient.surgical_candidate is None
    assert "deceased" in patient.surgical_candidate_reason
    assert patient.flag_events.filter(kind="cleared").exists()


def test_deceased_boolean_is_read() -> None:
    profile = read_bundle(bundle(deceasedBoolean=True), origin="x.json")
    assert (profile.deceased, profile.deceased_on) == (True, None)
    assert read_bundle(bundle(), origin="x.json").deceased is None


def test_a_refused_patient_is_refused_with_the_reason() -> None:
    with pytest.raises(BundleError, match=r"Patient is refused: not valid FHIR R4: .*id"):
        read_bundle(bundle(id="has_underscore"), origin="x.json")


def test_a_patient_stored_without_a_system_is_found_and_takes_it(site: Site) -> None:
    """Patients stored before identifier systems were kept (or from profile JSON) are the
    same patients when their bundle is imported again: never a second row."""
    held = Patient.objects.create(
        site=site, external_id="EX1", sex="female", birth_date=datetime.date(1962, 6, 15)
    )
    again = imported(bundle(), site)  # EX1.json: system urn:example:mrn
    assert again.pk == held.pk
    held.refresh_from_db()
    assert held.identifier_system == "urn:example:mrn"
    assert Patient.objects.count() == 1


def test_an_api_update_of_a_fhir_patient_updates_that_patient(
    site: Site, admin_client: Any
) -> None:
    patient = imported(bundle(), site)
    document = admin_client.get(f"/api/v1/patients/{patient.pk}/").json()
    document["postal_code"] = "10022"
    answer = admin_client.put(
        f"/api/v1/patients/{patient.pk}/", document, content_type="application/json"
    )
    assert answer.status_code == 200, answer.content
    assert Patient.objects.count() == 1
    patient.refresh_from_db()
    assert patient.postal_code == "10022"
    created = admin_client.post(
        "/api/v1/patients/",
        {"external_id": "EX1", "site": "north", "sex": "female"},
        content_type="application/json",
    )
    assert created.status_code == 400  # the MRN exists at this site, whatever its system


def test_a_document_without_system_for_an_mrn_two_systems_hold_is_refused(site: Site) -> None:
    from patients.profile import ProfileData

    imported(bundle(identifier=[{"system": "urn:a", "value": "a123"}]), site)
    imported(bundle(identifier=[{"system": "urn:b", "value": "a123"}]), site)
    with pytest.raises(ProfileRejected, match="held under 2 identifier systems"):
        patient_upsert(ProfileData(external_id="a123"), source=Source.JSON, site=site)
