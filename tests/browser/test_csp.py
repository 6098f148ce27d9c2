"""The Content-Security-Policy in a real browser: the workspace's pages (sign-in, dashboard,
queue, match page, patient and site forms), the public form and the API documentation load
and run with no CSP violation, and a violation, when there is one, is seen by these tests."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pytest
from playwright.sync_api import ConsoleMessage, Page, expect

from patients.models import Patient, Site
from tests.browser.conftest import Account, DemoData, log_in, new_site_admin, submit_login
from trials.models import Trial

MATTERHORN = "NCT04592913"  # flagged for EX1 in the demo data

# Runs in every document before its own scripts: records the browser's CSP violation events.
RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(
    `${event.violatedDirective} blocked ${event.blockedURI || "inline"} ` +
    `at ${event.sourceFile || document.location.pathname}:${event.lineNumber}`
  );
});
"""


@dataclass
class Violations:
    page: Page
    console: list[str] = field(default_factory=list)

    def of_this_page(self) -> list[str]:
        recorded = self.page.evaluate("window.__cspViolations || []")
        return [*self.console, *recorded]

    def assert_none(self, where: str) -> None:
        found = self.of_this_page()
        assert found == [], f"CSP violations on {where}: {found}"
        self.console.clear()


@pytest.fixture
def violations(page: Page) -> Violations:
    watcher = Violations(page)

    def on_console(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text:
            watcher.console.append(message.text)

    page.on("console", on_console)
    page.add_init_script(RECORD_VIOLATIONS)
    return watcher


def visit(page: Page, violations: Violations, url: str) -> None:
    response = page.goto(url)
    assert response is not None
    assert response.status == 200, url
    assert "script-src 'self'" in (response.header_value("content-security-policy") or "")
    page.wait_for_load_state("networkidle")
    violations.assert_none(url)


def test_the_sign_in_page_and_dashboard_raise_no_csp_violation(
    page: Page, violations: Violations, superuser: Account
) -> None:
    visit(page, violations, "/admin/login/?next=/admin/")
    expect(page.get_by_label("Username")).to_be_visible()

    log_in(page, superuser)  # the form posts and redirects under form-action 'self'
    violations.assert_none("sign-in")
    visit(page, violations, "/admin/")
    expect(page.locator("#content")).to_be_visible()


def test_the_workspace_pages_raise_no_csp_violation(
    page: Page, violations: Violations, demo_data: DemoData, superuser: Account
) -> None:
    log_in(page, superuser)
    visit(page, violations, "/admin/")
    expect(page.locator("#dashboard svg").first).to_be_visible()

    visit(page, violations, "/admin/patients/match/")
    expect(page.locator("#result_list tbody tr").first).to_be_visible()
    # The admin's own scripts work: the "select all" checkbox ticks the rows.
    page.locator("#action-toggle").check()
    expect(page.locator("#result_list tbody input.action-select").first).to_be_checked()
    violations.assert_none("the queue's actions")

    patient = Patient.objects.get(external_id="EX1")
    trial = Trial.objects.get(nct_id=MATTERHORN)
    visit(page, violations, f"/admin/patients/match/pair/{patient.pk}/{trial.pk}/")
    visit(page, violations, "/admin/patients/patient/")
    visit(page, violations, f"/admin/patients/patient/{patient.pk}/change/")

    # filter_horizontal (SelectFilter2.js) draws its widget with script.
    visit(page, violations, "/admin/patients/site/add/")
    expect(page.locator("#id_coordinators_filter")).to_be_visible()
    violations.assert_none("the site form's widgets")


def test_the_public_form_raises_no_csp_violation(page: Page, violations: Violations) -> None:
    visit(page, violations, "/prescreen/")
    visit(page, violations, "/prescreen/step/1/")
    expect(page.locator("form").first).to_be_visible()


def test_the_two_factor_pages_raise_no_csp_violation(
    page: Page, violations: Violations, site_a: Site
) -> None:
    """The sign-in form with its code field, and the enrolment page with its QR code (an
    image from a data: address)."""
    visit(page, violations, "/admin/login/?next=/admin/")
    expect(page.get_by_label("Authenticator code")).to_be_visible()
    account = new_site_admin(site_a)
    submit_login(page, account.username, account.password)

    visit(page, violations, "/admin/two-factor/?next=/admin/")
    qr_code = page.get_by_role("img", name=re.compile("QR code"))
    expect(qr_code).to_be_visible()
    assert qr_code.evaluate("image => image.complete && image.naturalWidth > 0")
    violations.assert_none("the enrolment page")


@pytest.mark.parametrize("docs", ["/api/redoc/", "/api/docs/"])
def test_the_api_documentation_renders_with_no_request_elsewhere(
    page: Page, violations: Violations, docs: str
) -> None:
    """Redoc and Swagger UI draw the whole schema from this server: no CSP violation, and
    (the ``page`` fixture) no request to another host, such as Redoc's logo from its CDN."""
    requested: list[str] = []
    page.on("request", lambda sent: requested.append(sent.url))

    visit(page, violations, docs)

    if docs == "/api/redoc/":
        # The side menu, with Redoc's credit at its foot, is drawn once the schema is read.
        expect(page.get_by_role("link", name="API docs by Redocly")).to_be_visible()
        expect(page.locator("h1").first).to_contain_text("Trial matching API")
    else:
        expect(page.locator(".swagger-ui .info .title")).to_contain_text("Trial matching API")
    page.wait_for_load_state("networkidle")
    violations.assert_none(docs)
    assert any("/api/schema/" in url for url in requested), requested


def test_a_violation_would_be_seen(page: Page, violations: Violations) -> None:
    """The watcher is not blind: an inline script and an inline style are reported."""
    page.goto("/admin/login/")
    page.evaluate(
        """() => {
            const script = document.createElement("script");
            script.textContent = "window.__ran = true";
            document.body.append(script);
            document.body.setAttribute("style", "background: red");
        }"""
    )
    page.wait_for_timeout(200)

    found = violations.of_this_page()
    assert page.evaluate("window.__ran === undefined")
    assert any("script-src" in entry for entry in found), found
    assert any("style-src" in entry for entry in found), found
