"""The nightly run on the real stack, with faults, ending where a run without faults ends.

PostgreSQL, Redis, gunicorn (2 workers), a Celery worker (2 processes) and Celery beat, with
production settings (``tests/stack.py``), beat's sync every few seconds instead of nightly,
and the fake ClinicalTrials.gov on loopback serving the recorded records.

1. Beat starts the sync; the registry answers slowly and with errors (503, a cut-off body,
   429); the worker is SIGKILLed mid-sync and started again; a later run resumes the sync from
   its last committed page. Criteria are read, every patient is matched, the coordinator's
   digest email is written.
   PostgreSQL is then restarted under the running services: the next sync runs on new
   connections.
2. A preoperative immunotherapy trial (MATTERHORN) appears in the registry. The worker is
   stopped, beat queues the next sync, Redis is restarted, the worker comes back: the queued
   task was kept and runs, the new trial is imported, the surgical candidate EX1 is flagged
   for it, a digest names it.
3. The coordinator sees the new flag in the admin and a visitor sees the trial in the public
   form, in Chromium.
4. A database that took the same starting point and one fault-free ``sync_trials --full``
   holds the same trials and the same matches (exports compared).
"""

from __future__ import annotations

import copy
import json
import re
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from playwright.sync_api import Browser, expect

from tests.browser.test_prescreen import RESECTABLE, walk
from tests.fakes.ctgov_server import FakeCtgovServer, nct_id_of
from tests.patients.conftest import EXAMPLES, FHIR_DATA
from tests.patients.test_matching import recorded_registry, republished, with_site_coordinates
from tests.stack import Stack, wait_for
from tests.two_factor import code_from_key

MATTERHORN = "NCT04592913"
EX1_FLAGGED_FOR_MATTERHORN = (
    "SELECT count(*) FROM patients_match m JOIN trials_trial t ON t.id = m.trial_id "
    "JOIN patients_patient p ON p.id = m.patient_id "
    "WHERE t.nct_id = 'NCT04592913' AND p.external_id = 'EX1' AND m.flagged"
)
SYNC_EVERY = 6  # seconds between beat's syncs (nightly in production)
# What must be equal between the faulted and the fault-free run.
TRIAL_KEYS = (
    "nct_id",
    "overall_status",
    "eligibility_criteria",
    "sites",
    "criteria",
    "classification",
    "gastric_preop_immunotherapy",
)
MATCH_KEYS = ("patient", "nct_id", "verdict", "flagged", "score", "distance_km", "unknown_facts")


@pytest.fixture
def registry() -> Iterator[FakeCtgovServer]:
    studies = [study for study in recorded_registry() if nct_id_of(study) != MATTERHORN]
    with FakeCtgovServer(studies) as server:
        yield server


@pytest.fixture
def stack(registry: FakeCtgovServer) -> Iterator[Stack]:
    stack = Stack(registry.base_url, sync_every=SYNC_EVERY)
    try:
        stack.prepare()
        yield stack
    except BaseException:
        print(stack.logs())
        raise
    finally:
        stack.stop()
        stack.remove()


def scalar(stack: Stack, statement: str, database: str = "trialmatch") -> str:
    return stack.postgres.sql(statement, database)


def digests(stack: Stack) -> list[str]:
    return [path.read_text() for path in sorted(stack.mail_dir.glob("*.log"))]


def export(stack: Stack, command: str, database: str) -> list[dict[str, Any]]:
    return json.loads(stack.manage(command, "--format", "json", database=database))


def comparable(rows: list[dict[str, Any]], keys: tuple[str, ...]) -> list[tuple[Any, ...]]:
    return sorted(tuple(json.dumps(row.get(key), sort_keys=True) for key in keys) for row in rows)


def test_nightly_run_survives_faults_and_ends_as_a_clean_run(
    stack: Stack, registry: FakeCtgovServer, browser: Browser, tmp_path: Path
) -> None:
    # --- the starting point: patients, a coordinator, no trials; kept as a template ----------
    password_file = tmp_path / "coordinator-password"
    stack.manage(
        "import_patients",
        "--no-progress",
        *(str(EXAMPLES / f"EX{n}.json") for n in (1, 2, 3)),
        str(FHIR_DATA / "demo"),
    )
    stack.manage(
        "create_coordinator",
        "nora",
        "--email",
        "nora@hospital.example",
        "--site",
        "default",
        "--password-file",
        str(password_file),
    )
    stack.postgres.sql("CREATE DATABASE reference TEMPLATE trialmatch")

    # --- 1. beat's sync, a slow registry with errors, the worker killed mid-sync -------------
    registry.delay = 0.4
    registry.script_faults([None, "503", None, "truncate", None, None, "429"])
    stack.start_services()
    wait_for(
        lambda: int(scalar(stack, "SELECT count(*) FROM trials_syncrun WHERE pages >= 2")) > 0,
        timeout=120,
        what="beat's first sync to be under way",
    )
    stack.worker.kill(signal.SIGKILL)
    stack.worker.start()
    wait_for(
        lambda: (
            scalar(stack, "SELECT count(*) FROM trials_syncrun WHERE status = 'succeeded'") != "0"
        ),
        timeout=180,
        what="a sync to finish after the worker was killed",
    )
    runs = scalar(
        stack,
        "SELECT string_agg(status || ':' || coalesce(resumed_from_id::text, '-'), ',' "
        "ORDER BY id) FROM trials_syncrun",
    )
    assert re.search(r":\d+", runs), f"no run resumed another: {runs}"
    wait_for(lambda: digests(stack), timeout=180, what="the first flag digest")
    assert "nora@hospital.example" in digests(stack)[0]
    assert MATTERHORN not in "".join(digests(stack))
    registry.delay = 0

    # --- PostgreSQL restarts under the running web, worker and beat ---------------------------
    succeeded = "SELECT count(*) FROM trials_syncrun WHERE status = 'succeeded'"
    before = int(scalar(stack, succeeded))
    stack.postgres.restart()
    wait_for(
        lambda: int(scalar(stack, succeeded)) > before,
        timeout=120,
        what="the worker's next sync after the database restarted",
    )

    # --- 2. a new trial; worker down, beat queues, Redis restarts -----------------------------
    matterhorn = copy.deepcopy(next(s for s in recorded_registry() if nct_id_of(s) == MATTERHORN))
    republished(registry, with_site_coordinates(matterhorn))
    stack.worker.kill(signal.SIGTERM)
    queued = stack.redis.queue_length
    wait_for(lambda: queued() > 0, timeout=60, what="beat to queue the next sync")
    stack.redis.restart()
    assert queued() > 0  # the queued sync survived the restart
    stack.worker.start()
    wait_for(
        lambda: scalar(stack, EX1_FLAGGED_FOR_MATTERHORN) == "1",
        timeout=180,
        what="EX1 flagged for the new trial",
    )
    wait_for(
        lambda: any(MATTERHORN in text for text in digests(stack)),
        timeout=120,
        what="a digest naming the new trial",
    )
    health = requests.get(f"{stack.base_url}/healthz", timeout=10).json()
    assert health["checks"]["database"]["ok"], health
    assert health["checks"]["broker"]["ok"], health

    # --- 3. the coordinator and a visitor, in Chromium ----------------------------------------
    context = browser.new_context(
        base_url=stack.base_url, extra_http_headers={"X-Forwarded-Proto": "https"}
    )
    try:
        page = context.new_page()
        page.goto("/admin/login/?next=/admin/patients/match/")
        page.get_by_label("Username").fill("nora")
        page.get_by_label("Password").fill(password_file.read_text().strip())
        with page.expect_navigation():
            page.get_by_role("button", name="Log in").click()
        # Her first sign-in: the authenticator app is set up before the workspace opens.
        expect(page).to_have_url(re.compile(r"/admin/two-factor/\?next="))
        key = page.locator("#two-factor-key").inner_text()
        page.get_by_label("Code from the app").fill(code_from_key(key))
        with page.expect_navigation():
            page.get_by_role("button", name="Confirm and continue").click()
        expect(page).to_have_url(re.compile(r"/admin/patients/match/$"))
        page.goto("/admin/patients/match/?flagged__exact=1")
        expect(page.locator("body")).to_contain_text(MATTERHORN)
        visitor = context.new_page()
        walk(visitor, RESECTABLE)
        expect(visitor.locator("body")).to_contain_text(MATTERHORN)
    finally:
        context.close()

    # --- 4. the same end as a run without faults ----------------------------------------------
    stack.beat.kill(signal.SIGTERM)
    stack.worker.kill(signal.SIGTERM)
    registry.script_faults([])
    stack.manage("sync_trials", "--full", "--no-progress", database="reference")
    for command, keys in (("export_trials", TRIAL_KEYS), ("export_matches", MATCH_KEYS)):
        faulted = comparable(export(stack, command, "trialmatch"), keys)
        clean = comparable(export(stack, command, "reference"), keys)
        assert faulted == clean, command
        assert faulted, command
