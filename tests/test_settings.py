"""Settings come from the environment, with embedded defaults and refusals in production."""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

PROJECT_DIR = Path(__file__).resolve().parent.parent
CONFIG_ENV = (
    "DEBUG",
    "SECRET_KEY",
    "ALLOWED_HOSTS",
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "CELERY_RESULT_BACKEND",
    "EMAIL_URL",
    "CTGOV_BASE_URL",
    "CACHE_URL",
    "TWO_FACTOR_COORDINATORS",
    "TWO_FACTOR_DEBUG_WAIVER",
)
PRINT_SETTINGS = """
import json, django
django.setup()
from django.conf import settings as s
from config.celery import app
print(json.dumps({
    "debug": s.DEBUG,
    "allowed_hosts": s.ALLOWED_HOSTS,
    "db": {
        k: s.DATABASES["default"].get(k)
        for k in ("ENGINE", "NAME", "HOST", "CONN_HEALTH_CHECKS")
    },
    "broker": app.conf.broker_url,
    "broker_options": app.conf.broker_transport_options,
    "time_limit": app.conf.task_time_limit,
    "email_backend": s.EMAIL_BACKEND,
    "email_host": s.EMAIL_HOST,
    "ctgov": s.CTGOV_BASE_URL,
    "ssl_redirect": s.SECURE_SSL_REDIRECT,
    "session_cookie_secure": s.SESSION_COOKIE_SECURE,
    "two_factor_coordinators": s.TWO_FACTOR_COORDINATORS,
    "two_factor_waiver": s.TWO_FACTOR_DEBUG_WAIVER,
}))
"""


def load_settings(tmp_path: Path, **overrides: str) -> subprocess.CompletedProcess[str]:
    """Import the settings in a fresh interpreter with exactly these variables set."""
    environment = {k: v for k, v in os.environ.items() if k not in CONFIG_ENV}
    environment.update(DJANGO_SETTINGS_MODULE="config.settings", VAR_DIR=str(tmp_path))
    environment.update(overrides)
    return subprocess.run(
        [sys.executable, "-c", PRINT_SETTINGS],
        cwd=PROJECT_DIR,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


def settings_of(tmp_path: Path, **overrides: str) -> dict[str, Any]:
    completed = load_settings(tmp_path, **overrides)
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout)


def test_embedded_defaults_need_no_server(tmp_path: Path) -> None:
    loaded = settings_of(tmp_path, DEBUG="1")

    assert loaded["db"]["ENGINE"] == "django.db.backends.sqlite3"
    assert loaded["db"]["NAME"] == str(tmp_path / "db.sqlite3")
    assert loaded["broker"] == "filesystem://"
    assert loaded["broker_options"]["data_folder_in"].startswith(str(tmp_path))
    assert (tmp_path / "broker" / "queue").is_dir()
    assert loaded["ctgov"] == "https://clinicaltrials.gov/api/v2"
    assert loaded["email_backend"] == "django.core.mail.backends.console.EmailBackend"


def test_services_are_taken_from_the_environment(tmp_path: Path) -> None:
    loaded = settings_of(
        tmp_path,
        DEBUG="1",
        DATABASE_URL="postgres://app:secret@db.internal:5432/trials",
        CELERY_BROKER_URL="redis://redis.internal:6379/0",
        EMAIL_URL="smtp+tls://mailer:pw@smtp.internal:587",
        CTGOV_BASE_URL="http://127.0.0.1:9999/api/v2",
    )

    assert loaded["db"]["ENGINE"] == "django.db.backends.postgresql"
    assert loaded["db"]["HOST"] == "db.internal"
    assert loaded["db"]["CONN_HEALTH_CHECKS"] is True
    assert loaded["broker"] == "redis://redis.internal:6379/0"
    # A task must finish before Redis hands it to another worker.
    assert loaded["broker_options"]["visibility_timeout"] > loaded["time_limit"]
    assert loaded["email_backend"] == "django.core.mail.backends.smtp.EmailBackend"
    assert loaded["email_host"] == "smtp.internal"
    assert loaded["ctgov"] == "http://127.0.0.1:9999/api/v2"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"DEBUG": "0"}, "SECRET_KEY must be set"),
        (
            {"DEBUG": "0", "SECRET_KEY": "dev-only-insecure-key-never-use-in-production"},
            "SECRET_KEY must be set",
        ),
        # The placeholder of .env.example, and anything short, are refused too.
        (
            {"DEBUG": "0", "SECRET_KEY": "change-me-to-a-long-random-string"},
            "SECRET_KEY must be set",
        ),
        ({"DEBUG": "0", "SECRET_KEY": "short"}, "SECRET_KEY must be set"),
        ({"DEBUG": "0", "SECRET_KEY": "x" * 50}, "ALLOWED_HOSTS must list"),
        # The demo's passwords-only sign-in never outside DEBUG.
        (
            {
                "DEBUG": "0",
                "SECRET_KEY": "x" * 50,
                "ALLOWED_HOSTS": "trials.example.org",
                "TWO_FACTOR_DEBUG_WAIVER": "1",
            },
            "TWO_FACTOR_DEBUG_WAIVER is for the local demo only",
        ),
    ],
)
def test_production_refuses_unsafe_defaults(
    tmp_path: Path, overrides: dict[str, str], message: str
) -> None:
    completed = load_settings(tmp_path, **overrides)

    assert completed.returncode != 0
    assert message in completed.stderr


def test_production_settings_are_secure(tmp_path: Path) -> None:
    loaded = settings_of(
        tmp_path, DEBUG="0", SECRET_KEY="k" * 50, ALLOWED_HOSTS="trials.example.org"
    )

    assert loaded["debug"] is False
    assert loaded["allowed_hosts"] == ["trials.example.org"]
    assert loaded["ssl_redirect"] is True
    assert loaded["session_cookie_secure"] is True
    # Two-factor sign-in for every staff role, coordinators included.
    assert loaded["two_factor_coordinators"] is True
    assert loaded["two_factor_waiver"] is False
