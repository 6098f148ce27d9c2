"""Signing in to the coordinator workspace in a real browser: the way in for coordinators, the
login page for everyone else, lockout after repeated failures, and signing out."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from django.conf import settings
from playwright.sync_api import Page, expect

from patients.models import Site
from tests.browser.conftest import (
    Account,
    DemoData,
    log_in,
    log_out,
    new_site_admin,
    submit_login,
)
from tests.two_factor import code_from_key

LOGIN = re.compile(r"/admin/login/\?next=")


@pytest.mark.parametrize("path", ["/admin/", "/admin/patients/patient/"])
def test_anonymous_visitor_is_sent_to_the_login_page(
    page: Page, path: str, screenshot: Callable[[Page, str], Path]
) -> None:
    page.goto(path)

    expect(page).to_have_url(re.compile(rf"/admin/login/\?next={re.escape(path)}$"))
    expect(page.get_by_label("Username")).to_be_visible()
    expect(page.get_by_label("Password")).to_be_visible()
    expect(page.locator("#user-tools")).to_have_count(0)
    if path == "/admin/":
        screenshot(page, "login")


def test_coordinator_signs_in_through_the_form_and_sees_the_workspace(
    page: Page, coordinator_a: Account
) -> None:
    log_in(page, coordinator_a)

    expect(page).to_have_url(re.compile(r"/admin/$"))
    expect(page.locator("#site-name")).to_contain_text("Trial matching")
    expect(page).to_have_title(re.compile("Trial matching"))


def test_wrong_password_locks_the_account_out_even_for_the_right_one(
    page: Page, coordinator_a: Account
) -> None:
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        submit_login(page, coordinator_a.username, "not-the-password")
        expect(page).to_have_url(LOGIN)
        expect(page.locator(".errornote")).to_be_visible()

    submit_login(page, coordinator_a.username, "not-the-password")
    expect(page.get_by_role("heading", name="Sign-in locked")).to_be_visible()

    submit_login(page, coordinator_a.username, coordinator_a.password)
    expect(page.get_by_role("heading", name="Sign-in locked")).to_be_visible()
    page.goto("/admin/")
    expect(page).to_have_url(LOGIN)


def test_a_site_admin_without_an_authenticator_sets_one_up_before_the_workspace(
    page: Page, site_a: Site, screenshot: Callable[[Page, str], Path]
) -> None:
    """The first sign-in of a new site admin: the password, then the authenticator app set up
    from the key the page shows, and only then the workspace."""
    account = new_site_admin(site_a)
    submit_login(page, account.username, account.password)

    expect(page).to_have_url(re.compile(r"/admin/two-factor/\?next=/admin/$"))
    expect(page.get_by_role("heading", name="Set up two-factor sign-in")).to_be_visible()
    expect(page.get_by_role("img", name=re.compile("QR code"))).to_be_visible()
    screenshot(page, "two-factor-enrol")
    page.goto("/admin/patients/patient/")  # nothing else opens meanwhile
    expect(page).to_have_url(re.compile(r"/admin/two-factor/\?next="))

    key = page.locator("#two-factor-key").inner_text()
    page.get_by_label("Code from the app").fill(code_from_key(key))
    with page.expect_navigation():
        page.get_by_role("button", name="Confirm and continue").click()

    expect(page).to_have_url(re.compile(r"/admin/patients/patient/$"))
    expect(page.locator("#user-tools")).to_contain_text(account.username)


def test_logout_ends_the_session(page: Page, coordinator_a: Account) -> None:
    log_in(page, coordinator_a)

    log_out(page)

    expect(page.get_by_role("heading", name="Logged out")).to_be_visible()
    page.goto("/admin/patients/patient/")
    expect(page).to_have_url(LOGIN)


def test_admin_index_renders_with_the_demo_data(
    page: Page,
    demo_data: DemoData,
    coordinator_a: Account,
    screenshot: Callable[[Page, str], Path],
) -> None:
    log_in(page, coordinator_a)

    expect(page.locator("#site-name")).to_contain_text("Trial matching")
    expect(page.locator("#content")).to_be_visible()
    screenshot(page, "dashboard")
