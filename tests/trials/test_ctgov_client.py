"""The registry client over real HTTP: paging as the API specifies, retries, pacing."""

from typing import Any

import pytest

from tests.fakes.ctgov_server import FakeCtgovServer, nct_id_of
from tests.trials.conftest import make_client
from trials.ctgov.client import CtgovClient, CtgovError, CtgovRequestRejected, parse_retry_after


class FakeTime:
    """A clock that only moves when the client sleeps: waits are observed, not spent."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def all_ids(client: CtgovClient, **kwargs: Any) -> list[str]:
    return [nct_id_of(s) for page in client.iter_pages({}, **kwargs) for s in page.studies]


def test_pages_through_every_record_once_in_order(
    ctgov: FakeCtgovServer, ctgov_client: CtgovClient, recorded_studies: list[dict[str, Any]]
) -> None:
    pages = list(ctgov_client.iter_pages({"query.cond": "cancer OR neoplasm"}, page_size=7))

    ids = [nct_id_of(study) for page in pages for study in page.studies]
    assert len(ids) == len(set(ids))
    assert ids == sorted(ids)
    assert pages[0].total_count == len(ids)
    assert all(page.total_count is None for page in pages[1:])
    assert pages[-1].next_page_token is None
    # Every later page repeats the first request's parameters, with the previous token.
    studies_requests = [r for r in ctgov.requests if r.path.endswith("/studies")]
    assert studies_requests[0].params["countTotal"] == "true"
    for previous, request, page in zip(studies_requests, studies_requests[1:], pages, strict=False):
        assert request.params["query.cond"] == "cancer OR neoplasm"
        assert request.params["pageSize"] == "7"
        assert request.params["pageToken"] == page.next_page_token
        assert "countTotal" not in request.params
        assert previous.status == 200


def test_an_empty_last_page_ends_the_listing(recorded_studies: list[dict[str, Any]]) -> None:
    with FakeCtgovServer(recorded_studies[:10], trailing_empty_page=True) as server:
        pages = list(make_client(server).iter_pages({}, page_size=5))

    assert [len(page.studies) for page in pages] == [5, 5, 0]


def test_page_size_is_capped_at_the_api_maximum(ctgov: FakeCtgovServer) -> None:
    list(make_client(ctgov).iter_pages({}, page_size=5000))

    assert ctgov.requests[0].params["pageSize"] == "1000"


def test_resumes_from_a_page_token(ctgov: FakeCtgovServer, ctgov_client: CtgovClient) -> None:
    first = next(ctgov_client.iter_pages({}, page_size=20))
    rest = list(ctgov_client.iter_pages({}, page_size=20, page_token=first.next_page_token))

    assert rest[0].number == 1
    ids = [nct_id_of(s) for s in first.studies] + [nct_id_of(s) for p in rest for s in p.studies]
    assert ids == all_ids(ctgov_client, page_size=20)


def test_one_study(ctgov_client: CtgovClient) -> None:
    assert nct_id_of(ctgov_client.get_study("NCT04592913")) == "NCT04592913"


def test_a_refused_request_is_not_retried(
    ctgov: FakeCtgovServer, ctgov_client: CtgovClient
) -> None:
    with pytest.raises(CtgovRequestRejected) as refused:
        ctgov_client.get_study("NCT99999999")

    assert refused.value.status == 404
    assert len(ctgov.requests) == 1


@pytest.mark.parametrize("fault", ["429", "500", "503", "truncate", "stall", "reset", "not_json"])
def test_each_passing_failure_is_retried(ctgov: FakeCtgovServer, fault: str) -> None:
    ctgov.stall_seconds = 2.0
    ctgov.retry_after = "0"
    client = make_client(ctgov, read_timeout=0.5)
    ctgov.script_faults([fault, fault])

    study = client.get_study("NCT04592913")

    assert nct_id_of(study) == "NCT04592913"
    assert [r.fault for r in ctgov.requests] == [fault, fault, None]
    assert client.retries_made == 2


def test_listing_with_many_faults_still_returns_every_record(
    ctgov: FakeCtgovServer, recorded_studies: list[dict[str, Any]]
) -> None:
    ctgov.fault_rate = 0.3
    ctgov.retry_after = "0"

    ids = all_ids(make_client(ctgov), page_size=5)

    assert sorted(ids) == sorted(nct_id_of(s) for s in recorded_studies)
    assert any(request.fault for request in ctgov.requests)


def test_gives_up_after_the_last_attempt(ctgov: FakeCtgovServer) -> None:
    ctgov.script_faults(["503"] * 3)
    client = make_client(ctgov, max_attempts=3)

    with pytest.raises(CtgovError, match="failed 3 times; last failure: HTTP 503"):
        client.get_study("NCT04592913")


def test_retry_after_is_honoured_and_backoff_grows(ctgov: FakeCtgovServer) -> None:
    time = FakeTime()
    client = make_client(
        ctgov, sleep=time.sleep, clock=time.clock, backoff_base=1.0, backoff_max=60.0
    )
    ctgov.retry_after = "7"
    ctgov.script_faults(["429", "500", "500", "500"])

    client.get_study("NCT04592913")

    assert time.sleeps[0] >= 7  # Retry-After: 7
    # Full jitter under a ceiling that doubles: 1, 2, 4 seconds.
    assert [s <= ceiling for s, ceiling in zip(time.sleeps[1:], (2, 4, 8), strict=True)] == [
        True
    ] * 3


def test_requests_are_paced(ctgov: FakeCtgovServer) -> None:
    time = FakeTime()
    client = make_client(ctgov, min_interval=1.0, sleep=time.sleep, clock=time.clock)

    list(client.iter_pages({}, page_size=10))

    pages = len([r for r in ctgov.requests if r.path.endswith("/studies")])
    assert pages == 6
    assert time.sleeps == [pytest.approx(1.0)] * (pages - 1)


def test_reachability_probe(ctgov: FakeCtgovServer, ctgov_client: CtgovClient) -> None:
    assert ctgov_client.is_reachable()
    assert not CtgovClient(base_url="http://127.0.0.1:9/api/v2").is_reachable(timeout=0.5)


def test_sends_a_descriptive_user_agent(ctgov_client: CtgovClient) -> None:
    assert "trialmatch" in ctgov_client.session.headers["User-Agent"]


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("120", 120.0), (None, None), ("soon", None), ("Thu, 01 Jan 1970 00:01:40 GMT", 40.0)],
)
def test_retry_after_header_forms(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header, now=60.0) == seconds
