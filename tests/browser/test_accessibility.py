"""axe-core (WCAG 2.1 A/AA) on the pages a coordinator uses, at a phone's width and a desktop's:
the sign-in page, the dashboard, the review queue and a match page have no serious or critical
violation. Screenshots ``a11y-<page>-<width>.png`` are kept as test artifacts.

Also the helper itself (tests/browser/axe.py): it finds what it should on a page served under
a strict Content-Security-Policy, and fails (never skips) when axe-core is not installed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, Route

from patients.models import Patient, Site
from tests.browser import axe
from tests.browser.axe import assert_no_violations, axe_violations, describe_violations
from tests.browser.conftest import Account, DemoData, log_in, new_site_admin, submit_login
from trials.models import Trial

MATTERHORN = "NCT04592913"  # perioperative durvalumab + FLOT: flagged for EX1 at site A
WIDTHS = (1280, 375)
HEIGHT = 900

Shoot = Callable[[Page, str], Path]


def pair_path(mrn: str, nct_id: str) -> str:
    patient = Patient.objects.get(external_id=mrn)
    trial = Trial.objects.get(nct_id=nct_id)
    return f"/admin/patients/match/pair/{patient.pk}/{trial.pk}/"


@pytest.mark.parametrize("width", WIDTHS)
def test_coordinator_pages_have_no_serious_or_critical_violations(
    page: Page,
    demo_data: DemoData,
    coordinator_a: Account,
    screenshot: Shoot,
    width: int,
) -> None:
    page.set_viewport_size({"width": width, "height": HEIGHT})
    found: dict[str, list[dict[str, Any]]] = {}

    def check(name: str) -> None:
        page.wait_for_load_state("load")
        found[name] = axe_violations(page)
        screenshot(page, f"a11y-{name}-{width}")

    page.goto("/admin/login/?next=/admin/")
    check("login")
    log_in(page, coordinator_a)
    check("dashboard")
    page.goto("/admin/patients/match/")
    check("queue")
    assert ("EX1", MATTERHORN) in demo_data.flagged_a
    page.goto(pair_path("EX1", MATTERHORN))
    check("match")

    failing = {name: rules for name, rules in found.items() if rules}
    assert not failing, "\n\n".join(
        describe_violations(rules, where=f" on the {name} page at {width} px")
        for name, rules in failing.items()
    )


def test_the_two_factor_enrolment_page_has_no_serious_or_critical_violations(
    page: Page, site_a: Site, screenshot: Shoot
) -> None:
    account = new_site_admin(site_a)
    submit_login(page, account.username, account.password)
    page.wait_for_load_state("load")

    assert "/admin/two-factor/" in page.url
    screenshot(page, "a11y-two-factor-enrol")
    assert_no_violations(page)


# --- the helper ----------------------------------------------------------------------------

PROBE_PATH = "/__axe-probe__/"
# No inline script, no eval, nothing but same-origin scripts: what the public form is served with.
STRICT_CSP = "default-src 'self'; script-src 'self'; style-src 'self'; object-src 'none'"
PROBE_PAGE = """<!doctype html>
<html lang="en"><head><title>axe probe</title><link rel="stylesheet" href="probe.css"></head>
<body><main>
  <h1>Probe</h1>
  <img src="data:," id="no-alt">
  <img src="data:," id="no-alt-either">
  <button id="nameless"></button>
  <p id="faint">Hard to read</p>
</main></body></html>"""
PROBE_CSS = "#faint { color: #777; background: #888; }"


@pytest.fixture
def probe(page: Page) -> Page:
    """A page of the live server's origin with known violations, under a strict CSP."""

    def serve(route: Route) -> None:
        route.fulfill(
            status=200,
            content_type="text/html; charset=utf-8",
            headers={"Content-Security-Policy": STRICT_CSP},
            body=PROBE_PAGE,
        )

    def serve_css(route: Route) -> None:
        route.fulfill(status=200, content_type="text/css", body=PROBE_CSS)

    page.route(f"**{PROBE_PATH}", serve)
    page.route(f"**{PROBE_PATH}probe.css", serve_css)
    answer = page.goto(PROBE_PATH)
    assert answer is not None
    assert answer.headers["content-security-policy"] == STRICT_CSP
    return page


def test_the_helper_finds_violations_under_a_strict_csp(probe: Page) -> None:
    # The page's CSP forbids inline scripts: a <script> element would not run there.
    blocked = probe.evaluate(
        """() => {
            const script = document.createElement("script");
            script.textContent = "window.inlineRan = true";
            document.head.append(script);
            return window.inlineRan !== true;
        }"""
    )
    assert blocked

    found = {rule["id"]: rule for rule in axe_violations(probe)}
    assert set(found) >= {"image-alt", "button-name"}, describe_violations(list(found.values()))
    assert {tuple(node["target"]) for node in found["image-alt"]["nodes"]} == {
        ("#no-alt",),
        ("#no-alt-either",),
    }
    assert all(rule["impact"] in {"serious", "critical"} for rule in found.values())

    # Contrast (serious) is found as well; nothing of a lesser impact unless asked for.
    assert "color-contrast" in found
    everything = axe_violations(probe, impacts=axe.IMPACTS)
    assert {rule["id"] for rule in everything} >= set(found)

    # One rule on one element can be let through; the same rule elsewhere still counts.
    allowed = axe_violations(probe, allowed=[("image-alt", "#no-alt")])
    image_alt = next(rule for rule in allowed if rule["id"] == "image-alt")
    assert [node["target"] for node in image_alt["nodes"]] == [["#no-alt-either"]]
    gone = axe_violations(probe, allowed=[("button-name", "#nameless")])
    assert "button-name" not in {rule["id"] for rule in gone}

    message = describe_violations(list(found.values()), where=" on the probe")
    assert "image-alt [critical]" in message
    assert "#no-alt-either" in message
    assert "on the probe" in message
    with pytest.raises(AssertionError, match="button-name"):
        assert_no_violations(probe)


def test_without_axe_core_the_test_fails_saying_what_to_run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    axe.axe_source.cache_clear()
    monkeypatch.setattr(axe, "AXE_SCRIPT", tmp_path / "axe.min.js")
    try:
        with pytest.raises(pytest.fail.Exception, match=r"npm ci --prefix tests/browser"):
            axe.axe_source()
    finally:
        axe.axe_source.cache_clear()


def test_a_stale_axe_core_fails_the_test(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    script = tmp_path / "axe.min.js"
    script.write_text("window.axe = {};")
    package = tmp_path / "package.json"
    package.write_text('{"version": "0.0.1"}')
    axe.axe_source.cache_clear()
    monkeypatch.setattr(axe, "AXE_SCRIPT", script)
    monkeypatch.setattr(axe, "AXE_PACKAGE", package)
    try:
        with pytest.raises(pytest.fail.Exception, match=r"0\.0\.1 is installed"):
            axe.axe_source()
    finally:
        axe.axe_source.cache_clear()
