"""Everyone at once: the public form, the coordinators' queue and the REST API under load while
a full re-match runs in the worker, over real HTTP.

    .venv/bin/python bench/mixed_load.py --reuse NAME [--clients 50] [--seconds 60] [--pause 1]

``--reuse`` names a PostgreSQL database built by ``bench/admin_queue.py --keep NAME`` (2,000
trials, 10,000 patients matched, the ``bench-admin`` superuser). gunicorn (2 workers) and a
Celery worker (2 processes, Redis database 5 as its broker) run with production settings;
``manage.py match --queue`` then hands the re-match of every patient to the worker, and the
clients start at once:

- half are visitors of the public form (intro, five steps, results: 12 requests a visit),
- three in ten are coordinators (the queue, the queue filtered to flagged, a match page),
- two in ten are systems on the API (the trial list, a patient's matches).

Each client waits ``--pause`` seconds between its requests (people and systems do not fire
back to back). Printed: per endpoint, requests, p50 / p95 / max and errors; how many patients
the worker re-matched meanwhile (the worker runs at ``CELERY_WORKER_NICE``, 10 by default).

Target (issue #10): zero errors; p95 per endpoint reported.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import threading
import time
from collections import defaultdict
from typing import Any

import psycopg
from admin_queue import Browser as CoordinatorBrowser
from api_load import child_token
from common import (
    DEFAULT_POSTGRES,
    celery_worker,
    manage,
    p95,
    production_env,
    reused_database,
    run_child,
    served,
    setup_django,
)
from prescreen_load import ANSWERS, TOKEN, Visitor

BROKER = "redis://127.0.0.1:6379/5"
RESULTS = "redis://127.0.0.1:6379/6"


def child_pairs() -> dict[str, Any]:
    setup_django()
    from patients.models import Match

    pairs = list(
        Match.objects.filter(flagged=True).values_list("patient_id", "trial_id").order_by("?")[:200]
    )
    return {**child_token(), "pairs": pairs}


class Recorder:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.timings: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, list[str]] = defaultdict(list)

    def call(self, label: str, send: Any, *args: Any, expected: int = 200, **kwargs: Any) -> Any:
        """``send(*args, **kwargs)``, timed under ``label``; None when it failed."""
        started = time.perf_counter()
        try:
            answer = send(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001  (counted and reported)
            with self.lock:
                self.errors[label].append(type(exc).__name__)
            return None
        elapsed = (time.perf_counter() - started) * 1000
        with self.lock:
            if answer.status_code == expected:
                self.timings[label].append(elapsed)
                return answer
            self.errors[label].append(f"HTTP {answer.status_code}")
        return None


def visitor(base: str, recorder: Recorder, deadline: float, pause: float) -> None:
    time.sleep(random.uniform(0, 2 * pause))  # people arrive over time, not all at once
    while time.monotonic() < deadline:
        browser = Visitor(base)
        recorder.call("form: intro", browser.request, "GET", "/prescreen/")
        for number, answers in enumerate(ANSWERS, start=1):
            time.sleep(pause * random.uniform(0.5, 1.5))
            step = f"/prescreen/step/{number}/"
            page = recorder.call("form: step page", browser.request, "GET", step)
            if page is None:
                break
            data = {**answers, **dict(TOKEN.findall(page.text)), "website": ""}
            time.sleep(pause * random.uniform(0.5, 1.5))
            posted = recorder.call(
                "form: step answer", browser.request, "POST", step, data=data, expected=302
            )
            if posted is None:
                break
            if number == len(ANSWERS):
                location = posted.headers["Location"]
                recorder.call("form: results", browser.request, "GET", location)


def coordinator(
    base: str, recorder: Recorder, deadline: float, pause: float, pairs: list[list[int]]
) -> None:
    time.sleep(random.uniform(0, 2 * pause))
    browser = CoordinatorBrowser(base, "bench-admin")
    while time.monotonic() < deadline:
        pick = random.random()
        if pick < 1 / 3:
            recorder.call("admin: queue", browser.get, "/admin/patients/match/")
        elif pick < 2 / 3:
            path = "/admin/patients/match/?flagged__exact=1"
            recorder.call("admin: queue, flagged", browser.get, path)
        else:
            path = "/admin/patients/match/pair/{}/{}/".format(*random.choice(pairs))
            recorder.call("admin: match page", browser.get, path)
        time.sleep(pause * random.uniform(0.5, 1.5))


def system(
    base: str, recorder: Recorder, deadline: float, pause: float, token: str, patients: list[int]
) -> None:
    import requests

    session = requests.Session()
    session.headers.update({"Authorization": f"Token {token}", "X-Forwarded-Proto": "https"})
    time.sleep(random.uniform(0, 2 * pause))
    while time.monotonic() < deadline:
        if random.random() < 0.5:
            recorder.call("api: trials", session.get, base + "/api/v1/trials/", timeout=60)
        else:
            path = f"/api/v1/patients/{random.choice(patients)}/matches/"
            recorder.call("api: patient matches", session.get, base + path, timeout=60)
        time.sleep(pause * random.uniform(0.5, 1.5))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reuse", metavar="NAME")
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--pause", type=float, default=1.0)
    parser.add_argument("--child", action="store_true")
    options = parser.parse_args()
    if options.child:
        print(json.dumps(child_pairs()))
        return
    database_url = reused_database(parser, options)
    # One address at machine speed: the form's and the API's limits are lifted for the run.
    extra = {
        "CELERY_BROKER_URL": BROKER,
        "CELERY_RESULT_BACKEND": RESULTS,
        "PRESCREEN_RATE_PER_IP": "",
        "PRESCREEN_RATE_PER_SESSION": "",
        "PRESCREEN_MIN_FILL_SECONDS": "0",
        "API_RATE_PER_TOKEN": "",
        "API_RATE_PER_IP": "",
    }
    env = production_env(database_url, **extra)
    prepared = run_child(__file__, ["--child"], database_url, env)
    worker = celery_worker(env)
    recorder = Recorder()
    try:
        with served(database_url, **extra) as base:
            started_at = time.time()
            manage(env, "match", "--queue")
            deadline = time.monotonic() + options.seconds
            common_args = (base, recorder, deadline, options.pause)
            threads = []
            for n in range(options.clients):
                share = n % 10  # 5 visitors, 3 coordinators, 2 systems in every 10 clients
                if share < 5:
                    thread = threading.Thread(target=visitor, args=common_args)
                elif share < 8:
                    thread = threading.Thread(
                        target=coordinator, args=(*common_args, prepared["pairs"])
                    )
                else:
                    thread = threading.Thread(
                        target=system,
                        args=(*common_args, prepared["token"], prepared["patients"]),
                    )
                threads.append(thread)
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            done, total = rematched(database_url, started_at)
    finally:
        worker.terminate()
        worker.wait(timeout=120)

    print(
        f"{options.clients} clients ({options.pause:g} s between requests) for "
        f"{options.seconds:.0f} s while the worker re-matched every patient"
    )
    for label in sorted(set(recorder.timings) | set(recorder.errors)):
        timings = sorted(recorder.timings[label])
        errors = recorder.errors[label]
        figures = (
            f"p50 {statistics.median(timings):6.0f} ms  p95 {p95(timings):6.0f} ms  "
            f"max {timings[-1]:6.0f} ms"
            if timings
            else "no answer"
        )
        print(f"  {label:24} {len(timings):6} requests  {figures}  {len(errors)} errors")
        if errors:
            print("    ", sorted(set(errors))[:5])
    print(f"re-match during the load: {done:,} of {total:,} patients re-matched")


def rematched(database_url: str, since: float) -> tuple[int, int]:
    """Patients whose matches were all written since ``since``, and all patients."""
    with psycopg.connect(database_url.replace("postgres://", "postgresql://")) as conn:
        row = conn.execute(
            "SELECT count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM patients_match m "
            "WHERE m.patient_id = p.id AND m.evaluated_at < to_timestamp(%s))), count(*) "
            "FROM patients_patient p",
            [since],
        ).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


if __name__ == "__main__":
    main()
