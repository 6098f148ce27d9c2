"""A coordinator who changes where a patient lives in the workspace moves the patient's point:
distances and the travel filter use the new place, as for every other way a place is written
(``patients.services.locate_patient``)."""

from __future__ import annotations

import datetime

import pytest
from django.test import Client

from patients.models import Patient, Site
from tests.patients.test_audit_surfaces import form_fields

pytestmark = pytest.mark.django_db


def test_a_postal_code_edit_in_the_admin_locates_the_patient(admin_client: Client) -> None:
    site = Site.objects.create(code="north", name="North")
    patient = Patient.objects.create(
        site=site,
        external_id="A-1",
        sex="female",
        birth_date=datetime.date(1960, 1, 1),
        postal_code="94110",
        country="US",
        latitude=37.75,
        longitude=-122.41,
        location_precision="postal_code",
    )
    change = f"/admin/patients/patient/{patient.pk}/change/"
    data = form_fields(admin_client.get(change).content.decode())
    data["postal_code"] = "10021"  # New York
    response = admin_client.post(change, data)
    assert response.status_code == 302, response.content.decode()[:2000]
    patient.refresh_from_db()
    assert patient.latitude is not None
    assert patient.longitude is not None
    assert 40 < patient.latitude < 41.5
    assert -75 < patient.longitude < -73
    assert patient.location_precision

    data = form_fields(admin_client.get(change).content.decode())
    data["postal_code"], data["country"] = "", ""
    assert admin_client.post(change, data).status_code == 302
    patient.refresh_from_db()
    assert (patient.latitude, patient.longitude) == (None, None)  # no stale point


def test_an_edit_that_leaves_the_place_alone_keeps_the_point(admin_client: Client) -> None:
    site = Site.objects.create(code="north", name="North")
    patient = Patient.objects.create(
        site=site, external_id="A-2", postal_code="10021", country="US"
    )
    from patients.services import locate_patient

    locate_patient(patient)
    patient.save()
    point = (patient.latitude, patient.longitude)
    change = f"/admin/patients/patient/{patient.pk}/change/"
    data = form_fields(admin_client.get(change).content.decode())
    data["sex"] = "male"
    assert admin_client.post(change, data).status_code == 302
    patient.refresh_from_db()
    assert (patient.latitude, patient.longitude) == point
