"""Mangled registry records through the real path: no record stops the others, none breaks a page.

Real recorded v2 records are mangled (a value anywhere replaced by a non-finite or huge number,
a wrong type, an absurd date or age, text with NUL, unpaired surrogates, bidi controls or
10,000 characters, deep nesting) and served beside the good ones by the fake ClinicalTrials.gov
over loopback, and written to files for ``sync_trials --from``. Every run must end (never
``running``), import every good record, report or import every mangled one, and print no
traceback; afterwards the public form's results, the admin trial pages, the API trial detail
and the matching of a patient all answer 2xx.
"""

from __future__ import annotations

import copy
import io
import json
import math
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import Client
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from patients import matching
from patients.fhir import read_bundle
from patients.services import patient_upsert
from tests.fakes.ctgov_server import FakeCtgovServer
from tests.patients.conftest import example
from tests.patients.test_prescreen import RESECTABLE, north, walk  # noqa: F401 - a fixture
from tests.trials.conftest import CTGOV_DATA
from trials.models import SyncRun, Trial

pytestmark = pytest.mark.django_db

BASES = ("NCT00000102", "NCT02210780", "NCT04592913")


def recorded(nct_id: str) -> dict[str, Any]:
    return json.loads((CTGOV_DATA / "v2" / f"{nct_id}.json").read_text())


GOOD = [recorded(path.stem) for path in sorted((CTGOV_DATA / "v2").glob("NCT*.json"))[:6]]
GOOD_IDS = {study["protocolSection"]["identificationModule"]["nctId"] for study in GOOD}


def nested(depth: int) -> Any:
    value: Any = "deep"
    for _ in range(depth):
        value = [value]
    return value


ODD_TEXT = st.sampled_from(
    [
        "a\x00b",
        "\ud800",
        "lone \udfff low",
        "\u202eevil\u202c",
        "\u2066isolate",
        "\x07\x1b[31mred",
        "x" * 10_000,
        "",
        " ",
        "0000-00-00",
        "2024-02-30",
        "9999-12",
        "-5 Years",
        "100000 Years",
        "NaN Years",
        "1e9 Days",
        "Infinity",
        "RECRUITING\x00",
    ]
)
BAD_VALUES: st.SearchStrategy[Any] = st.one_of(
    st.sampled_from(
        [math.inf, -math.inf, math.nan, 10**30, -(10**30), 1e308, -1, 0, True, None, [], {}]
    ),
    ODD_TEXT,
    st.text(st.characters(codec=None, exclude_categories=()), max_size=30),
    st.integers(min_value=2, max_value=300).map(nested),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in the record a value sits (containers too)."""
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            found.extend(paths(value, (*prefix, key)))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found.extend(paths(value, (*prefix, index)))
    return found


def put(record: dict[str, Any], where: tuple[Any, ...], value: Any) -> None:
    node: Any = record
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = value


def mangleable(record: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Every place but the NCT id and its parents (a record without one is tested apart)."""
    return [
        where
        for where in paths(record)
        if where != ("protocolSection",)
        and where[:2] != ("protocolSection", "identificationModule")
    ]


@st.composite
def mangled_record(draw: st.DrawFn, number: int) -> dict[str, Any]:
    record = copy.deepcopy(recorded(draw(st.sampled_from(BASES))))
    record["protocolSection"]["identificationModule"]["nctId"] = f"NCT9{number:07d}"
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        put(record, draw(st.sampled_from(mangleable(record))), draw(BAD_VALUES))
    return record


def batch() -> st.SearchStrategy[list[dict[str, Any]]]:
    return st.integers(min_value=0, max_value=10**6).flatmap(
        lambda start: st.tuples(*(mangled_record(start + offset) for offset in range(3))).map(list)
    )


SETTINGS = hypothesis_settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
    database=None,
)


def check_run(records: list[dict[str, Any]], stderr: str) -> None:
    run = SyncRun.objects.latest()
    assert run.status != SyncRun.Status.RUNNING
    assert run.status != SyncRun.Status.FAILED, run.message
    assert "Traceback" not in stderr
    stored = set(Trial.objects.values_list("nct_id", flat=True))
    assert stored >= GOOD_IDS
    reported = {error["record"] for error in run.errors}
    for record in records:
        nct_id = record["protocolSection"]["identificationModule"]["nctId"]
        assert nct_id in stored or nct_id in reported, (nct_id, run.errors)


def sync(*args: str) -> str:
    stderr = io.StringIO()
    try:
        call_command("sync_trials", *args, "--no-progress", stdout=io.StringIO(), stderr=stderr)
    except CommandError as exc:
        failure = str(exc)
    else:
        failure = "Some records could not be imported"
    assert "Some records could not be imported" in failure or not SyncRun.objects.latest().failed
    return stderr.getvalue()


def pages_answer(root: User, settings: Any) -> None:
    """Every page that shows a trial, and the matching of a patient, answer 2xx."""
    settings.PRESCREEN_MIN_FILL_SECONDS = 0  # the walk below answers at machine speed
    admin = Client()
    admin.force_login(root)
    api = Client()
    api.force_login(root)
    for trial in Trial.objects.all():
        change = admin.get(f"/admin/trials/trial/{trial.pk}/change/")
        assert change.status_code == 200, (trial.nct_id, change.status_code)
        detail = api.get(f"/api/v1/trials/{trial.nct_id}/")
        assert detail.status_code == 200, (trial.nct_id, detail.status_code)
    assert admin.get("/admin/trials/trial/").status_code == 200
    assert admin.get("/admin/patients/match/").status_code == 200
    assert api.get("/api/v1/trials/?page_size=200").status_code == 200
    answer = api.post("/api/v1/match/", example("EX1"), content_type="application/json")
    assert answer.status_code == 200, answer.content[:300]
    results = walk(Client(), RESECTABLE)
    assert Client().get(results).status_code in (404, 410)  # not this browser's
    visitor = Client()
    assert visitor.get(walk(visitor, RESECTABLE)).status_code == 200


@pytest.fixture
def root(db: None) -> User:
    return User.objects.create_superuser("root", "root@example.org", "x")


@pytest.fixture
def patient(db: None, north: Any) -> int:  # noqa: F811
    """A stored patient, so that each sync's re-match runs."""
    result = patient_upsert(read_bundle(example("EX1"), origin="test"), source="fhir", site=north)
    assert result.patient is not None
    return result.patient.pk


def test_mangled_records_from_the_registry_cost_only_themselves(
    root: User, patient: int, settings: Any
) -> None:
    with FakeCtgovServer(GOOD) as server:
        settings.CTGOV_BASE_URL = server.base_url
        settings.CTGOV_SYNC_QUERY = ""
        settings.CTGOV_MIN_REQUEST_INTERVAL = 0
        settings.CTGOV_MAX_ATTEMPTS = 1

        @given(records=batch())
        @SETTINGS
        def one_night(records: list[dict[str, Any]]) -> None:
            server.set_studies([*GOOD, *records])
            check_run(records, sync("--full"))

        one_night()
    matching.match_patients([patient])
    pages_answer(root, settings)


def test_mangled_record_files_cost_only_themselves(
    root: User, patient: int, tmp_path: Path, settings: Any
) -> None:
    (tmp_path / "good.json").write_text(json.dumps({"studies": GOOD}))

    @given(records=batch())
    @SETTINGS
    def one_file(records: list[dict[str, Any]]) -> None:
        mangled = tmp_path / "mangled.json"
        # The stdlib writer spells non-finite floats Infinity / NaN and escapes surrogates.
        mangled.write_text(json.dumps({"studies": records}))
        check_run(records, sync("--from", str(tmp_path)))

    one_file()
    matching.match_patients([patient])
    pages_answer(root, settings)
