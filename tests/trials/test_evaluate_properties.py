"""Properties of the evaluator: unknown facts never exclude, and only the facts read decide.

Pure Python (no database). Trials are the real bundled records (every record of
``trials/data/ctgov/v2`` and ``v2-partial`` and the first few hundred of the corpus), parsed
once at import and compiled as ``patients.matching`` compiles them (``RuleInterner``; a
heading without constraints is not a criterion). Patients are generated.

The properties (DOMAIN.md, "Eligibility outcomes": unknown criteria never make a patient
ineligible):

1. Removing a fact never creates ``ineligible``. A patient is reduced by one fact: one
   ``PatientFacts`` field set to None / emptied, or one whole element kind removed (one
   staging category, one lab analyte, one biomarker, one metastatic site, the comorbidity of
   one kind, the medication of one category, the treatment of one category, one surgery).
   Per criterion: one that was satisfied or unknown never becomes disqualifying. Per trial:
   a verdict other than ineligible stays other than ineligible. Every removal of every
   generated patient is tried, against every distinct real criterion that reads the removed
   field (property 2 shows that the others do not move) and a sample of real trials.
2. Adding a fact never turns ``ineligible`` into something else unless that fact was the
   cause. ``READS`` says which ``PatientFacts`` fields each constraint type reads. Adding a
   fact F (the reduced patient of property 1 is "before", the whole patient "after") leaves
   every criterion that reads no F exactly as it was (so a disqualifying one stays
   disqualifying), and a trial leaves ``ineligible`` only when a criterion that was
   disqualifying reads F. One drawn fact per patient, against every distinct real
   criterion and a sample of real trials.
3. Evaluation never raises; every criterion result has a reason and an outcome among met /
   not met / unknown; an unknown result of a parsed criterion names the missing facts unless
   it says it was "not evaluated". Every real trial, registry screening included.

Criteria are compared through ``PatientEvaluator.criterion`` (no registry screening: a trial
screened out on age or sex leaves its other criteria "not evaluated", which is no answer);
verdicts through ``evaluate``.

The generated patients are CONSISTENT: what a real record can hold. Several facts have
precedence over others in the evaluator, so a record holding both a fact and the one it
outranks would, once the first is removed, legitimately reveal the second (removal would
then *change* a fact, not remove it). Real records do not hold such contradictions:

* At most one of ECOG / Karnofsky: the evaluator reads ECOG first (Karnofsky is mapped to
  ECOG only when no ECOG is recorded, and ECOG to a Karnofsky range only without Karnofsky).
* A measured creatinine clearance only when weight or serum creatinine is absent: a measured
  clearance takes precedence over Cockcroft-Gault.
* Each TNM category recorded once, clinically or pathologically: the evaluator reads the
  clinical value first and falls back on the pathological one.
* Metastatic sites and positive peritoneal cytology only when the M category is absent or M1
  (AJCC 8th: both are M1; a recorded M0 would outrank them in the stage group).
* A recorded stage group (clinical) only equal to ``clinical_stage_group`` of the T / N / M
  the evaluator reads; otherwise absent. A recorded group outranks the derived one.
* HER2: a recorded HER2 status only equal to the status IHC and ISH give (``her2_status``),
  when they give one; ISH "amplified" never beside IHC 0 / 1+ (IHC 0 / 1+ is negative
  whatever the ISH, so removing the IHC would reveal "positive").
* ``prior_anticancer_therapy`` False only with no treatment recorded ("none" outranks an
  empty list, and a treatment contradicts it).
* At most one comorbidity per kind, one medication per category, one treatment per
  category, one radical (gastrectomy / esophagectomy) surgery: within a kind the record is
  the patient's whole history of it (a second, older entry would be revealed by removing
  the newer one).
* A planned radical operation only when the T category is not T4b: the evaluator lets cT4b
  outrank a planned gastrectomy when judging resectability (a surgeon does not plan a
  radical gastrectomy for disease the record calls unresectable).
* Pregnant / breastfeeding only for a patient not recorded as male ("male" outranks an
  unknown pregnancy status).
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tests.trials.criteria_labels import parse_record, real_records
from trials.ctgov.mapping import map_study
from trials.eligibility import constraints as c
from trials.eligibility import facts as f
from trials.eligibility.evaluate import (
    Outcome,
    PatientEvaluator,
    Rule,
    RuleInterner,
    TrialRules,
    Verdict,
    clinical_stage_group,
    her2_status,
)
from trials.eligibility.units import Analyte, canonical_unit
from trials.eligibility.vocabulary import (
    M_RANKS,
    N_RANKS,
    T_RANKS,
    CancerSite,
    Histology,
    display_code,
)

ON = datetime.date(2026, 11, 26)
CORPUS_RECORDS = 300

# --- Trials: real records, parsed once ---------------------------------------------------------


def _load_trials() -> tuple[list[TrialRules], list[Rule]]:
    interner = RuleInterner()
    trials: list[TrialRules] = []
    corpus = 0
    for source, study in real_records():
        if source == "bulk":
            break
        if source == "corpus":
            corpus += 1
            if corpus > CORPUS_RECORDS:
                break
        mapped = map_study(study)
        rules = tuple(
            interner.rule(
                criterion.position,
                criterion.kind,
                criterion.category,
                criterion.constraints,
                criterion.join,
            )
            for criterion in parse_record(study)
            if criterion.constraints or not criterion.header
        )
        trials.append(
            TrialRules(
                key=len(trials),
                nct_id=mapped.nct_id,
                rules=rules,
                status="RECRUITING",
                gastric=True,
                minimum_age=float(mapped.minimum_age.years) if mapped.minimum_age else None,
                maximum_age=float(mapped.maximum_age.years) if mapped.maximum_age else None,
                sex=mapped.sex,
            )
        )
    distinct: dict[int, Rule] = {}
    for trial in trials:
        for rule in trial.rules:
            distinct.setdefault(rule.signature, rule)
    return trials, list(distinct.values())


TRIALS, DISTINCT_RULES = _load_trials()
PARSED_RULES = [rule for rule in DISTINCT_RULES if rule.constraints]

# --- What each constraint reads ------------------------------------------------------------

STAGING = frozenset(
    {"clinical", "pathological", "metastatic_sites", "peritoneal_cytology_positive"}
)
READS: dict[type[c.Constraint], frozenset[str]] = {
    c.Age: frozenset({"birth_date"}),
    c.Sex: frozenset({"sex"}),
    c.Ecog: frozenset({"ecog", "karnofsky"}),
    c.Karnofsky: frozenset({"karnofsky", "ecog"}),
    c.Stage: STAGING,
    c.Metastasis: STAGING,
    c.Resectable: STAGING | {"surgeries"},
    # Creatinine clearance by Cockcroft-Gault also reads age and sex.
    c.Lab: frozenset({"labs", "birth_date", "sex"}),
    c.PriorTherapy: frozenset({"treatments", "prior_anticancer_therapy", "surgeries"}),
    c.Biomarker: frozenset({"biomarkers", "pdl1_cps"}),
    c.Comorbidity: frozenset({"comorbidities"}),
    c.Medication: frozenset({"medications"}),
    c.Pregnancy: frozenset({"pregnant", "breastfeeding", "sex"}),
    c.Surgery: frozenset({"surgeries"}),
    c.PrimarySite: frozenset({"primary_site", "siewert_type"}),
    c.Histology: frozenset({"histology"}),
}
# A lab limit that applies only in a condition also reads what decides the condition.
CONDITION_READS = {"liver_metastases": STAGING, "gilbert": frozenset({"comorbidities"})}


def reads(rule: Rule) -> frozenset[str]:
    found: set[str] = set()
    for whole in rule.constraints:
        for constraint in c.leaves(whole):  # any-of / all-of read what their items read
            found |= READS[type(constraint)]
            if isinstance(constraint, c.Lab) and constraint.condition:
                found |= CONDITION_READS[constraint.condition.removeprefix("not_")]
            if isinstance(constraint, c.Comorbidity) and constraint.systemic_treatment:
                found |= {"medications"}
            if isinstance(constraint, c.PrimarySite):
                found |= {"primary_site_code"}
    return frozenset(found)


def test_reads_covers_every_constraint_type() -> None:
    # any-of / all-of have no reads of their own: ``reads`` takes their items'.
    assert set(READS) == set(c.TYPES.values()) - {c.AnyOf, c.AllOf}
    conditions = {
        x.condition
        for rule in PARSED_RULES
        for whole in rule.constraints
        for x in c.leaves(whole)
        if isinstance(x, c.Lab)
    }
    assert {x.removeprefix("not_") for x in conditions if x} <= set(CONDITION_READS)


# --- Patients ------------------------------------------------------------------------------

T_CODES = [display_code(code) for code in T_RANKS]
N_CODES = [display_code(code) for code in N_RANKS]
M_CODES = [display_code(code) for code in M_RANKS]
SITES = ["liver", "peritoneum", "lung", "bone", "distant lymph nodes", "ovary"]
# Canonical-unit ranges (units.py) and a typical upper limit of normal.
LAB_RANGES: dict[Analyte, tuple[float, float, float | None]] = {
    Analyte.ANC: (0.2, 12.0, None),
    Analyte.PLATELETS: (20.0, 600.0, None),
    Analyte.HAEMOGLOBIN: (6.0, 17.5, None),
    Analyte.WBC: (1.0, 25.0, None),
    Analyte.LYMPHOCYTES: (0.2, 5.0, None),
    Analyte.CD4: (50.0, 1500.0, None),
    Analyte.CREATININE: (0.4, 3.5, 1.2),
    Analyte.BILIRUBIN: (0.2, 5.0, 1.2),
    Analyte.AST: (8.0, 400.0, 40.0),
    Analyte.ALT: (6.0, 400.0, 45.0),
    Analyte.ALBUMIN: (2.0, 5.5, None),
    Analyte.CREATININE_CLEARANCE: (15.0, 160.0, None),
    Analyte.EGFR: (15.0, 130.0, None),
    Analyte.WEIGHT: (35.0, 140.0, None),
    Analyte.HEIGHT: (140.0, 200.0, None),
    Analyte.INR: (0.8, 3.5, 1.2),
    Analyte.PT: (10.0, 30.0, 13.0),
    Analyte.APTT: (22.0, 80.0, 35.0),
    Analyte.ALP: (30.0, 800.0, 120.0),
    Analyte.URINE_PROTEIN: (0.0, 5.0, None),
    Analyte.LVEF: (20.0, 75.0, None),
    Analyte.QTC: (360.0, 540.0, None),
}
TREATMENT_AGENTS: dict[f.TreatmentCategory, list[tuple[str, str]]] = {
    f.TreatmentCategory.CHEMOTHERAPY: [("oxaliplatin", "platinum"), ("FLOT", ""), ("", "")],
    f.TreatmentCategory.RADIOTHERAPY: [("", "")],
    f.TreatmentCategory.IMMUNOTHERAPY: [
        ("nivolumab", "anti-PD-1"),
        ("pembrolizumab", ""),
        ("atezolizumab", "anti-PD-L1"),
        ("ipilimumab", "anti-CTLA-4"),
        ("aldesleukin", "cytokine"),
    ],
    f.TreatmentCategory.TARGETED: [("trastuzumab", "anti-HER2"), ("ramucirumab", "")],
    f.TreatmentCategory.SURGERY: [("", "")],
    f.TreatmentCategory.OTHER: [("investigational agent", "")],
}
MEDICATIONS = {
    "systemic_steroid": ["prednisone", "dexamethasone"],
    "immunosuppressant": ["tacrolimus", "methotrexate"],
    "live_vaccine": ["yellow fever vaccine"],
    "other": ["metformin"],
}
COMORBIDITY_NAMES = {
    f.ComorbidityKind.AUTOIMMUNE: [
        "rheumatoid arthritis",
        "type 1 diabetes",
        "hypothyroidism",
        "vitiligo",
        "Crohn's disease",
        "",
    ],
    f.ComorbidityKind.ILD: ["interstitial lung disease", "pneumonitis"],
    f.ComorbidityKind.HBV: ["hepatitis B"],
    f.ComorbidityKind.HCV: ["hepatitis C"],
    f.ComorbidityKind.HIV: ["HIV"],
    f.ComorbidityKind.IMMUNODEFICIENCY: ["common variable immunodeficiency"],
    f.ComorbidityKind.INFECTION: ["pneumonia", "cellulitis"],
    f.ComorbidityKind.ORGAN_TRANSPLANT: ["kidney transplant"],
    f.ComorbidityKind.STEM_CELL_TRANSPLANT: ["allogeneic stem-cell transplant"],
    f.ComorbidityKind.OTHER_MALIGNANCY: ["prostate cancer", "basal cell carcinoma"],
    f.ComorbidityKind.MYOCARDIAL_INFARCTION: ["acute myocardial infarction", "old MI"],
    f.ComorbidityKind.UNSTABLE_ANGINA: ["unstable angina"],
    f.ComorbidityKind.HEART_FAILURE: ["congestive heart failure"],
    f.ComorbidityKind.ARRHYTHMIA: ["atrial fibrillation"],
    f.ComorbidityKind.STROKE: ["cerebral infarction", "transient ischaemic attack"],
    f.ComorbidityKind.ARTERIAL_THROMBOEMBOLISM: ["femoral artery embolism"],
    f.ComorbidityKind.VENOUS_THROMBOEMBOLISM: ["deep vein thrombosis", "pulmonary embolism"],
    f.ComorbidityKind.OTHER: ["Gilbert syndrome", "hypertension"],
}
RADICAL = ["total_gastrectomy", "subtotal_gastrectomy", "esophagectomy"]
NON_RADICAL = ["diagnostic_laparoscopy", "other"]


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


def days_before(low: int, high: int) -> st.SearchStrategy[datetime.date]:
    return st.integers(low, high).map(lambda days: ON - datetime.timedelta(days=days))


def tenths(low: float, high: float) -> st.SearchStrategy[float]:
    return st.integers(round(low * 10), round(high * 10)).map(lambda value: value / 10)


@st.composite
def lab_values(draw: st.DrawFn, analyte: Analyte) -> f.LabValue:
    low, high, typical_uln = LAB_RANGES[analyte]
    value = draw(tenths(low, high))
    uln = draw(st.none() | st.just(typical_uln)) if typical_uln else None
    unit = canonical_unit(analyte)
    return f.LabValue(analyte, value, unit, value, unit, uln)


@st.composite
def treatments(draw: st.DrawFn, category: f.TreatmentCategory) -> f.Treatment:
    agent, agent_class = draw(st.sampled_from(TREATMENT_AGENTS[category]))
    status = draw(st.sampled_from(["completed", "active", "stopped", "planned", ""]))
    start = end = None
    if status == "planned":
        start = draw(maybe(st.integers(1, 60).map(lambda d: ON + datetime.timedelta(days=d))))
    elif status == "active":
        start = draw(maybe(days_before(1, 400)))
    else:
        end = draw(maybe(days_before(1, 3000)))
        if end is not None:
            start = draw(maybe(st.integers(0, 365).map(lambda d: end - datetime.timedelta(d))))
    return f.Treatment(category, agent, agent_class, "", status, start, end)


@st.composite
def medications(draw: st.DrawFn, category: str) -> f.Medication:
    name = draw(st.sampled_from(MEDICATIONS[category]))
    active = draw(st.sampled_from([None, True, False]))
    if active:
        end = None
    elif active is False:
        end = draw(maybe(days_before(1, 1000)))
    else:
        end = draw(maybe(st.integers(-60, 1000).map(lambda d: ON - datetime.timedelta(days=d))))
    dose = None
    if category == "systemic_steroid":
        dose = draw(maybe(st.sampled_from([2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 60.0])))
    return f.Medication(name, category, active, dose, None, end)


@st.composite
def comorbidities(draw: st.DrawFn, kind: f.ComorbidityKind) -> f.Comorbidity:
    return f.Comorbidity(
        kind,
        name=draw(st.sampled_from(COMORBIDITY_NAMES[kind])),
        present=draw(st.booleans()),
        active=draw(st.sampled_from([None, True, False])),
        # Infections are current only for weeks: their onsets start at a day ago.
        onset=draw(maybe(days_before(1 if kind is f.ComorbidityKind.INFECTION else 30, 30 * 365))),
    )


@st.composite
def biomarker_values(draw: st.DrawFn) -> dict[str, str]:
    markers: dict[str, str] = {}
    ihc = draw(maybe(st.sampled_from(["0", "1+", "2+", "3+"])))
    ish_values = ["not amplified"] if ihc in ("0", "1+") else ["amplified", "not amplified"]
    ish = draw(maybe(st.sampled_from(ish_values)))
    derived = her2_status(ihc, ish)
    status = draw(
        maybe(
            st.just(derived) if derived else st.sampled_from(["positive", "negative", "equivocal"])
        )
    )
    for name, value in (("her2_ihc", ihc), ("her2_ish", ish), ("her2_status", status)):
        if value is not None:
            markers[name] = value
    for name, allowed in (
        ("msi", ["MSI-H", "MSI-L", "MSS"]),
        ("mmr", ["dMMR", "pMMR"]),
        ("ebv", ["positive", "negative"]),
        ("cldn18", ["positive", "negative"]),
    ):
        value = draw(maybe(st.sampled_from(allowed)))
        if value is not None:
            markers[name] = value
    return markers


@st.composite
def patients(draw: st.DrawFn) -> f.PatientFacts:
    sex = draw(st.sampled_from([None, "female", "male", "other"]))
    # Ages 18 to 90 on the evaluation date.
    birth_date = draw(maybe(st.dates(datetime.date(1935, 11, 27), datetime.date(2008, 11, 26))))
    primary_site = draw(maybe(st.sampled_from(list(CancerSite))))
    siewert = (
        draw(maybe(st.sampled_from(["I", "II", "III"]))) if primary_site is CancerSite.GEJ else None
    )
    histology = draw(maybe(st.sampled_from(list(Histology))))

    # Staging: each category once, clinical or pathological (clinical outranks).
    clinical: dict[str, f.Staging] = {}
    pathological: dict[str, f.Staging] = {}
    read: dict[str, str] = {}
    for category, codes in (("T", T_CODES), ("N", N_CODES), ("M", M_CODES)):
        where = draw(st.sampled_from(["clinical", "clinical", "pathological", None]))
        if where is not None:
            code = draw(st.sampled_from(codes))
            (clinical if where == "clinical" else pathological)[category] = f.Staging(code)
            read[category] = code
    m_free = read.get("M") in (None, "M1")
    metastatic_sites = tuple(
        draw(st.lists(st.sampled_from(SITES), unique=True, max_size=3)) if m_free else ()
    )
    cytology = draw(st.sampled_from([None, False, True] if m_free else [None, False]))
    m_read = read.get("M") or ("M1" if metastatic_sites or cytology else None)
    group = clinical_stage_group(read.get("T"), read.get("N"), m_read)
    if group is not None and draw(st.booleans()):
        clinical["stage"] = f.Staging(group)

    # Performance status: one scale.
    scale = draw(st.sampled_from([None, "ecog", "karnofsky"]))
    ecog = draw(st.integers(0, 4)) if scale == "ecog" else None
    karnofsky = draw(st.integers(1, 10)) * 10 if scale == "karnofsky" else None

    # Labs: a measured clearance only when Cockcroft-Gault lacks weight or creatinine.
    analytes = draw(
        st.lists(
            st.sampled_from([a for a in LAB_RANGES if a is not Analyte.CREATININE_CLEARANCE]),
            unique=True,
            max_size=len(LAB_RANGES),
        )
    )
    labs: dict[Analyte, f.LabValue] = {analyte: draw(lab_values(analyte)) for analyte in analytes}
    if (Analyte.WEIGHT not in labs or Analyte.CREATININE not in labs) and draw(st.booleans()):
        labs[Analyte.CREATININE_CLEARANCE] = draw(lab_values(Analyte.CREATININE_CLEARANCE))

    biomarkers = draw(biomarker_values())
    pdl1_cps = draw(maybe(st.sampled_from([0.0, 0.5, 1.0, 3.0, 5.0, 10.0, 25.0, 60.0, 100.0])))

    treatment_categories = draw(
        st.lists(st.sampled_from(list(f.TreatmentCategory)), unique=True, max_size=3)
    )
    patient_treatments = tuple(draw(treatments(category)) for category in treatment_categories)
    prior = draw(st.sampled_from([None, True] if patient_treatments else [None, True, False]))

    medication_categories = draw(st.lists(st.sampled_from(list(MEDICATIONS)), unique=True))
    patient_medications = tuple(draw(medications(name)) for name in medication_categories)
    kinds = draw(st.lists(st.sampled_from(list(f.ComorbidityKind)), unique=True, max_size=4))
    patient_comorbidities = tuple(draw(comorbidities(kind)) for kind in kinds)

    pregnancy_values = [None, False] if sex == "male" else [None, False, True]
    pregnant = draw(st.sampled_from(pregnancy_values))
    breastfeeding = draw(st.sampled_from(pregnancy_values))

    surgeries: list[f.Surgery] = []
    radical_statuses = ["done", "cancelled"] + (["planned"] if read.get("T") != "T4b" else [])
    if draw(st.booleans()):
        status = draw(st.sampled_from(radical_statuses))
        when = (
            draw(maybe(st.integers(1, 60).map(lambda d: ON + datetime.timedelta(days=d))))
            if status == "planned"
            else draw(maybe(days_before(1, 2000)))
        )
        surgeries.append(f.Surgery(draw(st.sampled_from(RADICAL)), status, when))
    for procedure in draw(st.lists(st.sampled_from(NON_RADICAL), unique=True)):
        surgeries.append(f.Surgery(procedure, "done", draw(maybe(days_before(1, 2000)))))

    return f.PatientFacts(
        external_id="generated",
        sex=sex,
        birth_date=birth_date,
        primary_site=primary_site,
        siewert_type=siewert,
        histology=histology,
        clinical=clinical,
        pathological=pathological,
        peritoneal_cytology_positive=cytology,
        metastatic_sites=metastatic_sites,
        ecog=ecog,
        karnofsky=karnofsky,
        labs=labs,
        biomarkers=biomarkers,
        pdl1_cps=pdl1_cps,
        prior_anticancer_therapy=prior,
        treatments=patient_treatments,
        medications=patient_medications,
        comorbidities=patient_comorbidities,
        pregnant=pregnant,
        breastfeeding=breastfeeding,
        surgeries=tuple(surgeries),
    )


# --- Removing one fact ---------------------------------------------------------------------

SCALARS = (
    "sex",
    "birth_date",
    "primary_site",
    "siewert_type",
    "histology",
    "peritoneal_cytology_positive",
    "ecog",
    "karnofsky",
    "pdl1_cps",
    "prior_anticancer_therapy",
    "pregnant",
    "breastfeeding",
)
# Collections, and how their elements group into kinds.
KIND_OF: dict[str, Callable[[Any], Any]] = {
    "clinical": lambda key: key,
    "pathological": lambda key: key,
    "labs": lambda key: key,
    "biomarkers": lambda key: key,
    "metastatic_sites": lambda site: site,
    "treatments": lambda treatment: treatment.category,
    "medications": lambda medication: medication.category,
    "comorbidities": lambda comorbidity: comorbidity.kind,
    "surgeries": lambda surgery: (surgery.procedure, surgery.status),
}


def without(facts: f.PatientFacts, name: str, value: Any) -> f.PatientFacts:
    changes: dict[str, Any] = {name: value}
    return replace(facts, **changes)


ONE_FINDING = {"msi": "mmr", "mmr": "msi"}


def removals(facts: f.PatientFacts) -> Iterable[tuple[str, str, f.PatientFacts]]:
    """(what was removed, the field it belongs to, the patient without it) for every fact."""
    for name in SCALARS:
        if getattr(facts, name) is not None:
            yield name, name, without(facts, name, None)
    for name, kind_of in KIND_OF.items():
        held = getattr(facts, name)
        if not held:
            continue
        if isinstance(held, dict):
            yield name, name, without(facts, name, {})
            if len(held) > 1:
                for key in held:
                    if name == "biomarkers" and key in ONE_FINDING and ONE_FINDING[key] in held:
                        # MSI and MMR status are one finding recorded two ways: without one
                        # result the other answers for it, by design; a discordant pair
                        # (MSI-H beside pMMR) may then decide the other way.
                        continue
                    rest = {k: v for k, v in held.items() if k != key}
                    yield f"{name}[{key}]", name, without(facts, name, rest)
        else:
            yield name, name, without(facts, name, ())
            kinds = {kind_of(item) for item in held}
            if len(kinds) > 1:
                for kind in kinds:
                    others = tuple(item for item in held if kind_of(item) != kind)
                    yield f"{name}[{kind}]", name, without(facts, name, others)


@st.composite
def reductions(draw: st.DrawFn) -> tuple[f.PatientFacts, str, str, f.PatientFacts]:
    """A patient, one fact it holds, that fact's field and the patient without it."""
    facts = draw(patients())
    options = list(removals(facts))
    assume(options)
    removed, field_name, reduced = draw(st.sampled_from(options))
    return facts, removed, field_name, reduced


def evaluator(facts: f.PatientFacts) -> PatientEvaluator:
    return PatientEvaluator(facts, ON)


def describe(rule: Rule) -> str:
    return f"{rule.kind} ({rule.join}): " + "; ".join(repr(x) for x in rule.constraints)


READ_BY = {rule.signature: reads(rule) for rule in DISTINCT_RULES}
RULES_READING = {
    name: [rule for rule in PARSED_RULES if name in READ_BY[rule.signature]]
    for name in (*SCALARS, *KIND_OF)
}
trial_samples = st.lists(st.sampled_from(TRIALS), min_size=1, max_size=8, unique_by=id)

# --- 1. Removing a fact never creates ineligible -------------------------------------------


@settings(max_examples=150, deadline=None)
@given(facts=patients(), trials=trial_samples)
def test_removing_a_fact_never_creates_ineligible(
    facts: f.PatientFacts, trials: list[TrialRules]
) -> None:
    whole = evaluator(facts)
    verdicts = {trial.key: whole.evaluate(trial).verdict for trial in trials}
    for removed, field_name, reduced in removals(facts):
        less = evaluator(reduced)
        # A criterion that does not read the field cannot move (property 2 checks that).
        for rule in RULES_READING[field_name]:
            was = whole.criterion(rule)
            if was.disqualifying:
                continue
            now = less.criterion(rule)
            assert not now.disqualifying, (
                f"removing {removed} made a criterion disqualifying: {describe(rule)}\n"
                f"before: {was.outcome} ({was.reason})\nafter: {now.outcome} ({now.reason})"
            )
        for trial in trials:
            if verdicts[trial.key] is not Verdict.INELIGIBLE:
                assert less.evaluate(trial).verdict is not Verdict.INELIGIBLE, (
                    f"removing {removed} made {trial.nct_id} ineligible"
                )


# --- 2. Adding a fact leaves ineligible only through the criteria that read it --------------


@settings(max_examples=300, deadline=None)
@given(case=reductions(), trials=trial_samples)
def test_adding_a_fact_changes_only_the_criteria_that_read_it(
    case: tuple[f.PatientFacts, str, str, f.PatientFacts], trials: list[TrialRules]
) -> None:
    facts, added, field_name, reduced = case
    less, whole = evaluator(reduced), evaluator(facts)
    for rule in PARSED_RULES:
        if field_name in READ_BY[rule.signature]:
            continue
        was, now = less.criterion(rule), whole.criterion(rule)
        if was.disqualifying:
            assert now.disqualifying, (
                f"adding {added}, which it does not read, ended a disqualifying criterion: "
                f"{describe(rule)}\nbefore: {was.outcome} ({was.reason})\n"
                f"after: {now.outcome} ({now.reason})"
            )
        # Stronger: a criterion that does not read the fact does not move at all.
        assert now.outcome == was.outcome, (
            f"adding {added} changed a criterion that does not read {field_name}: "
            f"{describe(rule)}\nbefore: {was.outcome} ({was.reason})\n"
            f"after: {now.outcome} ({now.reason})"
        )
    for trial in trials:
        before = less.evaluate(trial)
        if before.verdict is not Verdict.INELIGIBLE:
            continue
        if whole.evaluate(trial).verdict is Verdict.INELIGIBLE:
            continue
        causes = [
            rule
            for rule in trial.rules
            if less.criterion(rule).disqualifying and field_name in READ_BY[rule.signature]
        ]
        assert causes, (
            f"adding {added} made {trial.nct_id} leave ineligible, but no criterion that was "
            f"disqualifying reads {field_name}"
        )


# --- 3. Every result is well formed --------------------------------------------------------


@settings(max_examples=80, deadline=None)
@given(facts=patients())
def test_every_result_is_explained(facts: f.PatientFacts) -> None:
    patient = evaluator(facts)
    for trial in TRIALS:
        result = patient.evaluate(trial)
        assert result.verdict in set(Verdict)
        assert len(result.criteria) == len(trial.rules)
        for rule, criterion in zip(trial.rules, result.criteria, strict=True):
            assert criterion.reason.strip(), f"{trial.nct_id}: no reason for {describe(rule)}"
            assert criterion.outcome in (Outcome.MET, Outcome.NOT_MET, Outcome.UNKNOWN)
            if criterion.outcome is Outcome.UNKNOWN and rule.constraints:
                assert criterion.missing or "not evaluated" in criterion.reason, (
                    f"{trial.nct_id}: unknown without missing facts: {describe(rule)} "
                    f"({criterion.reason})"
                )
