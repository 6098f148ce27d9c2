"""Real service processes for tests: Celery workers that share the test database and broker."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.db import connection

PROJECT_DIR = Path(__file__).resolve().parent.parent


def test_database_url() -> str:
    """The URL of the database the tests run on (the test database, not the configured one)."""
    config = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{config['NAME']}"
    credentials = config["USER"] + (f":{config['PASSWORD']}" if config["PASSWORD"] else "")
    return (
        f"postgres://{credentials}@{config['HOST'] or 'localhost'}:{config['PORT'] or 5432}"
        f"/{config['NAME']}"
    )


def process_env(**overrides: str) -> dict[str, str]:
    environment = dict(os.environ, DATABASE_URL=test_database_url(), DEBUG="1")
    environment.update(overrides)
    return environment


def start_worker(queue: str, environment: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """A Celery worker process (solo pool: the task runs in the process itself)."""
    with log.open("ab") as output:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "--pool",
                "solo",
                "--queues",
                queue,
                "--loglevel",
                "INFO",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "--hostname",
                f"{queue}-{time.monotonic_ns()}@%h",
            ],
            cwd=PROJECT_DIR,
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def kill(process: subprocess.Popen[bytes], sig: int = signal.SIGKILL, grace: float = 30) -> None:
    """Send ``sig`` to the process and everything it started, and reap it (SIGKILL after
    ``grace`` seconds)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


def wait_for(
    condition: Callable[[], Any],
    *,
    timeout: float,
    what: str,
    ignoring: tuple[type[BaseException], ...] = (),
) -> None:
    """Until ``condition()`` is true; an exception in ``ignoring`` counts as "not yet"."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return
        except ignoring:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)
