"""Patients matched against trials, end to end: the example patients imported from their FHIR
bundles, the recorded registry synced over real HTTP from the fake ClinicalTrials.gov, the
matches computed and stored, kept current, exported, and fanned out to a real Celery worker.
"""

import copy
import csv
import datetime
import gc
import io
import json
import re
import subprocess
import sys
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from auditlog.models import LogEntry
from django.core.management import CommandError, call_command
from django.db import transaction
from django.utils import timezone

from patients import match_exports, matching
from patients.exports import profile_document
from patients.facts import patient_facts, with_facts
from patients.fhir import read_bundle
from patients.matching import (
    MATCHER_VERSION,
    criteria_of,
    deciding_facts_for,
    match_patients,
    match_trials,
)
from patients.models import Match, Patient, Site, Source
from patients.profile_json import read_profile_json
from patients.services import patient_upsert
from patients.tasks import match_all_task, match_patients_task, queue_patient_matching
from tests.fakes.ctgov_server import FakeCtgovServer, load_recorded_studies, nct_id_of
from tests.patients.conftest import EXAMPLES, example
from tests.processes import PROJECT_DIR, process_env, wait_for
from tests.trials.conftest import CTGOV_DATA
from trials import services
from trials.criteria import criterion_correct, refresh_stale_criteria, trial_set_classification
from trials.eligibility.evaluate import PatientEvaluator, Prefilter
from trials.eligibility.facts import surgical_candidate
from trials.eligibility.geo import haversine_km
from trials.eligibility.vocabulary import CancerSite, Histology
from trials.models import Criterion, Trial

EXPECTATIONS: dict[str, Any] = json.loads((EXAMPLES / "expectations.json").read_text())
OPEN_TRIALS: list[str] = EXPECTATIONS["open_trials"]
PATIENTS = sorted(EXPECTATIONS["patients"])

# MATTERHORN: perioperative durvalumab + FLOT, resectable gastric/GEJ cancer (flagged for EX1).
MATTERHORN = "NCT04592913"
# Neoadjuvant camrelizumab (anti-PD-1), resectable proximal gastric cancer (flagged for EX1).
CAMRELIZUMAB = "NCT03878472"
# Sintilimab + chemoradiation before surgery for oesophageal squamous-cell carcinoma: a
# preoperative immunotherapy trial, but not a gastric one (never flagged). Its record names no
# conditions; its title says "Esophageal Cancer".
OESOPHAGEAL = "NCT03940001"
# JAB-21822 in KRAS G12C pancreatic cancer and other solid tumours: a trial for any site.
BASKET = "NCT06008288"
# A cognitive assessment after brain injury: no cancer named, so a trial for any site too.
BRAIN_INJURY = "NCT06171568"
# Every open trial the service holds is a candidate: the seven of the expectations (served
# recruiting) and the registry's own open BASKET and BRAIN_INJURY. Every patient is evaluated
# and stored against all nine: the registry's conditions never exclude on their own (a
# gastric patient is ineligible for OESOPHAGEAL on its disease criterion, not skipped).
CANDIDATES = 9
EVALUATED = {"EX1": CANDIDATES, "EX2": CANDIDATES, "EX3": CANDIDATES}
PAIRS = sum(EVALUATED.values())  # 3 patients x 9 open trials = 27
# Perioperative FLOT with trastuzumab / pertuzumab for HER2-positive resectable gastric / GEJ
# adenocarcinoma (PETRARCA).
HER2_POSITIVE = "NCT02581462"
# Neoadjuvant chemotherapy or surgery first for gastric cancer patients aged 76 or more.
ELDERLY = "NCT04677673"
# The open trials for gastric / GEJ cancer only (their conditions or title name the stomach).
GASTRIC_ONLY = {CAMRELIZUMAB, "NCT03006705", ELDERLY, HER2_POSITIVE, "NCT05052801"}
ECOG = "World Health Organization (WHO)/ECOG performance status of 0 or 1 at enrollment."
ORGAN_FUNCTION = "Adequate organ and marrow function."
LIFE_EXPECTANCY = "Must have a life expectancy of at least 24 weeks."
NEEDS_REVIEW = "not read by the engine: needs review"
NOT_EVALUATED = "not evaluated: ineligible already ("
# MATTERHORN's four US sites, with the coordinates and site statuses the registry gives
# (the recorded copy has neither): the New York site no longer recruits.
MATTERHORN_SITES = {
    "City of Hope Comprehensive Cancer Center": (34.1295, -117.9717, "RECRUITING"),
    "Emory University Hospital / Winship Cancer Institute": (33.7925, -84.3220, "RECRUITING"),
    "Memorial Sloan Kettering Cancer Center": (40.7641, -73.9568, "ACTIVE_NOT_RECRUITING"),
    "Fred Hutch / University of Washington Cancer Consortium": (47.6275, -122.3301, "RECRUITING"),
}
# What the matcher stores of a pair, apart from when it did it.
MATCH_FIELDS = (
    "verdict",
    "score",
    "flagged",
    "flag_reason",
    "distance_km",
    "outcomes",
    "unknown_facts",
    "engine_version",
    "patient_facts_at",
    "trial_inputs_at",
    "evaluated_on",
)


# --- the registry, served over HTTP ------------------------------------------------------------


def recorded_registry() -> list[dict[str, Any]]:
    """The recorded v2 records, every trial of ``open_trials`` recruiting."""
    studies = copy.deepcopy(load_recorded_studies(CTGOV_DATA / "v2"))
    for study in studies:
        if nct_id_of(study) in OPEN_TRIALS:
            study["protocolSection"].setdefault("statusModule", {})["overallStatus"] = "RECRUITING"
    return studies


def newest_posted(studies: list[dict[str, Any]]) -> datetime.date:
    dates = [
        study["protocolSection"]
        .get("statusModule", {})
        .get("lastUpdatePostDateStruct", {})
        .get("date")
        for study in studies
    ]
    return max(datetime.date.fromisoformat(date) for date in dates if date and len(date) == 10)


def served(server: FakeCtgovServer, nct_id: str) -> dict[str, Any]:
    study = server.get_study(nct_id)
    assert study is not None
    return copy.deepcopy(study)


def republished(server: FakeCtgovServer, study: dict[str, Any]) -> None:
    """The registry's next version of a record: posted after everything synced so far."""
    posted = newest_posted(server.studies) + datetime.timedelta(days=1)
    study["protocolSection"]["statusModule"]["lastUpdatePostDateStruct"] = {
        "date": posted.isoformat(),
        "type": "ACTUAL",
    }
    server.upsert_study(study)


def with_site_coordinates(study: dict[str, Any]) -> dict[str, Any]:
    for location in study["protocolSection"]["contactsLocationsModule"]["locations"]:
        latitude, longitude, status = MATTERHORN_SITES[location["facility"]]
        location["geoPoint"] = {"lat": latitude, "lon": longitude}
        location["status"] = status
    return study


@pytest.fixture
def registry(settings: Any) -> Iterator[FakeCtgovServer]:
    """The fake ClinicalTrials.gov, which the sync reaches over HTTP through the settings."""
    with FakeCtgovServer(recorded_registry()) as server:
        settings.CTGOV_BASE_URL = server.base_url
        settings.CTGOV_SYNC_QUERY = ""
        settings.CTGOV_PAGE_SIZE = 10
        settings.CTGOV_MIN_REQUEST_INTERVAL = 0
        settings.CTGOV_MAX_ATTEMPTS = 3
        yield server


# --- commands and data -------------------------------------------------------------------------


def run(command: str, *args: str) -> str:
    out = io.StringIO()
    call_command(command, *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def sync_trials(*args: str) -> str:
    return run("sync_trials", "--no-progress", *args)


def import_patients(*names: str, options: tuple[str, ...] = ()) -> str:
    paths = [str(EXAMPLES / f"{name}.json") for name in names]
    return run("import_patients", "--no-progress", *options, *paths)


@pytest.fixture
def matched(registry: FakeCtgovServer) -> FakeCtgovServer:
    """The example patients imported, the registry synced, every match computed."""
    import_patients(*PATIENTS)
    sync_trials("--full")
    run("match", "--no-progress")
    return registry


@pytest.fixture(autouse=True)
def fresh_rules_cache() -> Iterator[None]:
    """Each test compiles the trials of its own database (primary keys may be reused)."""
    matching.rules_cache().clear()
    yield
    matching.rules_cache().clear()


def patient(external_id: str) -> Patient:
    return with_facts(Patient.objects.filter(external_id=external_id)).get()


def trial(nct_id: str) -> Trial:
    return Trial.objects.get(nct_id=nct_id)


def match(external_id: str, nct_id: str) -> Match:
    return Match.objects.select_related("patient", "trial").get(
        patient__external_id=external_id, trial__nct_id=nct_id
    )


def flagged(external_id: str) -> set[str]:
    return set(
        Match.objects.current()
        .filter(patient__external_id=external_id, flagged=True)
        .values_list("trial__nct_id", flat=True)
    )


def written(**filters: Any) -> dict[tuple[str, str], tuple[int, datetime.datetime]]:
    """Each stored pair with its row and when it was written, to tell what a run rewrote."""
    rows = Match.objects.filter(**filters).values_list(
        "patient__external_id", "trial__nct_id", "pk", "evaluated_at"
    )
    return {(patient, nct_id): (pk, at) for patient, nct_id, pk, at in rows}


def contents(queryset: Any = None) -> dict[tuple[str, str], tuple[Any, ...]]:
    """What the stored matches say, whoever computed them and when."""
    rows = (queryset if queryset is not None else Match.objects.all()).values_list(
        "patient__external_id", "trial__nct_id", *MATCH_FIELDS
    )
    return {(row[0], row[1]): row[2:] for row in rows}


def criteria(nct_id: str) -> list[Criterion]:
    return list(Criterion.objects.filter(trial__nct_id=nct_id).order_by("position"))


def listed_criterion(stored: Match, text: str) -> dict[str, Any]:
    """The criterion with this text as ``criteria_of`` lists it for this match."""
    listed = criteria_of(stored, criteria(stored.trial.nct_id))
    return next(item for item in listed if item["text"] == text)


def import_profile(document: dict[str, Any]) -> Patient:
    result = patient_upsert(read_profile_json(document, origin="test.json"), source=Source.JSON)
    assert result.patient is not None, result.problems
    return result.patient


# --- 1. the expectations: the key acceptance test -----------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("name", PATIENTS)
def test_example_patients_match_as_expected(matched: FakeCtgovServer, name: str) -> None:
    expected = EXPECTATIONS["patients"][name]
    assert set(expected["outcomes"]) <= set(OPEN_TRIALS)  # served recruiting, so evaluated
    assert set(Trial.objects.open_to_enrolment().values_list("nct_id", flat=True)) >= set(
        OPEN_TRIALS
    )
    loaded = patient(name)

    assert surgical_candidate(patient_facts(loaded)).value is expected["surgical_candidate"]
    assert profile_document(loaded)["surgical_candidate"] is expected["surgical_candidate"]

    matches = {
        m.trial.nct_id: m
        for m in Match.objects.current().filter(patient=loaded).select_related("trial")
    }
    outcomes = {
        nct_id: "ineligible" if matches[nct_id].verdict == "ineligible" else "not_ineligible"
        for nct_id in expected["outcomes"]
        if nct_id in matches
    }
    assert outcomes == expected["outcomes"]
    if expected["flagged"] is not None:
        flags = sorted(
            nct_id for nct_id, m in matches.items() if m.flagged and nct_id in OPEN_TRIALS
        )
        assert flags == sorted(expected["flagged"])


# --- 2. what is stored ----------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.usefixtures("matched")
def test_stored_matches_hold_verdict_score_flag_and_every_outcome() -> None:
    stored = list(Match.objects.select_related("patient", "trial"))
    assert len(stored) == PAIRS  # every patient against every open trial

    today = timezone.localdate()
    for item in stored:
        assert item.verdict in {"eligible", "possible", "ineligible"}
        assert 0 <= item.score <= 100
        assert item.flagged is (item.flag_reason != "")
        if item.flagged:
            assert item.verdict != "ineligible"
            assert item.trial.gastric_preop_immunotherapy
            assert item.trial.is_open
        assert (item.engine_version, item.evaluated_on) == (MATCHER_VERSION, today)
        for position, outcome, reason, missing in item.outcomes:
            assert isinstance(position, int)
            assert outcome in {"met", "not_met", "unknown"}
            assert isinstance(reason, str)
            assert reason
            assert isinstance(missing, list)

        listed = criteria_of(item, criteria(item.trial.nct_id))
        # The verdict and the score follow from the criteria's outcomes.
        satisfied = [
            (c["type"], c["outcome"]) in {("inclusion", "met"), ("exclusion", "not_met")}
            for c in listed
        ]
        disqualified = any(
            (c["type"], c["outcome"]) in {("inclusion", "not_met"), ("exclusion", "met")}
            for c in listed
        )
        screened = any(c["reason"].startswith(NOT_EVALUATED) for c in listed)
        if screened:
            # Ineligible on the registry's age / sex or on the disease criteria, read first:
            # the rest is left unread and the pair scores 0 (its age criterion may be met).
            assert (item.verdict, item.score, disqualified) == ("ineligible", 0.0, True)
        else:
            assert item.score == round(100 * sum(satisfied) / len(listed), 1)
        if disqualified:
            assert item.verdict == "ineligible"
        else:
            assert item.verdict == ("eligible" if all(satisfied) else "possible")
            assert set(item.unknown_facts) == {
                fact for c in listed if c["outcome"] == "unknown" for fact in c["missing"]
            }


@pytest.mark.django_db
@pytest.mark.usefixtures("matched")
def test_criteria_of_lists_every_criterion_with_its_outcome_and_reason() -> None:
    stored = match("EX1", MATTERHORN)
    rows = criteria(MATTERHORN)

    listed = criteria_of(stored, rows)

    assert [c["text"] for c in listed] == [row.text for row in rows if not row.header]
    for item in listed:
        assert {"type", "text", "category", "outcome", "reason"} <= item.keys()
        assert item["type"] in {"inclusion", "exclusion"}
        assert item["outcome"] in {"met", "not_met", "unknown"}
        assert item["reason"]
    by_text = {c["text"]: c for c in listed}
    ecog = by_text[ECOG]
    assert (ecog["type"], ecog["category"], ecog["outcome"]) == (
        "inclusion",
        "performance_status",
        "met",
    )
    assert "ECOG 0" in ecog["reason"]
    unread = by_text[LIFE_EXPECTANCY]
    assert (unread["outcome"], unread["reason"], unread["parsed"]) == (
        "unknown",
        NEEDS_REVIEW,
        False,
    )
    # A quality left undefined: read as floors no definition goes below, for review.
    organ = by_text[ORGAN_FUNCTION]
    assert organ["outcome"] == "unknown"
    assert '"undefined: adequate organ and marrow function"' in organ["reason"]
    assert stored.verdict == "possible"
    assert "prior anticancer therapy" in stored.unknown_facts


@pytest.mark.django_db
def test_distance_is_to_the_nearest_open_site_in_km(registry: FakeCtgovServer) -> None:
    registry.upsert_study(with_site_coordinates(served(registry, MATTERHORN)))
    import_patients("EX1")  # postal code 10021, New York
    seattle = import_profile(
        {
            "external_id": "SEA1",
            "sex": "male",
            "birth_date": "1960-01-01",
            "postal_code": "98109",
            "country": "US",
            "primary_cancer": {"site": "stomach", "histology": "adenocarcinoma"},
        }
    )
    import_profile({"external_id": "NOWHERE", "sex": "female", "birth_date": "1960-01-01"})
    sync_trials("--full")

    new_york = patient("EX1")
    assert new_york.location_precision == "postal_code"

    def km(place: Patient, facility: str) -> float:
        latitude, longitude, _ = MATTERHORN_SITES[facility]
        assert place.latitude is not None
        assert place.longitude is not None
        return haversine_km(place.latitude, place.longitude, latitude, longitude)

    open_sites = [
        name for name, (_, _, status) in MATTERHORN_SITES.items() if status == "RECRUITING"
    ]
    nearest_open = min(km(new_york, name) for name in open_sites)
    closed_site = km(new_york, "Memorial Sloan Kettering Cancer Center")
    assert closed_site < 10 < nearest_open  # the closest site does not recruit: it is skipped
    assert match("EX1", MATTERHORN).distance_km == pytest.approx(nearest_open, abs=0.1)
    in_seattle = match("SEA1", MATTERHORN).distance_km
    assert in_seattle is not None
    assert in_seattle < 10
    assert in_seattle == pytest.approx(
        km(seattle, "Fred Hutch / University of Washington Cancer Consortium"), abs=0.1
    )
    assert match("NOWHERE", MATTERHORN).distance_km is None  # no address: no distance
    assert match("EX1", CAMRELIZUMAB).distance_km is None  # no site coordinates: no distance


# --- 3. currency ------------------------------------------------------------------------------


def ecog_changed(document: dict[str, Any], value: int) -> dict[str, Any]:
    changed = copy.deepcopy(document)
    for entry in changed["entry"]:
        resource = entry["resource"]
        if "valueInteger" in resource and "ecog" in json.dumps(resource.get("code", {})).lower():
            resource["valueInteger"] = value
            return changed
    raise LookupError("no ECOG observation")


@pytest.mark.django_db
@pytest.mark.usefixtures("matched")
def test_changed_patient_facts_make_only_that_patients_matches_stale() -> None:
    assert not Match.objects.stale().exists()
    before = written()

    result = patient_upsert(
        read_bundle(ecog_changed(example("EX1"), 2), origin="EX1.json"), source=Source.FHIR
    )

    assert result.status == "updated"
    assert result.patient is not None
    assert not Match.objects.current().filter(patient__external_id="EX1").exists()
    assert set(Match.objects.stale().values_list("patient__external_id", flat=True)) == {"EX1"}

    run = match_patients([result.patient.pk])

    assert (run.patients, run.trials) == (1, CANDIDATES)
    assert not Match.objects.stale().exists()
    after = written()
    assert after.keys() == before.keys()
    for pair, row in after.items():
        assert (row == before[pair]) is (pair[0] != "EX1"), pair
    ex1 = match("EX1", MATTERHORN)
    assert (ex1.verdict, ex1.flagged) == ("ineligible", False)  # ECOG 2: MATTERHORN wants 0-1
    assert "ECOG 2" in listed_criterion(ex1, ECOG)["reason"]


@pytest.mark.django_db
@pytest.mark.usefixtures("matched")
def test_an_edit_of_a_matched_patient_field_makes_the_matches_stale() -> None:
    ex3 = patient("EX3")
    ex3.prior_anticancer_therapy = False
    ex3.facts_changed_at = timezone.now()  # what the admin does when a matched field changes
    ex3.save()

    assert set(Match.objects.stale().values_list("patient__external_id", flat=True)) == {"EX3"}
    match_patients([ex3.pk])
    assert not Match.objects.stale().exists()
    assert "prior anticancer therapy" not in match("EX3", MATTERHORN).unknown_facts


@pytest.mark.django_db
@pytest.mark.usefixtures("matched")
def test_a_corrected_criterion_makes_only_that_trials_matches_stale() -> None:
    before = written()
    corrected = Criterion.objects.get(trial__nct_id=MATTERHORN, text=ORGAN_FUNCTION)

    criterion_correct(
        corrected,
        category="lab",
        constraints=[
            {"type": "lab", "analyte": "anc", "op": ">=", "value": 1.5},
            {"type": "lab", "analyte": "platelets", "op": ">=", "value": 100},
        ],
    )

    stale = Match.objects.stale().values_list("trial__nct_id", flat=True)
    assert set(stale) == {MATTERHORN}
    assert Match.objects.stale().count() == 3  # every patient's match of it

    run = match_trials([trial(MATTERHORN).pk])

    assert (run.patients, run.trials) == (3, 1)
    assert not Match.objects.stale().exists()
    after = written()
    assert after.keys() == before.keys()
    for pair, row in after.items():
        assert (row == before[pair]) is (pair[1] != MATTERHORN), pair
    organ = listed_criterion(match("EX1", MATTERHORN), ORGAN_FUNCTION)
    assert organ["outcome"] == "met"  # read now: EX1's counts are above the thresholds
    assert organ["parsed"] is True
    assert not trial(MATTERHORN).needs_evaluation


@pytest.mark.django_db
@pytest.mark.usefixtures("matched")
def test_a_reclassified_trial_is_rematched_and_loses_its_flags() -> None:
    assert flagged("EX1") == {MATTERHORN, CAMRELIZUMAB}
    before = written()

    trial_set_classification(
        trial(CAMRELIZUMAB), override=False, note="not given before surgery after all"
    )

    assert set(Match.objects.stale().values_list("trial__nct_id", flat=True)) == {CAMRELIZUMAB}
    match_trials([trial(CAMRELIZUMAB).pk])
    assert not Match.objects.stale().exists()
    assert flagged("EX1") == {MATTERHORN}
    after = written()
    for pair, row in after.items():
        assert (row == before[pair]) is (pair[1] != CAMRELIZUMAB), pair


# --- 4. trials that close -----------------------------------------------------------------------


@pytest.mark.django_db
def test_a_trial_that_closes_loses_its_matches_on_the_next_match_run(
    matched: FakeCtgovServer,
) -> None:
    assert flagged("EX1") == {MATTERHORN, CAMRELIZUMAB}
    closed = served(matched, MATTERHORN)
    closed["protocolSection"]["statusModule"]["overallStatus"] = "ACTIVE_NOT_RECRUITING"
    republished(matched, closed)

    # The sync alone (as the worker's sync task runs it): the matches are left, not current.
    sync = services.sync_trials()
    refresh_stale_criteria()
    assert (sync.updated, trial(MATTERHORN).overall_status) == (1, "ACTIVE_NOT_RECRUITING")
    assert set(Match.objects.stale().values_list("trial__nct_id", flat=True)) == {MATTERHORN}
    assert flagged("EX1") == {CAMRELIZUMAB}

    output = run("match", "--no-progress")

    assert f"3 patient(s) x {CANDIDATES - 1} open trial(s)" in output
    assert not Match.objects.filter(trial__nct_id=MATTERHORN).exists()
    assert not Match.objects.stale().exists()
    assert flagged("EX1") == {CAMRELIZUMAB}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("status", "still_open"),
    [
        ("COMPLETED", False),
        ("SUSPENDED", False),
        ("NOT_YET_RECRUITING", True),
        (None, False),  # gone from the registry
    ],
)
def test_sync_command_recomputes_the_matches_of_changed_trials(
    matched: FakeCtgovServer, status: str | None, still_open: bool
) -> None:
    before = written()
    if status is None:
        matched.remove_study(MATTERHORN)
    else:
        changed = served(matched, MATTERHORN)
        changed["protocolSection"]["statusModule"]["overallStatus"] = status
        republished(matched, changed)

    output = sync_trials("--full")

    assert re.search(r"Matches recomputed: 3 patient\(s\) x \d open trial\(s\)", output)
    assert not Match.objects.stale().exists()
    assert Match.objects.filter(trial__nct_id=MATTERHORN).exists() is still_open
    assert (MATTERHORN in flagged("EX1")) is still_open
    assert CAMRELIZUMAB in flagged("EX1")
    # Only the changed trial was evaluated again.
    after = written()
    for pair, row in after.items():
        assert (row == before[pair]) is (pair[1] != MATTERHORN), pair
    assert not Trial.objects.filter(needs_evaluation=True).exists()


@pytest.mark.django_db
def test_sync_command_without_patients_matches_nothing(registry: FakeCtgovServer) -> None:
    output = sync_trials("--full")

    assert "Eligibility criteria read for 40 trial(s)." in output
    assert "Matches recomputed" not in output
    assert not Match.objects.exists()


# --- 5. commands ------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.usefixtures("matched")
def test_match_command_for_one_patient_rewrites_only_theirs() -> None:
    before = written()

    output = run("match", "--no-progress", "--patient", "EX2")

    assert output.startswith(f"1 patient(s) x {CANDIDATES} open trial(s): 9 evaluated, 9 stored")
    after = written()
    assert after.keys() == before.keys()
    for pair, row in after.items():
        assert (row == before[pair]) is (pair[0] != "EX2"), pair


@pytest.mark.django_db
@pytest.mark.usefixtures("matched")
def test_match_command_for_one_trial_rewrites_only_its_matches() -> None:
    before = written()

    output = run("match", "--no-progress", "--trial", MATTERHORN.lower())

    assert output.startswith("3 patient(s) x 1 open trial(s): 3 evaluated, 3 stored")
    after = written()
    for pair, row in after.items():
        assert (row == before[pair]) is (pair[1] != MATTERHORN), pair


@pytest.mark.django_db
@pytest.mark.usefixtures("matched")
def test_match_command_rewrites_every_pair_to_the_same_result() -> None:
    before, held = written(), contents()

    output = run("match", "--no-progress")

    assert output.startswith(
        f"3 patient(s) x {CANDIDATES} open trial(s): {PAIRS} evaluated, {PAIRS} stored"
    )
    assert contents() == held
    assert all(written()[pair] != row for pair, row in before.items())


@pytest.mark.django_db
@pytest.mark.usefixtures("matched")
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--patient", "NOPE"), "Unknown patient(s): NOPE."),
        (
            ("--patient", "EX1", "--patient", "ZZ9", "--patient", "AA1"),
            "Unknown patient(s): AA1, ZZ9.",
        ),
        (("--trial", "NCT00000000"), "Unknown trial(s): NCT00000000."),
    ],
)
def test_match_command_refuses_unknown_ids(args: tuple[str, ...], message: str) -> None:
    before = written()

    with pytest.raises(CommandError) as refused:
        run("match", "--no-progress", *args)

    assert str(refused.value) == message
    assert written() == before


@pytest.mark.django_db
def test_match_command_reports_unknown_ids_without_a_traceback() -> None:
    answer = subprocess.run(
        [sys.executable, "manage.py", "match", "--no-progress", "--patient", "NOPE"],
        cwd=PROJECT_DIR,
        env=process_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert answer.returncode == 1
    assert answer.stderr.strip() == "CommandError: Unknown patient(s): NOPE."
    assert "Traceback" not in answer.stderr + answer.stdout


@pytest.mark.django_db
@pytest.mark.usefixtures("matched")
def test_export_matches_json_has_one_document_per_pair() -> None:
    documents = json.loads(run("export_matches", "--format", "json"))

    pairs = [(d["patient"], d["nct_id"]) for d in documents]
    assert len(pairs) == len(set(pairs)) == Match.objects.count() == PAIRS
    stored = {
        (m.patient.external_id, m.trial.nct_id): m
        for m in Match.objects.select_related("patient", "trial")
    }
    assert set(pairs) == set(stored)
    for document in documents:
        held = stored[document["patient"], document["nct_id"]]
        assert document["verdict"] in {"eligible", "possible", "ineligible"}
        assert (
            document["verdict"],
            document["flagged"],
            document["score"],
            document["distance_km"],
        ) == (held.verdict, held.flagged, held.score, held.distance_km)
        assert document["current"] is True
        assert "_pk" not in document
        assert document["criteria"] == criteria_of(held, criteria(held.trial.nct_id))
        for item in document["criteria"]:
            assert {"type", "text", "category", "outcome", "reason"} <= item.keys()
    ex1 = next(d for d in documents if (d["patient"], d["nct_id"]) == ("EX1", MATTERHORN))
    assert (ex1["flagged"], ex1["verdict"]) == (True, "possible")
    assert ex1["flag_reason"].startswith("Preoperative immunotherapy trial")


@pytest.mark.django_db
@pytest.mark.usefixtures("matched")
def test_export_matches_csv_has_a_header_and_a_row_per_pair() -> None:
    text = run("export_matches", "--format", "csv")

    rows = list(csv.DictReader(io.StringIO(text)))
    assert text.splitlines()[0].split(",") == list(match_exports.CSV_COLUMNS)
    assert len(rows) == Match.objects.count() == PAIRS
    ex1 = next(r for r in rows if (r["patient"], r["nct_id"]) == ("EX1", MATTERHORN))
    held = match("EX1", MATTERHORN)
    assert (ex1["verdict"], ex1["flagged"], float(ex1["score"])) == ("possible", "True", held.score)
    assert ex1["criteria_unknown"] == str(
        sum(c["outcome"] == "unknown" for c in criteria_of(held, criteria(MATTERHORN)))
    )
    ex2 = next(r for r in rows if (r["patient"], r["nct_id"]) == ("EX2", MATTERHORN))
    assert ex2["verdict"] == "ineligible"
    assert ex2["disqualifying"]  # the criteria that exclude, with their reasons


@pytest.mark.django_db
@pytest.mark.usefixtures("matched")
def test_export_matches_records_access_to_each_patient_once() -> None:
    accesses = LogEntry.objects.filter(action=LogEntry.Action.ACCESS)
    assert not accesses.exists()

    run("export_matches", "--format", "json")

    assert accesses.count() == 3  # one per patient, not one per match
    assert set(accesses.values_list("object_id", flat=True)) == set(
        Patient.objects.values_list("pk", flat=True)
    )
    assert {e.additional_data["purpose"] for e in accesses.all()} == {"export_matches command"}

    run("export_matches", "--format", "csv", "--patient", "EX1")

    assert accesses.count() == 4
    assert accesses.filter(object_id=patient("EX1").pk).count() == 2


@pytest.mark.django_db
@pytest.mark.usefixtures("matched")
def test_export_matches_to_a_file(tmp_path: Path) -> None:
    target = tmp_path / "matches.json"
    err = io.StringIO()

    call_command(
        "export_matches", "--flagged", "--output", str(target), stdout=io.StringIO(), stderr=err
    )

    documents = json.loads(target.read_text())
    # EX3 (creatinine clearance 19 mL/min) has not the adequate organ function MATTERHORN asks.
    assert {(d["patient"], d["nct_id"]) for d in documents} == {
        ("EX1", MATTERHORN),
        ("EX1", CAMRELIZUMAB),
    }
    assert f"Exported 2 match(es) to {target}." in err.getvalue()


# --- 6. Celery, with a real worker ------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_match_all_task_fans_out_in_chunks_to_the_in_process_result(
    matched: FakeCtgovServer, monkeypatch: pytest.MonkeyPatch, default_queue_worker: None
) -> None:
    in_process = contents()
    assert len(in_process) == PAIRS
    Match.objects.all().delete()
    monkeypatch.setattr(matching, "PATIENT_CHUNK", 2)

    chunks = match_all_task.delay().get(timeout=60)

    assert chunks == 2  # three patients, two at a time
    wait_for(lambda: Match.objects.count() == PAIRS, timeout=60, what="every chunk's matches")
    assert contents() == in_process
    assert not Match.objects.stale().exists()


@pytest.mark.django_db(transaction=True)
def test_match_all_task_removes_matches_of_closed_trials(
    matched: FakeCtgovServer, default_queue_worker: None
) -> None:
    started = timezone.now()
    Trial.objects.filter(nct_id=MATTERHORN).update(
        overall_status="COMPLETED", matching_inputs_at=started
    )

    match_all_task.delay().get(timeout=60)

    wait_for(
        lambda: not Match.objects.filter(evaluated_at__lt=started).exists(),
        timeout=60,
        what="every match recomputed",
    )
    assert not Match.objects.filter(trial__nct_id=MATTERHORN).exists()
    assert Match.objects.count() == PAIRS - 3
    assert not Match.objects.stale().exists()


@pytest.mark.django_db(transaction=True)
def test_match_patients_task_rewrites_one_patients_matches(
    matched: FakeCtgovServer, celery_worker: str
) -> None:
    before = written()

    outcome = match_patients_task.apply_async(args=([patient("EX1").pk],), queue=celery_worker).get(
        timeout=60
    )

    assert outcome == {"patients": 1, "evaluated": EVALUATED["EX1"], "flagged": 2}
    after = written()
    for pair, row in after.items():
        assert (row == before[pair]) is (pair[0] != "EX1"), pair


@pytest.mark.django_db(transaction=True)
def test_a_patient_edit_queues_their_matching_on_commit(
    matched: FakeCtgovServer, default_queue_worker: None
) -> None:
    ex1 = patient("EX1")
    with transaction.atomic():
        Patient.objects.filter(pk=ex1.pk).update(
            prior_anticancer_therapy=False, facts_changed_at=timezone.now()
        )
        queue_patient_matching([ex1.pk])
        assert Match.objects.stale().count() == EVALUATED["EX1"]

    wait_for(
        lambda: not Match.objects.stale().exists(), timeout=60, what="EX1's matches recomputed"
    )
    assert "prior anticancer therapy" not in match("EX1", MATTERHORN).unknown_facts


# --- 7. import_patients matches what it imported -------------------------------------------


@pytest.mark.django_db
def test_import_patients_computes_the_imported_patients_matches(
    registry: FakeCtgovServer,
) -> None:
    sync_trials("--full")

    skipped = import_patients("EX2", options=("--no-match",))

    assert "Matches computed" not in skipped
    assert "1 created" in skipped
    assert not Match.objects.exists()

    output = import_patients("EX1", "EX3")

    assert re.search(
        rf"^Matches computed: 2 patient\(s\) x {CANDIDATES} open trial\(s\): 18 evaluated, "
        r"18 stored, 2 flagged in [\d.]+ s\.$",
        output,
        re.MULTILINE,
    )
    assert set(Match.objects.values_list("patient__external_id", flat=True)) == {"EX1", "EX3"}
    assert not Match.objects.stale().exists()

    again = import_patients("EX1")  # unchanged: nothing to recompute

    assert "Matches computed" not in again
    assert "1 unchanged" in again


# --- 8. what would decide the most trials ----------------------------------------------------


@pytest.mark.django_db
@pytest.mark.usefixtures("matched")
def test_deciding_facts_rank_unknown_facts_by_the_possible_trials_they_decide() -> None:
    ex1 = patient("EX1")
    possible = {
        m.trial.nct_id: set(m.unknown_facts)
        for m in Match.objects.filter(patient=ex1, verdict="possible").select_related("trial")
    }
    # BASKET used to exclude EX1 on a reading with words it did not account for, which now
    # never decides: "... solid tumors (excluding NSCLC and CRC)" (once read as asking for
    # lung or colorectal cancer). HER2_POSITIVE's HER2 line ("... HER-2 3+ ... by FISH, SISH
    # or CISH") is read in full and excludes the HER2-negative EX1.
    assert set(possible) == {MATTERHORN, CAMRELIZUMAB, BASKET, BRAIN_INJURY}
    assert not possible[BRAIN_INJURY]  # none of its criteria read: no fact would decide it
    assert not possible[BASKET]  # its readings are incomplete: no one fact would decide it

    ranked = deciding_facts_for(ex1)

    counts = [len(item.trials) for item in ranked]
    assert counts == sorted(counts, reverse=True)
    for item in ranked:
        assert set(item.trials) == {nct for nct, facts in possible.items() if item.fact in facts}
    assert {item.fact for item in ranked} == set().union(*possible.values())
    top = [item.fact for item in ranked if len(item.trials) == 2]
    # Organ transplant decides MATTERHORN and CAMRELIZUMAB; none decides three.
    assert top == ["organ transplant"]
    assert top == sorted(possible[MATTERHORN] & possible[CAMRELIZUMAB])
    decides = {item.fact: item.trials for item in ranked}
    assert decides["prior anticancer therapy"] == (MATTERHORN,)
    assert ranked[0].describe() == f"{ranked[0].fact}: decides 2 trials"
    assert ranked[-1].describe() == f"{ranked[-1].fact}: decides 1 trial"

    # Answering the question removes it; a stale match decides nothing until recomputed.
    Patient.objects.filter(pk=ex1.pk).update(
        prior_anticancer_therapy=False, facts_changed_at=timezone.now()
    )
    assert deciding_facts_for(ex1) == []
    match_patients([ex1.pk])
    assert "prior anticancer therapy" not in {item.fact for item in deciding_facts_for(ex1)}


@pytest.mark.django_db
@pytest.mark.usefixtures("matched")
def test_deciding_facts_leave_out_ineligible_trials() -> None:
    ex2 = patient("EX2")  # ineligible for both preoperative trials, possible for others
    possible = Match.objects.filter(patient=ex2, verdict="possible").select_related("trial")
    decided = {nct for item in deciding_facts_for(ex2) for nct in item.trials}

    assert decided == {m.trial.nct_id for m in possible if m.unknown_facts}
    assert not decided & {MATTERHORN, CAMRELIZUMAB}


@pytest.mark.django_db
def test_stored_text_survives_tabs_newlines_and_backslashes() -> None:
    """PostgreSQL stores matches with COPY (text format): awkward characters round-trip."""
    from patients.matching import COLUMNS, _store

    patient = Patient.objects.create(site=Site.objects.create(code="copy", name="Copy"))
    trial = Trial.objects.create(nct_id="NCT00000001", raw={}, content_hash="x")
    awkward = 'tab\there, line\nbreak, back\\slash, "quoted", \\N, ≥ 1.5 x 10^9/L'
    now = timezone.now()
    row = {
        "patient_id": patient.pk,
        "trial_id": trial.pk,
        "verdict": "possible",
        "score": 12.5,
        "flagged": True,
        "flag_reason": awkward,
        "distance_km": None,
        "outcomes": [(0, "unknown", awkward, ("ECOG\tperformance",))],
        "unknown_facts": (awkward,),
        "engine_version": "v",
        "patient_facts_at": now,
        "trial_inputs_at": now,
        "evaluated_at": now,
        "evaluated_on": now.date(),
    }

    _store([tuple(row[name] for name in COLUMNS)])

    stored = Match.objects.get(patient=patient)
    assert stored.flag_reason == awkward
    assert stored.outcomes == [[0, "unknown", awkward, ["ECOG\tperformance"]]]
    assert stored.unknown_facts == [awkward]
    assert stored.distance_km is None
    assert stored.evaluated_at == now


def test_recompiling_trials_frees_the_garbage_an_earlier_freeze_kept() -> None:
    """``gc.freeze`` takes cyclic garbage not yet collected along with the live objects; the
    next recompile must hand it back to the collector (a worker recompiles after each sync)."""

    class Node:
        me: Any

    gc.disable()
    try:
        node = Node()
        node.me = node  # a cycle: only the cyclic collector frees it
        ref = weakref.ref(node)
        del node
        gc.freeze()  # an earlier recompile, while the cycle was still waiting
        gc.collect()
        assert ref() is not None  # frozen: out of the collector's sight
        matching._freeze_long_lived()
        assert ref() is None
    finally:
        gc.unfreeze()
        gc.enable()


# --- 9. every open trial for every patient, the disease criteria first where the site differs --

ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
SQUAMOUS = {
    "coding": [
        {
            "system": "http://snomed.info/sct",
            "code": "28899001",
            "display": "Squamous cell carcinoma",
        },
        {
            "system": "http://terminology.hl7.org/CodeSystem/icd-o-3",
            "code": "8070/3",
            "display": "Squamous cell carcinoma, NOS",
        },
    ],
    "text": "Squamous cell carcinoma",
}


def with_primary(
    document: dict[str, Any],
    mrn: str,
    code: str,
    display: str,
    histology: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An example bundle as another patient, whose primary cancer has this ICD-10 code."""
    changed = copy.deepcopy(document)
    for entry in changed["entry"]:
        resource = entry["resource"]
        if resource["resourceType"] == "Patient":
            resource["identifier"][0]["value"] = mrn
        elif "primary-cancer-condition" in json.dumps(resource.get("meta", {})):
            resource["code"] = {
                "coding": [{"system": ICD10, "code": code, "display": display}],
                "text": display,
            }
            if histology is not None:
                resource["extension"][0]["valueCodeableConcept"] = histology
    return changed


def import_bundle(document: dict[str, Any]) -> Patient:
    result = patient_upsert(read_bundle(document, origin="test.json"), source=Source.FHIR)
    assert result.patient is not None, result.problems
    return result.patient


def evaluated(external_id: str) -> set[str]:
    """The trials a patient has a stored match with: those evaluated for them."""
    return set(
        Match.objects.filter(patient__external_id=external_id).values_list(
            "trial__nct_id", flat=True
        )
    )


def open_trials() -> set[str]:
    held = set(Trial.objects.open_to_enrolment().values_list("nct_id", flat=True))
    assert len(held) == CANDIDATES
    return held


def evaluator_for(external_id: str, nct_id: str) -> tuple[PatientEvaluator, Any]:
    """The patient's evaluator today, and the trial's compiled rules."""
    rules = {rules.nct_id: rules for rules in matching.rules_cache().rules()}
    evaluator = PatientEvaluator(patient_facts(patient(external_id)), timezone.localdate())
    return evaluator, rules[nct_id]


def prefilter(external_id: str, nct_id: str) -> Prefilter:
    evaluator, rules = evaluator_for(external_id, nct_id)
    return evaluator.prefilter(rules)


def site_mismatch(external_id: str, nct_id: str) -> bool:
    """Is the patient's site outside those the trial's registry conditions name?"""
    evaluator, rules = evaluator_for(external_id, nct_id)
    return evaluator.site_mismatch(rules)


DISQUALIFYING = {("inclusion", "not_met"), ("exclusion", "met")}


def states(row: Criterion, *types: str) -> bool:
    return any(constraint.get("type") in types for constraint in row.effective_constraints)


def decided_on_disease(stored: Match, screen: str | None = None) -> dict[str, Any]:
    """The trial's disease criterion (an inclusion naming the primary site) that made this
    pair ineligible: it and the age / sex criteria are evaluated, every other criterion reads
    "not evaluated: ineligible already (primary site: <its reason>)" (or ``screen``, when the
    registry's age / sex limits decided first)."""
    pairs = [
        (row, item) for row in criteria(stored.trial.nct_id) for item in criteria_of(stored, [row])
    ]
    listed = [item for _, item in pairs]
    assert (stored.verdict, stored.flagged) == ("ineligible", False)
    disease = [
        item
        for row, item in pairs
        if row.kind == "inclusion" and states(row, "primary_site") and item["outcome"] == "not_met"
    ]
    assert disease, stored
    skipped = f"{NOT_EVALUATED}{screen or 'primary site: ' + disease[0]['reason']})"
    for row, item in pairs:
        if (item["type"], item["outcome"]) in DISQUALIFYING:
            assert item in disease or states(row, "age", "sex"), item
        elif not (
            states(row, "age", "sex") or (row.kind == "inclusion" and states(row, "primary_site"))
        ):
            assert item["reason"] in (skipped, NEEDS_REVIEW), item
    assert any(item["reason"] == skipped for item in listed)
    return disease[0]


def evaluated_in_full(stored: Match) -> bool:
    listed = criteria_of(stored, criteria(stored.trial.nct_id))
    return not any(item["reason"].startswith(NOT_EVALUATED) for item in listed)


OESOPHAGEAL_DISEASE = "Histologically or cytologically confirmed esophageal squamous carcinoma"


@pytest.mark.django_db
@pytest.mark.usefixtures("matched")
def test_an_oesophageal_squamous_cell_patient_is_matched_to_the_oesophageal_trial() -> None:
    oesophageal = import_bundle(
        with_primary(
            example("EX1"),
            "OES1",
            "C15.4",
            "Malignant neoplasm of middle third of esophagus",
            SQUAMOUS,
        )
    )
    facts = patient_facts(patient("OES1"))
    assert (facts.primary_site, facts.histology) == (CancerSite.ESOPHAGUS, Histology.SQUAMOUS)

    run = match_patients([oesophageal.pk])

    # Every open trial is evaluated and stored, the gastric-only ones too.
    assert evaluated("OES1") == open_trials()
    assert (run.trials, run.evaluated, run.stored) == (CANDIDATES, CANDIDATES, CANDIDATES)
    assert prefilter("OES1", CAMRELIZUMAB) == Prefilter(True)
    assert {nct_id for nct_id in open_trials() if site_mismatch("OES1", nct_id)} == GASTRIC_ONLY
    # Their own disease criteria (gastric / GEJ cancer) are read first, and exclude.
    for nct_id in GASTRIC_ONLY - {ELDERLY}:
        disease = decided_on_disease(match("OES1", nct_id))
        assert disease["reason"].startswith("primary esophagus, not stomach"), nct_id
    assert decided_on_disease(match("OES1", CAMRELIZUMAB))["reason"] == (
        "primary esophagus, not stomach"
    )
    # ELDERLY's registry age limit (76) decides before its disease criterion, which is read
    # all the same (and excludes too).
    elderly = decided_on_disease(match("OES1", ELDERLY), screen="age 64 < 76")
    assert elderly["reason"].startswith("primary esophagus, not stomach or gej")

    stored = match("OES1", OESOPHAGEAL)
    assert listed_criterion(stored, OESOPHAGEAL_DISEASE)["outcome"] == "met"
    assert stored.verdict != "ineligible"
    assert evaluated_in_full(stored)
    # A preoperative immunotherapy trial, but not the gastric program: never flagged.
    assert not trial(OESOPHAGEAL).gastric_preop_immunotherapy
    assert not stored.flagged
    # MATTERHORN names "gastrointestinal neoplasms" (any site): evaluated in full, and its
    # criteria (gastric or GEJ adenocarcinoma) exclude the patient.
    matterhorn = match("OES1", MATTERHORN)
    assert matterhorn.verdict == "ineligible"
    assert evaluated_in_full(matterhorn)
    assert not Match.objects.filter(patient=oesophageal, flagged=True).exists()


@pytest.mark.django_db
@pytest.mark.usefixtures("matched")
def test_gastric_patients_are_ineligible_for_the_oesophageal_trial_on_its_disease_criterion() -> (
    None
):
    for name in ("EX1", "EX3"):  # C16.9, C16.2: stomach
        assert patient_facts(patient(name)).primary_site is CancerSite.STOMACH
        assert evaluated(name) == open_trials()
        assert len(evaluated(name)) == EVALUATED[name]
        assert prefilter(name, OESOPHAGEAL).passed
        assert site_mismatch(name, OESOPHAGEAL)
        assert not any(site_mismatch(name, nct_id) for nct_id in open_trials() - {OESOPHAGEAL})
        stored = match(name, OESOPHAGEAL)
        disease = decided_on_disease(stored)
        assert disease["text"] == OESOPHAGEAL_DISEASE
        assert disease["reason"] == "primary stomach, not esophagus; adenocarcinoma, not squamous"
        assert listed_criterion(stored, "ECOG PS is 0-1")["reason"] == (
            f"{NOT_EVALUATED}primary site: {disease['reason']})"
        )


@pytest.mark.django_db
@pytest.mark.usefixtures("matched")
def test_a_junction_patient_is_matched_to_gastric_and_oesophageal_trials() -> None:
    assert patient_facts(patient("EX2")).primary_site is CancerSite.GEJ  # C16.0: cardia / GEJ

    assert evaluated("EX2") == open_trials()
    assert {OESOPHAGEAL, *GASTRIC_ONLY} <= evaluated("EX2")
    assert prefilter("EX2", OESOPHAGEAL).passed
    assert prefilter("EX2", CAMRELIZUMAB).passed
    # A junction tumour fits gastric and oesophageal trials: no site mismatch, each evaluated
    # in full (but ELDERLY, below its registry age limit).
    assert not any(site_mismatch("EX2", nct_id) for nct_id in open_trials())
    for nct_id in open_trials() - {ELDERLY}:
        assert evaluated_in_full(match("EX2", nct_id)), nct_id


@pytest.mark.django_db
@pytest.mark.usefixtures("matched")
def test_trials_for_any_site_and_patients_of_unknown_site_are_never_filtered_out() -> None:
    colon = import_bundle(
        with_primary(example("EX3"), "COL1", "C18.7", "Malignant neoplasm of sigmoid colon")
    )
    unknown = import_profile({"external_id": "UNK1", "sex": "female", "birth_date": "1960-01-01"})
    assert patient_facts(patient("COL1")).primary_site is CancerSite.OTHER
    assert patient_facts(patient("UNK1")).primary_site is None

    run = match_patients([colon.pk, unknown.pk])

    # Every open trial, for both.
    assert evaluated("COL1") == open_trials()
    assert evaluated("UNK1") == open_trials()
    assert run.evaluated == run.stored == 2 * CANDIDATES
    # Another site: outside the gastric and oesophageal trials' sites, not the any-site ones
    # (a basket, a record naming no cancer, MATTERHORN's "gastrointestinal neoplasms").
    assert {nct_id for nct_id in open_trials() if site_mismatch("COL1", nct_id)} == {
        OESOPHAGEAL,
        *GASTRIC_ONLY,
    }
    for nct_id in (MATTERHORN, BASKET, BRAIN_INJURY):
        assert evaluated_in_full(match("COL1", nct_id)), nct_id
    # Stored against the gastric trials; where a disease criterion excludes, decided there
    # (NCT05052801 wants unresectable or metastatic gastric / GEJ cancer).
    assert "resectable" in decided_on_disease(match("COL1", "NCT05052801"))["reason"]
    assert decided_on_disease(match("COL1", OESOPHAGEAL))["reason"].endswith(
        "adenocarcinoma, not squamous"
    )
    # No site recorded: never a mismatch, every trial evaluated as usual.
    assert not any(site_mismatch("UNK1", nct_id) for nct_id in open_trials())
    for nct_id in open_trials() - {ELDERLY}:  # UNK1 is 66: below ELDERLY's age limit
        assert evaluated_in_full(match("UNK1", nct_id)), nct_id
    for name in ("EX1", "EX2", "EX3", "COL1", "UNK1"):
        assert BASKET in evaluated(name)
        assert not site_mismatch(name, BASKET)
