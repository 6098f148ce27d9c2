"""What the engine knows about a patient, and the facts derived from it, each explained.

``PatientFacts`` is the evaluator's whole view of a patient: plain, immutable data built from
a stored profile (``patients.facts``), a web-form answer or an API payload. A fact that was
never recorded is ``None`` (or absent from a collection): unknown, never false or zero.

Derived facts (age, creatinine clearance, ULN multiples, ECOG from Karnofsky, surgical
candidacy) are computed here and only here, each with the sentence that explains it.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from trials.eligibility.geo import Place
from trials.eligibility.units import Analyte
from trials.eligibility.vocabulary import (
    ADENOCARCINOMA_FAMILY,
    CANCER_SITE_LABELS,
    HISTOLOGY_LABELS,
    CancerSite,
    Histology,
    ecog_from_karnofsky,
)


@dataclass(frozen=True)
class Provenance:
    """Where a fact came from, for the explanation ("FHIR bundle EX1.json, Observation/…")."""

    source: str = ""
    date: datetime.date | None = None

    def describe(self) -> str:
        parts = [self.source] if self.source else []
        if self.date:
            parts.append(self.date.isoformat())
        return ", ".join(parts)


@dataclass(frozen=True)
class Staging:
    """One TNM category or stage group, canonical (``T3``, ``N0``, ``M1``, ``IIIA``)."""

    value: str
    provenance: Provenance = Provenance()


@dataclass(frozen=True)
class LabValue:
    analyte: Analyte
    value: float  # canonical unit
    unit: str
    original_value: float
    original_unit: str
    uln: float | None = None  # the result's own upper limit of normal, canonical unit
    provenance: Provenance = Provenance()


class TreatmentCategory(StrEnum):
    CHEMOTHERAPY = "chemotherapy"
    RADIOTHERAPY = "radiotherapy"
    IMMUNOTHERAPY = "immunotherapy"
    TARGETED = "targeted"
    SURGERY = "surgery"
    OTHER = "other"


@dataclass(frozen=True)
class Treatment:
    category: TreatmentCategory
    agent: str = ""
    agent_class: str = ""  # e.g. "anti-PD-1", "platinum", "taxane"
    intent: str = ""  # neoadjuvant, adjuvant, perioperative, palliative, curative
    status: str = ""  # completed, active, planned, stopped
    start: datetime.date | None = None
    end: datetime.date | None = None
    provenance: Provenance = Provenance()


@dataclass(frozen=True)
class Medication:
    name: str
    category: str  # systemic_steroid, immunosuppressant, other
    active: bool | None = None
    prednisone_mg_per_day: float | None = None
    start: datetime.date | None = None
    end: datetime.date | None = None
    provenance: Provenance = Provenance()


class ComorbidityKind(StrEnum):
    AUTOIMMUNE = "autoimmune"
    ILD = "ild"  # interstitial lung disease / pneumonitis
    HBV = "hbv"
    HCV = "hcv"
    HIV = "hiv"
    IMMUNODEFICIENCY = "immunodeficiency"  # primary or other (not HIV, its own kind)
    # An acute infection treated systemically (pneumonia, sepsis, cellulitis, urinary tract
    # infection, tuberculosis): current only while recent (``INFECTION_CURRENT_DAYS``).
    INFECTION = "infection"
    ORGAN_TRANSPLANT = "organ_transplant"
    STEM_CELL_TRANSPLANT = "stem_cell_transplant"
    OTHER_MALIGNANCY = "other_malignancy"
    # Cardiovascular: the events and conditions criteria name apart, each with its own window.
    MYOCARDIAL_INFARCTION = "myocardial_infarction"
    UNSTABLE_ANGINA = "unstable_angina"
    HEART_FAILURE = "heart_failure"  # congestive heart failure, any NYHA class
    ARRHYTHMIA = "arrhythmia"  # atrial fibrillation / flutter, ventricular, other
    STROKE = "stroke"  # cerebrovascular accident (ischaemic or haemorrhagic), TIA
    ARTERIAL_THROMBOEMBOLISM = "arterial_thromboembolism"  # peripheral arterial embolism
    VENOUS_THROMBOEMBOLISM = "venous_thromboembolism"  # deep vein thrombosis, pulmonary embolism
    OTHER = "other"


# Above this daily dose (prednisone-equivalent) a systemic corticosteroid is
# immunosuppressive; at or below it, physiologic replacement (docs/domain.md).
IMMUNOSUPPRESSIVE_PREDNISONE_MG = 10.0

# An infection recorded active counts as current only within this many days of its onset: a
# problem list keeps a pneumonia of last year "active" long after it resolved.
INFECTION_CURRENT_DAYS = 30

# Events, not lasting conditions: "within 6 months" counts from the onset, whatever the clinical
# status says (a problem list keeps an infarction of years ago "active").
EVENT_KINDS = frozenset(
    {
        ComorbidityKind.MYOCARDIAL_INFARCTION,
        ComorbidityKind.UNSTABLE_ANGINA,
        ComorbidityKind.STROKE,
        ComorbidityKind.ARTERIAL_THROMBOEMBOLISM,
        ComorbidityKind.VENOUS_THROMBOEMBOLISM,
        ComorbidityKind.INFECTION,
    }
)


@dataclass(frozen=True)
class Comorbidity:
    kind: ComorbidityKind
    name: str = ""  # e.g. "type 1 diabetes", "rheumatoid arthritis"
    present: bool = True  # False: explicitly ruled out ("no HIV")
    active: bool | None = None
    onset: datetime.date | None = None
    provenance: Provenance = Provenance()


@dataclass(frozen=True)
class Surgery:
    procedure: str  # total_gastrectomy, subtotal_gastrectomy, ..., esophagectomy, other
    status: str  # planned, done, cancelled
    date: datetime.date | None = None
    provenance: Provenance = Provenance()

    @property
    def radical(self) -> bool:
        return self.procedure.endswith("gastrectomy") or self.procedure == "esophagectomy"


@dataclass(frozen=True)
class PatientFacts:
    """Everything the engine may use about one patient. ``None`` means not recorded."""

    external_id: str = ""
    sex: str | None = None  # "female", "male", "other"
    birth_date: datetime.date | None = None
    location: Place | None = None
    primary_site: CancerSite | None = None
    primary_site_code: str = ""  # the primary's ICD-10 code, which tells other sites apart
    primary_site_provenance: Provenance = Provenance()
    siewert_type: str | None = None
    histology: Histology | None = None
    histology_provenance: Provenance = Provenance()
    diagnosis_date: datetime.date | None = None
    clinical: dict[str, Staging] = field(default_factory=dict)  # "T", "N", "M", "stage"
    pathological: dict[str, Staging] = field(default_factory=dict)
    peritoneal_cytology_positive: bool | None = None
    metastatic_sites: tuple[str, ...] = ()  # peritoneum, liver, ...
    metastases_provenance: Provenance = Provenance()
    ecog: int | None = None
    karnofsky: int | None = None
    performance_provenance: Provenance = Provenance()
    labs: dict[Analyte, LabValue] = field(default_factory=dict)  # latest per analyte
    biomarkers: dict[str, str] = field(default_factory=dict)  # her2_status: "negative" ...
    pdl1_cps: float | None = None
    prior_anticancer_therapy: bool | None = None  # False: explicitly none
    treatments: tuple[Treatment, ...] = ()
    medications: tuple[Medication, ...] = ()
    comorbidities: tuple[Comorbidity, ...] = ()
    pregnant: bool | None = None
    breastfeeding: bool | None = None
    surgeries: tuple[Surgery, ...] = ()


# --- Derived facts --------------------------------------------------------------------------


@dataclass(frozen=True)
class Derived:
    """A computed value and the sentence that says how it was obtained."""

    value: float | int | bool | None
    explanation: str


def number(value: float) -> str:
    """A measurement as people write it: at most 4 significant digits, no trailing zeros."""
    return f"{float(f'{value:.4g}'):g}"


def age(facts: PatientFacts, on: datetime.date) -> int | None:
    """Completed years on ``on``."""
    born = facts.birth_date
    if born is None:
        return None
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def performance_status(facts: PatientFacts) -> Derived:
    """ECOG as recorded, or mapped from Karnofsky (DOMAIN.md), or unknown."""
    if facts.ecog is not None:
        return Derived(facts.ecog, f"ECOG {facts.ecog}")
    if facts.karnofsky is not None:
        ecog = ecog_from_karnofsky(facts.karnofsky)
        return Derived(ecog, f"ECOG {ecog} (from Karnofsky {facts.karnofsky}%)")
    return Derived(None, "no performance status recorded")


def creatinine_clearance(facts: PatientFacts, on: datetime.date) -> Derived:
    """Measured clearance when recorded, else Cockcroft-Gault from age, weight, sex and
    serum creatinine: (140 - age) x weight [x 0.85 if female] / (72 x creatinine mg/dL)."""
    measured = facts.labs.get(Analyte.CREATININE_CLEARANCE)
    if measured is not None:
        return Derived(measured.value, f"creatinine clearance {measured.value:g} mL/min (measured)")
    years = age(facts, on)
    weight = facts.labs.get(Analyte.WEIGHT)
    creatinine = facts.labs.get(Analyte.CREATININE)
    missing = [
        name
        for name, value in (
            ("age", years),
            ("weight", weight),
            ("sex", facts.sex if facts.sex in ("female", "male") else None),
            ("serum creatinine", creatinine),
        )
        if value is None
    ]
    if missing or years is None or weight is None or creatinine is None:
        return Derived(None, "creatinine clearance unknown (no " + ", no ".join(missing) + ")")
    if creatinine.value <= 0:
        return Derived(None, "creatinine clearance unknown (creatinine recorded as 0)")
    female = facts.sex == "female"
    clearance = (140 - years) * weight.value * (0.85 if female else 1.0) / (72 * creatinine.value)
    clearance = round(clearance, 1)
    return Derived(
        clearance,
        f"creatinine clearance {number(clearance)} mL/min (Cockcroft-Gault: {years} y, "
        f"{number(weight.value)} kg, {facts.sex}, creatinine {number(creatinine.value)} mg/dL)",
    )


# Used only when a result carries no reference range of its own; always named as such. PT and
# aPTT have none: their normal range in seconds depends on the laboratory's reagent.
DEFAULT_ULN: dict[Analyte, float] = {
    Analyte.BILIRUBIN: 1.2,  # mg/dL
    Analyte.AST: 40.0,  # U/L
    Analyte.ALT: 40.0,  # U/L
    Analyte.CREATININE: 1.2,  # mg/dL
    Analyte.ALP: 120.0,  # U/L
    Analyte.INR: 1.2,  # ratio
}


def uln_multiple(facts: PatientFacts, analyte: Analyte) -> Derived:
    """The result as a multiple of its upper limit of normal (the lab's own, else a default)."""
    lab = facts.labs.get(analyte)
    label = analyte.label
    if lab is None:
        return Derived(None, f"no {label} recorded")
    if lab.uln:
        uln, whose = lab.uln, "the result's reference range"
    elif analyte in DEFAULT_ULN:
        uln, whose = DEFAULT_ULN[analyte], "default; the result gives no reference range"
    else:
        return Derived(
            None, f"{label} {number(lab.value)} {lab.unit}: no upper limit of normal known"
        )
    multiple = round(lab.value / uln, 2)
    return Derived(
        multiple,
        f"{label} {number(lab.value)} {lab.unit} = {number(multiple)} x ULN "
        f"(ULN {number(uln)} {lab.unit}, {whose})",
    )


def surgical_candidate(facts: PatientFacts) -> Derived:
    """Candidate for radical gastric-cancer surgery (true / false / unknown), with the reason.

    True when: primary stomach/GEJ adenocarcinoma (any subtype), clinical M0 without
    peritoneal disease, not cT4b, ECOG <= 2 (or Karnofsky >= 60), radical surgery not done.
    False when any of these is known to fail; unknown when one is unknown and none fails.
    """
    failures: list[str] = []
    unknowns: list[str] = []
    met: list[str] = []

    site, histology = facts.primary_site, facts.histology
    if site is None:
        unknowns.append("primary tumour site not recorded")
    elif site not in (CancerSite.STOMACH, CancerSite.GEJ):
        failures.append(f"primary site is {CANCER_SITE_LABELS[site]}, not stomach or GEJ")
    if histology is None:
        unknowns.append("histology not recorded")
    elif histology not in ADENOCARCINOMA_FAMILY:
        failures.append(f"histology is {HISTOLOGY_LABELS[histology]}, not adenocarcinoma")
    if site in (CancerSite.STOMACH, CancerSite.GEJ) and histology in ADENOCARCINOMA_FAMILY:
        met.append(f"{CANCER_SITE_LABELS[site]} {HISTOLOGY_LABELS[histology]}")

    m_stage = facts.clinical.get("M")
    peritoneal = "peritoneum" in facts.metastatic_sites or facts.peritoneal_cytology_positive
    if m_stage is not None and m_stage.value == "M1":
        failures.append("clinical M1 (distant metastasis)")
    elif facts.metastatic_sites:
        failures.append("distant metastasis recorded: " + ", ".join(facts.metastatic_sites))
    elif peritoneal:
        failures.append("peritoneal disease (positive peritoneal cytology)")
    elif m_stage is None:
        unknowns.append("clinical M stage not recorded")
    else:
        met.append("cM0")

    t_stage = facts.clinical.get("T")
    if t_stage is None or t_stage.value == "TX":
        unknowns.append("clinical T stage not recorded")
    elif t_stage.value == "T4b":
        failures.append("cT4b (invades adjacent structures)")
    else:
        met.append(f"c{t_stage.value}")

    performance = performance_status(facts)
    if performance.value is None:
        unknowns.append("performance status not recorded")
    elif int(performance.value) > 2:
        failures.append(f"{performance.explanation} > 2")
    else:
        met.append(performance.explanation)

    done = [s for s in facts.surgeries if s.radical and s.status == "done"]
    planned = [s for s in facts.surgeries if s.radical and s.status == "planned"]
    if done:
        failures.append(f"radical surgery already done ({done[0].procedure.replace('_', ' ')})")
    elif planned:
        met.append(f"{planned[0].procedure.replace('_', ' ')} planned, not yet done")
    else:
        unknowns.append("whether radical surgery is planned or done is not recorded")

    if failures:
        return Derived(False, "Not a surgical candidate: " + "; ".join(failures) + ".")
    if unknowns:
        return Derived(None, "Unknown: " + "; ".join(unknowns) + ".")
    return Derived(True, "Surgical candidate: " + ", ".join(met) + ".")


def latest(values: Iterable[tuple[datetime.date | None, int, object]]) -> object | None:
    """The value with the latest date (undated values count as oldest; ties: last given)."""
    best = None
    best_key: tuple[datetime.date, int] | None = None
    for date, order, value in values:
        key = (date or datetime.date.min, order)
        if best_key is None or key >= best_key:
            best, best_key = value, key
    return best
