"""The whole service as a hospital runs it, on this machine, for the end-to-end test.

A private PostgreSQL (``initdb`` into a temporary folder, its own port) and a private Redis
(append-only file, its own port), so that the test can restart them without touching the
servers the rest of the suite uses; gunicorn (2 workers), a Celery worker (prefork, 2
processes) and Celery beat, all with production settings (``DEBUG=0``), JSON logs in files.
Each can be killed, stopped and started again.
"""

from __future__ import annotations

import contextlib
import functools
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import requests

from tests import processes
from tests.processes import PROJECT_DIR


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# While services start and restart, a check that fails (no answer, refused connection) means
# "not yet".
wait_for = functools.partial(processes.wait_for, ignoring=(Exception,))


def postgres_bin() -> Path:
    found = shutil.which("pg_config")
    if found:
        answer = subprocess.run([found, "--bindir"], capture_output=True, text=True, check=True)
        candidate = Path(answer.stdout.strip())
        if (candidate / "initdb").exists():
            return candidate
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "initdb").exists():
            return candidate
    raise AssertionError("PostgreSQL's server programs (initdb, pg_ctl) are not installed")


class PrivatePostgres:
    """A PostgreSQL cluster of the test's own. As root, it runs as the ``postgres`` user."""

    def __init__(self, root: Path) -> None:
        self.bin = postgres_bin()
        self.data = root / "pgdata"
        self.socket_dir = root / "pgsocket"
        self.log = root / "postgres.log"
        self.port = free_port()
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            self.as_user = ["runuser", "-u", "postgres", "--"]
            owner = pwd.getpwnam("postgres")
            for path in (root, self.socket_dir):
                path.mkdir(exist_ok=True)
                os.chown(path, owner.pw_uid, owner.pw_gid)
            self.log.touch()
            os.chown(self.log, owner.pw_uid, owner.pw_gid)
        else:
            self.socket_dir.mkdir(exist_ok=True)

    def _run(self, *command: str) -> None:
        subprocess.run(
            [*self.as_user, *command],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd="/",
        )

    def init(self) -> None:
        self._run(
            str(self.bin / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
        )
        self.start()

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c full_page_writes=off -c synchronous_commit=off"
        )
        self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-o",
            options,
            "-w",
            "start",
        )

    def stop(self) -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def restart(self) -> None:
        self.stop()
        self.start()

    def url(self, database: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def sql(self, statement: str, database: str = "postgres") -> str:
        answer = subprocess.run(
            [
                str(self.bin / "psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                database,
                "-Atc",
                statement,
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        return answer.stdout.strip()

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._run(
                str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"
            )


class PrivateRedis:
    """A Redis of the test's own that keeps its data across a restart (append-only file)."""

    def __init__(self, root: Path) -> None:
        self.dir = root / "redis"
        self.dir.mkdir()
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.dir),
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_for(self._answers, timeout=30, what="redis to start")

    def _answers(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")

    def stop(self) -> None:
        """A clean shutdown (what a service manager does): the append-only file is kept."""
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=30)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def url(self, number: int) -> str:
        return f"redis://127.0.0.1:{self.port}/{number}"

    def queue_length(self, queue: str = "celery") -> int:
        """Messages waiting in a Celery queue (a Redis list in database 0)."""
        import redis

        with redis.Redis(port=self.port, socket_timeout=2) as client:
            return int(client.llen(queue))


class Service:
    """One long-running process of the stack, its output in ``log``."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], log: Path) -> None:
        self.name, self.command, self.env, self.log = name, command, env, log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(
                self.command,
                cwd=PROJECT_DIR,
                env=self.env,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process is None:
            return
        processes.kill(self.process, sig, grace=60)  # a worker's warm shutdown ends its task
        self.process = None

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


class Stack:
    """PostgreSQL, Redis, gunicorn, a worker and beat, with production settings."""

    def __init__(self, ctgov_url: str, *, sync_every: int) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="stack-"))
        # The postgres user (when the tests run as root) must reach its folder inside.
        os.chmod(self.root, 0o755)  # noqa: S103 - a folder of test data, nothing secret
        self.postgres = PrivatePostgres(self.root / "pg")
        self.redis = PrivateRedis(self.root)
        self.mail_dir = self.root / "mail"
        self.mail_dir.mkdir()
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.env = dict(
            os.environ,
            DEBUG="0",
            SECRET_KEY="end-to-end-" + uuid.uuid4().hex,
            ALLOWED_HOSTS="127.0.0.1,localhost",
            CSRF_TRUSTED_ORIGINS=self.base_url,
            SECURE_SSL_REDIRECT="0",
            USE_X_FORWARDED_PROTO="1",
            SECURE_HSTS_SECONDS="0",
            DATABASE_URL=self.postgres.url("trialmatch"),
            CONN_MAX_AGE="60",
            CELERY_BROKER_URL=self.redis.url(0),
            CELERY_RESULT_BACKEND=self.redis.url(1),
            CACHE_URL=f"rediscache://127.0.0.1:{self.redis.port}/2",
            EMAIL_URL=f"filemail:///{self.mail_dir}",
            DEFAULT_FROM_EMAIL="trials@example.org",
            SITE_URL=self.base_url,
            CTGOV_BASE_URL=ctgov_url,
            CTGOV_SYNC_QUERY="",
            CTGOV_PAGE_SIZE="10",
            CTGOV_MIN_REQUEST_INTERVAL="0",
            CTGOV_MAX_ATTEMPTS="8",
            CTGOV_READ_TIMEOUT="5",
            CTGOV_SYNC_EVERY_SECONDS=str(sync_every),
            CELERY_TASK_SOFT_TIME_LIMIT="240",
            CELERY_TASK_TIME_LIMIT="300",
            STATIC_ROOT=str(self.root / "static"),
            VAR_DIR=str(self.root / "var"),
            LOG_FORMAT="json",
            LOG_LEVEL="INFO",
            PRESCREEN_MIN_FILL_SECONDS="0",
        )
        self.env.pop("CELERY_FILESYSTEM_BROKER_DIR", None)
        python = sys.executable
        self.web = Service(
            "web",
            [
                python,
                "-m",
                "gunicorn",
                "config.wsgi:application",
                "-c",
                "config/gunicorn.conf.py",
                f"--bind=127.0.0.1:{self.port}",
            ],
            self.env,
            self.root / "web.log",
        )
        self.worker = Service(
            "worker",
            [
                python,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "--concurrency=2",
                "--loglevel=INFO",
                "--without-gossip",
                "--without-mingle",
                f"--hostname=e2e-{uuid.uuid4().hex[:8]}@%h",
            ],
            self.env,
            self.root / "worker.log",
        )
        self.beat = Service(
            "beat",
            [
                python,
                "-m",
                "celery",
                "-A",
                "config",
                "beat",
                "--loglevel=INFO",
                f"--schedule={self.root / 'var' / 'beat-schedule'}",
            ],
            self.env,
            self.root / "beat.log",
        )

    def manage(self, *args: str, database: str | None = None) -> str:
        env = dict(self.env)
        if database is not None:
            env["DATABASE_URL"] = self.postgres.url(database)
        answer = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=PROJECT_DIR,
            env=env,
            capture_output=True,
            text=True,
        )
        if answer.returncode != 0:
            raise AssertionError(f"manage.py {' '.join(args)} failed:\n{answer.stderr[-3000:]}")
        return answer.stdout

    def prepare(self) -> None:
        """Databases and Redis up, schema migrated, static files collected."""
        (self.root / "var").mkdir()
        self.postgres.init()
        self.postgres.sql("CREATE DATABASE trialmatch")
        self.redis.start()
        self.manage("migrate", "--noinput")
        self.manage("collectstatic", "--noinput")

    def start_services(self) -> None:
        for service in (self.web, self.worker, self.beat):
            service.start()
        wait_for(
            lambda: requests.get(f"{self.base_url}/healthz", timeout=5).status_code == 200,
            timeout=60,
            what="gunicorn to answer /healthz",
        )

    def stop(self) -> None:
        for service in (self.beat, self.worker, self.web):
            service.kill(signal.SIGTERM)
        self.redis.stop()
        self.postgres.destroy()

    def logs(self) -> str:
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')[-4000:]}"
            for path in sorted(self.root.glob("*.log"))
        )

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
