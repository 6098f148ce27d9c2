"""Writes to trials: importing registry records, syncing with ClinicalTrials.gov, exporting.

Every write here is idempotent: records are upserted on the NCT id, a record identical to what
is held changes nothing, and a sync that is interrupted resumes from its last committed page
(or redoes its window) to the same end state.
"""

from __future__ import annotations

import datetime
import functools
import gc
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from trials.ctgov.client import CtgovClient, CtgovError, CtgovRequestRejected, Page
from trials.ctgov.files import FileRecord, RecordFileError, iter_file_studies, record_files
from trials.ctgov.mapping import (
    NCT_ID,
    MalformedRecord,
    SerializedRecord,
    TrialRecord,
    map_study,
    serialize_record,
)
from trials.fields import SerializedJSON
from trials.locks import exclusive_lock
from trials.models import SyncRun, SyncRunListing, Trial, TrialSite, TrialVersion

logger = logging.getLogger(__name__)

SYNC_LOCK = "ctgov-sync"
FILE_BATCH_SIZE = 500
# Columns rewritten when a record changed (everything mapped, plus bookkeeping).
MAPPED_FIELDS = (
    "brief_title",
    "official_title",
    "acronym",
    "overall_status",
    "phases",
    "study_type",
    "conditions",
    "condition_mesh_terms",
    "keywords",
    "interventions",
    "intervention_mesh_terms",
    "arm_groups",
    "brief_summary",
    "detailed_description",
    "lead_sponsor",
    "start_date",
    "completion_date",
    "last_update_posted",
    "eligibility_criteria",
    "minimum_age_value",
    "minimum_age_unit",
    "maximum_age_value",
    "maximum_age_unit",
    "sex",
    "healthy_volunteers",
    "raw",
    "content_hash",
    "source_hash",
)
UPDATED_FIELDS = (
    *MAPPED_FIELDS,
    "version_count",
    "removed_from_registry",
    "removed_at",
    "needs_evaluation",
    "matching_inputs_at",
    "criteria_engine_version",
    "updated_at",
)

ProgressCallback = Callable[[SyncRun], None]


@contextmanager
def bulk_allocation() -> Iterator[None]:
    """Fewer garbage-collector passes while records are decoded by the thousand.

    Decoding creates millions of small objects, and every 700 allocations the collector walked
    the batch held in memory: a third of an unchanged re-import's time. Records hold no
    reference cycles, so the passes are made rarer (not stopped) and restored afterwards.
    """
    previous = gc.get_threshold()
    gc.set_threshold(100_000, *previous[1:])
    try:
        yield
    finally:
        gc.set_threshold(*previous)


class SyncAlreadyRunning(Exception):
    """Another sync holds the lock; this one did nothing."""


@dataclass(frozen=True)
class Checkpoint:
    """Where a sync stands after a committed page."""

    page_token: str | None
    page_number: int
    records: int
    high_water_mark: str | None

    @classmethod
    def of(cls, run: SyncRun) -> Checkpoint | None:
        data = run.checkpoint or {}
        if not data.get("page_token"):
            return None
        return cls(
            page_token=data["page_token"],
            page_number=int(data.get("page_number", 0)),
            records=int(data.get("records", 0)),
            high_water_mark=data.get("high_water_mark"),
        )


# --- Upserting records ---------------------------------------------------------------------


def trials_upsert(
    *,
    studies: Sequence[Any],
    run: SyncRun,
    source_hashes: Sequence[str | None] | None = None,
    listed: bool = False,
    checkpoint: dict[str, Any] | None = None,
    describe: Callable[[int], str] | None = None,
) -> None:
    """Import one batch of study records in one transaction, with the run's counters.

    Malformed records are reported in the run and skipped; the rest of the batch is imported.
    ``listed`` remembers each NCT id for a full run's removal check. ``checkpoint`` is saved
    in the same transaction, so the run's position and the data it covers never disagree.
    ``source_hashes`` (files only) fingerprint each record's text as it was read.
    """
    run.fetched += len(studies)
    # Hash first, map later: an unchanged record (most of them, most nights) costs one hash.
    candidates: dict[str, tuple[Any, SerializedRecord, str | None]] = {}
    for index, study in enumerate(studies):
        nct_id = _peek_nct_id(study)
        if nct_id is None:
            _report_malformed(run, study, index, describe)
            continue
        source = source_hashes[index] if source_hashes else None
        try:
            candidates[nct_id] = (study, serialize_record(study), source)
        except MalformedRecord as exc:
            run.add_error(nct_id, f"{nct_id}: {exc}")
            if listed:  # still in the registry: a full run must not mark it removed
                SyncRunListing.objects.create(run=run, nct_id=nct_id)

    now = timezone.now()
    counters = _counters(run)
    try:
        with transaction.atomic():
            _store(candidates, run, now, listed=listed, checkpoint=checkpoint)
    except DatabaseError:
        # The database refused something of the batch, which is rolled back: each record
        # again on its own, so that one bad record costs only itself.
        _restore(run, counters)
        refused: list[str] = []
        for nct_id, candidate in candidates.items():
            alone = _counters(run)
            try:
                with transaction.atomic():
                    _store({nct_id: candidate}, run, now, listed=listed, checkpoint=None)
            except DatabaseError as exc:
                _restore(run, alone)
                refused.append(nct_id)
                run.add_error(nct_id, f"{nct_id}: could not be stored ({_first_line(exc)})")
        with transaction.atomic():
            if listed:  # still in the registry: a full run must not mark it removed
                SyncRunListing.objects.bulk_create(
                    [SyncRunListing(run=run, nct_id=nct_id) for nct_id in refused]
                )
            if checkpoint is not None:
                run.checkpoint = checkpoint
            run.save()


_COUNTERS = ("created", "updated", "unchanged", "failed")


def _counters(run: SyncRun) -> tuple[tuple[int, ...], list[dict[str, str]]]:
    return tuple(getattr(run, name) for name in _COUNTERS), list(run.errors)


def _restore(run: SyncRun, saved: tuple[tuple[int, ...], list[dict[str, str]]]) -> None:
    values, errors = saved
    for name, value in zip(_COUNTERS, values, strict=True):
        setattr(run, name, value)
    run.errors = errors


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__


def _store(
    candidates: dict[str, tuple[Any, SerializedRecord, str | None]],
    run: SyncRun,
    now: datetime.datetime,
    *,
    listed: bool,
    checkpoint: dict[str, Any] | None,
) -> None:
    """Write these records (in the caller's transaction), with the run's counters."""
    existing = {
        trial.nct_id: trial
        for trial in Trial.objects.filter(nct_id__in=candidates).only(
            "id",
            "nct_id",
            "content_hash",
            "eligibility_criteria",
            "overall_status",
            "version_count",
            "removed_from_registry",
            "last_update_posted",
        )
    }
    records: dict[str, TrialRecord] = {}
    created: list[Trial] = []
    changed: list[Trial] = []
    versions: list[TrialVersion] = []
    for nct_id, (study, serialized, source) in candidates.items():
        trial = existing.get(nct_id)
        unchanged = trial is not None and trial.content_hash == serialized.digest
        if unchanged and not trial.removed_from_registry:  # type: ignore[union-attr]
            run.unchanged += 1
            continue
        try:
            record = map_study(study, digest=serialized.digest)
        except MalformedRecord as exc:
            run.add_error(nct_id, str(exc))
            continue
        records[nct_id] = record
        if trial is None:
            trial = Trial(nct_id=nct_id, created_at=now, updated_at=now, version_count=1)
            _assign(trial, record, serialized, source)
            created.append(trial)
            versions.append(_version(trial, record, run, 1, ["created"]))
            continue
        if _older(record, trial) and not trial.removed_from_registry:
            run.unchanged += 1
            continue
        changes = _changes(trial, record)
        _assign(trial, record, serialized, source)
        trial.updated_at = now
        trial.matching_inputs_at = now  # status, sites, ages ... may all have changed
        trial.criteria_engine_version = ""  # read the changed record again
        if trial.removed_from_registry:
            trial.removed_from_registry = False
            trial.removed_at = None
            changes.append("back in the registry")
            trial.needs_evaluation = True
        if {"eligibility", "status"} & set(changes):
            trial.version_count += 1
            trial.needs_evaluation = True
            versions.append(_version(trial, record, run, trial.version_count, changes))
        changed.append(trial)

    Trial.objects.bulk_create(created, batch_size=500)
    Trial.objects.bulk_update(changed, UPDATED_FIELDS, batch_size=500)
    TrialSite.objects.filter(trial__in=changed).delete()
    _insert_sites(
        [
            (trial.pk, *site)
            for trial in (*created, *changed)
            for site in records[trial.nct_id].sites
        ]
    )
    for version in versions:
        version.trial_id = version.trial.pk
    TrialVersion.objects.bulk_create(versions, batch_size=500)
    if listed:
        SyncRunListing.objects.bulk_create(
            [SyncRunListing(run=run, nct_id=nct_id) for nct_id in candidates],
            batch_size=1000,
        )
    run.created += len(created)
    run.updated += len(changed)
    if checkpoint is not None:
        run.checkpoint = checkpoint
    run.save()


def _peek_nct_id(study: Any) -> str | None:
    try:
        nct_id = study["protocolSection"]["identificationModule"]["nctId"]
    except (KeyError, TypeError):
        return None
    return nct_id if isinstance(nct_id, str) and NCT_ID.match(nct_id) else None


def _report_malformed(
    run: SyncRun, study: Any, index: int, describe: Callable[[int], str] | None
) -> None:
    where = describe(index) if describe else f"record {index + 1} of the batch"
    try:
        map_study(study)
    except MalformedRecord as exc:
        run.add_error(where, str(exc))
    else:  # pragma: no cover - the mapping accepts what the peek refused
        run.add_error(where, "no usable NCT id")


def _older(record: TrialRecord, trial: Trial) -> bool:
    """Would this record take the trial back in time (e.g. an old file)?

    The registry's last-update date only moves forward, so a record dated before ours, or
    undated against ours dated, is older than what we hold: it is left out.
    """
    if trial.last_update_posted is None:
        return False
    return record.last_update_posted is None or record.last_update_posted < trial.last_update_posted


SITE_COLUMNS = (
    "trial_id",
    "facility",
    "status",
    "city",
    "state",
    "zip",
    "country",
    "latitude",
    "longitude",
)


def _insert_sites(rows: list[tuple[Any, ...]]) -> None:
    """Insert site rows (trial id, then SiteRecord's fields) as multi-row VALUES statements.

    Sites are many small rows nobody refers to; built as model instances they were 40% of an
    import's time, and one statement per row kept PostgreSQL busy, so they skip the ORM.
    """
    width = len(SITE_COLUMNS)
    per_statement = min(500, (connection.features.max_query_params or 999) // width)
    quote = connection.ops.quote_name
    head = (
        f"INSERT INTO {quote(TrialSite._meta.db_table)} "  # noqa: S608 - no input in the SQL
        f"({', '.join(quote(column) for column in SITE_COLUMNS)}) VALUES "
    )
    row_placeholder = "(" + ", ".join(["%s"] * width) + ")"
    with connection.cursor() as cursor:
        for start in range(0, len(rows), per_statement):
            chunk = rows[start : start + per_statement]
            cursor.execute(
                head + ", ".join([row_placeholder] * len(chunk)),
                [value for row in chunk for value in row],
            )


def _assign(
    trial: Trial, record: TrialRecord, serialized: SerializedRecord, source: str | None
) -> None:
    trial.brief_title = record.brief_title
    trial.official_title = record.official_title
    trial.acronym = record.acronym
    trial.overall_status = record.overall_status
    trial.phases = record.phases
    trial.study_type = record.study_type
    trial.conditions = record.conditions
    trial.condition_mesh_terms = record.condition_mesh_terms
    trial.keywords = record.keywords
    trial.interventions = record.interventions
    trial.intervention_mesh_terms = record.intervention_mesh_terms
    trial.arm_groups = record.arm_groups
    trial.brief_summary = record.brief_summary
    trial.detailed_description = record.detailed_description
    trial.lead_sponsor = record.lead_sponsor
    trial.start_date = record.start_date
    trial.completion_date = record.completion_date
    trial.last_update_posted = record.last_update_posted
    trial.eligibility_criteria = record.eligibility_criteria
    trial.minimum_age_value = record.minimum_age.value if record.minimum_age else None
    trial.minimum_age_unit = record.minimum_age.unit if record.minimum_age else ""
    trial.maximum_age_value = record.maximum_age.value if record.maximum_age else None
    trial.maximum_age_unit = record.maximum_age.unit if record.maximum_age else ""
    trial.sex = record.sex
    trial.healthy_volunteers = record.healthy_volunteers
    trial.raw = SerializedJSON(serialized.text)
    trial.source_hash = source or ""
    trial.content_hash = record.content_hash


def _changes(trial: Trial, record: TrialRecord) -> list[str]:
    changes = []
    if trial.eligibility_criteria != record.eligibility_criteria:
        changes.append("eligibility")
    if trial.overall_status != record.overall_status:
        changes.append("status")
    return changes or ["record"]


def _version(
    trial: Trial, record: TrialRecord, run: SyncRun, number: int, changes: list[str]
) -> TrialVersion:
    return TrialVersion(
        trial=trial,
        number=number,
        sync_run=run,
        last_update_posted=record.last_update_posted,
        overall_status=record.overall_status,
        eligibility_criteria=record.eligibility_criteria,
        content_hash=record.content_hash,
        changes=changes,
    )


# --- Syncing with the registry -------------------------------------------------------------


def default_client() -> CtgovClient:
    return CtgovClient(
        base_url=settings.CTGOV_BASE_URL,
        min_interval=settings.CTGOV_MIN_REQUEST_INTERVAL,
        connect_timeout=settings.CTGOV_CONNECT_TIMEOUT,
        read_timeout=settings.CTGOV_READ_TIMEOUT,
        max_attempts=settings.CTGOV_MAX_ATTEMPTS,
        contact=settings.CTGOV_CONTACT,
    )


def sync_query_params(query: str, since: datetime.date | None) -> dict[str, str]:
    """The API parameters of a sync: the configured query, narrowed to records updated since."""
    params = dict(parse_qsl(query, keep_blank_values=False))
    if since is not None:
        window = f"AREA[LastUpdatePostDate]RANGE[{since.isoformat()},MAX]"
        current = params.get("filter.advanced")
        params["filter.advanced"] = f"({current}) AND {window}" if current else window
    return params


def last_high_water_mark() -> datetime.date | None:
    """Where the next incremental run starts: the latest successful registry run's mark."""
    run = (
        SyncRun.objects.filter(
            status=SyncRun.Status.SUCCEEDED,
            mode__in=(SyncRun.Mode.FULL, SyncRun.Mode.INCREMENTAL),
            high_water_mark__isnull=False,
        )
        .order_by("-finished_at")
        .first()
    )
    return run.high_water_mark if run else None


def sync_trials(
    *,
    full: bool = False,
    since: datetime.date | None = None,
    query: str | None = None,
    client: CtgovClient | None = None,
    page_size: int | None = None,
    progress: ProgressCallback | None = None,
) -> SyncRun:
    """Bring the trials up to date with ClinicalTrials.gov.

    Incremental by default: only records updated on or after the last successful run's
    high-water mark (that day included). ``full`` lists everything the query matches and marks
    trials missing from the answer as removed. A run interrupted earlier with the same
    parameters is resumed from its last committed page. Raises SyncAlreadyRunning when
    another sync holds the lock; a registry failure ends the run as failed (not raised).
    """
    query = settings.CTGOV_SYNC_QUERY if query is None else query
    client = client or default_client()
    mode = SyncRun.Mode.FULL if full else SyncRun.Mode.INCREMENTAL
    with exclusive_lock(SYNC_LOCK) as held, bulk_allocation():
        if not held:
            raise SyncAlreadyRunning(_running_description())
        if since is None and not full:
            since = last_high_water_mark()
        previous = _resumable_run(mode, query, since)
        _close_dead_runs(resumed=previous)
        run = SyncRun.objects.create(
            mode=mode, query=query, since=since, source=client.base_url, resumed_from=previous
        )
        checkpoint = None
        if previous is not None:
            checkpoint = Checkpoint.of(previous)
            run.checkpoint = previous.checkpoint
            run.save(update_fields=["checkpoint"])
            logger.info(
                "Sync #%s resumes sync #%s at page %s",
                run.pk,
                previous.pk,
                checkpoint.page_number + 1 if checkpoint else 1,
            )
        params = sync_query_params(query, since)
        size = page_size or settings.CTGOV_PAGE_SIZE
        try:
            try:
                _import_pages(client, params, size, run, checkpoint, full, progress)
            except CtgovRequestRejected:
                if checkpoint is None:
                    raise
                # The saved page token is no longer accepted: redo the whole window instead.
                logger.warning("Sync #%s: checkpoint token refused; restarting the window", run.pk)
                _import_pages(client, params, size, run, None, full, progress)
        except CtgovError as exc:
            return _finish_failed(run, str(exc))
        if full:
            run.removed = _mark_removed(run)
        run.status = SyncRun.Status.SUCCEEDED
        run.finished_at = timezone.now()
        run.high_water_mark = _high_water_mark(run.checkpoint.get("high_water_mark"), since)
        run.save()
        logger.info("%s", run.summary())
        return run


def sync_selected_trials(nct_ids: Sequence[str], *, client: CtgovClient | None = None) -> SyncRun:
    """Fetch these trials' records again (``GET /studies/{nctId}``) and import them, whatever
    their update date: to redo one trial without waiting for the nightly run. A trial the
    registry does not answer for is an error of the run; the others are imported."""
    client = client or default_client()
    with exclusive_lock(SYNC_LOCK) as held:
        if not held:
            raise SyncAlreadyRunning(_running_description())
        run = SyncRun.objects.create(
            mode=SyncRun.Mode.SELECTED, query=" ".join(nct_ids), source=client.base_url
        )
        studies = []
        for nct_id in nct_ids:
            try:
                studies.append(client.get_study(nct_id))
            except CtgovError as exc:
                run.add_error(nct_id, str(exc))
        if studies:
            trials_upsert(studies=studies, run=run)
        run.pages = 0
        run.status = SyncRun.Status.SUCCEEDED if studies else SyncRun.Status.FAILED
        if not studies:
            run.message = "The registry returned none of the trials asked for."
        run.finished_at = timezone.now()
        run.save()
        logger.info("%s", run.summary())
        return run


def _import_pages(
    client: CtgovClient,
    params: dict[str, str],
    page_size: int,
    run: SyncRun,
    checkpoint: Checkpoint | None,
    listed: bool,
    progress: ProgressCallback | None,
) -> None:
    records_done = checkpoint.records if checkpoint else 0
    high_water = checkpoint.high_water_mark if checkpoint else None
    pages = client.iter_pages(
        params,
        page_size=page_size,
        page_token=checkpoint.page_token if checkpoint else None,
        first_page_number=checkpoint.page_number + 1 if checkpoint else 1,
    )
    for page in pages:
        if page.total_count is not None:
            run.total_count = page.total_count
        records_done += len(page.studies)
        high_water = _page_high_water(page, high_water)
        run.pages += 1
        trials_upsert(
            studies=page.studies,
            run=run,
            listed=listed,
            checkpoint={
                "page_token": page.next_page_token,
                "page_number": page.number,
                "records": records_done,
                "high_water_mark": high_water,
            },
            describe=functools.partial(_page_position, page.number),
        )
        if progress:
            progress(run)


def _page_position(page_number: int, index: int) -> str:
    return f"page {page_number}, record {index + 1}"


def _page_high_water(page: Page, current: str | None) -> str | None:
    dates = [current] if current else []
    for study in page.studies:
        try:
            date = study["protocolSection"]["statusModule"]["lastUpdatePostDateStruct"]["date"]
        except (KeyError, TypeError):
            continue
        if isinstance(date, str) and len(date) == 10:
            dates.append(date)
    return max(dates) if dates else None


def _high_water_mark(seen: str | None, since: datetime.date | None) -> datetime.date | None:
    candidates = [since] if since else []
    if seen:
        candidates.append(datetime.date.fromisoformat(seen))
    return max(candidates) if candidates else None


def _resumable_run(mode: str, query: str, since: datetime.date | None) -> SyncRun | None:
    """The latest run, if it stopped part-way with these parameters and a saved position.

    It was killed (still "running", but the lock was free) or it failed; either way its pages
    up to the checkpoint are committed.
    """
    latest = SyncRun.objects.exclude(mode=SyncRun.Mode.FILE).order_by("-started_at").first()
    if latest is None or latest.status not in (SyncRun.Status.RUNNING, SyncRun.Status.FAILED):
        return None
    if latest.mode != mode or latest.query != query or latest.since != since:
        return None
    if Checkpoint.of(latest) is None:
        return None
    age = timezone.now() - latest.started_at
    if age > datetime.timedelta(hours=settings.CTGOV_RESUME_WITHIN_HOURS):
        return None
    return latest


def _close_dead_runs(*, resumed: SyncRun | None) -> None:
    """Runs still marked running while we hold the lock belong to a process that died."""
    dead = SyncRun.objects.filter(status=SyncRun.Status.RUNNING)
    now = timezone.now()
    if resumed is not None:
        dead.filter(pk=resumed.pk).update(status=SyncRun.Status.INTERRUPTED, finished_at=now)
        dead = dead.exclude(pk=resumed.pk)
    dead.update(
        status=SyncRun.Status.FAILED,
        finished_at=now,
        message="stopped without finishing (the process ended)",
    )


def _run_chain(run: SyncRun) -> list[int]:
    chain = [run.pk]
    current = run.resumed_from_id
    while current is not None and current not in chain:
        chain.append(current)
        current = SyncRun.objects.filter(pk=current).values_list("resumed_from_id", flat=True)[0]
    return chain


def _mark_removed(run: SyncRun) -> int:
    """Trials the completed full listing no longer contains: kept, but flagged as removed."""
    chain = _run_chain(run)
    listed = SyncRunListing.objects.filter(run_id__in=chain)
    if not listed.exists():
        # An empty answer is far likelier a registry glitch than every trial withdrawn at once.
        if Trial.objects.filter(removed_from_registry=False).exists():
            run.add_error("listing", "the full listing was empty; no trial was marked removed")
        return 0
    with transaction.atomic():
        removed = (
            Trial.objects.filter(removed_from_registry=False)
            .exclude(nct_id__in=listed.values("nct_id"))
            .update(
                removed_from_registry=True,
                removed_at=timezone.now(),
                needs_evaluation=True,
                matching_inputs_at=timezone.now(),
                updated_at=timezone.now(),
            )
        )
        listed.delete()
    return removed


def _finish_failed(run: SyncRun, message: str) -> SyncRun:
    run.refresh_from_db()
    run.status = SyncRun.Status.FAILED
    run.finished_at = timezone.now()
    run.message = message
    run.save()
    logger.error("Sync #%s failed: %s", run.pk, message)
    return run


def _running_description() -> str:
    running = SyncRun.objects.filter(status=SyncRun.Status.RUNNING).order_by("-started_at").first()
    if running is None:
        return "another sync is running"
    return f"sync #{running.pk} ({running.mode}, started {running.started_at:%Y-%m-%d %H:%M} UTC)"


# --- Importing files -----------------------------------------------------------------------


def import_trial_files(
    *, paths: Iterable[Path], progress: ProgressCallback | None = None
) -> SyncRun:
    """Import study records from files (see ``trials.ctgov.files``) as one run.

    A file that cannot be read is reported in the run and the others are still imported.
    Holds the sync lock, so a file import never interleaves with a registry sync.
    """
    paths = list(paths)
    with exclusive_lock(SYNC_LOCK) as held, bulk_allocation():
        if not held:
            raise SyncAlreadyRunning(_running_description())
        _close_dead_runs(resumed=None)
        run = SyncRun.objects.create(
            mode=SyncRun.Mode.FILE, source="\n".join(str(path) for path in paths)
        )
        # Records held exactly as a file gave them before are recognised without decoding.
        known_sources = set(
            Trial.objects.filter(removed_from_registry=False)
            .exclude(source_hash="")
            .values_list("source_hash", flat=True)
        )
        for path in paths:
            try:
                files = record_files(path)
            except RecordFileError as exc:
                run.add_error(str(path), str(exc))
                continue
            for file in files:
                _import_file(file, run, progress, known_sources)
        run.status = SyncRun.Status.SUCCEEDED
        run.finished_at = timezone.now()
        run.save()
        return run


def _import_file(
    path: Path, run: SyncRun, progress: ProgressCallback | None, known_sources: set[str]
) -> None:
    batch: list[FileRecord] = []

    def flush() -> None:
        if not batch:
            return
        run.pages += 1
        positions = [item.index for item in batch]
        trials_upsert(
            studies=[item.study for item in batch],
            source_hashes=[item.source_hash for item in batch],
            run=run,
            describe=lambda index: f"{path.name}, record {positions[index] + 1}",
        )
        batch.clear()
        if progress:
            progress(run)

    try:
        for item in iter_file_studies(path, known=known_sources.__contains__):
            if item.study is None:  # byte for byte a record we hold: nothing to decode
                run.fetched += 1
                run.unchanged += 1
                continue
            batch.append(item)
            if len(batch) >= FILE_BATCH_SIZE:
                flush()
    except RecordFileError as exc:
        flush()
        run.add_error(str(path), str(exc))
        run.save()
        return
    flush()


def bundled_snapshot_paths() -> list[Path]:
    """The real records shipped with the project, imported when the registry is out of reach."""
    base = Path(__file__).resolve().parent / "data" / "ctgov"
    return [base / "v2", base / "v2-partial"]


def locate_sites(batch_size: int = 2000) -> int:
    """Coordinates for the sites the registry gave none, from their postal code (US) or city,
    offline (``trials.eligibility.geo``); a country alone is too coarse for a distance and is
    not used. Returns how many sites were located. Each site is tried once per record version
    (a changed record's sites are inserted again)."""
    from trials.eligibility.geo import CITY, POSTAL_CODE, locate

    located = 0
    pending = TrialSite.objects.filter(latitude__isnull=True, located_from="")
    while True:
        sites = list(pending.order_by("pk")[:batch_size])
        if not sites:
            return located
        for site in sites:
            place = locate(country=site.country, postal_code=site.zip, city=site.city)
            if place is not None and place.precision in (POSTAL_CODE, CITY):
                site.latitude, site.longitude = place.latitude, place.longitude
                site.located_from = place.precision
                located += 1
            else:
                site.located_from = "none"
        TrialSite.objects.bulk_update(sites, ["latitude", "longitude", "located_from"])
