"""Patients matched against trials: the engine's evaluation run over the database, and stored.

``match_patients`` evaluates patients against every trial open to enrolment (the sync's query
decides which trials the service holds; the cheap filters run in SQL and before each
evaluation: a patient is evaluated only against trials for their cancer site) and replaces
their stored matches in one transaction per chunk, so a reader never sees half a patient's
matches. Trials are compiled once per process (``TrialRulesCache``) and recompiled only when
their ``matching_inputs_at`` moves. A match records the inputs it was computed from; one whose
inputs changed since is not current (``Match.objects.current()``).
"""

from __future__ import annotations

import datetime
import gc
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson
from django.db import connection, transaction
from django.db.models import Count, Max, QuerySet
from django.utils import timezone

from patients.facts import patient_facts, with_facts
from patients.models import FlagEvent, Match, Patient
from trials.eligibility import constraints as c
from trials.eligibility.classify import trial_cancer_sites
from trials.eligibility.coverage import deciding_parts, reading_review
from trials.eligibility.evaluate import (
    MatchResult,
    PatientEvaluator,
    Rule,
    RuleInterner,
    SitePoint,
    TrialRules,
)
from trials.eligibility.parser import ENGINE_VERSION
from trials.models import Criterion, Trial, TrialSite

logger = logging.getLogger(__name__)

# The parser's version and the evaluator's: a change to either makes stored matches stale.
# m2: every open trial is a candidate, pre-filtered by cancer site (no longer the gastric family).
MATCHER_VERSION = f"{ENGINE_VERSION}/m2"
PATIENT_CHUNK = 200
_YEARS_PER_UNIT = {"years": 1.0, "months": 1 / 12, "weeks": 7 / 365.25, "days": 1 / 365.25}


def candidate_trials() -> QuerySet[Trial]:
    """Trials worth evaluating at all: every one open to enrolment that the service holds
    (a trial for another cancer than the patient's has its disease criteria read first:
    ``PatientEvaluator.screen``)."""
    return Trial.objects.open_to_enrolment()


def _freeze_long_lived() -> None:
    """Put what is alive now out of the cyclic collector's sight.

    The compiled trials live as long as the process: frozen, they no longer make each full
    collection walk them (the 50-70 ms pauses that turned one patient's 140 ms re-match into
    210 ms). ``gc.freeze`` takes every object tracked at that moment, though, cyclic garbage
    not yet collected included, and frozen garbage is never collected: a worker that
    recompiled after every sync grew by ~20 MB a minute in the soak benchmark. So what an
    earlier freeze kept is handed back and collected first; only live objects are frozen.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()


class TrialRulesCache:
    """Compiled trials kept in memory, recompiled when their ``matching_inputs_at`` moves."""

    def __init__(self) -> None:
        self._held: dict[int, tuple[datetime.datetime, TrialRules]] = {}
        self._interner = RuleInterner()
        # (count, latest matching_inputs_at) of the candidate set last seen, and its trials.
        self._fingerprint: tuple[Any, ...] | None = None
        self._candidates: list[int] = []

    def rules(self, trial_ids: Iterable[int] | None = None) -> list[TrialRules]:
        """The candidate trials (restricted to ``trial_ids`` when given), compiled."""
        queryset = candidate_trials()
        fingerprint = None
        if trial_ids is not None:
            queryset = queryset.filter(pk__in=list(trial_ids))
        else:
            # Every change to a trial's matching inputs moves its ``matching_inputs_at`` to
            # now, so an unchanged (count, latest) means an unchanged candidate set: one
            # aggregate instead of reading 2,000 heads for each patient the form submits.
            # (Two changes committing out of order could hide the earlier one here; its own
            # trial-specific re-match reloads it through the path below.)
            latest = queryset.aggregate(count=Count("pk"), latest=Max("matching_inputs_at"))
            fingerprint = (latest["count"], latest["latest"])
            if fingerprint == self._fingerprint:
                return [self._held[pk][1] for pk in self._candidates if pk in self._held]
        heads = list(queryset.order_by("pk").values_list("pk", "matching_inputs_at"))
        stale = [pk for pk, at in heads if self._held.get(pk, (None,))[0] != at]
        for start in range(0, len(stale), 500):
            self._load(stale[start : start + 500])
        if stale:
            _freeze_long_lived()
        if trial_ids is None:
            current = {pk for pk, _ in heads}
            for pk in [pk for pk in self._held if pk not in current]:
                del self._held[pk]
            self._fingerprint, self._candidates = fingerprint, [pk for pk, _ in heads]
        return [self._held[pk][1] for pk, _ in heads if pk in self._held]

    def compile(self, trial_ids: Iterable[int]) -> list[TrialRules]:
        """These trials compiled whatever their status (for tools and benchmarks)."""
        ids = list(trial_ids)
        for start in range(0, len(ids), 500):
            self._load(ids[start : start + 500])
        return [self._held[pk][1] for pk in ids if pk in self._held]

    def inputs_at(self, trial_id: int) -> datetime.datetime:
        return self._held[trial_id][0]

    def clear(self) -> None:
        self._held.clear()
        self._fingerprint, self._candidates = None, []

    def _load(self, pks: list[int]) -> None:
        rules: dict[int, list[Rule]] = {pk: [] for pk in pks}
        rows = (
            Criterion.objects.filter(trial_id__in=pks)
            .order_by("trial_id", "position")
            .values_list(
                "trial_id",
                "position",
                "kind",
                "category",
                "corrected_category",
                "constraints",
                "corrected_constraints",
                "join",
                "corrected_join",
                "header",
                "correction_note",
                "reading_gaps",
                "reading_marks",
                "reading_parts",
            )
        )
        for (
            trial_id,
            position,
            kind,
            category,
            corrected_category,
            constraints,
            corrected,
            join,
            corrected_join,
            header,
            note,
            gaps,
            marks,
            parts,
        ) in rows.iterator(chunk_size=5000):
            effective = corrected if corrected is not None else constraints
            if header and not effective:
                continue  # a heading: its items are criteria of their own
            curated = bool(corrected_category or corrected is not None or corrected_join or note)
            # A coordinator's correction (or a note saying the reading is right) is a
            # reviewed reading: it decides whatever the engine could not explain.
            review, decides = ("", "") if curated else reading_review(kind, gaps or [], marks or [])
            deciding = () if curated else deciding_parts(gaps or [], marks or [], parts or [])
            rules[trial_id].append(
                self._interner.rule(
                    position,
                    kind,
                    corrected_category or category,
                    _constraints(effective),
                    corrected_join or join,
                    review,
                    decides=decides,
                    parts=deciding,
                )
            )
        sites: dict[int, list[SitePoint]] = {pk: [] for pk in pks}
        for trial_id, latitude, longitude, status in TrialSite.objects.filter(
            trial_id__in=pks, latitude__isnull=False, longitude__isnull=False
        ).values_list("trial_id", "latitude", "longitude", "status"):
            if latitude is not None and longitude is not None:
                sites[trial_id].append(SitePoint(latitude, longitude, status))
        for trial in Trial.objects.filter(pk__in=pks).values(
            "pk",
            "nct_id",
            "overall_status",
            "phases",
            "gastric_preop_immunotherapy",
            "classified_gastric",
            "conditions",
            "condition_mesh_terms",
            "brief_title",
            "official_title",
            "minimum_age_value",
            "minimum_age_unit",
            "maximum_age_value",
            "maximum_age_unit",
            "sex",
            "matching_inputs_at",
        ):
            pk = trial["pk"]
            self._held[pk] = (
                trial["matching_inputs_at"],
                TrialRules(
                    key=pk,
                    nct_id=trial["nct_id"],
                    rules=tuple(rules[pk]),
                    status=trial["overall_status"],
                    phases=tuple(trial["phases"] or ()),
                    gastric_preop_immunotherapy=trial["gastric_preop_immunotherapy"],
                    gastric=trial["classified_gastric"],
                    # Read here, once per compiled trial, from what the sync and the
                    # classification stored: nothing to migrate, never out of date.
                    cancer_sites=trial_cancer_sites(
                        trial["conditions"] or (),
                        trial["condition_mesh_terms"] or (),
                        (trial["brief_title"], trial["official_title"]),
                        gastric=trial["classified_gastric"] or trial["gastric_preop_immunotherapy"],
                    ),
                    minimum_age=_years(trial["minimum_age_value"], trial["minimum_age_unit"]),
                    maximum_age=_years(trial["maximum_age_value"], trial["maximum_age_unit"]),
                    sex=trial["sex"] or "",
                    sites=tuple(sites[pk]),
                ),
            )


def _constraints(items: Any) -> tuple[c.Constraint, ...]:
    """Stored constraints as objects; a criterion with one that does not read is unparsed."""
    if not isinstance(items, list):
        return ()
    try:
        return tuple(c.constraint_from_dict(item) for item in items)
    except c.ConstraintError:
        return ()


def _years(value: Decimal | None, unit: str) -> float | None:
    if value is None:
        return None
    return float(value) * _YEARS_PER_UNIT.get(unit or "years", 1.0)


# One cache per process (web worker, Celery worker, command).
_CACHE = TrialRulesCache()


def rules_cache() -> TrialRulesCache:
    return _CACHE


@dataclass
class MatchRun:
    patients: int = 0
    trials: int = 0
    evaluated: int = 0
    stored: int = 0
    flagged: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        return (
            f"{self.patients} patient(s) x {self.trials} open trial(s): "
            f"{self.evaluated} evaluated, {self.stored} stored, {self.flagged} flagged "
            f"in {self.seconds:.1f} s"
        )

    def add(self, other: MatchRun) -> None:
        self.patients += other.patients
        self.evaluated += other.evaluated
        self.stored += other.stored
        self.flagged += other.flagged


def evaluate_patient(
    patient: Patient, rules: Sequence[TrialRules], on: datetime.date
) -> list[tuple[TrialRules, MatchResult]]:
    """One patient (loaded with ``with_facts``) against compiled trials, pre-filters first."""
    return evaluate_with(PatientEvaluator(patient_facts(patient), on), rules)


def evaluate_with(
    evaluator: PatientEvaluator, rules: Sequence[TrialRules]
) -> list[tuple[TrialRules, MatchResult]]:
    return [
        (trial, evaluator.evaluate(trial)) for trial in rules if evaluator.prefilter(trial).passed
    ]


DECEASED_REASON = "The patient is recorded as deceased: not matched."


def match_patients(
    patient_ids: Iterable[int],
    *,
    trial_ids: Iterable[int] | None = None,
    cache: TrialRulesCache | None = None,
    progress: Callable[[int], None] | None = None,
) -> MatchRun:
    """Evaluate these patients (against these trials, default: every candidate) and store."""
    started = time.perf_counter()
    cache = cache or _CACHE
    wanted_trials = list(trial_ids) if trial_ids is not None else None
    rules = cache.rules(wanted_trials)
    run = MatchRun(trials=len(rules))
    ids = list(patient_ids)
    for start in range(0, len(ids), PATIENT_CHUNK):
        chunk = ids[start : start + PATIENT_CHUNK]
        run.add(_match_chunk(chunk, rules, wanted_trials, cache))
        if progress:
            progress(len(chunk))
    run.seconds = time.perf_counter() - started
    return run


def _match_chunk(
    patient_ids: list[int],
    rules: list[TrialRules],
    trial_ids: list[int] | None,
    cache: TrialRulesCache,
) -> MatchRun:
    run = MatchRun()
    on = timezone.localdate()
    now = timezone.now()
    rows: list[tuple[Any, ...]] = []
    patients = list(with_facts(Patient.objects.filter(pk__in=patient_ids)))
    candidacy: list[Patient] = []
    for patient in patients:
        run.patients += 1
        if patient.deceased:
            # Kept, marked, never matched nor flagged: the rows held for them go below.
            if (patient.surgical_candidate, patient.surgical_candidate_reason) != (
                None,
                DECEASED_REASON,
            ):
                patient.surgical_candidate = None
                patient.surgical_candidate_reason = DECEASED_REASON
                candidacy.append(patient)
            continue
        evaluator = PatientEvaluator(patient_facts(patient), on)
        surgical = evaluator.surgical
        value = surgical.value if isinstance(surgical.value, bool) else None
        if (patient.surgical_candidate, patient.surgical_candidate_reason) != (
            value,
            surgical.explanation,
        ):
            patient.surgical_candidate = value
            patient.surgical_candidate_reason = surgical.explanation
            candidacy.append(patient)
        for trial, result in evaluate_with(evaluator, rules):
            run.evaluated += 1
            run.flagged += result.flagged
            rows.append(_row(patient, trial, result, cache.inputs_at(trial.key), now, on))
    inside_write = connection.in_atomic_block
    with transaction.atomic():
        if connection.vendor == "postgresql" and not inside_write:
            # Matches are derived data: a crash may lose the last instant of them (the old
            # rows then stay, visibly stale, until the next run), so the commit need not wait
            # for the WAL flush (about a sixth of one patient's re-match time). Not when the
            # matching is part of a caller's transaction (a patient write): that commit waits.
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit TO OFF")
        held = Match.objects.filter(patient_id__in=patient_ids)
        if trial_ids is not None:
            held = held.filter(trial_id__in=trial_ids)
        flagged = held.filter(flagged=True).values_list("patient_id", "trial_id", "verdict")
        was_flagged = {(patient_id, trial_id): verdict for patient_id, trial_id, verdict in flagged}
        held._raw_delete(held.db)  # derived rows, nothing cascades from them
        _store(rows)
        _record_flag_events(was_flagged, rows, now)
        if candidacy:
            Patient.objects.bulk_update(
                candidacy, ["surgical_candidate", "surgical_candidate_reason"], batch_size=500
            )
    run.stored = len(rows)
    return run


def _record_flag_events(
    was_flagged: dict[tuple[int, int], str], rows: list[tuple[Any, ...]], now: datetime.datetime
) -> None:
    """FlagEvents for the flags that appeared, changed verdict or went away in this write."""
    events: list[FlagEvent] = []
    for row in rows:
        if not row[FLAGGED]:
            continue
        pair, verdict = (row[PATIENT], row[TRIAL]), row[VERDICT]
        before = was_flagged.pop(pair, None)
        if before is None:
            kind = FlagEvent.Kind.NEW
        elif before != verdict:
            kind = FlagEvent.Kind.CHANGED
        else:
            continue
        events.append(
            FlagEvent(
                patient_id=pair[0],
                trial_id=pair[1],
                kind=kind,
                verdict=verdict,
                previous_verdict=before or "",
                at=now,
            )
        )
    events.extend(
        FlagEvent(
            patient_id=patient_id,
            trial_id=trial_id,
            kind=FlagEvent.Kind.CLEARED,
            previous_verdict=before,
            at=now,
        )
        for (patient_id, trial_id), before in was_flagged.items()
    )
    FlagEvent.objects.bulk_create(events, batch_size=1000)


# Column order of the rows ``_row`` builds and ``_store`` writes.
COLUMNS = (
    "patient_id",
    "trial_id",
    "verdict",
    "score",
    "flagged",
    "flag_reason",
    "distance_km",
    "outcomes",
    "unknown_facts",
    "engine_version",
    "patient_facts_at",
    "trial_inputs_at",
    "evaluated_at",
    "evaluated_on",
)
PATIENT, TRIAL, VERDICT, FLAGGED = (COLUMNS.index(name) for name in (*COLUMNS[:3], "flagged"))


def _row(
    patient: Patient,
    trial: TrialRules,
    result: MatchResult,
    trial_inputs_at: datetime.datetime,
    now: datetime.datetime,
    on: datetime.date,
) -> tuple[Any, ...]:
    # Tuples and str enums serialise as they are (orjson): no per-criterion lists.
    outcomes = [
        (rule.position, answer.outcome, answer.reason, answer.missing)
        for rule, answer in zip(result.rules, result.answers, strict=True)
        if answer.parsed
    ]
    return (
        patient.pk,
        trial.key,
        result.verdict.value,
        result.score,
        result.flagged,
        result.flag_reason,
        result.distance_km,
        outcomes,
        result.unknown_facts,
        MATCHER_VERSION,
        patient.facts_changed_at,
        trial_inputs_at,
        now,
        on,
    )


def _store(rows: list[tuple[Any, ...]]) -> None:
    """Insert the rows: COPY on PostgreSQL (several times faster than INSERT for the
    hundred-thousand-row chunks of a full run), ``bulk_create`` elsewhere."""
    if not rows:
        return
    if connection.vendor != "postgresql":
        Match.objects.bulk_create(
            [Match(**dict(zip(COLUMNS, row, strict=True))) for row in rows], batch_size=1000
        )
        return
    table = Match._meta.db_table
    with connection.cursor() as cursor:
        raw = cursor.cursor  # the psycopg cursor underneath Django's wrapper
        with raw.copy(f"COPY {table} ({', '.join(COLUMNS)}) FROM STDIN") as copy:
            lines: list[str] = []
            for row in rows:
                lines.append("\t".join(map(_copy_text, row)))
                if len(lines) >= 2000:
                    copy.write("\n".join(lines) + "\n")
                    lines.clear()
            if lines:
                copy.write("\n".join(lines) + "\n")


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_text(value: Any) -> str:
    """One value in COPY's text format (formatted here: psycopg's per-row path was a third
    of a full run)."""
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, list | tuple):
        value = orjson.dumps(value).decode()
    if isinstance(value, str):
        if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
            return value.translate(_COPY_ESCAPES)
        return value
    if isinstance(value, datetime.date):
        return value.isoformat()
    return str(value)


def match_trials(
    trial_ids: Iterable[int], *, progress: Callable[[int], None] | None = None
) -> MatchRun:
    """Every patient against these trials (their criteria, status or classification changed)."""
    ids = list(trial_ids)
    run = match_patients(
        Patient.objects.order_by("pk").values_list("pk", flat=True),
        trial_ids=ids,
        progress=progress,
    )
    Trial.objects.filter(pk__in=ids).update(needs_evaluation=False)
    return run


def match_all(*, progress: Callable[[int], None] | None = None) -> MatchRun:
    """Every patient against every candidate trial; matches of other trials are removed."""
    run = match_patients(
        Patient.objects.order_by("pk").values_list("pk", flat=True), progress=progress
    )
    remove_non_candidate_matches()
    Trial.objects.filter(needs_evaluation=True).update(needs_evaluation=False)
    return run


def remove_non_candidate_matches() -> int:
    """Drop the matches of trials no longer open; their flags are cleared."""
    with transaction.atomic():
        gone = Match.objects.exclude(trial__in=candidate_trials())
        flagged = gone.filter(flagged=True).values_list("patient_id", "trial_id", "verdict")
        _record_flag_events({(p, t): v for p, t, v in flagged}, [], timezone.now())
        deleted, _ = gone.delete()
    return deleted


def match_changed_trials(
    sender: Any = None, progress: Callable[[int], None] | None = None, **kwargs: Any
) -> str:
    """Receiver of ``trials.signals.trials_changed``: patients against the trials whose
    inputs changed, in this process. Returns the summary line the sender prints."""
    pending = pending_trial_ids()
    if not pending or not Patient.objects.exists():
        return ""
    run = match_trials(pending, progress=progress)
    return f"Matches recomputed: {run.summary()}."


def pending_trial_ids() -> list[int]:
    """Trials whose inputs changed since their matches were last computed."""
    return list(Trial.objects.filter(needs_evaluation=True).values_list("pk", flat=True))


def chunks(ids: Sequence[int], size: int | None = None) -> Iterator[list[int]]:
    size = size or PATIENT_CHUNK  # read when called, so that a changed setting applies
    for start in range(0, len(ids), size):
        yield list(ids[start : start + size])


# --- Reading stored matches -------------------------------------------------------------------


# The Criterion columns ``criteria_of`` reads: a query for it loads these only (the text
# segmentation, parse details and curation notes are not needed to list outcomes).
CRITERIA_OF_FIELDS = (
    "trial_id",
    "position",
    "kind",
    "text",
    "header",
    "category",
    "corrected_category",
    "constraints",
    "corrected_constraints",
)


def criteria_of(match: Match, criteria: Sequence[Criterion]) -> list[dict[str, Any]]:
    """Every criterion of the trial with this match's outcome and reason.

    ``criteria`` are the trial's Criterion rows in position order; a criterion the engine did
    not read (no outcome stored) is unknown and needs review.
    """
    outcomes = {item[0]: item for item in match.outcomes}
    listed = []
    for criterion in criteria:
        stored = outcomes.get(criterion.position)
        if stored is None and criterion.header and not criterion.effective_constraints:
            continue
        listed.append(
            {
                "type": criterion.kind,
                "text": criterion.text,
                "category": criterion.effective_category,
                "outcome": stored[1] if stored else "unknown",
                "reason": stored[2] if stored else "not read by the engine: needs review",
                "missing": stored[3] if stored else [],
                "parsed": stored is not None,
            }
        )
    return listed


@dataclass(frozen=True)
class DecidingFact:
    fact: str
    trials: tuple[str, ...]

    def describe(self) -> str:
        count = len(self.trials)
        return f"{self.fact}: decides {count} trial{'s' if count != 1 else ''}"


def deciding_facts_for(patient: Patient) -> list[DecidingFact]:
    """What would decide the most flagged or possible trials for this patient, most first."""
    matches = (
        Match.objects.current()
        .filter(patient=patient, verdict=Match.Verdict.POSSIBLE)
        .select_related("trial")
        .only("unknown_facts", "verdict", "trial__nct_id")
    )
    by_fact: dict[str, list[str]] = {}
    for match in matches:
        for fact in match.unknown_facts:
            by_fact.setdefault(fact, []).append(match.trial.nct_id)
    ranked = sorted(by_fact.items(), key=lambda item: (-len(item[1]), item[0]))
    return [DecidingFact(fact, tuple(trials)) for fact, trials in ranked]
