"""Security headers on every page: a Content-Security-Policy without inline scripts or styles
(django-csp), frame denial, no MIME sniffing, a referrer policy, SameSite cookies; the admin
still renders under it and serves no inline script or style; ``check --deploy`` is clean with
production settings."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

pytestmark = pytest.mark.django_db

PROJECT_DIR = Path(__file__).resolve().parent.parent
EXPECTED_POLICY = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'"],
    "img-src": ["'self'", "data:"],
    "frame-ancestors": ["'none'"],
    "form-action": ["'self'"],
    "base-uri": ["'self'"],
    "object-src": ["'none'"],
}


def policy_of(response: Any) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    directives: dict[str, list[str]] = {}
    for part in header.split(";"):
        words = part.split()
        if words:
            directives[words[0]] = words[1:]
    return directives


def assert_strict_policy(response: Any) -> None:
    policy = policy_of(response)
    assert policy == EXPECTED_POLICY
    allowed = " ".join(" ".join(values) for values in policy.values())
    for loophole in ("'unsafe-inline'", "'unsafe-eval'", "'nonce-", "'sha256-", "*", "http:"):
        assert loophole not in allowed


def assert_common_headers(response: Any) -> None:
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"


class InlineFinder(HTMLParser):
    """Collects what a strict CSP would block: inline scripts and event handlers, <style>
    elements and style attributes. JSON data blocks (never executed) are allowed."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        if tag == "script" and "src" not in named:
            kind = (named.get("type") or "").lower()
            if kind not in ("application/json", "application/ld+json", "text/template"):
                self._in_script = True
        if tag == "style":
            self.found.append("<style>")
        for name, value in attrs:
            if name == "style":
                self.found.append(f'<{tag} style="{value}">')
            if name.startswith("on"):
                self.found.append(f"<{tag} {name}=...>")
            if name in ("href", "src") and (value or "").strip().lower().startswith("javascript:"):
                self.found.append(f"<{tag} {name}=javascript:...>")

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.found.append(f"<script>{data.strip()[:60]}")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False


def inline_code(html: str) -> list[str]:
    finder = InlineFinder()
    finder.feed(html)
    return finder.found


@pytest.fixture
def superuser_client() -> Client:
    user = get_user_model().objects.create_superuser("root", "root@example.org", "x" * 16)
    client = Client()
    client.force_login(user)
    return client


# --- headers ----------------------------------------------------------------------------------


def test_a_normal_page_has_the_policy_and_the_headers() -> None:
    response = Client().get("/no-such-page/")

    assert response.status_code == 404
    assert_strict_policy(response)
    assert_common_headers(response)


def test_the_admin_login_page_has_the_policy_and_no_inline_code() -> None:
    response = Client().get("/admin/login/?next=/admin/")

    assert response.status_code == 200
    assert_strict_policy(response)
    assert_common_headers(response)
    assert inline_code(response.content.decode()) == []


def test_the_public_form_has_the_policy_private_headers_and_no_inline_code() -> None:
    response = Client().get("/prescreen/")

    assert response.status_code == 200
    assert_strict_policy(response)
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["X-Frame-Options"] == "DENY"
    assert response["Cache-Control"] == "no-store, private"
    assert response["X-Robots-Tag"] == "noindex, nofollow"
    assert response["Referrer-Policy"] == "same-origin"
    assert inline_code(response.content.decode()) == []


def test_cookies_are_same_site_lax() -> None:
    client = Client()
    client.get("/admin/login/")
    assert client.cookies["csrftoken"]["samesite"] == "Lax"

    user = get_user_model().objects.create_user("maria", password="x" * 16, is_staff=True)
    client.force_login(user)
    response = client.get("/admin/")
    assert response.status_code == 200
    assert client.cookies["sessionid"]["samesite"] == "Lax"
    assert client.cookies["sessionid"]["httponly"]


def test_the_inline_finder_finds_what_the_policy_blocks() -> None:
    html = (
        '<script src="/a.js"></script><script type="application/json">{"a": 1}</script>'
        '<script>alert(1)</script><p style="color:red" onclick="x()">a</p><style>p{}</style>'
        '<a href="javascript:void(0)">x</a>'
    )

    assert inline_code(html) == [
        "<script>alert(1)",
        '<p style="color:red">',
        "<p onclick=...>",
        "<style>",
        "<a href=javascript:...>",
    ]


# --- the admin under the policy ---------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["/admin/", "/admin/patients/match/", "/admin/patients/patient/", "/admin/patients/site/add/"],
)
def test_admin_pages_render_under_the_policy_with_no_inline_code(
    superuser_client: Client, url: str
) -> None:
    response = superuser_client.get(url)

    assert response.status_code == 200, url
    assert_strict_policy(response)
    assert inline_code(response.content.decode()) == [], url


def test_every_admin_list_and_add_page_renders_with_no_inline_code(
    superuser_client: Client,
) -> None:
    problems: dict[str, Any] = {}
    for model, model_admin in admin.site._registry.items():
        meta = model._meta
        urls = [reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist")]
        if model_admin.has_add_permission(_superuser_request(superuser_client)):
            urls.append(reverse(f"admin:{meta.app_label}_{meta.model_name}_add"))
        for url in urls:
            response = superuser_client.get(url)
            if response.status_code != 200:
                problems[url] = response.status_code
                continue
            assert "Content-Security-Policy" in response
            found = inline_code(response.content.decode())
            if found:
                problems[url] = found

    assert problems == {}


def _superuser_request(client: Client) -> Any:
    from django.test import RequestFactory

    request = RequestFactory().get("/admin/")
    request.user = get_user_model().objects.get(username="root")
    return request


# --- production settings ----------------------------------------------------------------------


def test_check_deploy_is_clean_with_production_settings(tmp_path: Path) -> None:
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "DATABASE_URL", "CACHE_URL")
    }
    environment.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        VAR_DIR=str(tmp_path),
        DEBUG="0",
        SECRET_KEY=secrets.token_urlsafe(60),
        ALLOWED_HOSTS="trials.example.org",
    )
    completed = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=PROJECT_DIR,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "no issues" in completed.stdout
