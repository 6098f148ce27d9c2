"""Public pre-screening form under load: many visitors at once, each walking the five steps
to the results page, over real HTTP against gunicorn (2 workers, production settings).

    .venv/bin/python bench/prescreen_load.py --reuse NAME [--clients 50] [--seconds 60]

``--reuse`` names a PostgreSQL database built by ``bench/admin_queue.py --keep NAME`` (2,000
trials read and matched, 10,000 patients), or any database holding trials. Each client
loops: the intro page, then each step (GET, then POST with its answers), then the results;
"submit to results" is the last step's POST plus the results page it redirects to: the time
a visitor waits after pressing "See my results". ``--think`` is the time a visitor spends on
each step (0: every client sends its next request as soon as the last answer arrives, the
most load the clients can make). Rate limits are lifted and the minimum fill
time set to 0 for the run (one address, machine speed).

Target (issue #8): submit-to-results p95 under 500 ms at 50 concurrent clients, zero errors.
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import sys
import threading
import time
from typing import Any

import requests
from common import DEFAULT_POSTGRES, HttpsClient, p95, served

ANSWERS: list[dict[str, Any]] = [
    {"age": "64", "sex": "female"},
    {"site": "stomach", "histology": "adenocarcinoma", "spread": "no"},
    {"stage": "III", "t_stage": "T3", "n_stage": "unknown", "surgery": "planned"},
    {"treatments": "none", "activity": "1"},
    {"conditions": "unknown", "country": "United States", "postal_code": "10065", "travel": "any"},
]
TOKEN = re.compile(r'name="(csrfmiddlewaretoken|form_token)" value="([^"]+)"')


class Visitor(HttpsClient):
    """One visitor's browser."""

    def __init__(self, base: str, think: float = 0.0) -> None:
        super().__init__(base)
        self.think = think

    def walk(self) -> float:
        """One visit; returns the submit-to-results time in ms. Raises on any error."""
        self.cookies.clear()
        check(self.request("GET", "/prescreen/"), 200)
        for number, answers in enumerate(ANSWERS, start=1):
            page = check(self.request("GET", f"/prescreen/step/{number}/"), 200)
            tokens = dict(TOKEN.findall(page.text))
            data = {**answers, **tokens, "website": ""}
            # Reading and answering: people differ, so visitors drift apart instead of
            # arriving in lockstep waves.
            time.sleep(self.think * random.uniform(0.5, 1.5))
            started = time.perf_counter()
            posted = check(self.request("POST", f"/prescreen/step/{number}/", data=data), 302)
            if number == len(ANSWERS):
                check(self.request("GET", posted.headers["Location"]), 200)
                return (time.perf_counter() - started) * 1000
        raise AssertionError("unreachable")


def check(answer: requests.Response, status: int) -> requests.Response:
    if answer.status_code != status:
        raise RuntimeError(f"{answer.request.method} {answer.url}: HTTP {answer.status_code}")
    return answer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reuse", metavar="NAME", required=True)
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument(
        "--think",
        type=float,
        default=0.0,
        help="Seconds each visitor spends on a step before sending it (0: back to back).",
    )
    options = parser.parse_args()

    database_url = options.postgres.rsplit("/", 1)[0] + f"/{options.reuse}"
    limits_lifted = {
        "PRESCREEN_RATE_PER_IP": "",
        "PRESCREEN_RATE_PER_SESSION": "",
        "PRESCREEN_MIN_FILL_SECONDS": "0",
    }
    with served(database_url, **limits_lifted) as base:
        Visitor(base).walk()  # warm-up: trials compiled in the workers
        Visitor(base).walk()
        timings: list[float] = []
        errors: list[str] = []
        lock = threading.Lock()
        deadline = time.monotonic() + options.seconds

        def client() -> None:
            visitor = Visitor(base, options.think)
            time.sleep(random.uniform(0, options.think))  # visitors arrive over time
            while time.monotonic() < deadline:
                try:
                    waited = visitor.walk()
                except Exception as exc:  # noqa: BLE001  (counted and reported)
                    with lock:
                        errors.append(str(exc)[:200])
                    continue
                with lock:
                    timings.append(waited)

        threads = [threading.Thread(target=client) for _ in range(options.clients)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started

    timings.sort()
    if not timings:
        sys.exit(f"no visit completed; first errors: {errors[:3]}")
    print(
        f"{options.clients} clients, {options.think:g} s on each step, for {elapsed:.0f} s: "
        f"{len(timings)} visits completed "
        f"({len(timings) * 12 / elapsed:.1f} requests/s), {len(errors)} errors"
    )
    print(
        f"submit to results: p50 {statistics.median(timings):.0f} ms, p95 {p95(timings):.0f} ms, "
        f"max {timings[-1]:.0f} ms"
    )
    if errors:
        print("first errors:", *sorted(set(errors))[:5], sep="\n  ")


if __name__ == "__main__":
    main()
