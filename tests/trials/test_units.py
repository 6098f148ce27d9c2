"""Unit normalisation and conversion for lab values and body measurements (no database).

The expected factors below are written out from DOMAIN.md's lab table on purpose, not read
from the module's table, so that a wrong factor in the module fails here.
"""

import dataclasses
import math
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trials.eligibility.units import (
    ANALYTE_LABELS,
    CANONICAL_UNITS,
    CONVERSIONS,
    Analyte,
    Quantity,
    UnitError,
    canonical_unit,
    convertible_units,
    from_canonical,
    normalize_unit,
    to_canonical,
)

A = Analyte

# (analyte, normalized unit) -> how many canonical units one of that unit is.
EXPECTED_FACTORS: dict[tuple[Analyte, str], float] = {
    **{
        (count, unit): factor
        for count in (A.ANC, A.PLATELETS, A.WBC, A.LYMPHOCYTES)
        for unit, factor in (("10^9/L", 1.0), ("cells/uL", 0.001))
    },
    (A.CD4, "cells/uL"): 1.0,
    (A.CD4, "10^9/L"): 1000.0,
    (A.HAEMOGLOBIN, "g/dL"): 1.0,
    (A.HAEMOGLOBIN, "g/L"): 0.1,
    (A.HAEMOGLOBIN, "mmol/L"): 1 / 0.6206,
    (A.CREATININE, "mg/dL"): 1.0,
    (A.CREATININE, "umol/L"): 1 / 88.4,
    (A.BILIRUBIN, "mg/dL"): 1.0,
    (A.BILIRUBIN, "umol/L"): 1 / 17.1,
    **{
        (enzyme, unit): factor
        for enzyme in (A.AST, A.ALT)
        for unit, factor in (("U/L", 1.0), ("IU/L", 1.0), ("ukat/L", 60.0))
    },
    (A.ALBUMIN, "g/dL"): 1.0,
    (A.ALBUMIN, "g/L"): 0.1,
    (A.CREATININE_CLEARANCE, "mL/min"): 1.0,
    (A.EGFR, "mL/min/1.73m2"): 1.0,
    (A.WEIGHT, "kg"): 1.0,
    (A.WEIGHT, "g"): 0.001,
    (A.WEIGHT, "lb"): 0.45359237,
    (A.HEIGHT, "cm"): 1.0,
    (A.HEIGHT, "m"): 100.0,
    (A.HEIGHT, "in"): 2.54,
    # INR is a ratio: nothing to convert, but a unit is still required.
    (A.INR, "ratio"): 1.0,
    (A.PT, "s"): 1.0,
    (A.APTT, "s"): 1.0,
    (A.ALP, "U/L"): 1.0,
    (A.ALP, "IU/L"): 1.0,
    (A.ALP, "ukat/L"): 60.0,
    (A.URINE_PROTEIN, "g/24h"): 1.0,
    (A.URINE_PROTEIN, "mg/24h"): 0.001,
    (A.LVEF, "%"): 1.0,
    (A.QTC, "ms"): 1.0,
    (A.QTC, "s"): 1000.0,
}

EXPECTED_CANONICAL = {
    A.ANC: "10^9/L",
    A.PLATELETS: "10^9/L",
    A.WBC: "10^9/L",
    A.LYMPHOCYTES: "10^9/L",
    A.CD4: "cells/uL",
    A.HAEMOGLOBIN: "g/dL",
    A.CREATININE: "mg/dL",
    A.BILIRUBIN: "mg/dL",
    A.AST: "U/L",
    A.ALT: "U/L",
    A.ALBUMIN: "g/dL",
    A.CREATININE_CLEARANCE: "mL/min",
    A.EGFR: "mL/min/1.73m2",
    A.WEIGHT: "kg",
    A.HEIGHT: "cm",
    A.INR: "ratio",
    A.PT: "s",
    A.APTT: "s",
    A.ALP: "U/L",
    A.URINE_PROTEIN: "g/24h",
    A.LVEF: "%",
    A.QTC: "ms",
}

PAIRS = sorted(EXPECTED_FACTORS)


def _fullwidth(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


# Every normalized unit the module knows, and a spelling of it as seen in the wild.
WILD_SPELLING = {
    "10^9/L": "x10⁹/L",
    "10^12/L": "10*12/L",
    "cells/uL": "/mm3",
    "g/dL": "g/dl",
    "g/L": "g/l",
    "mg/dL": "mg/dl",
    "mmol/L": "mmol/l",
    "umol/L": "µmol/L",
    "U/L": "U/l",
    "IU/L": "[IU]/L",
    "ukat/L": "µkat/L",
    "mL/min": "ml/min",
    "mL/min/1.73m2": "mL/min/{1.73_m2}",
    "kg": "KG",
    "g": "g",
    "lb": "[lb_av]",
    "cm": "CM",
    "m": "m",
    "in": "[in_i]",
    "%": "%",
    "ratio": "{INR}",
    "s": "sec",
    "ms": "msec",
    "g/24h": "g/24 hours",
    "mg/24h": "mg/(24.h)",
}
ALL_UNITS = sorted(WILD_SPELLING)

SPELLINGS: list[tuple[str, str]] = [
    # cell counts, 10^9/L family
    ("10^9/L", "10^9/L"),
    ("10*9/L", "10^9/L"),
    ("x10^9/L", "10^9/L"),
    ("X10^9/L", "10^9/L"),
    ("\u00d710⁹/L", "10^9/L"),  # multiplication sign
    ("x 10^9 / L", "10^9/L"),
    ("10E9/L", "10^9/L"),
    ("10e9/l", "10^9/L"),
    ("10^9 cells/L", "10^9/L"),
    ("G/L", "10^9/L"),
    ("G/l", "10^9/L"),
    ("Gpt/L", "10^9/L"),
    ("10^3/uL", "10^9/L"),
    ("10*3/uL", "10^9/L"),
    ("10^3/µL", "10^9/L"),
    ("10^3/μL", "10^9/L"),
    ("10³/µL", "10^9/L"),
    ("K/uL", "10^9/L"),
    ("K/µL", "10^9/L"),
    ("x10^3/mm3", "10^9/L"),
    ("x10^3/mm³", "10^9/L"),
    # cell counts, per microlitre family
    ("/mm3", "cells/uL"),
    ("/mm³", "cells/uL"),
    ("/mm^3", "cells/uL"),
    ("mm3", "cells/uL"),
    ("cells/mm3", "cells/uL"),
    ("cells/mm³", "cells/uL"),
    ("cells/uL", "cells/uL"),
    ("cells/µL", "cells/uL"),
    ("cells/μL", "cells/uL"),
    ("/uL", "cells/uL"),
    ("/µL", "cells/uL"),
    ("/cumm", "cells/uL"),
    ("10^6/L", "cells/uL"),
    ("10*6/L", "cells/uL"),
    ("10^12/L", "10^12/L"),
    # mass and substance concentrations
    ("g/dL", "g/dL"),
    ("g/dl", "g/dL"),
    ("gm/dL", "g/dL"),
    ("G/DL", "g/dL"),
    ("g/L", "g/L"),
    ("g/l", "g/L"),
    ("mmol/L", "mmol/L"),
    ("mmol/l", "mmol/L"),
    ("MMOL/L", "mmol/L"),
    ("mg/dL", "mg/dL"),
    ("mg/dl", "mg/dL"),
    ("MG/DL", "mg/dL"),
    ("umol/L", "umol/L"),
    ("µmol/L", "umol/L"),  # micro sign U+00B5
    ("μmol/L", "umol/L"),  # Greek small mu U+03BC
    ("UMOL/L", "umol/L"),
    ("micromol/L", "umol/L"),
    # enzymes
    ("U/L", "U/L"),
    ("U/l", "U/L"),
    ("u/l", "U/L"),
    ("IU/L", "IU/L"),
    ("[IU]/L", "IU/L"),
    ("ukat/L", "ukat/L"),
    ("µkat/L", "ukat/L"),
    ("μkat/L", "ukat/L"),
    # renal function
    ("mL/min", "mL/min"),
    ("ml/min", "mL/min"),
    ("ML/MIN", "mL/min"),
    ("mL/min/{1.73_m2}", "mL/min/1.73m2"),
    ("mL/min/1.73m2", "mL/min/1.73m2"),
    ("mL/min/1.73 m²", "mL/min/1.73m2"),
    ("mL/min/1.73m^2", "mL/min/1.73m2"),
    ("ml/min/(1.73 m2)", "mL/min/1.73m2"),
    ("ml/min/1,73m2", "mL/min/1.73m2"),
    # body measurements
    ("kg", "kg"),
    ("Kg", "kg"),
    ("g", "g"),
    ("lb", "lb"),
    ("[lb_av]", "lb"),
    ("lbs", "lb"),
    ("cm", "cm"),
    ("m", "m"),
    ("in", "in"),
    ("[in_i]", "in"),
    ("%", "%"),
    ("percent", "%"),
    # ratios (INR): UCUM "{INR}" (the probe bundles), unity "1", "ratio"
    ("{INR}", "ratio"),
    ("INR", "ratio"),
    ("1", "ratio"),
    ("ratio", "ratio"),
    ("{ratio}", "ratio"),
    # times: clotting times in seconds, QTc in milliseconds
    ("s", "s"),
    ("sec", "s"),
    ("secs", "s"),
    ("seconds", "s"),
    ("ms", "ms"),
    ("msec", "ms"),
    ("milliseconds", "ms"),
    # mass per 24 hours (24-hour urine protein)
    ("g/24h", "g/24h"),
    ("g/24 h", "g/24h"),
    ("g/24hr", "g/24h"),
    ("g/24 hours", "g/24h"),
    ("g/24-hour", "g/24h"),
    ("g/(24.h)", "g/24h"),
    ("g/24", "g/24h"),
    ("g/d", "g/24h"),
    ("g/day", "g/24h"),
    ("mg/24h", "mg/24h"),
    ("mg/24 hours", "mg/24h"),
    ("mg/(24.h)", "mg/24h"),
    ("mg/d", "mg/24h"),
    # full-width, spaced and padded forms
    (_fullwidth("mg/dL"), "mg/dL"),
    (_fullwidth("10^9/L"), "10^9/L"),
    (_fullwidth("g/L"), "g/L"),
    ("  mg / dL  ", "mg/dL"),
    ("mg\u00a0/\u00a0dL", "mg/dL"),
    ("µmol / L", "umol/L"),
    ("\tkg\n", "kg"),
]

UNRECOGNISED = [
    "furlong",
    "mg",
    "mol/L",
    "nmol/L",
    "109/L",  # a lost superscript: 10^9 or 109? Never guess.
    "10^3/L",
    "/L",
    "kg/m2",
    "mL/s",
    "mg%",
    "mL/min/m2",
    "10^9",
    "cells",
]


# --- analytes and the table -------------------------------------------------------------------


def test_analyte_values() -> None:
    assert {a.name: a.value for a in Analyte} == {
        "ANC": "anc",
        "PLATELETS": "platelets",
        "HAEMOGLOBIN": "haemoglobin",
        "WBC": "wbc",
        "LYMPHOCYTES": "lymphocytes",
        "CD4": "cd4",
        "CREATININE": "creatinine",
        "BILIRUBIN": "bilirubin",
        "AST": "ast",
        "ALT": "alt",
        "ALBUMIN": "albumin",
        "CREATININE_CLEARANCE": "creatinine_clearance",
        "EGFR": "egfr",
        "WEIGHT": "weight",
        "HEIGHT": "height",
        "INR": "inr",
        "PT": "pt",
        "APTT": "aptt",
        "ALP": "alp",
        "URINE_PROTEIN": "urine_protein",
        "LVEF": "lvef",
        "QTC": "qtc",
    }


@pytest.mark.parametrize("analyte", list(Analyte))
def test_every_analyte_has_a_label(analyte: Analyte) -> None:
    assert analyte.label == ANALYTE_LABELS[analyte]
    assert analyte.label.strip()


def test_labels_are_human() -> None:
    assert A.ANC.label == "absolute neutrophil count"
    assert A.BILIRUBIN.label == "total bilirubin"
    assert len(set(ANALYTE_LABELS.values())) == len(Analyte)


@pytest.mark.parametrize("analyte", list(Analyte))
def test_canonical_unit(analyte: Analyte) -> None:
    assert canonical_unit(analyte) == CANONICAL_UNITS[analyte] == EXPECTED_CANONICAL[analyte]
    assert convertible_units(analyte)[0] == EXPECTED_CANONICAL[analyte]


def test_table_is_exactly_the_expected_one() -> None:
    table = {(a, unit) for a in Analyte for unit in convertible_units(a)}
    assert table == set(EXPECTED_FACTORS)
    assert set(CONVERSIONS) == set(Analyte)


@pytest.mark.parametrize("analyte", [a for a in Analyte if a is not A.LVEF])
def test_no_analyte_but_the_ejection_fraction_takes_percent(analyte: Analyte) -> None:
    assert "%" not in convertible_units(analyte)


@pytest.mark.parametrize("unit", ALL_UNITS)
def test_known_units_are_normalized_spellings(unit: str) -> None:
    assert normalize_unit(unit) == unit
    assert normalize_unit(WILD_SPELLING[unit]) == unit


def test_every_accepted_unit_is_known() -> None:
    accepted = {unit for a in Analyte for unit in convertible_units(a)}
    assert accepted <= set(ALL_UNITS)


# --- spelling ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("spelling", "expected"), SPELLINGS)
def test_spelling_normalizes(spelling: str, expected: str) -> None:
    assert normalize_unit(spelling) == expected


@pytest.mark.parametrize(("spelling", "expected"), SPELLINGS)
def test_normalized_spelling_is_a_fixed_point(spelling: str, expected: str) -> None:
    assert normalize_unit(normalize_unit(spelling)) == expected


@pytest.mark.parametrize(
    ("spelling", "expected"),
    [(s, e) for s, e in SPELLINGS if s.isascii() and s.strip().lower() != "g/l"],
)
def test_case_does_not_matter_except_for_g_per_litre(spelling: str, expected: str) -> None:
    assert normalize_unit(spelling.upper()) == expected
    assert normalize_unit(spelling.lower()) == expected


@pytest.mark.parametrize(
    ("spelling", "expected"), [(s, e) for s, e in SPELLINGS if s.isascii() and s.isprintable()]
)
def test_fullwidth_forms(spelling: str, expected: str) -> None:
    assert normalize_unit(_fullwidth(spelling)) == expected


@given(
    pair=st.sampled_from(SPELLINGS),
    spaces=st.lists(st.sampled_from([" ", "  ", "\t", "\u00a0", "\u3000"]), max_size=12),
    data=st.data(),
)
def test_whitespace_anywhere_does_not_matter(
    pair: tuple[str, str], spaces: list[str], data: st.DataObject
) -> None:
    spelling, expected = pair
    chars = list(spelling)
    for space in spaces:
        chars.insert(data.draw(st.integers(0, len(chars))), space)
    assert normalize_unit("".join(chars)) == expected


def test_g_per_litre_and_giga_per_litre_are_told_apart() -> None:
    assert normalize_unit("G/L") == "10^9/L"
    assert normalize_unit("g/L") == "g/L"
    assert normalize_unit("gm/L") == "g/L"


def test_mmol_and_umol_are_never_confused() -> None:
    assert normalize_unit("mmol/L") == "mmol/L"
    assert normalize_unit("MMOL/L") == "mmol/L"
    assert normalize_unit("umol/L") == "umol/L"
    assert normalize_unit("µmol/L") == "umol/L"
    assert normalize_unit("UMOL/L") == "umol/L"


@pytest.mark.parametrize("spelling", UNRECOGNISED)
def test_unknown_spelling_is_an_error(spelling: str) -> None:
    with pytest.raises(UnitError, match="not recognised") as raised:
        normalize_unit(spelling)
    assert spelling in str(raised.value)


@pytest.mark.parametrize("spelling", ["", " ", "\t\n", "\u3000"])
def test_empty_spelling_is_an_error(spelling: str) -> None:
    with pytest.raises(UnitError, match="No unit given"):
        normalize_unit(spelling)


# --- conversion: the whole table ---------------------------------------------------------------


@pytest.mark.parametrize(("analyte", "unit"), PAIRS)
@pytest.mark.parametrize("value", [0, 1, 0.5, 1.5, 9, 100, 1500, 123456.789])
def test_every_pair_converts_by_its_factor(analyte: Analyte, unit: str, value: float) -> None:
    result = to_canonical(analyte, value, unit)
    assert isinstance(result, Quantity)
    assert result.unit == EXPECTED_CANONICAL[analyte]
    assert result.value == pytest.approx(value * EXPECTED_FACTORS[analyte, unit], rel=1e-12)
    assert from_canonical(analyte, result.value, unit) == pytest.approx(value, rel=1e-9)


@pytest.mark.parametrize(("analyte", "unit"), PAIRS)
def test_every_pair_converts_from_a_wild_spelling(analyte: Analyte, unit: str) -> None:
    assert to_canonical(analyte, 2, WILD_SPELLING[unit]) == to_canonical(analyte, 2, unit)
    assert from_canonical(analyte, 2, WILD_SPELLING[unit]) == from_canonical(analyte, 2, unit)


@given(
    pair=st.sampled_from(PAIRS),
    value=st.floats(min_value=0, max_value=1e12, allow_nan=False, allow_infinity=False),
)
def test_round_trip(pair: tuple[Analyte, str], value: float) -> None:
    analyte, unit = pair
    canonical = to_canonical(analyte, value, unit)
    back = from_canonical(analyte, canonical.value, unit)
    assert back == pytest.approx(value, rel=1e-9, abs=1e-300)
    forward = to_canonical(analyte, from_canonical(analyte, value, unit), unit)
    assert forward.value == pytest.approx(value, rel=1e-9, abs=1e-300)


@given(
    pair=st.sampled_from(PAIRS),
    a=st.floats(min_value=0, max_value=1e9, allow_nan=False),
    b=st.floats(min_value=0, max_value=1e9, allow_nan=False),
)
def test_conversion_keeps_order(pair: tuple[Analyte, str], a: float, b: float) -> None:
    """A threshold comparison gives the same answer before and after conversion."""
    analyte, unit = pair
    low, high = sorted((a, b))
    assert to_canonical(analyte, low, unit).value <= to_canonical(analyte, high, unit).value


@given(
    pair=st.sampled_from(PAIRS),
    digits=st.integers(min_value=0, max_value=10**7),
    places=st.integers(min_value=0, max_value=4),
)
def test_decimal_and_float_agree(pair: tuple[Analyte, str], digits: int, places: int) -> None:
    analyte, unit = pair
    decimal = Decimal(digits).scaleb(-places)
    assert to_canonical(analyte, decimal, unit) == to_canonical(analyte, float(decimal), unit)


# --- conversion: known facts (DOMAIN.md) -------------------------------------------------------


@pytest.mark.parametrize(
    ("analyte", "value", "unit", "canonical"),
    [
        # 1.5 x 10^9/L = 1,500/mm3 = 1.5 10^3/uL
        (A.ANC, 1.5, "x10^9/L", 1.5),
        (A.ANC, 1500, "/mm3", 1.5),
        (A.ANC, 1500, "cells/mm3", 1.5),
        (A.ANC, 1.5, "10^3/uL", 1.5),
        (A.ANC, 1.5, "G/L", 1.5),
        (A.PLATELETS, 100, "10*9/L", 100),
        (A.PLATELETS, 100_000, "/uL", 100),
        (A.PLATELETS, 100, "K/uL", 100),
        (A.WBC, 4500, "/mm³", 4.5),
        (A.LYMPHOCYTES, 1000, "10^6/L", 1.0),
        # haemoglobin 9 g/dL = 90 g/L = 5.5854 mmol/L
        (A.HAEMOGLOBIN, 9, "g/dL", 9),
        (A.HAEMOGLOBIN, 90, "g/L", 9),
        (A.HAEMOGLOBIN, 5.5854, "mmol/L", 9),
        # creatinine 1 mg/dL = 88.4 µmol/L; bilirubin 1 mg/dL = 17.1 µmol/L
        (A.CREATININE, 88.4, "µmol/L", 1),
        (A.CREATININE, 1, "mg/dL", 1),
        (A.BILIRUBIN, 17.1, "μmol/L", 1),
        (A.BILIRUBIN, 25.65, "umol/L", 1.5),
        # CD4: 500 cells/mm3 = 0.5 x 10^9/L
        (A.CD4, 500, "cells/mm3", 500),
        (A.CD4, 0.5, "10^9/L", 500),
        (A.CD4, 500, "/µL", 500),
        # enzymes
        (A.AST, 40, "IU/L", 40),
        (A.ALT, 40, "[IU]/L", 40),
        (A.ALT, 1, "µkat/L", 60),
        # albumin
        (A.ALBUMIN, 35, "g/L", 3.5),
        (A.ALBUMIN, 3.5, "g/dL", 3.5),
        # renal function
        (A.CREATININE_CLEARANCE, 60, "ml/min", 60),
        (A.EGFR, 60, "mL/min/{1.73_m2}", 60),
        # body measurements
        (A.WEIGHT, 70_000, "g", 70),
        (A.WEIGHT, 1, "[lb_av]", 0.45359237),
        (A.WEIGHT, 154, "lbs", 69.85322498),
        (A.HEIGHT, 1.75, "m", 175),
        (A.HEIGHT, 1, "[in_i]", 2.54),
        (A.HEIGHT, 69, "in", 175.26),
        # INR as the probe bundles send it (UCUM {INR}) and as other senders code it (unity)
        (A.INR, 1.0, "{INR}", 1.0),
        (A.INR, 1.5, "1", 1.5),
        (A.PT, 13.2, "sec", 13.2),
        (A.APTT, 35, "seconds", 35),
        (A.ALP, 120, "U/L", 120),
        (A.ALP, 2, "µkat/L", 120),
        # 24-hour urine protein: 1 g/24h = 1000 mg/24h
        (A.URINE_PROTEIN, 1, "g/24h", 1),
        (A.URINE_PROTEIN, 500, "mg/24 h", 0.5),
        (A.URINE_PROTEIN, 1000, "mg/d", 1),
        (A.LVEF, 50, "%", 50),
        # QTc 470 ms = 0.47 s
        (A.QTC, 470, "ms", 470),
        (A.QTC, 0.47, "s", 470),
    ],
)
def test_known_facts(analyte: Analyte, value: float, unit: str, canonical: float) -> None:
    assert to_canonical(analyte, value, unit).value == pytest.approx(canonical, rel=1e-12)


@pytest.mark.parametrize(
    ("analyte", "canonical", "unit", "shown"),
    [
        (A.ANC, 1.5, "/mm3", 1500),
        (A.ANC, 1.5, "10^3/uL", 1.5),
        (A.HAEMOGLOBIN, 9, "mmol/L", 5.5854),
        (A.HAEMOGLOBIN, 9, "g/L", 90),
        (A.CREATININE, 1.5, "umol/L", 132.6),
        (A.BILIRUBIN, 1.5, "umol/L", 25.65),
        (A.CD4, 500, "10^9/L", 0.5),
        (A.AST, 60, "ukat/L", 1),
        (A.HEIGHT, 175, "m", 1.75),
    ],
)
def test_thresholds_shown_back(analyte: Analyte, canonical: float, unit: str, shown: float) -> None:
    assert from_canonical(analyte, canonical, unit) == pytest.approx(shown, rel=1e-12)


def test_boundary_values_convert_to_exactly_the_threshold() -> None:
    """Exact arithmetic: a value at a threshold is not pushed over or under it by rounding."""
    assert to_canonical(A.ANC, 1500, "/mm3") == Quantity(1.5, "10^9/L")
    assert to_canonical(A.ANC, 1100, "/mm3").value == 1.1
    assert to_canonical(A.PLATELETS, 75_300, "/uL").value == 75.3
    assert to_canonical(A.HAEMOGLOBIN, 3, "g/L").value == 0.3
    assert to_canonical(A.HAEMOGLOBIN, 5.5854, "mmol/L").value == 9.0
    assert to_canonical(A.CREATININE, 132.6, "umol/L").value == 1.5
    assert to_canonical(A.BILIRUBIN, 25.65, "umol/L").value == 1.5
    assert to_canonical(A.CD4, 0.5, "10^9/L").value == 500.0
    assert to_canonical(A.ANC, Decimal("1.5"), "10^3/uL").value == 1.5
    assert from_canonical(A.ANC, 1.1, "/mm3") == 1100.0


def test_quantity_is_a_small_frozen_value() -> None:
    quantity = to_canonical(A.ANC, 1500, "/mm3")
    assert quantity == Quantity(value=1.5, unit="10^9/L")
    assert isinstance(quantity.value, float)
    assert str(quantity) == "1.5 10^9/L"
    with pytest.raises(dataclasses.FrozenInstanceError):
        quantity.value = 2.0  # type: ignore[misc]


def test_analyte_may_be_given_by_value() -> None:
    assert to_canonical("anc", 1500, "/mm3") == to_canonical(A.ANC, 1500, "/mm3")  # type: ignore[arg-type]


def test_decimal_and_int_values() -> None:
    assert to_canonical(A.HAEMOGLOBIN, Decimal("90"), "g/L").value == 9.0
    assert to_canonical(A.HAEMOGLOBIN, 90, "g/L").value == 9.0
    assert to_canonical(A.ANC, 0, "/mm3").value == 0.0
    assert to_canonical(A.ANC, -0.0, "/mm3").value == 0.0


# --- conversion: errors --------------------------------------------------------------------------

WRONG_FAMILY = [
    (analyte, unit)
    for analyte in Analyte
    for unit in ALL_UNITS
    if (analyte, unit) not in EXPECTED_FACTORS
]


def test_wrong_family_pairs_cover_every_analyte() -> None:
    assert {analyte for analyte, _ in WRONG_FAMILY} == set(Analyte)
    assert len(WRONG_FAMILY) == len(Analyte) * len(ALL_UNITS) - len(EXPECTED_FACTORS)


@pytest.mark.parametrize(("analyte", "unit"), WRONG_FAMILY)
@pytest.mark.parametrize("spelled", ["normalized", "wild"])
def test_unit_of_another_family_is_rejected(analyte: Analyte, unit: str, spelled: str) -> None:
    given_unit = unit if spelled == "normalized" else WILD_SPELLING[unit]
    for convert in (to_canonical, from_canonical):
        with pytest.raises(UnitError) as raised:
            convert(analyte, 1, given_unit)
        message = str(raised.value)
        assert analyte.label in message
        assert f'"{given_unit}"' in message
        for accepted in convertible_units(analyte):
            assert accepted in message
        assert raised.value.analyte is analyte
        assert raised.value.unit == given_unit
        assert raised.value.accepted == convertible_units(analyte)


def test_wrong_family_message_reads_well() -> None:
    with pytest.raises(UnitError) as raised:
        to_canonical(A.ANC, 2, "mg/dL")
    assert str(raised.value) == (
        'Unit "mg/dL" cannot be used for absolute neutrophil count; '
        "accepted units: 10^9/L (or 10^3/uL), cells/uL (or /mm3)."
    )
    with pytest.raises(UnitError) as raised:
        to_canonical(A.HAEMOGLOBIN, 9, "K/uL")
    assert str(raised.value) == (
        'Unit "K/uL" (read as 10^9/L) cannot be used for haemoglobin; '
        "accepted units: g/dL, g/L, mmol/L."
    )


@pytest.mark.parametrize("analyte", [A.HAEMOGLOBIN, A.ALBUMIN])
def test_capital_g_per_litre_is_not_grams(analyte: Analyte) -> None:
    with pytest.raises(UnitError) as raised:
        to_canonical(analyte, 90, "G/L")
    message = str(raised.value)
    assert analyte.label in message
    assert '"G/L"' in message
    assert "10^9/L" in message
    assert "write g/L" in message


@pytest.mark.parametrize("analyte", [A.ANC, A.PLATELETS, A.WBC, A.LYMPHOCYTES, A.CD4])
def test_percentages_are_not_counts(analyte: Analyte) -> None:
    with pytest.raises(UnitError, match="cannot be used for"):
        to_canonical(analyte, 30, "%")


@pytest.mark.parametrize(
    ("analyte", "value", "unit", "says"),
    [
        # A prothrombin time as % activity (Quick) is another quantity than seconds.
        (A.PT, 70, "%", 'Unit "%" cannot be used for prothrombin time; accepted units: s.'),
        # A urine protein concentration or dipstick result is not a 24-hour excretion.
        (
            A.URINE_PROTEIN,
            30,
            "mg/dL",
            'Unit "mg/dL" cannot be used for urine protein (24-hour); '
            "accepted units: g/24h, mg/24h.",
        ),
        (A.URINE_PROTEIN, 2, "+", 'Unit "+" is not recognised for urine protein (24-hour)'),
        # A ratio is not a time, nor a time a ratio.
        (A.INR, 12, "s", 'Unit "s" cannot be used for INR (international normalized ratio)'),
        (A.QTC, 1, "{INR}", 'Unit "{INR}" (read as ratio) cannot be used for QTc'),
        (A.LVEF, 0.55, "1", 'Unit "1" (read as ratio) cannot be used for left ventricular'),
    ],
)
def test_other_quantities_of_the_new_analytes_are_rejected(
    analyte: Analyte, value: float, unit: str, says: str
) -> None:
    with pytest.raises(UnitError) as raised:
        to_canonical(analyte, value, unit)
    assert str(raised.value).startswith(says)


def test_an_inr_without_a_unit_is_not_guessed() -> None:
    with pytest.raises(UnitError) as raised:
        to_canonical(A.INR, 1.1, "")
    assert str(raised.value) == (
        "No unit given for INR (international normalized ratio); "
        "accepted units: ratio (or {INR}, 1)."
    )


@pytest.mark.parametrize("analyte", list(Analyte))
@pytest.mark.parametrize("unit", UNRECOGNISED)
def test_unrecognised_unit_is_rejected(analyte: Analyte, unit: str) -> None:
    with pytest.raises(UnitError) as raised:
        to_canonical(analyte, 1, unit)
    message = str(raised.value)
    assert analyte.label in message
    assert f'"{unit}"' in message
    assert "not recognised" in message


@pytest.mark.parametrize("analyte", list(Analyte))
@pytest.mark.parametrize("unit", ["", "   ", None])
def test_missing_unit_is_rejected(analyte: Analyte, unit: str | None) -> None:
    for convert in (to_canonical, from_canonical):
        with pytest.raises(UnitError) as raised:
            convert(analyte, 1, unit)
        message = str(raised.value)
        assert message.startswith(f"No unit given for {analyte.label};")
        assert canonical_unit(analyte) in message


BAD_VALUES = [
    -1,
    -0.001,
    -1e-300,
    Decimal("-0.5"),
    math.nan,
    -math.nan,
    math.inf,
    -math.inf,
    Decimal("NaN"),
    Decimal("sNaN"),
    Decimal("Infinity"),
    Decimal("-Infinity"),
]


@pytest.mark.parametrize(("analyte", "unit"), PAIRS)
@pytest.mark.parametrize("value", BAD_VALUES, ids=repr)
def test_negative_and_non_finite_values_are_rejected(
    analyte: Analyte, unit: str, value: float | Decimal
) -> None:
    for convert in (to_canonical, from_canonical):
        with pytest.raises(UnitError) as raised:
            convert(analyte, value, unit)
        assert analyte.label in str(raised.value)


@pytest.mark.parametrize("value", [True, "1.5", None, [1]], ids=repr)
def test_non_numbers_are_rejected(value: object) -> None:
    with pytest.raises(UnitError, match="must be a number"):
        to_canonical(A.ANC, value, "10^9/L")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("analyte", "value", "unit"),
    [(A.CD4, 1e308, "10^9/L"), (A.ANC, Decimal("1e400"), "10^9/L"), (A.HEIGHT, 10**400, "m")],
    ids=repr,
)
def test_values_too_large_for_a_float_are_rejected(
    analyte: Analyte, value: float | Decimal, unit: str
) -> None:
    with pytest.raises(UnitError, match="too large") as raised:
        to_canonical(analyte, value, unit)
    assert analyte.label in str(raised.value)


def test_unit_error_is_a_value_error() -> None:
    assert issubclass(UnitError, ValueError)


def test_messages_are_short_and_plain() -> None:
    long_unit = "per " + "very " * 40 + "long unit"
    with pytest.raises(UnitError) as raised:
        to_canonical(A.ANC, 1, long_unit)
    message = str(raised.value)
    assert len(message) < 200
    assert "Traceback" not in message
    assert "\n" not in message
