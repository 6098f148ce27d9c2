"""The review queue over HTTP: flagged pairs first, the filters, search and sorting, the bulk
actions (assign, contacted, CSV), site scoping of every one of them, the audit trail of what
was shown, and a bounded number of queries however many rows there are."""

from __future__ import annotations

import csv
import html
import io
import re
from typing import Any

import pytest
from django.apps import apps
from django.contrib.auth.models import Group, User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from patients import admin_review, workflow
from patients.access import COORDINATOR_GROUP
from patients.admin_review import ReviewQueueAdmin
from patients.matching import MATCHER_VERSION
from patients.models import Match, Patient, Review, ReviewTransition, Site
from trials.models import Trial

pytestmark = pytest.mark.django_db

# django-auditlog ships no type information: its model is taken from the app registry.
LogEntry: Any = apps.get_model("auditlog", "LogEntry")

QUEUE_URL = "/admin/patients/match/"
# Whatever the number of rows: session, user, permissions, sites, count, the page of rows
# (reviews read in the same query), the filters' choices, the audit insert, messages.
QUEUE_MAX_QUERIES = 16


# --- data -----------------------------------------------------------------------------------------


def make_site(code: str) -> Site:
    return Site.objects.create(code=code, name=f"Hospital {code}")


def make_user(username: str, *sites: Site, superuser: bool = False) -> User:
    user = User.objects.create_user(username, password=None, is_staff=True)
    if superuser:
        user.is_superuser = True
        user.save()
    user.groups.add(Group.objects.get(name=COORDINATOR_GROUP))
    for site in sites:
        site.coordinators.add(user)
    return user


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def make_trial(nct_id: str, title: str = "", *, preop: bool = True) -> Trial:
    return Trial.objects.create(
        nct_id=nct_id,
        brief_title=title or f"Study {nct_id}",
        overall_status="RECRUITING",
        classified_gastric=True,
        gastric_preop_immunotherapy=preop,
        content_hash=nct_id,
    )


def make_patient(site: Site, mrn: str, **fields: Any) -> Patient:
    return Patient.objects.create(site=site, external_id=mrn, **fields)


def match_row(patient: Patient, trial: Trial, verdict: str = "possible", **fields: Any) -> Match:
    """A stored match as the matcher writes it, current unless told otherwise."""
    values: dict[str, Any] = {
        "score": 50.0,
        "flagged": False,
        "flag_reason": "",
        "distance_km": None,
        "outcomes": [],
        "unknown_facts": [],
        "engine_version": MATCHER_VERSION,
        "patient_facts_at": patient.facts_changed_at,
        "trial_inputs_at": trial.matching_inputs_at,
        "evaluated_on": timezone.localdate(),
        **fields,
    }
    if values["flagged"] and not values["flag_reason"]:
        values["flag_reason"] = "Preoperative immunotherapy trial; surgical candidate"
    return Match(patient=patient, trial=trial, verdict=verdict, **values)


def make_match(patient: Patient, trial: Trial, verdict: str = "possible", **fields: Any) -> Match:
    found = match_row(patient, trial, verdict, **fields)
    found.save()
    return found


# --- reading the queue page -----------------------------------------------------------------------

_TAGS = re.compile(r"<[^>]+>")


def column(response: Any, name: str) -> list[str]:
    """The text of one column of the result table, top to bottom."""
    assert response.status_code == 200, response.status_code
    cells = re.findall(
        rf'<t[dh] class="field-{name}[^"]*"[^>]*>(.*?)</t[dh]>', response.content.decode(), re.S
    )
    return [" ".join(html.unescape(_TAGS.sub(" ", cell)).split()) for cell in cells]


def mrns(response: Any) -> list[str]:
    return [cell.split(" ")[0] for cell in column(response, "mrn")]


def order_index(name: str) -> int:
    """The ``o`` parameter value sorting by the column ``name`` (the checkbox is column 0)."""
    return ReviewQueueAdmin.list_display.index(name) + 1


def action(client: Client, name: str, matches: list[Match], query: str = "") -> Any:
    return client.post(
        QUEUE_URL + query,
        {"action": name, "index": "0", "_selected_action": [str(m.pk) for m in matches]},
    )


def shown_messages(response: Any) -> list[str]:
    return [str(message) for message in response.context["messages"]] if response.context else []


def access_entries(purpose: str) -> list[Any]:
    return list(
        LogEntry.objects.filter(
            action=LogEntry.Action.ACCESS, additional_data__purpose=purpose
        ).order_by("pk")
    )


# --- fixtures -------------------------------------------------------------------------------------


@pytest.fixture
def north() -> Site:
    return make_site("north")


@pytest.fixture
def south() -> Site:
    return make_site("south")


@pytest.fixture
def maria(north: Site) -> User:
    """A coordinator of the north site."""
    return make_user("maria", north)


@pytest.fixture
def queue(north: Site) -> dict[str, Match]:
    """Pairs of the north site in every shape the queue orders and filters on."""
    one, two = make_trial("NCT00000001", "Neoadjuvant anti-PD-1"), make_trial("NCT00000002")
    other = make_trial("NCT00000003", "Adjuvant chemotherapy", preop=False)
    patients = {
        "P1": make_patient(north, "P1", surgical_candidate=True),
        "P2": make_patient(
            north, "P2", surgical_candidate=True, given_name="Ana", family_name="Ruiz"
        ),
        "P3": make_patient(north, "P3", surgical_candidate=False),
        "P4": make_patient(north, "P4"),
        "P5": make_patient(north, "P5", surgical_candidate=True),
    }
    return {
        "flag_possible": make_match(
            patients["P1"], one, "possible", score=60, flagged=True, distance_km=30.0
        ),
        "flag_eligible": make_match(
            patients["P2"], one, "eligible", score=100, flagged=True, distance_km=180.0
        ),
        "possible_high": make_match(patients["P3"], other, "possible", score=80, distance_km=90),
        "possible_low": make_match(patients["P4"], two, "possible", score=40),
        "eligible": make_match(patients["P5"], other, "eligible", score=100, distance_km=600.0),
        "ineligible": make_match(patients["P5"], two, "ineligible", score=90, distance_km=10.0),
    }


# --- ordering, columns ----------------------------------------------------------------------------


def test_queue_shows_flagged_pairs_first_then_possible_then_eligible(
    maria: User, queue: dict[str, Match]
) -> None:
    response = client_for(maria).get(QUEUE_URL)

    assert response.status_code == 200
    assert "<h1>Review queue</h1>" in response.content.decode()
    # Flagged first (highest score first among them), then possible, then eligible;
    # ineligible pairs are not in the default view.
    assert mrns(response) == ["P2", "P1", "P3", "P4", "P5"]
    assert column(response, "flag") == ["⚑ flagged", "⚑ flagged", "-", "-", "-"]


def test_queue_columns_say_verdict_score_distance_review_and_assignee(
    maria: User, queue: dict[str, Match]
) -> None:
    pair = queue["flag_possible"]
    review = workflow.review_for(pair.patient_id, pair.trial_id)
    workflow.move(review, "under_review", actor=maria)
    workflow.assign(review, maria, actor=maria)

    response = client_for(maria).get(QUEUE_URL)
    page = response.content.decode()

    row = mrns(response).index("P1")
    assert column(response, "verdict_link")[row] == "Possibly eligible"
    assert column(response, "score_display")[row] == "60"
    assert column(response, "distance")[row] == "30 km (19 mi)"
    assert column(response, "review_status")[row] == "Under review"
    assert column(response, "assignee")[row] == "maria"
    unreviewed = mrns(response).index("P4")
    assert column(response, "review_status")[unreviewed] == "New"
    assert column(response, "distance")[unreviewed] == "unknown"
    assert column(response, "trial_link")[row] == "NCT00000001 Neoadjuvant anti-PD-1"
    # The patient's page, the trial's page and the pair's match page are linked from the row.
    assert reverse("admin:patients_patient_change", args=[pair.patient_id]) in page
    assert reverse("admin:trials_trial_change", args=[pair.trial_id]) in page
    assert f"/admin/patients/match/pair/{pair.patient_id}/{pair.trial_id}/" in page
    # One site only: no site column.
    assert column(response, "site") == []


def test_queue_marks_stale_matches_and_verdicts_changed_since_review(
    maria: User, queue: dict[str, Match]
) -> None:
    pair = queue["possible_high"]
    workflow.move(workflow.review_for(pair.patient_id, pair.trial_id), "contacted", actor=maria)
    Match.objects.filter(pk=pair.pk).update(verdict="eligible")  # re-evaluated since the move
    Patient.objects.filter(external_id="P4").update(facts_changed_at=timezone.now())

    response = client_for(maria).get(QUEUE_URL)

    attention = dict(zip(mrns(response), column(response, "attention"), strict=True))
    assert attention["P3"] == "△ changed since review"
    assert attention["P4"] == "⟳ stale"
    assert attention["P1"] == "-"  # nothing to say


# --- filters, search, sorting ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("?verdict=ineligible", ["P5"]),
        ("?verdict=eligible", ["P2", "P5"]),
        ("?verdict=all", ["P2", "P1", "P3", "P4", "P5", "P5"]),
        ("?flagged__exact=1", ["P2", "P1"]),
        ("?flagged__exact=0", ["P3", "P4", "P5"]),
        ("?surgical=yes", ["P2", "P1", "P5"]),
        ("?surgical=no", ["P3"]),
        ("?surgical=unknown", ["P4"]),
        ("?distance=50", ["P1"]),
        ("?distance=100", ["P1", "P3"]),
        ("?distance=250", ["P2", "P1", "P3"]),
        ("?distance=far", ["P5"]),
        ("?distance=unknown", ["P4"]),
        ("?distance=50&verdict=all", ["P1", "P5"]),
        ("?trial=NCT00000001", ["P2", "P1"]),
        ("?trial=nct00000003", ["P3", "P5"]),  # typed in the NCT id field
        ("?trial=NCT99999999", []),
    ],
)
def test_queue_filters(
    maria: User, queue: dict[str, Match], query: str, expected: list[str]
) -> None:
    assert mrns(client_for(maria).get(QUEUE_URL + query)) == expected


def test_queue_filters_by_review_status_and_assignee(maria: User, queue: dict[str, Match]) -> None:
    contacted, under_review = queue["flag_eligible"], queue["possible_low"]
    workflow.move(
        workflow.review_for(contacted.patient_id, contacted.trial_id), "contacted", actor=maria
    )
    reviewed = workflow.review_for(under_review.patient_id, under_review.trial_id)
    workflow.move(reviewed, "under_review", actor=maria)
    workflow.assign(reviewed, maria, actor=maria)
    # A review that exists but never moved is still new.
    workflow.review_for(queue["eligible"].patient_id, queue["eligible"].trial_id)
    client = client_for(maria)

    assert mrns(client.get(QUEUE_URL + "?review=contacted")) == ["P2"]
    assert mrns(client.get(QUEUE_URL + "?review=under_review")) == ["P4"]
    assert mrns(client.get(QUEUE_URL + "?review=new")) == ["P1", "P3", "P5"]
    assert mrns(client.get(QUEUE_URL + "?review=enrolled")) == []
    assert mrns(client.get(QUEUE_URL + "?assignee=me")) == ["P4"]
    assert mrns(client.get(QUEUE_URL + "?assignee=nobody")) == ["P2", "P1", "P3", "P5"]


def test_queue_filter_lists_offer_the_users_sites_and_the_flagging_trials(
    north: Site, south: Site, queue: dict[str, Match]
) -> None:
    both = make_user("both", north, south)
    make_match(make_patient(south, "S1"), Trial.objects.get(nct_id="NCT00000002"))

    response = client_for(both).get(QUEUE_URL)
    page = response.content.decode()

    assert "Hospital north" in page
    assert "Hospital south" in page
    assert f"?site={south.pk}" in page
    assert "?trial=NCT00000001" in page
    assert "?trial=NCT00000003" not in page  # not a preoperative immunotherapy trial: typed
    assert 'id="ws-trial-filter"' in page
    # Two sites: the site of each row is shown.
    assert sorted(column(response, "site")) == ["north"] * 5 + ["south"]
    assert mrns(client_for(both).get(QUEUE_URL + f"?site={south.pk}")) == ["S1"]
    assert mrns(client_for(both).get(QUEUE_URL + "?site=nonsense")) == []


@pytest.mark.parametrize(
    ("term", "expected"),
    [("P2", ["P2"]), ("ruiz", ["P2"]), ("Ana Ruiz", ["P2"]), ("NCT00000002", ["P4"]), ("zz", [])],
)
def test_queue_search_by_mrn_name_or_nct_id(
    maria: User, queue: dict[str, Match], term: str, expected: list[str]
) -> None:
    assert mrns(client_for(maria).get(QUEUE_URL, {"q": term})) == expected


def test_queue_sorts_by_score_and_by_distance(maria: User, queue: dict[str, Match]) -> None:
    client = client_for(maria)
    by_score = client.get(QUEUE_URL, {"o": f"-{order_index('score_display')}"})
    scores = [float(value) for value in column(by_score, "score_display")]
    assert scores == sorted(scores, reverse=True)

    by_distance = client.get(QUEUE_URL, {"o": str(order_index("distance"))})
    assert mrns(by_distance) == ["P1", "P3", "P2", "P5", "P4"]  # unknown distance last


# --- bulk actions ---------------------------------------------------------------------------------


def test_assign_to_me_assigns_every_selected_pair(maria: User, queue: dict[str, Match]) -> None:
    chosen = [queue["flag_possible"], queue["possible_low"]]

    response = action(client_for(maria), "assign_to_me", chosen)

    assert response.status_code == 302
    assigned = Review.objects.filter(assignee=maria)
    assert {(r.patient_id, r.trial_id) for r in assigned} == {
        (m.patient_id, m.trial_id) for m in chosen
    }
    assert ReviewTransition.objects.filter(actor=maria).count() == 2


def test_mark_contacted_moves_what_it_may_and_names_the_pairs_it_could_not(
    maria: User, queue: dict[str, Match]
) -> None:
    enrolled = queue["flag_eligible"]
    review = workflow.review_for(enrolled.patient_id, enrolled.trial_id)
    for status in ("contacted", "consented", "enrolled"):
        review = workflow.move(review, status, actor=maria)

    client = client_for(maria)
    response = action(client, "mark_contacted", [queue["flag_possible"], enrolled])

    assert response.status_code == 302
    followed = client.get(response["Location"])
    moved = Review.objects.get(patient=queue["flag_possible"].patient)
    assert moved.status == "contacted"
    assert Review.objects.get(pk=review.pk).status == "enrolled"
    said = " ".join(shown_messages(followed))
    assert "1 pair(s) marked contacted." in said
    assert "1 pair(s) not moved: P2 (north) x trial" in said
    assert "can move to: declined" in said


def test_export_csv_has_the_selected_rows_and_is_audited(
    maria: User, queue: dict[str, Match]
) -> None:
    pair = queue["flag_possible"]
    review = workflow.review_for(pair.patient_id, pair.trial_id)
    workflow.move(review, "contacted", actor=maria)
    workflow.assign(review, maria, actor=maria)
    odd = make_patient(Site.objects.get(code="north"), "=HYPERLINK(1)", given_name="Zoë\ttab")
    odd_match = make_match(odd, Trial.objects.get(nct_id="NCT00000002"), "possible", score=12.5)

    response = action(client_for(maria), "export_csv", [pair, queue["possible_low"], odd_match])

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    text = b"".join(response.streaming_content).decode()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [row["mrn"] for row in rows] == ["P1", "P4", "'=HYPERLINK(1)"]
    first = rows[0]
    assert {key: first[key] for key in ("nct_id", "verdict", "flagged", "score")} == {
        "nct_id": "NCT00000001",
        "verdict": "possible",
        "flagged": "yes",
        "score": "60",
    }
    assert (first["distance_km"], first["distance_miles"]) == ("30.0", "18.6")
    assert (first["review_status"], first["assignee"]) == ("contacted", "maria")
    assert (rows[1]["review_status"], rows[1]["assignee"], rows[1]["distance_km"]) == (
        "new",
        "",
        "",
    )
    assert rows[2]["score"] == "12.5"
    audited = access_entries("admin: review queue CSV export")
    assert sorted(entry.object_id for entry in audited) == sorted(
        [pair.patient_id, queue["possible_low"].patient_id, odd.pk]
    )
    assert {entry.actor_id for entry in audited} == {maria.pk}


# --- site scoping ---------------------------------------------------------------------------------


def test_coordinator_of_another_site_sees_an_empty_queue(
    south: Site, queue: dict[str, Match]
) -> None:
    other = make_user("olga", south)
    client = client_for(other)

    assert mrns(client.get(QUEUE_URL)) == []
    assert mrns(client.get(QUEUE_URL + "?verdict=all")) == []
    assert mrns(client.get(QUEUE_URL, {"q": "P1"})) == []
    assert mrns(client.get(QUEUE_URL + f"?site={queue['eligible'].patient.site_id}")) == []


def test_forged_actions_on_another_sites_pairs_do_nothing(
    south: Site, queue: dict[str, Match]
) -> None:
    other = make_user("olga", south)
    client = client_for(other)
    theirs = list(queue.values())

    action(client, "assign_to_me", theirs)
    action(client, "mark_contacted", theirs)
    exported = action(client, "export_csv", theirs)

    assert not Review.objects.exists()
    assert not ReviewTransition.objects.exists()
    if exported.status_code == 200:
        text = b"".join(exported.streaming_content).decode()
        assert len(list(csv.reader(io.StringIO(text)))) == 1  # the header only
    assert not access_entries("admin: review queue CSV export")


def test_superuser_sees_every_site(north: Site, south: Site, queue: dict[str, Match]) -> None:
    make_match(make_patient(south, "S1"), Trial.objects.get(nct_id="NCT00000002"))
    root = make_user("root", superuser=True)

    client = client_for(root)
    assert sorted(mrns(client.get(QUEUE_URL))) == ["P1", "P2", "P3", "P4", "P5", "S1"]
    # The site column comes last: the sort parameters are the same as a coordinator's.
    by_distance = client.get(QUEUE_URL, {"o": str(order_index("distance"))})
    assert mrns(by_distance)[:3] == ["P1", "P3", "P2"]
    assert column(by_distance, "site")[:3] == ["north"] * 3


def test_queue_needs_sign_in_and_the_view_permission(maria: User, queue: dict[str, Match]) -> None:
    anonymous = Client().get(QUEUE_URL)
    assert anonymous.status_code == 302
    assert anonymous["Location"].startswith("/admin/login/")

    nobody = User.objects.create_user("nobody", is_staff=True)
    assert client_for(nobody).get(QUEUE_URL).status_code == 403


def test_coordinator_without_the_review_permission_cannot_move_pairs(
    north: Site, queue: dict[str, Match]
) -> None:
    reader = User.objects.create_user("reader", is_staff=True)
    reader.user_permissions.add(
        *apps.get_model("auth", "Permission").objects.filter(codename="view_match")
    )
    north.coordinators.add(reader)
    client = client_for(reader)

    page = client.get(QUEUE_URL).content.decode()
    action(client, "mark_contacted", [queue["flag_possible"]])

    assert 'value="export_csv"' in page
    assert 'value="mark_contacted"' not in page
    assert not Review.objects.exists()


# --- audit and query count ------------------------------------------------------------------------


def test_each_queue_page_records_access_to_the_patients_shown(
    maria: User, queue: dict[str, Match]
) -> None:
    client_for(maria).get(QUEUE_URL)

    entries = access_entries("admin: review queue")
    shown = {m.patient_id for key, m in queue.items() if key != "ineligible"}
    assert sorted(entry.object_id for entry in entries) == sorted(shown)  # once per patient
    assert {entry.actor_id for entry in entries} == {maria.pk}


def _many_pairs(site: Site, count: int, trials: list[Trial]) -> None:
    """``count`` patients, each matched with every trial, some with reviews: cheaply."""
    now = timezone.now()
    Patient.objects.bulk_create(
        Patient(site=site, external_id=f"M{n:04d}", facts_changed_at=now) for n in range(count)
    )
    patients = list(Patient.objects.filter(site=site, external_id__startswith="M"))
    Match.objects.bulk_create(
        match_row(
            patient,
            trial,
            ("possible", "eligible", "ineligible")[n % 3],
            score=float(n % 100),
            flagged=n % 7 == 0,
            distance_km=float(n % 400) if n % 5 else None,
        )
        for n, patient in enumerate(patients)
        for trial in trials
    )
    assignee = User.objects.create_user(f"helper{count}")
    Review.objects.bulk_create(
        Review(patient=patient, trial=trials[0], status="under_review", assignee=assignee)
        for patient in patients[::3]
    )


@pytest.mark.parametrize("count", [10, 500])
def test_queue_page_queries_are_bounded_whatever_the_rows(
    maria: User, north: Site, count: int, django_assert_max_num_queries: Any
) -> None:
    trials = [make_trial(f"NCT1000000{n}") for n in range(2)]
    _many_pairs(north, count, trials)
    client = client_for(maria)
    client.get(QUEUE_URL)  # the session and content types are warm, as for a coordinator

    with django_assert_max_num_queries(QUEUE_MAX_QUERIES):
        response = client.get(QUEUE_URL + "?verdict=all")
    with django_assert_max_num_queries(QUEUE_MAX_QUERIES):
        filtered = client.get(
            QUEUE_URL, {"review": "new", "distance": "250", "surgical": "unknown", "q": "M0"}
        )

    assert len(mrns(response)) == min(50, 2 * count)
    assert column(response, "review_status").count("Under review") >= 1
    assert mrns(filtered)


def test_a_long_queue_is_counted_only_so_far_and_exported_in_bounded_batches(
    maria: User, queue: dict[str, Match], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(admin_review, "COUNT_CAP", 3)
    monkeypatch.setattr(admin_review, "EXPORT_CAP", 4)
    client = client_for(maria)

    response = client.get(QUEUE_URL)
    refused = client.post(
        QUEUE_URL,
        {"action": "export_csv", "index": "0", "select_across": "1", "_selected_action": ["1"]},
    )

    assert "more than 3 pairs" in " ".join(response.content.decode().split())
    assert len(mrns(response)) == 5  # the page itself is whole
    assert refused.status_code == 302
    said = " ".join(shown_messages(client.get(refused["Location"])))
    assert "Export at most 4 pairs at a time" in said
    assert not access_entries("admin: review queue CSV export")
