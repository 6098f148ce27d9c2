"""The application boots (migrations, system checks, a request) on SQLite and PostgreSQL."""

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import environ
import psycopg
import pytest
from django.conf import settings

PROJECT_DIR = Path(__file__).resolve().parent.parent
SERVE_HEALTHZ = """
import json, django
django.setup()
from django.test import Client
response = Client(HTTP_HOST="localhost").get("/healthz")
print(json.dumps({"status": response.status_code, "body": response.json()}))
"""


def suite_database_url() -> str:
    return os.environ.get("DATABASE_URL", "")


def database_urls() -> list[str]:
    """SQLite always; and the suite's own server database when it runs on one (CI)."""
    urls = ["sqlite"]
    if suite_database_url().startswith(("postgres://", "postgresql://")):
        urls.append("postgres")
    return urls


@pytest.fixture(params=database_urls())
def fresh_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'boot.sqlite3'}"
        return
    config = environ.Env.db_url_config(suite_database_url())
    name = f"boot_{uuid.uuid4().hex[:12]}"
    admin_dsn = (
        f"host={config['HOST']} port={config['PORT'] or 5432} "
        f"user={config['USER']} password={config['PASSWORD']} dbname={config['NAME']}"
    )
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield suite_database_url().rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run_manage(database_url: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    environment = dict(os.environ, DATABASE_URL=database_url, VAR_DIR=str(tmp_path), DEBUG="1")
    return subprocess.run(
        [sys.executable, *args],
        cwd=PROJECT_DIR,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_app_boots_migrates_and_answers(fresh_database_url: str, tmp_path: Path) -> None:
    migrate = run_manage(fresh_database_url, tmp_path, "manage.py", "migrate", "--noinput")
    assert migrate.returncode == 0, migrate.stderr

    check = run_manage(fresh_database_url, tmp_path, "manage.py", "check", "--database", "default")
    assert check.returncode == 0, check.stderr

    served = run_manage(fresh_database_url, tmp_path, "-c", SERVE_HEALTHZ)
    assert served.returncode == 0, served.stderr
    answer = json.loads(served.stdout.strip().splitlines()[-1])
    assert answer["body"]["checks"]["database"] == {"ok": True}


def test_suite_runs_on_the_configured_database() -> None:
    engine = settings.DATABASES["default"]["ENGINE"]
    if suite_database_url().startswith(("postgres://", "postgresql://")):
        assert engine == "django.db.backends.postgresql"
    else:
        assert engine == "django.db.backends.sqlite3"
