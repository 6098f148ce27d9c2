"""sync_trials and export_trials as an operator uses them."""

import csv
import datetime
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from tests.fakes.ctgov_server import FakeCtgovServer
from tests.trials.conftest import CTGOV_DATA
from trials.models import SyncRun, Trial

pytestmark = pytest.mark.django_db


def run_command(*args: str, **options: Any) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err, **options)
    return out.getvalue(), err.getvalue()


@pytest.fixture
def live(settings: Any, ctgov: FakeCtgovServer) -> FakeCtgovServer:
    settings.CTGOV_BASE_URL = ctgov.base_url
    settings.CTGOV_SYNC_QUERY = ""
    settings.CTGOV_MIN_REQUEST_INTERVAL = 0
    settings.CTGOV_PAGE_SIZE = 20
    return ctgov


def test_full_then_incremental_sync(live: FakeCtgovServer) -> None:
    out, _ = run_command("sync_trials", "--full", "--no-progress")
    first = SyncRun.objects.get()
    assert out.strip().splitlines() == [
        "Eligibility criteria read for 59 trial(s).",
        f"Sync #{first.pk} full succeeded: 3 page(s), 59 fetched, 59 created, 0 updated, "
        "0 unchanged, 0 removed, 0 failed",
    ]

    out, _ = run_command("sync_trials", "--since", "2025-01-01")
    second = SyncRun.objects.latest()
    assert f"Sync #{second.pk} incremental succeeded" in out
    assert second.since == datetime.date(2025, 1, 1)


def test_a_registry_failure_exits_non_zero_with_the_reason(
    live: FakeCtgovServer, settings: Any
) -> None:
    settings.CTGOV_MAX_ATTEMPTS = 2
    live.script_faults(["503", "503"])

    with pytest.raises(CommandError, match=r"failed .* HTTP 503"):
        run_command("sync_trials")


def test_one_trial_is_fetched_again_whatever_its_date(live: FakeCtgovServer) -> None:
    run_command("sync_trials", "--full", "--no-progress")
    trial = Trial.objects.get(nct_id="NCT04592913")
    Trial.objects.filter(pk=trial.pk).update(brief_title="edited here", content_hash="x")

    out, _ = run_command("sync_trials", "--nct", "nct04592913", "--no-progress")

    run = SyncRun.objects.latest()
    assert (run.mode, run.status, run.fetched, run.updated) == ("selected", "succeeded", 1, 1)
    assert f"Sync #{run.pk} selected succeeded" in out
    assert Trial.objects.get(pk=trial.pk).brief_title != "edited here"
    # A selected run is no high-water mark for the next incremental one.
    assert run.high_water_mark is None


def test_an_unknown_trial_is_named_and_the_others_are_fetched(live: FakeCtgovServer) -> None:
    with pytest.raises(CommandError, match="Some records could not be imported") as failure:
        call_command(
            "sync_trials",
            "--nct",
            "NCT04592913",
            "--nct",
            "NCT99999999",
            stdout=io.StringIO(),
            stderr=(err := io.StringIO()),
        )
    assert "NCT99999999:" in err.getvalue()
    assert "1 failed" in str(failure.value)
    assert Trial.objects.filter(nct_id="NCT04592913").exists()


def test_import_from_files(tmp_path: Path) -> None:
    out, _ = run_command("sync_trials", "--from", str(CTGOV_DATA / "v2"), "--no-progress")

    assert re.search(r"^Sync #\d+ file succeeded: 40 page\(s\), 40 fetched, 40 created", out, re.M)
    assert Trial.objects.count() == 40


def test_import_with_bad_files_names_them_and_exits_non_zero(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{")

    with pytest.raises(CommandError, match="Some records could not be imported") as failure:
        call_command("sync_trials", "--from", str(tmp_path), stderr=(err := io.StringIO()))

    assert f"{tmp_path / 'bad.json'}: not readable JSON" in err.getvalue()
    assert "1 failed" in str(failure.value)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "x", "--full"], "--from cannot be combined"),
        (["--since", "yesterday"], "expected a date as YYYY-MM-DD"),
        (["--nct", "12345"], "expected an NCT id"),
        (["--nct", "NCT01234567", "--full"], "--nct cannot be combined"),
    ],
)
def test_bad_options_are_explained(args: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        call_command("sync_trials", *args)


def test_export_json_and_csv(tmp_path: Path) -> None:
    run_command("sync_trials", "--from", str(CTGOV_DATA / "v2"))

    out, _ = run_command("export_trials", "--format", "json")
    rows = json.loads(out)
    assert len(rows) == 40
    matterhorn = next(row for row in rows if row["nct_id"] == "NCT04592913")
    assert {
        "nct_id",
        "title",
        "overall_status",
        "last_update_posted",
        "conditions",
        "phases",
        "eligibility_criteria",
        "version_count",
        "removed_from_registry",
        "sites",
    } <= matterhorn.keys()
    assert matterhorn["overall_status"] == "ACTIVE_NOT_RECRUITING"
    assert matterhorn["version_count"] == 1
    assert matterhorn["sites"][0]["city"] == "Duarte"
    assert matterhorn["minimum_age"] == "18 years"

    target = tmp_path / "trials.csv"
    _, err = run_command("export_trials", "--format", "csv", "--output", str(target))
    assert "Exported 40 trial(s)" in err
    with target.open(newline="") as stream:
        lines = list(csv.DictReader(stream))
    row = next(line for line in lines if line["nct_id"] == "NCT04592913")
    assert row["conditions"] == "Gastrointestinal Neoplasms; Esophagogastric Junction"
    assert row["sites"].startswith(
        "City of Hope Comprehensive Cancer Center, Duarte, United States"
    )
    assert row["eligibility_criteria"].startswith("Key Inclusion Criteria:")


def test_export_to_an_unwritable_place_is_explained(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="Cannot write"):
        call_command("export_trials", "--output", str(tmp_path / "missing" / "x.json"))


def test_import_from_corrupt_or_deeply_nested_files_says_why_without_a_traceback(
    tmp_path: Path,
) -> None:
    """A corrupt .gz and a JSON nested 100,000 levels are reported with their reason, no
    traceback."""
    import gzip

    (tmp_path / "corrupt.json.gz").write_bytes(b"not gzip data")
    whole = gzip.compress(json.dumps([{"protocolSection": {}}]).encode())
    (tmp_path / "cut.json.gz").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)

    with pytest.raises(CommandError, match="Some records could not be imported") as failure:
        call_command("sync_trials", "--from", str(tmp_path), stderr=(err := io.StringIO()))

    text = err.getvalue()
    assert "Traceback" not in text
    assert f"{tmp_path / 'corrupt.json.gz'}: not readable JSON" in text
    assert f"{tmp_path / 'cut.json.gz'}: not readable JSON" in text
    assert f"{tmp_path / 'deep.json'}: not readable JSON (nested too deeply)" in text
    assert "3 failed" in str(failure.value)
    run = SyncRun.objects.latest()
    assert len(run.errors) == 3
    assert all(error["message"] for error in run.errors)
