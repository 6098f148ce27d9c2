"""A CSV cell a spreadsheet would run as a formula is quoted, in every export."""

from __future__ import annotations

import csv
import io

import pytest
from django.core.management import call_command

from config.spreadsheet import cell, row
from patients.models import Patient, Site
from tests.trials.conftest import CTGOV_DATA
from trials.models import Trial

FORMULA = '=HYPERLINK("http://example.invalid","x")'


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_a_formula_start_is_quoted(start: str) -> None:
    assert cell(f"{start}1+1") == f"'{start}1+1"


def test_other_values_are_kept() -> None:
    assert row({"a": "gastric", "b": 3, "c": None, "d": "1-2"}) == {
        "a": "gastric",
        "b": 3,
        "c": None,
        "d": "1-2",
    }


def _read(command: str) -> list[dict[str, str]]:
    call_command(command, "--format", "csv", stdout=(out := io.StringIO()))
    return list(csv.DictReader(io.StringIO(out.getvalue())))


@pytest.mark.django_db
def test_the_trial_and_patient_exports_quote_formulas() -> None:
    call_command(
        "sync_trials", "--from", str(CTGOV_DATA / "v2" / "NCT00000102.json"), "--no-progress"
    )
    Trial.objects.update(brief_title=FORMULA)
    trials = _read("export_trials")
    assert {line["title"] for line in trials} == {"'" + FORMULA}

    site = Site.objects.first() or Site.objects.create(code="s", name="S")
    Patient.objects.create(site=site, external_id=FORMULA)
    patients = _read("export_patients")
    assert {line["external_id"] for line in patients} == {"'" + FORMULA}
