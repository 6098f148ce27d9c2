"""The coordinators' flag digests: one email per coordinator per run with only their sites'
flag changes, only the patient fields the settings allow, sent once, audited, sent after the
nightly re-match (Celery) and after the in-process one of ``sync_trials``."""

from __future__ import annotations

import datetime
import io
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps
from django.contrib.auth.models import Group, User
from django.core import mail
from django.core.mail import EmailMessage
from django.core.mail.backends.base import BaseEmailBackend
from django.core.management import CommandError, call_command
from django.utils import timezone

from patients import matching
from patients.access import COORDINATOR_GROUP
from patients.models import FlagEvent, Patient, Site
from patients.notify import net_changes, send_flag_digests
from patients.tasks import send_flag_digests_task
from tests.fakes.ctgov_server import FakeCtgovServer
from tests.patients.conftest import EXAMPLES
from tests.patients.test_matching import CAMRELIZUMAB, MATTERHORN, recorded_registry
from tests.test_settings import load_settings
from trials.models import Trial

pytestmark = pytest.mark.django_db

LogEntry: Any = apps.get_model("auditlog", "LogEntry")


class RefusingBackend(BaseEmailBackend):
    """An SMTP server that refuses everything."""

    def send_messages(self, email_messages: Any) -> int:
        raise ConnectionRefusedError("connection refused")


# --- building the data ----------------------------------------------------------------------------


def make_trial(nct_id: str, title: str) -> Trial:
    return Trial.objects.create(nct_id=nct_id, brief_title=title, raw={}, content_hash="x")


def make_patient(site: Site, mrn: str) -> Patient:
    return Patient.objects.create(
        site=site,
        external_id=mrn,
        given_name="Zelda",
        family_name=f"Quixote-{mrn}",
        birth_date=datetime.date(1960, 1, 1),
    )


def member(username: str, *sites: Site, email: str | None = None, **fields: Any) -> User:
    user = User.objects.create_user(
        username,
        email=f"{username}@example.org" if email is None else email,
        is_staff=fields.pop("is_staff", True),
        **fields,
    )
    user.groups.add(Group.objects.get(name=COORDINATOR_GROUP))
    for site in sites:
        site.coordinators.add(user)
    return user


def event(patient: Patient, trial: Trial, kind: str = "new", **fields: Any) -> FlagEvent:
    fields.setdefault("verdict", "" if kind == "cleared" else "possible")
    return FlagEvent.objects.create(patient=patient, trial=trial, kind=kind, **fields)


def sent_to(address: str) -> list[EmailMessage]:
    return [message for message in mail.outbox if message.to == [address]]


def html_of(message: EmailMessage) -> str:
    alternatives = getattr(message, "alternatives", [])
    assert len(alternatives) == 1
    content, mimetype = alternatives[0]
    assert mimetype == "text/html"
    return str(content)


@pytest.fixture
def sites() -> dict[str, Site]:
    return {
        code: Site.objects.create(code=code, name=f"{code.title()} Hospital")
        for code in ("north", "south", "west")
    }


@pytest.fixture
def trials() -> dict[str, Trial]:
    return {
        "a": make_trial("NCT00000001", "Perioperative anti-PD-1 in gastric cancer"),
        "b": make_trial("NCT00000002", "Neoadjuvant chemoimmunotherapy for GEJ cancer"),
    }


@pytest.fixture
def patients(sites: dict[str, Site]) -> dict[str, Patient]:
    return {
        mrn: make_patient(sites[code], mrn)
        for mrn, code in (("N1", "north"), ("N2", "north"), ("S1", "south"), ("W1", "west"))
    }


@pytest.fixture
def flags(patients: dict[str, Patient], trials: dict[str, Trial]) -> None:
    """A new flag at each site, a changed one and a cleared one at north."""
    event(patients["N1"], trials["a"], verdict="eligible")
    event(patients["N1"], trials["b"], "changed", verdict="eligible", previous_verdict="possible")
    event(patients["N2"], trials["a"], "cleared", previous_verdict="possible")
    event(patients["S1"], trials["a"])
    event(patients["W1"], trials["b"])


# --- who gets what --------------------------------------------------------------------------------


@pytest.mark.usefixtures("flags")
def test_each_coordinator_gets_one_email_with_only_their_sites_flags(
    sites: dict[str, Site],
) -> None:
    nora = member("nora", sites["north"])
    sam = member("sam", sites["south"])
    both = member("both", sites["north"], sites["south"])

    assert send_flag_digests() == 3

    assert sorted(message.to[0] for message in mail.outbox) == [
        "both@example.org",
        "nora@example.org",
        "sam@example.org",
    ]
    (to_nora,) = sent_to(nora.email)
    assert to_nora.subject == "Trial flags at your sites: 1 new, 1 changed, 1 cleared"
    assert {"MRN N1", "MRN N2"} <= set(re.findall(r"MRN \w+", str(to_nora.body)))
    assert "S1" not in to_nora.body
    assert "W1" not in to_nora.body
    (to_sam,) = sent_to(sam.email)
    assert set(re.findall(r"MRN \w+", str(to_sam.body))) == {"MRN S1"}
    assert to_sam.subject == "Trial flags at your sites: 1 new, 0 changed, 0 cleared"
    (to_both,) = sent_to(both.email)
    assert set(re.findall(r"MRN \w+", str(to_both.body))) == {"MRN N1", "MRN N2", "MRN S1"}
    assert to_both.body.index("North Hospital") < to_both.body.index("South Hospital")


@pytest.mark.usefixtures("flags")
def test_the_email_says_what_happened_with_a_link_to_each_match_page(
    sites: dict[str, Site], patients: dict[str, Patient], trials: dict[str, Trial], settings: Any
) -> None:
    settings.SITE_URL = "https://trials.hospital.example"
    member("nora", sites["north"])

    send_flag_digests()

    (message,) = mail.outbox
    body = message.body
    assert "New flag: eligible" in body
    assert "Flag changed: possibly eligible -> eligible" in body
    assert "Flag cleared (was possibly eligible)" in body
    assert "NCT00000001: Perioperative anti-PD-1 in gastric cancer" in body
    n1, a = patients["N1"].pk, trials["a"].pk
    link = f"https://trials.hospital.example/admin/patients/match/pair/{n1}/{a}/"
    assert link in body
    html = html_of(message)
    assert f'<a href="{link}">' in html
    assert "Flag changed: possibly eligible -&gt; eligible" in html
    assert "<caption" in html
    assert "North Hospital" in html
    # New flags first, then changed, then cleared.
    assert body.index("New flag") < body.index("Flag changed") < body.index("Flag cleared")


@pytest.mark.usefixtures("flags")
def test_only_the_mrn_by_default(sites: dict[str, Site]) -> None:
    member("nora", sites["north"])

    send_flag_digests()

    (message,) = mail.outbox
    for text in (str(message.body), html_of(message), str(message.subject)):
        assert "Zelda" not in text
        assert "Quixote" not in text
        assert "1960" not in text
        assert re.search(r"\bage\b", text) is None
    assert "MRN N1" in message.body


@pytest.mark.usefixtures("flags")
def test_name_and_age_only_when_the_settings_allow_them(
    sites: dict[str, Site], settings: Any
) -> None:
    member("nora", sites["north"])
    settings.NOTIFY_PHI_FIELDS = ["mrn", "name", "age"]

    send_flag_digests()

    (message,) = mail.outbox
    today = timezone.localdate()
    age = today.year - 1960 - ((today.month, today.day) < (1, 1))
    assert f"MRN N1, Zelda Quixote-N1, age {age}" in message.body
    assert f"MRN N1, Zelda Quixote-N1, age {age}" in html_of(message)


@pytest.mark.usefixtures("flags")
def test_the_name_without_the_mrn_when_the_settings_say_so(
    sites: dict[str, Site], settings: Any
) -> None:
    member("nora", sites["north"])
    settings.NOTIFY_PHI_FIELDS = ["name", "address"]  # an unknown field never shows anything

    send_flag_digests()

    (message,) = mail.outbox
    assert "Zelda Quixote-N1" in message.body
    assert "MRN" not in message.body
    assert "1960" not in message.body


def test_the_settings_refuse_a_patient_field_they_do_not_know(tmp_path: Path) -> None:
    completed = load_settings(tmp_path, DEBUG="1", NOTIFY_PHI_FIELDS="mrn,address,name")

    assert completed.returncode != 0
    assert "NOTIFY_PHI_FIELDS may name only mrn, name and age, got address" in completed.stderr


@pytest.mark.usefixtures("flags")
def test_who_gets_no_email(sites: dict[str, Site]) -> None:
    member("noemail", sites["north"], email="")
    member("gone", sites["north"], is_active=False)
    member("notstaff", sites["north"], is_staff=False)
    User.objects.create_superuser("root", email="root@example.org")  # belongs to no site
    member("elsewhere", sites["west"])

    assert send_flag_digests() == 1

    assert [message.to for message in mail.outbox] == [["elsewhere@example.org"]]


@pytest.mark.usefixtures("flags")
def test_a_superuser_who_belongs_to_a_site_gets_its_digest(sites: dict[str, Site]) -> None:
    root = User.objects.create_superuser("root", email="root@example.org")
    sites["south"].coordinators.add(root)

    send_flag_digests()

    (message,) = mail.outbox
    assert message.to == ["root@example.org"]
    assert set(re.findall(r"MRN \w+", str(message.body))) == {"MRN S1"}


# --- once only ------------------------------------------------------------------------------------


@pytest.mark.usefixtures("flags")
def test_a_second_run_sends_nothing(
    sites: dict[str, Site], patients: dict[str, Patient], trials: dict[str, Trial]
) -> None:
    member("nora", sites["north"])
    send_flag_digests()
    assert not FlagEvent.objects.filter(notified_at__isnull=True).exists()
    mail.outbox.clear()

    assert send_flag_digests() == 0
    assert mail.outbox == []

    # A later flag goes out on its own in the next run.
    event(patients["N2"], trials["b"])
    assert send_flag_digests() == 1
    (message,) = mail.outbox
    assert set(re.findall(r"MRN \w+", str(message.body))) == {"MRN N2"}
    assert message.subject == "Trial flags at your sites: 1 new, 0 changed, 0 cleared"


@pytest.mark.usefixtures("flags")
def test_events_of_sites_nobody_can_be_told_about_are_stamped_and_counted(
    sites: dict[str, Site], caplog: pytest.LogCaptureFixture
) -> None:
    member("nora", sites["north"])  # south and west have no coordinator

    with caplog.at_level(logging.INFO, logger="patients.notify"):
        assert send_flag_digests() == 1

    assert not FlagEvent.objects.filter(notified_at__isnull=True).exists()
    assert (
        "Flag digests: 2 flag change(s) at 2 site(s) without a coordinator with an email "
        "address were not sent (marked as notified)"
    ) in caplog.messages
    assert "Flag digests: 1 email(s) sent for 3 flag change(s) from 5 event(s)" in caplog.messages
    # Counts only: no MRN, name, NCT id or address in the log.
    logged = " ".join(caplog.messages)
    for text in ("N1", "S1", "W1", "Zelda", "NCT0", "@"):
        assert text not in logged


@pytest.mark.usefixtures("flags")
def test_a_refused_email_leaves_the_events_for_the_next_run(
    sites: dict[str, Site], settings: Any
) -> None:
    member("nora", sites["north"])
    settings.EMAIL_BACKEND = f"{__name__}.RefusingBackend"

    with pytest.raises(CommandError, match=r"could not be sent .*ConnectionRefusedError"):
        call_command("send_flag_digests", stdout=io.StringIO())

    assert not FlagEvent.objects.filter(notified_at__isnull=False).exists()
    assert not LogEntry.objects.filter(action=LogEntry.Action.ACCESS).exists()
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert send_flag_digests() == 1


def test_a_flag_raised_and_cleared_before_the_digest_is_not_sent(
    sites: dict[str, Site], patients: dict[str, Patient], trials: dict[str, Trial]
) -> None:
    member("nora", sites["north"])
    now = timezone.now()
    event(patients["N1"], trials["a"], at=now - datetime.timedelta(hours=2))
    event(
        patients["N1"],
        trials["a"],
        "cleared",
        previous_verdict="possible",
        at=now - datetime.timedelta(hours=1),
    )
    # Changed and changed back: nothing to tell either.
    event(
        patients["N2"],
        trials["a"],
        "changed",
        verdict="eligible",
        previous_verdict="possible",
        at=now - datetime.timedelta(hours=2),
    )
    event(
        patients["N2"],
        trials["a"],
        "changed",
        verdict="possible",
        previous_verdict="eligible",
        at=now - datetime.timedelta(hours=1),
    )

    assert send_flag_digests() == 0

    assert mail.outbox == []
    assert not FlagEvent.objects.filter(notified_at__isnull=True).exists()


def test_net_changes_reduce_each_pair_to_what_changed_over_the_period(
    patients: dict[str, Patient], trials: dict[str, Trial]
) -> None:
    n1, a = patients["N1"], trials["a"]
    now = timezone.now()

    def events(*specs: tuple[str, str, str]) -> list[FlagEvent]:
        return [
            FlagEvent(
                patient=n1,
                trial=a,
                kind=kind,
                verdict=verdict,
                previous_verdict=previous,
                at=now + datetime.timedelta(minutes=index),
            )
            for index, (kind, verdict, previous) in enumerate(specs)
        ]

    def summary(*specs: tuple[str, str, str]) -> list[tuple[str, str, str]]:
        return [(c.kind, c.verdict, c.previous_verdict) for c in net_changes(events(*specs))]

    assert summary(("new", "possible", ""), ("changed", "eligible", "possible")) == [
        ("new", "eligible", "")
    ]
    assert summary(("changed", "eligible", "possible"), ("cleared", "", "eligible")) == [
        ("cleared", "", "possible")
    ]
    assert summary(("cleared", "", "eligible"), ("new", "possible", "")) == [
        ("changed", "possible", "eligible")
    ]
    assert summary(("cleared", "", "eligible"), ("new", "eligible", "")) == []
    assert summary(("new", "possible", ""), ("cleared", "", "possible")) == []


# --- audit ----------------------------------------------------------------------------------------


@pytest.mark.usefixtures("flags")
def test_each_recipient_and_the_patients_sent_to_them_are_in_the_audit_trail(
    sites: dict[str, Site], patients: dict[str, Patient]
) -> None:
    nora = member("nora", sites["north"])
    sam = member("sam", sites["south"])

    send_flag_digests()

    entries = LogEntry.objects.filter(action=LogEntry.Action.ACCESS)
    assert sorted((entry.actor_id, int(entry.object_pk)) for entry in entries) == sorted(
        [
            (nora.pk, patients["N1"].pk),
            (nora.pk, patients["N2"].pk),
            (sam.pk, patients["S1"].pk),
        ]
    )
    assert {entry.additional_data["purpose"] for entry in entries} == {"email digest"}


# --- how it is started ----------------------------------------------------------------------------


@pytest.mark.usefixtures("flags")
def test_the_celery_task_sends_the_digests(sites: dict[str, Site]) -> None:
    member("nora", sites["north"])

    assert send_flag_digests_task.apply().get() == 1

    assert len(mail.outbox) == 1
    assert send_flag_digests_task() == 0  # called in-process, as the chord's callback runs


@pytest.mark.usefixtures("flags")
def test_the_command_sends_the_digests(sites: dict[str, Site]) -> None:
    member("nora", sites["north"])
    out = io.StringIO()

    call_command("send_flag_digests", stdout=out)

    assert out.getvalue() == "1 flag digest email(s) sent.\n"
    assert len(mail.outbox) == 1


@pytest.fixture
def registry(settings: Any) -> Iterator[FakeCtgovServer]:
    """The fake ClinicalTrials.gov serving the recorded registry (its gastric trials open)."""
    matching.rules_cache().clear()
    with FakeCtgovServer(recorded_registry()) as server:
        settings.CTGOV_BASE_URL = server.base_url
        settings.CTGOV_SYNC_QUERY = ""
        settings.CTGOV_PAGE_SIZE = 20
        settings.CTGOV_MIN_REQUEST_INTERVAL = 0
        settings.CTGOV_MAX_ATTEMPTS = 3
        yield server
    matching.rules_cache().clear()


def test_sync_trials_sends_the_digest_of_the_flags_its_rematch_raised(
    registry: FakeCtgovServer,
) -> None:
    call_command(
        "import_patients",
        "--no-progress",
        *(str(EXAMPLES / f"{name}.json") for name in ("EX1", "EX2", "EX3")),
        stdout=io.StringIO(),
    )
    nora = member("nora", Site.objects.get(code="default"))
    assert not FlagEvent.objects.exists()  # no trials yet: nothing matched
    out = io.StringIO()

    call_command("sync_trials", "--full", "--no-progress", stdout=out, stderr=io.StringIO())

    assert "Flag digests sent: 1 email(s)." in out.getvalue()
    (message,) = mail.outbox
    assert message.to == [nora.email]
    assert re.search(rf"MRN EX1 \| {MATTERHORN}: ", str(message.body))
    assert re.search(rf"MRN EX1 \| {CAMRELIZUMAB}: ", str(message.body))
    assert not FlagEvent.objects.filter(notified_at__isnull=True).exists()

    # The next sync changes nothing: no email.
    mail.outbox.clear()
    again = io.StringIO()
    call_command("sync_trials", "--full", "--no-progress", stdout=again, stderr=io.StringIO())
    assert "Flag digests" not in again.getvalue()
    assert mail.outbox == []


def test_sync_trials_still_succeeds_when_the_digest_cannot_be_sent(
    registry: FakeCtgovServer, settings: Any
) -> None:
    call_command(
        "import_patients", "--no-progress", str(EXAMPLES / "EX1.json"), stdout=io.StringIO()
    )
    member("nora", Site.objects.get(code="default"))
    settings.EMAIL_BACKEND = f"{__name__}.RefusingBackend"
    out, err = io.StringIO(), io.StringIO()

    call_command("sync_trials", "--full", "--no-progress", stdout=out, stderr=err)

    assert "full succeeded" in out.getvalue()
    assert "Flag digests not sent (ConnectionRefusedError: connection refused)" in err.getvalue()
    assert FlagEvent.objects.filter(notified_at__isnull=True).count() == 2  # for the next run
