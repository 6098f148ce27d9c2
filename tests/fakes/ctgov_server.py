"""A local fake of the ClinicalTrials.gov API v2, for tests, benchmarks and end-to-end runs.

It follows the paging rules of ``trials/data/ctgov/spec/ctg-oas-v2.yaml``:

``GET /api/v2/studies``
    Answers ``{"studies": [...], "nextPageToken": "..."}``; the last page has no
    ``nextPageToken``. Records are served sorted by ``protocolSection.identificationModule.nctId``.
    ``pageSize`` defaults to 10, 0 means the default and values above 1000 are coerced down
    to 1000. ``pageToken`` is the previous page's opaque ``nextPageToken``; every later page
    must repeat the first page's parameters except ``countTotal``, ``pageSize`` and
    ``pageToken`` (the token carries a hash of them), otherwise the answer is 400, as it is
    for a garbage token. ``countTotal=true`` adds ``totalCount`` to the first page only. The
    token is a cursor (the last nctId served), so records upserted or removed between pages
    behave as in a live index: later nctIds show up, earlier ones are not served again.
    With ``trailing_empty_page=True``, records that end exactly on a page boundary still get a
    ``nextPageToken``, whose page is ``{"studies": []}`` without a token.

    Filters: ``filter.advanced`` / ``postFilter.advanced`` / ``query.term`` are searched for
    ``AREA[LastUpdatePostDate]RANGE[<from>,<to>]`` (bounds ``YYYY-MM-DD``, ``MM/DD/YYYY``,
    ``MIN`` or ``MAX``; inclusive; compared with
    ``protocolSection.statusModule.lastUpdatePostDateStruct.date``; records without that date
    are excluded); every other part of those expressions is ignored. ``filter.overallStatus``
    / ``postFilter.overallStatus`` and ``filter.ids`` / ``postFilter.ids`` take comma- or
    pipe-separated lists. ``query.cond`` is split on ``OR``; quotes and parentheses are
    stripped and a record matches when any group occurs (case-insensitively) in its
    conditions, keywords, brief or official title or acronym. Other parameters (``fields``,
    ``sort``, other ``query.*`` ...) are accepted and ignored, but they still belong to the
    parameters a page token is bound to. Only ``format=json`` (the default) is served; a
    parameter given twice is a 400.

``GET /api/v2/studies/{nctId}``
    The record, a 404 JSON error when it is unknown, or a 400 for a malformed NCT id.

``GET /api/v2/version``
    ``{"apiVersion": "2.0.3", "dataTimestamp": "yyyy-MM-ddTHH:mm:ss"}``; the timestamp moves
    whenever the records change.

Every answer is ``application/json`` with a correct ``Content-Length``; errors are
``{"message": "..."}``.

Faults, chosen per request, act on the two ``/studies`` endpoints only: ``/version`` and the
control endpoints never fail, are not delayed and do not consume scripted faults, so a client
may ask for the version without shifting a script. Kinds (see ``FAULT_KINDS``):

* ``"429"``: status 429 with ``Retry-After: <retry_after>`` and a small JSON body;
* ``"500"``, ``"503"``: that status with a small JSON body;
* ``"truncate"``: the normal status line and headers (with the full ``Content-Length``), about
  half of the body, then the connection is closed;
* ``"stall"``: nothing is written for ``stall_seconds``, then the connection is closed;
* ``"reset"``: the socket is closed with ``SO_LINGER (1, 0)``, so the client sees a reset;
* ``"not_json"``: status 200, ``Content-Type: text/html`` and an HTML error page.

``script_faults([...])`` queues one item per request (``None`` answers normally) and takes
precedence; once the queue is empty, ``fault_rate`` (0 to 1) picks a fault among
``fault_kinds`` with a ``random.Random(seed)``, so a run with the same requests in the same
order fails the same way. ``delay`` seconds are waited before every normal answer of the
``/studies`` endpoints.

Command line (a separate process, e.g. for the end-to-end test)::

    python -m tests.fakes.ctgov_server --port 8999 --data trials/data/ctgov/v2 \\
        --data trials/data/ctgov/v2-partial --fault-rate 0.2 --seed 1 [--delay 0.1]

prints its base URL (``http://127.0.0.1:8999/api/v2``) on one line and serves until SIGTERM
or SIGINT. That process also answers control endpoints (off by default in tests, where the
object's methods do the same):

* ``POST /_control/studies`` with a JSON study, a JSON array of studies or a page
  ``{"studies": [...]}``: upserts them, answers ``{"upserted": [nctId, ...]}``;
* ``DELETE /_control/studies/{nctId}``: removes the record (``{"removed": true|false}``);
* ``POST /_control/faults`` with a JSON array such as ``["429", null, "truncate"]``: replaces
  the fault script.
* ``GET /_control/requests``: the request log so far, ``{"requests": [{"method", "path",
  "params", "fault", "status"}, ...]}`` (control requests are logged too).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import bisect
import collections
import contextlib
import dataclasses
import datetime as dt
import gzip
import hashlib
import json
import logging
import random
import re
import signal
import socket
import socketserver
import struct
import sys
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

logger = logging.getLogger(__name__)

API_PREFIX = "/api/v2"
API_VERSION = "2.0.3"
DEFAULT_PAGE_SIZE = 10
MAX_PAGE_SIZE = 1000

FAULT_KINDS: tuple[str, ...] = ("429", "500", "503", "truncate", "stall", "reset", "not_json")
#: Kinds ``fault_rate`` draws from unless told otherwise: every kind but ``"stall"``, which
#: costs ``stall_seconds`` of wall time per hit.
DEFAULT_FAULT_KINDS: tuple[str, ...] = tuple(kind for kind in FAULT_KINDS if kind != "stall")

NOT_JSON_BODY = b"<html><body>Service temporarily unavailable</body></html>"

# Parameters a page token is not bound to (the spec lets them change between pages).
_UNBOUND_PARAMS = frozenset({"countTotal", "pageSize", "pageToken"})
_NCT_ID = re.compile(r"^NCT\d{8}$", re.IGNORECASE)
_DATE_RANGE = re.compile(
    r"AREA\[\s*LastUpdatePostDate\s*\]\s*RANGE\[\s*([^,\]]*?)\s*,\s*([^\]]*?)\s*\]",
    re.IGNORECASE,
)
_OR = re.compile(r"\s+OR\s+", re.IGNORECASE)
_LIST_SEPARATOR = re.compile(r"[,|]")


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the fake saw it.

    ``status`` is the status line sent (``None`` when none was: ``stall`` and ``reset``);
    ``fault`` is the injected fault kind, ``None`` for a normal answer.
    """

    method: str
    path: str
    params: dict[str, str]
    fault: str | None
    status: int | None


class _BadRequestError(Exception):
    """A request the real API would refuse with 400."""


# --- records ---------------------------------------------------------------------------------


def nct_id_of(study: dict[str, Any]) -> str:
    """The ``protocolSection.identificationModule.nctId`` of a study record (upper case)."""
    try:
        nct_id = study["protocolSection"]["identificationModule"]["nctId"]
    except (KeyError, TypeError) as exc:
        raise ValueError("study record without protocolSection.identificationModule.nctId") from exc
    if not isinstance(nct_id, str) or not _NCT_ID.match(nct_id):
        raise ValueError(f"study record with a malformed nctId: {nct_id!r}")
    return nct_id.upper()


def _studies_in(document: Any, source: str) -> list[dict[str, Any]]:
    """The study records in one decoded JSON document: a study, a page or an array."""
    if isinstance(document, list):
        studies = document
    elif isinstance(document, dict) and "studies" in document:
        studies = document["studies"]
    elif isinstance(document, dict) and "protocolSection" in document:
        studies = [document]
    else:
        raise ValueError(f"{source}: neither a study, a page of studies nor an array of them")
    if not isinstance(studies, list) or not all(isinstance(s, dict) for s in studies):
        raise ValueError(f"{source}: the studies are not a list of objects")
    return studies


def _recorded_files(path: Path) -> Iterator[Path]:
    if path.is_dir():
        for child in sorted(path.iterdir()):
            if child.is_file() and child.name.endswith((".json", ".json.gz")):
                yield child
    elif path.is_file():
        yield path
    else:
        raise FileNotFoundError(path)


def load_recorded_studies(*paths: Path | str) -> list[dict[str, Any]]:
    """Read recorded study records from files and directories.

    A directory contributes its ``*.json`` and ``*.json.gz`` files (not recursively, in name
    order). A file holds a single study object, an API page ``{"studies": [...]}`` or a JSON
    array of studies (the website's download). Records are returned in the order read, one per
    nctId: a later record with the same nctId replaces the earlier one in place.
    """
    by_id: dict[str, dict[str, Any]] = {}
    for path in map(Path, paths):
        for file in _recorded_files(path):
            opener = gzip.open if file.name.endswith(".gz") else open
            with opener(file, "rt", encoding="utf-8") as handle:
                document = json.load(handle)
            for study in _studies_in(document, str(file)):
                by_id[nct_id_of(study)] = study
    return list(by_id.values())


def _dig(record: dict[str, Any], *keys: str) -> Any:
    value: Any = record
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


# --- query parameters ------------------------------------------------------------------------


def _parse_date_bound(text: str, *, open_value: str) -> str | None:
    """``YYYY-MM-DD`` for a range bound; ``None`` for ``MIN``/``MAX`` (an open end)."""
    if text.upper() == open_value:
        return None
    for pattern in ("%Y-%m-%d", "%m/%d/%Y", "%Y-%m", "%Y"):
        try:
            return dt.datetime.strptime(text, pattern).date().isoformat()
        except ValueError:
            continue
    raise _BadRequestError(f"cannot read {text!r} as a date in AREA[LastUpdatePostDate]RANGE")


def _record_date(text: Any) -> str | None:
    """A record's date as ``YYYY-MM-DD`` (a month-only date counts as the first of it)."""
    if not isinstance(text, str) or not text:
        return None
    if re.fullmatch(r"\d{4}-\d{2}", text):
        return f"{text}-01"
    return text


def _split_list(value: str) -> set[str]:
    return {item.strip().upper() for item in _LIST_SEPARATOR.split(value) if item.strip()}


def _condition_groups(query: str) -> list[str]:
    groups = []
    for group in _OR.split(query):
        cleaned = re.sub(r"[\"'()]", " ", group)
        cleaned = " ".join(cleaned.split()).lower()
        if cleaned:
            groups.append(cleaned)
    return groups


@dataclass(frozen=True)
class _Filters:
    date_ranges: tuple[tuple[str | None, str | None], ...]
    statuses: frozenset[str] | None
    ids: frozenset[str] | None
    condition_groups: tuple[str, ...]

    @classmethod
    def from_params(cls, params: dict[str, str]) -> _Filters:
        ranges = []
        for name in ("filter.advanced", "postFilter.advanced", "query.term"):
            for low, high in _DATE_RANGE.findall(params.get(name, "")):
                ranges.append(
                    (
                        _parse_date_bound(low, open_value="MIN"),
                        _parse_date_bound(high, open_value="MAX"),
                    )
                )
        statuses: set[str] | None = None
        ids: set[str] | None = None
        for prefix in ("filter.", "postFilter."):
            if f"{prefix}overallStatus" in params:
                given = _split_list(params[f"{prefix}overallStatus"])
                statuses = given if statuses is None else statuses & given
            if f"{prefix}ids" in params:
                given = _split_list(params[f"{prefix}ids"])
                ids = given if ids is None else ids & given
        return cls(
            date_ranges=tuple(ranges),
            statuses=None if statuses is None else frozenset(statuses),
            ids=None if ids is None else frozenset(ids),
            condition_groups=tuple(_condition_groups(params.get("query.cond", ""))),
        )

    def matches(self, nct_id: str, study: dict[str, Any]) -> bool:
        protocol = study.get("protocolSection") or {}
        if self.ids is not None and nct_id not in self.ids:
            return False
        if self.statuses is not None:
            status = _dig(protocol, "statusModule", "overallStatus")
            if not isinstance(status, str) or status.upper() not in self.statuses:
                return False
        if self.date_ranges:
            date = _record_date(_dig(protocol, "statusModule", "lastUpdatePostDateStruct", "date"))
            if date is None:
                return False
            for low, high in self.date_ranges:
                if (low is not None and date < low) or (high is not None and date > high):
                    return False
        if self.condition_groups:
            haystack = _searchable_text(protocol)
            if not any(group in haystack for group in self.condition_groups):
                return False
        return True


def _searchable_text(protocol: dict[str, Any]) -> str:
    parts: list[str] = []
    for key in ("conditions", "keywords"):
        values = _dig(protocol, "conditionsModule", key)
        if isinstance(values, list):
            parts.extend(str(value) for value in values)
    for key in ("briefTitle", "officialTitle", "acronym"):
        value = _dig(protocol, "identificationModule", key)
        if isinstance(value, str):
            parts.append(value)
    # One line per field, so that a group never matches across two fields.
    return "\n".join(part.lower() for part in parts)


def _page_size(params: dict[str, str]) -> int:
    raw = params.get("pageSize", "")
    if raw == "":
        return DEFAULT_PAGE_SIZE
    try:
        size = int(raw)
    except ValueError:
        raise _BadRequestError(f"pageSize must be an integer, not {raw!r}") from None
    if size < 0:
        raise _BadRequestError("pageSize must not be negative")
    if size == 0:
        return DEFAULT_PAGE_SIZE
    return min(size, MAX_PAGE_SIZE)


def _count_total(params: dict[str, str]) -> bool:
    raw = params.get("countTotal", "false").lower()
    if raw not in ("true", "false"):
        raise _BadRequestError(f"countTotal must be true or false, not {raw!r}")
    return raw == "true"


def _params_hash(params: dict[str, str]) -> str:
    bound = sorted((k, v) for k, v in params.items() if k not in _UNBOUND_PARAMS)
    return hashlib.sha256(json.dumps(bound).encode()).hexdigest()[:16]


def _encode_token(params_hash: str, after: str) -> str:
    raw = json.dumps([params_hash, after], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _decode_token(token: str) -> tuple[str, str]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        decoded = json.loads(raw)
    except (binascii.Error, ValueError):
        raise _BadRequestError("pageToken is not valid") from None
    if (
        not isinstance(decoded, list)
        or len(decoded) != 2
        or not all(isinstance(part, str) for part in decoded)
    ):
        raise _BadRequestError("pageToken is not valid")
    return decoded[0], decoded[1]


# --- the server ------------------------------------------------------------------------------


class FakeCtgovServer:
    """A fake ClinicalTrials.gov API v2 on a local port (see the module docstring).

    Use as a context manager, or call ``start()`` and ``stop()``. Records, faults and the
    request log may be changed and read from any thread while it serves.
    """

    def __init__(
        self,
        studies: Iterable[dict[str, Any]] = (),
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int = 0,
        trailing_empty_page: bool = False,
        control: bool = False,
    ) -> None:
        self.host = host
        self.port = port
        self.trailing_empty_page = trailing_empty_page
        #: Whether the ``/_control/...`` endpoints answer (the command line turns them on).
        self.control = control
        self.retry_after = "1"
        self.stall_seconds = 5.0
        self.delay = 0.0
        self._lock = threading.Lock()
        self._records: dict[str, dict[str, Any]] = {}
        self._sorted: tuple[list[str], list[dict[str, Any]]] | None = None
        self._data_timestamp = _now_timestamp()
        self._script: collections.deque[str | None] = collections.deque()
        self._random = random.Random(seed)
        self._fault_rate = 0.0
        self._fault_kinds: list[str] = list(DEFAULT_FAULT_KINDS)
        self._log: list[RecordedRequest] = []
        self._connections: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.set_studies(studies)

    # lifecycle

    def start(self) -> FakeCtgovServer:
        """Bind the port and serve in a background thread; returns ``self``."""
        if self._httpd is not None:
            raise RuntimeError("the fake ClinicalTrials.gov server is already running")
        self._stopping.clear()
        httpd = _HTTPServer((self.host, self.port), _Handler, fake=self)
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"fake-ctgov-{httpd.server_address[1]}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, wake stalled or delayed answers and close open connections."""
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        httpd.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> FakeCtgovServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``http://<host>:<port>/api/v2`` of the running server."""
        if self._httpd is None:
            raise RuntimeError("the fake ClinicalTrials.gov server is not running")
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}{API_PREFIX}"

    # records

    def set_studies(self, studies: Iterable[dict[str, Any]]) -> None:
        """Replace every record (later duplicates of an nctId win)."""
        records = {nct_id_of(study): study for study in studies}
        with self._lock:
            self._records = records
            self._changed()

    def upsert_study(self, study: dict[str, Any]) -> None:
        """Add a record, or replace the one with the same nctId."""
        nct_id = nct_id_of(study)
        with self._lock:
            self._records[nct_id] = study
            self._changed()

    def remove_study(self, nct_id: str) -> None:
        """Remove a record; an unknown nctId is ignored."""
        with self._lock:
            if self._records.pop(nct_id.upper(), None) is not None:
                self._changed()

    @property
    def studies(self) -> list[dict[str, Any]]:
        """The records served, in nctId order."""
        return list(self._snapshot()[1])

    def _changed(self) -> None:
        # Called with the lock held.
        self._sorted = None
        self._data_timestamp = _now_timestamp()

    def _snapshot(self) -> tuple[list[str], list[dict[str, Any]]]:
        with self._lock:
            if self._sorted is None:
                ids = sorted(self._records)
                self._sorted = (ids, [self._records[nct_id] for nct_id in ids])
            return self._sorted

    # faults

    @property
    def fault_rate(self) -> float:
        """Chance (0 to 1) that a request without a scripted fault gets a random one."""
        return self._fault_rate

    @fault_rate.setter
    def fault_rate(self, rate: float) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"fault_rate must be between 0 and 1, not {rate}")
        self._fault_rate = rate

    @property
    def fault_kinds(self) -> list[str]:
        """The kinds ``fault_rate`` draws from (default ``DEFAULT_FAULT_KINDS``)."""
        return list(self._fault_kinds)

    @fault_kinds.setter
    def fault_kinds(self, kinds: Iterable[str]) -> None:
        kinds = list(kinds)
        if not kinds:
            raise ValueError("fault_kinds must not be empty")
        for kind in kinds:
            _check_fault_kind(kind)
        self._fault_kinds = kinds

    def script_faults(self, faults: Iterable[str | None]) -> None:
        """Replace the fault script: one item per ``/studies`` request, ``None`` = normal."""
        script = list(faults)
        for kind in script:
            if kind is not None:
                _check_fault_kind(kind)
        with self._lock:
            self._script = collections.deque(script)

    def _next_fault(self) -> str | None:
        with self._lock:
            if self._script:
                return self._script.popleft()
            if self._fault_rate > 0 and self._random.random() < self._fault_rate:
                return self._random.choice(self._fault_kinds)
            return None

    # request log

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of the request log, oldest first."""
        with self._lock:
            return list(self._log)

    def clear_requests(self) -> None:
        with self._lock:
            self._log.clear()

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._log.append(request)

    def _track(self, connection: socket.socket, *, open_: bool) -> None:
        with self._lock:
            if open_:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def _wait(self, seconds: float) -> None:
        """Sleep, but wake up when the server stops."""
        if seconds > 0:
            self._stopping.wait(seconds)

    # answers

    def version(self) -> dict[str, Any]:
        with self._lock:
            return {"apiVersion": API_VERSION, "dataTimestamp": self._data_timestamp}

    def list_studies(self, params: dict[str, str]) -> dict[str, Any]:
        """The page ``GET /studies`` answers for these query parameters.

        Raises ``_BadRequestError`` for what the API refuses with 400.
        """
        if params.get("format", "json") != "json":
            raise _BadRequestError("this fake serves format=json only")
        size = _page_size(params)
        count_total = _count_total(params)
        params_hash = _params_hash(params)
        token = params.get("pageToken")
        after: str | None = None
        if token is not None:
            token_hash, after = _decode_token(token)
            if token_hash != params_hash:
                raise _BadRequestError(
                    "pageToken does not belong to these parameters: every page must repeat "
                    "the first page's parameters except countTotal, pageSize and pageToken"
                )
        filters = _Filters.from_params(params)

        ids, records = self._snapshot()
        start = 0 if after is None else bisect.bisect_right(ids, after)
        page: list[dict[str, Any]] = []
        more = False
        for nct_id, study in zip(ids[start:], records[start:], strict=True):
            if not filters.matches(nct_id, study):
                continue
            if len(page) == size:
                more = True
                break
            page.append(study)

        answer: dict[str, Any] = {}
        if token is None and count_total:
            answer["totalCount"] = sum(
                1
                for nct_id, study in zip(ids, records, strict=True)
                if filters.matches(nct_id, study)
            )
        answer["studies"] = page
        if more or (self.trailing_empty_page and len(page) == size):
            answer["nextPageToken"] = _encode_token(params_hash, nct_id_of(page[-1]))
        return answer

    def get_study(self, nct_id: str) -> dict[str, Any] | None:
        """The record with this nctId, or ``None``."""
        with self._lock:
            return self._records.get(nct_id.upper())


def _check_fault_kind(kind: str) -> None:
    if kind not in FAULT_KINDS:
        raise ValueError(f"unknown fault kind {kind!r}; known: {', '.join(FAULT_KINDS)}")


def _now_timestamp() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        *,
        fake: FakeCtgovServer,
    ) -> None:
        self.fake = fake
        super().__init__(address, handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks the host name up (socket.getfqdn), which can take
        # seconds on a machine without DNS; the fake needs no server name.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that time out or hang up are part of the fake's job, not errors.
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):
            logger.debug("connection from %s ended: %r", client_address, exc)
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server_version = "FakeCtgov/1.0"
    protocol_version = "HTTP/1.1"
    timeout = 10.0  # idle keep-alive connections are closed after this
    # Headers and body go out in separate writes; Nagle's algorithm would hold the body back
    # for a delayed ACK (about 40 ms per answer).
    disable_nagle_algorithm = True
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        self.server.fake._track(self.connection, open_=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.fake._track(self.connection, open_=False)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        # A body left unread would be taken for the next request: never keep these alive.
        self.close_connection = True
        self._dispatch()

    def do_DELETE(self) -> None:
        self.close_connection = True
        self._dispatch()

    # routing

    def _dispatch(self) -> None:
        fake = self.server.fake
        split = urlsplit(self.path)
        self._path = split.path
        pairs = parse_qsl(split.query, keep_blank_values=True)
        self._params = dict(pairs)
        repeated = sorted({name for name, _ in pairs if sum(n == name for n, _ in pairs) > 1})

        path = split.path.rstrip("/") or "/"
        if self.command == "GET" and path == f"{API_PREFIX}/version":
            self._send_json(200, fake.version())
        elif self.command == "GET" and (
            path == f"{API_PREFIX}/studies" or path.startswith(f"{API_PREFIX}/studies/")
        ):
            self._studies(path, repeated)
        elif fake.control and path.startswith("/_control/"):
            self._control(path)
        else:
            self._send_json(404, {"message": f"no such endpoint: {self.command} {split.path}"})

    def _studies(self, path: str, repeated: Sequence[str]) -> None:
        fake = self.server.fake
        fault = fake._next_fault()
        if fault in ("stall", "reset"):
            self._stall_or_reset(fault)
            return
        status, payload = self._studies_answer(path, repeated)
        if fault is None:
            fake._wait(fake.delay)
            self._send_json(status, payload)
        elif fault == "truncate":
            self._send_json(status, payload, fault=fault, truncate=True)
        elif fault == "not_json":
            self._send(200, NOT_JSON_BODY, "text/html", fault=fault)
        elif fault == "429":
            self._send_json(
                429,
                {"message": "Too Many Requests"},
                fault=fault,
                headers={"Retry-After": fake.retry_after},
            )
        else:
            self._send_json(int(fault), {"message": f"fault {fault} injected"}, fault=fault)

    def _studies_answer(self, path: str, repeated: Sequence[str]) -> tuple[int, dict[str, Any]]:
        fake = self.server.fake
        try:
            if repeated:
                raise _BadRequestError(f"parameters given more than once: {', '.join(repeated)}")
            if path == f"{API_PREFIX}/studies":
                return 200, fake.list_studies(self._params)
            nct_id = unquote(path.removeprefix(f"{API_PREFIX}/studies/"))
            if not _NCT_ID.match(nct_id):
                raise _BadRequestError(f"{nct_id!r} is not an NCT number")
            if self._params.get("format", "json") != "json":
                raise _BadRequestError("this fake serves format=json only")
            study = fake.get_study(nct_id)
            if study is None:
                return 404, {"message": f"study {nct_id.upper()} not found"}
            return 200, study
        except _BadRequestError as exc:
            return 400, {"message": str(exc)}

    def _control(self, path: str) -> None:
        fake = self.server.fake
        try:
            if self.command == "POST" and path == "/_control/studies":
                studies = _studies_in(self._read_json(), "request body")
                for study in studies:
                    nct_id_of(study)  # all valid before any is stored
                for study in studies:
                    fake.upsert_study(study)
                self._send_json(200, {"upserted": [nct_id_of(study) for study in studies]})
            elif self.command == "DELETE" and path.startswith("/_control/studies/"):
                nct_id = unquote(path.removeprefix("/_control/studies/"))
                known = fake.get_study(nct_id) is not None
                fake.remove_study(nct_id)
                self._send_json(200, {"removed": known})
            elif self.command == "GET" and path == "/_control/requests":
                log = [dataclasses.asdict(entry) for entry in fake.requests]
                self._send_json(200, {"requests": log})
            elif self.command == "POST" and path == "/_control/faults":
                script = self._read_json()
                if not isinstance(script, list):
                    raise ValueError("the body must be a JSON array of fault kinds or null")
                fake.script_faults(script)
                self._send_json(200, {"scripted": len(script)})
            else:
                self._send_json(404, {"message": f"no such endpoint: {self.command} {path}"})
        except ValueError as exc:  # json.JSONDecodeError is a ValueError
            self._send_json(400, {"message": str(exc)})

    def _read_json(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length) or b"null")

    # writing

    def _log(self, status: int | None, fault: str | None) -> None:
        # Logged before anything is written, so that a client that has its answer sees the
        # request in the log.
        self.server.fake._record(
            RecordedRequest(
                method=self.command,
                path=self._path,
                params=dict(self._params),
                fault=fault,
                status=status,
            )
        )

    def _send_json(
        self,
        status: int,
        payload: dict[str, Any],
        *,
        fault: str | None = None,
        headers: dict[str, str] | None = None,
        truncate: bool = False,
    ) -> None:
        try:
            body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        except UnicodeEncodeError:  # an unpaired surrogate: sent as its JSON escape
            body = json.dumps(payload, separators=(",", ":")).encode()
        self._send(
            status, body, "application/json", fault=fault, headers=headers, truncate=truncate
        )

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str,
        *,
        fault: str | None = None,
        headers: dict[str, str] | None = None,
        truncate: bool = False,
    ) -> None:
        self._log(status, fault)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if truncate:
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
        else:
            self.wfile.write(body)

    def _stall_or_reset(self, fault: str) -> None:
        self._log(None, fault)
        self.close_connection = True
        if fault == "stall":
            self.server.fake._wait(self.server.fake.stall_seconds)
            return
        # SO_LINGER on with a zero timeout: close() sends RST instead of FIN. The socket's
        # file objects hold references to it, so they are closed too for the close to happen.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.rfile.close()
        self.connection.close()


# --- command line ----------------------------------------------------------------------------


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.fakes.ctgov_server",
        description="Serve recorded ClinicalTrials.gov records as a fake API v2.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    parser.add_argument(
        "--data",
        action="append",
        default=[],
        type=Path,
        help="a study file or directory (.json/.json.gz); may be repeated",
    )
    parser.add_argument("--fault-rate", type=float, default=0.0)
    parser.add_argument(
        "--fault-kinds",
        default=",".join(DEFAULT_FAULT_KINDS),
        help=f"comma-separated kinds among {','.join(FAULT_KINDS)}",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument("--retry-after", default="1")
    parser.add_argument("--stall-seconds", type=float, default=5.0)
    parser.add_argument("--trailing-empty-page", action="store_true")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    server = FakeCtgovServer(
        load_recorded_studies(*args.data),
        host=args.host,
        port=args.port,
        seed=args.seed,
        trailing_empty_page=args.trailing_empty_page,
        control=True,
    )
    server.fault_rate = args.fault_rate
    server.fault_kinds = [kind.strip() for kind in args.fault_kinds.split(",") if kind.strip()]
    server.delay = args.delay
    server.retry_after = args.retry_after
    server.stall_seconds = args.stall_seconds

    done = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    with server:
        # The caller reads the address from this line.
        print(server.base_url, flush=True)
        while not done.wait(0.2):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
