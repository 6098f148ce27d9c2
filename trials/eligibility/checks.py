"""A trial's readings checked against each other and against the registry record.

Each criterion is read on its own (``extract``); some misreadings only show beside the rest
of the trial: an inclusion set no patient can meet ("T2 and T3 and >= T4"; prior PD-1
therapy required next to "no prior anticancer therapy"), a reading that contradicts the
record's structured fields (the record admits all sexes, the text is read as "male only"),
or several stage definitions listed one after another, which trials mean as alternatives as
often as together. Such readings are marked **suspect**, with the reason: they go to review
and never decide (``coverage.reading_review``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING

from trials.eligibility import constraints as c
from trials.eligibility.coverage import OTHERS_DECIDE
from trials.eligibility.vocabulary import CATEGORY_RANKS, within

if TYPE_CHECKING:
    from trials.eligibility.parser import Criterion


def check_trial(criteria: Sequence[Criterion], *, sex: str = "") -> list[Criterion]:
    """The criteria with the marks these checks give (the others unchanged)."""
    marks: dict[int, list[str]] = {}
    parts: dict[int, tuple[int, ...]] = {}
    text = [x for x in criteria if x.origin == "text" and x.constraints]
    for criterion in text:
        for reason in _against_registry(criterion, sex):
            marks.setdefault(criterion.position, []).append(reason)
            if reason.endswith(OTHERS_DECIDE):
                parts[criterion.position] = _besides_sex(criterion)
    for criterion, reason in _impossible_stages(text):
        marks.setdefault(criterion.position, []).append(reason)
    for criterion, reason in _contradicting_prior_therapy(text):
        marks.setdefault(criterion.position, []).append(reason)
    for criterion, reason in _listed_stage_definitions(text):
        marks.setdefault(criterion.position, []).append(reason)
    if not marks:
        return list(criteria)
    return [
        dataclasses.replace(
            x,
            marks=(*x.marks, *dict.fromkeys(marks[x.position])),
            parts=parts.get(x.position, x.parts),
        )
        if x.position in marks
        else x
        for x in criteria
    ]


def _besides_sex(criterion: Criterion) -> tuple[int, ...]:
    """The constraints of an all-of reading other than its sex, each read in full."""
    others = [i for i, x in enumerate(criterion.constraints) if not isinstance(x, c.Sex)]
    if criterion.gaps:
        others = [i for i in others if i in criterion.parts]
    return tuple(others)


def _against_registry(criterion: Criterion, sex: str) -> list[str]:
    if criterion.kind != "inclusion" or sex.upper() != "ALL":
        return []
    # In an all-of reading the sex is one condition among others: they still decide.
    alone = criterion.join != "all" or all(isinstance(x, c.Sex) for x in criterion.constraints)
    return [
        f"read as {x.sex} patients only, but the registry record admits all sexes"
        + ("" if alone else OTHERS_DECIDE)
        for x in criterion.constraints
        if isinstance(x, c.Sex)
    ]


def _stage_leaves(criterion: Criterion) -> list[c.Stage] | None:
    """The plain stage constraints an inclusion requires outright (None: it is not one)."""
    if criterion.kind != "inclusion" or criterion.join != "all":
        return None
    found = [x for x in criterion.constraints if isinstance(x, c.Stage)]
    return found or None


def _satisfiable(category: str, constraints: list[c.Stage]) -> bool:
    for code in CATEGORY_RANKS[category]:
        if CATEGORY_RANKS[category][code] is None:
            continue
        if all(_admits(x, code) is not False for x in constraints):
            return True
    return False


def _admits(constraint: c.Stage, code: str) -> bool | None:
    if constraint.any_of:
        answers = [within(constraint.category, code, x, x) for x in constraint.any_of]
        return True if True in answers else None if None in answers else False
    return within(constraint.category, code, constraint.min, constraint.max)


def _impossible_stages(criteria: Sequence[Criterion]) -> list[tuple[Criterion, str]]:
    by_category: dict[str, list[tuple[Criterion, c.Stage]]] = {}
    for criterion in criteria:
        for constraint in _stage_leaves(criterion) or ():
            by_category.setdefault(constraint.category, []).append((criterion, constraint))
    found = []
    for category, pairs in by_category.items():
        if len(pairs) < 2 or _satisfiable(category, [x for _, x in pairs]):
            continue
        wanted = "; ".join(x.describe() for _, x in pairs)
        for criterion, _ in pairs:
            found.append(
                (criterion, f"no patient can meet these {category} requirements together: {wanted}")
            )
    return found


def _contradicting_prior_therapy(criteria: Sequence[Criterion]) -> list[tuple[Criterion, str]]:
    required = [
        (x, k)
        for x in criteria
        if x.kind == "inclusion"
        for k in x.constraints
        if isinstance(k, c.PriorTherapy) and k.present and "surgery" not in k.classes
    ]
    forbidden = [
        (x, k)
        for x in criteria
        if x.kind == "inclusion"
        for k in x.constraints
        if isinstance(k, c.PriorTherapy) and not k.present
    ]
    found = []
    for need, wanted in required:
        for ban, banned in forbidden:
            if need is ban:
                continue
            covers = "anticancer" in banned.classes or set(wanted.classes) & set(banned.classes)
            if covers:
                reason = (
                    f"requires {wanted.describe()} beside {banned.describe()}: "
                    "the setting or time of each needs review"
                )
                found.append((need, reason))
                found.append((ban, reason))
    return found


def _listed_stage_definitions(criteria: Sequence[Criterion]) -> list[tuple[Criterion, str]]:
    """Two or more inclusion items in a row that are each only a stage definition
    ("cT >= 2, any cN, M0" / "Any cT, cN1-3, M0"): alternatives or all required?"""
    found: list[tuple[Criterion, str]] = []
    run: list[Criterion] = []

    def close() -> None:
        if len(run) >= 2:
            for criterion in run:
                found.append(
                    (
                        criterion,
                        "one of several stage definitions listed together: whether any one "
                        "or all of them are required needs review",
                    )
                )
        run.clear()

    previous: int | None = None
    for criterion in criteria:
        only_stage = criterion.kind == "inclusion" and all(
            isinstance(leaf, c.Stage) for x in criterion.constraints for leaf in c.leaves(x)
        )
        adjacent = previous is not None and criterion.position == previous + 1
        if only_stage and (adjacent or not run):
            run.append(criterion)
        else:
            close()
            if only_stage:
                run.append(criterion)
        previous = criterion.position
    close()
    return found


__all__ = ["check_trial"]
