"""Trial import throughput and memory, on SQLite and PostgreSQL, beside a bare insert.

    .venv/bin/python bench/import_throughput.py [--records 10000] [--postgres URL]

Builds a JSON array of real-shaped records (the recorded full records in trials/data/ctgov,
repeated under new NCT ids), then for each database, in fresh processes:

* first import: ``manage.py sync_trials --from FILE`` work (``import_trial_files``) into an
  empty, migrated database: records/second and the process's peak memory;
* unchanged re-import of the same file: records/second, and how many times faster;
* baseline: the same file parsed, each record serialised to JSON and written with a bare
  ``executemany("INSERT ... ON CONFLICT (nct_id) DO UPDATE ...")`` into a one-table schema.

Targets (issue #3): first import >= 50% of the baseline's rate; unchanged re-import >= 5x
the first import; peak memory of a 10,000-record import < 300 MB.
"""

from __future__ import annotations

import argparse
import copy
import json
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import DEFAULT_POSTGRES, PROJECT_DIR, PostgresDatabase, run_child, setup_django

DATA = PROJECT_DIR / "trials" / "data" / "ctgov"
FULL_RECORD_SOURCES = [
    DATA / "v2",
    DATA / "v2-partial",
    DATA / "bulk" / "dgg32_clinical-trials-public_ctg-studies(5).json.gz",
    DATA / "bulk" / "UserZetsu_dtx-analysis_ctg-studies.json.gz",
    DATA / "bulk" / "scampbe3_my-website_ctg-studies.json.gz",
]


def build_records_file(count: int, target: Path) -> int:
    """Write ``count`` records (real ones, cycled, with fresh NCT ids); returns its size."""
    sys.path.insert(0, str(PROJECT_DIR))
    from tests.fakes.ctgov_server import load_recorded_studies

    sources = load_recorded_studies(*FULL_RECORD_SOURCES)
    with target.open("w") as stream:
        stream.write("[")
        for index in range(count):
            record = copy.deepcopy(sources[index % len(sources)])
            record["protocolSection"]["identificationModule"]["nctId"] = f"NCT9{index:07d}"
            stream.write(("," if index else "") + json.dumps(record))
        stream.write("]")
    return target.stat().st_size


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_import(path: Path) -> dict[str, Any]:
    setup_django()
    from django.core.management import call_command

    from trials.models import Trial
    from trials.services import import_trial_files

    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    first = import_trial_files(paths=[path])
    first_seconds = time.perf_counter() - started
    first_peak = peak_rss_mb()
    started = time.perf_counter()
    again = import_trial_files(paths=[path])
    again_seconds = time.perf_counter() - started
    if first.created != first.fetched or again.unchanged != again.fetched:
        raise SystemExit(f"unexpected counts: {first.summary()} / {again.summary()}")
    return {
        "records": first.fetched,
        "trials": Trial.objects.count(),
        "first_seconds": first_seconds,
        "reimport_seconds": again_seconds,
        "peak_rss_mb": first_peak,
    }


def child_bare(path: Path, database_url: str) -> dict[str, Any]:
    started = time.perf_counter()
    with path.open() as stream:
        records = json.load(stream)
    rows = [
        (record["protocolSection"]["identificationModule"]["nctId"], json.dumps(record))
        for record in records
    ]
    if database_url.startswith("sqlite"):
        import sqlite3

        lite = sqlite3.connect(database_url.removeprefix("sqlite:///"))
        lite.execute("CREATE TABLE raw_trial (nct_id TEXT PRIMARY KEY, raw TEXT NOT NULL)")
        with lite:
            lite.executemany(
                "INSERT INTO raw_trial VALUES (?, ?) "
                "ON CONFLICT (nct_id) DO UPDATE SET raw = excluded.raw",
                rows,
            )
        lite.close()
    else:
        import psycopg

        with psycopg.connect(database_url) as conn, conn.cursor() as cursor:
            cursor.execute("CREATE TABLE raw_trial (nct_id text PRIMARY KEY, raw jsonb NOT NULL)")
            cursor.executemany(
                "INSERT INTO raw_trial VALUES (%s, %s) "
                "ON CONFLICT (nct_id) DO UPDATE SET raw = EXCLUDED.raw",
                rows,
            )
    return {"records": len(rows), "seconds": time.perf_counter() - started}


def run(kind: str, path: Path, database_url: str) -> dict[str, Any]:
    return run_child(
        __file__, ["--child", kind, "--file", str(path), "--db", database_url], database_url
    )


def measure(label: str, path: Path, app_url: str, bare_url: str) -> dict[str, Any]:
    imported = run("import", path, app_url)
    bare = run("bare", path, bare_url)
    records = imported["records"]
    first_rate = records / imported["first_seconds"]
    again_rate = records / imported["reimport_seconds"]
    bare_rate = bare["records"] / bare["seconds"]
    result = {
        "database": label,
        "records": records,
        "first_import_per_s": round(first_rate),
        "reimport_unchanged_per_s": round(again_rate),
        "bare_insert_per_s": round(bare_rate),
        "first_vs_bare": round(first_rate / bare_rate, 2),
        "reimport_vs_first": round(again_rate / first_rate, 1),
        "peak_rss_mb": round(imported["peak_rss_mb"]),
    }
    print(
        f"{label:<10} {records} records: first import {first_rate:,.0f}/s, "
        f"unchanged re-import {again_rate:,.0f}/s ({again_rate / first_rate:.1f}x), "
        f"bare insert {bare_rate:,.0f}/s (import at {first_rate / bare_rate:.0%} of it), "
        f"peak memory {imported['peak_rss_mb']:.0f} MB",
        flush=True,
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument(
        "--postgres",
        default=DEFAULT_POSTGRES,
        help="Server URL to create throwaway databases on ('' to leave PostgreSQL out).",
    )
    parser.add_argument("--child", choices=("import", "bare"), help=argparse.SUPPRESS)
    parser.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        result = (
            child_import(args.file) if args.child == "import" else child_bare(args.file, args.db)
        )
        print(json.dumps(result))
        return

    with tempfile.TemporaryDirectory(prefix="bench-import-") as tmp:
        folder = Path(tmp)
        records_file = folder / "records.json"
        size = build_records_file(args.records, records_file)
        print(f"{args.records} real-shaped records, {size / 1e6:.0f} MB of JSON", flush=True)
        results = [
            measure(
                "sqlite",
                records_file,
                f"sqlite:///{folder / 'app.sqlite3'}",
                f"sqlite:///{folder / 'bare.sqlite3'}",
            )
        ]
        if args.postgres:
            with (
                PostgresDatabase(args.postgres) as app_url,
                PostgresDatabase(args.postgres) as bare_url,
            ):
                results.append(measure("postgresql", records_file, app_url, bare_url))
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
