"""Matcher throughput: pair evaluations per second, one patient end to end, the full matrix.

    .venv/bin/python bench/matching.py [--patients 5000] [--trials 2000] [--postgres URL]
                                       [--broker redis://127.0.0.1:6379/7]

Builds a throwaway PostgreSQL database with ``--trials`` trials (the recorded full records in
trials/data/ctgov, cycled under new NCT ids, every one served as RECRUITING so status filters
nothing away) read by the criteria engine, and ``--patients`` synthetic patients
(``patients.synthetic``, imported as FHIR bundles by two processes). Then, each in a fresh
process:

* evaluation rate, single process: patients already loaded as facts, trials compiled, every
  (patient, trial) pair evaluated in full (no pre-filter), in pairs/second; also over the
  distinct recorded records only (no repeats, so less sharing of answers between trials);
* one patient against every trial, end to end: the patient's facts read from the database,
  trials compiled (cold: first call of the process; warm: later calls), every pair
  evaluated and the matches written; in milliseconds;
* the full matrix with 2 Celery worker processes (one core each) on Redis: every patient
  against every candidate trial (open; each patient against those for their cancer site),
  chunks fanned out as in the nightly job, wall time from dispatch to the last chunk stored.

Targets (issue #6): >= 20,000 pair evaluations per second per core; one patient against
2,000 trials in under 200 ms end to end.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from common import DEFAULT_POSTGRES, PROJECT_DIR, PostgresDatabase, production_env, setup_django
from import_throughput import build_records_file

DEFAULT_BROKER = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/7")


def _child(args: list[str], env: dict[str, str]) -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, __file__, *args],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{completed.stderr[-4000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


# --- children --------------------------------------------------------------------------------


def child_setup_trials(records: Path) -> dict[str, Any]:
    setup_django()
    from django.core.management import call_command

    from trials.criteria import refresh_stale_criteria
    from trials.models import Trial
    from trials.services import import_trial_files, locate_sites

    call_command("migrate", verbosity=0)
    run = import_trial_files(paths=[records])
    Trial.objects.update(overall_status="RECRUITING")
    locate_sites()  # as a sync does: sites without registry coordinates, from city / zip
    started = time.perf_counter()
    read = refresh_stale_criteria()
    return {
        "trials": run.created,
        "criteria_read": read,
        "criteria_seconds": time.perf_counter() - started,
    }


def child_counts() -> dict[str, Any]:
    setup_django()
    from patients.matching import candidate_trials
    from patients.models import Patient
    from trials.models import Criterion, Trial

    return {
        "patients": Patient.objects.count(),
        "trials": Trial.objects.count(),
        "candidate_trials": candidate_trials().count(),
        "criteria": Criterion.objects.count(),
    }


def _facts(limit: int) -> list[Any]:
    from patients.facts import patient_facts, with_facts
    from patients.models import Patient

    return [patient_facts(p) for p in with_facts(Patient.objects.order_by("pk")[:limit])]


def _all_rules(distinct_only: bool) -> list[Any]:
    """Every trial compiled (no pre-filter); or one per distinct recorded record."""
    from patients.matching import TrialRulesCache
    from trials.models import Trial

    rules = TrialRulesCache().compile(Trial.objects.order_by("pk").values_list("pk", flat=True))
    if distinct_only:
        seen: dict[tuple[int, ...], Any] = {}
        for trial in rules:
            seen.setdefault(tuple(rule.signature for rule in trial.rules), trial)
        rules = list(seen.values())
    return rules


def child_rate(patients: int) -> dict[str, Any]:
    setup_django()
    from trials.eligibility.evaluate import PatientEvaluator

    facts = _facts(patients)
    on = datetime.date.today()
    out: dict[str, Any] = {"patients": len(facts)}
    for label, distinct in (("all", False), ("distinct", True)):
        rules = _all_rules(distinct)
        started = time.process_time()
        pairs = 0
        for patient in facts:
            evaluator = PatientEvaluator(patient, on)
            for trial in rules:
                evaluator.evaluate(trial)
                pairs += 1
        seconds = time.process_time() - started
        out[label] = {
            "trials": len(rules),
            "pairs": pairs,
            "seconds": seconds,
            "pairs_per_second": pairs / seconds,
            "criteria_per_trial": statistics.mean(len(t.rules) for t in rules),
        }
    return out


def child_single(repeats: int, every_trial: bool) -> dict[str, Any]:
    """One patient against the trials, end to end, as the public form would run it."""
    setup_django()
    from django.db import connection, reset_queries

    from patients import matching
    from patients.models import Patient
    from trials.models import Trial

    if every_trial:
        # Worst case: every trial for any site, so the site pre-filter lets every pair through.
        Trial.objects.update(conditions=["Solid Tumor"], condition_mesh_terms=[])
    ids = list(Patient.objects.order_by("?").values_list("pk", flat=True)[: repeats + 1])
    timings = []
    for pk in ids:
        reset_queries()
        started = time.perf_counter()
        run = matching.match_patients([pk])
        timings.append((time.perf_counter() - started) * 1000)
    started = time.perf_counter()
    patient = matching.with_facts(Patient.objects.filter(pk=ids[0])).get()
    results = matching.evaluate_patient(
        patient, matching.rules_cache().rules(), datetime.date.today()
    )
    evaluate_only = (time.perf_counter() - started) * 1000
    connection.close()
    return {
        "trials_evaluated": run.evaluated,
        "cold_ms": timings[0],
        "warm_ms": statistics.median(timings[1:]),
        "warm_max_ms": max(timings[1:]),
        "read_and_evaluate_ms": evaluate_only,
        "results": len(results),
    }


def child_matrix(queue: str) -> dict[str, Any]:
    setup_django()
    from celery import group

    from patients import matching
    from patients.models import Match, Patient
    from patients.tasks import match_chunk_task

    Match.objects.all().delete()
    ids = list(Patient.objects.order_by("pk").values_list("pk", flat=True))
    chunks = list(matching.chunks(ids))
    started = time.perf_counter()
    result = group(match_chunk_task.s(chunk, None) for chunk in chunks).apply_async(queue=queue)
    outcomes = result.get(timeout=3600, interval=0.2)
    seconds = time.perf_counter() - started
    return {
        "chunks": len(chunks),
        "seconds": seconds,
        "evaluated": sum(item["evaluated"] for item in outcomes),
        "stored": Match.objects.count(),
        "flagged": Match.objects.filter(flagged=True).count(),
    }


# --- the parent ------------------------------------------------------------------------------


def import_patients(count: int, env: dict[str, str], processes: int = 2) -> float:
    sys.path.insert(0, str(PROJECT_DIR))
    from patients.synthetic import generate_bundles

    with tempfile.TemporaryDirectory() as tmp:
        folders = [Path(tmp) / f"part{index}" for index in range(processes)]
        for folder in folders:
            folder.mkdir()
        today = datetime.date.today()
        for index, bundle in enumerate(generate_bundles(count, seed=11, today=today)):
            mrn = bundle["entry"][0]["resource"]["identifier"][0]["value"]
            (folders[index % processes] / f"{mrn}.json").write_text(json.dumps(bundle))
        started = time.perf_counter()
        children = [
            subprocess.Popen(
                [
                    sys.executable,
                    "manage.py",
                    "import_patients",
                    "--no-match",
                    "--no-progress",
                    str(folder),
                ],
                cwd=PROJECT_DIR,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            for folder in folders
        ]
        for child in children:
            _, err = child.communicate()
            if child.returncode != 0:
                raise SystemExit(f"patient import failed:\n{err.decode()[-2000:]}")
        return time.perf_counter() - started


def start_workers(env: dict[str, str], queue: str, count: int = 2) -> list[subprocess.Popen[bytes]]:
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "--concurrency=1",
                "--pool=prefork",
                f"--queues={queue}",
                f"--hostname=bench{index}-{queue}@%h",
                "--loglevel=WARNING",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],
            cwd=PROJECT_DIR,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for index in range(count)
    ]
    time.sleep(6)  # let both workers connect before the clock starts
    return workers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--patients", type=int, default=5000)
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--rate-patients", type=int, default=100)
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES)
    parser.add_argument("--broker", default=DEFAULT_BROKER)
    parser.add_argument(
        "--keep", metavar="NAME", help="Build into this database and keep it (for profiling)."
    )
    parser.add_argument("--child", nargs="+")
    options = parser.parse_args()

    if options.child:
        kind, *rest = options.child
        handlers = {
            "setup": lambda: child_setup_trials(Path(rest[0])),
            "counts": child_counts,
            "rate": lambda: child_rate(int(rest[0])),
            "single": lambda: child_single(int(rest[0]), rest[1] == "every"),
            "matrix": lambda: child_matrix(rest[0]),
        }
        print(json.dumps(handlers[kind]()))
        return

    queue = f"bench-{uuid.uuid4().hex[:8]}"
    database = PostgresDatabase(options.postgres, keep=options.keep)
    with database as database_url, tempfile.TemporaryDirectory() as tmp:
        env = production_env(
            database_url,
            CELERY_BROKER_URL=options.broker,
            CELERY_RESULT_BACKEND=options.broker,
        )
        records = Path(tmp) / "records.json"
        build_records_file(options.trials, records)
        setup = _child(["--child", "setup", str(records)], env)
        print(
            f"trials: {setup['trials']} imported, criteria read for {setup['criteria_read']} "
            f"in {setup['criteria_seconds']:.1f} s"
        )
        seconds = import_patients(options.patients, env)
        counts = _child(["--child", "counts"], env)
        print(
            f"patients: {counts['patients']} imported in {seconds:.0f} s (2 processes); "
            f"{counts['criteria']} criteria; {counts['candidate_trials']} of {counts['trials']} "
            "trials are candidates (open)"
        )

        rate = _child(["--child", "rate", str(options.rate_patients)], env)
        for label in ("all", "distinct"):
            item = rate[label]
            print(
                f"evaluation rate, {label} trials ({item['trials']}, "
                f"{item['criteria_per_trial']:.1f} criteria each), {rate['patients']} patients: "
                f"{item['pairs_per_second']:,.0f} pairs/s on one core "
                f"({item['pairs']:,} pairs in {item['seconds']:.2f} s CPU)"
            )

        single = _child(["--child", "single", "10", "candidates"], env)
        print_single("candidates", single)
        workers = start_workers(env, queue)
        try:
            matrix = _child(["--child", "matrix", queue], env)
        finally:
            for worker in workers:
                worker.terminate()
            for worker in workers:
                worker.wait(timeout=60)
        considered = counts["patients"] * counts["trials"]
        print(
            f"full matrix, 2 workers: {counts['patients']} patients x {counts['trials']} trials "
            f"({considered:,} pairs; {matrix['evaluated']:,} past the pre-filters, evaluated and "
            f"stored) in {matrix['seconds']:.1f} s ({matrix['evaluated'] / matrix['seconds']:,.0f}"
            f" pairs/s; {matrix['chunks']} chunks; {matrix['flagged']:,} flagged)"
        )
        # Last, as it makes every trial one for any site: the worst case for one patient.
        single = _child(["--child", "single", "10", "every"], env)
        print_single("every trial evaluated", single)


def print_single(scope: str, single: dict[str, Any]) -> None:
    print(
        f"one patient end to end ({scope}: {single['trials_evaluated']} trials evaluated, "
        f"matches written): cold {single['cold_ms']:.0f} ms, warm median "
        f"{single['warm_ms']:.0f} ms (max {single['warm_max_ms']:.0f} ms); read + evaluate "
        f"without writing {single['read_and_evaluate_ms']:.0f} ms"
    )


if __name__ == "__main__":
    main()
