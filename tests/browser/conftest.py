"""Real-browser tests: Playwright driving Debian's Chromium against a live server.

Fixtures:

* ``browser`` (module): a headless Chromium. Its path comes from ``CHROMIUM_PATH``, else the
  ``chromium`` on ``PATH``; when there is none the tests FAIL (this suite skips nothing).
  ``make test`` installs Debian's package when it is missing.
* ``page`` (function): a fresh browser context and page, opened on the live server
  (``page.goto("/admin/")`` is relative to it). The test fails when the page loads anything
  from another host (no CDN) or raises an uncaught JavaScript error; a failing test leaves a
  screenshot ``FAILED-<test>.png`` in the artifacts directory.
* ``screenshot(page, name)``: a full-page PNG ``<name>.png`` in the artifacts directory
  (``TEST_ARTIFACTS_DIR``, default ``test-artifacts/`` at the project root).
* ``site_a`` (code "default", where imported patients go), ``site_b`` ("north"), and the
  accounts ``superuser``, ``coordinator_a``, ``coordinator_b`` (an ``Account``: username,
  password, user, and the authenticator device each has set up, since every role signs in with
  a code); coordinators are in the "coordinator" group and their site.
* ``demo_data``: recorded real registry records and the example FHIR patients, matched, so
  that the review queue has flagged pairs at both sites (see ``DemoData``).
* ``log_in(page, account)`` / ``submit_login(page, username, password, code=...)``: through
  the real sign-in form, with the account's current authenticator code (django-axes watches
  the form, so ``client.login()`` is not an option).
"""

from __future__ import annotations

import copy
import functools
import json
import os
import re
import secrets
import shutil
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Group
from django.utils import timezone
from playwright.sync_api import Browser, Page, ViewportSize, expect, sync_playwright
from pytest_django.live_server_helper import LiveServer

from patients import matching
from patients.access import COORDINATOR_GROUP, SITE_ADMIN_GROUP
from patients.fhir import read_bundle
from patients.models import Match, Site, Source
from patients.roles import ensure_groups
from patients.services import default_site, import_patient_files, patient_upsert
from tests.fakes.ctgov_server import load_recorded_studies, nct_id_of
from tests.patients.conftest import EXAMPLES, FHIR_DATA
from tests.trials.conftest import CTGOV_DATA
from tests.two_factor import add_device, current_code
from trials import services
from trials.criteria import refresh_stale_criteria
from trials.models import SyncRun, Trial

PROJECT_DIR = Path(__file__).resolve().parents[2]
VIEWPORT: ViewportSize = {"width": 1366, "height": 900}
EXPECTATIONS: dict[str, Any] = json.loads((EXAMPLES / "expectations.json").read_text())
# The recorded copies of these trials are served as recruiting, as in the matching tests, so
# that the example patients have open trials to be flagged for.
OPEN_TRIALS: list[str] = EXPECTATIONS["open_trials"]
EXAMPLE_PATIENTS: list[str] = sorted(EXPECTATIONS["patients"])
SYNTHETIC_PATIENTS = sorted((FHIR_DATA / "demo").glob("DEMO-*.json"))
# Site B's patient: EX1's clinical record under a MRN of that hospital.
SITE_B_PATIENT = "NORTH-0001"
_OUTCOME = pytest.StashKey[dict[str, pytest.TestReport]]()


# --- the browser ---------------------------------------------------------------------------


def chromium_path() -> str:
    """The Chromium to drive: ``CHROMIUM_PATH``, else ``chromium`` on ``PATH``."""
    configured = os.environ.get("CHROMIUM_PATH")
    path = configured or shutil.which("chromium")
    if not path or not os.access(path, os.X_OK):
        found = (
            f"CHROMIUM_PATH={configured!r} is not executable"
            if configured
            else "there is no 'chromium' on PATH"
        )
        pytest.fail(
            f"The browser tests need Chromium: {found}. Run `make test` (it installs Debian's "
            "package when missing), or `apt-get install chromium`, or set CHROMIUM_PATH.",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Chromium for the tests of one module.

    Playwright's sync API keeps an asyncio event loop running in this thread while it is
    started, and Django then refuses ORM calls from the thread (SynchronousOnlyOperation),
    including the database flush after each test. The ORM is used synchronously here, so the
    check is switched off, for as long as the browser runs only: one module's tests. Module
    scope also stops the loop before tests of other modules run in the same process.
    """
    path = chromium_path()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with sync_playwright() as playwright:
            launched = playwright.chromium.launch(
                executable_path=path,
                headless=True,
                # No setuid sandbox (unavailable to root and in most containers); a small
                # /dev/shm (containers) must not crash the renderer.
                chromium_sandbox=False,
                args=["--disable-dev-shm-usage"],
            )
            try:
                yield launched
            finally:
                launched.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep each phase's report on the test, for ``page`` to screenshot a failure."""
    report = yield
    item.stash.setdefault(_OUTCOME, {})[report.when] = report
    return report


@pytest.fixture
def page(
    request: pytest.FixtureRequest,
    browser: Browser,
    live_server: LiveServer,
    artifacts_dir: Path,
) -> Iterator[Page]:
    context = browser.new_context(base_url=live_server.url, viewport=VIEWPORT, locale="en-GB")
    opened = context.new_page()
    foreign: list[str] = []
    script_errors: list[str] = []
    own = live_server.url.rstrip("/") + "/"

    def on_request(url: str) -> None:
        if url.startswith(("http:", "https:")) and not url.startswith(own):
            foreign.append(url)

    opened.on("request", lambda sent: on_request(sent.url))
    opened.on("pageerror", lambda error: script_errors.append(str(error)))
    try:
        yield opened
        call = request.node.stash.get(_OUTCOME, {}).get("call")
        if call is not None and call.failed:
            name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
            opened.screenshot(path=artifacts_dir / f"FAILED-{name}.png", full_page=True)
    finally:
        context.close()
    assert not foreign, f"the page loaded from outside the server (no CDN allowed): {foreign}"
    assert not script_errors, f"uncaught JavaScript errors: {script_errors}"


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Where screenshots go: ``TEST_ARTIFACTS_DIR``, default ``test-artifacts/``."""
    path = Path(os.environ.get("TEST_ARTIFACTS_DIR") or PROJECT_DIR / "test-artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def screenshot(artifacts_dir: Path) -> Callable[[Page, str], Path]:
    """``screenshot(page, "queue")`` saves the whole page as ``queue.png``; returns the path."""

    def take(shown: Page, name: str) -> Path:
        path = artifacts_dir / f"{name}.png"
        shown.screenshot(path=path, full_page=True)
        return path

    return take


# --- signing in ----------------------------------------------------------------------------


@dataclass
class Account:
    username: str
    password: str
    user: AbstractBaseUser
    device: Any = None  # the authenticator (django-otp TOTPDevice) the account set up


def submit_login(
    page: Page, username: str, password: str, *, code: str = "", next_url: str = "/admin/"
) -> None:
    """Fill in and send the admin sign-in form; waits for the answer, whatever it is."""
    page.goto(f"/admin/login/?next={next_url}")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    if code:
        page.get_by_label("Authenticator code").fill(code)
    with page.expect_navigation():
        page.get_by_role("button", name="Log in").click()


def log_in(page: Page, account: Account, *, next_url: str = "/admin/") -> None:
    """Sign in through the form as ``account``, with the code its authenticator shows now;
    fails unless it lands past the login page."""
    code = current_code(account.device) if account.device is not None else ""
    submit_login(page, account.username, account.password, code=code, next_url=next_url)
    expect(page).not_to_have_url(re.compile(r"/admin/login/"))
    expect(page.locator("#user-tools")).to_contain_text(account.username)


def log_out(page: Page) -> None:
    """The admin's "Log out" button (a POST form since Django 5)."""
    with page.expect_navigation():
        page.locator("#logout-form").get_by_role("button").click()


# --- sites and accounts --------------------------------------------------------------------


@pytest.fixture(autouse=True)
def fast_password_hashing(settings: Any) -> None:
    """Each sign-in would spend most of its time on the production password hash, whose
    strength is not what these tests are about."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def site_a(transactional_db: None) -> Site:
    """The site imported patients go to when their source names none."""
    return default_site()


@pytest.fixture
def site_b(transactional_db: None) -> Site:
    return Site.objects.get_or_create(code="north", defaults={"name": "North Hospital"})[0]


def make_account(
    username: str, *, sites: tuple[Site, ...] = (), superuser: bool = False
) -> Account:
    password = secrets.token_urlsafe(15)
    user = get_user_model().objects.create_user(
        username=username, password=password, is_staff=True, is_superuser=superuser
    )
    if not superuser:
        ensure_groups()
        user.groups.add(Group.objects.get(name=COORDINATOR_GROUP))
    for site in sites:
        site.coordinators.add(user)
    return Account(username, password, user, add_device(user))


def new_site_admin(site: Site) -> Account:
    """A site admin of ``site`` who has not set up an authenticator yet (a new account)."""
    account = make_account("site-admin-a", sites=(site,))
    account.device.delete()
    user: Any = account.user
    user.groups.set([Group.objects.get(name=SITE_ADMIN_GROUP)])
    return Account(account.username, account.password, account.user)


@pytest.fixture
def superuser(transactional_db: None) -> Account:
    return make_account("root", superuser=True)


@pytest.fixture
def coordinator_a(site_a: Site) -> Account:
    return make_account("coordinator-a", sites=(site_a,))


@pytest.fixture
def coordinator_b(site_b: Site) -> Account:
    return make_account("coordinator-b", sites=(site_b,))


# --- demo data -----------------------------------------------------------------------------


@dataclass
class DemoData:
    site_a: Site
    site_b: Site
    trials: int
    # (MRN, NCT id) of the flagged pairs of each site.
    flagged_a: set[tuple[str, str]] = field(default_factory=set)
    flagged_b: set[tuple[str, str]] = field(default_factory=set)
    possible_a: set[tuple[str, str]] = field(default_factory=set)
    possible_b: set[tuple[str, str]] = field(default_factory=set)


@functools.cache
def _recorded_studies() -> tuple[dict[str, Any], ...]:
    studies = load_recorded_studies(CTGOV_DATA / "v2", CTGOV_DATA / "v2-partial")
    for study in studies:
        if nct_id_of(study) in OPEN_TRIALS:
            study["protocolSection"].setdefault("statusModule", {})["overallStatus"] = "RECRUITING"
    return tuple(studies)


def _bundle(name: str, *, mrn: str | None = None) -> dict[str, Any]:
    document = json.loads((EXAMPLES / f"{name}.json").read_text())
    if mrn is not None:
        patient = next(
            entry["resource"]
            for entry in document["entry"]
            if entry["resource"]["resourceType"] == "Patient"
        )
        patient["identifier"][0]["value"] = mrn
    return document


def _pairs(site: Site, **filters: Any) -> set[tuple[str, str]]:
    rows = Match.objects.current().filter(patient__site=site, **filters)
    return set(rows.values_list("patient__external_id", "trial__nct_id"))


@pytest.fixture
def demo_data(site_a: Site, site_b: Site) -> Iterator[DemoData]:
    """What ``bootstrap_demo`` loads, matched as a nightly sync leaves it: the recorded real
    registry records (the example patients' trials recruiting); at site A the example FHIR
    patients EX1-EX3 and the synthetic DEMO-* patients; at site B one patient, EX1's record
    under the MRN NORTH-0001. Both sites have flagged pairs. Takes about a second."""
    matching.rules_cache().clear()  # primary keys may be reused from an earlier test
    run = SyncRun.objects.create(mode=SyncRun.Mode.FILE, source=str(CTGOV_DATA))
    services.trials_upsert(studies=copy.deepcopy(list(_recorded_studies())), run=run)
    run.status = SyncRun.Status.SUCCEEDED
    run.finished_at = timezone.now()
    run.save()
    services.locate_sites()
    refresh_stale_criteria()
    for name in EXAMPLE_PATIENTS:
        _upsert(_bundle(name), site_a)
    report = import_patient_files(SYNTHETIC_PATIENTS, site=site_a)
    assert report.rejected == 0, report.problems
    _upsert(_bundle("EX1", mrn=SITE_B_PATIENT), site_b)
    matching.match_all()
    data = DemoData(
        site_a=site_a,
        site_b=site_b,
        trials=Trial.objects.count(),
        flagged_a=_pairs(site_a, flagged=True),
        flagged_b=_pairs(site_b, flagged=True),
        possible_a=_pairs(site_a, flagged=False, verdict="possible"),
        possible_b=_pairs(site_b, flagged=False, verdict="possible"),
    )
    assert data.flagged_a
    assert data.flagged_b
    yield data
    matching.rules_cache().clear()


def _upsert(bundle: dict[str, Any], site: Site) -> None:
    result = patient_upsert(
        read_bundle(bundle, origin="browser tests"), source=Source.FHIR, site=site
    )
    assert result.patient is not None, result.problems
