"""Writes of criteria and classification: the engine's reading stored, coordinators' corrections.

The engine's reading of a trial is derived data, recomputed whenever the record changes or
the engine's version does (``refresh_stale_criteria``). A coordinator's corrections are
first-class: carried over to the criterion with the same text and applied; when the
eligibility text changes they are flagged for review, and corrections of criteria that are no
longer there are kept on the trial, never silently dropped.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from typing import Any

from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from trials.eligibility.classify import Classification, TrialText, classify
from trials.eligibility.constraints import ConstraintError, constraint_from_dict
from trials.eligibility.parser import (
    ENGINE_VERSION,
    parse_eligibility,
)
from trials.eligibility.parser import (
    Criterion as ParsedCriterion,
)
from trials.models import Criterion, Trial

logger = logging.getLogger(__name__)

CORRECTION_FIELDS = (
    "corrected_category",
    "corrected_constraints",
    "corrected_join",
    "correction_note",
    "corrected_by",
    "corrected_at",
)


def eligibility_hash(trial: Trial) -> str:
    source = "\x1f".join(
        (
            trial.eligibility_criteria,
            str(trial.minimum_age_value),
            trial.minimum_age_unit,
            str(trial.maximum_age_value),
            trial.maximum_age_unit,
            trial.sex,
        )
    )
    return hashlib.sha256(source.encode("utf-8")).hexdigest()


def _years(value: Any, unit: str) -> float | None:
    if value is None:
        return None
    days = {"years": 365.25, "months": 30.4375, "weeks": 7, "days": 1, "hours": 1 / 24}
    return float(value) * days.get(unit, 365.25) / 365.25


def parse_trial(trial: Trial) -> list[ParsedCriterion]:
    return parse_eligibility(
        trial.eligibility_criteria,
        minimum_age_years=_years(trial.minimum_age_value, trial.minimum_age_unit),
        maximum_age_years=_years(trial.maximum_age_value, trial.maximum_age_unit),
        sex=trial.sex,
    ).criteria


def trial_text(trial: Trial, criteria: list[ParsedCriterion]) -> TrialText:
    return TrialText(
        brief_title=trial.brief_title,
        official_title=trial.official_title,
        acronym=trial.acronym,
        conditions=tuple(trial.conditions),
        condition_mesh_terms=tuple(trial.condition_mesh_terms),
        keywords=tuple(trial.keywords),
        brief_summary=trial.brief_summary,
        detailed_description=trial.detailed_description,
        interventions=tuple(trial.interventions),
        arm_groups=tuple(trial.arm_groups),
        intervention_mesh_terms=tuple(trial.intervention_mesh_terms),
        criteria=tuple(criteria),
    )


def trial_refresh_criteria(trial: Trial) -> None:
    """Read the trial's eligibility into criteria and classify it; keep the corrections."""
    parsed = parse_trial(trial)
    classification = classify(trial_text(trial, parsed))
    text_hash = eligibility_hash(trial)
    now = timezone.now()
    with transaction.atomic():
        held = list(trial.criteria.all())
        text_changed = bool(trial.criteria_text_hash) and trial.criteria_text_hash != text_hash
        # Keyed by text and occurrence: a text may be there twice (under different headings).
        corrections = {key: row for key, row in _by_occurrence(held) if row.corrected}
        trial.criteria.all().delete()
        rows = [_row(trial, criterion) for criterion in parsed]
        unmatched: list[Criterion] = []
        for key, row in _by_occurrence(rows):
            correction = corrections.pop(key, None)
            if correction is None:
                unmatched.append(row)
            else:
                _carry(row, correction, text_changed)
        for row in unmatched:  # an identical text that moved (one before it came or went)
            moved = next((key for key in corrections if key[0] == row.text), None)
            if moved is not None:
                _carry(row, corrections.pop(moved), text_changed)
        Criterion.objects.bulk_create(rows)
        for lost in corrections.values():
            trial.orphaned_corrections = [*trial.orphaned_corrections, _orphan(lost, now)]
        if corrections or (
            text_changed
            and (any(r.corrected for r in rows) or trial.classification_override is not None)
        ):
            # An orphaned correction needs a coordinator even when only the engine changed
            # (a new version may split the same text differently).
            trial.curation_needs_review = True
        _apply_classification(trial, classification)
        trial.criteria_engine_version = ENGINE_VERSION
        trial.criteria_text_hash = text_hash
        trial.criteria_parsed_at = now
        trial.needs_evaluation = True
        trial.matching_inputs_at = now
        trial.save(
            update_fields=[
                "matching_inputs_at",
                "classified_gastric",
                "classified_immunotherapy",
                "classified_preoperative",
                "classification_evidence",
                "gastric_preop_immunotherapy",
                "criteria_engine_version",
                "criteria_text_hash",
                "criteria_parsed_at",
                "curation_needs_review",
                "orphaned_corrections",
                "needs_evaluation",
            ]
        )


def _by_occurrence(rows: list[Criterion]) -> Iterator[tuple[tuple[str, int], Criterion]]:
    """Each row (in position order) keyed by its text and which occurrence of it it is."""
    seen: dict[str, int] = {}
    for row in rows:
        seen[row.text] = seen.get(row.text, -1) + 1
        yield (row.text, seen[row.text]), row


def _carry(row: Criterion, correction: Criterion, text_changed: bool) -> None:
    for name in CORRECTION_FIELDS:
        setattr(row, name, getattr(correction, name))
    row.needs_review = correction.needs_review or text_changed


def _row(trial: Trial, criterion: ParsedCriterion) -> Criterion:
    return Criterion(
        trial=trial,
        position=criterion.position,
        kind=criterion.kind,
        text=criterion.text,
        start=criterion.start,
        end=criterion.end,
        parent_position=criterion.parent,
        header=criterion.header,
        origin=criterion.origin,
        category=criterion.category,
        constraints=[constraint.as_dict() for constraint in criterion.constraints],
        join=criterion.join,
        reading_gaps=list(criterion.gaps),
        reading_marks=list(criterion.marks),
        reading_parts=list(criterion.parts),
    )


def _orphan(row: Criterion, now: Any) -> dict[str, Any]:
    return {
        "text": row.text,
        "kind": row.kind,
        "category": row.corrected_category,
        "constraints": row.corrected_constraints,
        "join": row.corrected_join,
        "note": row.correction_note,
        "by": row.corrected_by.get_username() if row.corrected_by else "",
        "at": row.corrected_at.isoformat() if row.corrected_at else None,
        "orphaned_at": now.isoformat(),
    }


def _apply_classification(trial: Trial, classification: Classification) -> None:
    trial.classified_gastric = classification.gastric
    trial.classified_immunotherapy = classification.immunotherapy
    trial.classified_preoperative = classification.preoperative
    trial.classification_evidence = [item.as_dict() for item in classification.evidence]
    override = trial.classification_override
    trial.gastric_preop_immunotherapy = (
        override if override is not None else classification.gastric_preop_immunotherapy
    )


def stale_trials() -> QuerySet[Trial]:
    """Trials whose stored reading is not the current engine's."""
    return Trial.objects.filter(~Q(criteria_engine_version=ENGINE_VERSION))


def refresh_stale_criteria(*, batch_size: int = 200) -> int:
    """Re-read every stale trial; returns how many were read."""
    count = 0
    for trial in _batches(stale_trials().order_by("pk"), batch_size):
        trial_refresh_criteria(trial)
        count += 1
    if count:
        logger.info("Criteria read for %d trial(s) (engine %s)", count, ENGINE_VERSION)
    return count


def _batches(queryset: QuerySet[Trial], size: int) -> Iterator[Trial]:
    last = 0
    while True:
        chunk = list(queryset.filter(pk__gt=last)[:size])
        if not chunk:
            return
        yield from chunk
        last = chunk[-1].pk


class CorrectionError(ValueError):
    """A correction that cannot be applied; the message says what is wrong."""


def criterion_correct(
    criterion: Criterion,
    *,
    category: str = "",
    constraints: list[dict[str, Any]] | None = None,
    join: str = "",
    note: str = "",
    user: Any = None,
) -> Criterion:
    """Record a coordinator's correction of one criterion (empty values keep the engine's)."""
    if category and category not in Criterion.Category.values:
        raise CorrectionError(f"unknown category {category!r}")
    if constraints is not None:
        if not isinstance(constraints, list):
            raise CorrectionError("constraints must be a list")
        for index, item in enumerate(constraints, start=1):
            try:
                constraint_from_dict(item)
            except ConstraintError as exc:
                raise CorrectionError(f"constraint {index}: {exc}") from None
    criterion.corrected_category = category
    criterion.corrected_constraints = constraints
    criterion.corrected_join = join
    criterion.correction_note = note
    corrected = criterion.corrected
    criterion.corrected_by = user if corrected else None
    criterion.corrected_at = timezone.now() if corrected else None
    criterion.needs_review = False
    with transaction.atomic():
        criterion.save()
        Trial.objects.filter(pk=criterion.trial_id).update(
            needs_evaluation=True, matching_inputs_at=timezone.now()
        )
    return criterion


def trial_set_classification(
    trial: Trial, *, override: bool | None, note: str = "", user: Any = None
) -> Trial:
    """A coordinator's answer to "is this a gastric preoperative immunotherapy trial?"."""
    trial.classification_override = override
    trial.classification_note = note
    trial.classification_by = user if override is not None else None
    trial.classification_at = timezone.now() if override is not None else None
    computed = (
        trial.classified_gastric
        and trial.classified_immunotherapy
        and (trial.classified_preoperative)
    )
    trial.gastric_preop_immunotherapy = override if override is not None else computed
    trial.needs_evaluation = True
    trial.matching_inputs_at = timezone.now()
    trial.save(
        update_fields=[
            "matching_inputs_at",
            "classification_override",
            "classification_note",
            "classification_by",
            "classification_at",
            "gastric_preop_immunotherapy",
            "needs_evaluation",
        ]
    )
    return trial
