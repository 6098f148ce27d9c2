"""``manage.py profile_schema``: print the JSON Schema of the patient profile format."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand

from patients.profile_json import profile_schema


class Command(BaseCommand):
    help = (
        "Print the JSON Schema of the profile JSON format (it is built from the models; "
        "patients/schema/patient-profile.schema.json is this output, checked by the tests)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(json.dumps(profile_schema(), indent=2, ensure_ascii=False))
