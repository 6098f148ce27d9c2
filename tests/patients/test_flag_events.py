"""What each evaluation leaves for the coordinators besides the matches: flag events (new,
changed, cleared) for the dashboard and the digest, and the patient's surgical candidacy."""

from io import StringIO
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import CommandError, call_command

from patients import access
from patients.facts import patient_facts
from patients.matching import match_all, match_patients, match_trials
from patients.models import FlagEvent, Match, Patient, Site
from patients.roles import COORDINATOR, SITE_ADMIN, ensure_groups
from tests.patients.test_matching import (  # noqa: F401  (fixtures)
    CAMRELIZUMAB,
    MATTERHORN,
    fresh_rules_cache,
    matched,
    patient,
    registry,
    trial,
)
from trials.criteria import trial_set_classification
from trials.eligibility.facts import surgical_candidate
from trials.models import Trial


def events() -> set[tuple[str, str, str]]:
    return set(FlagEvent.objects.values_list("patient__external_id", "trial__nct_id", "kind"))


@pytest.mark.django_db
@pytest.mark.usefixtures("matched")
def test_the_first_evaluation_records_each_flag_as_new() -> None:
    flagged = Match.objects.filter(flagged=True).values_list(
        "patient__external_id", "trial__nct_id"
    )
    assert {("EX1", MATTERHORN), ("EX1", CAMRELIZUMAB)} <= set(flagged)
    assert events() == {(patient, nct_id, "new") for patient, nct_id in flagged}


@pytest.mark.django_db
@pytest.mark.usefixtures("matched")
def test_evaluating_again_with_nothing_changed_records_nothing() -> None:
    before = FlagEvent.objects.count()

    match_all()
    match_patients([patient("EX1").pk])

    assert FlagEvent.objects.count() == before


@pytest.mark.django_db
@pytest.mark.usefixtures("matched")
def test_a_flag_that_goes_away_is_recorded_as_cleared() -> None:
    trial_set_classification(trial(CAMRELIZUMAB), override=False, note="not preoperative")

    match_trials([trial(CAMRELIZUMAB).pk])

    cleared = FlagEvent.objects.get(kind=FlagEvent.Kind.CLEARED)
    assert (cleared.patient.external_id, cleared.trial.nct_id) == ("EX1", CAMRELIZUMAB)
    assert cleared.previous_verdict in {"possible", "eligible"}


@pytest.mark.django_db
@pytest.mark.usefixtures("matched")
def test_a_trial_leaving_the_candidates_clears_its_flags() -> None:
    Trial.objects.filter(nct_id=MATTERHORN).update(overall_status="COMPLETED")

    match_all()

    assert ("EX1", MATTERHORN, "cleared") in events()


@pytest.mark.django_db
@pytest.mark.usefixtures("matched")
def test_a_changed_verdict_on_a_flagged_pair_is_recorded() -> None:
    flagged = FlagEvent.objects.filter(kind="new").first()
    assert flagged is not None
    other = "eligible" if flagged.verdict == "possible" else "possible"
    # As if the last evaluation had said otherwise: the next one sees the verdict move.
    Match.objects.filter(patient=flagged.patient, trial=flagged.trial).update(verdict=other)

    match_patients([flagged.patient_id])

    changed = FlagEvent.objects.get(kind=FlagEvent.Kind.CHANGED)
    assert (changed.previous_verdict, changed.verdict) == (other, flagged.verdict)


@pytest.mark.django_db
@pytest.mark.usefixtures("matched")
def test_each_evaluation_stores_the_patients_surgical_candidacy() -> None:
    for external_id in ("EX1", "EX2", "EX3"):
        stored = patient(external_id)
        derived = surgical_candidate(patient_facts(stored))
        expected = derived.value if isinstance(derived.value, bool) else None
        assert stored.surgical_candidate is expected, external_id
        assert stored.surgical_candidate_reason == derived.explanation
    assert Patient.objects.get(external_id="EX1").surgical_candidate is True


# --- roles and site membership -------------------------------------------------------------------


@pytest.mark.django_db
def test_the_roles_exist_after_migrate_with_their_permissions() -> None:
    ensure_groups()  # idempotent: also what post_migrate ran
    coordinator = Group.objects.get(name=access.COORDINATOR_GROUP)
    site_admin = Group.objects.get(name=access.SITE_ADMIN_GROUP)

    codenames = set(coordinator.permissions.values_list("codename", flat=True))
    assert {"view_patient", "change_patient", "change_review", "add_reviewnote"} <= codenames
    assert not {"add_patient", "delete_patient"} & codenames
    site_admin_codenames = set(site_admin.permissions.values_list("codename", flat=True))
    assert {"add_patient", "change_site", "add_syncrun"} <= site_admin_codenames
    assert "delete_patient" not in site_admin_codenames  # superusers only
    expected = sum(len(actions) for actions in COORDINATOR.values())
    assert coordinator.permissions.count() == expected
    assert site_admin.permissions.count() == sum(len(a) for a in SITE_ADMIN.values())


@pytest.mark.django_db
def test_create_coordinator_puts_the_account_in_its_role_and_sites(tmp_path: object) -> None:
    north = Site.objects.create(code="north", name="North")
    Site.objects.create(code="south", name="South")

    call_command(
        "create_coordinator",
        "lena",
        site=["north"],
        password_file=tmp_path / "pw",  # type: ignore[operator]
        stdout=StringIO(),
    )

    lena = User.objects.get(username="lena")
    assert list(lena.groups.values_list("name", flat=True)) == [access.COORDINATOR_GROUP]
    assert access.site_ids(lena) == frozenset({north.pk})
    assert (lena.is_staff, lena.is_superuser) == (True, False)


@pytest.mark.django_db
def test_create_coordinator_names_the_known_sites_when_one_is_unknown(tmp_path: object) -> None:
    Site.objects.create(code="north", name="North")

    with pytest.raises(CommandError, match=r"No site with code west \(known: north\)"):
        call_command(
            "create_coordinator",
            "lena",
            site=["west"],
            password_file=tmp_path / "pw",  # type: ignore[operator]
            stdout=StringIO(),
        )
    assert not User.objects.filter(username="lena").exists()


@pytest.mark.django_db
def test_site_ids_superuser_all_coordinator_theirs_inactive_none() -> None:
    north = Site.objects.create(code="north", name="North")
    boss = User.objects.create_superuser("boss", password="x" * 16)
    lena = User.objects.create_user("lena", password="x" * 16, is_staff=True)
    north.coordinators.add(lena)
    gone = User.objects.create_user("gone", password="x" * 16, is_staff=True, is_active=False)
    north.coordinators.add(gone)

    assert access.site_ids(boss) is None
    assert access.site_ids(User.objects.get(pk=lena.pk)) == frozenset({north.pk})
    assert access.site_ids(gone) == frozenset()


@pytest.mark.django_db
@pytest.mark.usefixtures("matched")
def test_a_full_match_run_sends_the_coordinators_their_digest(mailoutbox: list[Any]) -> None:
    site = patient("EX1").site
    lena = User.objects.create_user(
        "lena", email="lena@hospital.example", password="x" * 16, is_staff=True
    )
    site.coordinators.add(lena)
    Match.objects.all().delete()  # so that every flag is new again

    output = StringIO()
    call_command("match", "--no-progress", stdout=output)

    assert "Flag digests sent: 1 email(s)." in output.getvalue()
    (email,) = mailoutbox
    assert email.to == ["lena@hospital.example"]
    assert MATTERHORN in email.body
    assert FlagEvent.objects.filter(notified_at__isnull=True).count() == 0
