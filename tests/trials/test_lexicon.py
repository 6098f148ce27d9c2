"""The vocabulary (data/lexicon.json) as the readers match it: whole words, the right concept.

Short forms are the risk: "PT" is prothrombin time, but "pT3" is a pathological T stage and
"pt" a patient; "MI" is a myocardial infarction, "mi" is not a word of English criteria.
"""

import re

import pytest

from trials.eligibility.facts import ComorbidityKind
from trials.eligibility.lexicon import group_matcher, lexicon, words_pattern
from trials.eligibility.units import Analyte


def analytes(text: str) -> list[tuple[str, str]]:
    matcher = group_matcher("analytes")
    return [(text[start:end], concept) for start, end, concept in matcher.finditer(text)]


def comorbidities(text: str) -> list[tuple[str, tuple[str, ...]]]:
    matcher = group_matcher("comorbidities")
    return [
        (text[start:end], matcher.concepts(text[start:end]))
        for start, end, _ in matcher.finditer(text)
    ]


def test_every_analyte_and_comorbidity_concept_is_in_the_engine_vocabulary() -> None:
    assert set(lexicon()["analytes"]) <= {analyte.value for analyte in Analyte}
    assert set(lexicon()["comorbidities"]) <= {kind.value for kind in ComorbidityKind}


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("INR ≤ 1.5 x ULN", [("INR", "inr")]),
        (
            "International normalized ratio (INR) ≤1.5",
            [("International normalized ratio", "inr"), ("INR", "inr")],
        ),
        ("PT-INR ≤ 1.5", [("PT-INR", "inr")]),
        (
            "Prothrombin time (PT) and activated partial thromboplastin time (APTT) ≤1.5\u00d7ULN",
            [
                ("Prothrombin time", "pt"),
                ("PT", "pt"),
                ("activated partial thromboplastin time", "aptt"),
                ("APTT", "aptt"),
            ],
        ),
        ("aPTT ≤ 1.5 x ULN", [("aPTT", "aptt")]),
        ("INR < 1.5 or a Pt/PTT within normal limits", [("INR", "inr"), ("PTT", "aptt")]),
        (
            "Alkaline phosphatase (ALP) ≤ 2.5 \u00d7 ULN",
            [("Alkaline phosphatase", "alp"), ("ALP", "alp")],
        ),
        ("AKP ≤ 2.5 ULN", [("AKP", "alp")]),
        ("Urine protein < 1 g/24h", [("Urine protein", "urine_protein")]),
        ("Proteinuria ≤ 1 g/24 hours", [("Proteinuria", "urine_protein")]),
        (
            "Left ventricular ejection fraction (LVEF) ≥ 50%",
            [("Left ventricular ejection fraction", "lvef"), ("LVEF", "lvef")],
        ),
        ("EF <45%", [("EF", "lvef")]),
        ("QTcF > 470 ms", [("QTcF", "qtc")]),
        (
            "Mean QT interval corrected for heart rate (QTc) <470 ms",
            [("QT interval corrected for heart rate", "qtc"), ("QTc", "qtc")],
        ),
        (
            "Corrected QT interval (QTc) > 480 msec",
            [("Corrected QT interval", "qtc"), ("QTc", "qtc")],
        ),
    ],
)
def test_analyte_names(text: str, found: list[tuple[str, str]]) -> None:
    assert analytes(text) == found


@pytest.mark.parametrize(
    "text",
    [
        "pT3N1M0 gastric adenocarcinoma",  # pathological T stage, not prothrombin time
        "pT any N1-3 M0",
        "ypT2 after neoadjuvant chemotherapy",
        "or the pt will require a repeat urinalysis",  # a patient
        "QT interval prolongation",  # the uncorrected QT is not the QTc
        "IIEF erectile function score",
        "alpha-fetoprotein",
    ],
)
def test_words_that_are_not_analytes(text: str) -> None:
    assert analytes(text) == []


@pytest.mark.parametrize(
    ("text", "found"),
    [
        (
            "Myocardial infarction (MI) within 6 months",
            [
                ("Myocardial infarction", ("myocardial_infarction",)),
                ("MI", ("myocardial_infarction",)),
            ],
        ),
        ("History of heart attack", [("heart attack", ("myocardial_infarction",))]),
        (
            "Acute coronary syndrome",
            [("Acute coronary syndrome", ("myocardial_infarction", "unstable_angina"))],
        ),
        ("Unstable angina pectoris", [("Unstable angina pectoris", ("unstable_angina",))]),
        (
            "Congestive heart failure > NYHA Class 2",
            [("Congestive heart failure", ("heart_failure",))],
        ),
        ("CHF", [("CHF", ("heart_failure",))]),
        ("Clinically significant cardiac arrhythmias", [("cardiac arrhythmias", ("arrhythmia",))]),
        ("Atrial fibrillation", [("Atrial fibrillation", ("arrhythmia",))]),
        (
            "Stroke or transient ischemic attack (TIA)",
            [
                ("Stroke", ("stroke",)),
                ("transient ischemic attack", ("stroke",)),
                ("TIA", ("stroke",)),
            ],
        ),
        (
            "Cerebrovascular accident (CVA)",
            [("Cerebrovascular accident", ("stroke",)), ("CVA", ("stroke",))],
        ),
        (
            "Arterial thromboembolic events",
            [("Arterial thromboembolic events", ("arterial_thromboembolism",))],
        ),
        (
            "Deep vein thrombosis (DVT) or pulmonary embolism",
            [
                ("Deep vein thrombosis", ("venous_thromboembolism",)),
                ("DVT", ("venous_thromboembolism",)),
                ("pulmonary embolism", ("venous_thromboembolism",)),
            ],
        ),
        (
            "Arterial or venous thromboembolic events",
            [
                (
                    "Arterial or venous thromboembolic events",
                    ("arterial_thromboembolism", "venous_thromboembolism"),
                )
            ],
        ),
        (
            "Thromboembolic events within 6 months",
            [("Thromboembolic events", ("arterial_thromboembolism", "venous_thromboembolism"))],
        ),
    ],
)
def test_cardiovascular_comorbidity_names(
    text: str, found: list[tuple[str, tuple[str, ...]]]
) -> None:
    assert comorbidities(text) == found


@pytest.mark.parametrize(
    "text",
    [
        "mi casa",  # lower-case "mi" is not an infarction
        "tia",
        "antiarrhythmic drugs",  # a drug class, not the disease
        "anti-arrhythmic therapy",
        "NYHA class III",  # the class alone is a severity, not the disease (see the README)
        "portal vein tumour thrombus",
    ],
)
def test_words_that_are_not_cardiovascular_comorbidities(text: str) -> None:
    assert comorbidities(text) == []


@pytest.mark.parametrize(
    ("words", "text", "matches"),
    [
        (["PT"], "PT 14 s; pt; Pt; pT3; pt.", ["PT"]),
        (["prothrombin time", "PT"], "PROTHROMBIN TIME (PT)", ["PROTHROMBIN TIME", "PT"]),
        (["Ab Cd*"], "Ab-Cdef, ab cd, AB CD", ["Ab-Cdef"]),
        (["ab cd*"], "Ab-Cdef, ab cd, AB CD", ["Ab-Cdef", "ab cd", "AB CD"]),
    ],
)
def test_a_word_written_with_capitals_matches_in_that_case_only(
    words: list[str], text: str, matches: list[str]
) -> None:
    pattern = re.compile(words_pattern(words), re.IGNORECASE)
    assert [match.group(0) for match in pattern.finditer(text)] == matches
