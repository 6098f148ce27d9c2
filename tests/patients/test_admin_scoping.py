"""Site scoping of the admin, and the patient page.

A coordinator of one site works next to the coordinators of another in the same admin: they
must never see each other's patients, whichever way they come at them (list, filter, search,
autocomplete, detail, history, actions, the site pages, the audit log). The patient page
shows the patient's surgical candidacy, what would decide the open questions and every match,
in a bounded number of queries.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable
from typing import Any

import pytest
from django.apps import apps
from django.contrib.auth.models import Group, Permission, User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django.utils.html import escape

from patients import workflow
from patients.access import COORDINATOR_GROUP, SITE_ADMIN_GROUP
from patients.admin import match_page_url
from patients.matching import MATCHER_VERSION
from patients.models import Match, Patient, PerformanceStatus, Review, Site
from tests.patients.test_admin_patients import management_data, parse
from trials.models import Trial

pytestmark = pytest.mark.django_db

# django-auditlog ships no type information: its model is taken from the app registry.
LogEntry: Any = apps.get_model("auditlog", "LogEntry")

LIST_URL = "/admin/patients/patient/"
SITE_LIST_URL = "/admin/patients/site/"
AUTOCOMPLETE_URL = "/admin/autocomplete/"


# --- building blocks (also used by the trial page tests) -----------------------------------


def make_site(code: str, name: str) -> Site:
    return Site.objects.create(code=code, name=name, country="DE")


def make_staff(
    username: str, *sites: Site, role: str = COORDINATOR_GROUP, superuser: bool = False
) -> User:
    """A staff account as ``create_coordinator`` makes it: a role group and site membership."""
    user = User.objects.create_user(
        username, password="correct horse battery staple", is_staff=True, is_superuser=superuser
    )
    user.groups.add(Group.objects.get(name=role))
    for site in sites:
        site.coordinators.add(user)
    return user


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def make_patients(site: Site, prefix: str, count: int) -> list[Patient]:
    return Patient.objects.bulk_create(
        [
            Patient(site=site, external_id=f"{prefix}-{n:03}", birth_date=datetime.date(1960, 1, 1))
            for n in range(count)
        ]
    )


def make_trials(count: int, prefix: str = "NCT9") -> list[Trial]:
    return Trial.objects.bulk_create(
        [
            Trial(
                nct_id=f"{prefix}{n:07d}",
                brief_title=f"Perioperative immunotherapy study {n}",
                overall_status=Trial.Status.RECRUITING,
                content_hash="recorded",
                gastric_preop_immunotherapy=True,
            )
            for n in range(count)
        ]
    )


def make_match(
    patient: Patient,
    trial: Trial,
    verdict: str,
    *,
    flagged: bool = False,
    score: float = 50.0,
    unknown: Iterable[str] = (),
    distance_km: float | None = 12.0,
) -> Match:
    """A match as the matcher stores it, current for the patient's and trial's inputs."""
    return Match.objects.create(
        patient=patient,
        trial=trial,
        verdict=verdict,
        score=score,
        flagged=flagged,
        flag_reason="open preoperative immunotherapy trial, possibly eligible" if flagged else "",
        distance_km=distance_km,
        outcomes=[],
        unknown_facts=list(unknown),
        engine_version=MATCHER_VERSION,
        patient_facts_at=patient.facts_changed_at,
        trial_inputs_at=trial.matching_inputs_at,
        evaluated_on=timezone.localdate(),
    )


def change_url(obj: Patient | Site) -> str:
    return f"/admin/patients/{obj._meta.model_name}/{obj.pk}/change/"


def listed_patients(response: Any) -> list[str]:
    return [patient.external_id for patient in response.context["cl"].result_list]


def access_logged(patient: Patient) -> int:
    return LogEntry.objects.filter(
        action=LogEntry.Action.ACCESS, object_pk=str(patient.pk), content_type__model="patient"
    ).count()


@pytest.fixture(autouse=True)
def fast_password_hashing(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def north() -> Site:
    return make_site("north", "North General Hospital")


@pytest.fixture
def south() -> Site:
    return make_site("south", "South Cancer Centre")


@pytest.fixture
def anna(north: Site) -> User:
    """A coordinator of the north site."""
    return make_staff("anna", north)


@pytest.fixture
def sam(north: Site) -> User:
    """A site admin of the north site."""
    return make_staff("sam", north, role=SITE_ADMIN_GROUP)


@pytest.fixture
def root() -> User:
    return make_staff("root", superuser=True)


@pytest.fixture
def northern(north: Site) -> Patient:
    return Patient.objects.create(site=north, external_id="MRN-7", birth_date="1961-02-03")


@pytest.fixture
def southern(south: Site) -> Patient:
    # The same MRN as the northern patient: MRNs are unique per site only.
    return Patient.objects.create(site=south, external_id="MRN-7", birth_date="1955-06-07")


# --- 1. the patient list, its filter and search --------------------------------------------


def test_a_coordinator_lists_only_their_sites_patients(
    anna: User, root: User, northern: Patient, southern: Patient, south: Site
) -> None:
    make_patients(south, "SOUTH", 3)

    own = client_for(anna).get(LIST_URL)
    everyone = client_for(root).get(LIST_URL)

    assert own.status_code == 200
    assert [(p.external_id, p.site.code) for p in own.context["cl"].result_list] == [
        ("MRN-7", "north")
    ]
    assert "SOUTH-" not in own.content.decode()
    assert sorted(listed_patients(everyone)) == [
        "MRN-7",
        "MRN-7",
        "SOUTH-000",
        "SOUTH-001",
        "SOUTH-002",
    ]
    # Only what was shown is logged as seen.
    assert access_logged(northern) == 2
    assert access_logged(southern) == 1  # by the superuser


def test_the_site_filter_offers_only_the_coordinators_sites(
    anna: User, northern: Patient, southern: Patient
) -> None:
    page = client_for(anna).get(LIST_URL).content.decode()

    assert "North General Hospital" in page
    assert "South Cancer Centre" not in page

    # Asking for the other site's patients by its filter shows nothing of them.
    response = client_for(anna).get(LIST_URL, {"site__id__exact": southern.site_id})
    assert response.status_code == 200
    assert southern.pk not in [patient.pk for patient in response.context["cl"].result_list]
    assert access_logged(southern) == 0


def test_search_finds_only_the_coordinators_patients(
    anna: User, root: User, northern: Patient, southern: Patient, south: Site
) -> None:
    make_patients(south, "SOUTH", 2)

    assert listed_patients(client_for(anna).get(LIST_URL, {"q": "MRN-7"})) == ["MRN-7"]
    assert client_for(anna).get(LIST_URL, {"q": "MRN-7"}).context["cl"].result_list[0].pk == (
        northern.pk
    )
    assert listed_patients(client_for(anna).get(LIST_URL, {"q": "SOUTH"})) == []
    assert len(listed_patients(client_for(root).get(LIST_URL, {"q": "MRN-7"}))) == 2
    assert access_logged(southern) == 1  # the superuser's search only


def test_autocomplete_offers_only_the_coordinators_patients(
    anna: User, root: User, northern: Patient, southern: Patient
) -> None:
    # Any foreign key to Patient names the patient admin's search (here: Review.patient).
    query = {
        "app_label": "patients",
        "model_name": "review",
        "field_name": "patient",
        "term": "MRN",
    }

    own = client_for(anna).get(AUTOCOMPLETE_URL, query)
    everyone = client_for(root).get(AUTOCOMPLETE_URL, query)

    assert own.status_code == 200
    assert own.json()["results"] == [{"id": str(northern.pk), "text": "MRN-7 (north)"}]
    assert {item["id"] for item in everyone.json()["results"]} == {
        str(northern.pk),
        str(southern.pk),
    }
    # What it offered is recorded as read: once for anna's answer, once for the superuser's.
    assert access_logged(northern) == 2
    assert access_logged(southern) == 1


# --- 2. one patient: page, history, changes, deletion ----------------------------------------


def test_another_sites_patient_is_not_found(
    anna: User, northern: Patient, southern: Patient
) -> None:
    client = client_for(anna)

    assert client.get(change_url(northern)).status_code == 200
    for suffix in ("change/", "history/", "delete/"):
        url = f"{LIST_URL}{southern.pk}/{suffix}"
        assert client.get(url).status_code == 404, url
    # Posting a change to it changes nothing either.
    assert client.post(change_url(southern), {"external_id": "TAKEN"}).status_code == 404
    southern.refresh_from_db()
    assert southern.external_id == "MRN-7"
    assert access_logged(southern) == 0


def test_deleting_a_patient_is_for_superusers_only(
    sam: User, root: User, northern: Patient
) -> None:
    """Deleting a profile also deletes its matches and its whole review history (contacts,
    consents, notes): a superuser's act, through the admin or the API alike. A site admin adds
    and edits their sites' patients but deletes none."""
    make_match(northern, make_trials(1)[0], Match.Verdict.POSSIBLE, flagged=True)
    site_admin_rights = set(
        Group.objects.get(name=SITE_ADMIN_GROUP).permissions.values_list("codename", flat=True)
    )
    assert {"add_patient", "change_patient"} <= site_admin_rights
    assert "delete_patient" not in site_admin_rights

    client = client_for(sam)
    page = client.get(change_url(northern)).content.decode()
    assert f"{northern.pk}/delete/" not in page
    action_form = client.get(LIST_URL).context["action_form"]
    actions = [name for name, _ in action_form.fields["action"].choices] if action_form else []
    assert "delete_selected" not in actions
    assert client.get(f"{LIST_URL}{northern.pk}/delete/").status_code == 403
    assert client.post(f"{LIST_URL}{northern.pk}/delete/", {"post": "yes"}).status_code == 403
    assert client.delete(f"/api/v1/patients/{northern.pk}/").status_code == 403
    assert Patient.objects.filter(pk=northern.pk).exists()

    deleted = client_for(root).post(f"{LIST_URL}{northern.pk}/delete/", {"post": "yes"})

    assert deleted.status_code == 302
    assert not Patient.objects.filter(pk=northern.pk).exists()
    assert not Match.objects.exists()
    assert LogEntry.objects.filter(
        object_pk=str(northern.pk), content_type__model="patient", action=LogEntry.Action.DELETE
    ).exists()


def test_a_fact_of_another_sites_patient_cannot_be_reached(anna: User, southern: Patient) -> None:
    PerformanceStatus.objects.create(patient=southern, value=1)

    # Facts have no admin page of their own: only through their (scoped) patient.
    assert client_for(anna).get("/admin/patients/performancestatus/").status_code == 404
    assert client_for(anna).get(change_url(southern)).status_code == 404


def test_the_add_form_offers_only_the_users_sites_and_refuses_another(
    sam: User, north: Site, south: Site
) -> None:
    client = client_for(sam)
    form = client.get(f"{LIST_URL}add/")
    choices = [value for value, _ in form.context["adminform"].form.fields["site"].choices]

    assert [str(value) for value in choices if value] == [str(north.pk)]
    assert form.context["adminform"].form.initial["site"] == north.pk  # their only site

    management = management_data()
    refused = client.post(
        f"{LIST_URL}add/", {"site": south.pk, "external_id": "NEW-1", **management}
    )
    accepted = client.post(
        f"{LIST_URL}add/", {"site": north.pk, "external_id": "NEW-2", **management}
    )

    assert refused.status_code == 200
    assert "Select a valid choice" in str(refused.context["adminform"].form.errors["site"])
    assert accepted.status_code == 302
    assert list(Patient.objects.values_list("external_id", "site__code")) == [("NEW-2", "north")]


def test_a_patient_cannot_be_moved_to_a_site_the_user_does_not_belong_to(
    anna: User, northern: Patient, south: Site
) -> None:
    client = client_for(anna)
    form = parse(client.get(change_url(northern))).data
    assert form["site"] == str(northern.site_id)

    response = client.post(change_url(northern), {**form, "site": str(south.pk)})

    assert response.status_code == 200
    assert "site" in response.context["adminform"].form.errors
    northern.refresh_from_db()
    assert northern.site.code == "north"


def test_bulk_actions_reach_only_the_users_patients(
    sam: User, northern: Patient, southern: Patient
) -> None:
    # Even with the delete permission given outright (deleting is a superuser's act), the
    # action reaches the user's own sites' patients only.
    sam.user_permissions.add(
        Permission.objects.get(content_type__app_label="patients", codename="delete_patient")
    )
    sam = User.objects.get(pk=sam.pk)
    response = client_for(sam).post(
        LIST_URL,
        {
            "action": "delete_selected",
            "_selected_action": [northern.pk, southern.pk],
            "post": "yes",
        },
    )

    assert response.status_code == 302
    assert list(Patient.objects.values_list("site__code", "external_id")) == [("south", "MRN-7")]


# --- 3. sites and who belongs to them --------------------------------------------------------


def test_a_coordinator_sees_only_their_sites_and_cannot_change_them(
    anna: User, north: Site, south: Site
) -> None:
    client = client_for(anna)

    listing = client.get(SITE_LIST_URL)
    assert [site.code for site in listing.context["cl"].result_list] == ["north"]
    assert "South Cancer Centre" not in listing.content.decode()
    assert client.get(change_url(south)).status_code == 404

    page = client.get(change_url(north))
    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()  # read only for a coordinator
    assert client.post(change_url(north), {"coordinators": []}).status_code == 403
    assert list(north.coordinators.all()) == [anna]


def test_a_site_admin_manages_who_belongs_to_their_own_site_only(
    sam: User, anna: User, north: Site, south: Site
) -> None:
    newcomer = make_staff("nico")
    client = client_for(sam)
    page = client.get(change_url(north))
    offered = [str(user) for user in page.context["adminform"].form.fields["coordinators"].queryset]
    assert {"anna", "nico", "sam"} <= set(offered)
    assert 'class="selectfilter"' in page.content.decode()  # the two-list chooser

    response = client.post(
        change_url(north),
        {"coordinators": [sam.pk, anna.pk, newcomer.pk], "name": "Renamed by a site admin"},
    )

    assert response.status_code == 302, response.context["adminform"].form.errors
    north.refresh_from_db()
    assert set(north.coordinators.values_list("username", flat=True)) == {"anna", "nico", "sam"}
    assert north.name == "North General Hospital"  # details are the superuser's to change
    # Another site: not even found.
    assert client.get(change_url(south)).status_code == 404
    assert client.post(change_url(south), {"coordinators": [sam.pk]}).status_code == 404
    assert not south.coordinators.exists()
    # The new member now sees the site's patients.
    Patient.objects.create(site=north, external_id="N-1")
    assert listed_patients(client_for(newcomer).get(LIST_URL)) == ["N-1"]


def test_a_site_admin_is_offered_only_staff_they_may_manage_and_cannot_add_others(
    sam: User, anna: User, root: User, north: Site, south: Site
) -> None:
    """Another site's staff are neither listed to a site admin nor accepted from one (a
    crafted form); staff of no site yet are, so that a new account can join."""
    olga = make_staff("olga", south)
    newcomer = make_staff("nico")
    client = client_for(sam)

    page = client.get(change_url(north))
    offered = {str(user) for user in page.context["adminform"].form.fields["coordinators"].queryset}
    assert offered == {"anna", "nico", "sam"}
    assert "olga" not in page.content.decode()
    assert "root" not in page.content.decode()  # a superuser is no one's to manage

    for stranger in (olga, root):
        crafted = client.post(change_url(north), {"coordinators": [sam.pk, anna.pk, stranger.pk]})
        assert crafted.status_code == 200, stranger
        assert "coordinators" in crafted.context["adminform"].form.errors
        assert set(north.coordinators.all()) == {sam, anna}
    assert set(south.coordinators.all()) == {olga}

    # A superuser still picks from every staff account.
    everyone = client_for(root).get(change_url(north))
    listed = everyone.context["adminform"].form.fields["coordinators"].queryset
    assert {str(user) for user in listed} == {"anna", "nico", "olga", "root", "sam"}
    assert newcomer in listed


def test_a_superuser_sees_and_changes_every_site(root: User, north: Site, south: Site) -> None:
    client = client_for(root)

    listing = client.get(SITE_LIST_URL)
    response = client.post(
        change_url(south), {"name": "South Cancer Centre (new wing)", "code": "south"}
    )

    assert [site.code for site in listing.context["cl"].result_list] == ["north", "south"]
    assert response.status_code == 302
    south.refresh_from_db()
    assert south.name == "South Cancer Centre (new wing)"


# --- 4. the audit log ------------------------------------------------------------------------


def test_the_audit_log_is_for_superusers_only(sam: User, root: User, northern: Patient) -> None:
    client_for(root).get(change_url(northern))
    entry = LogEntry.objects.filter(action=LogEntry.Action.ACCESS).first()
    # Even with the model permission given outright, a site admin does not read the trail.
    sam.user_permissions.add(
        Permission.objects.get(content_type__app_label="auditlog", codename="view_logentry")
    )
    sam = User.objects.get(pk=sam.pk)

    assert client_for(sam).get("/admin/auditlog/logentry/").status_code == 403
    assert client_for(sam).get(f"/admin/auditlog/logentry/{entry.pk}/change/").status_code == 403
    assert "auditlog" not in client_for(sam).get("/admin/").content.decode()
    assert client_for(root).get("/admin/auditlog/logentry/").status_code == 200


# --- 5. anonymous visitors ------------------------------------------------------------------


def test_every_page_here_sends_an_anonymous_visitor_to_the_login(
    client: Client, northern: Patient, north: Site
) -> None:
    urls = [
        LIST_URL,
        change_url(northern),
        f"{LIST_URL}{northern.pk}/history/",
        f"{LIST_URL}add/",
        SITE_LIST_URL,
        change_url(north),
        "/admin/auditlog/logentry/",
        f"{AUTOCOMPLETE_URL}?app_label=patients&model_name=review&field_name=patient",
    ]
    for url in urls:
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/admin/login/"), url
    assert not LogEntry.objects.filter(action=LogEntry.Action.ACCESS).exists()


# --- 6. the patient page ---------------------------------------------------------------------


def row_texts(html: str) -> list[str]:
    """The text of each match row, tags removed and white space collapsed."""
    rows = re.findall(r'<tr class="match-row">(.*?)</tr>', html, flags=re.S)
    return [" ".join(re.sub(r"<[^>]+>", " ", row).split()) for row in rows]


def section(page: str, heading_id: str) -> str:
    """The HTML of the page's section labelled by ``heading_id``."""
    found = re.search(
        rf'<section[^>]*aria-labelledby="{heading_id}".*?</section>', page, flags=re.S
    )
    assert found is not None, f"no section {heading_id}"
    return found.group(0)


def test_the_patient_page_shows_candidacy_what_would_decide_it_and_every_match(
    anna: User, northern: Patient
) -> None:
    Patient.objects.filter(pk=northern.pk).update(
        surgical_candidate=True,
        surgical_candidate_reason="cT3 N1 M0 adenocarcinoma of the stomach, ECOG 1",
    )
    a, b, c, d, e = make_trials(5)
    make_match(northern, a, "ineligible", score=90)
    make_match(northern, b, "eligible", score=100)
    make_match(northern, c, "possible", score=60, unknown=["clinical N stage", "HER2 status"])
    make_match(
        northern, d, "possible", flagged=True, score=70, unknown=["clinical N stage", "ECOG"]
    )
    make_match(northern, e, "possible", score=80, unknown=["clinical N stage"])
    workflow.move(workflow.review_for(northern, d), "under_review", actor=anna)

    response = client_for(anna).get(change_url(northern))

    assert response.status_code == 200
    page = response.content.decode()
    candidacy = section(page, "candidacy-heading")
    assert "Yes" in candidacy
    assert "cT3 N1 M0 adenocarcinoma of the stomach, ECOG 1" in candidacy
    deciding = section(page, "deciding-heading")
    items = re.findall(r"<li><strong>([^<]*)</strong>", deciding)
    # Ranked by how many possible trials each would decide.
    assert items == [
        "clinical N stage: decides 3 trials",
        "ECOG: decides 1 trial",
        "HER2 status: decides 1 trial",
    ]
    assert f'href="{match_page_url(northern.pk, c.pk)}"' in deciding
    matches = section(page, "matches-heading")
    order = re.findall(r'<a href="([^"]+)">(NCT\d+)</a>', matches)
    # Flagged first, then possible, eligible, ineligible.
    assert [nct for _, nct in order] == [d.nct_id, e.nct_id, c.nct_id, b.nct_id, a.nct_id]
    assert [url for url, _ in order] == [
        match_page_url(northern.pk, trial.pk) for trial in (d, e, c, b, a)
    ]
    assert match_page_url(northern.pk, d.pk) == f"/admin/patients/match/pair/{northern.pk}/{d.pk}/"
    # Verdicts by word and symbol, never by colour alone; review status and its change.
    flagged, *_, eligible, ineligible = row_texts(matches)
    assert "? Possibly eligible ⚑ Flagged" in flagged
    assert "Under review" in flagged
    assert "changed since review" not in flagged  # d was possible when it was reviewed
    assert "✓ Eligible not flagged 100 12 km New (not reviewed)" in eligible
    assert "✗ Ineligible not flagged 90 12 km New (not reviewed)" in ineligible
    assert access_logged(northern) == 1


def test_the_patient_page_says_when_a_verdict_changed_since_review(
    anna: User, northern: Patient
) -> None:
    (trial,) = make_trials(1)
    make_match(northern, trial, "possible", flagged=True)
    workflow.move(workflow.review_for(northern, trial), "contacted", actor=anna)
    # The next evaluation finds an exclusion met.
    Match.objects.filter(patient=northern).update(verdict="ineligible", flagged=False)

    page = client_for(anna).get(change_url(northern)).content.decode()

    [row] = row_texts(section(page, "matches-heading"))
    assert "✗ Ineligible" in row
    assert "Contacted changed since review" in row


def test_the_patient_page_marks_matches_evaluated_on_older_facts(
    anna: User, northern: Patient
) -> None:
    (trial,) = make_trials(1)
    make_match(northern, trial, "possible", unknown=["ECOG"])
    Patient.objects.filter(pk=northern.pk).update(facts_changed_at=timezone.now())

    page = client_for(anna).get(change_url(northern)).content.decode()

    assert "out of date" in section(page, "matches-heading")
    # A match on older facts decides nothing until it is evaluated again.
    assert "No missing fact holds back a possible trial." in section(page, "deciding-heading")


def test_the_patient_page_shows_each_facts_source_and_date(anna: User, northern: Patient) -> None:
    PerformanceStatus.objects.create(
        patient=northern,
        value=1,
        observed_on=datetime.date(2025, 3, 4),
        source="fhir",
        source_reference="bundle-17.json#Observation/ecog",
    )

    response = client_for(anna).get(change_url(northern))

    [form] = [
        form
        for inline in response.context["inline_admin_formsets"]
        if inline.formset.prefix == "performance"
        for form in inline.formset.forms
    ]
    assert form["observed_on"].value() == datetime.date(2025, 3, 4)
    assert escape("FHIR import: bundle-17.json#Observation/ecog") in response.content.decode()


# --- 7. query counts ----------------------------------------------------------------------

# Measured for a coordinator: the list 15 queries (session, user, sites, counts, one page,
# its flags, the audit INSERTs) whatever the number of patients; the patient page 36 whatever
# the number of matches. The bounds leave room for ~1.3x that.
LIST_MAX_QUERIES = 20
PAGE_MAX_QUERIES = 48


def reads(queries: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in queries.captured_queries if not q["sql"].startswith("INSERT")]


def test_the_patient_list_query_count_does_not_grow_with_500_patients(
    anna: User, north: Site, south: Site, django_assert_max_num_queries: Any
) -> None:
    client = client_for(anna)
    trials = make_trials(3)
    few = make_patients(north, "FEW", 5)
    for patient in few:
        make_match(patient, trials[0], "possible", flagged=True)
    client.get(LIST_URL)  # warm the content-type cache

    with CaptureQueriesContext(connection) as with_few:
        assert len(listed_patients(client.get(LIST_URL))) == 5

    many = make_patients(north, "MANY", 495)
    make_patients(south, "OTHER", 500)
    Match.objects.bulk_create(
        [
            Match(
                patient=patient,
                trial=trial,
                verdict="possible",
                score=50,
                flagged=True,
                engine_version=MATCHER_VERSION,
                patient_facts_at=patient.facts_changed_at,
                trial_inputs_at=trial.matching_inputs_at,
                evaluated_on=timezone.localdate(),
            )
            for patient in many
            for trial in trials
        ]
    )
    with django_assert_max_num_queries(LIST_MAX_QUERIES) as with_many:
        response = client.get(LIST_URL)

    assert response.context["cl"].result_count == 500
    assert len(listed_patients(response)) == 100  # one page of them
    assert len(reads(with_many)) == len(reads(with_few))
    assert "⚑ 3 flagged" in response.content.decode()


def test_the_patient_page_query_count_does_not_grow_with_the_matches(
    anna: User, north: Site, django_assert_max_num_queries: Any
) -> None:
    client = client_for(anna)
    few, many = make_patients(north, "P", 2)
    trials = make_trials(150)
    for trial in trials[:2]:
        make_match(few, trial, "possible", unknown=["ECOG"])
    Match.objects.bulk_create(
        [
            Match(
                patient=many,
                trial=trial,
                verdict=("possible", "eligible", "ineligible")[n % 3],
                score=n % 100,
                flagged=n % 3 == 0,
                unknown_facts=["ECOG", f"lab {n % 7}"] if n % 3 == 0 else [],
                engine_version=MATCHER_VERSION,
                patient_facts_at=many.facts_changed_at,
                trial_inputs_at=trial.matching_inputs_at,
                evaluated_on=timezone.localdate(),
            )
            for n, trial in enumerate(trials)
        ]
    )
    Review.objects.bulk_create([Review(patient=many, trial=trial) for trial in trials[:40]])
    client.get(change_url(few))  # warm the content-type cache

    with CaptureQueriesContext(connection) as with_few:
        assert client.get(change_url(few)).status_code == 200
    with django_assert_max_num_queries(PAGE_MAX_QUERIES) as with_many:
        response = client.get(change_url(many))

    assert response.status_code == 200
    assert response.content.decode().count('class="match-row"') == 150
    assert len(reads(with_many)) == len(reads(with_few))
