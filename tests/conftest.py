"""Suite-wide fixtures and rules.

A skipped or expected-to-fail test fails the run: every test here must run everywhere the
suite runs (a fresh machine on the embedded defaults, CI on PostgreSQL and Redis).
"""

import uuid
from collections.abc import Iterator

import pytest
from celery.contrib.testing.worker import start_worker

from config.celery import app as celery_app


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    unran = terminalreporter.stats.get("skipped", []) + terminalreporter.stats.get("xfailed", [])
    if unran:
        terminalreporter.write_line(
            f"{len(unran)} test(s) skipped or xfailed: this suite allows none.", red=True
        )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None or exitstatus != 0:
        return
    if reporter.stats.get("skipped") or reporter.stats.get("xfailed"):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture
def celery_worker() -> Iterator[str]:
    """A real Celery worker (in a thread) on the configured broker and result backend.

    It consumes a queue of its own, so that parallel test runs and a developer's running
    worker never take each other's tasks. Yields the queue name to send tasks to.
    """
    queue = f"test-{uuid.uuid4().hex}"
    with start_worker(
        celery_app,
        pool="solo",
        perform_ping_check=False,
        queues=[queue],
        shutdown_timeout=30,
    ):
        yield queue
