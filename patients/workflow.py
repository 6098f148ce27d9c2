"""The coordinators' follow-up of a (patient, trial) pair: statuses, assignee, notes.

One implementation for the admin, the API and anything else: every move is checked against
the allowed transitions, recorded as a ``ReviewTransition`` (who, when, why, the verdict at
the time), and written in one transaction. A re-evaluation never touches these rows.

    new -> under review -> contacted -> consented -> enrolled
    any open status -> not eligible | declined   (a reason is required)
    not eligible | declined -> under review       (reopened)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import OuterRef, QuerySet
from django.utils import timezone

from patients.models import Match, Patient, Review, ReviewNote, ReviewTransition

Status = Review.Status

ALLOWED: dict[str, tuple[str, ...]] = {
    Status.NEW: (Status.UNDER_REVIEW, Status.CONTACTED, Status.NOT_ELIGIBLE, Status.DECLINED),
    Status.UNDER_REVIEW: (Status.CONTACTED, Status.NOT_ELIGIBLE, Status.DECLINED),
    Status.CONTACTED: (Status.CONSENTED, Status.NOT_ELIGIBLE, Status.DECLINED),
    Status.CONSENTED: (Status.ENROLLED, Status.NOT_ELIGIBLE, Status.DECLINED),
    Status.ENROLLED: (Status.DECLINED,),  # withdrew after enrolment
    Status.NOT_ELIGIBLE: (Status.UNDER_REVIEW,),
    Status.DECLINED: (Status.UNDER_REVIEW,),
}
NEEDS_REASON = frozenset({Status.NOT_ELIGIBLE, Status.DECLINED})
# Where a pair has moved past the screening stage: counted in the funnel as such.
FUNNEL = (Status.CONTACTED, Status.CONSENTED, Status.ENROLLED)


class WorkflowError(ValidationError):
    """A move the workflow does not allow, with a message fit to show the coordinator."""


def allowed_next(status: str) -> tuple[str, ...]:
    return ALLOWED.get(status, ())


def review_for(patient: Patient | int, trial: Any) -> Review:
    """The pair's review, created (status new) on first use."""
    patient_id = patient if isinstance(patient, int) else patient.pk
    trial_id = trial if isinstance(trial, int) else trial.pk
    review, _ = Review.objects.get_or_create(patient_id=patient_id, trial_id=trial_id)
    return review


def reviews_of_pair() -> QuerySet[Review]:
    """The review of the outer query's (patient_id, trial_id) pair, for subqueries over
    matches: the queue's and the API's review columns and filters."""
    return Review.objects.filter(patient_id=OuterRef("patient_id"), trial_id=OuterRef("trial_id"))


def _current_match(review: Review) -> Match | None:
    return (
        Match.objects.filter(patient_id=review.patient_id, trial_id=review.trial_id)
        .only("verdict", "flagged")
        .first()
    )


def move(
    review: Review,
    to_status: str,
    *,
    actor: Any,
    reason: str = "",
    note: str = "",
) -> Review:
    """Move the review to ``to_status``; raises ``WorkflowError`` when not allowed."""
    reason = reason.strip()
    if to_status not in Status.values:
        raise WorkflowError(f"Unknown status {to_status!r}.")
    if to_status == review.status:
        raise WorkflowError(f"The review is already {Status(to_status).label.lower()}.")
    if to_status not in allowed_next(review.status):
        allowed = ", ".join(Status(s).label.lower() for s in allowed_next(review.status))
        raise WorkflowError(
            f"A review that is {Status(review.status).label.lower()} can move to: "
            f"{allowed or 'nothing further'}."
        )
    if to_status in NEEDS_REASON and not reason:
        raise WorkflowError(
            f"Say why the patient is {Status(to_status).label.lower()} (a reason is required)."
        )
    with transaction.atomic():
        locked = Review.objects.select_for_update().get(pk=review.pk)
        if locked.status != review.status:
            raise WorkflowError("Someone else moved this review meanwhile; reload and retry.")
        match = _current_match(locked)
        now = timezone.now()
        ReviewTransition.objects.create(
            review=locked,
            from_status=locked.status,
            to_status=to_status,
            reason=reason,
            assignee=locked.assignee,
            actor=_user(actor),
            verdict=match.verdict if match else "",
            at=now,
        )
        locked.status = to_status
        locked.status_reason = reason if to_status in NEEDS_REASON else ""
        locked.verdict_seen = match.verdict if match else ""
        locked.flagged_seen = match.flagged if match else None
        locked.updated_at = now
        locked.save()
        if note.strip():
            ReviewNote.objects.create(review=locked, author=_user(actor), text=note.strip())
    return locked


def assign(review: Review, assignee: Any, *, actor: Any) -> Review:
    """Give the review to ``assignee`` (None: unassigned); recorded like a status move."""
    with transaction.atomic():
        locked = Review.objects.select_for_update().get(pk=review.pk)
        if locked.assignee_id == (assignee.pk if assignee else None):
            return locked
        match = _current_match(locked)
        ReviewTransition.objects.create(
            review=locked,
            from_status=locked.status,
            to_status=locked.status,
            reason=f"assigned to {assignee}" if assignee else "unassigned",
            assignee=assignee,
            actor=_user(actor),
            verdict=match.verdict if match else "",
        )
        locked.assignee = assignee
        locked.updated_at = timezone.now()
        locked.save(update_fields=["assignee", "updated_at"])
    return locked


def add_note(review: Review, text: str, *, actor: Any) -> ReviewNote:
    text = text.strip()
    if not text:
        raise WorkflowError("The note is empty.")
    if len(text) > 5000:
        raise WorkflowError("Keep a note under 5,000 characters.")
    return ReviewNote.objects.create(review=review, author=_user(actor), text=text)


def move_pairs(
    pairs: Iterable[tuple[int, int]], to_status: str, *, actor: Any, reason: str = ""
) -> tuple[int, list[str]]:
    """Bulk move (admin actions): returns (moved, messages for the pairs that could not)."""
    moved, problems = 0, []
    for patient_id, trial_id in pairs:
        review = review_for(patient_id, trial_id)
        try:
            move(review, to_status, actor=actor, reason=reason)
        except WorkflowError as exc:
            problems.append(f"{review.patient} x trial {trial_id}: {exc.messages[0]}")
        else:
            moved += 1
    return moved, problems


def changed_since_review(review: Review | None, match: Match | None) -> bool:
    """The verdict or the flag moved after the coordinator last acted on the pair."""
    if review is None or match is None or review.status == Status.NEW:
        return False
    if not review.verdict_seen:
        return False
    return review.verdict_seen != match.verdict or (
        review.flagged_seen is not None and review.flagged_seen != match.flagged
    )


def _user(actor: Any) -> Any:
    return actor if getattr(actor, "is_authenticated", False) else None
