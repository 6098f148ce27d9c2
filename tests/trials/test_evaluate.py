"""The evaluator applied to real criteria: met / not met / unknown, each with its reason.

Pure Python, no database. Criteria come from real ClinicalTrials.gov records
(``trials/data/ctgov/v2``) read by the parser, turned into ``Rule`` objects as the matcher
does; where a kind of criterion does not occur in those records, a realistic sentence is
parsed instead. Patients are ``PatientFacts`` built here: one baseline gastric surgical
candidate and its variants (``dataclasses.replace``), all evaluated on one fixed date.

Outcomes are those of the criterion's own condition: an inclusion is satisfied when it is
met, an exclusion when it is not met (DOMAIN.md, "Eligibility outcomes").
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
from dataclasses import dataclass
from typing import Any

import pytest

from tests.trials.criteria_labels import parse_record, record
from tests.trials.lab_results import lab
from trials.ctgov.mapping import map_study
from trials.eligibility import constraints as c
from trials.eligibility.evaluate import (
    NEEDS_REVIEW,
    MatchResult,
    Outcome,
    PatientEvaluator,
    Rule,
    RuleInterner,
    SitePoint,
    TrialRules,
    Verdict,
    clinical_stage_group,
    deciding_facts,
    her2_status,
)
from trials.eligibility.facts import (
    Comorbidity,
    ComorbidityKind,
    LabValue,
    Medication,
    PatientFacts,
    Staging,
    Surgery,
    Treatment,
    TreatmentCategory,
    surgical_candidate,
)
from trials.eligibility.geo import Place, haversine_km
from trials.eligibility.parser import Criterion, parse_eligibility
from trials.eligibility.units import Analyte
from trials.eligibility.vocabulary import CancerSite, Histology

TODAY = datetime.date(2026, 11, 26)
MILAN = Place(45.4642, 9.1900, "CITY")
ROME = (41.9028, 12.4964)
PARIS = (48.8566, 2.3522)
MILAN_SITE = (45.4781, 9.2277)  # a hospital in Milan, a few km from the patient


# --- Criteria: real ones, read by the parser ---------------------------------------------------


@functools.cache
def _criteria(nct_id: str) -> tuple[Criterion, ...]:
    return tuple(parse_record(record(nct_id, "v2")))


def to_rule(criterion: Criterion) -> Rule:
    """A parsed criterion's constraints as a rule, as a coordinator confirmed them: these
    cases test the evaluator on the constraints read (a reading under review is left unknown
    by the matcher whatever they say: ``test_reading_review.py``)."""
    return Rule(
        criterion.position,
        criterion.kind,
        criterion.category,
        criterion.constraints,
        criterion.join,
    )


def real(nct_id: str, starts: str, *, parsed: bool = True) -> Rule:
    """The criterion of a real record whose text starts with ``starts`` (exactly one)."""
    found = [x for x in _criteria(nct_id) if x.text.startswith(starts)]
    assert len(found) == 1, f"{nct_id}: {len(found)} criteria start with {starts!r}"
    assert found[0].parsed is parsed, f"{nct_id}: {starts!r} read as {found[0].constraints}"
    return to_rule(found[0])


def real_rules(nct_id: str) -> tuple[Rule, ...]:
    """Every criterion of a record, headers without constraints left out (as the matcher)."""
    return tuple(to_rule(x) for x in _criteria(nct_id) if not (x.header and not x.constraints))


def written(sentence: str, kind: str = "inclusion") -> Rule:
    """A realistic criterion sentence (for kinds the recorded trials do not state), parsed."""
    heading = "Inclusion Criteria:" if kind == "inclusion" else "Exclusion Criteria:"
    found = [x for x in parse_eligibility(f"{heading}\n\n* {sentence}").criteria if not x.header]
    assert len(found) == 1, found
    assert found[0].kind == kind
    assert found[0].parsed, f"{sentence!r} not read"
    return to_rule(found[0])


def trial(nct_id: str, **overrides: Any) -> TrialRules:
    """A real record as the matcher sees it (status, ages, sex, sites), with overrides."""
    mapped = map_study(record(nct_id, "v2"))
    values: dict[str, Any] = {
        "key": nct_id,
        "nct_id": nct_id,
        "rules": real_rules(nct_id),
        "status": mapped.overall_status,
        "phases": tuple(mapped.phases),
        "minimum_age": float(mapped.minimum_age.years) if mapped.minimum_age else None,
        "maximum_age": float(mapped.maximum_age.years) if mapped.maximum_age else None,
        "sex": mapped.sex,
        "sites": tuple(
            SitePoint(site.latitude, site.longitude, site.status)
            for site in mapped.sites
            if site.latitude is not None and site.longitude is not None
        ),
    }
    values.update(overrides)
    return TrialRules(**values)


# Age and sex
AGE_18_70 = real("NCT03878472", "Registry record: minimum age 18 years, maximum age 70")
MALE_ONLY = real("NCT03418623", "Male participants")
# Performance status
ECOG_0_1 = real("NCT04592913", "World Health Organization (WHO)/ECOG performance status")
KARNOFSKY_70 = real("NCT03613142", "Karnofsky assessment no less than 70")
# Stage
T3_4B_N_POSITIVE_M0 = real("NCT03878472", "clinically diagnosed stage T3-4bN+M0")
CT3_4A_N_POSITIVE_M0 = written("Clinical stage cT3-4aN+M0 gastric adenocarcinoma")
STAGE_II_OR_HIGHER = written("Stage II or higher")
STAGE_III = real("NCT04677673", "Clinical stage: cTNM: stage III")
# Disease: site and histology
MATTERHORN_DISEASE = real("NCT04592913", "Patients with histologically documented gastric")
STOMACH_ADENOCARCINOMA = real("NCT03006705", "Patients with histologically confirmed adeno")
GASTRIC_OR_GEJ = real("NCT06798376", "Histologically confirmed gastric or gastroesophageal")
NOT_ADENOCARCINOMA = real("NCT04592913", "Patients with adenosquamous cell carcinoma")
# Metastasis and resectability
PERITONEAL_OR_DISTANT = real("NCT04592913", "Patients with peritoneal dissemination")
DISTANT_METASTASIS = real("NCT03878472", "Patients with distant metastasis.")
POSITIVE_CYTOLOGY = written("Positive peritoneal cytology", "exclusion")
RESECTABLE = real("NCT03878472", "Eligible and reasonably suitable for potentially curative")
# Laboratory values
HAEMOGLOBIN_9 = real("NCT05052801", "hemoglobin ≥ 9 g/dL without red blood cell")
HAEMOGLOBIN_90_G_L = written("Haemoglobin ≥ 90 g/L")
PLATELETS_100000 = real("NCT02356276", "platelets ≥ 100,000/mm3")
NEUTROPHILS_1500 = real("NCT02356276", "neutrophils ≥ 1,500/mm3")
CREATININE_ULN = real("NCT02581462", "Serum creatinine ≤ 1.5 x upper limit of normal")
BILIRUBIN_ULN = real("NCT02356276", "total bilirubin (TBIL) < 1.5 times ULN")
CRCL_50_EXCLUDED = real("NCT03878472", "moderate or severe renal injury")
CRCL_30 = real("NCT05052801", "calculated or measured creatinine clearance")
AST_CONDITIONAL = written("AST ≤ 2.5 x ULN or ≤ 5 x ULN if liver metastases")
AST_ALT_CONDITIONAL = real(
    "NCT03516279", "REGISTRATION TO TREATMENT (STEP 1): Aspartate aminotransferase (AST)"
)
BILIRUBIN_GILBERT = real("NCT04304248", "Total Bilirubin ≤ 1.5 x ULN (except subjects with Gilbert")
# Prior therapy
NO_PRIOR_ANTICANCER = real("NCT04592913", "No prior anti-cancer therapy for the current")
NO_PRIOR_ANTI_PD1 = real(
    "NCT03516279", "REGISTRATION TO TREATMENT (STEP 1): Patient must not have received prior"
)
PRIOR_CHECKPOINT_EXCLUDED = real("NCT04304248", "Patients who have had prior treatment with an")
PRIOR_CHEMO_FOR_GASTRIC_CANCER = real("NCT03006705", "Patients who have received non-surgical")
NO_PRIOR_CHEMO_FOR_GASTRIC_CANCER = written("No prior chemotherapy for gastric cancer")
CHEMO_WITHIN_14_DAYS = real("NCT03122548", "Prior chemotherapy, targeted small molecule therapy")
# Biomarkers
HER2_NEGATIVE = written("HER2-negative")
HER2_POSITIVE_EXCLUDED = real("NCT05052801", "Known human epidermal growth factor receptor 2")
MSI_EXCLUDED = real("NCT03997448", "Patients with known microsatellite instability")
PDL1_CPS_1 = written("PD-L1 CPS ≥ 1")
# Comorbidities
AUTOIMMUNE_EXCEPT_T1D = written(
    "Active autoimmune disease that has required systemic treatment in the past 2 years, "
    "except type 1 diabetes",
    "exclusion",
)
AUTOIMMUNE_2_YEARS = real("NCT03997448", "Active autoimmune disease that has required systemic")
ILD = real("NCT06567782", "Has any history of interstitial lung disease")
HBV_HCV = real("NCT03878472", "patients with untreated chronic hepatitis B")
HIV = real("NCT04304248", "Patients with known history of testing positive for human")
TRANSPLANT = real("NCT03878472", "history of allogeneic stem cell transplantation")
# Medications
STEROIDS_OVER_10 = real("NCT02210780", "Patients needing")
LIVE_VACCINE = real("NCT02743494", "Participants who have received a live/attenuated vaccine")
# Pregnancy and surgery
PREGNANT_EXCLUDED = real("NCT05913115", "Women who are pregnant or breastfeeding")
NOT_PREGNANT = real("NCT03878472", "Female patients should not be pregnant")
RADICAL_SURGERY_PLANNED = real("NCT04592913", "Patients must undergo radical surgery.")
PREVIOUS_GASTRECTOMY = real("NCT03273920", "Previous gastric resection")
# Never read into constraints
CONSENT = real("NCT03878472", "Written (signed) informed consent.", parsed=False)
CONTRACEPTION = real("NCT03878472", "Agree to take contraception measures", parsed=False)
LIFE_EXPECTANCY = real("NCT04592913", "Must have a life expectancy", parsed=False)


def test_the_real_criteria_read_as_the_cases_assume() -> None:
    """The cases below depend on these readings; a change in the parser shows here first."""

    def dicts(rule: Rule) -> list[dict[str, Any]]:
        return [x.as_dict() for x in rule.constraints]

    assert dicts(AGE_18_70) == [{"type": "age", "min": 18.0, "max": 70.0}]
    assert dicts(T3_4B_N_POSITIVE_M0) == [
        {"type": "stage", "category": "T", "min": "T3", "max": "T4b"},
        {"type": "stage", "category": "N", "min": "N1"},
        {"type": "stage", "category": "M", "any_of": ["M0"]},
    ]
    assert dicts(CT3_4A_N_POSITIVE_M0)[0] == {
        "type": "stage",
        "category": "T",
        "min": "T3",
        "max": "T4a",
    }
    assert dicts(NOT_ADENOCARCINOMA) == [
        {"type": "histology", "any_of": ["adenosquamous", "squamous", "gist"]}
    ]
    assert PERITONEAL_OR_DISTANT.join == "any"
    assert dicts(AST_CONDITIONAL) == [
        {"type": "lab", "analyte": "ast", "op": "<=", "uln": 2.5},
        {"type": "lab", "analyte": "ast", "op": "<=", "uln": 5.0, "if": "liver_metastases"},
    ]
    assert AST_CONDITIONAL.join == "all"
    assert dicts(STEROIDS_OVER_10) == [
        {
            "type": "medication",
            "category": "systemic_steroid",
            "present": True,
            "over_mg_per_day": 10.0,
            "within_days": 14,
        }
    ]
    assert dicts(AUTOIMMUNE_EXCEPT_T1D)[0]["except"] == ["type 1 diabetes"]
    assert dicts(HAEMOGLOBIN_90_G_L) == [
        {"type": "lab", "analyte": "haemoglobin", "op": ">=", "value": 9.0}
    ]
    assert dicts(PLATELETS_100000) == [
        {"type": "lab", "analyte": "platelets", "op": ">=", "value": 100.0}
    ]
    assert (CONSENT.category, CONTRACEPTION.category) == ("consent", "pregnancy")


# --- Patients ------------------------------------------------------------------------------------


BASELINE = PatientFacts(
    external_id="P-baseline",
    sex="male",
    birth_date=datetime.date(1960, 3, 15),  # 66 on TODAY
    location=MILAN,
    primary_site=CancerSite.STOMACH,
    histology=Histology.ADENOCARCINOMA,
    clinical={"T": Staging("T3"), "N": Staging("N1"), "M": Staging("M0")},
    peritoneal_cytology_positive=False,
    ecog=1,
    labs={
        a.analyte: a
        for a in (
            lab(Analyte.HAEMOGLOBIN, 12.8, "g/dL"),
            lab(Analyte.ANC, 3.1, "10^9/L"),
            lab(Analyte.PLATELETS, 240, "10^9/L"),
            lab(Analyte.CREATININE, 88.4, "umol/L", uln=106),
            lab(Analyte.BILIRUBIN, 0.7, "mg/dL", uln=1.2),
            lab(Analyte.AST, 28, "U/L", uln=40),
            lab(Analyte.ALT, 25, "U/L", uln=40),
            lab(Analyte.WEIGHT, 72, "kg"),
        )
    },
    biomarkers={"her2_ihc": "1+", "msi": "MSS"},
    pdl1_cps=5.0,
    prior_anticancer_therapy=False,
    surgeries=(Surgery("subtotal_gastrectomy", "planned"),),
)


def patient(**changes: Any) -> PatientFacts:
    """The baseline gastric surgical candidate with some facts changed."""
    return dataclasses.replace(BASELINE, **changes)


def with_labs(*values: LabValue, without: tuple[Analyte, ...] = (), **changes: Any) -> PatientFacts:
    labs = {k: v for k, v in BASELINE.labs.items() if k not in without}
    labs.update({value.analyte: value for value in values})
    return patient(labs=labs, **changes)


def staged(t: str | None, n: str | None, m: str | None, **changes: Any) -> PatientFacts:
    clinical = {k: Staging(v) for k, v in (("T", t), ("N", n), ("M", m)) if v}
    return patient(clinical=clinical, **changes)


def born(year: int, month: int, day: int) -> PatientFacts:
    return patient(birth_date=datetime.date(year, month, day))


def treated(*treatments: Treatment, prior: bool | None = True) -> PatientFacts:
    return patient(treatments=treatments, prior_anticancer_therapy=prior)


def ill(*comorbidities: Comorbidity) -> PatientFacts:
    return patient(comorbidities=comorbidities)


def taking(*medications: Medication) -> PatientFacts:
    return patient(medications=medications)


def woman(**changes: Any) -> PatientFacts:
    return patient(sex="female", **changes)


FLOT = Treatment(
    TreatmentCategory.CHEMOTHERAPY,
    agent="FLOT",
    intent="neoadjuvant",
    status="completed",
    start=datetime.date(2026, 3, 1),
    end=datetime.date(2026, 6, 1),
)
NIVOLUMAB = Treatment(
    TreatmentCategory.IMMUNOTHERAPY,
    agent="nivolumab",
    status="completed",
    start=datetime.date(2021, 1, 10),
    end=datetime.date(2021, 7, 1),
)
RADIOTHERAPY = Treatment(
    TreatmentCategory.RADIOTHERAPY,
    status="completed",
    start=datetime.date(2026, 4, 1),
    end=datetime.date(2026, 5, 10),
)
AUTOIMMUNE = ComorbidityKind.AUTOIMMUNE
LIVER_METASTASES: dict[str, Any] = {
    "metastatic_sites": ("liver",),
    "clinical": {"T": Staging("T3")},
}


# --- One criterion, one patient: the table -----------------------------------------------------


@dataclass(frozen=True)
class Case:
    kind: str  # the kind of criterion, for the coverage check
    name: str
    rule: Rule
    facts: PatientFacts
    outcome: Outcome
    reason: tuple[str, ...] = ()  # substrings the reason must contain
    missing: str | None = None  # for unknowns: the fact to ask for (a substring)


MET, NOT_MET, UNKNOWN = Outcome.MET, Outcome.NOT_MET, Outcome.UNKNOWN

CASES = [
    # Age: completed years on the evaluation date, both bounds inclusive.
    Case("age", "18th birthday today", AGE_18_70, born(2008, 11, 26), MET, ("age 18",)),
    Case("age", "18 tomorrow", AGE_18_70, born(2008, 11, 27), NOT_MET, ("age 17 < 18",)),
    Case("age", "70th birthday today", AGE_18_70, born(1956, 11, 26), MET, ("age 70",)),
    Case("age", "71st birthday tomorrow", AGE_18_70, born(1955, 11, 27), MET, ("age 70",)),
    Case("age", "71st birthday today", AGE_18_70, born(1955, 11, 26), NOT_MET, ("age 71 > 70",)),
    Case("age", "no birth date", AGE_18_70, patient(birth_date=None), UNKNOWN, ("birth date",)),
    # Sex
    Case("sex", "male", MALE_ONLY, BASELINE, MET, ("male patient",)),
    Case("sex", "female", MALE_ONLY, woman(), NOT_MET, ("female patient", "male patients only")),
    Case("sex", "not recorded", MALE_ONLY, patient(sex=None), UNKNOWN, ("sex not recorded",)),
    Case("sex", "other", MALE_ONLY, patient(sex="other"), UNKNOWN, ("sex not recorded",), "sex"),
    # ECOG, and Karnofsky mapped to ECOG (DOMAIN.md: 90-100 ~ 0, 70-80 ~ 1, 50-60 ~ 2)
    Case("ecog", "ECOG 0", ECOG_0_1, patient(ecog=0), MET, ("ECOG 0", "0-1 allowed")),
    Case("ecog", "ECOG 2", ECOG_0_1, patient(ecog=2), NOT_MET, ("ECOG 2 > 1",)),
    Case(
        "ecog",
        "Karnofsky 80 is ECOG 1",
        ECOG_0_1,
        patient(ecog=None, karnofsky=80),
        MET,
        ("ECOG 1 (from Karnofsky 80%)",),
    ),
    Case(
        "ecog",
        "Karnofsky 60 is ECOG 2",
        ECOG_0_1,
        patient(ecog=None, karnofsky=60),
        NOT_MET,
        ("ECOG 2 (from Karnofsky 60%) > 1",),
    ),
    Case(
        "ecog",
        "not recorded",
        ECOG_0_1,
        patient(ecog=None),
        UNKNOWN,
        ("no performance status",),
        "ECOG",
    ),
    Case("karnofsky", "Karnofsky 70", KARNOFSKY_70, patient(karnofsky=70), MET, ("Karnofsky 70%",)),
    Case(
        "karnofsky",
        "Karnofsky 60",
        KARNOFSKY_70,
        patient(karnofsky=60),
        NOT_MET,
        ("Karnofsky 60%", "needs ≥ 70"),
    ),
    Case(
        "karnofsky",
        "ECOG 1 is Karnofsky 70-80",
        KARNOFSKY_70,
        patient(ecog=1),
        MET,
        ("ECOG 1 (Karnofsky 70-80%)",),
    ),
    Case(
        "karnofsky",
        "ECOG 2 is Karnofsky 50-60",
        KARNOFSKY_70,
        patient(ecog=2),
        NOT_MET,
        ("ECOG 2 (Karnofsky 50-60%)",),
    ),
    Case(
        "karnofsky",
        "not recorded",
        KARNOFSKY_70,
        patient(ecog=None),
        UNKNOWN,
        ("no performance status",),
    ),
    # T / N / M ranges: "T3-4bN+M0" (real), "cT3-4aN+M0" (written)
    Case(
        "tnm",
        "cT3N1M0 in T3-4bN+M0",
        T3_4B_N_POSITIVE_M0,
        BASELINE,
        MET,
        ("cT3 is T", "T3 to T4b", "cN1 is N1 or higher", "cM0 is M0"),
    ),
    Case("tnm", "cT2", T3_4B_N_POSITIVE_M0, staged("T2", "N1", "M0"), NOT_MET, ("cT2 is not",)),
    Case("tnm", "cN0", T3_4B_N_POSITIVE_M0, staged("T3", "N0", "M0"), NOT_MET, ("cN0 is not N1",)),
    Case(
        "tnm",
        "N not recorded",
        T3_4B_N_POSITIVE_M0,
        staged("T3", None, "M0"),
        UNKNOWN,
        ("no N stage recorded",),
        "clinical N stage",
    ),
    Case("tnm", "NX", T3_4B_N_POSITIVE_M0, staged("T3", "NX", "M0"), UNKNOWN, ("cNX",)),
    Case(
        "tnm",
        "cT4aN3bM0 in T3-4aN+M0",
        CT3_4A_N_POSITIVE_M0,
        staged("T4a", "N3b", "M0"),
        MET,
        ("cT4a is T", "T3 to T4a"),
    ),
    Case(
        "tnm",
        "cT4b outside T3-4a",
        CT3_4A_N_POSITIVE_M0,
        staged("T4b", "N1", "M0"),
        NOT_MET,
        ("cT4b is not T", "T3 to T4a"),
    ),
    Case(
        "tnm",
        "bare T4 against a T4a bound",
        CT3_4A_N_POSITIVE_M0,
        staged("T4", "N1", "M0"),
        UNKNOWN,
        ("cT4: too coarse to tell", "T3 to T4a"),
        "clinical T stage",
    ),
    Case(
        "tnm",
        "bare T4 inside T3-4b",
        T3_4B_N_POSITIVE_M0,
        staged("T4", "N1", "M0"),
        MET,
        ("cT4 is T", "T3 to T4b"),
    ),
    Case(
        "tnm",
        "peritoneal cytology makes M1",
        T3_4B_N_POSITIVE_M0,
        staged("T3", "N1", None, peritoneal_cytology_positive=True),
        NOT_MET,
        ("M1 (metastasis recorded: positive peritoneal cytology) is not M0",),
    ),
    # Stage groups: recorded, or derived from cTNM (AJCC 8th clinical)
    Case(
        "stage group",
        "cT3N1M0 is III",
        STAGE_II_OR_HIGHER,
        BASELINE,
        MET,
        ("stage III (from T3 N1 M0, AJCC 8th clinical)", "II or higher"),
    ),
    Case(
        "stage group",
        "cT1N0M0 is I",
        STAGE_II_OR_HIGHER,
        staged("T1", "N0", "M0"),
        NOT_MET,
        ("stage I (from T1 N0 M0", "is not II or higher"),
    ),
    Case(
        "stage group",
        "recorded IIA",
        STAGE_II_OR_HIGHER,
        patient(clinical={"stage": Staging("IIA")}),
        MET,
        ("clinical stage IIA",),
    ),
    Case(
        "stage group",
        "M not recorded",
        STAGE_II_OR_HIGHER,
        staged("T3", "N1", None),
        UNKNOWN,
        ("no stage group recorded",),
        "clinical stage group",
    ),
    Case(
        "stage group",
        "cT4aN2M0 is III",
        STAGE_III,
        staged("T4a", "N2", "M0"),
        MET,
        ("stage III (from T4a N2 M0",),
    ),
    Case(
        "stage group",
        "cT4bN0M0 is IVA",
        STAGE_III,
        staged("T4b", "N0", "M0"),
        NOT_MET,
        ("stage IVA",),
    ),
    Case(
        "stage group",
        "bare T4 gives no group",
        STAGE_III,
        staged("T4", "N1", "M0"),
        UNKNOWN,
        ("no stage group recorded",),
    ),
    # Primary site: GEJ against a gastric-only criterion depends on Siewert type
    Case("site", "stomach", STOMACH_ADENOCARCINOMA, BASELINE, MET, ("primary stomach",)),
    Case(
        "site",
        "GEJ Siewert III",
        STOMACH_ADENOCARCINOMA,
        patient(primary_site=CancerSite.GEJ, siewert_type="III"),
        MET,
        ("GEJ Siewert III, staged and treated as gastric",),
    ),
    Case(
        "site",
        "GEJ Siewert I",
        STOMACH_ADENOCARCINOMA,
        patient(primary_site=CancerSite.GEJ, siewert_type="I"),
        NOT_MET,
        ("GEJ Siewert I",),
    ),
    Case(
        "site",
        "GEJ Siewert II",
        STOMACH_ADENOCARCINOMA,
        patient(primary_site=CancerSite.GEJ, siewert_type="II"),
        UNKNOWN,
        ("GEJ tumour Siewert II", "needs review"),
        "Siewert type",
    ),
    Case(
        "site",
        "GEJ in a gastric or GEJ criterion",
        GASTRIC_OR_GEJ,
        patient(primary_site=CancerSite.GEJ, siewert_type="I"),
        MET,
        ("primary gastroesophageal junction",),
    ),
    Case(
        "site",
        "esophagus",
        GASTRIC_OR_GEJ,
        patient(primary_site=CancerSite.ESOPHAGUS),
        NOT_MET,
        ("primary esophagus, not stomach or gej",),
    ),
    Case(
        "site",
        "not recorded",
        GASTRIC_OR_GEJ,
        patient(primary_site=None),
        UNKNOWN,
        ("primary tumour site not recorded",),
    ),
    # Histology: the squamous / adenosquamous / GIST exclusion; signet ring is adenocarcinoma
    Case(
        "histology",
        "adenocarcinoma",
        NOT_ADENOCARCINOMA,
        BASELINE,
        NOT_MET,
        ("adenocarcinoma, not adenosquamous or squamous or gist",),
    ),
    Case(
        "histology",
        "signet ring, not excluded",
        NOT_ADENOCARCINOMA,
        patient(histology=Histology.SIGNET_RING),
        NOT_MET,
        ("signet ring cell carcinoma, not",),
    ),
    Case(
        "histology",
        "squamous",
        NOT_ADENOCARCINOMA,
        patient(histology=Histology.SQUAMOUS),
        MET,
        ("squamous cell carcinoma",),
    ),
    Case(
        "histology",
        "adenosquamous",
        NOT_ADENOCARCINOMA,
        patient(histology=Histology.ADENOSQUAMOUS),
        MET,
        ("adenosquamous carcinoma",),
    ),
    Case(
        "histology",
        "GIST",
        NOT_ADENOCARCINOMA,
        patient(histology=Histology.GIST),
        MET,
        ("gastrointestinal stromal tumour",),
    ),
    Case(
        "histology",
        "signet ring counts as adenocarcinoma",
        STOMACH_ADENOCARCINOMA,
        patient(histology=Histology.SIGNET_RING),
        MET,
        ("signet ring cell carcinoma, counts as adenocarcinoma",),
    ),
    Case(
        "histology",
        "not recorded",
        NOT_ADENOCARCINOMA,
        patient(histology=None),
        UNKNOWN,
        ("histology not recorded",),
        "histology",
    ),
    Case(
        "histology",
        "MATTERHORN disease criterion with diffuse type, stage III",
        MATTERHORN_DISEASE,
        patient(histology=Histology.DIFFUSE),
        MET,
        ("counts as adenocarcinoma", "resectable", "stage III"),
    ),
    # Distant and peritoneal metastasis
    Case(
        "metastasis",
        "cM0",
        PERITONEAL_OR_DISTANT,
        BASELINE,
        NOT_MET,
        ("cM0: no peritoneal metastasis", "cM0: no distant metastasis"),
    ),
    Case(
        "metastasis",
        "positive peritoneal cytology",
        PERITONEAL_OR_DISTANT,
        staged("T3", "N1", None, peritoneal_cytology_positive=True),
        MET,
        ("positive peritoneal cytology",),
    ),
    Case(
        "metastasis",
        "peritoneal cytology positive despite cM0 recorded",
        DISTANT_METASTASIS,
        patient(peritoneal_cytology_positive=True),
        MET,
        ("positive peritoneal cytology (M1)",),
    ),
    Case(
        "metastasis",
        "liver metastases",
        DISTANT_METASTASIS,
        patient(**LIVER_METASTASES),
        MET,
        ("distant metastasis recorded: liver",),
    ),
    Case(
        "metastasis",
        "cytology exclusion, cytology negative and cM0",
        POSITIVE_CYTOLOGY,
        BASELINE,
        NOT_MET,
        ("cM0: no peritoneal metastasis",),
    ),
    Case(
        "metastasis",
        "no M stage",
        PERITONEAL_OR_DISTANT,
        staged("T3", "N1", None, peritoneal_cytology_positive=None),
        UNKNOWN,
        ("no M stage or metastatic sites recorded",),
        "clinical M stage",
    ),
    # Resectability
    Case(
        "resectability",
        "cM0, surgery planned",
        RESECTABLE,
        BASELINE,
        MET,
        ("resectable: subtotal gastrectomy planned",),
    ),
    Case(
        "resectability",
        "cT4b",
        RESECTABLE,
        staged("T4b", "N1", "M0"),
        NOT_MET,
        ("not resectable: cT4b",),
    ),
    Case(
        "resectability",
        "peritoneal cytology",
        RESECTABLE,
        patient(peritoneal_cytology_positive=True),
        NOT_MET,
        ("not resectable: positive peritoneal cytology",),
    ),
    Case(
        "resectability",
        "no T and M, nothing planned",
        RESECTABLE,
        patient(clinical={}, peritoneal_cytology_positive=None, surgeries=()),
        UNKNOWN,
        ("resectability not settled", "clinical T stage", "clinical M stage"),
    ),
    # Haemoglobin: g/L is a tenth of g/dL (95 g/L is 9.5 g/dL, not 95 g/dL)
    Case(
        "haemoglobin",
        "95 g/L",
        HAEMOGLOBIN_9,
        with_labs(lab(Analyte.HAEMOGLOBIN, 95, "g/L")),
        MET,
        ("haemoglobin 9.5 g/dL (recorded as 95 g/L) ≥ 9",),
    ),
    Case(
        "haemoglobin",
        "85 g/L",
        HAEMOGLOBIN_9,
        with_labs(lab(Analyte.HAEMOGLOBIN, 85, "g/L")),
        NOT_MET,
        ("haemoglobin 8.5 g/dL (recorded as 85 g/L) < 9 (needs ≥ 9)",),
    ),
    Case(
        "haemoglobin",
        "90 g/L against 90 g/L: the boundary",
        HAEMOGLOBIN_90_G_L,
        with_labs(lab(Analyte.HAEMOGLOBIN, 90, "g/L")),
        MET,
        ("haemoglobin 9 g/dL (recorded as 90 g/L) ≥ 9",),
    ),
    Case(
        "haemoglobin",
        "5 mmol/L",
        HAEMOGLOBIN_9,
        with_labs(lab(Analyte.HAEMOGLOBIN, 5, "mmol/L")),
        NOT_MET,
        ("haemoglobin 8.057 g/dL (recorded as 5 mmol/L)",),
    ),
    Case(
        "haemoglobin",
        "not recorded",
        HAEMOGLOBIN_9,
        with_labs(without=(Analyte.HAEMOGLOBIN,)),
        UNKNOWN,
        ("no haemoglobin recorded",),
        "haemoglobin",
    ),
    # Cell counts per mm3
    Case(
        "platelets",
        "150,000/mm3",
        PLATELETS_100000,
        with_labs(lab(Analyte.PLATELETS, 150_000, "/mm3")),
        MET,
        ("platelet count 150 10^9/L (recorded as 150000 /mm3) ≥ 100",),
    ),
    Case(
        "platelets",
        "90,000/mm3",
        PLATELETS_100000,
        with_labs(lab(Analyte.PLATELETS, 90_000, "/mm3")),
        NOT_MET,
        ("platelet count 90 10^9/L", "< 100 (needs ≥ 100)"),
    ),
    Case(
        "platelets",
        "not recorded",
        PLATELETS_100000,
        with_labs(without=(Analyte.PLATELETS,)),
        UNKNOWN,
        ("no platelet count recorded",),
    ),
    Case(
        "neutrophils",
        "1,500/mm3 at the boundary",
        NEUTROPHILS_1500,
        with_labs(lab(Analyte.ANC, 1500, "cells/mm3")),
        MET,
        ("absolute neutrophil count 1.5 10^9/L", "≥ 1.5"),
    ),
    # x ULN: the result's own upper limit, else the default range, said so
    Case(
        "uln",
        "creatinine 150 umol/L, default ULN",
        CREATININE_ULN,
        with_labs(lab(Analyte.CREATININE, 150, "umol/L")),
        MET,
        ("creatinine 1.697 mg/dL = 1.41 x ULN", "ULN 1.2 mg/dL, default", "within ≤ 1.5 x ULN"),
    ),
    Case(
        "uln",
        "creatinine 150 umol/L, own ULN 88.4 umol/L",
        CREATININE_ULN,
        with_labs(lab(Analyte.CREATININE, 150, "umol/L", uln=88.4)),
        NOT_MET,
        ("= 1.7 x ULN", "ULN 1 mg/dL, the result's reference range", "outside ≤ 1.5 x ULN"),
    ),
    Case(
        "uln",
        "creatinine not recorded",
        CREATININE_ULN,
        with_labs(without=(Analyte.CREATININE,)),
        UNKNOWN,
        ("no creatinine recorded",),
        "creatinine",
    ),
    Case(
        "uln",
        "bilirubin 30 umol/L, own ULN 21 umol/L",
        BILIRUBIN_ULN,
        with_labs(lab(Analyte.BILIRUBIN, 30, "umol/L", uln=21)),
        MET,
        ("total bilirubin 1.754 mg/dL = 1.43 x ULN", "the result's reference range"),
    ),
    Case(
        "uln",
        "bilirubin 2 mg/dL, default ULN",
        BILIRUBIN_ULN,
        with_labs(lab(Analyte.BILIRUBIN, 2, "mg/dL")),
        NOT_MET,
        ("= 1.67 x ULN", "default; the result gives no reference range"),
    ),
    # Creatinine clearance by Cockcroft-Gault: (140 - 66) x 72 / (72 x 1.0) = 74 mL/min
    Case(
        "clearance",
        "74 mL/min is not <= 50",
        CRCL_50_EXCLUDED,
        BASELINE,
        NOT_MET,
        (
            "creatinine clearance 74 mL/min",
            "Cockcroft-Gault: 66 y, 72 kg, male, creatinine 1 mg/dL",
        ),
    ),
    Case(
        "clearance",
        "female: x 0.85",
        CRCL_50_EXCLUDED,
        woman(),
        NOT_MET,
        ("creatinine clearance 62.9 mL/min", "66 y, 72 kg, female, creatinine 1 mg/dL"),
    ),
    Case(
        "clearance",
        "creatinine 176.8 umol/L: 37 mL/min",
        CRCL_50_EXCLUDED,
        with_labs(lab(Analyte.CREATININE, 176.8, "umol/L")),
        MET,
        ("creatinine clearance 37 mL/min", "creatinine 2 mg/dL", "≤ 50"),
    ),
    Case(
        "clearance",
        "weight in lb",
        CRCL_30,
        with_labs(lab(Analyte.WEIGHT, 110, "lb")),
        MET,
        ("creatinine clearance 51.3 mL/min", "49.9 kg", "≥ 30"),
    ),
    Case(
        "clearance",
        "measured",
        CRCL_30,
        with_labs(lab(Analyte.CREATININE_CLEARANCE, 25, "mL/min")),
        NOT_MET,
        ("creatinine clearance 25 mL/min (measured)", "needs ≥ 30"),
    ),
    Case(
        "clearance",
        "no weight",
        CRCL_30,
        with_labs(without=(Analyte.WEIGHT,)),
        UNKNOWN,
        ("creatinine clearance unknown (no weight)",),
        "creatinine clearance",
    ),
    # "AST <= 2.5 x ULN or <= 5 x ULN if liver metastases"
    Case(
        "conditional",
        "liver metastases, AST 4 x ULN",
        AST_CONDITIONAL,
        with_labs(lab(Analyte.AST, 160, "U/L", uln=40), **LIVER_METASTASES),
        MET,
        ("liver metastases", "= 4 x ULN", "within ≤ 5 x ULN"),
    ),
    Case(
        "conditional",
        "no liver metastases (cM0), AST 4 x ULN",
        AST_CONDITIONAL,
        with_labs(lab(Analyte.AST, 160, "U/L", uln=40)),
        NOT_MET,
        ("= 4 x ULN", "outside ≤ 2.5 x ULN"),
    ),
    Case(
        "conditional",
        "liver metastases, AST 6 x ULN",
        AST_CONDITIONAL,
        with_labs(lab(Analyte.AST, 240, "U/L", uln=40), **LIVER_METASTASES),
        NOT_MET,
        ("= 6 x ULN", "outside ≤ 5 x ULN"),
    ),
    Case(
        "conditional",
        "AST 2 x ULN, liver not known",
        AST_CONDITIONAL,
        with_labs(lab(Analyte.AST, 80, "U/L", uln=40), clinical={}),
        MET,
        ("= 2 x ULN", "within ≤ 2.5 x ULN"),
    ),
    Case(
        "conditional",
        "AST 4 x ULN, liver not known",
        AST_CONDITIONAL,
        with_labs(lab(Analyte.AST, 160, "U/L", uln=40), clinical={}),
        UNKNOWN,
        ("= 4 x ULN",),
        "clinical M stage",
    ),
    Case(
        "conditional",
        "AST 4 x ULN, cM1 without sites",
        AST_CONDITIONAL,
        with_labs(lab(Analyte.AST, 160, "U/L", uln=40), clinical={"M": Staging("M1")}),
        UNKNOWN,
        ("cM1: sites not recorded", "= 4 x ULN"),
        "liver metastasis",
    ),
    Case(
        "conditional",
        "real AST and ALT criterion, liver metastases, AST 4 x ULN by the default ULN",
        AST_ALT_CONDITIONAL,
        with_labs(lab(Analyte.AST, 160, "U/L"), **LIVER_METASTASES),
        MET,
        ("= 4 x ULN", "default"),
    ),
    Case(
        "conditional",
        "Gilbert syndrome, bilirubin 2.5 mg/dL (< 3.0 mg/dL allowed)",
        BILIRUBIN_GILBERT,
        with_labs(
            lab(Analyte.BILIRUBIN, 2.5, "mg/dL", uln=1.2),
            comorbidities=(Comorbidity(ComorbidityKind.OTHER, "Gilbert syndrome"),),
        ),
        MET,
        ("gilbert", "total bilirubin 2.5 mg/dL"),
    ),
    Case(
        "conditional",
        "no Gilbert syndrome recorded, bilirubin 2.5 mg/dL",
        BILIRUBIN_GILBERT,
        with_labs(lab(Analyte.BILIRUBIN, 2.5, "mg/dL", uln=1.2)),
        UNKNOWN,
        ("Gilbert syndrome not recorded",),
    ),
    # Prior therapy
    Case(
        "prior therapy",
        "explicitly none",
        NO_PRIOR_ANTICANCER,
        BASELINE,
        MET,
        ("no anticancer therapy before, as recorded",),
    ),
    Case(
        "prior therapy",
        "FLOT given",
        NO_PRIOR_ANTICANCER,
        treated(FLOT),
        NOT_MET,
        ("prior anticancer therapy: FLOT, ended 2026-06-01",),
    ),
    Case(
        "prior therapy",
        "FLOT planned, not given",
        NO_PRIOR_ANTICANCER,
        treated(dataclasses.replace(FLOT, status="planned"), prior=False),
        MET,
        ("no anticancer therapy before",),
    ),
    Case(
        "prior therapy",
        "prior anticancer therapy: yes, no details",
        NO_PRIOR_ANTICANCER,
        treated(prior=True),
        NOT_MET,
        ("anticancer therapy",),
    ),
    Case(
        "prior therapy",
        "not recorded",
        NO_PRIOR_ANTICANCER,
        treated(prior=None),
        UNKNOWN,
        ("prior anticancer therapy not recorded",),
        "prior anticancer therapy",
    ),
    Case(
        "prior anti-PD-1",
        "nivolumab",
        NO_PRIOR_ANTI_PD1,
        treated(NIVOLUMAB),
        NOT_MET,
        ("prior anti-PD-1: nivolumab",),
    ),
    Case(
        "prior anti-PD-1",
        "explicitly no prior therapy",
        NO_PRIOR_ANTI_PD1,
        BASELINE,
        MET,
        ("no prior anti-PD-1",),
    ),
    Case(
        "prior anti-PD-1",
        "chemotherapy only recorded",
        NO_PRIOR_ANTI_PD1,
        treated(FLOT),
        UNKNOWN,
        ("prior anti-PD-1 not recorded",),
    ),
    Case(
        "prior anti-PD-1",
        "exclusion: pembrolizumab, class from the drug list",
        PRIOR_CHECKPOINT_EXCLUDED,
        treated(dataclasses.replace(NIVOLUMAB, agent="pembrolizumab")),
        MET,
        ("pembrolizumab",),
    ),
    Case(
        "prior anti-PD-1",
        "exclusion: class given, agent unnamed",
        PRIOR_CHECKPOINT_EXCLUDED,
        treated(
            Treatment(TreatmentCategory.OTHER, agent="study antibody", agent_class="anti-PD-L1")
        ),
        MET,
        ("anti-PD-L1: study antibody",),
    ),
    Case(
        "prior chemotherapy",
        "exclusion: FLOT for gastric cancer",
        PRIOR_CHEMO_FOR_GASTRIC_CANCER,
        treated(FLOT),
        MET,
        ("prior chemotherapy: FLOT",),
    ),
    Case(
        "prior chemotherapy",
        "exclusion: none, as recorded",
        PRIOR_CHEMO_FOR_GASTRIC_CANCER,
        BASELINE,
        NOT_MET,
        ("no prior radiotherapy", "no prior chemotherapy"),
    ),
    Case(
        "prior chemotherapy",
        "exclusion: not recorded",
        PRIOR_CHEMO_FOR_GASTRIC_CANCER,
        treated(prior=None),
        UNKNOWN,
        ("prior chemotherapy not recorded",),
    ),
    Case(
        "prior chemotherapy",
        "inclusion: no prior chemotherapy, FLOT given",
        NO_PRIOR_CHEMO_FOR_GASTRIC_CANCER,
        treated(FLOT),
        NOT_MET,
        ("prior chemotherapy: FLOT",),
    ),
    Case(
        "within days",
        "chemotherapy ended 10 days ago",
        CHEMO_WITHIN_14_DAYS,
        treated(dataclasses.replace(FLOT, end=datetime.date(2026, 11, 16))),
        MET,
        ("chemotherapy in the last 14 days: FLOT, ended 2026-11-16",),
    ),
    Case(
        "within days",
        "chemotherapy ended in June, radiotherapy in May",
        CHEMO_WITHIN_14_DAYS,
        treated(FLOT, RADIOTHERAPY),
        NOT_MET,
        (
            "chemotherapy recorded, none in the last 14 days",
            "radiotherapy recorded, none in the last 14 days",
        ),
    ),
    Case(
        "within days",
        "chemotherapy ended in June, radiotherapy not recorded",
        CHEMO_WITHIN_14_DAYS,
        treated(FLOT),
        UNKNOWN,
        ("prior radiotherapy in the last 14 days not recorded",),
        "prior radiotherapy",
    ),
    Case(
        "within days",
        "chemotherapy ongoing",
        CHEMO_WITHIN_14_DAYS,
        treated(dataclasses.replace(FLOT, status="active", end=None)),
        MET,
        ("chemotherapy in the last 14 days: FLOT",),
    ),
    Case(
        "within days",
        "chemotherapy without dates",
        CHEMO_WITHIN_14_DAYS,
        treated(dataclasses.replace(FLOT, start=None, end=None)),
        UNKNOWN,
        ("chemotherapy: FLOT, dates not recorded",),
        "dates of prior chemotherapy",
    ),
    # HER2 (ASCO/CAP gastric): IHC 0/1+ negative, 3+ or 2+ amplified positive, 2+ alone equivocal
    Case("her2", "IHC 1+", HER2_NEGATIVE, BASELINE, MET, ("HER2 negative (IHC 1+)",)),
    Case(
        "her2",
        "IHC 3+",
        HER2_NEGATIVE,
        patient(biomarkers={"her2_ihc": "3+"}),
        NOT_MET,
        ("HER2 positive (IHC 3+), not negative",),
    ),
    Case(
        "her2",
        "IHC 2+ ISH amplified",
        HER2_NEGATIVE,
        patient(biomarkers={"her2_ihc": "2+", "her2_ish": "amplified"}),
        NOT_MET,
        ("HER2 positive (IHC 2+, ISH amplified)",),
    ),
    Case(
        "her2",
        "IHC 2+ ISH not amplified",
        HER2_NEGATIVE,
        patient(biomarkers={"her2_ihc": "2+", "her2_ish": "not amplified"}),
        MET,
        ("HER2 negative (IHC 2+, ISH not amplified)",),
    ),
    Case(
        "her2",
        "IHC 2+ without ISH: equivocal",
        HER2_NEGATIVE,
        patient(biomarkers={"her2_ihc": "2+"}),
        UNKNOWN,
        ("HER2 equivocal (IHC 2+)",),
        "HER2",
    ),
    Case(
        "her2",
        "exclusion of HER2-positive: IHC 1+",
        HER2_POSITIVE_EXCLUDED,
        BASELINE,
        NOT_MET,
        ("HER2 negative (IHC 1+), not positive",),
    ),
    Case(
        "her2",
        "exclusion of HER2-positive: IHC 2+ ISH amplified",
        HER2_POSITIVE_EXCLUDED,
        patient(biomarkers={"her2_ihc": "2+", "her2_ish": "amplified"}),
        MET,
        ("HER2 positive (IHC 2+, ISH amplified)",),
    ),
    Case(
        "her2",
        "exclusion of HER2-positive: equivocal",
        HER2_POSITIVE_EXCLUDED,
        patient(biomarkers={"her2_ihc": "2+"}),
        UNKNOWN,
        ("HER2 equivocal (IHC 2+)",),
    ),
    Case(
        "her2",
        "not tested",
        HER2_POSITIVE_EXCLUDED,
        patient(biomarkers={}),
        UNKNOWN,
        ("HER2 status not recorded",),
        "HER2 status",
    ),
    Case(
        "msi",
        "MSI-H excluded",
        MSI_EXCLUDED,
        patient(biomarkers={"msi": "MSI-H"}),
        MET,
        ("MSI status MSI-H",),
    ),
    Case("msi", "MSS", MSI_EXCLUDED, BASELINE, NOT_MET, ("MSI status MSS, not MSI-H",)),
    # MSI-H and dMMR are one finding tested two ways: a tumour tested one way answers.
    Case(
        "msi",
        "only MMR tested",
        MSI_EXCLUDED,
        patient(biomarkers={"mmr": "dMMR"}),
        MET,
        ("mismatch-repair status dMMR (the same finding as MSI status MSI-H)",),
    ),
    Case(
        "msi",
        "only MMR tested, proficient",
        MSI_EXCLUDED,
        patient(biomarkers={"mmr": "pMMR"}),
        NOT_MET,
        ("mismatch-repair status pMMR (the same finding as MSI status MSS), not MSI-H",),
    ),
    Case(
        "msi",
        "neither MSI nor MMR recorded",
        MSI_EXCLUDED,
        patient(biomarkers={}),
        UNKNOWN,
        ("MSI status not recorded",),
        "MSI status",
    ),
    Case("pd-l1", "CPS 5", PDL1_CPS_1, BASELINE, MET, ("PD-L1 CPS 5 ≥ 1",)),
    Case(
        "pd-l1",
        "CPS 0",
        PDL1_CPS_1,
        patient(pdl1_cps=0.0),
        NOT_MET,
        ("PD-L1 CPS 0 < 1 (needs ≥ 1)",),
    ),
    Case(
        "pd-l1",
        "CPS 1 at the boundary",
        PDL1_CPS_1,
        patient(pdl1_cps=1.0),
        MET,
        ("PD-L1 CPS 1 ≥ 1",),
    ),
    Case(
        "pd-l1",
        "not tested",
        PDL1_CPS_1,
        patient(pdl1_cps=None),
        UNKNOWN,
        ("PD-L1 CPS not recorded",),
        "PD-L1 CPS",
    ),
    # Autoimmune disease within 2 years, "except type 1 diabetes"
    Case(
        "autoimmune",
        "type 1 diabetes: the exception",
        AUTOIMMUNE_EXCEPT_T1D,
        ill(Comorbidity(AUTOIMMUNE, "type 1 diabetes", active=True)),
        NOT_MET,
        ("type 1 diabetes: an exception the criterion allows",),
    ),
    Case(
        "autoimmune",
        "type I diabetes mellitus: the exception, spelled otherwise",
        AUTOIMMUNE_EXCEPT_T1D,
        ill(Comorbidity(AUTOIMMUNE, "type I diabetes mellitus", active=True)),
        NOT_MET,
        ("type I diabetes mellitus: an exception",),
    ),
    Case(
        "autoimmune",
        "rheumatoid arthritis, active, on methotrexate",
        AUTOIMMUNE_EXCEPT_T1D,
        patient(
            comorbidities=(
                Comorbidity(AUTOIMMUNE, "type 1 diabetes", active=True),
                Comorbidity(AUTOIMMUNE, "rheumatoid arthritis", active=True),
            ),
            medications=(Medication("methotrexate", "immunosuppressant", True),),
        ),
        MET,
        ("rheumatoid arthritis recorded, treated systemically (methotrexate)",),
    ),
    # "...that has required systemic treatment": a disease never treated systemically
    # (no immunosuppressant or systemic steroid among the medications) does not count.
    Case(
        "autoimmune",
        "rheumatoid arthritis, active, no systemic treatment among the medications",
        AUTOIMMUNE_EXCEPT_T1D,
        patient(
            comorbidities=(Comorbidity(AUTOIMMUNE, "rheumatoid arthritis", active=True),),
            medications=(Medication("omeprazole", "other", True),),
        ),
        NOT_MET,
    ),
    Case(
        "autoimmune",
        "rheumatoid arthritis inactive since 2015",
        AUTOIMMUNE_EXCEPT_T1D,
        ill(
            Comorbidity(
                AUTOIMMUNE, "rheumatoid arthritis", active=False, onset=datetime.date(2015, 4, 1)
            )
        ),
        NOT_MET,
        ("no active autoimmune disease in the last 2 years",),
    ),
    Case(
        "autoimmune",
        "rheumatoid arthritis, medications not recorded",
        AUTOIMMUNE_EXCEPT_T1D,
        ill(Comorbidity(AUTOIMMUNE, "rheumatoid arthritis")),
        UNKNOWN,
        ("rheumatoid arthritis: systemic treatment not recorded",),
        "autoimmune disease",
    ),
    Case(
        "autoimmune",
        "ruled out",
        AUTOIMMUNE_EXCEPT_T1D,
        ill(Comorbidity(AUTOIMMUNE, present=False)),
        NOT_MET,
        ("autoimmune disease ruled out",),
    ),
    Case(
        "autoimmune",
        "not recorded",
        AUTOIMMUNE_EXCEPT_T1D,
        BASELINE,
        UNKNOWN,
        ("autoimmune disease: not recorded",),
        "autoimmune disease",
    ),
    Case(
        "autoimmune",
        "real criterion without exceptions: type 1 diabetes on systemic steroids counts",
        AUTOIMMUNE_2_YEARS,
        patient(
            comorbidities=(Comorbidity(AUTOIMMUNE, "type 1 diabetes", active=True),),
            medications=(Medication("prednisone", "systemic_steroid", True, 20),),
        ),
        MET,
        ("type 1 diabetes recorded, treated systemically (prednisone)",),
    ),
    Case(
        "ild",
        "pneumonitis",
        ILD,
        ill(Comorbidity(ComorbidityKind.ILD, "non-infectious pneumonitis")),
        MET,
        ("non-infectious pneumonitis recorded",),
    ),
    Case(
        "ild",
        "ruled out",
        ILD,
        ill(Comorbidity(ComorbidityKind.ILD, present=False)),
        NOT_MET,
        ("interstitial lung disease / pneumonitis ruled out",),
    ),
    Case("ild", "not recorded", ILD, BASELINE, UNKNOWN, ("interstitial lung disease",)),
    Case(
        "viral",
        "hepatitis B",
        HBV_HCV,
        ill(Comorbidity(ComorbidityKind.HBV, "chronic hepatitis B", active=True)),
        MET,
        ("chronic hepatitis B recorded",),
    ),
    Case(
        "viral",
        "hepatitis B and C ruled out",
        HBV_HCV,
        ill(
            Comorbidity(ComorbidityKind.HBV, present=False),
            Comorbidity(ComorbidityKind.HCV, present=False),
        ),
        NOT_MET,
        ("hepatitis B ruled out", "hepatitis C ruled out"),
    ),
    Case(
        "viral",
        "hepatitis B ruled out, C not recorded",
        HBV_HCV,
        ill(Comorbidity(ComorbidityKind.HBV, present=False)),
        UNKNOWN,
        ("hepatitis C: not recorded",),
        "hepatitis C",
    ),
    Case(
        "viral",
        "HIV",
        HIV,
        ill(Comorbidity(ComorbidityKind.HIV, "HIV infection")),
        MET,
        ("HIV infection recorded",),
    ),
    Case(
        "viral",
        "HIV ruled out",
        HIV,
        ill(Comorbidity(ComorbidityKind.HIV, present=False)),
        NOT_MET,
        ("HIV ruled out",),
    ),
    Case(
        "transplant",
        "kidney transplant",
        TRANSPLANT,
        ill(Comorbidity(ComorbidityKind.ORGAN_TRANSPLANT, "kidney transplant")),
        MET,
        ("kidney transplant recorded",),
    ),
    Case(
        "transplant",
        "allogeneic stem-cell transplant",
        TRANSPLANT,
        ill(Comorbidity(ComorbidityKind.STEM_CELL_TRANSPLANT, "allogeneic HSCT")),
        MET,
        ("allogeneic HSCT recorded",),
    ),
    Case(
        "transplant",
        "both ruled out",
        TRANSPLANT,
        ill(
            Comorbidity(ComorbidityKind.ORGAN_TRANSPLANT, present=False),
            Comorbidity(ComorbidityKind.STEM_CELL_TRANSPLANT, present=False),
        ),
        NOT_MET,
        ("organ transplant ruled out", "allogeneic stem-cell transplant ruled out"),
    ),
    Case(
        "transplant",
        "not recorded",
        TRANSPLANT,
        BASELINE,
        UNKNOWN,
        ("not recorded",),
    ),
    # Steroids: > 10 mg/day prednisone-equivalent within 14 days
    Case(
        "steroids",
        "prednisone 5 mg/day",
        STEROIDS_OVER_10,
        taking(Medication("prednisone", "systemic_steroid", True, 5)),
        NOT_MET,
        ("prednisone 5 mg/day prednisone-equivalent ≤ 10",),
    ),
    Case(
        "steroids",
        "prednisone 20 mg/day",
        STEROIDS_OVER_10,
        taking(Medication("prednisone", "systemic_steroid", True, 20)),
        MET,
        ("prednisone 20 mg/day prednisone-equivalent > 10",),
    ),
    Case(
        "steroids",
        "dexamethasone 4 mg (25 mg/day prednisone-equivalent)",
        STEROIDS_OVER_10,
        taking(Medication("dexamethasone", "systemic_steroid", True, 25)),
        MET,
        ("dexamethasone 25 mg/day prednisone-equivalent > 10",),
    ),
    Case(
        "steroids",
        "prednisone 20 mg/day stopped 2 months ago",
        STEROIDS_OVER_10,
        taking(
            Medication("prednisone", "systemic_steroid", False, 20, end=datetime.date(2026, 9, 26))
        ),
        NOT_MET,
        ("no systemic corticosteroids",),
    ),
    Case(
        "steroids",
        "dose unknown",
        STEROIDS_OVER_10,
        taking(Medication("methylprednisolone", "systemic_steroid", True)),
        UNKNOWN,
        ("methylprednisolone: dose not recorded",),
        "systemic corticosteroids",
    ),
    Case(
        "steroids",
        "not recorded",
        STEROIDS_OVER_10,
        BASELINE,
        UNKNOWN,
        ("systemic corticosteroids: not recorded",),
    ),
    # Live vaccines: rarely recorded
    Case(
        "live vaccine",
        "not recorded",
        LIVE_VACCINE,
        BASELINE,
        UNKNOWN,
        ("live vaccines: not recorded",),
        "live vaccines",
    ),
    Case(
        "live vaccine",
        "yellow fever vaccine 10 days ago",
        LIVE_VACCINE,
        taking(Medication("yellow fever vaccine", "live_vaccine", end=datetime.date(2026, 11, 16))),
        MET,
        ("yellow fever vaccine taken",),
    ),
    Case(
        "live vaccine",
        "yellow fever vaccine 3 months ago",
        LIVE_VACCINE,
        taking(Medication("yellow fever vaccine", "live_vaccine", end=datetime.date(2026, 8, 20))),
        NOT_MET,
        ("no live vaccines taken now",),
    ),
    # Pregnancy
    Case("pregnancy", "male patient", PREGNANT_EXCLUDED, BASELINE, NOT_MET, ("male patient",)),
    Case(
        "pregnancy",
        "female, not recorded",
        PREGNANT_EXCLUDED,
        woman(),
        UNKNOWN,
        ("pregnancy / breastfeeding not recorded",),
        "pregnancy status",
    ),
    Case("pregnancy", "pregnant", PREGNANT_EXCLUDED, woman(pregnant=True), MET, ("pregnant",)),
    Case(
        "pregnancy",
        "breastfeeding",
        PREGNANT_EXCLUDED,
        woman(pregnant=False, breastfeeding=True),
        MET,
        ("breastfeeding",),
    ),
    Case(
        "pregnancy",
        "inclusion: male patient is not pregnant",
        NOT_PREGNANT,
        BASELINE,
        MET,
        ("male patient",),
    ),
    Case(
        "pregnancy",
        "inclusion: neither",
        NOT_PREGNANT,
        woman(pregnant=False, breastfeeding=False),
        MET,
        ("not pregnant, not breastfeeding",),
    ),
    # Surgery planned / done
    Case(
        "surgery",
        "planned",
        RADICAL_SURGERY_PLANNED,
        BASELINE,
        MET,
        ("subtotal gastrectomy planned",),
    ),
    Case(
        "surgery",
        "already done",
        RADICAL_SURGERY_PLANNED,
        patient(surgeries=(Surgery("total_gastrectomy", "done", datetime.date(2026, 10, 1)),)),
        NOT_MET,
        ("total gastrectomy already done",),
    ),
    Case(
        "surgery",
        "not recorded",
        RADICAL_SURGERY_PLANNED,
        patient(surgeries=()),
        UNKNOWN,
        ("planned surgery not recorded",),
        "planned or done surgery",
    ),
    Case(
        "surgery",
        "exclusion of previous gastrectomy: planned only",
        PREVIOUS_GASTRECTOMY,
        BASELINE,
        NOT_MET,
        ("subtotal gastrectomy planned, not yet done",),
    ),
    Case(
        "surgery",
        "exclusion of previous gastrectomy: done",
        PREVIOUS_GASTRECTOMY,
        patient(surgeries=(Surgery("total_gastrectomy", "done"),)),
        MET,
        ("total gastrectomy done",),
    ),
    # Never read: unknown, needs review
    Case("unread", "consent", CONSENT, BASELINE, UNKNOWN, (NEEDS_REVIEW,)),
    Case("unread", "contraception", CONTRACEPTION, BASELINE, UNKNOWN, (NEEDS_REVIEW,)),
    Case("unread", "life expectancy", LIFE_EXPECTANCY, BASELINE, UNKNOWN, (NEEDS_REVIEW,)),
]


@pytest.mark.parametrize("case", CASES, ids=[f"{case.kind}: {case.name}" for case in CASES])
def test_criterion(case: Case) -> None:
    result = PatientEvaluator(case.facts, TODAY).criterion(case.rule)
    assert result.outcome is case.outcome, result.reason
    for part in case.reason:
        assert part in result.reason
    if case.outcome is Outcome.UNKNOWN:
        assert result.missing or not result.parsed, "an unknown says what to find out"
    if case.missing:
        assert any(case.missing in fact for fact in result.missing), result.missing


def test_every_kind_has_a_met_a_not_met_and_an_unknown_case() -> None:
    outcomes: dict[str, set[Outcome]] = {}
    for case in CASES:
        outcomes.setdefault(case.kind, set()).add(case.outcome)
    partial = {
        kind: found
        for kind, found in outcomes.items()
        if found != set(Outcome) and kind not in ("unread", "neutrophils")
    }
    assert not partial


def test_the_baseline_is_a_surgical_candidate() -> None:
    candidacy = surgical_candidate(BASELINE)
    assert candidacy.value is True, candidacy.explanation


# --- Derived facts used by the criteria --------------------------------------------------------


@pytest.mark.parametrize(
    ("t", "n", "m", "group"),
    [
        ("Tis", "N0", "M0", "0"),
        ("T1", "N0", "M0", "I"),
        ("T1a", "N0", "M0", "I"),
        ("T2", "N0", "M0", "I"),
        ("T1", "N1", "M0", "IIA"),
        ("T2", "N3b", "M0", "IIA"),
        ("T3", "N0", "M0", "IIB"),
        ("T4a", "N0", "M0", "IIB"),
        ("T3", "N2", "M0", "III"),
        ("T4a", "N3a", "M0", "III"),
        ("T4b", "N0", "M0", "IVA"),
        ("T4b", None, "M0", "IVA"),
        ("T2", "N1", "M1", "IVB"),
        (None, None, "M1", "IVB"),
        ("T4", "N1", "M0", None),  # T4 without a / b: III or IVA
        ("T3", None, "M0", None),
        ("T3", "NX", "M0", None),
        ("T3", "N1", None, None),
        ("TX", "N1", "M0", None),
    ],
)
def test_clinical_stage_group(t: str | None, n: str | None, m: str | None, group: str) -> None:
    assert clinical_stage_group(t, n, m) == group


@pytest.mark.parametrize(
    ("ihc", "ish", "status"),
    [
        ("0", None, "negative"),
        ("1+", None, "negative"),
        ("2+", None, "equivocal"),
        ("2+", "amplified", "positive"),
        ("2+", "not amplified", "negative"),
        ("3+", None, "positive"),
        (None, "amplified", "positive"),
        (None, None, None),
    ],
)
def test_her2_status(ihc: str | None, ish: str | None, status: str | None) -> None:
    assert her2_status(ihc, ish) == status


# --- Trials: verdicts, flags, distances --------------------------------------------------------


def make_trial(*rules: Rule, **values: Any) -> TrialRules:
    numbered = tuple(dataclasses.replace(rule, position=i) for i, rule in enumerate(rules))
    values.setdefault("key", values.get("nct_id", "NCT00000000"))
    values.setdefault("nct_id", "NCT00000000")
    values.setdefault("status", "RECRUITING")
    values.setdefault("gastric", True)
    return TrialRules(rules=numbered, **values)


def evaluate(facts: PatientFacts, trial_rules: TrialRules) -> MatchResult:
    return PatientEvaluator(facts, TODAY).evaluate(trial_rules)


def test_all_criteria_known_and_satisfied_is_eligible() -> None:
    result = evaluate(BASELINE, make_trial(ECOG_0_1, NOT_ADENOCARCINOMA, HAEMOGLOBIN_9))
    assert result.verdict is Verdict.ELIGIBLE
    assert result.score == 100.0
    assert result.unknown_facts == ()


def test_consent_and_contraception_stay_unknown_and_never_exclude() -> None:
    result = evaluate(BASELINE, make_trial(CONSENT, CONTRACEPTION, ECOG_0_1))
    assert result.verdict is Verdict.POSSIBLE
    consent, contraception, ecog = result.criteria
    for unread in (consent, contraception):
        assert unread.outcome is Outcome.UNKNOWN
        assert unread.reason == NEEDS_REVIEW
        assert not unread.parsed
        assert not unread.disqualifying
    assert ecog.satisfied
    assert result.score == pytest.approx(33.3)


def test_an_unparsed_exclusion_is_unknown_never_excluding() -> None:
    unparsed = real("NCT04592913", "Contra-indication to any of the study drugs.", parsed=False)
    assert unparsed.kind == "exclusion"
    result = evaluate(BASELINE, make_trial(ECOG_0_1, unparsed))
    assert result.verdict is Verdict.POSSIBLE
    assert result.criteria[1].outcome is Outcome.UNKNOWN
    assert result.criteria[1].reason == NEEDS_REVIEW


def test_an_inclusion_not_met_or_an_exclusion_met_is_ineligible() -> None:
    assert evaluate(patient(ecog=2), make_trial(ECOG_0_1)).verdict is Verdict.INELIGIBLE
    squamous = patient(histology=Histology.SQUAMOUS)
    result = evaluate(squamous, make_trial(ECOG_0_1, NOT_ADENOCARCINOMA, CONSENT))
    assert result.verdict is Verdict.INELIGIBLE
    assert result.criteria[1].disqualifying
    assert result.unknown_facts == ()  # nothing to find out for an ineligible trial


def test_matterhorn_whole_record_for_the_baseline_patient() -> None:
    """NCT04592913 as recorded (active, not recruiting) and as if it were recruiting."""
    recorded = trial("NCT04592913", gastric_preop_immunotherapy=True, gastric=True)
    result = evaluate(BASELINE, recorded)
    by_text = {
        x.text: r for x, r in zip(real_criteria("NCT04592913"), result.criteria, strict=True)
    }
    assert result.verdict is Verdict.POSSIBLE
    assert by_text["Patients must undergo radical surgery."].outcome is Outcome.MET
    assert by_text["No prior anti-cancer therapy for the current malignancy."].satisfied
    assert by_text["Patients with peritoneal dissemination or distant metastasis."].satisfied
    assert by_text["Must have a life expectancy of at least 24 weeks."].reason == NEEDS_REVIEW
    assert not result.flagged  # closed to enrolment
    assert "immunosuppressants" in result.unknown_facts

    recruiting = dataclasses.replace(recorded, status="RECRUITING")
    flagged = evaluate(BASELINE, recruiting)
    assert flagged.flagged
    assert flagged.flag_reason.startswith("Preoperative immunotherapy trial; Surgical candidate")


def real_criteria(nct_id: str) -> list[Criterion]:
    return [x for x in _criteria(nct_id) if not (x.header and not x.constraints)]


PREOP = {"gastric_preop_immunotherapy": True}


def test_flag_when_candidacy_is_unknown_says_what_to_confirm() -> None:
    no_performance = patient(ecog=None)
    result = evaluate(no_performance, make_trial(CONSENT, STAGE_II_OR_HIGHER, **PREOP))
    assert result.verdict is Verdict.POSSIBLE
    assert result.flagged
    assert "surgical candidacy to confirm" in result.flag_reason
    assert "performance status not recorded" in result.flag_reason


def test_no_flag_when_not_a_surgical_candidate() -> None:
    t4b = staged("T4b", "N1", "M0")
    assert surgical_candidate(t4b).value is False
    result = evaluate(t4b, make_trial(CONSENT, ECOG_0_1, **PREOP))
    assert result.verdict is Verdict.POSSIBLE
    assert not result.flagged
    assert result.flag_reason == ""


def test_no_flag_when_closed_ineligible_or_not_preoperative_immunotherapy() -> None:
    closed = make_trial(CONSENT, status="COMPLETED", **PREOP)
    assert not evaluate(BASELINE, closed).flagged
    ineligible = evaluate(patient(ecog=2), make_trial(CONSENT, ECOG_0_1, **PREOP))
    assert ineligible.verdict is Verdict.INELIGIBLE
    assert not ineligible.flagged
    assert not evaluate(BASELINE, make_trial(CONSENT)).flagged
    assert evaluate(BASELINE, make_trial(CONSENT, **PREOP)).flagged


def km(a: tuple[float, float]) -> float:
    return round(haversine_km(MILAN.latitude, MILAN.longitude, *a), 1)


def test_distance_to_the_nearest_open_site() -> None:
    sites = (
        SitePoint(*MILAN_SITE, "COMPLETED"),
        SitePoint(*PARIS, "NOT_YET_RECRUITING"),
        SitePoint(*ROME, "RECRUITING"),
    )
    distance = evaluate(BASELINE, make_trial(CONSENT, sites=sites)).distance_km
    assert distance == km(ROME)
    assert 400 < distance < 500


def test_distance_without_site_statuses_is_to_the_nearest_site() -> None:
    sites = (SitePoint(*ROME), SitePoint(*MILAN_SITE), SitePoint(*PARIS))
    assert evaluate(BASELINE, make_trial(CONSENT, sites=sites)).distance_km == km(MILAN_SITE)


def test_no_distance_without_a_location_or_sites() -> None:
    sites = (SitePoint(*ROME, "RECRUITING"),)
    assert evaluate(patient(location=None), make_trial(CONSENT, sites=sites)).distance_km is None
    assert evaluate(BASELINE, make_trial(CONSENT)).distance_km is None


def test_distances_of_trials_built_one_after_another() -> None:
    """One evaluator, many trials: each trial's own sites, however its objects are reused."""
    evaluator = PatientEvaluator(BASELINE, TODAY)
    for where in (ROME, PARIS, MILAN_SITE, ROME):
        assert evaluator.distance(make_trial(sites=(SitePoint(*where, "RECRUITING"),))) == km(where)


def test_real_record_sites() -> None:
    """NCT03475563's sites (Sabadell, Barcelona, Leon) are recruiting: the nearest is taken;
    NCT02210780's sites have no status: the nearest of all is taken."""
    spanish = trial("NCT03475563")
    assert len(spanish.sites) == 3
    assert all(site.status == "RECRUITING" for site in spanish.sites)
    expected = min(km((s.latitude, s.longitude)) for s in spanish.sites)
    assert evaluate(BASELINE, spanish).distance_km == expected
    american = trial("NCT02210780")
    assert not any(site.status for site in american.sites)
    expected = min(km((s.latitude, s.longitude)) for s in american.sites)
    assert evaluate(BASELINE, american).distance_km == expected
    closed = dataclasses.replace(
        spanish, sites=tuple(dataclasses.replace(s, status="COMPLETED") for s in spanish.sites)
    )
    assert evaluate(BASELINE, closed).distance_km is None


# --- Screening by the registry's age and sex ---------------------------------------------------


def test_screened_out_by_age_evaluates_only_the_age_criteria() -> None:
    record_trial = trial("NCT03878472", status="RECRUITING", **PREOP)
    assert (record_trial.minimum_age, record_trial.maximum_age) == (18.0, 70.0)
    old = born(1955, 11, 26)  # 71 today
    result = evaluate(old, record_trial)
    assert result.verdict is Verdict.INELIGIBLE
    assert not result.flagged
    age_rows = [
        r for r, rule in zip(result.criteria, record_trial.rules, strict=True) if is_age(rule)
    ]
    assert [r.outcome for r in age_rows] == [Outcome.NOT_MET, Outcome.NOT_MET]
    assert all("age 71 > 70" in r.reason for r in age_rows)
    others = [
        r for r, rule in zip(result.criteria, record_trial.rules, strict=True) if not is_age(rule)
    ]
    assert others
    assert all(r.outcome is Outcome.UNKNOWN for r in others)
    assert all(r.reason == "not evaluated: ineligible already (age 71 > 70)" for r in others)
    # The 70th birthday today is still inside the limits: the criteria are read.
    seventy = evaluate(born(1956, 11, 26), record_trial)
    assert seventy.verdict is not Verdict.INELIGIBLE
    assert seventy.flagged


def is_age(rule: Rule) -> bool:
    return any(isinstance(x, c.Age | c.Sex) for x in rule.constraints)


def test_screened_out_by_sex() -> None:
    women_only = make_trial(
        Rule(0, "inclusion", "sex", (c.Sex("female"),)), ECOG_0_1, CONSENT, sex="FEMALE"
    )
    result = evaluate(BASELINE, women_only)
    assert result.verdict is Verdict.INELIGIBLE
    sex, ecog, consent = result.criteria
    assert sex.outcome is Outcome.NOT_MET
    assert "male patient; female patients only" in sex.reason
    assert ecog.outcome is Outcome.UNKNOWN
    assert ecog.reason == "not evaluated: ineligible already (female patients only; male patient)"
    assert not consent.parsed
    assert evaluate(woman(), women_only).verdict is Verdict.POSSIBLE


def test_screening_with_unknown_sex_or_age_evaluates_everything() -> None:
    anonymous = patient(sex=None, birth_date=None)
    result = evaluate(anonymous, make_trial(ECOG_0_1, sex="FEMALE", minimum_age=18))
    assert result.verdict is Verdict.ELIGIBLE


# --- Across trials -----------------------------------------------------------------------------


def test_deciding_facts_rank_unknown_facts_by_the_trials_they_block() -> None:
    unknown = patient(ecog=None, biomarkers={}, pdl1_cps=None)
    trials = [
        make_trial(ECOG_0_1, HER2_NEGATIVE, nct_id="NCT00000001"),
        make_trial(ECOG_0_1, PDL1_CPS_1, nct_id="NCT00000002"),
        make_trial(KARNOFSKY_70, HER2_NEGATIVE, CONSENT, nct_id="NCT00000003"),
        make_trial(ECOG_0_1, MALE_ONLY, nct_id="NCT00000004"),
        # Ineligible (a female-only criterion): blocks nothing.
        make_trial(ECOG_0_1, Rule(0, "inclusion", "sex", (c.Sex("female"),)), nct_id="NCT9"),
    ]
    evaluator = PatientEvaluator(unknown, TODAY)
    results = [evaluator.evaluate(t) for t in trials]
    assert [r.verdict for r in results] == [Verdict.POSSIBLE] * 4 + [Verdict.INELIGIBLE]
    ranked = deciding_facts(results)
    assert [(d.fact, d.trials) for d in ranked] == [
        ("ECOG performance status", ["NCT00000001", "NCT00000002", "NCT00000003", "NCT00000004"]),
        ("HER2 status", ["NCT00000001", "NCT00000003"]),
        ("PD-L1 CPS", ["NCT00000002"]),
    ]
    assert ranked[0].describe() == "ECOG performance status: decides 4 trials"
    assert ranked[2].describe() == "PD-L1 CPS: decides 1 trial"


def test_identical_criteria_in_two_trials_share_a_signature_and_an_answer() -> None:
    interner = RuleInterner()

    def interned(nct_id: str) -> tuple[Rule, ...]:
        return tuple(
            interner.rule(r.position, r.kind, r.category, r.constraints, r.join)
            for r in real_rules(nct_id)
        )

    matterhorn, nct03878472 = interned("NCT04592913"), interned("NCT03878472")
    ecog_a = next(r for r in matterhorn if r.category == "performance_status")
    ecog_b = next(r for r in nct03878472 if r.category == "performance_status")
    assert ecog_a.position != ecog_b.position
    assert ecog_a.signature == ecog_b.signature >= 0
    assert ecog_a.constraints is ecog_b.constraints
    distinct = {r.signature for r in matterhorn + nct03878472}
    assert len(distinct) < len(matterhorn) + len(nct03878472)
    # Same constraints as an exclusion: another signature.
    flipped = interner.rule(0, "exclusion", "performance_status", ecog_a.constraints, "all")
    assert flipped.signature != ecog_a.signature

    for facts in (BASELINE, patient(ecog=2), patient(ecog=None, karnofsky=60)):
        evaluator = PatientEvaluator(facts, TODAY)
        a = evaluator.evaluate(make_trial(*matterhorn, nct_id="A"))
        b = evaluator.evaluate(make_trial(*nct03878472, nct_id="B"))
        first = next(r for r in a.criteria if r.category == "performance_status")
        second = next(r for r in b.criteria if r.category == "performance_status")
        assert (first.outcome, first.reason, first.missing) == (
            second.outcome,
            second.reason,
            second.missing,
        )
        fresh = PatientEvaluator(facts, TODAY).criterion(ecog_b)
        assert (fresh.outcome, fresh.reason) == (second.outcome, second.reason)


def test_equal_rules_without_signatures_give_equal_answers() -> None:
    evaluator = PatientEvaluator(patient(ecog=2), TODAY)
    a = evaluator.criterion(real("NCT04592913", "World Health Organization"))
    b = evaluator.criterion(real("NCT03878472", "ECOG: 0-1."))
    assert (a.outcome, a.reason) == (b.outcome, b.reason) == (Outcome.NOT_MET, a.reason)
    assert "ECOG 2 > 1" in a.reason
