"""Fixtures for the trials tests: the recorded registry, served over real HTTP on loopback."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.ctgov_server import FakeCtgovServer, load_recorded_studies
from trials.ctgov.client import CtgovClient

CTGOV_DATA = Path(__file__).resolve().parents[2] / "trials" / "data" / "ctgov"


@pytest.fixture(scope="session")
def recorded_studies() -> list[dict[str, Any]]:
    """The 59 recorded single-study records (v2 and v2-partial)."""
    return load_recorded_studies(CTGOV_DATA / "v2", CTGOV_DATA / "v2-partial")


@pytest.fixture
def ctgov(recorded_studies: list[dict[str, Any]]) -> Iterator[FakeCtgovServer]:
    with FakeCtgovServer(recorded_studies) as server:
        yield server


def make_client(server: FakeCtgovServer, **overrides: Any) -> CtgovClient:
    """A client with the production logic but test-sized timeouts and waits."""
    options: dict[str, Any] = {
        "base_url": server.base_url,
        "min_interval": 0.0,
        "connect_timeout": 2.0,
        "read_timeout": 1.0,
        "max_attempts": 10,
        "backoff_base": 0.01,
        "backoff_max": 0.05,
    }
    options.update(overrides)
    return CtgovClient(**options)


@pytest.fixture
def ctgov_client(ctgov: FakeCtgovServer) -> CtgovClient:
    return make_client(ctgov)
