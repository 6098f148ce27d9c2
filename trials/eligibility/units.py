"""Units for laboratory results and body measurements: one canonical unit per analyte.

Patient results (FHIR ``valueQuantity`` with a UCUM unit, see FHIR-IMPORT.md) and trial
thresholds (free text such as ">= 1,500/mm3") are both converted into the canonical unit of
their analyte before they are compared. The conversion factors are those of the laboratory
table in DOMAIN.md; every factor is kept as data in :data:`CONVERSIONS`.

Rules:

* Never guess. An empty or unrecognised unit, a unit of another family (``mg/dL`` for a
  neutrophil count, ``%`` for anything but an ejection fraction), a negative value or a value
  that is not a finite number raises :class:`UnitError`, whose message is meant to be shown to
  users as is. A ratio (INR) is given in a unit too ("{INR}", "1", "ratio"), never bare.
* Urine protein is the 24-hour excretion (g/24h, mg/24h). A concentration (mg/dL) or a
  dipstick grade ("2+") is another quantity and does not convert into it.
* Arithmetic is exact: values and factors are combined as fractions and rounded to a float
  once, so a boundary value converts to exactly the threshold it equals (1,500/mm3 is exactly
  1.5 x 10^9/L). A float value is read as the decimal it prints as (``1.1`` is 11/10).
* ``G/L`` (giga per litre, used by French and German laboratories for cell counts) means
  10^9/L, never grams per litre. It is the one spelling read case-sensitively: a capital ``G``
  before ``/L`` is giga, a small ``g`` is gram. An all-capitals ``G/L`` meant as grams per
  litre is therefore rejected for haemoglobin and albumin with a message saying so, rather
  than silently read as a cell count or as grams.

Pure Python: no Django imports (the eligibility engine runs without Django).
"""

import math
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction
from types import MappingProxyType
from typing import Final

__all__ = [
    "ANALYTE_LABELS",
    "CANONICAL_UNITS",
    "CONVERSIONS",
    "Analyte",
    "Quantity",
    "UnitError",
    "canonical_unit",
    "convertible_units",
    "from_canonical",
    "normalize_unit",
    "to_canonical",
]


class Analyte(StrEnum):
    """A laboratory value or body measurement an eligibility criterion can name."""

    ANC = "anc"
    PLATELETS = "platelets"
    HAEMOGLOBIN = "haemoglobin"
    WBC = "wbc"
    LYMPHOCYTES = "lymphocytes"
    CD4 = "cd4"
    CREATININE = "creatinine"
    BILIRUBIN = "bilirubin"
    AST = "ast"
    ALT = "alt"
    ALBUMIN = "albumin"
    CREATININE_CLEARANCE = "creatinine_clearance"
    EGFR = "egfr"
    WEIGHT = "weight"
    HEIGHT = "height"
    INR = "inr"
    PT = "pt"
    APTT = "aptt"
    ALP = "alp"
    URINE_PROTEIN = "urine_protein"
    LVEF = "lvef"
    QTC = "qtc"

    @property
    def label(self) -> str:
        """The human name of the analyte, for explanations and messages."""
        return ANALYTE_LABELS[self]


ANALYTE_LABELS: Final[Mapping[Analyte, str]] = MappingProxyType(
    {
        Analyte.ANC: "absolute neutrophil count",
        Analyte.PLATELETS: "platelet count",
        Analyte.HAEMOGLOBIN: "haemoglobin",
        Analyte.WBC: "white blood cell count",
        Analyte.LYMPHOCYTES: "lymphocyte count",
        Analyte.CD4: "CD4 count",
        Analyte.CREATININE: "creatinine",
        Analyte.BILIRUBIN: "total bilirubin",
        Analyte.AST: "AST (aspartate aminotransferase)",
        Analyte.ALT: "ALT (alanine aminotransferase)",
        Analyte.ALBUMIN: "albumin",
        Analyte.CREATININE_CLEARANCE: "creatinine clearance",
        Analyte.EGFR: "eGFR (estimated glomerular filtration rate)",
        Analyte.WEIGHT: "body weight",
        Analyte.HEIGHT: "body height",
        Analyte.INR: "INR (international normalized ratio)",
        Analyte.PT: "prothrombin time",
        Analyte.APTT: "aPTT (activated partial thromboplastin time)",
        Analyte.ALP: "alkaline phosphatase",
        Analyte.URINE_PROTEIN: "urine protein (24-hour)",
        Analyte.LVEF: "left ventricular ejection fraction",
        Analyte.QTC: "QTc (corrected QT interval)",
    }
)

# The normalized spellings: ASCII, UCUM-like, one per unit. normalize_unit() returns one of
# these or raises.
PER_NL: Final = "10^9/L"  # = 10^3/uL = G/L = 1000/mm3
PER_PL: Final = "10^12/L"  # recognised so that it can be rejected clearly (red cells)
CELLS_UL: Final = "cells/uL"  # = /mm3 = 10^6/L
G_DL: Final = "g/dL"
G_L: Final = "g/L"
MG_DL: Final = "mg/dL"
MMOL_L: Final = "mmol/L"
UMOL_L: Final = "umol/L"
U_L: Final = "U/L"
IU_L: Final = "IU/L"
UKAT_L: Final = "ukat/L"
ML_MIN: Final = "mL/min"
ML_MIN_BSA: Final = "mL/min/1.73m2"
KG: Final = "kg"
GRAM: Final = "g"
LB: Final = "lb"
CM: Final = "cm"
METRE: Final = "m"
INCH: Final = "in"
PERCENT: Final = "%"
RATIO: Final = "ratio"  # a dimensionless ratio: UCUM "1", "{INR}"
SECOND: Final = "s"
MILLISECOND: Final = "ms"
G_24H: Final = "g/24h"  # mass excreted in 24 hours (= g/d)
MG_24H: Final = "mg/24h"

_CELL_COUNT: Final[Mapping[str, Fraction]] = MappingProxyType(
    {
        PER_NL: Fraction(1),
        CELLS_UL: Fraction(1, 1000),
    }
)
"""Cell counts in 10^9/L. DOMAIN.md: 10^9/L = 10^3/uL = 1000/mm3 (1.5 x 10^9/L = 1,500/mm3);
1 mm3 = 1 uL, so cells/uL (= /mm3) x 0.001 gives 10^9/L."""

CONVERSIONS: Final[Mapping[Analyte, Mapping[str, Fraction]]] = MappingProxyType(
    {
        Analyte.ANC: _CELL_COUNT,
        Analyte.PLATELETS: _CELL_COUNT,
        Analyte.WBC: _CELL_COUNT,
        Analyte.LYMPHOCYTES: _CELL_COUNT,
        # DOMAIN.md: CD4 < 500/mm3 is low; cells/mm3 = cells/uL, and 10^9/L x 1000 = cells/uL.
        Analyte.CD4: MappingProxyType({CELLS_UL: Fraction(1), PER_NL: Fraction(1000)}),
        # DOMAIN.md: g/dL; g/L is x10 (so g/L x 0.1); mmol/L = g/dL x 0.6206, so
        # g/dL = mmol/L / 0.6206 (about x 1.611).
        Analyte.HAEMOGLOBIN: MappingProxyType(
            {G_DL: Fraction(1), G_L: Fraction(1, 10), MMOL_L: 1 / Fraction("0.6206")}
        ),
        # DOMAIN.md: umol/L = mg/dL x 88.4.
        Analyte.CREATININE: MappingProxyType({MG_DL: Fraction(1), UMOL_L: 1 / Fraction("88.4")}),
        # DOMAIN.md: umol/L = mg/dL x 17.1.
        Analyte.BILIRUBIN: MappingProxyType({MG_DL: Fraction(1), UMOL_L: 1 / Fraction("17.1")}),
        # DOMAIN.md: U/L, IU/L (for enzymes 1 IU = 1 U = 1 umol/min);
        # 1 ukat/L = 1 umol/s per litre = 60 U/L.
        Analyte.AST: MappingProxyType({U_L: Fraction(1), IU_L: Fraction(1), UKAT_L: Fraction(60)}),
        Analyte.ALT: MappingProxyType({U_L: Fraction(1), IU_L: Fraction(1), UKAT_L: Fraction(60)}),
        # Albumin as haemoglobin's mass units: g/L x 0.1 = g/dL.
        Analyte.ALBUMIN: MappingProxyType({G_DL: Fraction(1), G_L: Fraction(1, 10)}),
        # DOMAIN.md: CrCl in mL/min (Cockcroft-Gault). eGFR is normalised to 1.73 m2 of body
        # surface: a different quantity, so neither converts into the other.
        Analyte.CREATININE_CLEARANCE: MappingProxyType({ML_MIN: Fraction(1)}),
        Analyte.EGFR: MappingProxyType({ML_MIN_BSA: Fraction(1)}),
        # Exact by definition: 1 g = 0.001 kg; 1 international avoirdupois pound = 0.45359237 kg.
        Analyte.WEIGHT: MappingProxyType(
            {KG: Fraction(1), GRAM: Fraction(1, 1000), LB: Fraction("0.45359237")}
        ),
        # Exact by definition: 1 m = 100 cm; 1 international inch = 2.54 cm.
        Analyte.HEIGHT: MappingProxyType(
            {CM: Fraction(1), METRE: Fraction(100), INCH: Fraction("2.54")}
        ),
        # The INR is a ratio (patient PT / normal PT, to the power ISI): no unit to convert.
        Analyte.INR: MappingProxyType({RATIO: Fraction(1)}),
        # Clotting times in seconds. PT given as % activity (Quick) is another quantity.
        Analyte.PT: MappingProxyType({SECOND: Fraction(1)}),
        Analyte.APTT: MappingProxyType({SECOND: Fraction(1)}),
        # An enzyme, as AST and ALT.
        Analyte.ALP: MappingProxyType({U_L: Fraction(1), IU_L: Fraction(1), UKAT_L: Fraction(60)}),
        # 24-hour urine protein: 1 g = 1000 mg.
        Analyte.URINE_PROTEIN: MappingProxyType({G_24H: Fraction(1), MG_24H: Fraction(1, 1000)}),
        # Ejection fraction in percent: the one analyte whose unit is %.
        Analyte.LVEF: MappingProxyType({PERCENT: Fraction(1)}),
        # QTc in milliseconds; 1 s = 1000 ms.
        Analyte.QTC: MappingProxyType({MILLISECOND: Fraction(1), SECOND: Fraction(1000)}),
    }
)
"""Per analyte: normalized unit -> factor into the canonical unit (canonical = value x factor).
The canonical unit is the one with factor 1 listed first. Only LVEF accepts %."""

CANONICAL_UNITS: Final[Mapping[Analyte, str]] = MappingProxyType(
    {analyte: next(iter(table)) for analyte, table in CONVERSIONS.items()}
)


class UnitError(ValueError):
    """A value or unit that cannot be converted. The message is meant for users as is.

    ``analyte`` is None when the error came from :func:`normalize_unit` alone; ``unit`` is the
    unit as given; ``accepted`` lists the units the analyte accepts (empty without analyte).
    """

    def __init__(
        self,
        message: str,
        *,
        analyte: Analyte | None = None,
        unit: str = "",
        accepted: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message)
        self.analyte = analyte
        self.unit = unit
        self.accepted = accepted


@dataclass(frozen=True, slots=True)
class Quantity:
    """A value in a (normalized) unit."""

    value: float
    unit: str

    def __str__(self) -> str:
        return f"{self.value:g} {self.unit}"


def canonical_unit(analyte: Analyte) -> str:
    """The unit every value of ``analyte`` is compared in."""
    return CANONICAL_UNITS[Analyte(analyte)]


def convertible_units(analyte: Analyte) -> tuple[str, ...]:
    """The normalized units ``analyte`` can be given in, its canonical unit first."""
    return tuple(CONVERSIONS[Analyte(analyte)])


# --- spelling -------------------------------------------------------------------------------

_SUPERSCRIPT_DIGITS: Final = "⁰¹²³⁴⁵⁶⁷⁸⁹"
_SUPERSCRIPT_RUN: Final = re.compile(f"[{_SUPERSCRIPT_DIGITS}]+")
_FROM_SUPERSCRIPT: Final = str.maketrans(_SUPERSCRIPT_DIGITS, "0123456789")

# Read case-sensitively, before lower-casing: capital G is giga (see the module docstring).
_GIGA_PER_LITRE: Final = re.compile(r"G/[lL]")

# Exact spellings, compared lower-cased, without whitespace, with the micro sign as "u".
_ALIASES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "gpt/l": PER_NL,  # Gpt/L, giga-particles per litre
        "mm3": CELLS_UL,  # "ANC 1500 mm3": per cubic millimetre
        "g/dl": G_DL,
        "gm/dl": G_DL,
        "g/100ml": G_DL,
        "g/l": G_L,
        "gm/l": G_L,
        "mg/dl": MG_DL,
        "mmol/l": MMOL_L,
        "umol/l": UMOL_L,
        "mcmol/l": UMOL_L,
        "micromol/l": UMOL_L,
        "u/l": U_L,
        "units/l": U_L,
        "iu/l": IU_L,
        "[iu]/l": IU_L,
        "ukat/l": UKAT_L,
        "microkat/l": UKAT_L,
        "ml/min": ML_MIN,
        "kg": KG,
        "kgs": KG,
        "g": GRAM,
        "lb": LB,
        "lbs": LB,
        "[lb_av]": LB,
        "cm": CM,
        "m": METRE,
        "in": INCH,
        "[in_i]": INCH,
        "%": PERCENT,
        "percent": PERCENT,
        "ratio": RATIO,
        "{ratio}": RATIO,
        "1": RATIO,  # UCUM unity, as INR results are often coded
        "{inr}": RATIO,
        "inr": RATIO,
        "s": SECOND,
        "sec": SECOND,
        "secs": SECOND,
        "second": SECOND,
        "seconds": SECOND,
        "ms": MILLISECOND,
        "msec": MILLISECOND,
        "msecs": MILLISECOND,
        "millisecond": MILLISECOND,
        "milliseconds": MILLISECOND,
    }
)

# A count per volume: an optional power of ten ("10^9", "x10*9", "10E9", "K" for 10^3) over a
# volume. "cells" is dropped before matching ("cells/mm3" is "/mm3").
_COUNT: Final = re.compile(
    r"(?:[x*]?10(?:\^|\*\*|\*|e)(?P<power>\d{1,2})|(?P<kilo>k))?/(?P<volume>l|dl|ml|ul|mm3|cumm|cmm)"
)
_VOLUME_POWER: Final[Mapping[str, int]] = MappingProxyType(
    {"l": 0, "dl": -1, "ml": -3, "ul": -6, "mm3": -6, "cumm": -6, "cmm": -6}
)
# Counts per litre, by power of ten, that have a spelling.
_COUNT_PER_LITRE: Final[Mapping[int, str]] = MappingProxyType({6: CELLS_UL, 9: PER_NL, 12: PER_PL})

# mL/min per 1.73 m2 of body surface: mL/min/1.73m2, mL/min/{1.73_m2} (UCUM), mL/min/(1.73 m²).
_ML_MIN_BSA: Final = re.compile(r"ml/min(?:/|per)\(?1[.,]73\.?m2\)?")
# Mass per 24 hours (24-hour urine): g/24h, g/24 hours, g/(24.h) (UCUM), g/d, mg/day; "g/24"
# is what is left of "g/24 hours" once a criterion's words are cut at the space.
_PER_DAY: Final = re.compile(
    r"(?P<mass>g|gm|mg)/(?:\(?24(?:\.|-)?(?:h|hr|hrs|hour|hours)?\)?|d|day)"
)


def _spelling_key(text: str) -> str:
    """The text reduced for matching, still in its original case."""
    # Superscript digits are exponents: "10⁹" is 10^9, "mm³" is mm^3.
    text = _SUPERSCRIPT_RUN.sub(lambda m: "^" + m.group().translate(_FROM_SUPERSCRIPT), text)
    # NFKC folds full-width forms to ASCII and the micro sign into Greek mu.
    text = unicodedata.normalize("NFKC", text)
    return "".join(text.split())


def _lookup(key: str) -> str | None:
    if _GIGA_PER_LITRE.fullmatch(key):
        return PER_NL
    key = key.lower().replace("μ", "u").replace("\u00d7", "x")  # multiplication sign
    key = re.sub(r"(?<=[a-z])\^(?=\d)", "", key)  # "mm^3" -> "mm3", "m^2" -> "m2"
    if key in _ALIASES:
        return _ALIASES[key]
    count = _COUNT.fullmatch(key.replace("cells", "").replace("cell", ""))
    if count:
        if count["kilo"]:
            power = 3
        elif count["power"]:
            power = int(count["power"])
        else:
            power = 0
        return _COUNT_PER_LITRE.get(power - _VOLUME_POWER[count["volume"]])
    if _ML_MIN_BSA.fullmatch(re.sub(r"[{}\[\]_]", "", key)):
        return ML_MIN_BSA
    per_day = _PER_DAY.fullmatch(key)
    if per_day:
        return MG_24H if per_day["mass"] == "mg" else G_24H
    return None


def _shown(text: str) -> str:
    """The unit as given, trimmed to a length that fits in a message."""
    text = " ".join(text.split())
    return text if len(text) <= 40 else text[:39] + "…"


def normalize_unit(text: str) -> str:
    """The one normalized spelling of ``text`` (see the constants above), or UnitError.

    Case, whitespace, full-width forms, superscripts, the micro sign and Greek mu do not
    matter, except that ``G/L`` is 10^9/L and ``g/L`` is grams per litre.
    """
    if text is None or not isinstance(text, str) or not text.strip():
        raise UnitError("No unit given.")
    unit = _lookup(_spelling_key(text))
    if unit is None:
        raise UnitError(f'Unit "{_shown(text)}" is not recognised.', unit=text)
    return unit


# --- conversion -----------------------------------------------------------------------------


def _exact(analyte: Analyte, value: float | Decimal) -> Fraction:
    label = analyte.label
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise UnitError(f"The value for {label} must be a number.", analyte=analyte)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise UnitError(f"The value for {label} must be a finite number.", analyte=analyte)
        exact = Fraction(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise UnitError(f"The value for {label} must be a finite number.", analyte=analyte)
        exact = Fraction(repr(value))
    else:
        exact = Fraction(value)
    if exact < 0:
        raise UnitError(f"The value for {label} cannot be negative (got {value}).", analyte=analyte)
    return exact


# How an accepted unit is listed in messages, where a common spelling differs from it.
_LISTED: Final[Mapping[str, str]] = MappingProxyType(
    {
        PER_NL: f"{PER_NL} (or 10^3/uL)",
        CELLS_UL: f"{CELLS_UL} (or /mm3)",
        RATIO: f"{RATIO} (or {{INR}}, 1)",
    }
)


def _factor(analyte: Analyte, unit: str | None) -> tuple[str, Fraction]:
    """The normalized unit and its factor into the canonical unit, or UnitError."""
    table = CONVERSIONS[analyte]
    accepted = tuple(table)
    listed = ", ".join(_LISTED.get(name, name) for name in accepted)
    label = analyte.label
    if unit is None or not isinstance(unit, str) or not unit.strip():
        raise UnitError(
            f"No unit given for {label}; accepted units: {listed}.",
            analyte=analyte,
            unit=unit or "",
            accepted=accepted,
        )
    normalized = _lookup(_spelling_key(unit))
    if normalized is None:
        message = f'Unit "{_shown(unit)}" is not recognised for {label}; accepted units: {listed}.'
    elif normalized not in table:
        shown = _shown(unit)
        if normalized == PER_NL and G_L in table and _spelling_key(unit).lower() == "g/l":
            message = (
                f'Unit "{shown}" means 10^9/L (a cell count) and cannot be used for {label}; '
                f"for grams per litre write g/L. Accepted units: {listed}."
            )
        else:
            read_as = "" if shown == normalized else f" (read as {normalized})"
            message = (
                f'Unit "{shown}"{read_as} cannot be used for {label}; accepted units: {listed}.'
            )
    else:
        return normalized, table[normalized]
    raise UnitError(message, analyte=analyte, unit=unit, accepted=accepted)


def _to_float(analyte: Analyte, exact: Fraction) -> float:
    try:
        result = float(exact)
    except OverflowError:
        result = math.inf
    if not math.isfinite(result):
        raise UnitError(f"The value for {analyte.label} is too large.", analyte=analyte)
    return result


def to_canonical(analyte: Analyte, value: float | Decimal, unit: str | None) -> Quantity:
    """``value`` given in ``unit``, converted into the canonical unit of ``analyte``."""
    analyte = Analyte(analyte)
    _, factor = _factor(analyte, unit)
    exact = _exact(analyte, value)
    return Quantity(_to_float(analyte, exact * factor), CANONICAL_UNITS[analyte])


def from_canonical(analyte: Analyte, value: float | Decimal, unit: str | None) -> float:
    """``value`` in the canonical unit of ``analyte``, expressed in ``unit`` (the inverse of
    :func:`to_canonical`, to show a threshold in the unit a trial's text used)."""
    analyte = Analyte(analyte)
    _, factor = _factor(analyte, unit)
    exact = _exact(analyte, value)
    return _to_float(analyte, exact / factor)
