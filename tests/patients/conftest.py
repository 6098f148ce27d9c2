"""Fixtures for the patients tests: the example FHIR bundles and their expected outcomes."""

import json
from pathlib import Path
from typing import Any

import pytest

FHIR_DATA = Path(__file__).resolve().parents[2] / "patients" / "data" / "fhir"
EXAMPLES = FHIR_DATA / "examples"


def example(name: str) -> dict[str, Any]:
    return json.loads((EXAMPLES / f"{name}.json").read_text())


@pytest.fixture(scope="session")
def expectations() -> dict[str, Any]:
    return json.loads((EXAMPLES / "expectations.json").read_text())
