"""The REST API platform: token authentication, error format, throttling, schema and docs."""

import datetime
import hashlib
import io
import re

import pytest
from django.contrib.auth.models import User
from django.contrib.staticfiles import finders
from django.core.cache import cache
from django.core.management import CommandError, call_command
from django.utils import timezone
from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.validation import validate_schema
from rest_framework.test import APIClient

from patients.models import ApiToken

pytestmark = pytest.mark.django_db

TRIALS = "/api/v1/trials/"


@pytest.fixture(autouse=True)
def _fresh_throttles():
    cache.clear()  # throttle counters live in the default cache
    yield
    cache.clear()


@pytest.fixture
def user() -> User:
    """The account a hospital system's token acts as: staff, like every account of the API."""
    return User.objects.create_user("ehr-bridge", password="unused-pass-123456", is_staff=True)


def token_client(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def assert_error(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert error["status"] == status
    assert isinstance(error["message"], str)
    assert error["message"]
    assert "Traceback" not in response.content.decode()
    if code is not None:
        assert error["code"] == code
    return error


# --- Token authentication ------------------------------------------------------------------


def test_valid_token_authenticates_and_records_use(user: User) -> None:
    token, key = ApiToken.issue(user, "EHR")
    assert token.last_used_at is None
    response = token_client(key).get(TRIALS)
    assert response.status_code == 200
    token.refresh_from_db()
    assert token.last_used_at is not None


def test_last_used_is_written_at_most_once_a_minute(user: User) -> None:
    token, key = ApiToken.issue(user, "EHR")
    client = token_client(key)
    client.get(TRIALS)
    token.refresh_from_db()
    first = token.last_used_at
    client.get(TRIALS)
    token.refresh_from_db()
    assert token.last_used_at == first
    ApiToken.objects.filter(pk=token.pk).update(
        last_used_at=timezone.now() - datetime.timedelta(minutes=2)
    )
    client.get(TRIALS)
    token.refresh_from_db()
    assert first is not None
    assert token.last_used_at is not None
    assert token.last_used_at > first


def test_revoked_token_is_refused(user: User) -> None:
    token, key = ApiToken.issue(user, "EHR")
    token.revoked_at = timezone.now()
    token.save()
    response = token_client(key).get(TRIALS)
    assert_error(response, 401, "authentication_failed")
    assert response["WWW-Authenticate"] == "Token"


def test_unknown_and_malformed_tokens_are_refused(user: User) -> None:
    ApiToken.issue(user, "EHR")
    assert_error(token_client("tm_not-a-real-key").get(TRIALS), 401, "authentication_failed")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token two parts")
    assert_error(client.get(TRIALS), 401)


def test_token_of_inactive_user_is_refused(user: User) -> None:
    _, key = ApiToken.issue(user, "EHR")
    user.is_active = False
    user.save()
    assert_error(token_client(key).get(TRIALS), 401)


def test_token_of_a_user_who_lost_staff_status_is_refused(user: User) -> None:
    """Taking staff status away closes the workspace to an account: its keys stop too."""
    _, key = ApiToken.issue(user, "EHR")
    assert token_client(key).get(TRIALS).status_code == 200
    user.is_staff = False
    user.save()

    response = token_client(key).get(TRIALS)

    assert_error(response, 401, "authentication_failed")
    assert response["WWW-Authenticate"] == "Token"


def test_session_of_a_user_who_lost_staff_status_is_refused(user: User) -> None:
    client = APIClient()
    client.force_login(user)
    assert client.get(TRIALS).status_code == 200
    User.objects.filter(pk=user.pk).update(is_staff=False)

    assert_error(client.get(TRIALS), 401, "not_authenticated")


def test_create_api_token_refuses_an_account_without_staff_status(user: User) -> None:
    User.objects.create_user("visitor", password="unused-pass-123456")

    with pytest.raises(CommandError, match="No active staff account"):
        call_command("create_api_token", "visitor", stdout=io.StringIO(), stderr=io.StringIO())
    assert not ApiToken.objects.exists()


def test_refused_tokens_are_throttled_per_address(user: User, settings) -> None:
    """Keys cannot be tried faster than callers without credentials may call: a refused key
    counts against its address's allowance (API_RATE_PER_IP), and past it is a 429."""
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"user": "100/minute", "anon": "3/minute"},
    }
    for attempt in range(3):
        guess = token_client(f"tm_guess-{attempt}").get(TRIALS)
        assert_error(guess, 401, "authentication_failed")

    refused = token_client("tm_guess-4").get(TRIALS)

    assert_error(refused, 429, "throttled")
    assert int(refused["Retry-After"]) > 0
    # One allowance per address for every caller without valid credentials ...
    assert_error(APIClient().get("/api/schema/?format=json"), 429, "throttled")
    # ... not for a valid key, nor for another address.
    _, key = ApiToken.issue(user, "EHR")
    assert token_client(key).get(TRIALS).status_code == 200
    elsewhere = APIClient(REMOTE_ADDR="192.0.2.7")
    elsewhere.credentials(HTTP_AUTHORIZATION="Token tm_guess-5")
    assert_error(elsewhere.get(TRIALS), 401, "authentication_failed")


def test_the_per_address_allowance_counts_the_address_client_ip_decides(settings) -> None:
    """With two proxies, a request carrying a single X-Forwarded-For entry did not come
    through both: the entry is the client's own claim, and REMOTE_ADDR is counted."""
    settings.NUM_PROXIES = 2
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "NUM_PROXIES": 2,
        "DEFAULT_THROTTLE_RATES": {"user": "100/minute", "anon": "2/minute"},
    }
    schema = "/api/schema/?format=json"
    statuses = [
        APIClient().get(schema, HTTP_X_FORWARDED_FOR=f"198.51.100.{n}").status_code
        for n in range(3)
    ]
    assert statuses == [200, 200, 429]


def test_token_is_hashed_at_rest(user: User) -> None:
    token, key = ApiToken.issue(user, "EHR")
    row = ApiToken.objects.filter(pk=token.pk).values().get()
    assert key not in {str(value) for value in row.values()}
    assert not any(key in str(value) for value in row.values())
    assert row["key_hash"] == hashlib.sha256(key.encode()).hexdigest()
    assert key.startswith(row["prefix"])
    assert len(row["prefix"]) < len(key) // 3


def test_no_credentials_is_401() -> None:
    response = APIClient().get(TRIALS)
    assert_error(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"] == "Token"


def test_session_authentication(user: User) -> None:
    client = APIClient()
    client.force_login(user)
    assert client.get(TRIALS).status_code == 200


def test_create_api_token_command_prints_key_once_and_revokes(user: User) -> None:
    out, err = io.StringIO(), io.StringIO()
    call_command("create_api_token", "ehr-bridge", "--name", "EHR", stdout=out, stderr=err)
    key = out.getvalue().strip()
    assert key.startswith("tm_")
    assert key not in err.getvalue()
    token = ApiToken.objects.get()
    assert token.user == user
    assert token.name == "EHR"
    assert token_client(key).get(TRIALS).status_code == 200

    listing = io.StringIO()
    call_command("create_api_token", "--list", stdout=listing)
    assert token.prefix in listing.getvalue()
    assert key not in listing.getvalue()

    call_command("create_api_token", "--revoke", token.prefix, stdout=io.StringIO())
    token.refresh_from_db()
    assert token.revoked
    assert_error(token_client(key).get(TRIALS), 401)


# --- Error format --------------------------------------------------------------------------


def test_400_has_field_errors(user: User) -> None:
    client = APIClient()
    client.force_login(user)
    error = assert_error(client.get(TRIALS, {"near": "north", "within_km": "10"}), 400, "invalid")
    assert "near" in error["fields"]
    error = assert_error(client.get(TRIALS, {"updated_since": "yesterday"}), 400, "invalid")
    assert "updated_since" in error["fields"]


def test_403_and_404_and_405(user: User) -> None:
    client = APIClient()
    client.force_login(user)
    assert_error(client.post("/api/v1/syncs/trigger/", {}), 403, "permission_denied")
    assert_error(client.get(f"{TRIALS}NCT99999999/"), 404, "not_found")
    assert_error(client.delete(f"{TRIALS}"), 405, "method_not_allowed")


def test_any_other_api_address_is_a_json_404(user: User) -> None:
    client = APIClient()
    client.force_login(user)
    for address in ("/api/v1/nothing/", "/api/v2/", "/api/", "/api/v1/patients/12x/"):
        assert_error(client.get(address), 404, "not_found")
    # Past 18 digits an id is not an id: 404, not an overflow in the query.
    assert_error(client.get("/api/v1/syncs/9999999999999999999999/"), 404, "not_found")
    # A POST too (no CSRF page), and a body that is not JSON is 415.
    assert_error(client.post("/api/v1/nothing/", {}), 404, "not_found")
    form = client.post("/api/v1/syncs/trigger/", "full=1", content_type="text/plain")
    assert form.status_code in (403, 415)
    # Without the slash, Django's usual redirect to the slashed address first.
    assert client.get("/api/v1/nothing").status_code == 301


def test_429_per_token_with_retry_after(user: User, settings) -> None:
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"user": "3/minute", "anon": "2/minute"},
    }
    _, key = ApiToken.issue(user, "EHR")
    _, other_key = ApiToken.issue(user, "dashboard")
    client = token_client(key)
    for _ in range(3):
        assert client.get(TRIALS).status_code == 200
    response = client.get(TRIALS)
    assert_error(response, 429, "throttled")
    assert int(response["Retry-After"]) > 0
    # Counted per token: another key of the same account still has its allowance.
    assert token_client(other_key).get(TRIALS).status_code == 200


def test_429_per_address_without_credentials(settings) -> None:
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"user": "100/minute", "anon": "2/minute"},
    }
    schema = "/api/schema/?format=json"
    client = APIClient()
    for _ in range(2):
        assert client.get(schema).status_code == 200
    response = client.get(schema)
    assert_error(response, 429, "throttled")
    assert "Retry-After" in response
    other = APIClient(REMOTE_ADDR="192.0.2.7")
    assert other.get(schema).status_code == 200
    # A forged X-Forwarded-For does not give a new allowance (NUM_PROXIES=0).
    forged = client.get(schema, HTTP_X_FORWARDED_FOR="198.51.100.1")
    assert forged.status_code == 429


# --- Schema and documentation --------------------------------------------------------------


def test_schema_is_public_and_openapi3() -> None:
    response = APIClient().get("/api/schema/?format=json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert "/api/v1/trials/" in schema["paths"]
    assert "/api/v1/syncs/trigger/" in schema["paths"]
    assert "tokenAuth" in schema["components"]["securitySchemes"]


def test_schema_generates_without_warnings_or_errors() -> None:
    GENERATOR_STATS.reset()
    schema = SchemaGenerator().get_schema(request=None, public=True)
    validate_schema(schema)
    assert not GENERATOR_STATS._warn_cache, dict(GENERATOR_STATS._warn_cache)
    assert not GENERATOR_STATS._error_cache, dict(GENERATOR_STATS._error_cache)


def test_schema_names_the_patient_documents_and_the_errors() -> None:
    from patients.profile_json import profile_schema, read_profile_json

    schema = APIClient().get("/api/schema/?format=json").json()
    assert schema["openapi"] == "3.1.0"
    components = schema["components"]["schemas"]
    profile = dict(profile_schema())
    del profile["$schema"], profile["$id"]
    assert components["PatientProfile"] == profile
    for name in ("StoredPatientProfile", "FhirBundle", "PatientMatch", "MatchNowResult", "Error"):
        assert name in components
    create = schema["paths"]["/api/v1/patients/"]["post"]
    body = create["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/PatientProfile"}
    (example,) = body["examples"].values()
    assert read_profile_json(example["value"], origin="test").facts  # a valid, useful example
    assert create["responses"]["201"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/StoredPatientProfile"
    }
    for code in ("400", "401", "403", "404", "415", "429"):
        assert code in create["responses"]
    trials = schema["paths"]["/api/v1/trials/"]["get"]["responses"]
    assert "415" not in trials  # no body, no 415
    assert "Retry-After" in schema["components"]["responses"]["Throttled"]["headers"]


@pytest.mark.parametrize("page", ["/api/docs/", "/api/redoc/"])
def test_docs_pages_use_local_files_only(page: str) -> None:
    response = APIClient().get(page)
    assert response.status_code == 200
    html = response.content.decode()
    assert "cdn" not in html.lower()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
    assert assets
    for url in assets:
        if url.startswith("/static/"):
            assert finders.find(url.removeprefix("/static/")), url
        else:
            assert APIClient().get(url.replace("&amp;", "&")).status_code == 200, url


def test_the_redoc_bundle_is_served_from_here_without_its_cdn_logo() -> None:
    html = APIClient().get("/api/redoc/").content.decode()
    assert '<script src="/api/redoc/redoc.standalone.js">' in html
    client = APIClient()

    response = client.get("/api/redoc/redoc.standalone.js")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/javascript")
    bundle = response.content
    assert b"Redoc" in bundle
    assert b"cdn.redoc.ly" not in bundle
    # The same bytes again cost nothing: the browser's copy is confirmed (304).
    again = client.get("/api/redoc/redoc.standalone.js", HTTP_IF_NONE_MATCH=response["ETag"])
    assert again.status_code == 304


def test_swagger_ui_script_is_served_from_here() -> None:
    html = APIClient().get("/api/docs/").content.decode()
    script = re.search(r'<script src="(/api/docs/\?[^"]+)"', html)
    assert script, html
    response = APIClient().get(script.group(1).replace("&amp;", "&"))
    assert response.status_code == 200
    assert b"SwaggerUIBundle" in response.content
    assert b"/api/schema/" in response.content
