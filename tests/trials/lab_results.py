"""Lab results as a profile import stores them, for tests that build ``PatientFacts``."""

from __future__ import annotations

from trials.eligibility.facts import LabValue
from trials.eligibility.units import Analyte, to_canonical


def lab(analyte: Analyte, value: float, unit: str, uln: float | None = None) -> LabValue:
    """A result as entered (any accepted unit), stored canonical as the profile import does."""
    canonical = to_canonical(analyte, value, unit)
    return LabValue(
        analyte=analyte,
        value=canonical.value,
        unit=canonical.unit,
        original_value=value,
        original_unit=unit,
        uln=to_canonical(analyte, uln, unit).value if uln is not None else None,
    )
