"""Coagulation, ALP, urine protein, LVEF and QTc limits, and cardiovascular history, evaluated.

Pure Python, no database. The constraints are built directly, as the reader states them
("INR <= 1.5", "QTc > 470 ms", "myocardial infarction within 6 months"); the patients are
``PatientFacts`` with the results in the units laboratories send, converted as the profile
import converts them. Outcomes are those of the constraint's own condition (an exclusion
"QTc > 470 ms" is met when the QTc is over 470 ms).
"""

from __future__ import annotations

import datetime

import pytest

from tests.trials.lab_results import lab
from trials.eligibility import constraints as c
from trials.eligibility.evaluate import Outcome, PatientEvaluator, Rule
from trials.eligibility.facts import Comorbidity, ComorbidityKind, LabValue, PatientFacts
from trials.eligibility.units import Analyte

TODAY = datetime.date(2026, 11, 26)
K = ComorbidityKind


def with_labs(*values: LabValue) -> PatientFacts:
    return PatientFacts(external_id="P", labs={value.analyte: value for value in values})


def ill(*comorbidities: Comorbidity) -> PatientFacts:
    return PatientFacts(external_id="P", comorbidities=comorbidities)


def ago(days: int) -> datetime.date:
    return TODAY - datetime.timedelta(days=days)


INR_15 = c.Lab(analyte="inr", op="<=", value=1.5)
INR_15_ULN = c.Lab(analyte="inr", op="<=", uln=1.5)
PT_15_ULN = c.Lab(analyte="pt", op="<=", uln=1.5)
APTT_15_ULN = c.Lab(analyte="aptt", op="<=", uln=1.5)
ALP_25_ULN = c.Lab(analyte="alp", op="<=", uln=2.5)
ALP_5_ULN_LIVER = c.Lab(analyte="alp", op="<=", uln=5, condition="liver_metastases")
URINE_PROTEIN_1G = c.Lab(analyte="urine_protein", op="<", value=1.0)
LVEF_50 = c.Lab(analyte="lvef", op=">=", value=50)
QTC_470 = c.Lab(analyte="qtc", op=">", value=470)

LAB_CASES = [
    # (name, constraint, patient, holds, substrings of the reason)
    ("INR 1.1 (UCUM {INR})", INR_15, with_labs(lab(Analyte.INR, 1.1, "{INR}")), True, ("1.1",)),
    ("INR 1.5, at the limit", INR_15, with_labs(lab(Analyte.INR, 1.5, "1")), True, ("1.5",)),
    ("INR 2.4 (warfarin)", INR_15, with_labs(lab(Analyte.INR, 2.4, "ratio")), False, ("2.4",)),
    ("no INR", INR_15, with_labs(), None, ("no INR",)),
    (
        "INR 1.3, its lab's ULN 1.1",
        INR_15_ULN,
        with_labs(lab(Analyte.INR, 1.3, "{INR}", uln=1.1)),
        True,
        ("= 1.18 x ULN", "result's reference range"),
    ),
    (
        "INR 2.0, the default ULN 1.2",
        INR_15_ULN,
        with_labs(lab(Analyte.INR, 2.0, "{INR}")),
        False,
        ("= 1.67 x ULN", "default"),
    ),
    (
        "PT 14 s, ULN 13 s",
        PT_15_ULN,
        with_labs(lab(Analyte.PT, 14, "sec", uln=13)),
        True,
        ("prothrombin time 14 s = 1.08 x ULN",),
    ),
    (
        "PT 14 s without a reference range: no default ULN for seconds",
        PT_15_ULN,
        with_labs(lab(Analyte.PT, 14, "s")),
        None,
        ("no upper limit of normal known",),
    ),
    (
        "aPTT 60 s, ULN 35 s",
        APTT_15_ULN,
        with_labs(lab(Analyte.APTT, 60, "seconds", uln=35)),
        False,
        ("= 1.71 x ULN", "outside"),
    ),
    (
        "ALP 250 U/L, the default ULN 120 U/L",
        ALP_25_ULN,
        with_labs(lab(Analyte.ALP, 250, "U/L")),
        True,
        ("alkaline phosphatase 250 U/L = 2.08 x ULN", "default"),
    ),
    (
        "ALP 5 ukat/L = 300 U/L, ULN 120 U/L",
        ALP_25_ULN,
        with_labs(lab(Analyte.ALP, 5, "ukat/L", uln=2)),
        True,
        ("= 2.5 x ULN",),
    ),
    (
        "ALP 400 U/L, ULN 100",
        ALP_25_ULN,
        with_labs(lab(Analyte.ALP, 400, "U/L", uln=100)),
        False,
        ("= 4 x ULN",),
    ),
    (
        "urine protein 350 mg/24h",
        URINE_PROTEIN_1G,
        with_labs(lab(Analyte.URINE_PROTEIN, 350, "mg/(24.h)")),
        True,
        ("0.35 g/24h", "recorded as 350 mg/(24.h)"),
    ),
    (
        "urine protein 1.2 g/24h",
        URINE_PROTEIN_1G,
        with_labs(lab(Analyte.URINE_PROTEIN, 1.2, "g/24h")),
        False,
        ("1.2 g/24h",),
    ),
    ("LVEF 62%", LVEF_50, with_labs(lab(Analyte.LVEF, 62, "%")), True, ("62 %",)),
    ("LVEF 45%", LVEF_50, with_labs(lab(Analyte.LVEF, 45, "%")), False, ("45 %",)),
    ("no LVEF", LVEF_50, with_labs(), None, ("no left ventricular ejection fraction",)),
    ("QTcF 480 ms", QTC_470, with_labs(lab(Analyte.QTC, 480, "ms")), True, ("480 ms",)),
    ("QTc 0.44 s = 440 ms", QTC_470, with_labs(lab(Analyte.QTC, 0.44, "s")), False, ("440 ms",)),
]


@pytest.mark.parametrize(
    ("constraint", "facts", "holds", "says"),
    [case[1:] for case in LAB_CASES],
    ids=[case[0] for case in LAB_CASES],
)
def test_lab_limits(
    constraint: c.Lab, facts: PatientFacts, holds: bool | None, says: tuple[str, ...]
) -> None:
    check = PatientEvaluator(facts, TODAY).check(constraint)

    assert check.holds is holds, check.reason
    for part in says:
        assert part in check.reason
    if holds is None:
        assert check.missing


def test_alp_limit_for_liver_metastases_applies_only_with_them() -> None:
    high = lab(Analyte.ALP, 500, "U/L", uln=120)  # 4.17 x ULN
    without = PatientFacts(external_id="P", labs={Analyte.ALP: high}, metastatic_sites=("lung",))
    liver = PatientFacts(external_id="P", labs={Analyte.ALP: high}, metastatic_sites=("liver",))

    assert PatientEvaluator(liver, TODAY).check(ALP_5_ULN_LIVER).holds is True
    assert PatientEvaluator(without, TODAY).check(ALP_5_ULN_LIVER).holds is True  # not bound
    assert PatientEvaluator(without, TODAY).check(ALP_25_ULN).holds is False


MI_6_MONTHS = c.Comorbidity(kind="myocardial_infarction", within_years=0.5)
STROKE_6_MONTHS = c.Comorbidity(kind="stroke", within_years=0.5)
VTE_3_MONTHS = c.Comorbidity(kind="venous_thromboembolism", within_years=0.25)
HEART_FAILURE = c.Comorbidity(kind="heart_failure")
ARRHYTHMIA_2_YEARS = c.Comorbidity(kind="arrhythmia", within_years=2)
NO_ARTERIAL_EVENT = c.Comorbidity(kind="arterial_thromboembolism", present=False)

COMORBIDITY_CASES = [
    (
        "infarction 3 months ago",
        MI_6_MONTHS,
        ill(Comorbidity(K.MYOCARDIAL_INFARCTION, "NSTEMI", active=True, onset=ago(90))),
        True,
        ("NSTEMI recorded",),
    ),
    (
        # A problem list keeps an old infarction "active": the onset decides, not the status.
        "infarction 2 years ago, still listed as active",
        MI_6_MONTHS,
        ill(Comorbidity(K.MYOCARDIAL_INFARCTION, "old MI", active=True, onset=ago(730))),
        False,
        ("no myocardial infarction in the last 0.5 years",),
    ),
    (
        "infarction, onset not recorded",
        MI_6_MONTHS,
        ill(Comorbidity(K.MYOCARDIAL_INFARCTION, "old myocardial infarction", active=True)),
        None,
        ("old myocardial infarction: onset not recorded",),
    ),
    (
        "infarction ruled out",
        MI_6_MONTHS,
        ill(Comorbidity(K.MYOCARDIAL_INFARCTION, present=False)),
        False,
        ("myocardial infarction ruled out",),
    ),
    ("nothing recorded", MI_6_MONTHS, ill(), None, ("myocardial infarction: not recorded",)),
    (
        "a stroke is not an infarction of the heart",
        MI_6_MONTHS,
        ill(Comorbidity(K.STROKE, "cerebral infarction", onset=ago(30))),
        None,
        ("myocardial infarction: not recorded",),
    ),
    (
        "stroke 5 months ago",
        STROKE_6_MONTHS,
        ill(Comorbidity(K.STROKE, "cerebral infarction", active=True, onset=ago(150))),
        True,
        ("cerebral infarction recorded",),
    ),
    (
        "TIA 8 months ago",
        STROKE_6_MONTHS,
        ill(Comorbidity(K.STROKE, "transient ischaemic attack", onset=ago(240))),
        False,
        ("no stroke or transient ischaemic attack in the last 0.5 years",),
    ),
    (
        "pulmonary embolism 6 weeks ago",
        VTE_3_MONTHS,
        ill(Comorbidity(K.VENOUS_THROMBOEMBOLISM, "pulmonary embolism", onset=ago(42))),
        True,
        ("pulmonary embolism recorded",),
    ),
    (
        "deep vein thrombosis a year ago",
        VTE_3_MONTHS,
        ill(Comorbidity(K.VENOUS_THROMBOEMBOLISM, "DVT", active=True, onset=ago(365))),
        False,
        ("venous thromboembolism (DVT / PE)",),
    ),
    (
        "heart failure, no window",
        HEART_FAILURE,
        ill(Comorbidity(K.HEART_FAILURE, "chronic diastolic heart failure", active=True)),
        True,
        ("chronic diastolic heart failure recorded",),
    ),
    (
        # A lasting condition active now is active within any window, whatever its onset.
        "atrial fibrillation since 2015, active",
        ARRHYTHMIA_2_YEARS,
        ill(Comorbidity(K.ARRHYTHMIA, "atrial fibrillation", active=True, onset=ago(4000))),
        True,
        ("atrial fibrillation recorded",),
    ),
    (
        "no arterial thromboembolism, one recorded",
        NO_ARTERIAL_EVENT,
        ill(Comorbidity(K.ARTERIAL_THROMBOEMBOLISM, "femoral artery embolism", onset=ago(20))),
        False,
        ("femoral artery embolism recorded",),
    ),
]


@pytest.mark.parametrize(
    ("constraint", "facts", "holds", "says"),
    [case[1:] for case in COMORBIDITY_CASES],
    ids=[case[0] for case in COMORBIDITY_CASES],
)
def test_cardiovascular_history(
    constraint: c.Comorbidity, facts: PatientFacts, holds: bool | None, says: tuple[str, ...]
) -> None:
    check = PatientEvaluator(facts, TODAY).check(constraint)

    assert check.holds is holds, check.reason
    for part in says:
        assert part in check.reason
    if holds is None:
        assert check.missing


@pytest.mark.parametrize(
    ("rule", "facts", "outcome", "satisfied"),
    [
        (
            Rule(1, "exclusion", "lab", (QTC_470,)),
            with_labs(lab(Analyte.QTC, 500, "ms")),
            Outcome.MET,
            False,
        ),
        (
            Rule(1, "exclusion", "lab", (QTC_470,)),
            with_labs(lab(Analyte.QTC, 430, "ms")),
            Outcome.NOT_MET,
            True,
        ),
        (
            Rule(2, "inclusion", "lab", (LVEF_50,)),
            with_labs(lab(Analyte.LVEF, 55, "%")),
            Outcome.MET,
            True,
        ),
        (
            Rule(3, "exclusion", "comorbidity", (MI_6_MONTHS,)),
            ill(Comorbidity(K.MYOCARDIAL_INFARCTION, "STEMI", onset=ago(60))),
            Outcome.MET,
            False,
        ),
        (
            Rule(3, "exclusion", "comorbidity", (MI_6_MONTHS,)),
            ill(),
            Outcome.UNKNOWN,
            False,
        ),
    ],
)
def test_as_criteria(rule: Rule, facts: PatientFacts, outcome: Outcome, satisfied: bool) -> None:
    result = PatientEvaluator(facts, TODAY).criterion(rule)

    assert result.outcome is outcome, result.reason
    assert result.satisfied is satisfied
