"""One criterion's text to its category and constraints: the cases the engine must read."""

from typing import Any

import pytest

from trials.eligibility.extract import Context, extract
from trials.eligibility.text import normalize


def read(text: str, kind: str = "inclusion") -> tuple[str, list[dict[str, Any]], str]:
    result = extract(normalize(text), Context(kind=kind))
    return result.category, [constraint.as_dict() for constraint in result.constraints], result.join


def lab(analyte: str, op: str, **threshold: Any) -> dict[str, Any]:
    return {"type": "lab", "analyte": analyte, "op": op, **threshold}


@pytest.mark.parametrize(
    ("text", "constraints"),
    [
        ("ANC >= 1.5 x 10^9/L", [lab("anc", ">=", value=1.5)]),
        ("ANC \\>= 1.5 × 10⁹/L", [lab("anc", ">=", value=1.5)]),
        ("Absolute neutrophil count ≥ 1,500/mm³", [lab("anc", ">=", value=1.5)]),
        ("platelets ≥ 100.000/mm3", [lab("platelets", ">=", value=100)]),
        ("Platelets >= 100 x 10^3/uL", [lab("platelets", ">=", value=100)]),
        ("Hemoglobin >= 90 g/L", [lab("haemoglobin", ">=", value=9)]),
        ("Hb ≥ 5.6 mmol/L", [lab("haemoglobin", ">=", value=9.0235)]),
        ("bilirubin <= 1.5 x ULN", [lab("bilirubin", "<=", uln=1.5)]),
        ("Total bilirubin ≤ 25.65 µmol/L", [lab("bilirubin", "<=", value=1.5)]),
        ("CrCl > 40 ml/min (Cockcroft-Gault)", [lab("creatinine_clearance", ">", value=40)]),
        ("Serum creatinine ≤ 133 umol/L", [lab("creatinine", "<=", value=1.5045)]),
        (
            "AST and ALT <= 2.5 x ULN (<= 5 x ULN if liver metastases)",
            [
                lab("ast", "<=", uln=2.5),
                lab("ast", "<=", uln=5.0, **{"if": "liver_metastases"}),
                lab("alt", "<=", uln=2.5),
                lab("alt", "<=", uln=5.0, **{"if": "liver_metastases"}),
            ],
        ),
        (
            "Glycosylated hemoglobin (HbA1c) < 7.5%",
            [],
        ),
    ],
)
def test_lab_thresholds_in_canonical_units(text: str, constraints: list[dict[str, Any]]) -> None:
    category, found, _ = read(text)

    assert sorted(found, key=str) == sorted(constraints, key=str)
    if constraints:
        assert category == "lab"


def test_creatinine_or_clearance_are_alternatives() -> None:
    _category, found, join = read(
        "Serum creatinine ≤ 1.5 x ULN or creatinine clearance ≥ 50 mL/min"
    )

    # One any-of: either limit suffices (and the criterion's other limits still all hold).
    assert found == [
        {
            "type": "any_of",
            "items": [
                lab("creatinine", "<=", uln=1.5),
                lab("creatinine_clearance", ">=", value=50),
            ],
        }
    ]
    assert join == "all"


@pytest.mark.parametrize(
    ("text", "constraints"),
    [
        (
            "cT3-4aN+M0",
            [
                {"type": "stage", "category": "T", "min": "T3", "max": "T4a"},
                {"type": "stage", "category": "N", "min": "N1"},
                {"type": "stage", "category": "M", "any_of": ["M0"]},
            ],
        ),
        ("Stage II or higher per AJCC 8th", [{"type": "stage", "category": "stage", "min": "II"}]),
        (
            "any T N+ M0",
            [
                {"type": "stage", "category": "N", "min": "N1"},
                {"type": "stage", "category": "M", "any_of": ["M0"]},
            ],
        ),
        ("clinical stage III", [{"type": "stage", "category": "stage", "any_of": ["III"]}]),
        (
            "cT >= 2, any cN, M0",
            [
                {"type": "stage", "category": "M", "any_of": ["M0"]},
                {"type": "stage", "category": "T", "min": "T2"},
            ],
        ),
    ],
)
def test_stage_ranges(text: str, constraints: list[dict[str, Any]]) -> None:
    _, found, _ = read(text)

    assert sorted(found, key=str) == sorted(constraints, key=str)


@pytest.mark.parametrize(
    ("text", "kind", "category", "constraints"),
    [
        ("Age >= 18 years", "inclusion", "age", [{"type": "age", "min": 18}]),
        ("Aged 18-75 years", "inclusion", "age", [{"type": "age", "min": 18, "max": 75}]),
        ("age \\<18", "exclusion", "age", [{"type": "age", "max": 17}]),
        (
            "ECOG performance status 0-1",
            "inclusion",
            "performance_status",
            [{"type": "ecog", "allowed": [0, 1]}],
        ),
        (
            "WHO performance status of 0 or 1",
            "inclusion",
            "performance_status",
            [{"type": "ecog", "allowed": [0, 1]}],
        ),
        ("ECOG ≤ 2", "inclusion", "performance_status", [{"type": "ecog", "allowed": [0, 1, 2]}]),
        (
            "Karnofsky performance status >= 70%",
            "inclusion",
            "performance_status",
            [{"type": "karnofsky", "min": 70}],
        ),
        (
            "No distant metastasis",
            "inclusion",
            "metastasis",
            [{"type": "metastasis", "site": "distant", "present": False}],
        ),
        (
            "Patients with peritoneal dissemination or distant metastasis",
            "exclusion",
            "metastasis",
            [
                {"type": "metastasis", "site": "peritoneal", "present": True},
                {"type": "metastasis", "site": "distant", "present": True},
            ],
        ),
        (
            "Resectable disease",
            "inclusion",
            "resectability",
            [{"type": "resectable", "value": True}],
        ),
        (
            "Unresectable disease",
            "exclusion",
            "resectability",
            [{"type": "resectable", "value": False}],
        ),
        (
            "Patients with adenosquamous cell carcinoma, squamous cell carcinoma, "
            "or GI stromal tumor",
            "exclusion",
            "histology",
            [{"type": "histology", "any_of": ["adenosquamous", "squamous", "gist"]}],
        ),
        (
            "Histologically confirmed gastric or GEJ adenocarcinoma",
            "inclusion",
            "diagnosis",
            [
                {"type": "primary_site", "any_of": ["stomach", "gej"]},
                {"type": "histology", "any_of": ["adenocarcinoma"]},
            ],
        ),
        (
            "No prior anti-PD-1 or anti-PD-L1 therapy",
            "inclusion",
            "prior_therapy",
            [{"type": "prior_therapy", "classes": ["anti-PD-1", "anti-PD-L1"], "present": False}],
        ),
        (
            "No prior chemotherapy for this cancer",
            "inclusion",
            "prior_therapy",
            [
                {
                    "type": "prior_therapy",
                    "classes": ["chemotherapy"],
                    "present": False,
                    "this_cancer": True,
                }
            ],
        ),
        (
            "Prior treatment with nivolumab",
            "exclusion",
            "prior_therapy",
            [{"type": "prior_therapy", "classes": ["anti-PD-1"], "present": True}],
        ),
        (
            "Received radiotherapy within 28 days before the first dose",
            "exclusion",
            "prior_therapy",
            [
                {
                    "type": "prior_therapy",
                    "classes": ["radiotherapy"],
                    "present": True,
                    "within_days": 28,
                }
            ],
        ),
        (
            "HER2-negative",
            "inclusion",
            "biomarker",
            [{"type": "biomarker", "marker": "her2_status", "any_of": ["negative"]}],
        ),
        (
            "HER2 IHC 3+ or IHC 2+/ISH+",
            "inclusion",
            "biomarker",
            [{"type": "biomarker", "marker": "her2_status", "any_of": ["positive"]}],
        ),
        (
            "MSI-H/dMMR tumour",
            "inclusion",
            "biomarker",
            # One finding tested two ways: either result qualifies.
            [
                {
                    "type": "any_of",
                    "items": [
                        {"type": "biomarker", "marker": "msi", "any_of": ["MSI-H"]},
                        {"type": "biomarker", "marker": "mmr", "any_of": ["dMMR"]},
                    ],
                }
            ],
        ),
        (
            "PD-L1 CPS >= 1",
            "inclusion",
            "biomarker",
            [{"type": "biomarker", "marker": "pdl1_cps", "op": ">=", "value": 1.0}],
        ),
        (
            "Active autoimmune disease requiring systemic treatment in the past 2 years, "
            "except type I diabetes, hypothyroidism or vitiligo",
            "exclusion",
            "comorbidity",
            [
                {
                    "type": "comorbidity",
                    "kind": "autoimmune",
                    "present": True,
                    "within_years": 2.0,
                    "except": ["type i diabetes", "hypothyroidism", "vitiligo"],
                    "active": True,
                    "systemic_treatment": True,
                }
            ],
        ),
        (
            "History of interstitial lung disease or non-infectious pneumonitis",
            "exclusion",
            "comorbidity",
            [{"type": "comorbidity", "kind": "ild", "present": True}],
        ),
        (
            "Known HIV infection or active hepatitis B or C",
            "exclusion",
            "comorbidity",
            [
                {"type": "comorbidity", "kind": "hiv", "present": True},
                {"type": "comorbidity", "kind": "hbv", "present": True, "active": True},
                {"type": "comorbidity", "kind": "hcv", "present": True, "active": True},
            ],
        ),
        (
            "History of allogeneic organ transplantation",
            "exclusion",
            "comorbidity",
            [{"type": "comorbidity", "kind": "organ_transplant", "present": True}],
        ),
        (
            "Systemic corticosteroids (> 10 mg/day prednisone or equivalent) within 14 days",
            "exclusion",
            "medication",
            [
                {
                    "type": "medication",
                    "category": "systemic_steroid",
                    "present": True,
                    "over_mg_per_day": 10.0,
                    "within_days": 14,
                }
            ],
        ),
        (
            "Received a live vaccine within 30 days of the first dose",
            "exclusion",
            "medication",
            [
                {
                    "type": "medication",
                    "category": "live_vaccine",
                    "present": True,
                    "within_days": 30,
                }
            ],
        ),
        (
            "Pregnant or breastfeeding women",
            "exclusion",
            "pregnancy",
            [{"type": "pregnancy", "present": True}],
        ),
        (
            "Patients must undergo radical surgery.",
            "inclusion",
            "surgery",
            [{"type": "surgery", "status": "planned", "present": True}],
        ),
        ("Signed informed consent", "inclusion", "consent", []),
        ("Willing to use contraception during the study", "inclusion", "pregnancy", []),
        ("Life expectancy of at least 24 weeks", "inclusion", "other", []),
    ],
)
def test_criteria_kinds(
    text: str, kind: str, category: str, constraints: list[dict[str, Any]]
) -> None:
    found_category, found, _ = read(text, kind)

    assert found_category == category
    assert sorted(found, key=str) == sorted(constraints, key=str)


def test_negation_does_not_cross_an_exception() -> None:
    _, found, _ = read("No active autoimmune disease, except vitiligo", "inclusion")

    assert found[0]["present"] is False
    assert found[0]["except"] == ["vitiligo"]


def test_non_as_a_prefix_is_not_a_negation() -> None:
    _, found, _ = read("History of non-infectious pneumonitis", "exclusion")

    assert found == [{"type": "comorbidity", "kind": "ild", "present": True}]


# --- Coagulation, ALP, urine protein, LVEF, QTc; cardiovascular history ------------------------


def comorbidity(kind: str, **fields: Any) -> dict[str, Any]:
    return {"type": "comorbidity", "kind": kind, "present": True, **fields}


@pytest.mark.parametrize(
    ("text", "kind", "category", "constraints"),
    [
        ("INR ≤ 1.5 x ULN", "inclusion", "lab", [lab("inr", "<=", uln=1.5)]),
        (
            "Prothrombin time (PT) and activated partial thromboplastin time (APTT) ≤1.5×ULN",
            "inclusion",
            "lab",
            [lab("pt", "<=", uln=1.5), lab("aptt", "<=", uln=1.5)],
        ),
        ("Alkaline phosphatase ≤ 2.5 × ULN", "inclusion", "lab", [lab("alp", "<=", uln=2.5)]),
        (
            "Alkaline phosphatase level ≤2.5×ULN (≤5×ULN in case of liver metastasis)",
            "inclusion",
            "lab",
            [lab("alp", "<=", uln=2.5), lab("alp", "<=", uln=5.0, **{"if": "liver_metastases"})],
        ),
        ("Urine protein < 1 g/24h", "inclusion", "lab", [lab("urine_protein", "<", value=1.0)]),
        (
            "Proteinuria ≤ 1 g/24 hours",
            "inclusion",
            "lab",
            [lab("urine_protein", "<=", value=1.0)],
        ),
        (
            "24-hour urine protein < 500 mg/24h",
            "inclusion",
            "lab",
            [lab("urine_protein", "<", value=0.5)],
        ),
        ("LVEF ≥ 50%", "inclusion", "lab", [lab("lvef", ">=", value=50.0)]),
        (
            "Left ventricular ejection fraction (LVEF) ≥ 55% by echocardiogram",
            "inclusion",
            "lab",
            [lab("lvef", ">=", value=55.0)],
        ),
        ("QTc > 470 ms", "exclusion", "lab", [lab("qtc", ">", value=470.0)]),
        ("QTcF > 450 msec", "exclusion", "lab", [lab("qtc", ">", value=450.0)]),
        # A dipstick grade is not a 24-hour excretion: not read, never guessed.
        ("Urine protein < 2+ on dipstick", "inclusion", "lab", []),
    ],
)
def test_coagulation_urine_cardiac_readings(
    text: str, kind: str, category: str, constraints: list[dict[str, Any]]
) -> None:
    found_category, found, _ = read(text, kind)

    assert sorted(found, key=str) == sorted(constraints, key=str)
    assert found_category == category


@pytest.mark.parametrize(
    ("text", "kind", "category", "constraints"),
    [
        (
            "International normalized ratio (INR) ≤1.5",
            "inclusion",
            "lab",
            [lab("inr", "<=", value=1.5)],
        ),
        (
            "Myocardial infarction within 6 months prior to enrollment",
            "exclusion",
            "comorbidity",
            [comorbidity("myocardial_infarction", within_years=0.5)],
        ),
        (
            "History of deep vein thrombosis or pulmonary embolism",
            "exclusion",
            "comorbidity",
            [comorbidity("venous_thromboembolism")],
        ),
        (
            "Cerebrovascular accident (CVA) or transient ischemic attack (TIA) within 6 months",
            "exclusion",
            "comorbidity",
            [comorbidity("stroke", within_years=0.5)],
        ),
    ],
)
def test_readings_that_need_extract_to_know_the_new_vocabulary(
    text: str, kind: str, category: str, constraints: list[dict[str, Any]]
) -> None:
    """The vocabulary is there (lexicon.json, units.py); extract.py must still (1) take a bare
    number as the value of a ratio analyte (INR: canonical unit "ratio"), (2) let cardiovascular
    words through ``_COMORBIDITY_WORDS``, the gate before ``extract_comorbidities`` ("infarct",
    "angina", "heart", "cardiac", "arrhythm", "fibrillation", "stroke", "cerebrovascular",
    "ischemic attack", "cva", "tia", "thrombo", "embol", "dvt", "vte"), (3) read windows in
    months ("within 6 months" is 0.5 years)."""
    found_category, found, _ = read(text, kind)

    assert sorted(found, key=str) == sorted(constraints, key=str)
    assert found_category == category


@pytest.mark.parametrize(
    "text",
    [
        "pT3N1M0 gastric adenocarcinoma after gastrectomy",
        "ypT2N0 disease",
        "pT any N1-3 M0",
    ],
)
def test_a_pathological_t_stage_is_not_a_prothrombin_time(text: str) -> None:
    _, found, _ = read(text)

    assert not [constraint for constraint in found if constraint["type"] == "lab"]
