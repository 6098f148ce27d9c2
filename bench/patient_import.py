"""Patient import throughput: generated FHIR bundles into SQLite and PostgreSQL.

    .venv/bin/python bench/patient_import.py [--count 1000] [--postgres URL]

Generates ``--count`` synthetic bundles (``patients.synthetic``, the generator behind
``manage.py generate_patients``) as files, then in a fresh process per database imports them
with the service behind ``manage.py import_patients`` (validation with fhir.resources, unit
conversion, per-fact upsert with the audit trail) and imports them again (unchanged).
Prints patients/second for both and the facts written.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import DEFAULT_POSTGRES, PROJECT_DIR, PostgresDatabase, run_child, setup_django


def write_bundles(count: int, folder: Path) -> None:
    sys.path.insert(0, str(PROJECT_DIR))
    from patients.synthetic import generate_bundles  # pure Python: no Django needed

    for bundle in generate_bundles(count, seed=7, today=datetime.date(2026, 11, 26)):
        mrn = bundle["entry"][0]["resource"]["identifier"][0]["value"]
        (folder / f"{mrn}.json").write_text(json.dumps(bundle))


def child(folder: Path) -> dict[str, Any]:
    setup_django()
    from django.core.management import call_command

    from patients.models import FACT_MODELS
    from patients.services import import_patient_files

    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    first = import_patient_files([folder])
    first_seconds = time.perf_counter() - started
    started = time.perf_counter()
    again = import_patient_files([folder])
    again_seconds = time.perf_counter() - started
    if first.created != first.files or again.unchanged != again.files:
        raise SystemExit(f"unexpected: {first.summary()} / {again.summary()}")
    return {
        "patients": first.created,
        "facts": sum(model._default_manager.count() for model in FACT_MODELS),
        "first_seconds": first_seconds,
        "again_seconds": again_seconds,
    }


def measure(label: str, folder: Path, database_url: str) -> dict[str, Any]:
    result = run_child(__file__, ["--child", str(folder)], database_url)
    first = result["patients"] / result["first_seconds"]
    again = result["patients"] / result["again_seconds"]
    print(
        f"{label:<10} {result['patients']} patients ({result['facts']} facts): "
        f"first import {first:,.1f} patients/s, unchanged re-import {again:,.1f} patients/s",
        flush=True,
    )
    return {
        "database": label,
        "patients": result["patients"],
        "facts": result["facts"],
        "first_import_per_s": round(first, 1),
        "reimport_unchanged_per_s": round(again, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child)))
        return
    with tempfile.TemporaryDirectory(prefix="bench-patients-") as tmp:
        folder = Path(tmp) / "bundles"
        folder.mkdir()
        write_bundles(args.count, folder)
        results = [measure("sqlite", folder, f"sqlite:///{Path(tmp) / 'app.sqlite3'}")]
        if args.postgres:
            with PostgresDatabase(args.postgres) as url:
                results.append(measure("postgresql", folder, url))
        json.dump(results, sys.stdout, indent=2)
        print()


if __name__ == "__main__":
    main()
