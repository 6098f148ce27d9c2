"""What the benchmark scripts share: throwaway databases and measured child processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

PROJECT_DIR = Path(__file__).resolve().parent.parent
DEFAULT_POSTGRES = os.environ.get(
    "BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres"
)


class PostgresDatabase:
    """A throwaway database on the given server, dropped afterwards."""

    def __init__(self, server_url: str, keep: str | None = None) -> None:
        self.server_url = server_url
        self.name = keep or f"bench_{uuid.uuid4().hex[:10]}"
        self.keep = keep is not None  # a named database is left in place afterwards

    def __enter__(self) -> str:
        import psycopg

        with psycopg.connect(self.server_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.name}"')
        return self.server_url.rsplit("/", 1)[0] + f"/{self.name}"

    def __exit__(self, *exc: object) -> None:
        import psycopg

        if self.keep:
            return
        with psycopg.connect(self.server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def production_env(database_url: str, **extra: str) -> dict[str, str]:
    """Production settings: with DEBUG on, Django would keep every query's SQL in memory."""
    environment = dict(
        os.environ,
        DATABASE_URL=database_url,
        DEBUG="0",
        SECRET_KEY="benchmark-only-" + uuid.uuid4().hex,
        ALLOWED_HOSTS="localhost,127.0.0.1",
        SECURE_SSL_REDIRECT="0",
        LOG_LEVEL="WARNING",
    )
    environment.update(extra)
    return environment


def run_child(script: str, args: list[str], database_url: str) -> dict[str, Any]:
    """Run ``script`` with ``args`` in a fresh process; it prints its result as JSON last."""
    completed = subprocess.run(
        [sys.executable, script, *args],
        cwd=PROJECT_DIR,
        env=production_env(database_url),
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise SystemExit(f"{script} {' '.join(args)} failed:\n{completed.stderr}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def setup_django() -> None:
    sys.path.insert(0, str(PROJECT_DIR))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
