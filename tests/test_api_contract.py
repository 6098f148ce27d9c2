"""The REST API keeps its published contract: Schemathesis generates requests from the OpenAPI
schema the service serves at ``/api/schema/`` and sends them to the app in-process (WSGI).

Every operation gets valid requests (positive) and invalid ones (negative), with random ids
and with the ids of real objects of the caller's site. Each answer is checked: no 5xx, a status
code the schema lists, the content type and headers it lists, and a body that validates
against its schema. At least 1,000 requests in all.

The caller is a site admin with a token; the data are the recorded registry records (criteria
read) and patients with stored matches at two sites.
"""

from __future__ import annotations

import datetime
from collections import Counter
from typing import Any

import pytest
import schemathesis
from django.core.cache import cache
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from patients import matching
from patients.access import SITE_ADMIN_GROUP
from patients.models import ApiToken, Patient, PerformanceStatus
from tests.patients.test_admin_scoping import make_site, make_staff
from tests.patients.test_prescreen import registry  # noqa: F401 - a fixture

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
# Examples per operation: valid requests with random ids, valid ones with real ids, invalid.
POSITIVE, PINNED, NEGATIVE = 40, 30, 25
MINIMUM_REQUESTS = 1000

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(registry: int, settings: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:  # noqa: F811
    settings.ALLOWED_HOSTS = ["*"]
    monkeypatch.setattr("trials.api.sync_trials_task.delay", lambda **kwargs: QueuedTask())
    site, other = make_site("site-a", "Site A"), make_site("site-b", "Site B")
    admin = make_staff("admin-a", site, role=SITE_ADMIN_GROUP)
    mine = []
    for place, mrn in ((site, "A-1"), (site, "A-2"), (other, "B-1")):
        patient = Patient.objects.create(
            site=place, external_id=mrn, sex="male", birth_date=datetime.date(1961, 4, 18)
        )
        PerformanceStatus.objects.create(patient=patient, value=1)
        if place == site:
            mine.append(patient)
    matching.match_patients(list(Patient.objects.values_list("pk", flat=True)))
    first = mine[0].matches.order_by("trial_id").first()
    assert first is not None
    return {
        "token": ApiToken.issue(admin, name="contract test")[1],
        "ids": {
            "id": str(mine[0].pk),
            "match": f"{first.patient_id}-{first.trial_id}",
            "nct_id": first.trial.nct_id,
        },
    }


class QueuedTask:
    id = "contract-test-task"


@pytest.fixture
def in_process() -> Any:
    """The WSGI app, called in this thread on the test's database connection (and its
    transaction), which the app must then not close at the end of each request, as Django's
    own test client arranges."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield get_wsgi_application()
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def test_every_operation_keeps_the_schema(world: dict[str, Any], in_process: Any) -> None:
    schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", in_process)
    headers = {"Authorization": f"Token {world['token']}"}
    sent: Counter[str] = Counter()
    server_errors: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    # Deletes last, so that the pinned patient is there for the others.
    operations.sort(key=lambda operation: operation.method.upper() == "DELETE")
    assert len(operations) >= 15, [op.label for op in operations]

    for operation in operations:
        pinned = _pinned_ids(operation, world["ids"])
        runs: list[tuple[GenerationMode, int, dict[str, str] | None]] = [
            (GenerationMode.POSITIVE, POSITIVE, None)
        ]
        if pinned:
            runs.append((GenerationMode.POSITIVE, PINNED, pinned))
        runs.append((GenerationMode.NEGATIVE, NEGATIVE, None))
        for mode, examples, path_parameters in runs:
            strategy = operation.as_strategy(generation_mode=mode, path_parameters=path_parameters)

            _exchange(strategy, examples, operation.label, headers, sent, server_errors)

    total = sum(sent.values())
    print(f"{total} requests over {len(operations)} operations, {len(server_errors)} 5xx")
    assert not server_errors
    assert total >= MINIMUM_REQUESTS, dict(sent)
    assert all(sent[op.label] >= POSITIVE for op in operations), dict(sent)


def _exchange(
    strategy: Any,
    examples: int,
    label: str,
    headers: dict[str, str],
    sent: Counter[str],
    server_errors: list[str],
) -> None:
    """Send ``examples`` generated requests of one operation and check every answer."""

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def exchange(case: Any) -> None:
        cache.clear()  # the throttles' counts: this test sends far more than a client may
        response = case.call(headers=headers)
        sent[label] += 1
        if response.status_code >= 500:
            server_errors.append(f"{label}: {response.status_code}")
        case.validate_response(response, checks=CHECKS, headers=headers)

    exchange()


def _pinned_ids(operation: Any, ids: dict[str, str]) -> dict[str, str] | None:
    """The path parameters of ``operation`` set to real objects of the caller's site (None:
    the operation has no path parameters)."""
    names = [
        parameter.name
        for parameter in operation.path_parameters
        if getattr(parameter, "location", "path") == "path"
    ]
    if not names:
        return None
    chosen = {}
    for name in names:
        if name == "nct_id":
            chosen[name] = ids["nct_id"]
        elif "matches/{" in operation.path:
            chosen[name] = ids["match"]
        else:
            chosen[name] = ids["id"]
    return chosen
