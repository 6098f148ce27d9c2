"""REST API throughput and latency over real HTTP: gunicorn (2 workers, production settings).

    .venv/bin/python bench/api_load.py --reuse NAME [--clients 8] [--seconds 30]

``--reuse`` names a PostgreSQL database built by ``bench/admin_queue.py --keep NAME`` (2,000
trials read and matched, 10,000 patients, its ``bench-admin`` superuser). A token is made for
that user; then, for each endpoint, ``--clients`` clients call it back to back for
``--seconds`` seconds: requests/s, p50 / p95 / max latency, errors.

Endpoints (issue #9): ``GET /api/v1/trials/`` (first page of 50, with sites) and
``GET /api/v1/patients/{id}/matches/`` (the first page, 50, of one patient's matches in
queue order, each with every criterion's outcome and reason; the patients cycle).
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import subprocess
import sys
import threading
import time

import requests
from common import (
    DEFAULT_POSTGRES,
    PROJECT_DIR,
    p95,
    production_env,
    reused_database,
    served,
    setup_django,
)


def child_token() -> dict[str, object]:
    setup_django()
    from django.contrib.auth.models import User
    from django.core.management import call_command

    from patients.models import Patient

    user = User.objects.get(username="bench-admin")
    out = io.StringIO()
    call_command("create_api_token", user.username, name="bench", stdout=out)
    token = next(word for word in out.getvalue().split() if word.startswith("tm_"))
    ids = list(Patient.objects.order_by("pk").values_list("pk", flat=True)[:500])
    return {"token": token, "patients": ids}


def hammer(
    base: str, token: str, paths: list[str], clients: int, seconds: float
) -> dict[str, float]:
    timings: list[float] = []
    errors = 0
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client(offset: int) -> None:
        nonlocal errors
        session = requests.Session()
        session.headers.update({"Authorization": f"Token {token}", "X-Forwarded-Proto": "https"})
        index = offset
        while time.monotonic() < deadline:
            path = paths[index % len(paths)]
            index += clients
            started = time.perf_counter()
            try:
                answer = session.get(base + path, timeout=60)
                ok = answer.status_code == 200
            except requests.RequestException:
                ok = False
            elapsed = (time.perf_counter() - started) * 1000
            with lock:
                if ok:
                    timings.append(elapsed)
                else:
                    errors += 1

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.monotonic() - started
    timings.sort()
    return {
        "requests": len(timings),
        "per_second": len(timings) / wall,
        "p50": statistics.median(timings) if timings else 0.0,
        "p95": p95(timings) if timings else 0.0,
        "max": timings[-1] if timings else 0.0,
        "errors": errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reuse", metavar="NAME")
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--child", action="store_true")
    options = parser.parse_args()
    if options.child:
        print(json.dumps(child_token()))
        return
    database_url = reused_database(parser, options)
    made = subprocess.run(
        [sys.executable, __file__, "--child"],
        cwd=PROJECT_DIR,
        env=production_env(database_url),
        capture_output=True,
        text=True,
        check=True,
    )
    prepared = json.loads(made.stdout.splitlines()[-1])
    with served(database_url, API_RATE_PER_TOKEN="", API_RATE_PER_IP="") as base:
        suites = {
            "GET /api/v1/trials/": ["/api/v1/trials/"],
            "GET /api/v1/patients/{id}/matches/": [
                f"/api/v1/patients/{pk}/matches/" for pk in prepared["patients"]
            ],
        }
        for label, paths in suites.items():
            hammer(base, prepared["token"], paths[:4], 2, 2)  # warm-up
            figures = hammer(base, prepared["token"], paths, options.clients, options.seconds)
            print(
                f"{label:36} {options.clients} clients: {figures['per_second']:6.1f} req/s, "
                f"p50 {figures['p50']:5.0f} ms, p95 {figures['p95']:5.0f} ms, "
                f"max {figures['max']:5.0f} ms, {figures['errors']} errors"
            )


if __name__ == "__main__":
    main()
