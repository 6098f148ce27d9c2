"""Writes to patient profiles: one upsert that every source (FHIR, profile JSON, web form,
API, admin) goes through, and the file import built on it.

A profile is written in one transaction: the patient, then its facts from that source,
compared with what is held (created, updated, deleted only where they differ, so the audit
trail shows real changes). Facts from other sources are left alone: a coordinator's entry
survives a re-import of the hospital's bundle.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from auditlog.context import disable_auditlog
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from config import input_limits
from config.input_limits import stored_text_flaws, visible_text
from patients import models
from patients.audit import ChangeLog
from patients.fhir import BundleError, read_bundle
from patients.profile import FactData, Problem, ProfileData
from patients.profile_json import ProfileFormatError, read_profile_json
from trials.eligibility.geo import locate, normalize_country

logger = logging.getLogger(__name__)

FACT_MODELS: dict[str, type[models.Fact]] = {m.__name__: m for m in models.FACT_MODELS}


class ProfileRejected(ValueError):
    """The profile cannot be written at all (e.g. no site); the message says why."""


@dataclass
class UpsertResult:
    patient: models.Patient | None
    status: str  # created, updated, unchanged, stale, rejected
    problems: list[Problem] = field(default_factory=list)
    facts_created: int = 0
    facts_updated: int = 0
    facts_deleted: int = 0


def default_site() -> models.Site:
    """The site profiles go to when their source names none (single-site installations)."""
    site, _ = models.Site.objects.get_or_create(code="default", defaults={"name": "Default site"})
    return site


def patient_upsert(
    profile: ProfileData,
    *,
    source: str,
    site: models.Site | None = None,
    actor: Any = None,
) -> UpsertResult:
    """Create or update the patient and the facts ``profile`` carries from ``source``.

    The same document twice changes nothing (its content hash is remembered); a document older
    than the one the patient was last updated from is refused as stale. Facts that fail
    validation are reported and left out; the rest of the profile is written.
    """
    site = site or _site_for(profile)
    problems = list(profile.problems)
    changes = ChangeLog(actor)
    with transaction.atomic(), disable_auditlog():
        patient = _held_patient(site, profile)
        if patient is not None and source in IMPORTED_BY_MRN:
            _refuse_identity_change(patient, profile)
        if patient is not None and profile.content_hash:
            if patient.bundle_hash == profile.content_hash:
                return UpsertResult(patient, "unchanged", problems)
            held = patient.bundle_timestamp
            if held and profile.timestamp and profile.timestamp < held:
                problems.append(
                    Problem(
                        profile.source_reference or profile.external_id,
                        f"older ({profile.timestamp:%Y-%m-%d %H:%M}) than the profile held "
                        f"({held:%Y-%m-%d %H:%M}); not imported",
                    )
                )
                return UpsertResult(patient, "stale", problems)
        created = patient is None
        before = copy.copy(patient)
        if patient is None:
            patient = models.Patient(
                site=site,
                identifier_system=profile.identifier_system,
                external_id=profile.external_id,
                source=source,
            )
        _assign_patient(patient, profile, problems)
        _refuse_unstorable(patient)
        patient.save()
        result = UpsertResult(patient, "created" if created else "updated", problems)
        _sync_facts(patient, profile.facts, source, actor, result, changes)
        moved = before is not None and any(
            getattr(before, name) != getattr(patient, name) for name in models.MATCHED_FIELDS
        )
        if result.facts_created or result.facts_updated or result.facts_deleted or created or moved:
            patient.facts_changed_at = timezone.now()
        patient.updated_at = timezone.now()
        patient.bundle_hash = profile.content_hash
        if profile.timestamp:
            patient.bundle_timestamp = profile.timestamp
        patient.save()
        if before is None:
            changes.created(patient)
        else:
            changes.updated(before, patient)
        changes.save()
    return result


def _site_for(profile: ProfileData) -> models.Site:
    if not profile.site_code:
        return default_site()
    site = models.Site.objects.filter(code=profile.site_code).first()
    if site is None:
        raise ProfileRejected(f"unknown site {profile.site_code!r}")
    return site


def _assign_patient(patient: models.Patient, profile: ProfileData, problems: list[Problem]) -> None:
    where = profile.source_reference or profile.external_id
    patient.sex = profile.sex
    patient.birth_date = profile.birth_date
    if profile.birth_date and profile.birth_date > timezone.localdate():
        problems.append(Problem(where, "birth date in the future; left empty"))
        patient.birth_date = None
    patient.postal_code = visible_text(profile.postal_code)[:20]
    patient.city = visible_text(profile.city)[:120]
    country = normalize_country(profile.country) if profile.country else None
    if profile.country and country is None:
        problems.append(Problem(where, f"country {profile.country!r} not recognised", False))
    patient.country = country or ""
    locate_patient(patient)
    # Names and contact details are shown to coordinators and in emails: without the
    # invisible characters that could make them read as something else.
    for name in ("given_name", "family_name", "email", "phone", "preferred_contact_time"):
        value = visible_text(getattr(profile, name) or "", spelling=name != "email")
        if value:
            setattr(patient, name, value)
    if profile.contact_consent_at:
        patient.contact_consent_at = profile.contact_consent_at
    if profile.prior_anticancer_therapy is not None:
        patient.prior_anticancer_therapy = profile.prior_anticancer_therapy
    if profile.deceased is not None:
        patient.deceased = profile.deceased
        patient.deceased_on = profile.deceased_on if profile.deceased else None
    patient.source_reference = profile.source_reference[:300]


# Sources that find the patient by MRN alone: what they send may be another person's. (An API
# update names the stored patient by id, and is the caller's deliberate change.)
IMPORTED_BY_MRN = frozenset({models.Source.FHIR, models.Source.JSON})


def _held_patient(site: models.Site, profile: ProfileData) -> models.Patient | None:
    """The stored patient ``profile`` is about (locked), or None.

    By site, identifier system and MRN. A profile with a system also finds a patient stored
    without one (before systems were kept, or from a source that has none), which then takes
    the system; a profile without one (profile JSON, the API) finds the one patient with that
    MRN at the site, and is refused when two systems hold it.
    """
    rows = models.Patient.objects.select_for_update().filter(
        site=site, external_id=profile.external_id
    )
    exact = rows.filter(identifier_system=profile.identifier_system).first()
    if exact is not None:
        return exact
    if profile.identifier_system:
        legacy = rows.filter(identifier_system="").first()
        if legacy is not None:
            legacy.identifier_system = profile.identifier_system
        return legacy
    held = list(rows[:2])
    if len(held) > 1:
        raise ProfileRejected(
            f"MRN {profile.external_id} is held under {len(held)} identifier systems at this "
            "site: the document must name its system (a FHIR Identifier.system)"
        )
    return held[0] if held else None


def locate_patient(patient: models.Patient) -> None:
    """The patient's coordinates from their postal code, city and country (offline), or none:
    every write of a place goes through here, so that distances never use a stale point."""
    place = locate(country=patient.country, postal_code=patient.postal_code, city=patient.city)
    patient.latitude = place.latitude if place else None
    patient.longitude = place.longitude if place else None
    patient.location_precision = place.precision if place else ""


def _refuse_identity_change(patient: models.Patient, profile: ProfileData) -> None:
    """A document that gives the patient held under this MRN another birth date or sex is most
    likely another person's (a reused or mistyped MRN): refused with a message, never applied.
    A value missing on either side is no contradiction."""
    changed = []
    if patient.birth_date and profile.birth_date and patient.birth_date != profile.birth_date:
        changed.append("birth date")
    if patient.sex and profile.sex and patient.sex != profile.sex:
        changed.append("sex")
    if changed:
        raise ProfileRejected(
            f"the patient held under MRN {profile.external_id} has another "
            f"{' and '.join(changed)}; a document for another person, or a correction to "
            "make by hand in the workspace. Nothing was changed."
        )


def _refuse_unstorable(patient: models.Patient) -> None:
    """The profile is refused, with the field and the reason, when the patient's own fields
    cannot be stored as they are (an MRN too long, text the database cannot hold)."""
    problems = {name: [flaw] for name, flaw in stored_text_flaws(patient).items()}
    try:
        patient.clean_fields(exclude=["site"])
    except ValidationError as exc:
        for name, messages in exc.message_dict.items():
            problems.setdefault(name, []).extend(messages)
    if problems:
        label = {f.name: str(f.verbose_name) for f in patient._meta.concrete_fields}
        raise ProfileRejected(
            "; ".join(
                f"{label.get(name, name)}: {' '.join(messages)}"
                for name, messages in problems.items()
            )
        )


def _sync_facts(
    patient: models.Patient,
    facts: list[FactData],
    source: str,
    actor: Any,
    result: UpsertResult,
    changes: ChangeLog,
) -> None:
    """Bring the patient's facts from ``source`` in line with ``facts``: new ones inserted in
    bulk, changed ones updated in place, vanished ones deleted, each change in the log."""
    wanted: dict[tuple[str, str], models.Fact] = {}
    for fact in facts:
        instance = _valid_instance(patient, fact, source, actor, result)
        if instance is not None:
            wanted[(fact.model, _key(fact))] = instance
    models_with_facts = {name for name, _ in wanted}
    for name, model in FACT_MODELS.items():
        if result.status == "created" and name not in models_with_facts:
            continue  # a new patient holds nothing yet
        manager: Any = model._default_manager
        rows = manager.filter(patient=patient, source=source)
        held = {
            (name, row.source_key if name != "PrimaryCancer" else "primary"): row for row in rows
        }
        for key, row in held.items():
            replacement = wanted.pop(key, None)
            if replacement is None:
                changes.deleted(row)
                row.delete()
                result.facts_deleted += 1
            elif _differs(row, replacement):
                replacement.pk = row.pk
                replacement.recorded_at = row.recorded_at
                replacement.save()
                changes.updated(row, replacement)
                result.facts_updated += 1
    if any(name == "PrimaryCancer" for name, _ in wanted):
        # One primary cancer per patient: another source's entry gives way to the import.
        for row in models.PrimaryCancer.objects.filter(patient=patient):
            changes.deleted(row)
            row.delete()
    by_model: dict[type[models.Fact], list[models.Fact]] = {}
    for instance in wanted.values():
        by_model.setdefault(type(instance), []).append(instance)
    for model, instances in by_model.items():
        model._default_manager.bulk_create(instances)
        for instance in instances:
            changes.created(instance)
        result.facts_created += len(instances)


def _key(fact: FactData) -> str:
    return "primary" if fact.model == "PrimaryCancer" else fact.key[:300]


def _valid_instance(
    patient: models.Patient, fact: FactData, source: str, actor: Any, result: UpsertResult
) -> models.Fact | None:
    model: Any = FACT_MODELS.get(fact.model)
    if model is None:
        result.problems.append(Problem(fact.key, f"unknown kind of fact {fact.model!r}"))
        return None
    try:
        instance = model(
            patient=patient,
            observed_on=fact.observed_on,
            source=source,
            source_key=fact.key[:300],
            source_reference=(fact.reference or fact.key)[:300],
            recorded_by=actor,
            **fact.values,
        )
        instance.full_clean(exclude=["patient", "recorded_by"])
        flaws = stored_text_flaws(instance)
        if flaws:
            raise ValidationError({name: [flaw] for name, flaw in flaws.items()})
    except ValidationError as exc:
        result.problems.append(Problem(fact.key, _validation_text(exc)))
        return None
    except (TypeError, ValueError) as exc:
        result.problems.append(Problem(fact.key, f"not a valid {fact.model}: {exc}"))
        return None
    return instance


def _validation_text(exc: ValidationError) -> str:
    if hasattr(exc, "message_dict"):
        return "; ".join(
            f"{name}: {' '.join(messages)}" if name != "__all__" else " ".join(messages)
            for name, messages in exc.message_dict.items()
        )
    return " ".join(exc.messages)


# A fact read again unchanged from a newer document keeps the reference to where it was first
# read: only a change of content is an update.
COMPARED_EXCLUDE = ("id", "patient", "recorded_by", "recorded_at", "source_reference")


def _differs(held: models.Fact, replacement: models.Fact) -> bool:
    for model_field in held._meta.concrete_fields:
        if model_field.name in COMPARED_EXCLUDE:
            continue
        if getattr(held, model_field.attname) != getattr(replacement, model_field.attname):
            return True
    return False


# --- File import ---------------------------------------------------------------------------


@dataclass
class ImportReport:
    files: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    stale: int = 0
    rejected: int = 0
    problems: list[Problem] = field(default_factory=list)
    changed_patient_ids: list[int] = field(default_factory=list)  # created or updated

    def summary(self) -> str:
        return (
            f"{self.files} file(s): {self.created} created, {self.updated} updated, "
            f"{self.unchanged} unchanged, {self.stale} stale, {self.rejected} rejected, "
            f"{len([p for p in self.problems if p.skipped])} item(s) left out"
        )


def profile_files(paths: Iterable[Path]) -> Iterator[Path | Problem]:
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.rglob("*.json") if p.is_file())
            if not found:
                yield Problem(str(path), "no .json files in this folder")
            yield from found
        elif path.is_file():
            yield path
        else:
            yield Problem(str(path), "no such file or folder")


def read_profile_document(document: Any, *, origin: str) -> tuple[ProfileData, str]:
    """A FHIR Bundle or a profile JSON document; returns the profile and its source kind."""
    if isinstance(document, dict) and document.get("resourceType") == "Bundle":
        return read_bundle(document, origin=origin), models.Source.FHIR
    if isinstance(document, dict) and "external_id" in document:
        return read_profile_json(document, origin=origin), models.Source.JSON
    raise BundleError("neither a FHIR Bundle nor a patient profile (no external_id)")


def import_patient_files(
    paths: Iterable[Path],
    *,
    site: models.Site | None = None,
    progress: Callable[[ImportReport], None] | None = None,
) -> ImportReport:
    """Import FHIR bundles and profile JSON files; one bad file never stops the others."""
    report = ImportReport()
    for item in profile_files(paths):
        if isinstance(item, Problem):
            report.problems.append(item)
            report.rejected += 1
            continue
        report.files += 1
        import_patient_document_file(item, report, site=site)
        if progress:
            progress(report)
    return report


def import_patient_document_file(
    path: Path, report: ImportReport, *, site: models.Site | None = None
) -> UpsertResult | None:
    try:
        document = input_limits.loads(path.read_bytes())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        report.problems.append(Problem(path.name, f"not readable JSON ({_short(exc)})"))
        report.rejected += 1
        return None
    try:
        profile, source = read_profile_document(document, origin=path.name)
        result = patient_upsert(profile, source=source, site=site)
    except (BundleError, ProfileFormatError, ProfileRejected) as exc:
        report.problems.append(Problem(path.name, str(exc)))
        report.rejected += 1
        return None
    setattr(report, result.status, getattr(report, result.status) + 1)
    report.problems.extend(result.problems)
    if result.status in ("created", "updated") and result.patient is not None:
        report.changed_patient_ids.append(result.patient.pk)
    return result


def _short(exc: Exception) -> str:
    return (str(exc).strip() or type(exc).__name__)[:200]
