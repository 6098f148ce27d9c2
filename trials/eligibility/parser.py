"""A trial's eligibility into criteria: the engine's entry point for reading.

``parse_eligibility`` cuts the free text into criteria (``segment``), reads each one
(``extract``) with its parent's text as context, and adds the criteria ClinicalTrials.gov
gives as structured fields (minimum/maximum age, sex). Every text criterion keeps its exact
source text and position; one the engine cannot read is kept as unparsed ("needs review").
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from trials.eligibility import constraints as c
from trials.eligibility.checks import check_trial
from trials.eligibility.coverage import deciding_parts, reading_review
from trials.eligibility.evaluate import Rule
from trials.eligibility.extract import Context, extract, extract_category
from trials.eligibility.segment import EXCLUSION, INCLUSION, segment
from trials.eligibility.structure import group_scope, heading_scope
from trials.eligibility.text import normalize

# Bumped whenever parsing changes what it produces, so stored criteria are re-read.
ENGINE_VERSION = "2026.12.3"


@dataclass(frozen=True)
class Criterion:
    kind: str  # inclusion / exclusion
    text: str  # exactly as in the record (or the structured field, for those)
    category: str
    constraints: tuple[c.Constraint, ...] = ()
    join: str = "all"
    start: int | None = None  # position in the eligibility text; None for structured fields
    end: int | None = None
    position: int = 0
    parent: int | None = None  # position of the criterion this one belongs to
    header: bool = False
    origin: str = "text"  # text / structured
    # The words the reading did not account for: a reading with gaps never decides.
    gaps: tuple[str, ...] = ()
    # Review marks: a plausibility correction the reading rests on, or why it is suspect.
    marks: tuple[str, ...] = ()
    # The constraints read in full beside the gaps: each may still decide on its own.
    parts: tuple[int, ...] = ()

    @property
    def parsed(self) -> bool:
        return bool(self.constraints)

    @property
    def complete(self) -> bool:
        """Read in full, with nothing to review: the only reading that may decide."""
        return bool(self.constraints) and not self.gaps and not self.marks

    def review(self) -> tuple[str, str]:
        """What the matcher needs to know of the reading (``coverage.reading_review``)."""
        return reading_review(self.kind, self.gaps, self.marks)

    def as_rule(self) -> Rule:
        """The criterion as the matcher applies it, its reading's review in force (the
        matcher builds the same from stored rows, where a coordinator's correction wins)."""
        review, decides = self.review()
        return Rule(
            self.position,
            self.kind,
            self.category,
            self.constraints,
            self.join,
            review=review,
            decides=decides,
            parts=deciding_parts(self.gaps, self.marks, self.parts),
        )

    @property
    def reading_status(self) -> str:
        """complete / incomplete / suspect / unread, for coordinators and exports."""
        if not self.constraints:
            return "unread"
        if self.marks:
            return "suspect"
        return "incomplete" if self.gaps else "complete"

    def as_dict(self) -> dict[str, object]:
        return {
            "type": self.kind,
            "text": self.text,
            "category": self.category,
            "parsed": self.parsed,
            "join": self.join,
            "constraints": [constraint.as_dict() for constraint in self.constraints],
            "start": self.start,
            "end": self.end,
            "parent": self.parent,
            "header": self.header,
            "origin": self.origin,
            "reading": self.reading_status,
            "gaps": list(self.gaps),
            "marks": list(self.marks),
            "parts": list(self.parts),
        }


@dataclass
class ParsedEligibility:
    criteria: list[Criterion] = field(default_factory=list)
    engine_version: str = ENGINE_VERSION


def parse_eligibility(
    text: str,
    *,
    minimum_age_years: float | None = None,
    maximum_age_years: float | None = None,
    sex: str = "",
) -> ParsedEligibility:
    """Every criterion of a trial: the structured fields first, then the text's, in order."""
    criteria: list[Criterion] = []
    structured = _structured(minimum_age_years, maximum_age_years, sex)
    criteria.extend(structured)
    offset = len(criteria)
    segments = segment(text or "")
    normalized = [normalize(text[s.start : s.end]) for s in segments]
    for index, part in enumerate(segments):
        parent_text = normalized[part.parent] if part.parent is not None else ""
        reading = extract(normalized[index], Context(kind=part.kind, parent=parent_text))
        # The heading above it, or the section's own ("Inclusion Criteria for Control group").
        scope = ""
        if reading.constraints:
            scope = heading_scope(parent_text) or heading_scope(part.section)
            if not scope and part.kind == EXCLUSION:
                scope = group_scope(parent_text) or group_scope(part.section)
        if scope:
            # The heading governs its items: a condition, population or choice there is
            # part of every item's meaning.
            reading = dataclasses.replace(
                reading, gaps=(*reading.gaps, f"heading: {scope}"), parts=()
            )
        category = reading.category
        if category == "other" and parent_text:
            category = extract_category(parent_text, Context(kind=part.kind))
        criteria.append(
            Criterion(
                kind=part.kind,
                text=text[part.start : part.end],
                category=category,
                constraints=tuple(reading.constraints),
                join=reading.join,
                start=part.start,
                end=part.end,
                position=offset + index,
                parent=offset + part.parent if part.parent is not None else None,
                header=part.header,
                gaps=reading.gaps,
                marks=reading.marks,
                parts=reading.parts,
            )
        )
    return ParsedEligibility(criteria=check_trial(criteria, sex=sex))


def _structured(minimum: float | None, maximum: float | None, sex: str) -> list[Criterion]:
    found: list[Criterion] = []
    if minimum is not None or maximum is not None:
        parts = []
        if minimum is not None:
            parts.append(f"minimum age {minimum:g} years")
        if maximum is not None:
            parts.append(f"maximum age {maximum:g} years")
        found.append(
            Criterion(
                kind=INCLUSION,
                text="Registry record: " + ", ".join(parts),
                category="age",
                constraints=(c.Age(min=minimum, max=maximum),),
                position=len(found),
                origin="structured",
            )
        )
    if sex.upper() in ("FEMALE", "MALE"):
        found.append(
            Criterion(
                kind=INCLUSION,
                text=f"Registry record: sex {sex.lower()}",
                category="sex",
                constraints=(c.Sex(sex=sex.lower()),),
                position=len(found),
                origin="structured",
            )
        )
    return found


__all__ = [
    "ENGINE_VERSION",
    "EXCLUSION",
    "INCLUSION",
    "Criterion",
    "ParsedEligibility",
    "parse_eligibility",
]
