"""Structured constraints a criterion states, in one vocabulary (see tests/trials/labels/).

Each constraint is a frozen dataclass that turns into a plain dict (``as_dict``) and back
(``constraint_from_dict``): that dict is how constraints are stored, corrected by coordinators
in the admin, exported and compared with the labelled set. ``present`` says whether the
condition is that the patient HAS (True) or does NOT HAVE (False) the thing; whether meeting
the condition includes or excludes comes from the criterion's kind.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar


class ConstraintError(ValueError):
    """A constraint dict that is not in the vocabulary; the message says what is wrong."""


@dataclass(frozen=True)
class Constraint:
    type: ClassVar[str]

    def as_dict(self) -> dict[str, Any]:
        values = {key: value for key, value in asdict(self).items() if value not in (None, ())}
        for key, value in values.items():
            if isinstance(value, tuple):
                values[key] = list(value)
        return {"type": self.type, **values}

    def describe(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.as_dict().items() if k != "type")


@dataclass(frozen=True)
class Age(Constraint):
    type: ClassVar[str] = "age"
    min: float | None = None
    max: float | None = None

    def describe(self) -> str:
        if self.min is not None and self.max is not None:
            return f"age {self.min:g} to {self.max:g} years"
        if self.min is not None:
            return f"age at least {self.min:g} years"
        return f"age at most {self.max:g} years"


@dataclass(frozen=True)
class Sex(Constraint):
    type: ClassVar[str] = "sex"
    sex: str = "female"

    def describe(self) -> str:
        return f"{self.sex} patients"


@dataclass(frozen=True)
class Ecog(Constraint):
    type: ClassVar[str] = "ecog"
    allowed: tuple[int, ...] = ()

    def describe(self) -> str:
        return "ECOG " + ", ".join(str(score) for score in self.allowed)


@dataclass(frozen=True)
class Karnofsky(Constraint):
    type: ClassVar[str] = "karnofsky"
    min: int = 70

    def describe(self) -> str:
        return f"Karnofsky at least {self.min}%"


@dataclass(frozen=True)
class Stage(Constraint):
    type: ClassVar[str] = "stage"
    category: str = "T"  # T, N, M, stage
    min: str | None = None
    max: str | None = None
    any_of: tuple[str, ...] = ()

    def describe(self) -> str:
        name = "stage" if self.category == "stage" else self.category
        if self.any_of:
            return " or ".join(self.any_of)
        if self.min and self.max:
            return f"{name} {self.min} to {self.max}" if self.min != self.max else self.min
        if self.min:
            return f"{self.min} or higher"
        return f"{self.max} or lower"


@dataclass(frozen=True)
class PrimarySite(Constraint):
    type: ClassVar[str] = "primary_site"
    any_of: tuple[str, ...] = ()

    def describe(self) -> str:
        return "primary " + " or ".join(self.any_of)


@dataclass(frozen=True)
class Histology(Constraint):
    type: ClassVar[str] = "histology"
    any_of: tuple[str, ...] = ()

    def describe(self) -> str:
        return " or ".join(value.replace("_", " ") for value in self.any_of)


@dataclass(frozen=True)
class Metastasis(Constraint):
    type: ClassVar[str] = "metastasis"
    site: str = "distant"
    present: bool = True

    def describe(self) -> str:
        return f"{'' if self.present else 'no '}{self.site} metastasis"


@dataclass(frozen=True)
class Resectable(Constraint):
    type: ClassVar[str] = "resectable"
    value: bool = True

    def describe(self) -> str:
        return "resectable disease" if self.value else "unresectable disease"


@dataclass(frozen=True)
class Lab(Constraint):
    type: ClassVar[str] = "lab"
    analyte: str = ""
    op: str = ">="
    value: float | None = None  # canonical unit of the analyte
    uln: float | None = None  # a multiple of the upper limit of normal
    condition: str | None = None  # "liver_metastases", "gilbert": applies only then

    def as_dict(self) -> dict[str, Any]:
        values = super().as_dict()
        if "condition" in values:
            values["if"] = values.pop("condition")
        return values

    def describe(self) -> str:
        threshold = f"{self.uln:g} x ULN" if self.uln is not None else f"{self.value:g}"
        return f"{self.analyte} {self.op} {threshold}"


@dataclass(frozen=True)
class PriorTherapy(Constraint):
    type: ClassVar[str] = "prior_therapy"
    classes: tuple[str, ...] = ()
    present: bool = True
    within_days: int | None = None
    this_cancer: bool | None = None

    def describe(self) -> str:
        window = f" within {self.within_days} days" if self.within_days else ""
        return f"{'' if self.present else 'no '}prior {' or '.join(self.classes)}{window}"


@dataclass(frozen=True)
class Biomarker(Constraint):
    type: ClassVar[str] = "biomarker"
    marker: str = ""
    any_of: tuple[str, ...] = ()
    op: str | None = None
    value: float | None = None

    def describe(self) -> str:
        if self.any_of:
            return f"{self.marker} {' or '.join(self.any_of)}"
        return f"{self.marker} {self.op} {self.value:g}"


@dataclass(frozen=True)
class Comorbidity(Constraint):
    type: ClassVar[str] = "comorbidity"
    kind: str = ""
    present: bool = True
    within_years: float | None = None
    exceptions: tuple[str, ...] = ()
    active: bool | None = None
    # "requiring systemic treatment": only when treated with systemic immunosuppression
    # (immunosuppressants or systemic corticosteroids) within the window, if any.
    systemic_treatment: bool | None = None
    # "replacement therapy (thyroxine, insulin, physiologic corticosteroids) is not systemic
    # treatment": a steroid at a replacement dose does not count as that treatment.
    replacement_allowed: bool | None = None
    # The specific diseases the criterion names ("inflammatory bowel disease"): only a
    # recorded disease of the kind with one of these names counts.
    named: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        values = super().as_dict()
        if "exceptions" in values:
            values["except"] = values.pop("exceptions")
        return values

    def describe(self) -> str:
        window = f" within {self.within_years:g} years" if self.within_years else ""
        what = " or ".join(self.named) if self.named else self.kind.replace("_", " ")
        return f"{'' if self.present else 'no '}{what}{window}"


@dataclass(frozen=True)
class Medication(Constraint):
    type: ClassVar[str] = "medication"
    category: str = ""
    present: bool = True
    over_mg_per_day: float | None = None
    within_days: int | None = None

    def describe(self) -> str:
        dose = f" > {self.over_mg_per_day:g} mg/day" if self.over_mg_per_day else ""
        window = f" within {self.within_days} days" if self.within_days else ""
        return f"{'' if self.present else 'no '}{self.category.replace('_', ' ')}{dose}{window}"


@dataclass(frozen=True)
class Pregnancy(Constraint):
    type: ClassVar[str] = "pregnancy"
    present: bool = True

    def describe(self) -> str:
        return "pregnant or breastfeeding" if self.present else "not pregnant or breastfeeding"


@dataclass(frozen=True)
class Surgery(Constraint):
    type: ClassVar[str] = "surgery"
    status: str = "planned"
    present: bool = True
    # The operations named ("total gastrectomy or distal gastrectomy"): only these count.
    procedures: tuple[str, ...] = ()

    def describe(self) -> str:
        what = " or ".join(x.replace("_", " ") for x in self.procedures) or "radical surgery"
        return f"{what} {'' if self.present else 'not '}{self.status}"


@dataclass(frozen=True)
class AnyOf(Constraint):
    """Alternatives: holds when one of its items holds ("(cT2-4, any N, M0) or (any T, N+, M0)")."""

    type: ClassVar[str] = "any_of"
    items: tuple[Constraint, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"type": self.type, "items": [item.as_dict() for item in self.items]}

    def describe(self) -> str:
        return " or ".join(f"({item.describe()})" for item in self.items)


@dataclass(frozen=True)
class AllOf(Constraint):
    """Conditions that hold together, as one alternative of an ``AnyOf``."""

    type: ClassVar[str] = "all_of"
    items: tuple[Constraint, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"type": self.type, "items": [item.as_dict() for item in self.items]}

    def describe(self) -> str:
        return " and ".join(item.describe() for item in self.items)


def leaves(constraint: Constraint) -> tuple[Constraint, ...]:
    """The plain constraints inside a combination (the constraint itself when plain)."""
    if isinstance(constraint, AnyOf | AllOf):
        return tuple(leaf for item in constraint.items for leaf in leaves(item))
    return (constraint,)


TYPES: dict[str, type[Constraint]] = {
    cls.type: cls
    for cls in (
        Age,
        Sex,
        Ecog,
        Karnofsky,
        Stage,
        PrimarySite,
        Histology,
        Metastasis,
        Resectable,
        Lab,
        PriorTherapy,
        Biomarker,
        Comorbidity,
        Medication,
        Pregnancy,
        Surgery,
        AnyOf,
        AllOf,
    )
}
RENAMED = {"if": "condition", "except": "exceptions"}


def _cached_hash(self: Constraint) -> int:
    """The dataclass hash, computed once: the matcher looks constraints up by the million."""
    known: int | None = self.__dict__.get("_hash")
    if known is None:
        known = hash((type(self), *(getattr(self, f.name) for f in fields(self))))
        object.__setattr__(self, "_hash", known)
    return known


for _cls in TYPES.values():
    _cls.__hash__ = _cached_hash  # type: ignore[method-assign,assignment]


def constraint_from_dict(data: Any) -> Constraint:
    """The constraint a dict describes; ConstraintError when it is not in the vocabulary."""
    if not isinstance(data, dict) or data.get("type") not in TYPES:
        known = ", ".join(sorted(TYPES))
        raise ConstraintError(f"a constraint needs a 'type', one of: {known}")
    cls = TYPES[data["type"]]
    if cls in (AnyOf, AllOf):
        items = data.get("items")
        if not isinstance(items, list) or len(items) < 2:
            raise ConstraintError(f"{cls.type} needs 'items': a list of at least two constraints")
        unknown = set(data) - {"type", "items"}
        if unknown:
            raise ConstraintError(f"{cls.type} has no field {sorted(unknown)[0]!r}")
        parts = tuple(constraint_from_dict(item) for item in items)
        return AnyOf(items=parts) if cls is AnyOf else AllOf(items=parts)
    names = {f.name: f for f in fields(cls)}
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key == "type":
            continue
        name = RENAMED.get(key, key)
        if name not in names:
            raise ConstraintError(f"{cls.type} has no field {key!r}")
        values[name] = tuple(value) if isinstance(value, list) else value
    try:
        return cls(**values)
    except TypeError as exc:
        raise ConstraintError(f"{cls.type}: {exc}") from None
