"""The sync over real HTTP against the fake registry: complete, idempotent, resumable."""

import copy
import datetime
import re
import threading
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.fakes.ctgov_server import FakeCtgovServer, nct_id_of
from tests.trials.conftest import CTGOV_DATA, make_client
from trials import services
from trials.ctgov.mapping import content_hash
from trials.models import SyncRun, SyncRunListing, Trial, TrialVersion

pytestmark = pytest.mark.django_db

WRITES_TO_TRIALS = re.compile(
    r'^\s*(INSERT INTO|UPDATE|DELETE FROM)\s+"trials_(trial|trialsite|trialversion)"', re.I
)


def sync(server: FakeCtgovServer, **kwargs: Any) -> SyncRun:
    kwargs.setdefault("page_size", 5)
    return services.sync_trials(client=make_client(server), query="", **kwargs)


def dated(study: dict[str, Any]) -> str | None:
    status = study["protocolSection"].get("statusModule", {})
    return status.get("lastUpdatePostDateStruct", {}).get("date")


def edited(
    study: dict[str, Any],
    *,
    eligibility: str | None = None,
    status: str | None = None,
    posted: str = "2026-11-20",
) -> dict[str, Any]:
    changed = copy.deepcopy(study)
    protocol = changed["protocolSection"]
    if eligibility is not None:
        protocol["eligibilityModule"]["eligibilityCriteria"] = eligibility
    if status is not None:
        protocol["statusModule"]["overallStatus"] = status
    protocol["statusModule"]["lastUpdatePostDateStruct"] = {"date": posted, "type": "ACTUAL"}
    return changed


def by_id(studies: list[dict[str, Any]], nct_id: str) -> dict[str, Any]:
    return next(study for study in studies if nct_id_of(study) == nct_id)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_full_sync_through_faults_holds_exactly_the_registry(
    recorded_studies: list[dict[str, Any]], seed: int
) -> None:
    with FakeCtgovServer(recorded_studies, seed=seed) as server:
        server.fault_kinds = ["429", "500", "503", "truncate", "stall", "reset", "not_json"]
        server.stall_seconds = 1.5
        server.fault_rate = 0.2
        server.retry_after = "0"
        run = sync(server, full=True)
        faults = [request.fault for request in server.requests]

    assert 0.1 <= sum(map(bool, faults)) / len(faults) <= 0.4
    assert run.status == SyncRun.Status.SUCCEEDED
    expected = {nct_id_of(study): content_hash(study) for study in recorded_studies}
    assert dict(Trial.objects.values_list("nct_id", "content_hash")) == expected
    assert Trial.objects.count() == len(expected) == 59
    assert TrialVersion.objects.count() == 59
    assert (run.fetched, run.created, run.updated, run.unchanged, run.failed) == (59, 59, 0, 0, 0)
    assert (run.pages, run.total_count, run.removed) == (12, 59, 0)
    assert not SyncRunListing.objects.exists()


def test_incremental_run_after_no_change_writes_nothing(
    ctgov: FakeCtgovServer, recorded_studies: list[dict[str, Any]]
) -> None:
    first = sync(ctgov, full=True)
    newest = max(filter(None, map(dated, recorded_studies)))
    assert first.high_water_mark == datetime.date.fromisoformat(newest)
    ctgov.clear_requests()

    with CaptureQueriesContext(connection) as queries:
        run = sync(ctgov)

    assert run.since == first.high_water_mark
    window = ctgov.requests[0].params["filter.advanced"]
    assert window == f"AREA[LastUpdatePostDate]RANGE[{newest},MAX]"
    assert run.fetched >= 1
    assert run.unchanged == run.fetched
    assert (run.created, run.updated) == (0, 0)
    assert not [q["sql"] for q in queries.captured_queries if WRITES_TO_TRIALS.match(q["sql"])]


def test_incremental_run_updates_and_versions_only_the_changed_record(
    ctgov: FakeCtgovServer, recorded_studies: list[dict[str, Any]]
) -> None:
    sync(ctgov, full=True)
    Trial.objects.update(needs_evaluation=False)
    before = dict(Trial.objects.values_list("nct_id", "updated_at"))
    original = by_id(recorded_studies, "NCT04592913")
    old_text = original["protocolSection"]["eligibilityModule"]["eligibilityCriteria"]
    ctgov.upsert_study(edited(original, eligibility=old_text + "\n* ECOG 0 only."))

    run = sync(ctgov)

    assert (run.updated, run.created) == (1, 0)
    trial = Trial.objects.get(nct_id="NCT04592913")
    assert trial.eligibility_criteria.endswith("ECOG 0 only.")
    assert trial.needs_evaluation
    assert trial.version_count == 2
    versions = list(trial.versions.order_by("number"))
    assert versions[0].eligibility_criteria == old_text
    assert versions[1].changes == ["eligibility"]
    assert versions[1].last_update_posted == datetime.date(2026, 11, 20)
    untouched = Trial.objects.exclude(nct_id="NCT04592913")
    assert all(t.updated_at == before[t.nct_id] for t in untouched)
    assert not untouched.filter(needs_evaluation=True).exists()


def test_status_change_is_versioned_and_closes_the_trial(
    ctgov: FakeCtgovServer, recorded_studies: list[dict[str, Any]]
) -> None:
    sync(ctgov, full=True)
    ctgov.upsert_study(edited(by_id(recorded_studies, "NCT06008288"), status="WITHDRAWN"))

    sync(ctgov)

    trial = Trial.objects.get(nct_id="NCT06008288")
    assert trial.overall_status == "WITHDRAWN"
    assert not trial.is_open
    assert trial.versions.first().changes == ["status"]  # type: ignore[union-attr]


def test_full_listing_marks_vanished_trials_removed_and_back(
    ctgov: FakeCtgovServer, recorded_studies: list[dict[str, Any]]
) -> None:
    sync(ctgov, full=True)
    ctgov.remove_study("NCT06008288")

    run = sync(ctgov, full=True)

    assert run.removed == 1
    gone = Trial.objects.get(nct_id="NCT06008288")
    assert gone.removed_from_registry
    assert gone.overall_status == "RECRUITING"  # kept as it was ...
    assert not Trial.objects.open_to_enrolment().filter(nct_id="NCT06008288").exists()

    ctgov.upsert_study(by_id(recorded_studies, "NCT06008288"))
    back = sync(ctgov, full=True)

    assert back.removed == 0
    assert Trial.objects.open_to_enrolment().filter(nct_id="NCT06008288").exists()


def test_an_empty_full_listing_removes_nothing(ctgov: FakeCtgovServer) -> None:
    sync(ctgov, full=True)
    ctgov.set_studies([])

    run = sync(ctgov, full=True)

    assert run.removed == 0
    assert not Trial.objects.filter(removed_from_registry=True).exists()
    assert run.errors[0]["record"] == "listing"


def test_registry_failure_fails_the_run_and_the_next_run_resumes(
    ctgov: FakeCtgovServer, recorded_studies: list[dict[str, Any]]
) -> None:
    # Pages 1-3 answer, then page 4 fails every attempt.
    ctgov.script_faults([None, None, None, *["503"] * 10])

    failed = sync(ctgov, full=True)

    assert failed.status == SyncRun.Status.FAILED
    assert "HTTP 503" in failed.message
    assert failed.checkpoint["page_number"] == 3
    assert Trial.objects.count() == 15
    ctgov.clear_requests()

    resumed = sync(ctgov, full=True)

    assert resumed.status == SyncRun.Status.SUCCEEDED
    assert resumed.resumed_from == failed
    assert ctgov.requests[0].params["pageToken"] == failed.checkpoint["page_token"]
    assert (resumed.pages, resumed.created) == (9, 44)
    assert Trial.objects.count() == 59
    assert set(Trial.objects.values_list("nct_id", flat=True)) == {
        nct_id_of(study) for study in recorded_studies
    }


def test_a_checkpoint_token_the_registry_refuses_redoes_the_window(
    ctgov: FakeCtgovServer,
) -> None:
    ctgov.script_faults([None, *["500"] * 10])
    failed = sync(ctgov, full=True)
    failed.checkpoint["page_token"] = "expired-token"
    failed.save()

    resumed = sync(ctgov, full=True)

    assert resumed.status == SyncRun.Status.SUCCEEDED
    assert resumed.resumed_from == failed
    assert Trial.objects.count() == 59


def test_a_malformed_record_is_reported_and_the_rest_imported(
    ctgov: FakeCtgovServer, recorded_studies: list[dict[str, Any]]
) -> None:
    broken = copy.deepcopy(by_id(recorded_studies, "NCT04592913"))
    broken["protocolSection"]["conditionsModule"]["conditions"] = "Gastric cancer"
    ctgov.upsert_study(broken)

    run = sync(ctgov, full=True)

    assert run.status == SyncRun.Status.SUCCEEDED
    assert run.failed == 1
    assert run.errors == [
        {
            "record": "NCT04592913",
            "message": "NCT04592913: conditionsModule.conditions should be a list of text",
        }
    ]
    assert Trial.objects.count() == 58


@pytest.mark.django_db(transaction=True)
def test_two_syncs_at_once_one_runs_and_one_refuses(ctgov: FakeCtgovServer) -> None:
    ctgov.delay = 0.2
    outcome: dict[str, Any] = {}

    def first_sync() -> None:
        try:
            outcome["run"] = sync(ctgov, full=True)
        finally:
            connection.close()

    worker = threading.Thread(target=first_sync)
    worker.start()
    try:
        while not SyncRun.objects.exists():
            threading.Event().wait(0.05)
        with pytest.raises(services.SyncAlreadyRunning, match=r"sync #\d+ \(full"):
            sync(ctgov, full=True)
    finally:
        worker.join()

    assert outcome["run"].status == SyncRun.Status.SUCCEEDED
    assert SyncRun.objects.count() == 1


def test_every_recorded_record_imports_without_error() -> None:
    run = services.import_trial_files(
        paths=[CTGOV_DATA / "v2", CTGOV_DATA / "v2-partial", CTGOV_DATA / "bulk"]
    )

    assert run.status == SyncRun.Status.SUCCEEDED
    assert run.failed == 0, run.errors
    assert run.fetched == 1426
    assert Trial.objects.count() == 1396


def test_bad_files_are_reported_and_the_good_ones_imported(tmp_path: Path) -> None:
    (tmp_path / "empty.json").write_text("")
    (tmp_path / "notes.json").write_text("these are notes")
    good = (CTGOV_DATA / "v2" / "NCT04592913.json").read_text()
    (tmp_path / "cut.json").write_text(f'[{good}, {{"protocolSection": {{"identificati')
    (tmp_path / "page.json").write_text(f'{{"studies": [{good}, 7]}}')

    run = services.import_trial_files(paths=[tmp_path, tmp_path / "missing.json"])

    messages = {error["record"]: error["message"] for error in run.errors}
    assert messages[str(tmp_path / "empty.json")] == "the file is empty"
    assert messages[str(tmp_path / "notes.json")].startswith("not JSON")
    assert messages[str(tmp_path / "cut.json")].startswith("not readable JSON after 1 record(s)")
    assert messages["page.json, record 2"] == "a study must be a JSON object, not int"
    assert messages[str(tmp_path / "missing.json")] == "no such file or folder"
    assert list(Trial.objects.values_list("nct_id", flat=True)) == ["NCT04592913"]
    assert (run.created, run.unchanged, run.failed) == (1, 1, 5)


def test_an_older_file_never_takes_a_trial_back_in_time(
    ctgov: FakeCtgovServer, recorded_studies: list[dict[str, Any]], tmp_path: Path
) -> None:
    newer = edited(by_id(recorded_studies, "NCT06008288"), status="COMPLETED")
    ctgov.upsert_study(newer)
    sync(ctgov, full=True)

    run = services.import_trial_files(paths=[CTGOV_DATA / "v2" / "NCT06008288.json"])

    assert run.unchanged == 1
    assert Trial.objects.get(nct_id="NCT06008288").overall_status == "COMPLETED"
