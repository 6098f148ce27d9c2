"""Eligibility text cut into criteria, whatever the shape real records use."""

import pytest

from trials.eligibility.segment import segment


def cut(text: str) -> list[tuple[str, str]]:
    return [(s.kind, text[s.start : s.end]) for s in segment(text)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Inclusion Criteria:\n\n* Age >= 18\n* ECOG 0-1\n\nExclusion Criteria:\n\n* Pregnant",
            [("inclusion", "Age >= 18"), ("inclusion", "ECOG 0-1"), ("exclusion", "Pregnant")],
        ),
        (
            "Key Inclusion Criteria:\n- Resectable disease\nKey Exclusion Criteria:\n- M1",
            [("inclusion", "Resectable disease"), ("exclusion", "M1")],
        ),
        (
            "INCLUSION CRITERIA\n1. Gastric adenocarcinoma\n2) ECOG 0-1\n\nEXCLUSION CRITERIA\n"
            "(1) HIV\n（2）Hepatitis B",
            [
                ("inclusion", "Gastric adenocarcinoma"),
                ("inclusion", "ECOG 0-1"),
                ("exclusion", "HIV"),
                ("exclusion", "Hepatitis B"),
            ],
        ),
        (
            "Patients must have gastric cancer.\n\nNo prior chemotherapy for this cancer.",
            [
                ("inclusion", "Patients must have gastric cancer."),
                ("inclusion", "No prior chemotherapy for this cancer."),
            ],
        ),
        (
            "Inclusion Criteria:\n\n1. Age 18-75. 2. ECOG 0-1. 3. No distant metastasis.",
            [
                ("inclusion", "Age 18-75."),
                ("inclusion", "ECOG 0-1."),
                ("inclusion", "No distant metastasis."),
            ],
        ),
    ],
)
def test_sections_and_items(text: str, expected: list[tuple[str, str]]) -> None:
    assert cut(text) == expected


def test_sub_items_belong_to_their_parent() -> None:
    text = (
        "Inclusion Criteria:\n\n* Adequate organ function:\n\n  * ANC \\>= 1.5 x 10^9/L\n"
        "  * Platelets >= 100 x 10^9/L\n* ECOG 0-1"
    )

    segments = segment(text)

    assert [text[s.start : s.end] for s in segments] == [
        "Adequate organ function:",
        "ANC \\>= 1.5 x 10^9/L",
        "Platelets >= 100 x 10^9/L",
        "ECOG 0-1",
    ]
    assert segments[0].header
    assert [s.parent for s in segments] == [None, 0, 0, None]
    assert [s.depth for s in segments] == [0, 1, 1, 0]


def test_old_layout_with_inline_subheadings() -> None:
    text = (
        "DISEASE CHARACTERISTICS: Histologically confirmed gastric adenocarcinoma\n\n"
        "PATIENT CHARACTERISTICS: Age: 18 and over Performance status: ECOG 0-1 "
        "Hepatic: Bilirubin normal"
    )

    assert cut(text) == [
        ("inclusion", "Histologically confirmed gastric adenocarcinoma"),
        ("inclusion", "Age: 18 and over"),
        ("inclusion", "Performance status: ECOG 0-1"),
        ("inclusion", "Hepatic: Bilirubin normal"),
    ]


def test_lab_values_run_together_with_semicolons_are_separate_criteria() -> None:
    text = (
        "Inclusion Criteria:\n\n* Absolute neutrophil count (ANC) >= 1.5 x 10^9/L; Platelets >= "
        "100 x 10^9/L; Hemoglobin >= 9 g/dL; Total bilirubin <= 1.5 x ULN"
    )

    assert [t for _, t in cut(text)] == [
        "Absolute neutrophil count (ANC) >= 1.5 x 10^9/L",
        "Platelets >= 100 x 10^9/L",
        "Hemoglobin >= 9 g/dL",
        "Total bilirubin <= 1.5 x ULN",
    ]


def test_a_number_at_the_start_of_a_line_is_not_an_item_number() -> None:
    text = "Inclusion Criteria:\n\n* Bilirubin <= ULN or\n1.5 x ULN with Gilbert's"

    assert [t for _, t in cut(text)] == ["Bilirubin <= ULN or\n1.5 x ULN with Gilbert's"]


def test_empty_and_heading_only_texts() -> None:
    assert segment("") == []
    assert segment("Inclusion Criteria:\n\nExclusion Criteria:\n") == []
