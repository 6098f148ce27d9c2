"""REST API: trials (list, filters, detail, ETag) and registry syncs."""

import datetime

import pytest
from django.contrib.auth.models import Permission, User
from django.core.cache import cache
from django.utils import timezone
from django.utils.http import http_date
from rest_framework.test import APIClient

from trials.models import Criterion, SyncRun, Trial, TrialSite, TrialVersion

pytestmark = pytest.mark.django_db

TRIALS = "/api/v1/trials/"
BOSTON = (42.3601, -71.0589)
NEW_YORK = (40.7128, -74.0060)  # about 306 km from Boston
TOKYO = (35.6762, 139.6503)


@pytest.fixture(autouse=True)
def _fresh_throttles():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def user() -> User:
    return User.objects.create_user("reader", password="unused-pass-123456", is_staff=True)


@pytest.fixture
def api(user: User) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def make_trial(nct_id: str, *, sites=(), **fields) -> Trial:
    fields.setdefault("brief_title", f"Study {nct_id}")
    fields.setdefault("raw", {})
    fields.setdefault("content_hash", f"hash-{nct_id}")
    trial = Trial.objects.create(nct_id=nct_id, **fields)
    for index, (lat, lon) in enumerate(sites):
        TrialSite.objects.create(
            trial=trial, facility=f"Hospital {index}", city="X", latitude=lat, longitude=lon
        )
    return trial


def nct_ids(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [row["nct_id"] for row in response.json()["results"]]


@pytest.fixture
def catalogue() -> dict[str, Trial]:
    return {
        "boston": make_trial(
            "NCT00000001",
            brief_title="Neoadjuvant pembrolizumab in gastric cancer",
            overall_status="RECRUITING",
            phases=["PHASE2"],
            conditions=["Gastric Cancer"],
            gastric_preop_immunotherapy=True,
            classified_gastric=True,
            last_update_posted=datetime.date(2025, 6, 1),
            sites=[BOSTON],
        ),
        "new_york": make_trial(
            "NCT00000002",
            brief_title="Perioperative chemotherapy",
            overall_status="COMPLETED",
            phases=["PHASE2", "PHASE3"],
            conditions=["Stomach Neoplasms"],
            classified_gastric=True,
            last_update_posted=datetime.date(2020, 1, 1),
            sites=[NEW_YORK],
        ),
        "tokyo": make_trial(
            "NCT00000003",
            brief_title="Colorectal screening",
            overall_status="NOT_YET_RECRUITING",
            phases=["PHASE1"],
            conditions=["Colorectal Cancer"],
            last_update_posted=datetime.date(2019, 1, 1),
            sites=[TOKYO],
        ),
    }


def test_list_requires_authentication(catalogue) -> None:
    assert APIClient().get(TRIALS).status_code == 401


def test_list_fields(api: APIClient, catalogue) -> None:
    response = api.get(TRIALS)
    body = response.json()
    assert body["count"] == 3
    row = body["results"][0]
    assert row["nct_id"] == "NCT00000001"
    assert row["title"] == "Neoadjuvant pembrolizumab in gastric cancer"
    assert row["url"].endswith("/api/v1/trials/NCT00000001/")
    assert row["site_count"] == 1
    assert row["distance_km"] is None
    assert "raw" not in row
    assert "eligibility_criteria" not in row


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"condition": "gastric"}, ["NCT00000001"]),
        ({"condition": "STOMACH"}, ["NCT00000002"]),
        ({"status": "RECRUITING"}, ["NCT00000001"]),
        ({"status": "RECRUITING,NOT_YET_RECRUITING"}, ["NCT00000001", "NCT00000003"]),
        ({"phase": "PHASE3"}, ["NCT00000002"]),
        ({"phase": "phase2"}, ["NCT00000001", "NCT00000002"]),
        ({"phase": "PHASE"}, []),
        ({"gastric_preop_immunotherapy": "true"}, ["NCT00000001"]),
        ({"gastric_preop_immunotherapy": "false"}, ["NCT00000002", "NCT00000003"]),
        ({"classified_gastric": "true"}, ["NCT00000001", "NCT00000002"]),
        ({"search": "pembrolizumab"}, ["NCT00000001"]),
        ({"search": "NCT00000003"}, ["NCT00000003"]),
        ({"ordering": "-last_update_posted"}, ["NCT00000001", "NCT00000002", "NCT00000003"]),
        ({"ordering": "last_update_posted"}, ["NCT00000003", "NCT00000002", "NCT00000001"]),
    ],
)
def test_list_filters(api: APIClient, catalogue, query, expected) -> None:
    assert nct_ids(api.get(TRIALS, query)) == expected


def test_updated_since(api: APIClient, catalogue) -> None:
    today = timezone.localdate()
    Trial.objects.update(updated_at=timezone.now() - datetime.timedelta(days=400))
    Trial.objects.filter(nct_id="NCT00000001").update(
        last_update_posted=today - datetime.timedelta(days=10)
    )
    since = {"updated_since": (today - datetime.timedelta(days=30)).isoformat()}
    assert nct_ids(api.get(TRIALS, since)) == ["NCT00000001"]
    # Changed here (a sync, a re-reading) counts too.
    Trial.objects.filter(nct_id="NCT00000003").update(updated_at=timezone.now())
    assert nct_ids(api.get(TRIALS, {"updated_since": today.isoformat()})) == ["NCT00000003"]


def test_near_within_km(api: APIClient, catalogue) -> None:
    near = f"{BOSTON[0]},{BOSTON[1]}"
    response = api.get(TRIALS, {"near": near, "within_km": "50"})
    assert nct_ids(response) == ["NCT00000001"]
    assert response.json()["results"][0]["distance_km"] == 0.0
    response = api.get(TRIALS, {"near": near, "within_km": "400", "ordering": "nct_id"})
    assert nct_ids(response) == ["NCT00000001", "NCT00000002"]
    distance = response.json()["results"][1]["distance_km"]
    assert 290 < distance < 320
    assert nct_ids(api.get(TRIALS, {"near": near, "within_km": "250"})) == ["NCT00000001"]
    # Combined with other filters.
    combined = {"near": near, "within_km": "400", "status": "COMPLETED"}
    assert nct_ids(api.get(TRIALS, combined)) == ["NCT00000002"]


def test_near_uses_the_nearest_site_and_crosses_the_antimeridian(api: APIClient) -> None:
    make_trial("NCT00000010", sites=[TOKYO, (-17.7, 179.95)])  # Fiji, near the 180th meridian
    make_trial("NCT00000011", sites=[(None, None)])
    response = api.get(TRIALS, {"near": "-17.7,-179.95", "within_km": "30"})
    assert nct_ids(response) == ["NCT00000010"]
    assert response.json()["results"][0]["distance_km"] < 15
    assert nct_ids(api.get(TRIALS, {"near": "89.9,0", "within_km": "100"})) == []


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"near": "42.3"}, "near"),
        ({"near": "north,south", "within_km": "5"}, "near"),
        ({"near": "91,0", "within_km": "5"}, "near"),
        ({"near": "nan,0", "within_km": "5"}, "near"),
        ({"near": "42,-71"}, "within_km"),
        ({"near": "42,-71", "within_km": "0"}, "within_km"),
        ({"near": "42,-71", "within_km": "100000"}, "within_km"),
        ({"near": "42,-71", "within_km": "many"}, "within_km"),
    ],
)
def test_near_errors(api: APIClient, catalogue, query, field) -> None:
    response = api.get(TRIALS, query)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert field in error["fields"]


def test_pagination_default_and_maximum(api: APIClient) -> None:
    Trial.objects.bulk_create(
        Trial(nct_id=f"NCT{n:08d}", raw={}, content_hash=str(n)) for n in range(1, 206)
    )
    body = api.get(TRIALS).json()
    assert body["count"] == 205
    assert len(body["results"]) == 50
    assert body["next"]
    body = api.get(TRIALS, {"page_size": 1000}).json()
    assert len(body["results"]) == 200
    assert body["next"].endswith("page=2&page_size=1000")
    assert len(api.get(TRIALS, {"page_size": 1000, "page": 2}).json()["results"]) == 5
    assert api.get(TRIALS, {"page": 99}).status_code == 404


def test_list_queries_are_bounded(api: APIClient, django_assert_max_num_queries) -> None:
    for n in range(1, 41):
        make_trial(f"NCT{n:08d}", sites=[BOSTON, NEW_YORK], conditions=["Gastric Cancer"])
    api.get(TRIALS)  # the session is loaded and renewed once
    # Session, user and the device that verified the sign-in (3), its renewal (3), count and
    # page (2): the same for any page size.
    with django_assert_max_num_queries(8):
        assert len(nct_ids(api.get(TRIALS))) == 40
    with django_assert_max_num_queries(9):
        response = api.get(TRIALS, {"near": f"{BOSTON[0]},{BOSTON[1]}", "within_km": "500"})
        assert len(nct_ids(response)) == 40


@pytest.fixture
def detailed(catalogue) -> Trial:
    trial = catalogue["boston"]
    trial.classification_evidence = [{"aspect": "immunotherapy", "text": "pembrolizumab"}]
    trial.classified_immunotherapy = True
    trial.classified_preoperative = True
    trial.criteria_engine_version = "7"
    trial.save()
    Criterion.objects.create(
        trial=trial,
        position=1,
        kind="inclusion",
        text="Age 18 years or older",
        category="age",
        constraints=[{"type": "age", "min": 18}],
    )
    Criterion.objects.create(
        trial=trial,
        position=2,
        kind="exclusion",
        text="ECOG 2 or more",
        category="other",
        constraints=[],
        corrected_category="performance_status",
        corrected_constraints=[{"type": "ecog", "min": 2}],
        needs_review=True,
    )
    TrialVersion.objects.create(trial=trial, number=1, content_hash="a", changes=["created"])
    TrialVersion.objects.create(trial=trial, number=2, content_hash="b", changes=["status"])
    return trial


def test_detail(api: APIClient, detailed: Trial) -> None:
    response = api.get(f"{TRIALS}NCT00000001/")
    assert response.status_code == 200
    body = response.json()
    assert body["nct_id"] == "NCT00000001"
    assert body["registry_url"] == "https://clinicaltrials.gov/study/NCT00000001"
    assert body["sites"][0]["latitude"] == BOSTON[0]
    assert body["criteria"][0]["constraints"] == [{"type": "age", "min": 18}]
    corrected = body["criteria"][1]
    assert corrected["category"] == "performance_status"
    assert corrected["constraints"] == [{"type": "ecog", "min": 2}]
    assert corrected["corrected"] is True
    assert corrected["needs_review"] is True
    assert body["classification"]["gastric_preop_immunotherapy"] is True
    assert body["classification"]["evidence"] == detailed.classification_evidence
    assert [v["number"] for v in body["versions"]] == [2, 1]
    assert body["versions"][0]["changes"] == ["status"]
    assert "raw" not in body


def test_detail_queries_are_bounded(api: APIClient, detailed, django_assert_max_num_queries):
    for n in range(3, 30):
        Criterion.objects.create(
            trial=detailed, position=n, kind="inclusion", text=f"c{n}", category="other"
        )
    api.get(TRIALS)
    # Session (6 as above), the trial, then its sites, criteria and versions: one query each.
    with django_assert_max_num_queries(10):
        assert api.get(f"{TRIALS}NCT00000001/").status_code == 200


def test_detail_unknown_or_malformed_id_is_404(api: APIClient, catalogue) -> None:
    assert api.get(f"{TRIALS}NCT99999999/").status_code == 404
    assert api.get(f"{TRIALS}not-an-id/").status_code == 404


def test_etag_and_last_modified(api: APIClient, detailed: Trial) -> None:
    url = f"{TRIALS}NCT00000001/"
    response = api.get(url)
    etag, last_modified = response["ETag"], response["Last-Modified"]
    assert etag.startswith('"')
    assert api.get(url, HTTP_IF_NONE_MATCH=etag).status_code == 304
    not_modified = api.get(url, HTTP_IF_NONE_MATCH=f'"other", {etag}')
    assert not_modified.status_code == 304
    assert not_modified["ETag"] == etag
    assert api.get(url, HTTP_IF_NONE_MATCH='"other"').status_code == 200
    assert api.get(url, HTTP_IF_MODIFIED_SINCE=last_modified).status_code == 304
    earlier = http_date((detailed.updated_at - datetime.timedelta(hours=1)).timestamp())
    assert api.get(url, HTTP_IF_MODIFIED_SINCE=earlier).status_code == 200
    assert api.get(url, HTTP_IF_MATCH=etag).status_code == 200
    failed = api.get(url, HTTP_IF_MATCH='"other"')
    assert failed.status_code == 412
    assert failed.json()["error"]["code"] == "precondition_failed"

    # A coordinator's correction (it moves matching_inputs_at) changes both.
    Trial.objects.filter(pk=detailed.pk).update(
        matching_inputs_at=timezone.now() + datetime.timedelta(seconds=5)
    )
    changed = api.get(url, HTTP_IF_NONE_MATCH=etag)
    assert changed.status_code == 200
    assert changed["ETag"] != etag
    assert changed["Last-Modified"] != last_modified
    # A new record from the registry too.
    Trial.objects.filter(pk=detailed.pk).update(content_hash="new")
    assert api.get(url, HTTP_IF_NONE_MATCH=changed["ETag"]).status_code == 200


# --- Syncs ---------------------------------------------------------------------------------


@pytest.fixture
def queued(monkeypatch) -> list[dict]:
    calls: list[dict] = []

    class Result:
        id = "task-123"

    def delay(**kwargs):
        calls.append(kwargs)
        return Result()

    monkeypatch.setattr("trials.api.sync_trials_task.delay", delay)
    return calls


def test_sync_runs_list_and_detail(api: APIClient) -> None:
    run = SyncRun.objects.create(mode="full", status="failed", message="registry down")
    run.add_error("NCT1", "bad record")
    run.save()
    body = api.get("/api/v1/syncs/").json()
    assert body["results"][0]["id"] == run.pk
    assert "errors" not in body["results"][0]
    detail = api.get(f"/api/v1/syncs/{run.pk}/").json()
    assert detail["errors"] == [{"record": "NCT1", "message": "bad record"}]
    assert detail["message"] == "registry down"
    assert "checkpoint" not in detail
    assert api.get("/api/v1/syncs/?status=succeeded").json()["count"] == 0


def test_sync_trigger_refused_to_coordinators(api: APIClient, queued) -> None:
    response = api.post("/api/v1/syncs/trigger/", {"full": True})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    assert APIClient().post("/api/v1/syncs/trigger/", {}).status_code == 401
    assert queued == []


def test_sync_trigger_by_site_admin(api: APIClient, user: User, queued) -> None:
    user.user_permissions.add(Permission.objects.get(codename="add_syncrun"))
    response = api.post("/api/v1/syncs/trigger/", {"full": True})
    assert response.status_code == 202
    assert response.json()["task_id"] == "task-123"
    assert response.json()["runs_url"].endswith("/api/v1/syncs/")
    assert queued == [{"full": True}]
    assert api.post("/api/v1/syncs/trigger/", {}).status_code == 202
    assert queued[-1] == {"full": False}
    bad = api.post("/api/v1/syncs/trigger/", {"full": "sometimes"})
    assert bad.status_code == 400
    assert "full" in bad.json()["error"]["fields"]


def test_sync_trigger_by_superuser(queued) -> None:
    admin = User.objects.create_superuser("root", password="unused-pass-123456")
    client = APIClient()
    client.force_login(admin)
    assert client.post("/api/v1/syncs/trigger/", {}).status_code == 202
    assert client.get("/api/v1/syncs/trigger/").status_code == 405
