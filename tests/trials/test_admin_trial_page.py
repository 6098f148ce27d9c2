"""The trial page: the registry's eligibility text beside the engine's reading, the
classification with its evidence, the versions with what changed in the eligibility text,
the sites, and the patients the trial matched, of the user's own sites only.

The trial is a real recorded registry record (MATTERHORN) imported and read by the engine.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django.utils.html import escape

from patients import workflow
from patients.admin import match_page_url
from patients.matching import MATCHER_VERSION
from patients.models import Match, Patient, Site
from tests.patients.test_admin_scoping import (
    client_for,
    make_match,
    make_patients,
    make_site,
    make_staff,
    row_texts,
    section,
)
from tests.trials.test_curation import (
    ANC_AND_PLATELETS,
    MATTERHORN,
    ORGAN_FUNCTION,
    change_form_data,
    criterion_field,
    publish_new_eligibility,
    read_trial,
)
from trials.admin import eligibility_diff
from trials.criteria import trial_set_classification
from trials.models import Trial, TrialSite

pytestmark = pytest.mark.django_db

# django-auditlog ships no type information: its model is taken from the app registry.
LogEntry: Any = apps.get_model("auditlog", "LogEntry")

MATCHED_PURPOSE = "admin: trial page, matched patients"


STATIC = Path(__file__).resolve().parents[2] / "trials" / "static"


def change_url(trial: Trial) -> str:
    return f"/admin/trials/trial/{trial.pk}/change/"


def between(page: str, start: str, end: str) -> str:
    """The part of ``page`` from the first ``start`` to the next ``end``."""
    begin = page.index(start)
    return page[begin : page.index(end, begin)]


@pytest.fixture(autouse=True)
def fast_password_hashing(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def matterhorn() -> Trial:
    return read_trial(MATTERHORN)


@pytest.fixture
def north() -> Site:
    return make_site("north", "North General Hospital")


@pytest.fixture
def south() -> Site:
    return make_site("south", "South Cancer Centre")


@pytest.fixture
def anna(north: Site) -> User:
    """A coordinator of the north site (trials: view only)."""
    return make_staff("anna", north)


@pytest.fixture
def root() -> User:
    return make_staff("root", superuser=True)


# --- 1. the eligibility text beside the reading ----------------------------------------------


def test_the_registry_text_stands_beside_the_engines_reading(anna: User, matterhorn: Trial) -> None:
    response = client_for(anna).get(change_url(matterhorn))

    assert response.status_code == 200
    page = response.content.decode()
    columns = between(page, '<div class="eligibility-columns">', "</table></section></div>")
    text = between(columns, '<pre class="eligibility-text">', "</pre>")
    reading = columns[columns.index('<table class="parsed-criteria">') :]
    assert escape(matterhorn.eligibility_criteria) in text
    for criterion in matterhorn.criteria.all():
        assert escape(criterion.text) in reading
    rows = re.findall(r"<tr><td>\d+</td>(.*?)</tr>", reading, flags=re.S)
    assert len(rows) == matterhorn.criteria.count()
    # Statuses in words with a symbol, never by colour alone.
    assert "✓ complete" in reading
    # A reading the engine did not fully understand says so, with the words.
    incomplete = [x for x in matterhorn.criteria.all() if x.reading_gaps and not x.reading_marks]
    if incomplete:
        assert "◐ incomplete, not understood: " in reading
        assert escape(f"“{incomplete[0].reading_gaps[0]}”") in reading
    # Side by side on a wide screen, one above the other on a narrow one (the page's
    # stylesheet, a static file).
    assert "trials/trial_page.css" in page
    stylesheet = (STATIC / "trials" / "trial_page.css").read_text()
    assert re.search(
        r"@media \(min-width: \d+px\) \{ \.eligibility-columns \{ "
        r"grid-template-columns: 1fr 1fr; \} \}",
        stylesheet,
    )


def test_the_criteria_below_stay_the_editable_curation(root: User, matterhorn: Trial) -> None:
    response = client_for(root).get(change_url(matterhorn))

    [criteria] = [
        inline.formset
        for inline in response.context["inline_admin_formsets"]
        if inline.formset.model.__name__ == "Criterion"
    ]
    assert {form.instance.pk for form in criteria.forms} == set(
        matterhorn.criteria.values_list("pk", flat=True)
    )
    assert all("corrected_constraints" in form.fields for form in criteria.forms)


def test_a_coordinator_corrects_a_criterion_on_the_page_but_not_the_classification(
    anna: User, matterhorn: Trial
) -> None:
    organ = matterhorn.criteria.get(text=ORGAN_FUNCTION)
    client = client_for(anna)
    page = client.get(change_url(matterhorn))
    assert 'name="_save"' in page.content.decode()
    data = change_form_data(page)
    assert "classification_override" not in data  # read only for a coordinator
    data[criterion_field(page, organ, "corrected_constraints")] = json.dumps(ANC_AND_PLATELETS)
    data[criterion_field(page, organ, "correction_note")] = "thresholds from the protocol"
    data["classification_override"] = "false"

    response = client.post(change_url(matterhorn), data)

    assert response.status_code == 302
    organ.refresh_from_db()
    assert organ.corrected_constraints == ANC_AND_PLATELETS
    assert organ.corrected_by == anna
    matterhorn.refresh_from_db()
    assert matterhorn.classification_override is None
    assert matterhorn.gastric_preop_immunotherapy


# --- 2. classification and its evidence ------------------------------------------------------


def test_the_classification_is_shown_with_its_evidence(
    anna: User, root: User, matterhorn: Trial
) -> None:
    assert matterhorn.classification_evidence

    page = client_for(anna).get(change_url(matterhorn)).content.decode()

    summary = between(page, "Gastric preoperative immunotherapy trial:", "</fieldset>")
    assert "<strong>yes</strong> (the engine's answer)" in summary
    for label in ("gastric or GEJ cancer", "an arm gives immunotherapy", "given before surgery"):
        assert f"{label}: <strong>yes</strong>" in summary
    for item in matterhorn.classification_evidence:
        assert escape(f"{item['field']}: “{item['words']}”") in summary

    trial_set_classification(matterhorn, override=False, note="no gastric arm here", user=root)
    page = client_for(anna).get(change_url(matterhorn)).content.decode()

    summary = between(page, "Gastric preoperative immunotherapy trial:", "</fieldset>")
    assert "<strong>no</strong> (coordinator's classification by root" in summary
    assert "the engine says yes" in summary
    assert "no gastric arm here" in summary


# --- 3. versions -----------------------------------------------------------------------------


def test_versions_show_what_changed_in_the_eligibility_text(
    anna: User, matterhorn: Trial, tmp_path: Path
) -> None:
    page = client_for(anna).get(change_url(matterhorn)).content.decode()
    assert "The first version recorded." in page

    publish_new_eligibility(
        tmp_path,
        MATTERHORN,
        lambda text: text.replace("at least 24 weeks", "at least 12 weeks").replace(
            "* Contra-indication to any of the study drugs.\n", ""
        ),
    )
    page = client_for(anna).get(change_url(matterhorn)).content.decode()

    history = between(page, '<ol class="version-history" reversed>', "</ol>")
    newest, first = re.findall(r"<li>(.*?)</li>", history, flags=re.S)
    assert newest.startswith("<strong>Version 2</strong>")
    assert "changed: eligibility" in newest
    assert "Eligibility text, version 1 → 2" in newest
    diff = between(newest, '<pre class="version-diff">', "</pre>")
    removed = re.findall(r"<del>- ([^<]*)</del>", diff)
    added = re.findall(r"<ins>\+ ([^<]*)</ins>", diff)
    assert removed == [
        "* Must have a life expectancy of at least 24 weeks.",
        "* Contra-indication to any of the study drugs.",
    ]
    assert added == ["* Must have a life expectancy of at least 12 weeks."]
    # Only the changes and a little context, not the whole text again.
    assert "Patients must undergo radical surgery." not in newest
    assert first.startswith("<strong>Version 1</strong>")


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        pytest.param("a\nb\nc", "a\nb\nc", [], id="unchanged"),
        pytest.param(
            "a\nb\nc",
            "a\nB\nc",
            ['<span class="hunk">…</span>', "  a", "<del>- b</del>", "<ins>+ B</ins>", "  c"],
            id="changed-line",
        ),
        pytest.param(
            "x",
            "x\nage < 75 & ECOG <= 1",
            [
                '<span class="hunk">…</span>',
                "  x",
                "<ins>+ age &lt; 75 &amp; ECOG &lt;= 1</ins>",
            ],
            id="added-line-escaped",
        ),
        pytest.param(
            "1\n2\n3\n4\n5\n6\n7",
            "1\n2\n3\n4\n5\n6",
            ['<span class="hunk">…</span>', "  5", "  6", "<del>- 7</del>"],
            id="two-lines-of-context",
        ),
    ],
)
def test_the_eligibility_diff(before: str, after: str, expected: list[str]) -> None:
    html = eligibility_diff(before, after)

    lines = [
        line if not line.startswith('<span class="same">') else line[19:-7]
        for line in re.findall(r"<(?:span|del|ins)[^>]*>.*?</(?:span|del|ins)>", html)
    ]
    assert lines == expected


# --- 4. sites --------------------------------------------------------------------------------


def test_the_trials_sites_are_listed_with_status_city_and_country(
    anna: User, matterhorn: Trial
) -> None:
    TrialSite.objects.filter(trial=matterhorn, city="Atlanta").update(status="RECRUITING")

    response = client_for(anna).get(change_url(matterhorn))

    [sites] = [
        inline.formset
        for inline in response.context["inline_admin_formsets"]
        if inline.formset.model is TrialSite
    ]
    shown = {(f.instance.facility, f.instance.status, f.instance.city) for f in sites.forms}
    assert ("Emory University Hospital / Winship Cancer Institute", "RECRUITING", "Atlanta") in (
        shown
    )
    assert len(shown) == 4
    page = response.content.decode()
    for name in (
        "Memorial Sloan Kettering Cancer Center",
        "RECRUITING",
        "Seattle",
        "United States",
    ):
        assert name in page


# --- 5. matched patients ---------------------------------------------------------------------


def test_matched_patients_are_the_users_sites_only_flagged_first(
    anna: User, root: User, matterhorn: Trial, north: Site, south: Site
) -> None:
    low, high, excluded = make_patients(north, "N", 3)
    (other,) = make_patients(south, "S", 1)
    make_match(low, matterhorn, "possible", score=40)
    make_match(high, matterhorn, "possible", score=80, flagged=True)
    make_match(excluded, matterhorn, "ineligible", score=90)
    make_match(other, matterhorn, "possible", score=99, flagged=True)
    workflow.move(workflow.review_for(high, matterhorn), "contacted", actor=anna)

    page = client_for(anna).get(change_url(matterhorn)).content.decode()

    matched = section(page, "matched-patients-heading")
    assert "Matched patients (your sites)" in matched
    assert "3 patients: 1 flagged, 0 eligible, 2 possibly eligible, 1 ineligible." in " ".join(
        matched.split()
    )
    rows = row_texts(matched)
    assert [row.split()[0] for row in rows] == ["N-001", "N-000", "N-002"]
    assert rows[0] == "N-001 (north) ? Possibly eligible ⚑ Flagged 80 12 km Contacted"
    assert rows[2] == "N-002 (north) ✗ Ineligible not flagged 90 12 km New (not reviewed)"
    links = re.findall(r'<a href="([^"]+)">N-\d+</a>', matched)
    assert links == [match_page_url(p.pk, matterhorn.pk) for p in (high, low, excluded)]
    assert "S-000" not in page
    # Each listed patient's view is in the audit trail, and only theirs.
    logged = LogEntry.objects.filter(
        action=LogEntry.Action.ACCESS, additional_data__purpose=MATCHED_PURPOSE
    )
    assert sorted(logged.values_list("object_pk", flat=True)) == sorted(
        str(p.pk) for p in (low, high, excluded)
    )
    assert set(logged.values_list("actor__username", flat=True)) == {"anna"}

    everyone = section(
        client_for(root).get(change_url(matterhorn)).content.decode(), "matched-patients-heading"
    )
    assert [row.split()[0] for row in row_texts(everyone)] == ["S-000", "N-001", "N-000", "N-002"]


def test_a_coordinator_of_another_site_sees_none_of_the_matches(
    matterhorn: Trial, north: Site, south: Site
) -> None:
    (patient,) = make_patients(north, "N", 1)
    make_match(patient, matterhorn, "possible", flagged=True)
    stranger = make_staff("sofia", south)

    page = client_for(stranger).get(change_url(matterhorn)).content.decode()

    assert "No patient of your sites is matched against this trial." in page
    assert "N-000" not in page
    assert not LogEntry.objects.filter(action=LogEntry.Action.ACCESS).exists()


# Measured: 17 to 20 queries for a coordinator (the trial, its criteria twice, sites, versions,
# the matched patients in three, the audit INSERTs) whatever the number of matched patients.
TRIAL_PAGE_MAX_QUERIES = 28


def test_the_matched_patients_query_count_does_not_grow_with_the_patients(
    anna: User, matterhorn: Trial, north: Site, django_assert_max_num_queries: Any
) -> None:
    client = client_for(anna)
    for patient in make_patients(north, "FEW", 3):
        make_match(patient, matterhorn, "possible")
    client.get(change_url(matterhorn))  # warm the content-type cache

    with CaptureQueriesContext(connection) as with_few:
        assert client.get(change_url(matterhorn)).status_code == 200

    many = make_patients(north, "MANY", 297)
    Match.objects.bulk_create(
        [
            Match(
                patient=patient,
                trial=matterhorn,
                verdict="possible",
                score=n % 100,
                flagged=n % 10 == 0,
                engine_version=MATCHER_VERSION,
                patient_facts_at=patient.facts_changed_at,
                trial_inputs_at=matterhorn.matching_inputs_at,
                evaluated_on=timezone.localdate(),
            )
            for n, patient in enumerate(many)
        ]
    )
    with django_assert_max_num_queries(TRIAL_PAGE_MAX_QUERIES) as with_many:
        response = client.get(change_url(matterhorn))

    page = response.content.decode()
    matched = section(page, "matched-patients-heading")
    assert len(row_texts(matched)) == 200
    assert "The first 200 are listed, flagged first" in matched
    assert "⚑ Flagged" in row_texts(matched)[0]  # a flagged one leads

    def reads(queries: CaptureQueriesContext) -> int:
        return sum(not q["sql"].startswith("INSERT") for q in queries.captured_queries)

    assert reads(with_many) == reads(with_few)


def test_an_anonymous_visitor_is_sent_to_the_login(client: Client, matterhorn: Trial) -> None:
    for url in ("/admin/trials/trial/", change_url(matterhorn)):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/")


def test_matched_patients_not_yet_evaluated_on_present_inputs_are_marked(
    anna: User, matterhorn: Trial, north: Site
) -> None:
    (patient,) = make_patients(north, "N", 1)
    make_match(patient, matterhorn, "possible")
    Patient.objects.filter(pk=patient.pk).update(facts_changed_at=timezone.now())

    page = client_for(anna).get(change_url(matterhorn)).content.decode()

    [row] = row_texts(section(page, "matched-patients-heading"))
    assert "out of date" in row
