"""Suite-wide fixtures and rules.

A skipped or expected-to-fail test fails the run: every test here must run everywhere the
suite runs (a fresh machine on the embedded defaults, CI on PostgreSQL and Redis).
"""

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from celery.contrib.testing.worker import start_worker
from django.db.backends.signals import connection_created
from django.dispatch import receiver

from config.celery import app as celery_app


@receiver(connection_created)
def _audit_log_flush_allowed(sender: object, connection: Any, **kwargs: object) -> None:
    """Django's flush between transactional tests empties every table with one TRUNCATE; on
    PostgreSQL the audit log refuses that unless the session takes the retention step of
    docs/audit-log.md. The suite's own connections take it; the test of the trigger undoes it."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET trialmatch.audit_truncate = 'allowed'")


# Tasks the code under test queues without naming a queue go to a queue of this test session
# only, never to the queue a developer's running worker consumes.
TEST_DEFAULT_QUEUE = f"tests-{uuid.uuid4().hex}"
celery_app.conf.task_default_queue = TEST_DEFAULT_QUEUE


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


@pytest.fixture
def default_queue_worker() -> Iterator[None]:
    """A real worker consuming the session's default queue (emptied first), for code that
    queues tasks itself (admin buttons, commands with --queue)."""
    with celery_app.connection_for_write() as conn:
        conn.default_channel.queue_purge(TEST_DEFAULT_QUEUE)  # type: ignore[attr-defined]
    with start_worker(
        celery_app,
        pool="solo",
        perform_ping_check=False,
        queues=[TEST_DEFAULT_QUEUE],
        shutdown_timeout=30,
    ):
        yield


@pytest.fixture(autouse=True, scope="session")
def _force_login_signs_in_fully() -> Iterator[None]:
    """Staff must give an authenticator code at sign-in (config.two_factor): a test's
    ``force_login`` is a complete sign-in, the second factor included (tests/two_factor.py)."""
    from django.test import Client

    from tests.two_factor import force_login_verified

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Client, "force_login", force_login_verified)
        yield


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    """Each test starts with an empty cache: API throttles and form rate limits count there."""
    from django.core.cache import cache

    cache.clear()
