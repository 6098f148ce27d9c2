"""The match page and the follow-up workflow over HTTP: a real flagged pair explained
criterion by criterion, statuses moved with their rules, notes with their authors, every view
audited, nothing of another site reachable, and a re-evaluation that keeps the coordinator's
work and says when the verdict changed under it."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from patients import workflow
from patients.fhir import read_bundle
from patients.matching import criteria_of, match_patients
from patients.models import Match, Patient, Review, ReviewNote, ReviewTransition, Site, Source
from patients.services import patient_upsert
from tests.fakes.ctgov_server import FakeCtgovServer
from tests.patients.conftest import example
from tests.patients.test_admin_queue import (
    QUEUE_URL,
    access_entries,
    client_for,
    column,
    make_match,
    make_patient,
    make_site,
    make_trial,
    make_user,
    mrns,
)
from tests.patients.test_matching import (  # noqa: F401 - fixtures used by name
    CAMRELIZUMAB,
    ECOG,
    LIFE_EXPECTANCY,
    MATTERHORN,
    ecog_changed,
    fresh_rules_cache,
    matched,
    registry,
)
from trials.models import Criterion

pytestmark = pytest.mark.django_db

_TAGS = re.compile(r"<[^>]+>")


def pair_url(patient_id: int, trial_id: int) -> str:
    return f"/admin/patients/match/pair/{patient_id}/{trial_id}/"


def url_of(match: Match) -> str:
    return pair_url(match.patient_id, match.trial_id)


def text_of(response: Any) -> str:
    """The page as a reader sees it: tags dropped, entities decoded, spaces collapsed."""
    return " ".join(html.unescape(_TAGS.sub(" ", response.content.decode())).split())


def section(response: Any, heading_id: str) -> str:
    """The visible text of the <section> labelled by the heading with this id."""
    page = response.content.decode()
    start = page.index(f'aria-labelledby="{heading_id}"')
    end = page.index("</section>", start)
    return " ".join(html.unescape(_TAGS.sub(" ", page[start:end])).split())


def checklist_items(response: Any) -> list[tuple[str, str]]:
    """(state class, visible text) of each criterion of the checklist, in order."""
    items = re.findall(
        r'<li class="ws-check ws-check--(\w+)">(.*?)</li>', response.content.decode(), re.S
    )
    return [(state, " ".join(html.unescape(_TAGS.sub(" ", body)).split())) for state, body in items]


def error_next_to(response: Any, field: str) -> str:
    found = re.search(
        rf'<ul class="errorlist" id="{field}_errors"[^>]*>(.*?)</ul>',
        response.content.decode(),
        re.S,
    )
    return " ".join(html.unescape(_TAGS.sub(" ", found.group(1))).split()) if found else ""


def textarea(response: Any, name: str) -> str:
    found = re.search(
        rf'<textarea name="{name}"[^>]*>(.*?)</textarea>', response.content.decode(), re.S
    )
    return html.unescape(found.group(1)) if found else ""


def move(client: Client, match: Match, to_status: str, reason: str = "", note: str = "") -> Any:
    return client.post(
        url_of(match), {"action": "move", "to_status": to_status, "reason": reason, "note": note}
    )


# --- a small pair of our own ----------------------------------------------------------------------


@pytest.fixture
def north() -> Site:
    return make_site("north")


@pytest.fixture
def maria(north: Site) -> User:
    return make_user("maria", north)


@pytest.fixture
def pair(north: Site) -> Match:
    patient = make_patient(north, "P1", surgical_candidate=True)
    return make_match(patient, make_trial("NCT00000001"), "possible", score=70, flagged=True)


# --- the match page for a real flagged pair -------------------------------------------------------


@pytest.fixture
def example_pair(matched: FakeCtgovServer) -> Match:  # noqa: F811 - the fixture
    """EX1 against MATTERHORN, as the matcher stored it from the recorded data (flagged)."""
    return Match.objects.select_related("patient", "trial").get(
        patient__external_id="EX1", trial__nct_id=MATTERHORN
    )


@pytest.fixture
def default_coordinator(example_pair: Match) -> User:
    return make_user("carla", Site.objects.get(code="default"))


def test_match_page_explains_a_real_flagged_pair(
    example_pair: Match, default_coordinator: User
) -> None:
    assert example_pair.flagged
    assert example_pair.verdict == "possible"

    response = client_for(default_coordinator).get(url_of(example_pair))

    assert response.status_code == 200
    page = response.content.decode()
    verdict = section(response, "ws-verdict-h")
    assert "Possibly eligible" in verdict
    assert "⚑ flagged" in verdict
    assert f"score {example_pair.score:.0f} / 100" in verdict
    assert example_pair.flag_reason in verdict
    assert "Stale" not in text_of(response)

    patient = section(response, "ws-patient-h")
    for expected in ("MRN EX1", "Age", "Diagnosis", "Clinical stage (cTNM)", "ECOG", "Key labs"):
        assert expected in patient, expected
    assert re.search(r"Surgical candidate Yes \(Surgical candidate: .+\)", patient)
    assert re.search(r"\(\d{4}-\d{2}-\d{2}\)", patient)  # facts carry their dates

    trial = section(response, "ws-trial-h")
    assert "NCT04592913" in trial
    assert "Phase" in trial
    assert "Recruiting" in trial
    assert "Gastric preoperative immunotherapy trial" in trial
    assert "Nearest open site" in trial
    assert 'href="https://clinicaltrials.gov/study/NCT04592913"' in page
    assert f'href="/admin/patients/patient/{example_pair.patient_id}/change/"' in page

    # Every criterion, in the trial's order: green when it counts for the patient (an
    # inclusion met, an exclusion that does not apply), red against, grey unknown.
    listed = criteria_of(example_pair, list(Criterion.objects.filter(trial=example_pair.trial)))
    states = {
        ("inclusion", "met"): "pass",
        ("exclusion", "not_met"): "pass",
        ("inclusion", "not_met"): "fail",
        ("exclusion", "met"): "fail",
    }
    items = checklist_items(response)
    assert [state for state, _ in items] == [
        states.get((c["type"], c["outcome"]), "unknown") for c in listed
    ]
    for (_, shown), criterion in zip(items, listed, strict=True):
        assert criterion["text"] in shown
        assert criterion["reason"] in shown
    ecog = next(text for _, text in items if ECOG in text)
    assert ecog.startswith("✓ met")
    assert "ECOG 0" in ecog
    assert next(text for _, text in items if LIFE_EXPECTANCY in text).startswith("? needs review")
    assert any(text.startswith("✓ does not apply") for _, text in items)  # exclusions

    to_find_out = section(response, "ws-tofind-h")
    assert "prior anticancer therapy" in to_find_out
    assert "Needs review: criteria the engine could not read" in to_find_out
    assert LIFE_EXPECTANCY in to_find_out


def test_match_page_views_are_audited(example_pair: Match, default_coordinator: User) -> None:
    client = client_for(default_coordinator)
    client.get(url_of(example_pair))
    client.get(url_of(example_pair))

    entries = access_entries("admin: match viewed")
    assert [entry.object_id for entry in entries] == [example_pair.patient_id] * 2
    assert {entry.actor_id for entry in entries} == {default_coordinator.pk}


def test_queue_links_to_the_pair_page_and_an_old_match_url_leads_there(
    example_pair: Match, default_coordinator: User
) -> None:
    client = client_for(default_coordinator)

    queue = client.get(QUEUE_URL)
    old = client.get(f"/admin/patients/match/{example_pair.pk}/change/")

    assert url_of(example_pair) in queue.content.decode()
    flags = Match.objects.filter(flagged=True).count()
    assert flags >= 2
    assert column(queue, "flag") == ["⚑ flagged"] * flags + ["-"] * (len(mrns(queue)) - flags)
    assert old.status_code == 302
    assert old["Location"] == url_of(example_pair)


# --- site scoping and permissions -----------------------------------------------------------------


def test_pair_of_another_site_is_not_found_and_cannot_be_moved(pair: Match) -> None:
    other = make_user("olga", make_site("south"))
    client = client_for(other)

    assert client.get(url_of(pair)).status_code == 404
    assert client.get(f"/admin/patients/match/{pair.pk}/change/").status_code == 404
    assert move(client, pair, "contacted").status_code == 404
    assert client.post(url_of(pair), {"action": "assign"}).status_code == 404
    assert client.post(url_of(pair), {"action": "note", "text": "hello"}).status_code == 404

    assert not Review.objects.exists()
    assert not ReviewNote.objects.exists()
    assert not access_entries("admin: match viewed")


def test_unknown_pairs_are_not_found(maria: User, pair: Match) -> None:
    client = client_for(maria)
    assert client.get(pair_url(pair.patient_id, 999_999)).status_code == 404
    assert client.get(pair_url(999_999, pair.trial_id)).status_code == 404
    lonely = make_trial("NCT00000009")
    assert client.get(pair_url(pair.patient_id, lonely.pk)).status_code == 404


def test_reading_needs_view_and_moving_needs_the_review_permission(
    north: Site, pair: Match
) -> None:
    from django.contrib.auth.models import Permission

    nobody = User.objects.create_user("nobody", is_staff=True)
    north.coordinators.add(nobody)
    assert client_for(nobody).get(url_of(pair)).status_code == 403

    reader = User.objects.create_user("reader", is_staff=True)
    reader.user_permissions.add(Permission.objects.get(codename="view_match"))
    north.coordinators.add(reader)
    client = client_for(reader)

    page = client.get(url_of(pair))
    assert page.status_code == 200
    assert 'name="to_status"' not in page.content.decode()
    assert move(client, pair, "contacted").status_code == 403
    assert client.post(url_of(pair), {"action": "assign"}).status_code == 403
    assert client.post(url_of(pair), {"action": "note", "text": "x"}).status_code == 403
    assert not Review.objects.exists()


# --- workflow -------------------------------------------------------------------------------------


def test_new_pair_offers_the_allowed_moves(maria: User, pair: Match) -> None:
    response = client_for(maria).get(url_of(pair))

    workflow_panel = section(response, "ws-workflow-h")
    assert "Status New" in workflow_panel
    offered = re.findall(r'name="to_status" id="to_status_(\w+)"', response.content.decode())
    assert offered == list(workflow.allowed_next("new"))
    assert not Review.objects.exists()  # reading the page writes no review


def test_move_with_a_note_is_recorded_with_its_author(maria: User, pair: Match) -> None:
    client = client_for(maria)

    response = move(client, pair, "contacted", note="Called, will come on Monday.")

    assert response.status_code == 302
    review = Review.objects.get(patient_id=pair.patient_id, trial_id=pair.trial_id)
    assert review.status == "contacted"
    assert (review.verdict_seen, review.flagged_seen) == ("possible", True)
    page = client.get(url_of(pair))
    assert "Moved to contacted." in [str(m) for m in page.context["messages"]]
    panel = section(page, "ws-workflow-h")
    assert "Status Contacted" in panel
    assert "Called, will come on Monday." in panel
    assert "maria" in panel
    assert "New → Contacted" in panel
    note = ReviewNote.objects.get(review=review)
    assert note.author == maria
    transition = ReviewTransition.objects.get(review=review)
    assert (transition.actor, transition.verdict) == (maria, "possible")


def test_not_eligible_needs_a_reason_next_to_the_field_and_keeps_what_was_typed(
    maria: User, pair: Match
) -> None:
    client = client_for(maria)

    response = move(client, pair, "not_eligible", reason="  ", note="Looked at the scans.")

    assert response.status_code == 200
    assert "a reason is required" in error_next_to(response, "reason")
    assert 'aria-invalid="true"' in response.content.decode()
    assert textarea(response, "note") == "Looked at the scans."
    assert 'id="to_status_not_eligible" value="not_eligible" checked' in (response.content.decode())
    assert Review.objects.get().status == "new"

    done = move(client, pair, "not_eligible", reason="Liver metastases on CT", note="")
    assert done.status_code == 302
    review = Review.objects.get()
    assert (review.status, review.status_reason) == ("not_eligible", "Liver metastases on CT")
    assert "Liver metastases on CT" in section(client.get(url_of(pair)), "ws-workflow-h")


def test_a_disallowed_move_says_which_moves_are_allowed(maria: User, pair: Match) -> None:
    client = client_for(maria)

    response = move(client, pair, "enrolled")

    assert response.status_code == 200
    said = error_next_to(response, "to_status")
    assert "A review that is new can move to: under review, contacted" in said
    assert Review.objects.get().status == "new"
    nonsense = move(client, pair, "promoted")
    assert "Select a valid choice" in error_next_to(nonsense, "to_status")


def test_assign_to_me_and_unassign(maria: User, pair: Match) -> None:
    client = client_for(maria)

    assert client.post(url_of(pair), {"action": "assign"}).status_code == 302
    assert Review.objects.get().assignee == maria
    assert "Assignee maria" in section(client.get(url_of(pair)), "ws-workflow-h")

    assert client.post(url_of(pair), {"action": "unassign"}).status_code == 302
    assert Review.objects.get().assignee is None
    assert ReviewTransition.objects.count() == 2


def test_notes_are_listed_with_author_and_time_and_empty_ones_refused(
    maria: User, north: Site, pair: Match
) -> None:
    colleague = make_user("jonas", north)
    client_for(maria).post(url_of(pair), {"action": "note", "text": "First note"})
    client_for(colleague).post(url_of(pair), {"action": "note", "text": "Second <b>note</b>"})

    empty = client_for(maria).post(url_of(pair), {"action": "note", "text": "   "})

    assert empty.status_code == 200
    assert error_next_to(empty, "text")
    page = client_for(maria).get(url_of(pair))
    notes = section(page, "ws-workflow-h")
    assert notes.index("maria") < notes.index("First note") < notes.index("jonas")
    assert "Second <b>note</b>" in notes  # shown as typed, not as markup
    assert re.search(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}", notes)
    assert [n.author for n in ReviewNote.objects.all()] == [maria, colleague]


def test_stale_match_shows_the_banner(maria: User, pair: Match) -> None:
    Patient.objects.filter(pk=pair.patient_id).update(facts_changed_at=timezone.now())

    response = client_for(maria).get(url_of(pair))

    assert "Stale: inputs changed since evaluation." in text_of(response)


def test_a_pair_with_a_review_but_no_match_still_shows_its_follow_up(
    maria: User, pair: Match
) -> None:
    workflow.move(workflow.review_for(pair.patient_id, pair.trial_id), "contacted", actor=maria)
    Match.objects.filter(pk=pair.pk).delete()  # the trial closed: its matches were removed

    response = client_for(maria).get(url_of(pair))

    assert response.status_code == 200
    assert "No evaluation stored." in text_of(response)
    assert "Status Contacted" in section(response, "ws-workflow-h")


# --- re-evaluation --------------------------------------------------------------------------------


def test_re_evaluation_keeps_status_and_notes_and_marks_a_changed_verdict(
    example_pair: Match, default_coordinator: User
) -> None:
    client = client_for(default_coordinator)
    assert move(client, example_pair, "under_review", note="Good candidate").status_code == 302
    other = Match.objects.get(patient__external_id="EX1", trial__nct_id=CAMRELIZUMAB)
    assert move(client, other, "under_review").status_code == 302

    # ECOG 2 now: MATTERHORN asks for 0 or 1, the pair becomes ineligible.
    result = patient_upsert(
        read_bundle(ecog_changed(example("EX1"), 2), origin="EX1.json"), source=Source.FHIR
    )
    assert result.patient is not None
    match_patients([result.patient.pk])

    rematched = Match.objects.get(patient__external_id="EX1", trial__nct_id=MATTERHORN)
    assert rematched.pk != example_pair.pk  # the row was replaced
    assert (rematched.verdict, rematched.flagged) == ("ineligible", False)
    review = Review.objects.get(patient_id=example_pair.patient_id, trial_id=example_pair.trial_id)
    assert review.status == "under_review"
    assert [note.text for note in review.notes.all()] == ["Good candidate"]

    page = client.get(url_of(example_pair))
    assert "Changed since review:" in text_of(page)
    assert "Good candidate" in section(page, "ws-workflow-h")
    queue = client.get(QUEUE_URL + "?verdict=all&q=EX1")
    marks = dict(zip(column(queue, "trial_link"), column(queue, "attention"), strict=True))
    matterhorn = next(value for key, value in marks.items() if key.startswith(MATTERHORN))
    assert matterhorn == "△ changed since review"
    camrelizumab = next(value for key, value in marks.items() if key.startswith(CAMRELIZUMAB))
    still = Match.objects.get(patient__external_id="EX1", trial__nct_id=CAMRELIZUMAB)
    moved = Review.objects.get(patient_id=still.patient_id, trial_id=still.trial_id)
    expected = "△ changed since review" if workflow.changed_since_review(moved, still) else "-"
    assert camrelizumab == expected
