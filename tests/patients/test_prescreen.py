"""The public pre-screening form: answers mapped to the engine's facts, a visitor walking the
five steps against the recorded real registry records, the results page (private, bound to
the session, expiring), and the request to be contacted (stored only with consent)."""

from __future__ import annotations

import copy
import datetime
import re
from collections.abc import Iterator
from typing import Any

import pytest
from auditlog.models import LogEntry
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from patients import matching
from patients.models import Match, Patient, PrescreenDailyCount, Site, Source
from patients.prescreen import guard, questions, views
from patients.prescreen.questions import UNKNOWN, facts_from_answers, profile_from_answers
from patients.prescreen.referral import REFERENCE_ALPHABET
from tests.fakes.ctgov_server import load_recorded_studies, nct_id_of
from tests.patients.conftest import EXAMPLES
from tests.trials.conftest import CTGOV_DATA
from trials import services
from trials.criteria import refresh_stale_criteria
from trials.eligibility.facts import ComorbidityKind, TreatmentCategory, surgical_candidate
from trials.eligibility.vocabulary import CancerSite, Histology
from trials.models import SyncRun

TODAY = datetime.date(2025, 3, 10)
STEP_COUNT = len(questions.STEPS)

RESECTABLE: dict[str, dict[str, Any]] = {
    "about": {"age": "62", "sex": "male"},
    "cancer": {"site": "stomach", "histology": "adenocarcinoma", "spread": "no"},
    "stage": {
        "stage": "III",
        "t_stage": "T3",
        "n_stage": "N1",
        "surgery": "planned",
        "surgery_type": "total",
    },
    "treatment": {"treatments": ["none"], "activity": "1"},
    "health": {"conditions": ["none"], "country": "US", "postal_code": "10001", "travel": "any"},
}
METASTATIC: dict[str, dict[str, Any]] = {
    **RESECTABLE,
    "cancer": {
        "site": "stomach",
        "histology": "adenocarcinoma",
        "spread": "yes",
        "spread_sites": ["liver"],
    },
    "stage": {
        "stage": "IV",
        "t_stage": UNKNOWN,
        "n_stage": UNKNOWN,
        "surgery": "not_planned",
        "surgery_type": UNKNOWN,
    },
}
ALL_UNKNOWN: dict[str, dict[str, Any]] = {
    "about": {"age_unknown": "on", "sex": UNKNOWN},
    "cancer": {"site": UNKNOWN, "histology": UNKNOWN, "spread": UNKNOWN},
    "stage": {
        "stage": UNKNOWN,
        "t_stage": UNKNOWN,
        "n_stage": UNKNOWN,
        "surgery": UNKNOWN,
        "surgery_type": UNKNOWN,
    },
    "treatment": {"treatments": [UNKNOWN], "activity": UNKNOWN},
    "health": {"conditions": [UNKNOWN], "travel": UNKNOWN},
}
CONTACT = {
    "name": "Alex Example",
    "email": "alex@example.org",
    "phone": "",
    "contact_time": "morning",
    "consent": "on",
}


# --- answers -> facts (pure) -------------------------------------------------------------------


def cleaned(raw: dict[str, dict[str, Any]]) -> questions.Answers:
    """The answers as the session keeps them: each step's form, validated."""
    answers: questions.Answers = {}
    for step in questions.STEPS:
        form = step(raw.get(step.slug, {}))
        assert form.is_valid(), (step.slug, form.errors)
        answers[step.slug] = form.answers()
    return answers


def with_answer(step: str, **values: Any) -> questions.Answers:
    raw = copy.deepcopy(ALL_UNKNOWN)
    raw[step] = {**raw[step], **values}
    if step == "about" and ("age" in values or "birth_year" in values):
        raw["about"].pop("age_unknown")
    return cleaned(raw)


def test_every_unknown_answer_gives_no_fact() -> None:
    facts = facts_from_answers(cleaned(ALL_UNKNOWN), TODAY)
    assert facts.sex is None
    assert facts.birth_date is None
    assert facts.location is None
    assert facts.primary_site is None
    assert facts.histology is None
    assert facts.clinical == {}
    assert facts.metastatic_sites == ()
    assert facts.ecog is None
    assert facts.prior_anticancer_therapy is None
    assert facts.treatments == ()
    assert facts.medications == ()
    assert facts.comorbidities == ()
    assert facts.pregnant is None
    assert facts.surgeries == ()
    assert profile_from_answers(cleaned(ALL_UNKNOWN), external_id="x", today=TODAY).facts == []


@pytest.mark.parametrize(
    ("step", "values", "expected"),
    [
        ("about", {"age": "62"}, {"birth_date": datetime.date(1963, 3, 10)}),
        ("about", {"birth_year": "1960"}, {"birth_date": datetime.date(1960, 7, 1)}),
        ("about", {"sex": "female"}, {"sex": "female"}),
        ("about", {"sex": "other"}, {"sex": "other"}),
        ("cancer", {"site": "stomach"}, {"primary_site": CancerSite.STOMACH, "histology": None}),
        ("cancer", {"site": "gej"}, {"primary_site": CancerSite.GEJ}),
        ("cancer", {"site": "esophagus"}, {"primary_site": CancerSite.ESOPHAGUS}),
        ("cancer", {"site": "other"}, {"primary_site": CancerSite.OTHER}),
        (
            "cancer",
            {"histology": "adenocarcinoma"},
            {"histology": Histology.ADENOCARCINOMA, "primary_site": None},
        ),
        ("cancer", {"histology": "other"}, {"histology": Histology.OTHER}),
        ("cancer", {"spread": "no"}, {"M": "M0", "metastatic_sites": ()}),
        ("cancer", {"spread": "yes"}, {"M": "M1", "metastatic_sites": ()}),
        (
            "cancer",
            {"spread": "yes", "spread_sites": ["peritoneum", "liver", "lung", "other"]},
            {"M": "M1", "metastatic_sites": ("liver", "lung", "other", "peritoneum")},
        ),
        ("stage", {"stage": "II"}, {"stage": "II"}),
        ("stage", {"t_stage": "T4b", "n_stage": "N0"}, {"T": "T4b", "N": "N0"}),
        (
            "stage",
            {"surgery": "planned", "surgery_type": "partial"},
            {"surgeries": [("subtotal_gastrectomy", "planned")]},
        ),
        (
            "stage",
            {"surgery": "done", "surgery_type": "esophagus"},
            {"surgeries": [("esophagectomy", "done")]},
        ),
        # Which operation is not known: not taken for a radical one.
        ("stage", {"surgery": "planned"}, {"surgeries": [("other", "planned")]}),
        ("stage", {"surgery": "not_planned", "surgery_type": "total"}, {"surgeries": []}),
        ("treatment", {"treatments": ["none"]}, {"prior_anticancer_therapy": False}),
        (
            "treatment",
            {"treatments": ["chemotherapy", "radiotherapy"]},
            {
                "prior_anticancer_therapy": True,
                "treatments": [("chemotherapy", "", ""), ("radiotherapy", "", "")],
            },
        ),
        (
            "treatment",
            {"treatments": ["immunotherapy"], "immunotherapy_drug": "nivolumab"},
            {"treatments": [("immunotherapy", "nivolumab", "anti-PD-1")]},
        ),
        (
            "treatment",
            {"treatments": ["immunotherapy"], "immunotherapy_drug": "durvalumab"},
            {"treatments": [("immunotherapy", "durvalumab", "anti-PD-L1")]},
        ),
        ("treatment", {"activity": "0"}, {"ecog": 0}),
        ("treatment", {"activity": "4"}, {"ecog": 4}),
        (
            "health",
            {"conditions": ["autoimmune", "hbv", "steroids"]},
            {
                "comorbidities": {(ComorbidityKind.AUTOIMMUNE, True), (ComorbidityKind.HBV, True)},
                "steroids": True,
                "pregnant": None,
            },
        ),
        (
            "health",
            {"conditions": ["ild", "hcv", "hiv", "organ_transplant", "pregnant"]},
            {
                "comorbidities": {
                    (ComorbidityKind.ILD, True),
                    (ComorbidityKind.HCV, True),
                    (ComorbidityKind.HIV, True),
                    (ComorbidityKind.ORGAN_TRANSPLANT, True),
                },
                "pregnant": True,
            },
        ),
        (
            "health",
            {"conditions": ["none"]},
            {
                "comorbidities": {
                    (kind, False) for kind in questions.COMORBIDITY_CONDITIONS.values()
                },
                "steroids": False,
                "pregnant": False,
            },
        ),
        ("health", {"country": "US", "postal_code": "10001"}, {"location": "postal_code"}),
        ("health", {"country": "France", "city": "Lyon"}, {"location": "city"}),
        ("health", {"country": "GB"}, {"location": "country"}),
    ],
)
def test_each_answer_gives_its_fact(step: str, values: dict[str, Any], expected: dict) -> None:
    facts = facts_from_answers(with_answer(step, **values), TODAY)
    for name, wanted in expected.items():
        if name in ("M", "T", "N", "stage"):
            assert facts.clinical[name].value == wanted
        elif name == "surgeries":
            assert [(s.procedure, s.status) for s in facts.surgeries] == wanted
        elif name == "treatments":
            assert [(t.category.value, t.agent, t.agent_class) for t in facts.treatments] == wanted
        elif name == "comorbidities":
            assert {(c.kind, c.present) for c in facts.comorbidities} == wanted
        elif name == "steroids":
            assert [(m.category, m.active) for m in facts.medications] == [
                ("systemic_steroid", wanted)
            ]
        elif name == "location":
            assert facts.location is not None
            assert facts.location.precision == wanted
        else:
            assert getattr(facts, name) == wanted, name


def test_the_resectable_answers_make_a_surgical_candidate() -> None:
    facts = facts_from_answers(cleaned(RESECTABLE), TODAY)
    assert surgical_candidate(facts).value is True
    assert facts.treatments == ()
    assert TreatmentCategory.CHEMOTHERAPY not in {t.category for t in facts.treatments}
    metastatic = facts_from_answers(cleaned(METASTATIC), TODAY)
    assert surgical_candidate(metastatic).value is False


@pytest.mark.parametrize(
    ("step", "data", "field", "message"),
    [
        ("about", {"sex": "male"}, "age", "Enter your age or year of birth"),
        ("about", {"age": "abc", "sex": "male"}, "age", "whole number"),
        ("about", {"age": "62", "age_unknown": "on", "sex": "male"}, "age", "rather not say"),
        ("about", {"birth_year": "1800", "sex": "male"}, "birth_year", "4 digits"),
        ("about", {"age": "62", "birth_year": "1990", "sex": "male"}, "birth_year", "agree"),
        ("about", {"age": "62", "sex": "robot"}, "sex", "Choose one of the answers"),
        (
            "cancer",
            {"site": "stomach", "histology": UNKNOWN, "spread": "no", "spread_sites": ["liver"]},
            "spread_sites",
            "Untick the places",
        ),
        (
            "treatment",
            {"treatments": ["none", "chemotherapy"], "activity": "1"},
            "treatments",
            "not more than one",
        ),
        (
            "treatment",
            {"treatments": ["chemotherapy"], "immunotherapy_drug": "nivolumab", "activity": "1"},
            "immunotherapy_drug",
            "did not tick",
        ),
        (
            "health",
            {"conditions": ["none"], "travel": "any", "country": "Atlantis"},
            "country",
            "don't recognise",
        ),
        (
            "health",
            {"conditions": ["none"], "travel": "any", "postal_code": "10001"},
            "country",
            "Enter the country",
        ),
        (
            "health",
            {"conditions": ["none"], "travel": "any", "country": "US", "postal_code": "<script>"},
            "postal_code",
            "letters, numbers",
        ),
        (
            "health",
            {"conditions": ["none"], "travel": "any", "city": "x" * 81, "country": "FR"},
            "city",
            "at most 80",
        ),
    ],
)
def test_invalid_answers_are_refused_with_a_way_to_fix_them(
    step: str, data: dict[str, Any], field: str, message: str
) -> None:
    form = next(s for s in questions.STEPS if s.slug == step)(data)
    assert not form.is_valid()
    assert any(message in error for error in form.errors[field]), form.errors


def test_every_text_field_has_a_maximum_length() -> None:
    forms: list[type[questions.StepForm]] = [*questions.STEPS, questions.ContactForm]
    for step in forms:
        for name, field in step.base_fields.items():
            if isinstance(field, questions.forms.CharField):
                assert field.max_length, (step.slug, name)


# Characters that reorder or hide text: bidi embeddings, overrides, isolates and marks, the
# zero-width ones, the byte-order mark, the soft hyphen, controls.
INVISIBLE = (
    [chr(code) for code in range(0x202A, 0x202F)]
    + [chr(code) for code in range(0x2066, 0x206A)]
    + ["\u200e", "\u200f", "\u061c", "\u200b", "\u200c", "\u200d", "\u2060", "\ufeff"]
    + ["\u00ad", "\x00", "\x07", "\x1b", "\x7f", "\x9b"]
)


@pytest.mark.parametrize("character", INVISIBLE, ids=lambda c: f"U+{ord(c):04X}")
def test_invisible_and_bidi_characters_never_reach_a_contact_field(character: str) -> None:
    form = questions.ContactForm(
        {
            "name": f"Alex{character}elpmaxE",
            "email": f"alex@exa{character}mple.org",
            "phone": f"+1 212{character} 555 0100",
            "contact_time": "any",
            "consent": "on",
        }
    )

    assert form.is_valid(), form.errors
    # A zero-width joiner or non-joiner between letters is spelling (Persian, Indic names).
    spelling = character if character in "\u200c\u200d" else ""
    assert form.cleaned_data["name"] == f"Alex{spelling}elpmaxE"
    assert form.cleaned_data["email"] == "alex@example.org"
    assert form.cleaned_data["phone"] == "+1 212 555 0100"


def test_a_right_to_left_override_in_the_place_is_removed_too() -> None:
    form = questions.HealthPlaceForm(
        {
            "conditions": ["none"],
            "travel": "any",
            "country": "\u202eFrance",
            "city": "Ly\u2067on\u2069",
            "postal_code": "69\u200b001",
        }
    )

    assert form.is_valid(), form.errors
    assert (form.cleaned_data["country"], form.cleaned_data["city"]) == ("France", "Lyon")
    assert form.cleaned_data["postal_code"] == "69001"


def test_a_tab_or_line_break_inside_a_name_becomes_a_space() -> None:
    form = questions.ContactForm(
        {"name": "Alex\tExample\u2028", "phone": "+1 212 555 0100", "contact_time": "any"}
    )
    form.is_valid()

    assert form.cleaned_data["name"] == "Alex Example"


def test_visible_letters_of_every_script_are_kept() -> None:
    for name in (
        "Zoë Ødegård",
        "محمد رضا",
        "יעל כהן",
        "Nguyễn Thị Minh",
        "李小龙",
        "O'Brien-Smith",
    ):
        form = questions.ContactForm({"name": name, "phone": "0123 456 789", "contact_time": "any"})
        form.is_valid()
        assert form.cleaned_data.get("name") == name, form.errors


def test_every_text_field_of_the_form_drops_invisible_characters() -> None:
    """One cleaner for all of them: a text field added later cannot forget it."""
    forms: list[type[questions.StepForm]] = [*questions.STEPS, questions.ContactForm]
    checked = 0
    for step in forms:
        for name, field in step.base_fields.items():
            if isinstance(field, questions.forms.CharField):
                assert field.to_python("a\u202eb\u200fc\x00") == "abc", (step.slug, name)
                checked += 1
    assert checked >= 8  # age, year, country, postal code, city, name, email, phone


# --- the walk, against the recorded registry ----------------------------------------------------


@pytest.fixture
def registry(db: None, settings: Any) -> Iterator[int]:
    """The recorded real registry records as a sync leaves them, the open trials of the
    example expectations recruiting, sites located, criteria read."""
    import json

    settings.PRESCREEN_MIN_FILL_SECONDS = 0
    settings.PRESCREEN_RATE_PER_IP = "10000/h"
    settings.PRESCREEN_RATE_PER_SESSION = "10000/h"
    open_trials = json.loads((EXAMPLES / "expectations.json").read_text())["open_trials"]
    studies = copy.deepcopy(load_recorded_studies(CTGOV_DATA / "v2"))
    for study in studies:
        if nct_id_of(study) in open_trials:
            study["protocolSection"].setdefault("statusModule", {})["overallStatus"] = "RECRUITING"
    matching.rules_cache().clear()
    run = SyncRun.objects.create(mode=SyncRun.Mode.FILE, source=str(CTGOV_DATA))
    services.trials_upsert(studies=studies, run=run)
    services.locate_sites()
    refresh_stale_criteria()
    yield len(matching.rules_cache().rules())
    matching.rules_cache().clear()


FLAGGED_FOR_RESECTABLE = {"NCT04592913", "NCT03878472"}  # MATTERHORN, neoadjuvant camrelizumab
OESOPHAGEAL = "NCT03940001"  # for oesophageal squamous-cell carcinoma only
# The open trials for gastric / GEJ cancer only (their conditions name the stomach).
GASTRIC_ONLY = {"NCT03878472", "NCT03006705", "NCT04677673", "NCT02581462", "NCT05052801"}


def form_token(client: Client, url: str) -> str:
    """The form token the page at ``url`` shows (each submission needs its own, taken from
    the page in the same session, as a browser sends it)."""
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return str(response.context["form_token"])


def post_step(client: Client, number: int, data: dict[str, Any]) -> Any:
    url = reverse("prescreen:step", args=[number])
    payload = {guard.FORM_TOKEN_FIELD: form_token(client, url), guard.HONEYPOT_FIELD: "", **data}
    return client.post(url, payload)


def post_contact(client: Client, results_url: str, payload: dict[str, Any]) -> Any:
    """The contact form of the results page, sent with that page's token."""
    token = form_token(client, results_url)
    return client.post(contact_url(results_url), {**payload, guard.FORM_TOKEN_FIELD: token})


def walk(client: Client, raw: dict[str, dict[str, Any]]) -> str:
    """Answer every step; returns the results page's URL."""
    assert client.get(reverse("prescreen:intro")).status_code == 200
    response = None
    for number, step in enumerate(questions.STEPS, 1):
        response = post_step(client, number, raw.get(step.slug, {}))  # (its page shown first)
        assert response.status_code == 302, response.content.decode()[:3000]
    assert response is not None
    return response["Location"]


def words(html: str) -> str:
    return " ".join(html.split())


def listed_trials(html: str) -> list[str]:
    return re.findall(r'<h3 id="trial-(NCT\d{8})"', html)


def flagged_trials(html: str) -> list[str]:
    return re.findall(
        r'<li class="trial trial-flagged">\s*<article aria-labelledby="trial-(NCT\d{8})"', html
    )


def test_a_resectable_profile_sees_the_flagged_preoperative_trials_first(
    client: Client, registry: int
) -> None:
    url = walk(client, RESECTABLE)
    assert re.fullmatch(r"/prescreen/results/[A-Za-z0-9_-]{32}/", url)
    response = client.get(url)
    html = response.content.decode()
    assert response.status_code == 200
    listed, flagged = listed_trials(html), flagged_trials(html)
    assert set(flagged) == FLAGGED_FOR_RESECTABLE
    assert listed[: len(flagged)] == flagged  # the flagged ones on top
    assert len(listed) > len(flagged)
    assert "This is not medical advice." in html
    # Every open trial, the oesophageal one too (its disease criterion rules this cancer of
    # the stomach out: it is among those left out).
    assert f"We checked {registry} trials;" in html
    assert OESOPHAGEAL not in listed
    text = words(html)
    # "... are not listed because they do not fit", or "it does not fit" when one is left out.
    assert "not fit what you told us (for example age, stage or past treatment)" in text
    assert "Why it may fit" in html
    assert "Nearest hospital" in html
    assert "Your doctor can tell you" in html
    assert Patient.objects.count() == 0  # nothing stored by looking
    assert Match.objects.count() == 0


def test_an_oesophageal_cancer_is_checked_against_the_oesophageal_trial(
    client: Client, registry: int
) -> None:
    answers = copy.deepcopy(RESECTABLE)
    answers["cancer"].update(site="esophagus", histology=UNKNOWN)
    html = client.get(walk(client, answers)).content.decode()
    # Sintilimab + chemoradiation before surgery for oesophageal squamous-cell carcinoma.
    listed = listed_trials(html)
    assert OESOPHAGEAL in listed
    assert flagged_trials(html) == []  # the preoperative immunotherapy program is gastric
    # Every open trial is checked; the gastric ones are ruled out on their own disease
    # criteria (gastric / GEJ cancer), so none of them is listed.
    assert f"We checked {registry} trials;" in html
    assert not GASTRIC_ONLY & set(listed)
    # Listed: that trial and two for any site (a basket, a record naming no cancer); MATTERHORN
    # (any gastrointestinal site) wants gastric or GEJ adenocarcinoma.
    assert set(listed) == {OESOPHAGEAL, "NCT06008288", "NCT06171568"}


def test_a_metastatic_profile_sees_no_flagged_trial(client: Client, registry: int) -> None:
    html = client.get(walk(client, METASTATIC)).content.decode()
    assert flagged_trials(html) == []
    assert not FLAGGED_FOR_RESECTABLE & set(listed_trials(html))
    assert "Shown first" not in html


def test_all_dont_knows_still_give_results(client: Client, registry: int) -> None:
    html = client.get(walk(client, ALL_UNKNOWN)).content.decode()
    assert listed_trials(html)
    assert "Tell us where you live to see the nearest hospital" in html


def test_a_short_travel_distance_lists_far_trials_as_out_of_reach(
    client: Client, registry: int
) -> None:
    raw = copy.deepcopy(RESECTABLE)
    raw["health"].update(travel="50", postal_code="96813")  # Honolulu
    html = client.get(walk(client, raw)).content.decode()
    assert "Out of reach: further than you can travel" in html
    assert "listed at the end as out of reach" in words(html)
    far = html[html.index("Out of reach") :]
    assert "NCT04592913" in far  # MATTERHORN: its nearest site is on the mainland
    assert "NCT04592913" not in listed_trials(html)
    assert "You said you can travel up to 50 km (31 miles)." in words(html)


def test_errors_appear_next_to_the_field_and_typed_values_are_kept(
    client: Client, registry: int
) -> None:
    client.get(reverse("prescreen:step", args=[1]))
    response = post_step(client, 1, {"age": "abc", "birth_year": "", "sex": "female"})
    html = response.content.decode()
    assert response.status_code == 200
    assert "<title>Error: Step 1 of 5" in html
    # The summary links to the field; the message sits next to it and describes it.
    assert '<a href="#id_age">Enter an age as a whole number' in html
    assert 'id="error-age"' in html
    age_input = re.search(r"<input[^>]*name=\"age\"[^>]*>", html)
    assert age_input is not None
    assert 'value="abc"' in age_input.group(0)
    assert 'aria-invalid="true"' in age_input.group(0)
    assert "error-age" in age_input.group(0)
    assert 'maxlength="3"' in age_input.group(0)
    assert re.search(r'<input[^>]*name="sex" value="female"[^>]*checked', html)
    # A radio group's error describes its fieldset.
    response = post_step(client, 1, {"age": "50"})
    html = response.content.decode()
    assert re.search(r'<fieldset aria-describedby="why-sex error-sex">', html)
    assert '<a href="#id_sex_0">' in html


def test_steps_must_be_answered_in_order_and_keep_their_answers(
    client: Client, registry: int
) -> None:
    response = client.get(reverse("prescreen:step", args=[4]))
    assert response["Location"] == reverse("prescreen:step", args=[1])
    post_step(client, 1, RESECTABLE["about"])
    html = client.get(reverse("prescreen:step", args=[1])).content.decode()
    assert re.search(r'<input[^>]*name="age"[^>]*value="62"', html)
    assert client.get(reverse("prescreen:step", args=[9])).status_code == 404


def test_a_bot_filling_the_honeypot_is_refused(client: Client, registry: int) -> None:
    payload = {
        **RESECTABLE["about"],
        guard.FORM_TOKEN_FIELD: form_token(client, reverse("prescreen:step", args=[1])),
        guard.HONEYPOT_FIELD: "http://spam.example",
    }
    response = client.post(reverse("prescreen:step", args=[1]), payload)
    assert response.status_code == 200
    assert guard.MESSAGE_HONEYPOT in response.content.decode()
    assert client.get(reverse("prescreen:step", args=[2])).status_code == 302


def test_results_belong_to_the_session_and_expire(
    client: Client, registry: int, settings: Any
) -> None:
    url = walk(client, RESECTABLE)
    assert client.get(url).status_code == 200
    other = Client()
    response = other.get(url)
    assert response.status_code == 404
    assert "these results are no longer available" in response.content.decode().lower()
    assert other.get("/prescreen/results/guessed-token/").status_code == 404
    settings.PRESCREEN_RESULT_TTL_SECONDS = 0
    url = walk(client, RESECTABLE)
    assert client.get(url).status_code == 404


def test_every_prescreen_page_is_private(client: Client, registry: int) -> None:
    url = walk(client, RESECTABLE)
    for page in (
        reverse("prescreen:intro"),
        reverse("prescreen:step", args=[2]),
        url,
        "/prescreen/results/nope/",
    ):
        response = client.get(page)
        assert "no-store" in response["Cache-Control"], page
        assert "noindex" in response["X-Robots-Tag"], page


# --- the referral ------------------------------------------------------------------------------


@pytest.fixture
def north(db: None) -> Site:
    """A site with a coordinator, in New York (the resectable visitor's ZIP code is there)."""
    site = Site.objects.create(
        code="north", name="North Hospital", latitude=40.75, longitude=-73.99
    )
    user = get_user_model().objects.create_user(
        "coord", email="coord@example.org", password="x" * 16
    )
    site.coordinators.add(user)
    Site.objects.create(code="far", name="Far Hospital", latitude=34.05, longitude=-118.24)
    return site


def contact_url(results_url: str) -> str:
    return results_url + "contact/"


def test_a_referral_whose_matching_fails_stores_nothing_and_keeps_the_answers(
    client: Client, registry: int, north: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The referral and its matches land together: a failure writes nothing, sends nothing,
    and the visitor can send again from the same page."""

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise ValueError("math domain error")

    url = walk(client, RESECTABLE)
    with monkeypatch.context() as patched:
        patched.setattr("patients.matching.evaluate_with", broken)
        response = post_contact(client, url, CONTACT)
    assert response.status_code == 503
    html = response.content.decode()
    assert "nothing was saved" in html
    assert 'value="alex@example.org"' in html
    assert not Patient.objects.exists()
    assert not LogEntry.objects.filter(additional_data__purpose="web referral consent").exists()
    assert len(mail.outbox) == 0
    again = post_contact(client, url, CONTACT)
    assert again.status_code == 302
    assert Patient.objects.count() == 1


def test_a_referral_with_consent_creates_the_patient_its_matches_and_an_email(
    client: Client, registry: int, north: Site, settings: Any
) -> None:
    settings.SITE_URL = "https://trials.example.org"
    url = walk(client, RESECTABLE)
    response = post_contact(client, url, CONTACT)
    assert response.status_code == 302
    html = client.get(response["Location"]).content.decode()
    code = re.search(r'<p class="reference-code">WEB-([A-Z0-9]{8})</p>', html)
    assert code is not None
    assert set(code.group(1)) <= set(REFERENCE_ALPHABET)

    patient = Patient.objects.get()
    assert patient.external_id == f"WEB-{code.group(1)}"
    assert patient.source == Source.WEB_FORM
    assert patient.site == north  # the nearest, not the default
    assert (patient.given_name, patient.email, patient.preferred_contact_time) == (
        "Alex Example",
        "alex@example.org",
        "Mornings",
    )
    assert patient.contact_consent_at is not None
    assert patient.surgical_candidate is True
    flagged = set(
        Match.objects.filter(patient=patient, flagged=True).values_list("trial__nct_id", flat=True)
    )
    assert flagged == FLAGGED_FOR_RESECTABLE
    assert LogEntry.objects.filter(
        object_id=patient.pk,
        action=LogEntry.Action.ACCESS,
        additional_data__purpose="web referral consent",
    ).exists()
    assert LogEntry.objects.filter(object_id=patient.pk, action=LogEntry.Action.CREATE).exists()

    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["coord@example.org"]
    text = f"{message.subject}\n{message.body}"
    assert f"WEB-{code.group(1)}" in text
    assert f"https://trials.example.org/admin/patients/patient/{patient.pk}/change/" in text
    # The reference code is random and the link holds the row id: a "62" there is no age.
    scrubbed = text.replace(f"WEB-{code.group(1)}", "WEB-<code>").replace(
        f"/patient/{patient.pk}/", "/patient/<id>/"
    )
    for personal in ("Alex", "alex@example.org", "62", "stomach", "adenocarcinoma", "10001"):
        assert personal not in scrubbed, personal
    # The results now lead to the thank-you page; a second POST writes nothing more.
    assert client.get(url)["Location"].endswith("/thanks/")
    client.post(contact_url(url), CONTACT)
    assert Patient.objects.count() == 1
    assert PrescreenDailyCount.objects.get(day=timezone.localdate()).referred == 1


def test_without_consent_nothing_is_stored(client: Client, registry: int, north: Site) -> None:
    url = walk(client, RESECTABLE)
    payload = dict(CONTACT)
    del payload["consent"]
    response = post_contact(client, url, payload)
    html = response.content.decode()
    assert response.status_code == 200
    assert "tick the box to agree" in html
    assert '<a href="#id_consent">' in html
    assert re.search(r'<input[^>]*name="name"[^>]*value="Alex Example"', html)
    assert Patient.objects.count() == 0
    assert LogEntry.objects.filter(action=LogEntry.Action.ACCESS).count() == 0
    assert mail.outbox == []


def test_a_referral_needs_an_email_or_a_phone(client: Client, registry: int) -> None:
    url = walk(client, RESECTABLE)
    payload = {**CONTACT, "email": "", "phone": ""}
    html = post_contact(client, url, payload).content.decode()
    assert "Give an email address or a phone number" in html
    payload.update(phone="call me maybe")
    html = post_contact(client, url, payload).content.decode()
    assert "6 to 15 digits" in html
    assert Patient.objects.count() == 0


def test_counts_only_or_nothing_at_all(client: Client, registry: int, settings: Any) -> None:
    walk(client, ALL_UNKNOWN)
    counts = PrescreenDailyCount.objects.get()
    assert (counts.started, counts.completed, counts.referred) == (1, 1, 0)
    PrescreenDailyCount.objects.all().delete()
    settings.PRESCREEN_KEEP_ANONYMOUS = "none"
    walk(Client(), ALL_UNKNOWN)
    assert not PrescreenDailyCount.objects.exists()


@pytest.mark.parametrize(
    ("fact", "sentence"),
    [
        ("clinical T stage", "Your doctor can tell you your stage (the T number)."),
        ("absolute neutrophil count", "Your doctor can tell you your recent blood test results."),
        (
            "prior immunotherapy",
            "Your doctor can tell you which treatments you have had, and when.",
        ),
        ("liver metastasis", "Your doctor can tell you where the cancer has spread, if it has."),
        (
            "autoimmune disease: activity and onset",
            "Your doctor can tell you whether you have an autoimmune disease, and whether it is "
            "active now.",
        ),
        (
            "INR (international normalized ratio)",
            "Your doctor can tell you your recent blood test results.",
        ),
        ("alkaline phosphatase", "Your doctor can tell you your recent blood test results."),
        ("urine protein (24-hour)", "Your doctor can tell you your recent urine test results."),
        (
            "left ventricular ejection fraction",
            "Your doctor can tell you the result of your heart scan (echocardiogram).",
        ),
        (
            "myocardial infarction: activity and onset",
            "Your doctor can tell you whether you have had a heart attack, and when.",
        ),
        (
            "heart failure: activity and onset",
            "Your doctor can tell you whether you have heart failure, and whether it is active "
            "now.",
        ),
    ],
)
def test_open_questions_are_said_plainly(fact: str, sentence: str) -> None:
    from patients.prescreen.views import open_question

    assert open_question(fact) == sentence


def test_the_best_trials_come_first_and_the_rest_one_link_away(
    client: Client, registry: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    results_url = walk(client, ALL_UNKNOWN)
    every = listed_trials(client.get(results_url, {"all": "1"}).content.decode())
    assert len(every) > 2
    monkeypatch.setattr(views, "RESULTS_SHOWN", 2)

    html = client.get(results_url).content.decode()

    assert listed_trials(html) == every[:2]
    assert f"Show all {len(every)} trials" in html
    assert f'href="{results_url}?all=1"' in html


def test_a_stored_referral_whose_email_fails_is_still_sent_for_the_visitor(
    client: Client, registry: int, north: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once the referral is stored, the visitor is told it was sent: a failing follow-up (the
    day's count, the coordinators' email) is logged, never shown as "nothing was saved"."""

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionRefusedError("mail server down")

    url = walk(client, RESECTABLE)
    monkeypatch.setattr("patients.prescreen.referral.notify_coordinators", broken)
    monkeypatch.setattr("patients.prescreen.referral.count", broken)
    response = post_contact(client, url, CONTACT)
    assert response.status_code == 302
    assert "thanks" in response["Location"]
    assert Patient.objects.count() == 1
