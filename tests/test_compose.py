"""docker-compose.yml and Dockerfile describe a stack that can actually start.

No Docker engine runs where the suite runs, so the files are read and every service, command,
module and file they name is checked against the project.
"""

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.core.management import get_commands

PROJECT_DIR = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((PROJECT_DIR / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
APP_SERVICES = ("web", "worker", "beat", "migrate")
DOCKERFILE = (PROJECT_DIR / "Dockerfile").read_text()


def command_of(service: str) -> list[str]:
    command = SERVICES[service].get("command")
    if command is None:
        cmd_line = re.search(r"^CMD (.+)$", DOCKERFILE, re.MULTILINE)
        assert cmd_line, "Dockerfile has no CMD"
        return list(yaml.safe_load(cmd_line.group(1)))
    return shlex.split(command) if isinstance(command, str) else list(command)


def module_exists(dotted: str) -> bool:
    path = PROJECT_DIR.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def test_the_stack_has_every_service() -> None:
    assert {"db", "redis", "web", "worker", "beat"} <= SERVICES.keys()


def test_worker_and_beat_reuse_the_web_image() -> None:
    for service in APP_SERVICES:
        assert SERVICES[service]["build"] == SERVICES["web"]["build"]
        assert SERVICES[service]["image"] == SERVICES["web"]["image"]
        assert SERVICES[service]["environment"] == SERVICES["web"]["environment"]


def test_app_services_point_at_the_stack_database_and_broker() -> None:
    environment = SERVICES["web"]["environment"]
    db = SERVICES["db"]["environment"]
    expected_db = (
        f"postgres://{db['POSTGRES_USER']}:{db['POSTGRES_PASSWORD']}@db:5432/{db['POSTGRES_DB']}"
    )
    assert environment["DATABASE_URL"] == expected_db
    assert environment["CELERY_BROKER_URL"].startswith("redis://redis:6379/")
    assert environment["DEBUG"] == "0"


@pytest.mark.parametrize("service", ["db", "redis", "web", "worker", "beat"])
def test_long_running_services_have_healthchecks(service: str) -> None:
    healthcheck = SERVICES[service]["healthcheck"]
    assert not healthcheck.get("disable")
    assert healthcheck["test"]


def test_migrations_run_once_before_the_app_starts() -> None:
    assert command_of("migrate")[:3] == ["python", "manage.py", "migrate"]
    assert SERVICES["migrate"]["restart"] == "no"
    for service in ("web", "worker", "beat"):
        condition = SERVICES[service]["depends_on"]["migrate"]["condition"]
        assert condition == "service_completed_successfully"
        assert SERVICES[service]["depends_on"]["db"]["condition"] == "service_healthy"


def test_web_runs_gunicorn_on_the_wsgi_module() -> None:
    command = command_of("web")
    assert command[0] == "gunicorn"
    module, _, attribute = command[1].partition(":")
    assert module_exists(module)
    assert attribute == "application"
    assert "application =" in (PROJECT_DIR / "config" / "wsgi.py").read_text()


def test_web_and_image_use_the_gunicorn_settings_with_json_logs() -> None:
    import runpy

    command = command_of("web")
    config_file = command[command.index("-c") + 1]
    assert f'"-c", "{config_file}"' in DOCKERFILE
    loaded = runpy.run_path(str(PROJECT_DIR / config_file))
    assert loaded["accesslog"] is None  # the app's own access lines, without query strings
    formatter = loaded["logconfig_dict"]["formatters"]["json"]["()"]
    module, _, name = formatter.rpartition(".")
    assert module_exists(module)
    assert name in (PROJECT_DIR / (module.replace(".", "/") + ".py")).read_text()


@pytest.mark.parametrize(("service", "subcommand"), [("worker", "worker"), ("beat", "beat")])
def test_celery_services_name_the_celery_app(service: str, subcommand: str) -> None:
    command = command_of(service)
    assert command[:2] == ["celery", "-A"]
    assert module_exists(command[2])
    assert (PROJECT_DIR / command[2] / "celery.py").is_file()
    assert command[3] == subcommand


def test_every_manage_command_named_exists() -> None:
    for service in APP_SERVICES:
        command = command_of(service)
        if command[:2] == ["python", "manage.py"]:
            assert command[2] in get_commands()


def test_dockerfile_builds_a_non_root_image_with_static_files() -> None:
    for copied in re.findall(r"^COPY (\S+) ", DOCKERFILE, re.MULTILINE):
        assert (PROJECT_DIR / copied).exists(), copied
    assert "collectstatic" in DOCKERFILE
    user_lines = re.findall(r"^USER (\S+)$", DOCKERFILE, re.MULTILINE)
    assert user_lines
    assert user_lines[-1] not in ("root", "0")
    assert (
        "whitenoise.middleware.WhiteNoiseMiddleware"
        in (PROJECT_DIR / "config" / "settings.py").read_text()
    )


def test_every_variable_the_stack_sets_is_documented() -> None:
    documented = set(
        re.findall(r"^([A-Z_]+)=", (PROJECT_DIR / ".env.example").read_text(), re.MULTILINE)
    )
    assert set(SERVICES["web"]["environment"]) <= documented
