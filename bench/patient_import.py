"""Patient import throughput: generated FHIR bundles into SQLite and PostgreSQL.

    .venv/bin/python bench/patient_import.py [--count 1000] [--postgres URL] [--large 10000]

Generates ``--count`` synthetic bundles (``patients.synthetic``, the generator behind
``manage.py generate_patients``) as files, then in a fresh process per database imports them
with the service behind ``manage.py import_patients`` (validation with fhir.resources, unit
conversion, per-fact upsert with the audit trail) and imports them again (unchanged).
Prints patients/second for both and the facts written.

``--large N`` (default 10,000; 0 skips it) also times one Synthea-style bundle of N entries,
most of them kinds the import never reads (encounters, claims, explanations of benefit,
immunizations, diagnostic reports) beside vital signs, conditions, medications and procedures
as Synthea writes them: seconds to read and store it, and the child process's peak memory.
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


def large_bundle(entries: int) -> dict[str, Any]:
    """One generated patient with ``entries`` more resources in Synthea's proportions."""
    sys.path.insert(0, str(PROJECT_DIR))
    from patients.synthetic import generate_bundles

    bundle = next(iter(generate_bundles(1, seed=11, today=datetime.date(2026, 11, 26))))
    patient = next(e for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")
    subject = {"reference": f"Patient/{patient['resource'].get('id', 'p')}"}
    loinc = "http://loinc.org"

    def filler(index: int) -> dict[str, Any]:
        day = f"20{10 + index % 15:02d}-{1 + index % 12:02d}-{1 + index % 28:02d}"
        kind = index % 10
        if kind in (0, 1):
            return {
                "resourceType": "Encounter",
                "id": f"e{index}",
                "status": "finished",
                "class": {"code": "AMB"},
                "subject": subject,
                "period": {"start": day, "end": day},
            }
        if kind in (2, 3):
            return {
                "resourceType": "Claim",
                "id": f"c{index}",
                "status": "active",
                "type": {"coding": [{"code": "professional"}]},
                "use": "claim",
                "patient": subject,
                "created": day,
                "provider": {"display": "Clinic"},
                "priority": {"coding": [{"code": "normal"}]},
                "insurance": [{"sequence": 1, "focal": True, "coverage": {"display": "Payer"}}],
                "item": [{"sequence": 1, "productOrService": {"text": "Visit"}}],
            }
        if kind in (4, 5):
            return {
                "resourceType": "ExplanationOfBenefit",
                "id": f"b{index}",
                "status": "active",
                "type": {"coding": [{"code": "professional"}]},
                "use": "claim",
                "patient": subject,
                "created": day,
                "insurer": {"display": "Payer"},
                "provider": {"display": "Clinic"},
                "outcome": "complete",
                "insurance": [{"focal": True, "coverage": {"display": "Payer"}}],
            }
        if kind == 6:
            return {
                "resourceType": "Observation",
                "id": f"o{index}",
                "status": "final",
                "code": {"coding": [{"system": loinc, "code": "8867-4", "display": "Heart rate"}]},
                "subject": subject,
                "effectiveDateTime": day,
                "valueQuantity": {
                    "value": 72,
                    "unit": "/min",
                    "system": "http://unitsofmeasure.org",
                    "code": "/min",
                },
            }
        if kind == 7:
            return {
                "resourceType": "Immunization",
                "id": f"i{index}",
                "status": "completed",
                "vaccineCode": {"text": "Influenza"},
                "patient": subject,
                "occurrenceDateTime": day,
            }
        if kind == 8:
            return {
                "resourceType": "DiagnosticReport",
                "id": f"d{index}",
                "status": "final",
                "code": {"text": "Lipid panel"},
                "subject": subject,
                "issued": day + "T09:00:00Z",
            }
        return {
            "resourceType": "MedicationRequest",
            "id": f"m{index}",
            "status": "completed",
            "intent": "order",
            "subject": subject,
            "authoredOn": day,
            "medicationCodeableConcept": {"text": "Acetaminophen 325 MG Oral Tablet"},
        }

    bundle["entry"] += [
        {"fullUrl": f"urn:uuid:filler-{index}", "resource": filler(index)}
        for index in range(entries)
    ]
    return bundle


def large_child(path: Path) -> dict[str, Any]:
    import resource

    setup_django()
    from django.core.management import call_command

    from patients.services import ImportReport, import_patient_document_file

    call_command("migrate", verbosity=0)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    report = ImportReport()
    import_patient_document_file(path, report)
    seconds = time.perf_counter() - started
    if report.created != 1:
        raise SystemExit(f"unexpected: {report.summary()}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "seconds": seconds,
        "peak_mb": peak / 1024,
        "grown_mb": (peak - before) / 1024,
        "notes": len(report.problems),
    }


def measure_large(entries: int, tmp: Path) -> dict[str, Any]:
    path = tmp / "large.json"
    path.write_text(json.dumps(large_bundle(entries)))
    result = run_child(__file__, ["--large-child", str(path)], f"sqlite:///{tmp / 'large.sqlite3'}")
    print(
        f"large      one bundle of {entries:,} entries: {result['seconds']:.2f} s, "
        f"peak memory {result['peak_mb']:.0f} MB ({result['grown_mb']:+.0f} MB for the import), "
        f"{result['notes']} notes",
        flush=True,
    )
    return {"database": "sqlite", "large_bundle_entries": entries, **result}


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
    parser.add_argument("--large", type=int, default=10_000)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--large-child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child)))
        return
    if args.large_child:
        print(json.dumps(large_child(args.large_child)))
        return
    with tempfile.TemporaryDirectory(prefix="bench-patients-") as tmp:
        folder = Path(tmp) / "bundles"
        folder.mkdir()
        write_bundles(args.count, folder)
        results = [measure("sqlite", folder, f"sqlite:///{Path(tmp) / 'app.sqlite3'}")]
        if args.postgres:
            with PostgresDatabase(args.postgres) as url:
                results.append(measure("postgresql", folder, url))
        if args.large:
            results.append(measure_large(args.large, Path(tmp)))
        json.dump(results, sys.stdout, indent=2)
        print()


if __name__ == "__main__":
    main()
