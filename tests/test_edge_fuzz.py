"""No hostile value in a query parameter or a JSON body is a server error.

The Schemathesis contract test (``test_api_contract.py``) covers what the schema describes;
this covers what it does not: every admin changelist's filters, search, ordering and paging
(the parameter names read from the page's own filter links), the review queue, autocomplete,
and every API GET parameter and JSON body, each given NUL, unpaired surrogates (as escapes
and as invalid UTF-8), bidi controls, 10,000-character values, huge and non-ASCII numbers and
deep nesting. Requests go in-process, as a superuser and as a coordinator; a 5xx fails.
"""

from __future__ import annotations

import datetime
import json
import re
from typing import Any
from urllib.parse import parse_qsl, quote

import pytest
from django.contrib import admin
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from patients import matching
from patients.models import Patient, PerformanceStatus
from tests.patients.test_admin_scoping import make_site, make_staff
from tests.patients.test_prescreen import registry  # noqa: F401 - a fixture

pytestmark = pytest.mark.django_db

# Percent-encoded already where the bytes are the point (invalid UTF-8, a raw NUL).
RAW_VALUES = ["%00", "a%00b", "%ED%A0%80", "%FF%FE", "%C0%AF", "%E2%80%AE", "%0D%0Aset-cookie"]
VALUES = st.one_of(
    st.sampled_from(
        [
            "\ud800",
            "\u202eevil\u202c",
            "\u2066x",
            "x" * 10_000,
            "9" * 30,
            "-1",
            "1e999",
            "nan",
            "-0",
            "\u00b2",
            "\u0661\u0662",
            "[]",
            "{}",
            "[" * 500,
            "' OR 1=1 --",
            "../../etc/passwd",
            "<script>alert(1)</script>",
            "2024-02-30",
            "0000-00-00",
            "true",
            "",
        ]
    ),
    st.text(st.characters(codec=None, exclude_categories=()), max_size=40),
)
SETTINGS = hypothesis_settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
    database=None,
)


def encoded(value: str) -> str:
    return quote(value.encode("utf-8", "surrogatepass"), safe="")


@pytest.fixture
def world(registry: int, settings: Any) -> dict[str, Any]:  # noqa: F811
    settings.ALLOWED_HOSTS = ["*"]
    site = make_site("site-a", "Site A")
    make_site("site-b", "Site B")  # two sites: the site filters show
    coordinator = make_staff("coord-a", site)
    root = User.objects.create_superuser("root", "root@example.org", "x")
    for mrn in ("A-1", "A-2"):
        patient = Patient.objects.create(
            site=site, external_id=mrn, sex="male", birth_date=datetime.date(1961, 4, 18)
        )
        PerformanceStatus.objects.create(patient=patient, value=1)
    matching.match_patients(list(Patient.objects.values_list("pk", flat=True)))
    clients = []
    for user in (root, coordinator):
        client = Client(raise_request_exception=False)
        client.force_login(user)
        clients.append(client)
    return {"clients": clients}


def admin_parameters(client: Client) -> list[tuple[str, list[str]]]:
    """Each changelist with the parameter names its own page links to (filters, ordering)."""
    found = []
    for model in admin.site._registry:
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        page = client.get(url)
        if page.status_code != 200:
            continue  # not this user's (a 403 is not what is tested here)
        names = {"q", "o", "p", "e", "_changelist_filters", "all", "unknown__lookup"}
        for query in re.findall(r'href="\?([^"#]*)"', page.content.decode()):
            names.update(key for key, _ in parse_qsl(query.replace("&amp;", "&")))
        changelist = page.context_data.get("cl") if page.context_data else None
        for spec in getattr(changelist, "filter_specs", []):
            names.update(spec.expected_parameters() or [])
        found.append((url, sorted(names)))
    found.append(
        (
            "/admin/autocomplete/",
            ["app_label", "model_name", "field_name", "term", "page"],
        )
    )
    return found


def api_parameters(client: Client) -> list[tuple[str, list[str]]]:
    """Each GET operation of the served schema with its query parameters."""
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    found = []
    for path, operations in schema["paths"].items():
        if "get" not in operations:
            continue
        names = [p["name"] for p in operations["get"].get("parameters", []) if p["in"] == "query"]
        found.append((path, [*names, "page", "page_size", "format", "unknown"]))
    return found


def fill_path(path: str, value: str) -> str:
    return re.sub(r"\{[^}]+\}", encoded(value) or "x", path)


# Every parameter of every surface gets each of these; the generated values come on top.
SHARP = ["%ED%A0%80", "\u00b2", "9" * 30, "x" * 10_000, "-1"]


def test_every_admin_parameter_takes_the_sharpest_values(world: dict[str, Any]) -> None:
    """As the superuser, who sees every list (the coordinator's lists get generated values)."""
    for client in world["clients"][:1]:
        for url, names in admin_parameters(client):
            for name in names:
                for value in SHARP:
                    query = f"{name}={value if value.startswith('%') else encoded(value)}"
                    response = client.get(f"{url}?{query}")
                    assert response.status_code < 500, (url, query[:200], response.status_code)


def test_every_api_parameter_takes_the_sharpest_values(world: dict[str, Any]) -> None:
    client = world["clients"][0]
    for path, names in api_parameters(client):
        for value in SHARP:
            text = value if value.startswith("%") else encoded(value)
            urls = [re.sub(r"\{[^}]+\}", text, path)] if "{" in path else []
            urls += [f"{fill_path(path, '1')}?{name}={text}" for name in names]
            for url in urls:
                response = client.get(url)
                assert response.status_code < 500, (url[:200], response.status_code)


def test_no_admin_parameter_value_is_a_server_error(world: dict[str, Any]) -> None:
    surfaces = [admin_parameters(client) for client in world["clients"]]

    @given(data=st.data())
    @SETTINGS
    def one_request(data: st.DataObject) -> None:
        who = data.draw(st.sampled_from([0, 1]))
        url, names = data.draw(st.sampled_from(surfaces[who]))
        pairs = data.draw(
            st.lists(
                st.tuples(
                    st.sampled_from(names),
                    st.one_of(VALUES.map(encoded), st.sampled_from(RAW_VALUES)),
                ),
                min_size=1,
                max_size=3,
            )
        )
        query = "&".join(f"{name}={value}" for name, value in pairs)
        response = world["clients"][who].get(f"{url}?{query}")
        assert response.status_code < 500, (url, query[:300], response.status_code)

    one_request()


def test_no_api_parameter_or_body_is_a_server_error(world: dict[str, Any]) -> None:
    client = world["clients"][0]
    operations = api_parameters(client)

    @given(data=st.data())
    @SETTINGS
    def one_get(data: st.DataObject) -> None:
        path, names = data.draw(st.sampled_from(operations))
        value = data.draw(VALUES)
        name = data.draw(st.sampled_from(names))
        url = fill_path(path, data.draw(VALUES)) + f"?{name}={encoded(value)}"
        response = client.get(url)
        assert response.status_code < 500, (url[:300], response.status_code)

    one_get()

    bodies: st.SearchStrategy[Any] = st.recursive(
        st.one_of(
            VALUES,
            st.integers(min_value=-(10**40), max_value=10**40),
            st.floats(allow_nan=False, allow_infinity=False),
            st.booleans(),
            st.none(),
        ),
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.dictionaries(
                st.sampled_from(
                    ["external_id", "sex", "birth_date", "site", "resourceType", "entry", "x"]
                ),
                inner,
                max_size=5,
            ),
        ),
        max_leaves=12,
    )
    writes = ["/api/v1/match/", "/api/v1/patients/", "/api/v1/patients/import/"]
    patient = Patient.objects.order_by("pk").first()
    assert patient is not None
    puts = [f"/api/v1/patients/{patient.pk}/"]

    @given(data=st.data())
    @SETTINGS
    def one_body(data: st.DataObject) -> None:
        body = data.draw(bodies)
        text = json.dumps(body)
        if data.draw(st.booleans()):
            text = data.draw(st.sampled_from(["[" * 3000, '{"a": NaN}', '"\\u0000"', "{" * 70]))
        url = data.draw(st.sampled_from(writes + puts))
        send = client.put if url in puts else client.post
        response = send(url, text, content_type="application/json")
        assert response.status_code < 500, (url, text[:300], response.status_code)

    one_body()
