"""The coordinator dashboard (the admin index) over HTTP: the funnel counted over the user's
sites and drawn as accessible SVG, the flags new since the last sync linked to their match
pages, the last syncs, the trials whose criteria need review; bounded queries, audited views."""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from typing import Any

import pytest
from django.apps import apps
from django.contrib.auth.models import Group, User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from patients.access import COORDINATOR_GROUP
from patients.dashboard import FunnelStage, match_page_path
from patients.matching import MATCHER_VERSION
from patients.models import FlagEvent, Match, Patient, Review, Site
from patients.templatetags.dashboard_svg import funnel_description, funnel_svg
from trials.models import Criterion, SyncRun, Trial

pytestmark = pytest.mark.django_db

LogEntry: Any = apps.get_model("auditlog", "LogEntry")
INDEX = "/admin/"
STAGES = ("patients", "surgical", "flagged", "contacted", "consented", "enrolled")


# --- building the data ----------------------------------------------------------------------------


def make_trial(nct_id: str, *, candidate: bool = True, **fields: Any) -> Trial:
    """A trial; a candidate one is open (so it is matched)."""
    return Trial.objects.create(
        nct_id=nct_id,
        brief_title=f"Study {nct_id}",
        raw={},
        content_hash="x",
        overall_status="RECRUITING" if candidate else "COMPLETED",
        classified_gastric=candidate,
        **fields,
    )


def make_patient(site: Site, mrn: str, **fields: Any) -> Patient:
    return Patient.objects.create(
        site=site, external_id=mrn, given_name="Zelda", family_name="Quixote", **fields
    )


def make_match(
    patient: Patient, trial: Trial, *, flagged: bool, verdict: str = "possible"
) -> Match:
    """A current match (evaluated on the patient's and the trial's present inputs)."""
    now = timezone.now()
    return Match.objects.create(
        patient=patient,
        trial=trial,
        verdict=verdict,
        score=50.0,
        flagged=flagged,
        engine_version=MATCHER_VERSION,
        patient_facts_at=patient.facts_changed_at,
        trial_inputs_at=trial.matching_inputs_at,
        evaluated_at=now,
        evaluated_on=now.date(),
    )


def flag_event(
    patient: Patient,
    trial: Trial,
    kind: str = "new",
    *,
    at: datetime.datetime,
    verdict: str = "possible",
    previous: str = "",
) -> FlagEvent:
    return FlagEvent.objects.create(
        patient=patient, trial=trial, kind=kind, verdict=verdict, previous_verdict=previous, at=at
    )


def finished_sync(at: datetime.datetime, **fields: Any) -> SyncRun:
    fields.setdefault("status", SyncRun.Status.SUCCEEDED)
    return SyncRun.objects.create(
        mode=SyncRun.Mode.INCREMENTAL,
        started_at=at - datetime.timedelta(minutes=5),
        finished_at=at,
        **fields,
    )


def coordinator(username: str, *sites: Site) -> User:
    user = User.objects.create_user(username, email=f"{username}@example.org", is_staff=True)
    user.groups.add(Group.objects.get(name=COORDINATOR_GROUP))
    for site in sites:
        site.coordinators.add(user)
    return user


def page(user: User) -> tuple[str, Any]:
    client = Client()
    client.force_login(user)
    response = client.get(INDEX)
    assert response.status_code == 200
    return response.content.decode(), response.context["dashboard"]


def counts(dashboard: dict[str, Any]) -> dict[str, int]:
    return {stage.key: stage.count for stage in dashboard["funnel"]}


def svg_counts(html: str) -> dict[str, str]:
    """The number written beside each bar of the funnel, by stage."""
    return dict(re.findall(r'class="funnel-count" data-stage="(\w+)">([^<]+)<', html))


@dataclass
class World:
    north: Site
    south: Site
    east: Site
    superuser: User
    nora: User  # coordinates north
    eve: User  # coordinates east, which has no patients
    trial: Trial
    other_trial: Trial
    sync: SyncRun
    patients: dict[str, Patient]


@pytest.fixture
def world() -> World:
    """Two sites with patients at every stage, one without; a sync an hour ago."""
    north = Site.objects.create(code="north", name="North Hospital")
    south = Site.objects.create(code="south", name="South Hospital")
    east = Site.objects.create(code="east", name="East Clinic")
    trial = make_trial("NCT00000001")
    other_trial = make_trial("NCT00000002")
    now = timezone.now()
    sync = finished_sync(now - datetime.timedelta(hours=1))
    patients = {
        mrn: make_patient(site, mrn, surgical_candidate=surgical)
        for mrn, site, surgical in (
            ("N1", north, True),
            ("N2", north, True),
            ("N3", north, False),
            ("N4", north, None),
            ("S1", south, True),
            ("S2", south, False),
        )
    }
    # Flagged: N1 (twice), N2 and S1; N3's flag is on a stale match (facts changed since).
    make_match(patients["N1"], trial, flagged=True, verdict="eligible")
    make_match(patients["N1"], other_trial, flagged=True)
    make_match(patients["N2"], trial, flagged=True)
    make_match(patients["N3"], trial, flagged=True)
    Patient.objects.filter(pk=patients["N3"].pk).update(facts_changed_at=now)
    make_match(patients["N4"], trial, flagged=False)
    make_match(patients["S1"], trial, flagged=True)
    # Follow-up: N1 enrolled in one trial, contacted for the other; N2 consented; S1 contacted;
    # N4 declined (counts in no stage).
    for mrn, trial_of, status in (
        ("N1", trial, "enrolled"),
        ("N1", other_trial, "contacted"),
        ("N2", trial, "consented"),
        ("S1", trial, "contacted"),
        ("N4", trial, "declined"),
    ):
        Review.objects.create(patient=patients[mrn], trial=trial_of, status=status)
    # Flag events: before the sync (not new), after it (new), and for pairs no longer flagged.
    before, after = now - datetime.timedelta(hours=2), now - datetime.timedelta(minutes=30)
    flag_event(patients["N1"], trial, at=before)
    flag_event(patients["N1"], trial, "changed", at=after, verdict="eligible", previous="possible")
    flag_event(patients["N2"], trial, at=after)
    flag_event(patients["N3"], trial, at=after)  # its match is no longer current
    flag_event(patients["N4"], trial, at=after - datetime.timedelta(minutes=1))
    flag_event(patients["N4"], trial, "cleared", at=after, previous="possible")
    flag_event(patients["S1"], trial, at=after)
    superuser = User.objects.create_superuser("root", email="root@example.org")
    return World(
        north=north,
        south=south,
        east=east,
        superuser=superuser,
        nora=coordinator("nora", north),
        eve=coordinator("eve", east),
        trial=trial,
        other_trial=other_trial,
        sync=sync,
        patients=patients,
    )


# --- the funnel -----------------------------------------------------------------------------------


def test_superuser_sees_the_funnel_of_every_site_and_the_app_list(world: World) -> None:
    html, dashboard = page(world.superuser)

    assert counts(dashboard) == {
        "patients": 6,
        "surgical": 3,  # N1, N2, S1 (N4 unknown is not counted)
        "flagged": 3,  # N1, N2, S1 (N3's only flag is on a stale match)
        "contacted": 3,  # N1 (enrolled elsewhere counts too), N2 (consented), S1
        "consented": 2,  # N1 (enrolled), N2
        "enrolled": 1,  # N1
    }
    assert "Figures for all sites." in html
    # The normal admin index is still there below the dashboard.
    assert 'class="app-patients module' in html
    assert 'class="app-trials module' in html
    assert 'id="recent-actions-module"' in html


def test_the_funnel_is_an_accessible_svg_with_its_numbers(world: World) -> None:
    html, _ = page(world.superuser)

    svg = re.search(r"<svg[^>]*class=\"funnel\".*?</svg>", html, re.DOTALL)
    assert svg is not None
    chart = svg.group(0)
    assert 'role="img"' in chart
    assert 'aria-labelledby="dashboard-funnel-chart-title dashboard-funnel-chart-desc"' in chart
    assert '<title id="dashboard-funnel-chart-title">' in chart
    description = re.search(r'<desc id="dashboard-funnel-chart-desc">([^<]+)</desc>', chart)
    assert description is not None
    assert description.group(1) == (
        "Patients: 6. Surgical candidates: 3 (50% of patients). Flagged for a trial: 3 (50% of "
        "patients). Contacted: 3 (50% of patients). Consented: 2 (33% of patients). "
        "Enrolled: 1 (17% of patients)."
    )
    # Every bar has its label and its number written beside it, in text.
    assert svg_counts(chart) == {
        "patients": "6",
        "surgical": "3 (50%)",
        "flagged": "3 (50%)",
        "contacted": "3 (50%)",
        "consented": "2 (33%)",
        "enrolled": "1 (17%)",
    }
    for label in ("Patients", "Surgical candidates", "Flagged for a trial", "Enrolled"):
        assert f'class="funnel-label">{label}</text>' in chart
    # No script and nothing fetched from elsewhere.
    assert "<script" not in chart
    assert "http" not in chart.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_a_coordinator_counts_only_their_sites(world: World) -> None:
    html, dashboard = page(world.nora)

    assert counts(dashboard) == {
        "patients": 4,
        "surgical": 2,
        "flagged": 2,
        "contacted": 2,
        "consented": 2,
        "enrolled": 1,
    }
    assert "Figures for your site: North Hospital." in html
    assert "S1" not in {flag.mrn for flag in dashboard["new_flags"]}


def test_a_coordinator_of_another_site_sees_zeros_and_no_patient(world: World) -> None:
    html, dashboard = page(world.eve)

    assert counts(dashboard) == dict.fromkeys(STAGES, 0)
    assert set(svg_counts(html).values()) == {"0", "0 (0%)"}
    assert dashboard["new_flags"] == []
    assert dashboard["new_flags_total"] == 0
    for mrn in world.patients:
        assert f"<td>{mrn}</td>" not in html
    assert not LogEntry.objects.filter(action=LogEntry.Action.ACCESS).exists()


def test_a_staff_member_of_no_site_is_told_so(world: World) -> None:
    loner = coordinator("loner")

    html, dashboard = page(loner)

    assert counts(dashboard) == dict.fromkeys(STAGES, 0)
    assert "You belong to no site yet" in html


def test_anonymous_visitors_are_sent_to_login() -> None:
    response = Client().get(INDEX)

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


# --- new flags since the last sync ----------------------------------------------------------------


def test_new_flags_since_the_last_sync_link_to_their_match_pages(world: World) -> None:
    html, dashboard = page(world.superuser)

    flags = {flag.mrn: flag for flag in dashboard["new_flags"]}
    # N1's flag predates the sync but changed after it; N3's match is stale; N4's was cleared.
    assert set(flags) == {"N1", "N2", "S1"}
    assert dashboard["new_flags_total"] == 3
    assert dashboard["new_flags_since"] == world.sync.finished_at
    n1 = flags["N1"]
    assert (n1.kind, n1.verdict, n1.previous_verdict) == ("changed", "eligible", "possible")
    assert "Changed (was possibly eligible)" in html
    url = match_page_path(world.patients["N2"].pk, world.trial.pk)
    assert url == f"/admin/patients/match/pair/{world.patients['N2'].pk}/{world.trial.pk}/"
    assert f'<a href="{url}">Open' in html
    assert "NCT00000001" in html
    # MRN only: never the patient's name.
    assert "Zelda" not in html
    assert "Quixote" not in html


def test_a_later_failed_sync_does_not_hide_what_came_since_the_last_good_one(
    world: World,
) -> None:
    finished_sync(timezone.now(), status=SyncRun.Status.FAILED, message="HTTP 503")

    _, dashboard = page(world.superuser)

    assert dashboard["new_flags_since"] == world.sync.finished_at
    assert dashboard["new_flags_total"] == 3


def test_without_any_sync_every_current_flag_is_new(world: World) -> None:
    SyncRun.objects.all().delete()

    html, dashboard = page(world.superuser)

    assert dashboard["new_flags_since"] is None
    assert {flag.mrn for flag in dashboard["new_flags"]} == {"N1", "N2", "S1"}
    assert "New flags since the last sync: 3" in html


def test_the_patients_listed_by_mrn_are_in_the_audit_trail(world: World) -> None:
    page(world.nora)

    entries = LogEntry.objects.filter(action=LogEntry.Action.ACCESS)
    assert {int(entry.object_pk) for entry in entries} == {
        world.patients["N1"].pk,
        world.patients["N2"].pk,
    }
    assert {entry.actor_id for entry in entries} == {world.nora.pk}
    assert {entry.additional_data["purpose"] for entry in entries} == {"dashboard"}


# --- syncs and criteria ---------------------------------------------------------------------------


def test_the_last_five_syncs_are_listed_with_counts_errors_and_links(world: World) -> None:
    start = timezone.now() - datetime.timedelta(days=10)
    old = [finished_sync(start + datetime.timedelta(days=day)) for day in range(5)]
    failed = finished_sync(
        timezone.now(),
        status=SyncRun.Status.FAILED,
        fetched=40,
        created=3,
        failed=7,
        message="ClinicalTrials.gov answered HTTP 503",
        errors=[{"record": f"NCT0000010{n}", "message": f"bad date {n}"} for n in range(7)],
    )

    html, dashboard = page(world.nora)

    listed = [row.run.pk for row in dashboard["sync_runs"]]
    assert listed == [failed.pk, world.sync.pk, old[4].pk, old[3].pk, old[2].pk]
    assert f'href="/admin/trials/syncrun/{failed.pk}/change/"' in html
    assert "ClinicalTrials.gov answered HTTP 503" in html
    assert "<code>NCT00000100</code>: bad date 0" in html
    assert "<code>NCT00000103</code>" not in html  # the first three only, and a link to all
    assert "7 errors in all" in html
    assert "&#10008; Failed" in html or "✘ Failed" in html


def test_trials_whose_criteria_need_review_are_listed_with_counts(world: World) -> None:
    def criterion(trial: Trial, position: int, **fields: Any) -> None:
        fields.setdefault("constraints", [{"kind": "age"}])
        Criterion.objects.create(
            trial=trial,
            position=position,
            kind="inclusion",
            text=f"c{position}",
            category="other",
            **fields,
        )

    curated = make_trial(
        "NCT00000010",
        candidate=False,
        curation_needs_review=True,
        orphaned_corrections=[{"text": "gone"}],
    )
    criterion(curated, 1, needs_review=True, correction_note="checked")
    criterion(curated, 2, needs_review=True, correction_note="checked")
    unread = make_trial("NCT00000011")
    criterion(unread, 1, constraints=[])
    criterion(unread, 2)
    criterion(unread, 3, constraints=[], header=True)  # a heading: not a criterion
    corrected = make_trial("NCT00000012")
    criterion(corrected, 1, constraints=[], corrected_constraints=[{"kind": "age"}])
    closed = make_trial("NCT00000013", candidate=False)
    criterion(closed, 1, constraints=[])  # not matched: its unread criteria wait

    html, dashboard = page(world.nora)

    rows = {row.nct_id: row for row in dashboard["review_trials"]}
    assert list(rows) == ["NCT00000010", "NCT00000011"]
    assert dashboard["review_trials_total"] == 2
    assert (
        rows["NCT00000010"].corrections_to_check,
        rows["NCT00000010"].orphaned_corrections,
        rows["NCT00000010"].curation_needs_review,
    ) == (2, 1, True)
    assert (rows["NCT00000011"].unread, rows["NCT00000011"].criteria) == (1, 2)
    assert f'href="/admin/trials/trial/{curated.pk}/change/"' in html
    assert f'href="/admin/trials/trial/{unread.pk}/change/"' in html
    assert "1 of 2" in html
    assert "text changed since curated" in html


# --- cost -----------------------------------------------------------------------------------------


def populate(site: Site, trial: Trial, count: int, start: int) -> None:
    """``count`` more patients at the site, each flagged since the sync and under review."""
    now = timezone.now()
    for number in range(start, start + count):
        patient = make_patient(site, f"M{number}", surgical_candidate=True)
        make_match(patient, trial, flagged=True)
        flag_event(patient, trial, at=now)
        Review.objects.create(patient=patient, trial=trial, status="contacted")


def queries_for(user: User) -> int:
    client = Client()
    client.force_login(user)
    with CaptureQueriesContext(connection) as context:
        assert client.get(INDEX).status_code == 200
    return len(context.captured_queries)


@pytest.mark.parametrize("who", ["superuser", "nora"])
def test_the_dashboard_does_a_bounded_number_of_queries(
    world: World, who: str, django_assert_max_num_queries: Any
) -> None:
    user = getattr(world, who)
    make_trial("NCT00000099", curation_needs_review=True)
    few = queries_for(user)
    populate(world.north, world.trial, 150, 0)
    populate(world.south, world.other_trial, 150, 150)
    for number in range(30):
        make_trial(f"NCT0000{number + 100:04d}", curation_needs_review=True)

    client = Client()
    client.force_login(user)
    with django_assert_max_num_queries(20):
        html = client.get(INDEX).content.decode()

    assert queries_for(user) == few  # the same whatever the number of rows
    assert "Showing the 20 newest of" in html


# --- the chart itself -----------------------------------------------------------------------------


def test_the_chart_of_an_empty_funnel_divides_by_nothing() -> None:
    stages = [FunnelStage("patients", "Patients", 0), FunnelStage("flagged", "Flagged", 0)]

    chart = funnel_svg(stages)

    assert 'width="0"' in chart
    assert funnel_description(stages) == "Patients: 0. Flagged: 0 (0% of patients)."


def test_a_small_count_beside_a_large_one_still_shows_a_bar() -> None:
    stages = [FunnelStage("patients", "Patients", 10_000), FunnelStage("enrolled", "Enrolled", 1)]

    chart = funnel_svg(stages)

    assert re.search(
        r'width="2" height="\d+" class="funnel-bar" fill="#417690" '
        r'data-stage="enrolled"',
        chart,
    )
    assert ">1 (0%)<" in chart


def test_labels_are_escaped() -> None:
    chart = funnel_svg([FunnelStage("patients", "<b>Patients</b>", 1)])

    assert "&lt;b&gt;Patients&lt;/b&gt;" in chart
    assert "<b>" not in chart
