"""No input to the public form produces a server error: every step and the contact form are
posted with generated field values (known names with odd values, unknown names, huge, empty,
control characters, lists where one value is expected), with and without a valid form token,
at every point of the walk."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from patients.prescreen import guard
from tests.patients.test_prescreen import (  # noqa: F401  (fixture)
    ALL_UNKNOWN,
    registry,
    walk,
)

FIELDS = (
    "age",
    "birth_year",
    "age_unknown",
    "sex",
    "site",
    "histology",
    "spread",
    "spread_sites",
    "stage",
    "t_stage",
    "n_stage",
    "surgery",
    "surgery_type",
    "treatments",
    "immunotherapy_drug",
    "activity",
    "conditions",
    "country",
    "postal_code",
    "city",
    "travel",
    "name",
    "email",
    "phone",
    "contact_time",
    "consent",
    guard.HONEYPOT_FIELD,
    guard.FORM_TOKEN_FIELD,
    "csrfmiddlewaretoken",
)
KNOWN_VALUES = (
    "unknown",
    "none",
    "yes",
    "no",
    "on",
    "stomach",
    "IV",
    "T4b",
    "N3",
    "0",
    "4",
    "any",
    "planned",
    "liver",
    "immunotherapy",
    "United States",
    "10065",
)
text = st.one_of(
    st.sampled_from(KNOWN_VALUES),
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=200, max_size=3000),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.just("\x00"),
)
values = st.one_of(text, st.lists(text, max_size=4))
forms = st.dictionaries(
    st.one_of(st.sampled_from(FIELDS), st.text(min_size=1, max_size=12)), values, max_size=12
)

SETTINGS = hypothesis_settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def post(
    client: Client, url: str, data: dict[str, Any], *, token: bool, page: str | None = None
) -> int:
    """POST ``data``; with ``token``, the form token of the page (``page``, else ``url``) as
    a browser would send it, when that page shows one."""
    payload = dict(data)
    if token:
        shown = client.get(page or url)
        form_token = shown.context.get("form_token") if shown.context else None
        if form_token:
            payload.setdefault(guard.FORM_TOKEN_FIELD, form_token)
        payload.setdefault(guard.HONEYPOT_FIELD, "")
    return client.post(url, payload).status_code


@pytest.mark.django_db
@pytest.mark.usefixtures("registry")
@SETTINGS
@given(step=st.integers(min_value=0, max_value=7), data=forms, token=st.booleans())
def test_no_step_post_gives_a_server_error(step: int, data: dict[str, Any], token: bool) -> None:
    client = Client()
    url = f"/prescreen/step/{step}/"

    assert post(client, url, data, token=token) < 500


@pytest.mark.django_db
@pytest.mark.usefixtures("registry")
@SETTINGS
@given(data=forms, token=st.booleans())
def test_no_contact_post_gives_a_server_error(data: dict[str, Any], token: bool) -> None:
    client = Client()
    results = walk(client, ALL_UNKNOWN)
    contact = results.rstrip("/") + "/contact/"

    assert post(client, contact, data, token=token, page=results) < 500
    assert client.get(results).status_code < 500
    assert client.get(reverse("prescreen:intro")).status_code == 200
