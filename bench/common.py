"""What the benchmark scripts share: throwaway databases and measured child processes."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
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


def run_child(
    script: str, args: list[str], database_url: str, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """Run ``script`` with ``args`` in a fresh process; it prints its result as JSON last."""
    completed = subprocess.run(
        [sys.executable, script, *args],
        cwd=PROJECT_DIR,
        env=env or production_env(database_url),
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise SystemExit(f"{script} {' '.join(args)} failed:\n{completed.stderr}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def manage(env: dict[str, str], *args: str) -> None:
    """``manage.py`` with ``args`` in a fresh process on ``env``; its output is dropped and a
    failure stops the benchmark."""
    subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=PROJECT_DIR,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )


def reused_database(parser: Any, options: Any) -> str:
    """The URL of the kept database ``--reuse`` names (an error when it is missing)."""
    if not options.reuse:
        parser.error("--reuse NAME is required (a database from bench/admin_queue.py --keep)")
    return str(options.postgres.rsplit("/", 1)[0] + f"/{options.reuse}")


def setup_django() -> None:
    sys.path.insert(0, str(PROJECT_DIR))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()


# --- the app over real HTTP ------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def gunicorn(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    """gunicorn with 2 workers on 127.0.0.1:``port``, as the container runs it."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "config.wsgi",
            "--workers=2",
            f"--bind=127.0.0.1:{port}",
            "--log-level=warning",
        ],
        cwd=PROJECT_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def celery_worker(env: dict[str, str]) -> subprocess.Popen[bytes]:
    """A Celery worker with 2 processes on ``env``'s broker, its queue emptied first."""
    celery = [sys.executable, "-m", "celery", "-A", "config"]
    subprocess.run([*celery, "purge", "-f"], cwd=PROJECT_DIR, env=env, capture_output=True)
    return subprocess.Popen(
        [*celery, "worker", "--concurrency=2", "--loglevel=WARNING", "--without-gossip"],
        cwd=PROJECT_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@contextmanager
def served(database_url: str, **extra: str) -> Iterator[str]:
    """gunicorn (2 workers) as in production on ``database_url``: static files collected
    (hashed names) into a throwaway folder and served by whitenoise, HTTPS as behind a TLS
    proxy (X-Forwarded-Proto trusted). Yields the base URL; stops the server afterwards."""
    import requests

    port = free_port()
    static_root = tempfile.mkdtemp(prefix="bench-static-")
    env = production_env(
        database_url,
        SECURE_SSL_REDIRECT="0",
        USE_X_FORWARDED_PROTO="1",
        STATIC_ROOT=static_root,
        CSRF_TRUSTED_ORIGINS=f"https://127.0.0.1:{port}",
        **extra,
    )
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput"],
        cwd=PROJECT_DIR,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    server = gunicorn(env, port)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(150):
            try:
                requests.get(f"{base}/healthz", timeout=5)
                break
            except requests.RequestException:
                time.sleep(0.2)
        else:
            raise SystemExit("gunicorn did not start")
        yield base
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(static_root, ignore_errors=True)


class HttpsClient:
    """One browser against ``served``: its own cookies, sent by hand (the app sets secure
    cookies and is reached over plain HTTP with X-Forwarded-Proto, as behind its proxy)."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        import requests

        origin = f"https://{self.base.split('://', 1)[1]}"
        headers = {
            "X-Forwarded-Proto": "https",
            "Referer": origin + path,
            "Origin": origin,
            "Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items()),
        }
        answer = requests.request(
            method, self.base + path, headers=headers, allow_redirects=False, timeout=60, **kwargs
        )
        for cookie in answer.cookies:
            if cookie.value:
                self.cookies[cookie.name] = cookie.value
            else:  # cleared by the app
                self.cookies.pop(cookie.name, None)
        return answer

    def get(self, path: str) -> Any:
        return self.request("GET", path)


def p95(ordered: list[float]) -> float:
    """The 95th percentile of an ascending list (nearest rank)."""
    return ordered[max(0, round(0.95 * len(ordered)) - 1)]
