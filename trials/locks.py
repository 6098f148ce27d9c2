"""Locks that span processes and machines, held by the database (not by a Python flag).

PostgreSQL: a session-level advisory lock. SQLite (one machine by nature): an exclusive
``flock`` on a file beside the database. Both are released by the database or the kernel when
the holder dies, so a killed worker never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, connection


@contextmanager
def exclusive_lock(name: str) -> Iterator[bool]:
    """Try to take the lock ``name`` without waiting; yields whether this caller holds it."""
    if connection.vendor == "postgresql":
        with _advisory_lock(name) as acquired:
            yield acquired
    else:
        with _file_lock(name) as acquired:
            yield acquired


@contextmanager
def _advisory_lock(name: str) -> Iterator[bool]:
    key = zlib.crc32(f"trialmatch:{name}".encode())
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
        acquired = bool(cursor.fetchone()[0])
    try:
        yield acquired
    finally:
        if acquired:
            try:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
            except DatabaseError:
                pass  # the connection is gone, and the lock went with it


@contextmanager
def _file_lock(name: str) -> Iterator[bool]:
    path = _lock_path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _lock_path(name: str) -> Path:
    database = str(connection.settings_dict["NAME"])
    if database == ":memory:" or database.startswith("file:"):
        return Path(settings.VAR_DIR) / "locks" / f"{name}.lock"
    return Path(f"{database}.{name}.lock")
