"""HTTP client for the ClinicalTrials.gov API v2: the project's one seam for outbound calls.

Polite and stubborn: requests are paced (at most one per ``min_interval`` seconds), failures
that can pass (connection errors, timeouts, 429, 5xx, a body cut short or not JSON) are retried
with exponential backoff and jitter, and ``Retry-After`` is honoured. A page is handed to the
caller only once it has arrived whole and parsed, so nothing is ever half-imported.

No Django here: the caller passes the settings in.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
import requests

logger = logging.getLogger(__name__)

USER_AGENT = "trialmatch/0.1 (clinical-trial eligibility matching; nightly sync)"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_PAGE_SIZE = 1000


class CtgovError(Exception):
    """The registry could not give an answer (after retries, or a request it refuses)."""


class CtgovRequestRejected(CtgovError):
    """The registry refused the request itself (4xx other than 429): retrying cannot help."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class _RetryableFailure(Exception):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


@dataclass(frozen=True)
class Page:
    """One page of ``GET /studies``, complete and parsed."""

    number: int
    token: str | None
    studies: list[dict[str, Any]]
    next_page_token: str | None
    total_count: int | None


@dataclass
class CtgovClient:
    base_url: str
    min_interval: float = 1.0
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    max_attempts: int = 6
    backoff_base: float = 2.0
    backoff_max: float = 120.0
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    rng: random.Random = field(default_factory=random.Random)
    session: requests.Session = field(default_factory=requests.Session)
    contact: str = ""
    attempts_made: int = 0
    retries_made: int = 0
    _last_request_at: float | None = None

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        agent = f"{USER_AGENT} {self.contact}".strip()
        self.session.headers.update({"User-Agent": agent, "Accept": "application/json"})

    def get_study(self, nct_id: str) -> dict[str, Any]:
        """One full study record (``GET /studies/{nctId}``)."""
        body = self._get_json(f"/studies/{nct_id}", {"format": "json"})
        if not isinstance(body, dict):
            raise CtgovError(f"study {nct_id}: the answer is not a study object")
        return body

    def is_reachable(self, timeout: float = 3.0) -> bool:
        """Does the API answer at all, quickly? (one attempt, no retries, no pacing)"""
        try:
            response = self.session.get(f"{self.base_url}/version", timeout=timeout)
            response.raise_for_status()
            response.json()
        except (requests.RequestException, ValueError):
            return False
        return True

    def iter_pages(
        self,
        params: Mapping[str, str],
        *,
        page_size: int = 100,
        page_token: str | None = None,
        first_page_number: int = 1,
    ) -> Iterator[Page]:
        """Every page of ``GET /studies`` for ``params``, one at a time (memory stays flat).

        Each later page repeats the first request's parameters with ``pageToken`` set to the
        previous ``nextPageToken``; ``totalCount`` is asked for (and given) on the first page
        only. ``page_token`` starts from a checkpoint instead of the first page.
        """
        base = {key: value for key, value in params.items() if key not in ("pageToken",)}
        base["format"] = "json"
        base["pageSize"] = str(min(max(page_size, 1), MAX_PAGE_SIZE))
        number = first_page_number
        token = page_token
        while True:
            query = dict(base)
            if token is None:
                query["countTotal"] = "true"
            else:
                query["pageToken"] = token
            body = self._get_json("/studies", query)
            if not isinstance(body, dict) or not isinstance(body.get("studies", []), list):
                raise CtgovError(f"page {number}: the answer is not a page of studies")
            next_token = body.get("nextPageToken") or None
            total = body.get("totalCount")
            yield Page(
                number=number,
                token=token,
                studies=body.get("studies", []),
                next_page_token=next_token,
                total_count=total if isinstance(total, int) else None,
            )
            if next_token is None:
                return
            token = next_token
            number += 1

    def _get_json(self, path: str, params: Mapping[str, str]) -> Any:
        url = f"{self.base_url}{path}"
        failure: _RetryableFailure | None = None
        for attempt in range(1, self.max_attempts + 1):
            if failure is not None:
                self._back_off(attempt - 1, failure, path)
            try:
                return self._attempt(url, params)
            except _RetryableFailure as exc:
                failure = exc
        assert failure is not None
        raise CtgovError(
            f"GET {path} failed {self.max_attempts} times; last failure: {failure.reason}"
        )

    def _attempt(self, url: str, params: Mapping[str, str]) -> Any:
        self._pace()
        self.attempts_made += 1
        try:
            response = self.session.get(
                url, params=params, timeout=(self.connect_timeout, self.read_timeout)
            )
            # Reading the body here means a connection dropped mid-body surfaces as an error.
            content = response.content
        except requests.Timeout as exc:
            raise _RetryableFailure(f"timed out ({type(exc).__name__})") from exc
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
            raise _RetryableFailure(f"connection failed ({type(exc).__name__})") from exc
        if response.status_code in RETRY_STATUSES:
            raise _RetryableFailure(
                f"HTTP {response.status_code}",
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
            )
        if response.status_code >= 400:
            raise CtgovRequestRejected(
                f"HTTP {response.status_code}: {content[:300].decode('utf-8', 'replace')}",
                status=response.status_code,
            )
        try:
            return orjson.loads(content)
        except ValueError:
            pass
        try:
            # What orjson refuses but the registry may still send inside one record (Infinity,
            # NaN, an unpaired surrogate escape): read, so that the mapping refuses that record
            # alone, naming it, and the rest of the page lands.
            return json.loads(content)
        except (ValueError, RecursionError) as exc:
            raise _RetryableFailure("the body is not JSON (cut short or an error page)") from exc

    def _pace(self) -> None:
        now = self.clock()
        if self._last_request_at is not None:
            wait = self._last_request_at + self.min_interval - now
            if wait > 0:
                self.sleep(wait)
                now = self.clock()
        self._last_request_at = now

    def _back_off(self, failures: int, failure: _RetryableFailure, path: str) -> None:
        """Wait before the next attempt: full jitter, but never less than Retry-After."""
        ceiling = min(self.backoff_max, self.backoff_base * 2 ** (failures - 1))
        delay = self.rng.uniform(0, ceiling)
        if failure.retry_after is not None:
            delay = max(delay, min(failure.retry_after, self.backoff_max))
        self.retries_made += 1
        logger.warning(
            "ClinicalTrials.gov GET %s: %s; retry %d in %.1f s",
            path,
            failure.reason,
            failures,
            delay,
        )
        self.sleep(delay)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)
