"""The fake ClinicalTrials.gov API v2 server keeps the real API's paging rules and fails on cue."""

import contextlib
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.fakes.ctgov_server import (
    DEFAULT_FAULT_KINDS,
    FakeCtgovServer,
    load_recorded_studies,
    nct_id_of,
)

REPO = Path(__file__).resolve().parent.parent
CTGOV_DATA = REPO / "trials" / "data" / "ctgov"
RECORDED_DIRS = (CTGOV_DATA / "v2", CTGOV_DATA / "v2-partial")


def make_study(
    number: int,
    *,
    updated: str | None = None,
    status: str = "RECRUITING",
    conditions: tuple[str, ...] = ("Gastric Cancer",),
    title: str = "A study",
) -> dict[str, Any]:
    status_module: dict[str, Any] = {"overallStatus": status}
    if updated is not None:
        status_module["lastUpdatePostDateStruct"] = {"date": updated, "type": "ACTUAL"}
    return {
        "protocolSection": {
            "identificationModule": {"nctId": f"NCT{number:08d}", "briefTitle": title},
            "statusModule": status_module,
            "conditionsModule": {"conditions": list(conditions)},
        },
        "hasResults": False,
    }


def ids(studies: list[dict[str, Any]]) -> list[str]:
    return [nct_id_of(study) for study in studies]


def all_pages(session: requests.Session, url: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    pages = []
    token = None
    while True:
        query = dict(params) if token is None else {**params, "pageToken": token}
        response = session.get(f"{url}/studies", params=query, timeout=5)
        assert response.status_code == 200, response.text
        pages.append(response.json())
        token = pages[-1].get("nextPageToken")
        if token is None:
            return pages


@pytest.fixture(scope="module")
def recorded() -> list[dict[str, Any]]:
    return load_recorded_studies(*RECORDED_DIRS)


@pytest.fixture
def server(recorded: list[dict[str, Any]]) -> Iterator[FakeCtgovServer]:
    with FakeCtgovServer(recorded) as fake:
        yield fake


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as http:
        yield http


# --- recorded data ---------------------------------------------------------------------------


def test_recorded_records_load_from_single_files_pages_and_arrays(
    recorded: list[dict[str, Any]],
) -> None:
    assert len(recorded) == 59
    bulk = load_recorded_studies(CTGOV_DATA / "bulk")  # gzipped pages and website arrays
    assert len(bulk) > 1000
    assert len(set(ids(bulk))) == len(bulk)
    page = load_recorded_studies(CTGOV_DATA / "bulk" / "biomcp_trials_NCT04280705.json.gz")
    assert ids(page) == ["NCT04280705"]


def test_unreadable_document_is_refused(tmp_path: Path) -> None:
    (tmp_path / "odd.json").write_text(json.dumps({"hello": "world"}))
    with pytest.raises(ValueError, match="neither a study"):
        load_recorded_studies(tmp_path)


# --- paging ----------------------------------------------------------------------------------


def test_pages_return_every_record_once_in_nct_id_order(
    server: FakeCtgovServer, session: requests.Session, recorded: list[dict[str, Any]]
) -> None:
    pages = all_pages(session, server.base_url, {"pageSize": 7})

    served = [study for page in pages for study in page["studies"]]
    assert ids(served) == sorted(ids(recorded))
    assert [len(page["studies"]) for page in pages] == [7] * 8 + [3]
    assert all("nextPageToken" in page for page in pages[:-1])
    assert "nextPageToken" not in pages[-1]


def test_default_page_size_is_ten_and_zero_means_default(
    server: FakeCtgovServer, session: requests.Session
) -> None:
    for params in ({}, {"pageSize": 0}):
        response = session.get(f"{server.base_url}/studies", params=params, timeout=5)
        assert len(response.json()["studies"]) == 10


def test_page_size_may_change_between_pages(
    server: FakeCtgovServer, session: requests.Session, recorded: list[dict[str, Any]]
) -> None:
    url = f"{server.base_url}/studies"
    first = session.get(url, params={"pageSize": 5}, timeout=5).json()
    second = session.get(
        url, params={"pageSize": 50, "pageToken": first["nextPageToken"]}, timeout=5
    ).json()

    assert ids(first["studies"] + second["studies"]) == sorted(ids(recorded))[:55]
    assert "nextPageToken" in second


def test_total_count_is_on_the_first_page_only(
    server: FakeCtgovServer, session: requests.Session
) -> None:
    pages = all_pages(session, server.base_url, {"pageSize": 20, "countTotal": "true"})

    assert len(pages) == 3
    assert pages[0]["totalCount"] == 59
    assert all("totalCount" not in page for page in pages[1:])


def test_page_token_is_bound_to_the_first_request_parameters(
    server: FakeCtgovServer, session: requests.Session
) -> None:
    url = f"{server.base_url}/studies"
    first = {"query.cond": "gastric", "filter.overallStatus": "COMPLETED,RECRUITING"}
    token = session.get(url, params={**first, "pageSize": "2"}, timeout=5).json()["nextPageToken"]

    # countTotal and pageSize may change; the token's own parameters may not.
    allowed = {**first, "pageSize": "3", "countTotal": "true", "pageToken": token}
    assert session.get(url, params=allowed, timeout=5).status_code == 200
    changed = {**first, "query.cond": "melanoma", "pageToken": token}
    refused = session.get(url, params=changed, timeout=5)
    assert refused.status_code == 400
    assert "first page" in refused.json()["message"]
    dropped = session.get(url, params={"pageToken": token}, timeout=5)
    assert dropped.status_code == 400
    garbage = session.get(url, params={**first, "pageToken": "abracadabra"}, timeout=5)
    assert garbage.status_code == 400
    assert garbage.headers["Content-Type"] == "application/json"


def test_page_size_above_1000_is_coerced_down(session: requests.Session) -> None:
    with FakeCtgovServer(make_study(n) for n in range(1, 1201)) as fake:
        response = session.get(f"{fake.base_url}/studies", params={"pageSize": 5000}, timeout=10)
        page = response.json()
        assert len(page["studies"]) == 1000
        assert int(response.headers["Content-Length"]) == len(response.content)
        rest = session.get(
            f"{fake.base_url}/studies",
            params={"pageSize": 5000, "pageToken": page["nextPageToken"]},
            timeout=10,
        ).json()
    assert len(rest["studies"]) == 200
    assert "nextPageToken" not in rest


@pytest.mark.parametrize("value", ["-1", "ten"])
def test_bad_page_size_is_refused(
    server: FakeCtgovServer, session: requests.Session, value: str
) -> None:
    response = session.get(f"{server.base_url}/studies", params={"pageSize": value}, timeout=5)
    assert response.status_code == 400


def test_trailing_empty_page_when_records_end_on_a_page_boundary(
    session: requests.Session,
) -> None:
    studies = [make_study(n) for n in range(1, 11)]
    with FakeCtgovServer(studies, trailing_empty_page=True) as fake:
        pages = all_pages(session, fake.base_url, {"pageSize": 5})
    assert [len(page["studies"]) for page in pages] == [5, 5, 0]
    assert pages[-1] == {"studies": []}

    with FakeCtgovServer(studies) as fake:
        pages = all_pages(session, fake.base_url, {"pageSize": 5})
    assert [len(page["studies"]) for page in pages] == [5, 5]


def test_records_added_between_pages_after_the_cursor_are_served(
    session: requests.Session,
) -> None:
    with FakeCtgovServer(make_study(n) for n in (1, 2, 3, 4)) as fake:
        url = f"{fake.base_url}/studies"
        first = session.get(url, params={"pageSize": 2}, timeout=5).json()
        fake.upsert_study(make_study(9))
        fake.remove_study("NCT00000003")
        second = session.get(
            url, params={"pageSize": 5, "pageToken": first["nextPageToken"]}, timeout=5
        ).json()
    assert ids(first["studies"]) == ["NCT00000001", "NCT00000002"]
    assert ids(second["studies"]) == ["NCT00000004", "NCT00000009"]


def test_no_match_is_an_empty_page(server: FakeCtgovServer, session: requests.Session) -> None:
    response = session.get(
        f"{server.base_url}/studies",
        params={"filter.overallStatus": "SUSPENDED", "countTotal": "true"},
        timeout=5,
    )
    assert response.json() == {"totalCount": 0, "studies": []}


# --- filters ---------------------------------------------------------------------------------


@pytest.fixture
def dated_server() -> Iterator[FakeCtgovServer]:
    studies = [
        make_study(1, updated="2023-01-14", status="COMPLETED"),
        make_study(2, updated="2023-01-15", status="RECRUITING"),
        make_study(3, updated="2023-01-16", status="NOT_YET_RECRUITING"),
        make_study(4, updated=None, status="RECRUITING"),
        make_study(5, updated="2024-06-01", status="WITHDRAWN", conditions=("Melanoma",)),
    ]
    with FakeCtgovServer(studies) as fake:
        yield fake


def served_ids(session: requests.Session, fake: FakeCtgovServer, params: dict[str, str]) -> list:
    pages = all_pages(session, fake.base_url, {**params, "pageSize": 2})
    return ids([study for page in pages for study in page["studies"]])


def test_last_update_date_range_is_inclusive_and_needs_the_date(
    dated_server: FakeCtgovServer, session: requests.Session
) -> None:
    since = {"filter.advanced": "AREA[LastUpdatePostDate]RANGE[2023-01-15,MAX]"}
    assert served_ids(session, dated_server, since) == [
        "NCT00000002",
        "NCT00000003",
        "NCT00000005",
    ]
    # Parts the fake does not understand are ignored; the date range still applies.
    combined = {
        "filter.advanced": "AREA[StudyType]INTERVENTIONAL AND "
        "AREA[LastUpdatePostDate]RANGE[2023-01-15,2023-01-16]"
    }
    assert served_ids(session, dated_server, combined) == ["NCT00000002", "NCT00000003"]


def test_overall_status_filter_takes_comma_or_pipe_lists(
    dated_server: FakeCtgovServer, session: requests.Session
) -> None:
    for value in ("RECRUITING,COMPLETED", "RECRUITING|COMPLETED"):
        assert served_ids(session, dated_server, {"filter.overallStatus": value}) == [
            "NCT00000001",
            "NCT00000002",
            "NCT00000004",
        ]


def test_condition_query_matches_any_or_group(
    dated_server: FakeCtgovServer, session: requests.Session
) -> None:
    assert served_ids(session, dated_server, {"query.cond": "melanoma"}) == ["NCT00000005"]
    assert len(served_ids(session, dated_server, {"query.cond": '("stomach" OR gastric)'})) == 4
    assert served_ids(session, dated_server, {"query.cond": "lymphoma"}) == []


def test_condition_query_on_recorded_records(
    server: FakeCtgovServer, session: requests.Session, recorded: list[dict[str, Any]]
) -> None:
    found = served_ids(session, server, {"query.cond": "gastric OR GEJ OR stomach"})
    assert "NCT03221426" in found  # KEYNOTE-585
    assert 0 < len(found) < len(recorded)


# --- single study and version ----------------------------------------------------------------


def test_single_study_and_unknown_study(server: FakeCtgovServer, session: requests.Session) -> None:
    found = session.get(f"{server.base_url}/studies/NCT04280705", timeout=5)
    assert found.status_code == 200
    assert found.headers["Content-Type"] == "application/json"
    assert nct_id_of(found.json()) == "NCT04280705"

    missing = session.get(f"{server.base_url}/studies/NCT99999999", timeout=5)
    assert missing.status_code == 404
    assert "NCT99999999" in missing.json()["message"]
    assert session.get(f"{server.base_url}/studies/not-an-id", timeout=5).status_code == 400


def test_version(server: FakeCtgovServer, session: requests.Session) -> None:
    version = session.get(f"{server.base_url}/version", timeout=5).json()
    assert version["apiVersion"] == "2.0.3"
    assert len(version["dataTimestamp"]) == len("2026-01-01T00:00:00")


# --- faults ----------------------------------------------------------------------------------


def test_scripted_faults_as_the_client_sees_them(
    server: FakeCtgovServer, session: requests.Session
) -> None:
    server.retry_after = "2"
    server.stall_seconds = 1.0
    server.script_faults(["429", None, "500", "503", "truncate", "stall", "reset", "not_json"])
    url = f"{server.base_url}/studies"

    limited = session.get(url, timeout=5)
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "2"
    assert session.get(url, timeout=5).status_code == 200
    assert session.get(url, timeout=5).status_code == 500
    assert session.get(f"{url}/NCT04280705", timeout=5).status_code == 503
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        session.get(url, timeout=5)
    started = time.monotonic()
    with pytest.raises(requests.exceptions.ReadTimeout):
        session.get(url, timeout=(5, 0.3))
    assert time.monotonic() - started < 0.9
    with pytest.raises(requests.exceptions.ConnectionError) as reset:
        session.get(url, timeout=5)
    assert not isinstance(reset.value, requests.exceptions.Timeout)
    not_json = session.get(url, timeout=5)
    assert not_json.status_code == 200
    assert not_json.headers["Content-Type"] == "text/html"
    with pytest.raises(requests.exceptions.JSONDecodeError):
        not_json.json()
    # The script is used up: normal answers again.
    assert session.get(url, timeout=5).status_code == 200

    log = server.requests
    assert [entry.fault for entry in log] == [
        "429",
        None,
        "500",
        "503",
        "truncate",
        "stall",
        "reset",
        "not_json",
        None,
    ]
    assert [entry.status for entry in log] == [429, 200, 500, 503, 200, None, None, 200, 200]


def test_version_does_not_consume_scripted_faults(
    server: FakeCtgovServer, session: requests.Session
) -> None:
    server.script_faults(["500"])
    assert session.get(f"{server.base_url}/version", timeout=5).status_code == 200
    assert session.get(f"{server.base_url}/studies", timeout=5).status_code == 500


def test_unknown_fault_kind_is_refused(server: FakeCtgovServer) -> None:
    with pytest.raises(ValueError, match="unknown fault kind"):
        server.script_faults(["418"])
    with pytest.raises(ValueError, match="unknown fault kind"):
        server.fault_kinds = ["timeout"]


def fault_sequence(seed: int, requests_made: int = 40) -> list[str | None]:
    with FakeCtgovServer([make_study(1)], seed=seed) as fake, requests.Session() as http:
        fake.fault_rate = 0.5
        fake.fault_kinds = ["429", "500", "503", "not_json", "truncate", "reset"]
        for _ in range(requests_made):
            # truncate and reset raise
            with contextlib.suppress(requests.exceptions.RequestException):
                http.get(f"{fake.base_url}/studies", timeout=5)
        return [entry.fault for entry in fake.requests]


def test_random_faults_are_reproducible_with_a_seed() -> None:
    first = fault_sequence(seed=7)
    assert first == fault_sequence(seed=7)
    assert first != fault_sequence(seed=8)
    assert None in first
    assert len({fault for fault in first if fault is not None}) > 2
    assert set(DEFAULT_FAULT_KINDS) >= {fault for fault in first if fault is not None}


def test_delay_slows_normal_answers(server: FakeCtgovServer, session: requests.Session) -> None:
    server.delay = 0.2
    started = time.monotonic()
    session.get(f"{server.base_url}/studies", timeout=5).raise_for_status()
    assert time.monotonic() - started >= 0.2


def test_request_log_records_path_and_params(
    server: FakeCtgovServer, session: requests.Session
) -> None:
    params = {"query.cond": "gastric cancer", "pageSize": "3", "format": "json"}
    session.get(f"{server.base_url}/studies", params=params, timeout=5)
    session.get(f"{server.base_url}/studies/NCT99999999", timeout=5)

    first, second = server.requests
    assert (first.method, first.path, first.params) == ("GET", "/api/v2/studies", params)
    assert (first.fault, first.status) == (None, 200)
    assert (second.path, second.params, second.status) == ("/api/v2/studies/NCT99999999", {}, 404)
    server.clear_requests()
    assert server.requests == []


def test_control_endpoints_are_off_unless_asked_for(
    server: FakeCtgovServer, session: requests.Session
) -> None:
    root = server.base_url.removesuffix("/api/v2")
    response = session.post(f"{root}/_control/studies", json=make_study(42), timeout=5)
    assert response.status_code == 404
    assert server.get_study("NCT00000042") is None


# --- command line ----------------------------------------------------------------------------


def test_command_line_serves_recorded_data_and_control_endpoint() -> None:
    command = [
        sys.executable,
        "-m",
        "tests.fakes.ctgov_server",
        "--port",
        "0",
        *("--data", str(RECORDED_DIRS[0]), "--data", str(RECORDED_DIRS[1])),
        *("--seed", "1", "--delay", "0"),
    ]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:")
        assert base_url.endswith("/api/v2")
        first = requests.get(f"{base_url}/studies", params={"countTotal": "true"}, timeout=5)
        assert first.json()["totalCount"] == 59

        root = base_url.removesuffix("/api/v2")
        added = requests.post(f"{root}/_control/studies", json=make_study(99999999), timeout=5)
        assert added.json() == {"upserted": ["NCT99999999"]}
        assert requests.get(f"{base_url}/studies/NCT99999999", timeout=5).status_code == 200

        scripted = requests.post(f"{root}/_control/faults", json=["503", None], timeout=5)
        assert scripted.json() == {"scripted": 2}
        assert requests.get(f"{base_url}/studies", timeout=5).status_code == 503
        log = requests.get(f"{root}/_control/requests", timeout=5).json()["requests"]
        assert [(entry["path"], entry["fault"]) for entry in log][-2:] == [
            ("/_control/faults", None),
            ("/api/v2/studies", "503"),
        ]
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
