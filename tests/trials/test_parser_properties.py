"""Any text parses without an exception, and every criterion is a span of its input."""

import gzip
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.trials.conftest import CTGOV_DATA
from trials.eligibility.parser import parse_eligibility

with gzip.open(CTGOV_DATA / "corpus" / "criteria-corpus.json.gz") as _stream:
    REAL_TEXTS = [
        study["protocolSection"]["eligibilityModule"].get("eligibilityCriteria", "")
        for study in json.load(_stream)[:300]
    ]
CHARACTERS = st.characters(codec="utf-8") | st.sampled_from(
    list("*-\u2022\n\t :;.,()\uff08\uff09\u2265\u2264<>=\\^\u00d7\u00b5\u00b30123456789TNM")
)
FRAGMENTS = st.sampled_from(
    [
        "Inclusion Criteria:",
        "Exclusion Criteria:",
        "Key Inclusion Criteria:",
        "DISEASE CHARACTERISTICS:",
        "\n* ",
        "\n1. ",
        "\uff081\uff09",
        "ECOG 0-1",
        "ANC \\>= 1.5 x 10^9/L",
        "bilirubin <= 1.5 x ULN",
        "cT3-4aN+M0",
        "no prior anti-PD-1",
        "within 28 days",
        "except type I diabetes",
        "Age \u2265 18 years",
    ]
)
TEXTS = st.lists(st.text(alphabet=CHARACTERS, max_size=40) | FRAGMENTS, max_size=20).map("".join)


def assert_spans(text: str) -> None:
    for criterion in parse_eligibility(text).criteria:
        assert criterion.origin == "text"
        assert criterion.start is not None
        assert criterion.end is not None
        assert text[criterion.start : criterion.end] == criterion.text
        assert criterion.text in text
        assert criterion.text.strip()


@settings(max_examples=300, deadline=None)
@given(TEXTS)
def test_any_string_parses(text: str) -> None:
    assert_spans(text)


@settings(max_examples=200, deadline=None)
@given(
    source=st.sampled_from(REAL_TEXTS),
    cuts=st.lists(st.integers(min_value=0, max_value=5000), min_size=1, max_size=6),
    insert=st.text(alphabet=CHARACTERS, max_size=20) | FRAGMENTS,
)
def test_mangled_real_texts_parse(source: str, cuts: list[int], insert: str) -> None:
    """Real texts cut, spliced and salted with odd characters."""
    text = source
    for position in cuts:
        position %= len(text) + 1
        text = text[:position] + insert + text[position + len(insert) :]
    assert_spans(text)


def test_structured_fields_become_criteria() -> None:
    parsed = parse_eligibility("", minimum_age_years=18, maximum_age_years=75, sex="FEMALE")

    assert [(c.kind, c.category, c.origin) for c in parsed.criteria] == [
        ("inclusion", "age", "structured"),
        ("inclusion", "sex", "structured"),
    ]
    assert parsed.criteria[0].constraints[0].as_dict() == {"type": "age", "min": 18, "max": 75}
