"""Soak: incremental syncs and full re-matches again and again for ten minutes; do the worker and
the web processes keep their memory, and the database its connection count?

    .venv/bin/python bench/soak.py [--minutes 10] [--patients 500] [--every 20]

A throwaway PostgreSQL database (migrated; ``--patients`` generated patients imported), the
fake ClinicalTrials.gov on loopback serving the recorded records, gunicorn (2 workers) under a
light steady load (the form's first page, the trial list of the API, ``/healthz``) and a
Celery worker (2 processes, Redis database 7). Every ``--every`` seconds a few records are
republished (a new update date and a changed title) and an incremental sync is sent to the
worker, which then re-matches every patient, as the nightly run does.

Every 30 s: resident memory (RSS) of the worker (its main process and its 2 children) and of
gunicorn (master and workers), and the database's connections (``pg_stat_activity``). Printed:
the samples, then the growth from the first sample after the first minute (warm-up: imports,
caches, compiled trials) to the last.

Target (issue #10): memory flat (growth under 10 %), connection count stable.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import os
import random
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import requests
from common import (
    DEFAULT_POSTGRES,
    PROJECT_DIR,
    PostgresDatabase,
    celery_worker,
    free_port,
    gunicorn,
    manage,
    production_env,
)

sys.path.insert(0, str(PROJECT_DIR))
from tests.fakes.ctgov_server import FakeCtgovServer, load_recorded_studies

RECORDS = PROJECT_DIR / "trials" / "data" / "ctgov" / "v2"
BROKER = "redis://127.0.0.1:6379/7"
RESULTS = "redis://127.0.0.1:6379/8"


def rss_kb(pid: int) -> int:
    """Resident memory of a process and all its descendants, in kB."""
    total = 0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
        pending.extend(int(child) for child in children)
    return total


def connections(server_url: str, database: str) -> int:
    with psycopg.connect(server_url.replace("postgres://", "postgresql://")) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", [database]
        ).fetchone()
    return int(row[0]) if row else 0


def republish(server: FakeCtgovServer, cycle: int, count: int = 3) -> None:
    """``count`` records come back from the registry changed, posted today."""
    today = datetime.date.today().isoformat()
    for study in random.sample(server.studies, count):
        changed = copy.deepcopy(study)
        protocol = changed["protocolSection"]
        protocol["identificationModule"]["briefTitle"] = (
            protocol["identificationModule"].get("briefTitle", "").split(" [rev")[0]
            + f" [rev {cycle}]"
        )
        protocol.setdefault("statusModule", {})["lastUpdatePostDateStruct"] = {
            "date": today,
            "type": "ACTUAL",
        }
        server.upsert_study(changed)


def steady_web_load(base: str, stop: threading.Event, answers: dict[str, int]) -> None:
    """Requests back to back with a short pause; counts answers and failures (5xx, none)."""
    session = requests.Session()
    session.headers["X-Forwarded-Proto"] = "https"
    while not stop.is_set():
        for path in ("/prescreen/", "/healthz", "/api/schema/"):
            try:
                failed = session.get(base + path, timeout=30).status_code >= 500
            except requests.RequestException:
                failed = True
            answers["failed" if failed else "ok"] += 1
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--patients", type=int, default=500)
    parser.add_argument("--every", type=float, default=20, help="Seconds between syncs.")
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES)
    options = parser.parse_args()

    with (
        FakeCtgovServer(load_recorded_studies(RECORDS)) as registry,
        PostgresDatabase(options.postgres) as database_url,
    ):
        database = database_url.rsplit("/", 1)[1]
        folder = Path(tempfile.mkdtemp(prefix="soak-"))
        port = free_port()
        env = production_env(
            database_url,
            CELERY_BROKER_URL=BROKER,
            CELERY_RESULT_BACKEND=RESULTS,
            CTGOV_BASE_URL=registry.base_url,
            CTGOV_SYNC_QUERY="",
            CTGOV_MIN_REQUEST_INTERVAL="0",
            CTGOV_PAGE_SIZE="20",
            EMAIL_URL="dummymail://",
            STATIC_ROOT=str(folder / "static"),
            VAR_DIR=str(folder / "var"),
            USE_X_FORWARDED_PROTO="1",
        )

        print("preparing: migrate, trials, patients ...", flush=True)
        manage(env, "migrate", "--noinput")
        manage(env, "collectstatic", "--noinput")
        manage(env, "sync_trials", "--full", "--no-progress")
        manage(
            env,
            "generate_patients",
            "--count",
            str(options.patients),
            "--output",
            str(folder / "patients"),
        )
        manage(env, "import_patients", "--no-progress", str(folder / "patients"))
        worker = celery_worker(env)
        web = gunicorn(env, port)
        stop = threading.Event()
        base = f"http://127.0.0.1:{port}"
        answers = {"ok": 0, "failed": 0}
        loader = threading.Thread(target=steady_web_load, args=(base, stop, answers), daemon=True)
        samples: list[dict[str, Any]] = []
        syncs = 0
        try:
            time.sleep(5)
            loader.start()
            started = time.monotonic()
            end = started + options.minutes * 60
            next_sync = started
            next_sample = started
            while time.monotonic() < end:
                now = time.monotonic()
                if now >= next_sync:
                    syncs += 1
                    republish(registry, syncs)
                    manage(env, "sync_trials", "--queue")
                    next_sync = now + options.every
                if now >= next_sample:
                    sample = {
                        "at_s": round(now - started),
                        "worker_mb": round(rss_kb(worker.pid) / 1024, 1),
                        "web_mb": round(rss_kb(web.pid) / 1024, 1),
                        "connections": connections(options.postgres, database),
                        "syncs": syncs,
                    }
                    samples.append(sample)
                    print(json.dumps(sample), flush=True)
                    next_sample = now + 30
                time.sleep(0.5)
            with psycopg.connect(database_url.replace("postgres://", "postgresql://")) as conn:
                runs = conn.execute(
                    "SELECT status, count(*) FROM trials_syncrun GROUP BY status"
                ).fetchall()
        finally:
            stop.set()
            for process in (web, worker):
                process.terminate()
                process.wait(timeout=120)

    baseline = next((s for s in samples if s["at_s"] >= 60), samples[0])
    last = samples[-1]
    print(f"{syncs} syncs sent in {options.minutes:g} min; sync runs by status: {dict(runs)}")
    print(f"web requests meanwhile: {answers['ok']} answered, {answers['failed']} failed")
    for key in ("worker_mb", "web_mb"):
        growth = (last[key] - baseline[key]) / baseline[key] * 100
        print(
            f"{key}: {baseline[key]} at {baseline['at_s']} s -> {last[key]} at {last['at_s']} s "
            f"({growth:+.1f} %), max {max(s[key] for s in samples)}"
        )
    counts = [s["connections"] for s in samples]
    print(f"database connections: min {min(counts)}, max {max(counts)}, last {counts[-1]}")
    if os.environ.get("SOAK_KEEP_FOLDER") != "1":
        import shutil

        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
