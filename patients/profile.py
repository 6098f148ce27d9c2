"""A patient profile as plain data, between a source (FHIR bundle, profile JSON, web form,
API) and the database. Every reader produces one; ``patients.services.patient_upsert``
writes it."""

from __future__ import annotations

import datetime
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import orjson


def document_hash(document: Any) -> str:
    """SHA-256 of a JSON document in canonical form (sorted keys): equal content, equal hash."""
    try:
        encoded = orjson.dumps(document, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # integers beyond 64 bits, which orjson refuses and json writes
        encoded = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(encoded).hexdigest()


@dataclass
class FactData:
    """One clinical fact: the model it becomes, its field values, and where it was read.

    ``key`` identifies the fact within its source (a FHIR resource's fullUrl, a JSON
    position), so importing the same source again updates the same row.
    """

    model: str  # "PrimaryCancer", "LabResult", ... (patients.models)
    values: dict[str, Any]
    key: str
    observed_on: datetime.date | None = None
    reference: str = ""  # for people: "EX1.json, Observation urn:uuid:…"


@dataclass(frozen=True)
class Problem:
    """Something a reader could not use, said plainly: where, and why."""

    where: str  # "EX1.json", "EX1.json Observation urn:uuid:…"
    message: str
    skipped: bool = True  # False: only a note, nothing was left out

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass
class ProfileData:
    external_id: str
    # The system (namespace) of the identifier ``external_id`` is a value of: two systems'
    # equal values are two patients. Empty for sources that have none (profile JSON, the form).
    identifier_system: str = ""
    site_code: str = ""
    sex: str = ""
    birth_date: datetime.date | None = None
    postal_code: str = ""
    city: str = ""
    country: str = ""
    given_name: str = ""
    family_name: str = ""
    email: str = ""
    phone: str = ""
    preferred_contact_time: str = ""
    contact_consent_at: datetime.datetime | None = None
    prior_anticancer_therapy: bool | None = None
    deceased: bool | None = None  # None: the source does not say
    deceased_on: datetime.date | None = None
    facts: list[FactData] = field(default_factory=list)
    source_reference: str = ""  # the bundle or document as a whole
    content_hash: str = ""  # of the source document: the same document twice changes nothing
    timestamp: datetime.datetime | None = None  # when the source says it was produced
    problems: list[Problem] = field(default_factory=list)
