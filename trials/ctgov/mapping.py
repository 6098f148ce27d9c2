"""A ClinicalTrials.gov API v2 study record turned into plain data (no ORM).

Real records leave out whole modules and fields all the time: what is absent maps to an empty
value, never to an error. Only a record that cannot be identified (no ``protocolSection``, no
NCT id) or whose parts have the wrong JSON types is malformed.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, NamedTuple

import orjson

from config.input_limits import json_flaw

NCT_ID = re.compile(r"^NCT\d{8}$")
AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(year|month|week|day|hour|minute)s?\s*$", re.IGNORECASE)
PARTIAL_DATE = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?$")
DAYS_PER_UNIT = {
    "year": Decimal("365.25"),
    "month": Decimal("30.4375"),
    "week": Decimal(7),
    "day": Decimal(1),
    "hour": Decimal(1) / 24,
    "minute": Decimal(1) / 1440,
}


class MalformedRecord(ValueError):
    """The record cannot be imported; the message says why, for the sync report."""


@dataclass(frozen=True)
class Age:
    value: Decimal
    unit: str  # "years", "months", ...

    @property
    def years(self) -> Decimal:
        days = self.value * DAYS_PER_UNIT[self.unit.removesuffix("s")]
        return (days / DAYS_PER_UNIT["year"]).quantize(Decimal("0.001"))


class SiteRecord(NamedTuple):
    facility: str = ""
    status: str = ""
    city: str = ""
    state: str = ""
    zip: str = ""
    country: str = ""
    latitude: float | None = None
    longitude: float | None = None


@dataclass(frozen=True)
class TrialRecord:
    nct_id: str
    brief_title: str = ""
    official_title: str = ""
    acronym: str = ""
    overall_status: str = ""
    phases: list[str] = field(default_factory=list)
    study_type: str = ""
    conditions: list[str] = field(default_factory=list)
    condition_mesh_terms: list[str] = field(default_factory=list)
    keywords: list[str] = field(default_factory=list)
    interventions: list[dict[str, Any]] = field(default_factory=list)
    intervention_mesh_terms: list[str] = field(default_factory=list)
    arm_groups: list[dict[str, Any]] = field(default_factory=list)
    brief_summary: str = ""
    detailed_description: str = ""
    lead_sponsor: str = ""
    start_date: str = ""
    completion_date: str = ""
    last_update_posted: datetime.date | None = None
    eligibility_criteria: str = ""
    minimum_age: Age | None = None
    maximum_age: Age | None = None
    sex: str = ""
    healthy_volunteers: bool | None = None
    sites: list[SiteRecord] = field(default_factory=list)
    content_hash: str = ""


@dataclass(frozen=True)
class SerializedRecord:
    text: str  # the record as compact JSON, keys in the order received
    digest: str  # its content hash


def serialize_record(record: dict[str, Any]) -> SerializedRecord:
    """The record as JSON text and its content hash (SHA-256), computed from one encoding.

    ``derivedSection.miscInfoModule.versionHolder`` changes every day for every record, so it
    is left out of the hash: an untouched study hashes the same from one night to the next.
    """
    try:
        encoded = orjson.dumps(record)
    except TypeError:
        # What orjson refuses (integers beyond 64 bits, unpaired surrogates, nesting past 255
        # levels) json still writes, as ASCII with escapes: the text always encodes, and the
        # mapping then refuses what the database cannot hold, naming it.
        try:
            encoded = json.dumps(record, separators=(",", ":")).encode()
        except RecursionError:
            raise MalformedRecord("nested too deeply to store") from None
    digest = hashlib.sha256(_without_version_holder(encoded)).hexdigest()
    return SerializedRecord(encoded.decode("utf-8"), digest)


def _without_version_holder(encoded: bytes) -> bytes:
    start = encoded.find(b'"versionHolder":"')
    if start == -1:
        return encoded
    end = encoded.find(b'"', start + 17)
    return encoded[:start] + encoded[end + 1 :] if end != -1 else encoded


def content_hash(record: dict[str, Any]) -> str:
    """SHA-256 of the record's content (see ``serialize_record``)."""
    return serialize_record(record).digest


def map_study(record: Any, *, digest: str | None = None) -> TrialRecord:
    """Map one API v2 study object; raises MalformedRecord when it cannot be imported.

    ``digest`` is the record's ``content_hash`` when the caller already computed it.
    """
    if not isinstance(record, dict):
        raise MalformedRecord(f"a study must be a JSON object, not {type(record).__name__}")
    protocol = record.get("protocolSection")
    if not isinstance(protocol, dict):
        raise MalformedRecord("no protocolSection")
    reader = _Reader(protocol)
    nct_id = reader.text("identificationModule", "nctId")
    if not NCT_ID.match(nct_id):
        raise MalformedRecord(f"no valid NCT id (got {nct_id[:20]!r})" if nct_id else "no NCT id")
    derived = _Reader(record.get("derivedSection") or {}, strict=False)
    eligibility = ("eligibilityModule",)
    try:
        mapped = TrialRecord(
            nct_id=nct_id,
            brief_title=reader.text("identificationModule", "briefTitle"),
            official_title=reader.text("identificationModule", "officialTitle"),
            acronym=reader.text("identificationModule", "acronym"),
            overall_status=reader.text("statusModule", "overallStatus"),
            phases=reader.texts("designModule", "phases"),
            study_type=reader.text("designModule", "studyType"),
            conditions=reader.texts("conditionsModule", "conditions"),
            condition_mesh_terms=derived.terms("conditionBrowseModule"),
            keywords=reader.texts("conditionsModule", "keywords"),
            interventions=[
                _intervention(item)
                for item in reader.objects("armsInterventionsModule", "interventions")
            ],
            intervention_mesh_terms=derived.terms("interventionBrowseModule"),
            arm_groups=[
                _arm_group(item) for item in reader.objects("armsInterventionsModule", "armGroups")
            ],
            brief_summary=reader.text("descriptionModule", "briefSummary"),
            detailed_description=reader.text("descriptionModule", "detailedDescription"),
            lead_sponsor=reader.text("sponsorCollaboratorsModule", "leadSponsor", "name"),
            start_date=_partial_date(reader.text("statusModule", "startDateStruct", "date")),
            completion_date=_partial_date(
                reader.text("statusModule", "completionDateStruct", "date")
            ),
            last_update_posted=_date(
                reader.text("statusModule", "lastUpdatePostDateStruct", "date")
            ),
            eligibility_criteria=reader.text(*eligibility, "eligibilityCriteria"),
            minimum_age=_bounded_age(reader.text(*eligibility, "minimumAge"), "minimumAge"),
            maximum_age=_bounded_age(reader.text(*eligibility, "maximumAge"), "maximumAge"),
            sex=reader.text(*eligibility, "sex"),
            healthy_volunteers=reader.boolean(*eligibility, "healthyVolunteers"),
            sites=[_site(item) for item in reader.objects("contactsLocationsModule", "locations")],
            content_hash=digest or content_hash(record),
        )
    except _WrongType as exc:
        raise MalformedRecord(f"{nct_id}: {exc}") from None
    # What the typed reads above let through: text the database cannot hold, a non-finite
    # number or absurd nesting anywhere in the record (it is stored whole, as JSON).
    flaw = json_flaw(record)
    if flaw:
        raise MalformedRecord(f"{nct_id}: {flaw}")
    return mapped


def parse_age(text: str) -> Age | None:
    """``"18 Years"`` -> Age(18, "years"); ``""`` or ``"N/A"`` -> None."""
    match = AGE.match(text)
    if not match:
        return None
    return Age(Decimal(match.group(1)), match.group(2).lower() + "s")


# Registries write "200 Years" for "no upper limit": ages up to here are kept as given; a
# value must also fit the model's field (7 digits, 2 decimals).
MAX_AGE_YEARS = Decimal(999)
MAX_AGE_VALUE = Decimal("99999.99")


def _bounded_age(text: str, name: str) -> Age | None:
    """An eligibility age within what a person can be; beyond it the record is refused,
    never stored (a value over the field's bounds breaks every later read of the table)."""
    age = parse_age(text)
    if age is not None and (age.value > MAX_AGE_VALUE or age.years > MAX_AGE_YEARS):
        raise _WrongType(f"{name} {text[:20]!r} is not a person's age")
    return age


def _partial_date(text: str) -> str:
    """Registry dates may be partial (``2023``, ``2023-04``): kept as given when well-formed."""
    return text if PARTIAL_DATE.match(text) else ""


def _date(text: str) -> datetime.date | None:
    try:
        return datetime.date.fromisoformat(text) if text else None
    except ValueError:
        return None


class _WrongType(Exception):
    pass


class _Reader:
    """Typed access to nested optional fields: absent is empty, a wrong type is an error."""

    def __init__(self, root: dict[str, Any], *, strict: bool = True) -> None:
        self.root = root
        self.strict = strict

    def _get(self, path: tuple[str, ...]) -> Any:
        node: Any = self.root
        for depth, key in enumerate(path):
            if node is None:
                return None
            if not isinstance(node, dict):
                if self.strict:
                    raise _WrongType(f"{'.'.join(path[:depth])} should be an object")
                return None
            node = node.get(key)
        return node

    def text(self, *path: str) -> str:
        value = self._get(path)
        if value is None:
            return ""
        if isinstance(value, str):
            return value.strip()
        if self.strict:
            raise _WrongType(f"{'.'.join(path)} should be text, not {type(value).__name__}")
        return ""

    def texts(self, *path: str) -> list[str]:
        value = self._get(path)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            if self.strict:
                raise _WrongType(f"{'.'.join(path)} should be a list of text")
            return []
        return [item.strip() for item in value if item.strip()]

    def objects(self, *path: str) -> list[dict[str, Any]]:
        value = self._get(path)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            raise _WrongType(f"{'.'.join(path)} should be a list of objects")
        return value

    def boolean(self, *path: str) -> bool | None:
        value = self._get(path)
        if value is None or isinstance(value, bool):
            return value
        raise _WrongType(f"{'.'.join(path)} should be true or false")

    def terms(self, module: str) -> list[str]:
        """MeSH terms of a browse module (``meshes[].term``), in order, without repeats."""
        meshes = self._get((module, "meshes"))
        if not isinstance(meshes, list):
            return []
        terms = [m.get("term") for m in meshes if isinstance(m, dict)]
        return list(dict.fromkeys(t for t in terms if isinstance(t, str) and t))


def _text(item: dict[str, Any], key: str) -> str:
    value = item.get(key)
    return value.strip() if isinstance(value, str) else ""


def _strings(value: Any) -> list[str]:
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, str)]


def _intervention(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": _text(item, "type"),
        "name": _text(item, "name"),
        "description": _text(item, "description"),
        "other_names": _strings(item.get("otherNames")),
        "arm_group_labels": _strings(item.get("armGroupLabels")),
    }


def _arm_group(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "label": _text(item, "label"),
        "type": _text(item, "type"),
        "description": _text(item, "description"),
        "intervention_names": _strings(item.get("interventionNames")),
    }


def _coordinate(value: Any, name: str, bound: float) -> float | None:
    """A geoPoint coordinate; a number that is no coordinate (non-finite, beyond +/-``bound``)
    refuses the record: stored, it would break every distance computed from it."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number) or abs(number) > bound:
        raise _WrongType(f"geoPoint {name} {str(value)[:20]} is not a coordinate")
    return number


def _site(item: dict[str, Any]) -> SiteRecord:
    geo = item.get("geoPoint")
    if not isinstance(geo, dict):
        geo = {}
    return SiteRecord(
        facility=_text(item, "facility"),
        status=_text(item, "status"),
        city=_text(item, "city"),
        state=_text(item, "state"),
        zip=_text(item, "zip"),
        country=_text(item, "country"),
        latitude=_coordinate(geo.get("lat"), "lat", 90),
        longitude=_coordinate(geo.get("lon"), "lon", 180),
    )
