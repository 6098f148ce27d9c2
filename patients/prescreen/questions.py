"""The pre-screening questions: the steps, their forms, and what the answers mean.

Every question has an "I don't know" answer, which becomes an absent fact (unknown to the
engine), never a guess. Answers are kept as plain JSON-safe data (``Answers``: step slug ->
the step's cleaned data) in the visitor's session; ``profile_from_answers`` turns them into
the ``ProfileData`` a referral writes and ``facts_from_profile`` into the engine's
``PatientFacts``, so what the visitor sees and what the coordinator later sees are the same
facts. Both are pure: no database.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from typing import Any, ClassVar

from django import forms
from django.forms import BoundField
from django.utils import timezone

from config.input_limits import visible_text
from patients.profile import FactData, ProfileData
from trials.eligibility import facts as engine
from trials.eligibility.geo import Place, locate, normalize_country
from trials.eligibility.vocabulary import CancerSite, Histology

Answers = dict[str, dict[str, Any]]
UNKNOWN = "unknown"
DONT_KNOW = "I don't know"

# --- Choices (value, plain words) ------------------------------------------------------------

SEX_CHOICES = [
    ("female", "Female"),
    ("male", "Male"),
    ("other", "Another answer"),
    (UNKNOWN, "I'd rather not say"),
]
SITE_CHOICES = [
    ("stomach", "In the stomach"),
    ("gej", "Where the stomach meets the food pipe (the gastroesophageal junction)"),
    ("esophagus", "In the food pipe (the oesophagus)"),
    ("other", "Somewhere else"),
    (UNKNOWN, "I'm not sure"),
]
# The answers that name a primary site (``CancerSite`` values).
_SITES = tuple(value for value, _ in SITE_CHOICES if value != UNKNOWN)
HISTOLOGY_CHOICES = [
    ("adenocarcinoma", "Adenocarcinoma (the most common type)"),
    ("other", "Another type"),
    (UNKNOWN, DONT_KNOW),
]
SPREAD_CHOICES = [
    ("no", "No, it has not spread to other organs"),
    ("yes", "Yes, it has spread"),
    (UNKNOWN, DONT_KNOW),
]
SPREAD_SITE_CHOICES = [
    ("liver", "Liver"),
    ("peritoneum", "The lining of the belly (peritoneum)"),
    ("lung", "Lungs"),
    ("other", "Somewhere else"),
]
STAGE_CHOICES = [
    ("I", "Stage 1 (I)"),
    ("II", "Stage 2 (II)"),
    ("III", "Stage 3 (III)"),
    ("IV", "Stage 4 (IV)"),
    (UNKNOWN, DONT_KNOW),
]
T_CHOICES = [
    (UNKNOWN, DONT_KNOW),
    ("T1", "T1"),
    ("T2", "T2"),
    ("T3", "T3"),
    ("T4a", "T4a"),
    ("T4b", "T4b"),
]
N_CHOICES = [(UNKNOWN, DONT_KNOW), ("N0", "N0"), ("N1", "N1"), ("N2", "N2"), ("N3", "N3")]
SURGERY_CHOICES = [
    ("planned", "Yes, an operation to remove the cancer is planned"),
    ("done", "I have already had this operation"),
    ("not_planned", "No operation is planned"),
    (UNKNOWN, DONT_KNOW),
]
SURGERY_TYPE_CHOICES = [
    (UNKNOWN, DONT_KNOW),
    ("total", "Removing the whole stomach"),
    ("partial", "Removing part of the stomach"),
    ("esophagus", "Removing part of the food pipe and the top of the stomach"),
]
SURGERY_PROCEDURES = {
    "total": "total_gastrectomy",
    "partial": "subtotal_gastrectomy",
    "esophagus": "esophagectomy",
    # Which operation is not known: not counted as a radical one (no guess).
    UNKNOWN: "other",
}
TREATMENT_CHOICES = [
    ("chemotherapy", "Chemotherapy"),
    ("radiotherapy", "Radiotherapy (radiation)"),
    ("immunotherapy", "Immunotherapy"),
    ("none", "None yet"),
    (UNKNOWN, DONT_KNOW),
]
# Immunotherapy medicines people are told the name of, and their class.
IMMUNOTHERAPY_DRUGS = {
    "nivolumab": ("Nivolumab (Opdivo)", "anti-PD-1"),
    "pembrolizumab": ("Pembrolizumab (Keytruda)", "anti-PD-1"),
    "tislelizumab": ("Tislelizumab (Tevimbra)", "anti-PD-1"),
    "sintilimab": ("Sintilimab", "anti-PD-1"),
    "camrelizumab": ("Camrelizumab", "anti-PD-1"),
    "toripalimab": ("Toripalimab", "anti-PD-1"),
    "durvalumab": ("Durvalumab (Imfinzi)", "anti-PD-L1"),
    "atezolizumab": ("Atezolizumab (Tecentriq)", "anti-PD-L1"),
    "ipilimumab": ("Ipilimumab (Yervoy)", "anti-CTLA-4"),
}
IMMUNOTHERAPY_CHOICES = [
    (UNKNOWN, "I don't know / not listed"),
    *((name, label) for name, (label, _) in IMMUNOTHERAPY_DRUGS.items()),
]
# Everyday words for ECOG 0-4 (DOMAIN.md).
ACTIVITY_CHOICES = [
    ("0", "I can do everything I did before I was ill, without limits."),
    (
        "1",
        "I can't do heavy physical work, but I walk around and can do light work, "
        "like housework or office work.",
    ),
    (
        "2",
        "I can walk and look after myself, but I can't work. I am up and about for more "
        "than half of the day.",
    ),
    (
        "3",
        "I can only partly look after myself. I spend more than half of the day in bed or "
        "in a chair.",
    ),
    ("4", "I can't look after myself at all. I stay in bed or in a chair all day."),
    (UNKNOWN, DONT_KNOW),
]
CONDITION_CHOICES = [
    ("autoimmune", "An autoimmune disease (like lupus, rheumatoid arthritis or Crohn's)"),
    ("ild", "Inflammation or scarring of the lungs (pneumonitis, interstitial lung disease)"),
    ("hbv", "Hepatitis B"),
    ("hcv", "Hepatitis C"),
    ("hiv", "HIV"),
    ("organ_transplant", "An organ transplant (like a kidney or liver)"),
    ("steroids", "I take steroid medicine every day (like prednisone)"),
    ("pregnant", "I am pregnant"),
    ("none", "None of these"),
    (UNKNOWN, DONT_KNOW),
]
COMORBIDITY_CONDITIONS = {
    "autoimmune": engine.ComorbidityKind.AUTOIMMUNE,
    "ild": engine.ComorbidityKind.ILD,
    "hbv": engine.ComorbidityKind.HBV,
    "hcv": engine.ComorbidityKind.HCV,
    "hiv": engine.ComorbidityKind.HIV,
    "organ_transplant": engine.ComorbidityKind.ORGAN_TRANSPLANT,
}
TRAVEL_CHOICES = [
    ("50", "Up to 50 km (31 miles)"),
    ("100", "Up to 100 km (62 miles)"),
    ("250", "Up to 250 km (155 miles)"),
    ("500", "Up to 500 km (311 miles)"),
    ("any", "Any distance"),
    (UNKNOWN, DONT_KNOW),
]

MAX_AGE = 120
_POSTAL_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 \-]*$")
_DIGITS = re.compile(r"^[0-9]+$")
_CITY = re.compile(r"^[^\x00-\x1f<>{}\[\]\\]*$")


# --- Forms -----------------------------------------------------------------------------------


@dataclass
class Question:
    """What the page shows as one question: a fieldset with a legend when it has several
    inputs (radios, checkboxes, a group of fields), else a label; its reason; its errors."""

    key: str
    legend: str
    why: str
    fields: list[BoundField]
    fieldset: bool
    described_by: str


MULTIPLE_INPUTS = (forms.RadioSelect, forms.CheckboxSelectMultiple)


class StepForm(forms.Form):
    """A step: its questions, each with a one-line reason (``why``)."""

    slug = ""
    title = ""
    intro = ""
    why: ClassVar[dict[str, str]] = {}
    # Questions of several fields: key -> (legend, field names).
    groups: ClassVar[dict[str, tuple[str, tuple[str, ...]]]] = {}

    def answers(self) -> dict[str, Any]:
        """The cleaned data, JSON-safe (what the session keeps)."""
        return {name: self.cleaned_data.get(name) for name in self.fields}

    def anchor(self, name: str) -> str:
        """The id of the field's first input (where the error summary links to)."""
        field_id = self[name].auto_id
        multiple = isinstance(self.fields[name].widget, MULTIPLE_INPUTS)
        return f"{field_id}_0" if multiple else field_id

    def error_summary(self) -> list[tuple[str, str]]:
        """(anchor id, message) for every field error, in the order of the page."""
        if not self.is_bound:
            return []
        return [
            (self.anchor(name), str(message))
            for name in self.fields
            for message in self.errors.get(name, ())
        ]

    def questions(self) -> list[Question]:
        """The questions in page order, their inputs described by the reason and errors."""
        key_of = {name: key for key, (_, names) in self.groups.items() for name in names}
        bound_errors = self.errors if self.is_bound else {}
        listed: list[Question] = []
        for name in self.fields:
            key = key_of.get(name, name)
            if any(question.key == key for question in listed):
                continue
            legend, names = self.groups.get(key, (str(self.fields[name].label), (name,)))
            why_id = f"why-{key}" if self.why.get(key) else ""
            error_ids = [f"error-{n}" for n in names if n in bound_errors]
            for field_name in names:
                widget = self.fields[field_name].widget
                if isinstance(widget, MULTIPLE_INPUTS):
                    continue
                own = [why_id] if why_id else []
                if field_name in bound_errors:
                    own.append(f"error-{field_name}")
                    widget.attrs["aria-invalid"] = "true"
                if own:
                    widget.attrs["aria-describedby"] = " ".join(own)
            fieldset = len(names) > 1 or isinstance(self.fields[name].widget, MULTIPLE_INPUTS)
            listed.append(
                Question(
                    key=key,
                    legend=legend,
                    why=self.why.get(key, ""),
                    fields=[self[n] for n in names],
                    fieldset=fieldset,
                    described_by=" ".join([why_id, *error_ids]).strip() if fieldset else "",
                )
            )
        return listed


def _radio(choices: list[tuple[str, str]], label: str, required_message: str) -> forms.Field:
    return forms.ChoiceField(
        label=label,
        choices=choices,
        widget=forms.RadioSelect,
        error_messages={
            "required": required_message,
            "invalid_choice": "Choose one of the answers shown.",
        },
    )


def _checkboxes(
    choices: list[tuple[str, str]], label: str, required_message: str = ""
) -> forms.Field:
    return forms.MultipleChoiceField(
        label=label,
        choices=choices,
        widget=forms.CheckboxSelectMultiple,
        required=bool(required_message),
        error_messages={
            "required": required_message,
            "invalid_choice": "Choose from the answers shown.",
        },
    )


def _select(choices: list[tuple[str, str]], label: str) -> forms.Field:
    return forms.ChoiceField(
        label=label,
        choices=choices,
        required=False,
        error_messages={"invalid_choice": "Choose one of the answers in the list."},
    )


class VisibleTextMixin:
    """For the form's free-text fields: what is typed is cleaned by ``visible_text`` before
    anything else looks at it (length, the field's own checks, the form's)."""

    spelling = True  # zero-width joiners between letters kept (names, places)

    def to_python(self, value: Any) -> Any:
        value = super().to_python(value)  # type: ignore[misc]
        return visible_text(value, spelling=self.spelling) if isinstance(value, str) else value


class TextField(VisibleTextMixin, forms.CharField):
    """Every free-text answer of the public form (names, phone, place, age as typed)."""


class EmailTextField(VisibleTextMixin, forms.EmailField):
    """The email address of the public form: the same cleaning, then the email checks."""

    spelling = False


def _text(label: str, max_length: int, **attrs: str) -> forms.CharField:
    return TextField(
        label=label,
        max_length=max_length,
        required=False,
        strip=True,
        widget=forms.TextInput(attrs=attrs),
        error_messages={
            "max_length": f"Use at most {max_length} characters.",
        },
    )


class AboutForm(StepForm):
    slug = "about"
    title = "About you"
    intro = "If you are filling this in for someone else, answer for them."
    why: ClassVar[dict[str, str]] = {
        "age": "Most trials accept people only within an age range.",
        "sex": "Some trials are only for women or only for men.",
    }
    groups: ClassVar[dict[str, tuple[str, tuple[str, ...]]]] = {
        "age": ("How old are you?", ("age", "birth_year", "age_unknown")),
    }
    age = _text("Age in years", 3, inputmode="numeric", autocomplete="off", size="4")
    birth_year = _text("Or year of birth", 4, inputmode="numeric", autocomplete="off", size="6")
    age_unknown = forms.BooleanField(label="I'd rather not say", required=False)
    sex = _radio(
        SEX_CHOICES, "Sex", "Choose an answer about sex, or \u201cI'd rather not say\u201d."
    )

    def clean_age(self) -> int | None:
        value = self.cleaned_data.get("age") or ""
        if not value:
            return None
        if not _DIGITS.match(value) or not 1 <= int(value) <= MAX_AGE:
            raise forms.ValidationError(f"Enter an age as a whole number from 1 to {MAX_AGE}.")
        return int(value)

    def clean_birth_year(self) -> int | None:
        value = self.cleaned_data.get("birth_year") or ""
        if not value:
            return None
        this_year = timezone.localdate().year
        if not _DIGITS.match(value) or not this_year - MAX_AGE <= int(value) <= this_year:
            raise forms.ValidationError(
                f"Enter a year of birth as 4 digits, from {this_year - MAX_AGE} to {this_year}."
            )
        return int(value)

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        age, year = data.get("age"), data.get("birth_year")
        if self.has_error("age") or self.has_error("birth_year"):
            return data
        if data.get("age_unknown"):
            if age is not None or year is not None:
                self.add_error(
                    "age",
                    "You gave an age and also chose \u201cI'd rather not say\u201d. "
                    "Clear the age and year, or untick \u201cI'd rather not say\u201d.",
                )
        elif age is None and year is None:
            self.add_error(
                "age", "Enter your age or year of birth, or tick \u201cI'd rather not say\u201d."
            )
        elif age is not None and year is not None:
            this_year = timezone.localdate().year
            if this_year - year - age not in (0, 1):
                self.add_error(
                    "birth_year",
                    "The age and year of birth do not agree. Give only one of them.",
                )
        return data


class CancerForm(StepForm):
    slug = "cancer"
    title = "Your cancer"
    intro = "Answer what you know. \u201cI don't know\u201d is always fine."
    why: ClassVar[dict[str, str]] = {
        "site": "Most trials are for cancer that started in one place: the stomach, the food "
        "pipe, or where the two meet.",
        "histology": "Many trials are only for one type. Your report from the lab says which.",
        "spread": "Some trials are for cancer that has not spread; others for cancer that has.",
        "spread_sites": "Some trials do not accept cancer that has spread to certain places.",
    }
    site = _radio(SITE_CHOICES, "Where did the cancer start?", "Choose where the cancer is.")
    histology = _radio(
        HISTOLOGY_CHOICES,
        "What type of cancer is it?",
        "Choose the type of cancer, or \u201cI don't know\u201d.",
    )
    spread = _radio(
        SPREAD_CHOICES,
        "Has the cancer spread to other parts of the body?",
        "Choose whether the cancer has spread, or \u201cI don't know\u201d.",
    )
    spread_sites = _checkboxes(
        SPREAD_SITE_CHOICES, "If it has spread, where? Tick all that you know of."
    )

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        if data.get("spread") in ("no", UNKNOWN) and data.get("spread_sites"):
            self.add_error(
                "spread_sites",
                "You ticked places the cancer has spread to, but did not answer \u201cYes\u201d "
                "above. Untick the places, or change the answer above to \u201cYes\u201d.",
            )
        return data


class StageForm(StepForm):
    slug = "stage"
    title = "Stage and surgery"
    intro = "Your doctor or your hospital letters may tell you these."
    why: ClassVar[dict[str, str]] = {
        "stage": "Trials are often for one stage only. Stage 4 usually means it has spread.",
        "t_stage": "If you know the T number (how deep the tumour goes), it helps us be exact.",
        "n_stage": "The N number says whether lymph nodes nearby have cancer.",
        "surgery": "Some trials give treatment before the operation; others after it.",
        "surgery_type": "Trials before surgery are for operations that remove the cancer.",
    }
    stage = _radio(
        STAGE_CHOICES, "What stage is the cancer?", "Choose a stage, or \u201cI don't know\u201d."
    )
    t_stage = _select(T_CHOICES, "T number, if you know it")
    n_stage = _select(N_CHOICES, "N number, if you know it")
    surgery = _radio(
        SURGERY_CHOICES,
        "Is an operation to remove the cancer planned?",
        "Choose an answer about the operation, or \u201cI don't know\u201d.",
    )
    surgery_type = _select(SURGERY_TYPE_CHOICES, "If so, which operation?")

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        for name in ("t_stage", "n_stage", "surgery_type"):
            if not self.has_error(name) and not data.get(name):
                data[name] = UNKNOWN
        return data


class TreatmentForm(StepForm):
    slug = "treatment"
    title = "Treatment and daily life"
    intro = "Tell us about treatment for this cancer, and how you are day to day."
    why: ClassVar[dict[str, str]] = {
        "treatments": "Some trials are only for people who have not had treatment yet.",
        "immunotherapy_drug": "Some trials do not accept people who have had these medicines.",
        "activity": "Trials ask how active you are, to make sure the treatment is safe for you.",
    }
    treatments = _checkboxes(
        TREATMENT_CHOICES,
        "Which treatments have you had for this cancer? Tick all that apply.",
        "Tick the treatments you have had, \u201cNone yet\u201d, or \u201cI don't know\u201d.",
    )
    immunotherapy_drug = _select(IMMUNOTHERAPY_CHOICES, "If you had immunotherapy, which medicine?")
    activity = _radio(
        ACTIVITY_CHOICES,
        "Which sentence describes you best these days?",
        "Choose the sentence closest to how you are, or \u201cI don't know\u201d.",
    )

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        chosen = set(data.get("treatments") or ())
        if {"none", UNKNOWN} & chosen and len(chosen) > 1:
            self.add_error(
                "treatments",
                "Tick treatments, or \u201cNone yet\u201d, or \u201cI don't know\u201d "
                "\u2014 not more than one of these.",
            )
        drug = data.get("immunotherapy_drug") or UNKNOWN
        data["immunotherapy_drug"] = drug
        if drug != UNKNOWN and "immunotherapy" not in chosen and not self.has_error("treatments"):
            self.add_error(
                "immunotherapy_drug",
                "You chose a medicine but did not tick \u201cImmunotherapy\u201d above. "
                "Tick it, or set the medicine back to \u201cI don't know\u201d.",
            )
        return data


class HealthPlaceForm(StepForm):
    slug = "health"
    title = "Other health conditions and where you live"
    intro = "Last step. We use where you live only to find the nearest hospitals."
    why: ClassVar[dict[str, str]] = {
        "conditions": "These often keep people out of immunotherapy trials, for safety.",
        "place": "We look for hospitals near you. In the US a ZIP code is enough; elsewhere "
        "the town or city helps. Leave these empty if you'd rather not say.",
        "travel": "We leave out hospitals further away than you can go.",
    }
    groups: ClassVar[dict[str, tuple[str, tuple[str, ...]]]] = {
        "place": ("Where do you live?", ("country", "postal_code", "city")),
    }
    conditions = _checkboxes(
        CONDITION_CHOICES,
        "Do any of these apply to you? Tick all that apply.",
        "Tick what applies, \u201cNone of these\u201d, or \u201cI don't know\u201d.",
    )
    country = _text("Country", 60, autocomplete="country-name")
    postal_code = _text("Postal code or ZIP code", 12, autocomplete="postal-code", size="10")
    city = _text("Town or city", 80, autocomplete="address-level2")
    travel = _radio(
        TRAVEL_CHOICES,
        "How far can you travel for a trial?",
        "Choose how far you can travel, or \u201cI don't know\u201d.",
    )

    def clean_country(self) -> str:
        value = self.cleaned_data.get("country") or ""
        if value and normalize_country(value) is None:
            raise forms.ValidationError(
                "We don't recognise this country. Check the spelling, or use its "
                "2-letter code, like US or GB. You can also leave it empty."
            )
        return value

    def clean_postal_code(self) -> str:
        value = self.cleaned_data.get("postal_code") or ""
        if value and not _POSTAL_CODE.match(value):
            raise forms.ValidationError(
                "Use only letters, numbers, spaces and dashes, like 10001 or SW1A 1AA."
            )
        return value

    def clean_city(self) -> str:
        value = self.cleaned_data.get("city") or ""
        if value and not _CITY.match(value):
            raise forms.ValidationError("Use only letters, spaces, dots and dashes.")
        return value

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        chosen = set(data.get("conditions") or ())
        if {"none", UNKNOWN} & chosen and len(chosen) > 1:
            self.add_error(
                "conditions",
                "Tick conditions, or \u201cNone of these\u201d, or \u201cI don't know\u201d "
                "\u2014 not more than one of these.",
            )
        place_given = data.get("postal_code") or data.get("city")
        if place_given and not data.get("country") and not self.has_error("country"):
            self.add_error("country", "Enter the country, so we can find the place.")
        return data


STEPS: tuple[type[StepForm], ...] = (
    AboutForm,
    CancerForm,
    StageForm,
    TreatmentForm,
    HealthPlaceForm,
)
STEP_SLUGS = tuple(step.slug for step in STEPS)


# --- Answers -> profile -> facts ---------------------------------------------------------------


def _get(answers: Answers, step: str, name: str) -> Any:
    return (answers.get(step) or {}).get(name)


def birth_date(answers: Answers, today: datetime.date) -> datetime.date | None:
    """From an age: the date that makes the age exact today. From a year only: the middle of
    that year (the age is then right within a year either way)."""
    if _get(answers, "about", "age_unknown"):
        return None
    age = _get(answers, "about", "age")
    if isinstance(age, int):
        try:
            return today.replace(year=today.year - age)
        except ValueError:  # 29 February
            return today.replace(year=today.year - age, day=28)
    year = _get(answers, "about", "birth_year")
    if isinstance(year, int):
        return datetime.date(year, 7, 1)
    return None


def travel_limit_km(answers: Answers) -> float | None:
    value = _get(answers, "health", "travel")
    return float(value) if value and value.isdigit() else None


def place(answers: Answers) -> Place | None:
    country = _get(answers, "health", "country") or ""
    if not country:
        return None
    return locate(
        country=country,
        postal_code=_get(answers, "health", "postal_code") or "",
        city=_get(answers, "health", "city") or "",
    )


def profile_from_answers(
    answers: Answers, *, external_id: str, today: datetime.date
) -> ProfileData:
    """The answers as a profile (what a referral stores); unknown answers give no fact."""
    profile = ProfileData(
        external_id=external_id,
        sex=_get(answers, "about", "sex") if _get(answers, "about", "sex") != UNKNOWN else "",
        birth_date=birth_date(answers, today),
        postal_code=_get(answers, "health", "postal_code") or "",
        city=_get(answers, "health", "city") or "",
        country=normalize_country(_get(answers, "health", "country") or "") or "",
        source_reference="Public pre-screening form",
    )
    facts = profile.facts

    def add(model: str, key: str, **values: Any) -> None:
        facts.append(
            FactData(model=model, values=values, key=f"prescreen:{key}", observed_on=today)
        )

    site = _get(answers, "cancer", "site")
    histology = _get(answers, "cancer", "histology")
    if site in _SITES or histology in ("adenocarcinoma", "other"):
        add(
            "PrimaryCancer",
            "primary",
            site=site if site in _SITES else "",
            histology=histology if histology in ("adenocarcinoma", "other") else "",
        )
    spread = _get(answers, "cancer", "spread")
    if spread == "no":
        add("StageObservation", "M", context="clinical", category="M", value="M0")
    elif spread == "yes":
        add("StageObservation", "M", context="clinical", category="M", value="M1")
        for location in _get(answers, "cancer", "spread_sites") or ():
            add("Metastasis", f"metastasis:{location}", location=location)
    stage = _get(answers, "stage", "stage")
    if stage in ("I", "II", "III", "IV"):
        add("StageObservation", "stage", context="clinical", category="stage", value=stage)
    for category in ("T", "N"):
        value = _get(answers, "stage", f"{category.lower()}_stage")
        if value and value != UNKNOWN:
            add("StageObservation", category, context="clinical", category=category, value=value)
    surgery = _get(answers, "stage", "surgery")
    if surgery in ("planned", "done"):
        kind = _get(answers, "stage", "surgery_type") or UNKNOWN
        add(
            "Surgery",
            "surgery",
            procedure=SURGERY_PROCEDURES.get(kind, "other"),
            status=surgery,
        )
    treatments = set(_get(answers, "treatment", "treatments") or ())
    if "none" in treatments:
        profile.prior_anticancer_therapy = False
    elif treatments - {UNKNOWN}:
        profile.prior_anticancer_therapy = True
    for category in ("chemotherapy", "radiotherapy", "immunotherapy"):
        if category not in treatments:
            continue
        agent, agent_class = "", ""
        drug = _get(answers, "treatment", "immunotherapy_drug")
        if category == "immunotherapy" and drug in IMMUNOTHERAPY_DRUGS:
            agent, agent_class = drug, IMMUNOTHERAPY_DRUGS[drug][1]
        add(
            "Treatment",
            f"treatment:{category}",
            category=category,
            agent=agent,
            agent_class=agent_class,
        )
    activity = _get(answers, "treatment", "activity")
    if activity in ("0", "1", "2", "3", "4"):
        add("PerformanceStatus", "ecog", scale="ecog", value=int(activity))
    conditions = set(_get(answers, "health", "conditions") or ())
    if "none" in conditions:
        for name, kind in COMORBIDITY_CONDITIONS.items():
            add("Comorbidity", f"condition:{name}", kind=kind.value, present=False)
        add(
            "Medication",
            "steroids",
            name="daily steroid medicine",
            category="systemic_steroid",
            active=False,
        )
        add("ReproductiveStatus", "pregnancy", pregnant=False)
    elif UNKNOWN not in conditions:
        for name, kind in COMORBIDITY_CONDITIONS.items():
            if name in conditions:
                add("Comorbidity", f"condition:{name}", kind=kind.value, present=True)
        if "steroids" in conditions:
            add(
                "Medication",
                "steroids",
                name="daily steroid medicine",
                category="systemic_steroid",
                active=True,
            )
        if "pregnant" in conditions:
            add("ReproductiveStatus", "pregnancy", pregnant=True)
    return profile


_PROVENANCE = engine.Provenance(source="Public pre-screening form (as the visitor answered)")


def facts_from_profile(profile: ProfileData, location: Place | None) -> engine.PatientFacts:
    """The engine's view of a web-form profile (only the facts the form produces)."""
    values: dict[str, Any] = {}
    clinical: dict[str, engine.Staging] = {}
    metastases: list[str] = []
    treatments: list[engine.Treatment] = []
    medications: list[engine.Medication] = []
    comorbidities: list[engine.Comorbidity] = []
    surgeries: list[engine.Surgery] = []
    for fact in profile.facts:
        v = fact.values
        if fact.model == "PrimaryCancer":
            values["primary_site"] = CancerSite(v["site"]) if v["site"] else None
            values["histology"] = Histology(v["histology"]) if v["histology"] else None
        elif fact.model == "StageObservation":
            clinical[v["category"]] = engine.Staging(v["value"], _PROVENANCE)
        elif fact.model == "Metastasis":
            metastases.append(v["location"])
        elif fact.model == "Surgery":
            surgeries.append(engine.Surgery(v["procedure"], v["status"], provenance=_PROVENANCE))
        elif fact.model == "Treatment":
            treatments.append(
                engine.Treatment(
                    engine.TreatmentCategory(v["category"]),
                    agent=v["agent"],
                    agent_class=v["agent_class"],
                    provenance=_PROVENANCE,
                )
            )
        elif fact.model == "PerformanceStatus":
            values["ecog"] = v["value"]
        elif fact.model == "Comorbidity":
            comorbidities.append(
                engine.Comorbidity(
                    engine.ComorbidityKind(v["kind"]), present=v["present"], provenance=_PROVENANCE
                )
            )
        elif fact.model == "Medication":
            medications.append(
                engine.Medication(
                    v["name"], v["category"], active=v["active"], provenance=_PROVENANCE
                )
            )
        elif fact.model == "ReproductiveStatus":
            values["pregnant"] = v["pregnant"]
    return engine.PatientFacts(
        sex=profile.sex or None,
        birth_date=profile.birth_date,
        location=location,
        primary_site_provenance=_PROVENANCE,
        histology_provenance=_PROVENANCE,
        clinical=clinical,
        metastatic_sites=tuple(sorted(set(metastases))),
        metastases_provenance=_PROVENANCE if metastases else engine.Provenance(),
        performance_provenance=_PROVENANCE,
        prior_anticancer_therapy=profile.prior_anticancer_therapy,
        treatments=tuple(treatments),
        medications=tuple(medications),
        comorbidities=tuple(comorbidities),
        surgeries=tuple(surgeries),
        **values,
    )


def facts_from_answers(answers: Answers, today: datetime.date) -> engine.PatientFacts:
    """The answers as the engine's facts (nothing stored)."""
    profile = profile_from_answers(answers, external_id="", today=today)
    return facts_from_profile(profile, place(answers))


@dataclass(frozen=True)
class Summary:
    """One answer as the visitor gave it, for the results page ("What you told us")."""

    question: str
    answer: str


def summary(answers: Answers) -> list[Summary]:
    """The answers in plain words, one line per question."""
    lines: list[Summary] = []
    for step in STEPS:
        form = step()
        data = answers.get(step.slug) or {}
        for name, field in form.fields.items():
            if name == "age_unknown":
                continue
            value = data.get(name)
            if name == "age":
                if data.get("age_unknown"):
                    shown = "I'd rather not say"
                elif value is not None:
                    shown = str(value)
                elif data.get("birth_year") is not None:
                    continue
                else:
                    shown = "-"
            elif name == "birth_year":
                if value is None:
                    continue
                shown = str(value)
            elif isinstance(field, forms.ChoiceField):
                labels = dict(field.choices)  # type: ignore[arg-type]
                if isinstance(value, list):
                    if not value:
                        continue
                    shown = ", ".join(str(labels.get(item, item)) for item in value)
                else:
                    shown = str(labels.get(value, value or "-"))
            else:
                if not value:
                    continue
                shown = str(value)
            lines.append(Summary(str(field.label), shown))
    return lines


# --- Asking to be contacted --------------------------------------------------------------------

CONTACT_TIME_CHOICES = [
    ("any", "Any time"),
    ("morning", "Mornings"),
    ("afternoon", "Afternoons"),
    ("evening", "Early evenings"),
]
_PHONE = re.compile(r"^\+?[0-9 ()./\-]+$")


class ContactForm(StepForm):
    """The request to be contacted; consent is explicit (the box starts unticked)."""

    slug = "contact"
    title = "Ask a coordinator to contact you"
    why: ClassVar[dict[str, str]] = {
        "name": "So the coordinator knows who to ask for.",
        "email": "Give an email address, a phone number, or both.",
        "phone": "Include the country code if you live outside the country of the hospital.",
        "contact_time": "The coordinator will try to call or write at this time.",
    }
    name = TextField(
        label="Your name",
        max_length=100,
        strip=True,
        widget=forms.TextInput(attrs={"autocomplete": "name"}),
        error_messages={
            "required": "Enter your name.",
            "max_length": "Use at most 100 characters.",
        },
    )
    email = EmailTextField(
        label="Email address",
        max_length=254,
        required=False,
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
        error_messages={
            "invalid": "Enter an email address like name@example.com.",
            "max_length": "Use at most 254 characters.",
        },
    )
    phone = TextField(
        label="Phone number",
        max_length=40,
        required=False,
        strip=True,
        widget=forms.TextInput(attrs={"autocomplete": "tel", "type": "tel"}),
        error_messages={"max_length": "Use at most 40 characters."},
    )
    contact_time = _radio(
        CONTACT_TIME_CHOICES, "When is it best to contact you?", "Choose when to contact you."
    )
    consent = forms.BooleanField(
        label="I agree that my name, contact details and answers are stored and shown to the "
        "trial coordinators, as described above, so that they can contact me.",
        error_messages={
            "required": "To be contacted, tick the box to agree. Without it we store nothing "
            "about you."
        },
    )

    def clean_phone(self) -> str:
        value = self.cleaned_data.get("phone") or ""
        digits = sum(ch.isdigit() for ch in value)
        if value and (not _PHONE.match(value) or not 6 <= digits <= 15):
            raise forms.ValidationError(
                "Enter a phone number with 6 to 15 digits, like +1 212 555 0100."
            )
        return value

    def clean_name(self) -> str:
        value = self.cleaned_data.get("name") or ""
        if not _CITY.match(value):
            raise forms.ValidationError("Use letters, spaces, dots, apostrophes and dashes.")
        return value

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        if (
            not data.get("email")
            and not data.get("phone")
            and not self.has_error("email")
            and not self.has_error("phone")
        ):
            self.add_error("email", "Give an email address or a phone number (or both).")
        return data

    def contact_time_label(self) -> str:
        return dict(CONTACT_TIME_CHOICES).get(self.cleaned_data.get("contact_time") or "", "")
