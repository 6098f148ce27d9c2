"""Coordinator workspace latency: the review queue and the pages around it, over real HTTP.

    .venv/bin/python bench/admin_queue.py [--patients 10000] [--trials 2000] [--requests 40]
                                          [--keep NAME | --reuse NAME] [--postgres URL]

Builds a throwaway PostgreSQL database as ``bench/matching.py`` does (``--trials`` trials from
the recorded full records, served as recruiting, criteria read; ``--patients`` generated
patients imported from FHIR bundles and matched), spreads the patients over two sites, gives
a share of the flagged pairs a review with notes, then serves the app with gunicorn
(2 workers, production settings) and times pages as a signed-in user, each page
``--requests`` times after one warm-up request, one request at a time: p50 / p95 / max in
milliseconds.

Pages: the queue (default order: flagged, then possible), the queue filtered to flagged,
searched by MRN, sorted by distance, page 5; a match page; the dashboard; a patient page.
Each as a superuser (all 10,000 patients) and as the coordinator of one site (half).

Target (issue #7): queue p95 under 300 ms.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from common import (
    DEFAULT_POSTGRES,
    PROJECT_DIR,
    HttpsClient,
    PostgresDatabase,
    manage,
    p95,
    production_env,
    served,
    setup_django,
)
from import_throughput import build_records_file
from matching import _child as matching_child
from matching import import_patients

PASSWORD = "bench-only-password-91"  # noqa: S105  (a throwaway database's accounts)


def child_prepare() -> dict[str, Any]:
    """Second site, reviews, notes and the two accounts."""
    setup_django()
    import random

    from django.contrib.auth.models import Group, User
    from django.db import connection
    from django.db.models import Max

    from patients.models import Match, Patient, Review, ReviewNote, Site
    from patients.roles import ensure_groups

    ensure_groups()
    first = Site.objects.order_by("pk").first()
    assert first is not None
    second, _ = Site.objects.get_or_create(code="north", defaults={"name": "North clinic"})
    top = Patient.objects.aggregate(top=Max("pk"))["top"]
    Patient.objects.filter(pk__gt=top // 2).update(site=second)
    superuser, _ = User.objects.get_or_create(
        username="bench-admin", defaults={"is_staff": True, "is_superuser": True}
    )
    superuser.set_password(PASSWORD)
    superuser.save()
    coordinator, _ = User.objects.get_or_create(username="bench-coord", defaults={"is_staff": True})
    coordinator.set_password(PASSWORD)
    coordinator.save()
    coordinator.groups.add(Group.objects.get(name="coordinator"))
    first.coordinators.add(coordinator)

    rng = random.Random(7)
    flagged = list(Match.objects.filter(flagged=True).values_list("patient_id", "trial_id"))
    chosen = rng.sample(flagged, k=min(len(flagged), max(1, len(flagged) // 5)))
    statuses = ["under_review", "contacted", "consented", "not_eligible"]
    Review.objects.all().delete()
    reviews = Review.objects.bulk_create(
        [
            Review(
                patient_id=patient_id,
                trial_id=trial_id,
                status=rng.choice(statuses),
                status_reason="bench",
                assignee=coordinator if rng.random() < 0.5 else None,
            )
            for patient_id, trial_id in chosen
        ],
        batch_size=2000,
    )
    ReviewNote.objects.bulk_create(
        [
            ReviewNote(review=review, author=coordinator, text="Called, left a message.")
            for review in reviews[::2]
        ],
        batch_size=2000,
    )
    # Fresh planner statistics, as autovacuum keeps them: half the patients just moved site.
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    sample = Match.objects.filter(flagged=True, patient__site=first).values_list(
        "patient_id", "trial_id", "patient__external_id"
    )[:1]
    patient_id, trial_id, mrn = sample[0]
    return {
        "matches": Match.objects.count(),
        "flagged": len(flagged),
        "reviews": len(reviews),
        "patient_id": patient_id,
        "trial_id": trial_id,
        "mrn": mrn,
    }


def prepare(env: dict[str, str]) -> dict[str, Any]:
    """``child_prepare`` in a fresh process on the benchmark database."""
    completed = subprocess.run(
        [sys.executable, __file__, "--child", "prepare"],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(completed.stdout.splitlines()[-1]))


class Browser(HttpsClient):
    """A coordinator signed in through the admin's login form."""

    def __init__(self, base: str, username: str) -> None:
        super().__init__(base)
        login = self.get("/admin/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login.text)
        if not token:
            raise SystemExit(f"no CSRF token on the login page (HTTP {login.status_code})")
        answer = self.request(
            "POST",
            "/admin/login/?next=/admin/",
            data={
                "csrfmiddlewaretoken": token.group(1),
                "username": username,
                "password": PASSWORD,
            },
        )
        if answer.status_code != 302:
            raise SystemExit(f"login as {username} failed: HTTP {answer.status_code}")


def time_page(browser: Browser, path: str, repeats: int) -> dict[str, float]:
    first = browser.get(path)
    if first.status_code != 200:
        raise SystemExit(f"GET {path}: HTTP {first.status_code}")
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        answer = browser.get(path)
        timings.append((time.perf_counter() - started) * 1000)
        if answer.status_code != 200:
            raise SystemExit(f"GET {path}: HTTP {answer.status_code}")
    timings.sort()
    return {
        "p50": statistics.median(timings),
        "p95": p95(timings),
        "max": timings[-1],
    }


def pages(prepared: dict[str, Any]) -> list[tuple[str, str]]:
    queue = "/admin/patients/match/"
    return [
        ("queue", queue),
        ("queue, flagged only", queue + "?" + urlencode({"flagged__exact": "1"})),
        ("queue, search MRN", queue + "?" + urlencode({"q": prepared["mrn"]})),
        ("queue, by distance", queue + "?" + urlencode({"o": "6"})),
        ("queue, by score", queue + "?" + urlencode({"o": "-5"})),
        ("queue, page 5", queue + "?" + urlencode({"p": "4"})),
        (
            "match page",
            f"/admin/patients/match/pair/{prepared['patient_id']}/{prepared['trial_id']}/",
        ),
        ("dashboard", "/admin/"),
        ("patient page", f"/admin/patients/patient/{prepared['patient_id']}/change/"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--patients", type=int, default=10000)
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES)
    parser.add_argument("--keep", metavar="NAME", help="Build into this database and keep it.")
    parser.add_argument("--reuse", metavar="NAME", help="Time against a kept database.")
    parser.add_argument("--child", nargs="+")
    options = parser.parse_args()
    if options.child:
        print(json.dumps({"prepare": child_prepare}[options.child[0]]()))
        return

    if options.reuse:
        database_url = options.postgres.rsplit("/", 1)[0] + f"/{options.reuse}"
        env = production_env(database_url)
        prepared = prepare(env)
        measure(database_url, prepared, options.requests)
        return

    database = PostgresDatabase(options.postgres, keep=options.keep)
    with database as database_url, tempfile.TemporaryDirectory() as tmp:
        env = production_env(database_url)
        records = Path(tmp) / "records.json"
        build_records_file(options.trials, records)
        setup = matching_child(["--child", "setup", str(records)], env)
        print(f"trials: {setup['trials']} imported, criteria read for {setup['criteria_read']}")
        seconds = import_patients(options.patients, env)
        print(f"patients: {options.patients} imported in {seconds:.0f} s")
        started = time.perf_counter()
        manage(env, "match", "--no-progress")
        print(f"matched in {time.perf_counter() - started:.0f} s")
        prepared = prepare(env)
        measure(database_url, prepared, options.requests)


def measure(database_url: str, prepared: dict[str, Any], repeats: int) -> None:
    print(
        f"{prepared['matches']:,} matches stored, {prepared['flagged']:,} flagged, "
        f"{prepared['reviews']:,} reviews"
    )
    with served(database_url) as base:
        for username, who in (("bench-admin", "superuser"), ("bench-coord", "coordinator")):
            browser = Browser(base, username)
            for label, path in pages(prepared):
                figures = time_page(browser, path, repeats)
                print(
                    f"{who:11} {label:22} p50 {figures['p50']:6.0f} ms  "
                    f"p95 {figures['p95']:6.0f} ms  max {figures['max']:6.0f} ms"
                )


if __name__ == "__main__":
    main()
