"""Write synthetic gastric-cancer patients as FHIR R4 bundle files, one ``<MRN>.json`` each.

Importing them is the importer's business; this command only writes files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from patients import synthetic


class Command(BaseCommand):
    help = (
        "Write COUNT synthetic gastric-cancer patients (no real person) as mCODE-style FHIR R4 "
        "collection bundles into DIR, one <MRN>.json per patient. Same seed, same patients "
        "(dates are relative to today)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--count", type=int, required=True, help="How many patients.")
        parser.add_argument("--seed", type=int, default=0, help="Random seed (default 0).")
        parser.add_argument(
            "--site", default="DEMO", help="Site code that prefixes the MRNs (default DEMO)."
        )
        parser.add_argument(
            "--output", type=Path, required=True, help="Folder to write to (created if missing)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        count: int = options["count"]
        seed: int = options["seed"]
        site: str = options["site"]
        output: Path = options["output"]
        if count < 1:
            raise CommandError("--count must be at least 1.")
        if not synthetic.valid_site_code(site):
            raise CommandError(
                f"--site {site!r}: use letters and digits, optionally joined by dashes."
            )
        try:
            output.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CommandError(f"Cannot create {output}: {exc}") from exc

        today = timezone.localdate()
        incomplete = metastatic = 0
        for bundle in synthetic.generate_bundles(count, seed=seed, today=today, site_code=site):
            summary = synthetic.summarize(bundle)
            incomplete += summary.incomplete
            metastatic += summary.m == "cM1" or bool(summary.metastases)
            text = json.dumps(bundle, indent=2, ensure_ascii=False) + "\n"
            (output / f"{summary.mrn}.json").write_text(text, encoding="utf-8")
        self.stdout.write(
            f"Wrote {count} synthetic FHIR bundle(s) to {output} (site {site}, seed {seed}, "
            f"dates relative to {today}): {incomplete} incomplete, {metastatic} metastatic."
        )
