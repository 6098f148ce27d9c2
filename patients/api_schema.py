"""The patient-data documents of the REST API as named OpenAPI components.

The API's patient bodies are not DRF serializers but the project's profile document (its JSON
Schema is generated from the models by ``patients.profile_json.profile_schema``) and the
matcher's result documents. This module states them once, as OpenAPI 3.1 schemas (JSON Schema
2020-12, so the profile schema is used as it is), for ``config.api_schema`` to put under
``components/schemas``; the views refer to them by name (``ref("PatientProfile")``).
"""

from __future__ import annotations

import copy
from typing import Any

from patients.models import Match, Review
from patients.profile_json import profile_schema

NULLABLE_STRING = {"type": ["string", "null"]}
NULLABLE_NUMBER = {"type": ["number", "null"]}
STRINGS = {"type": "array", "items": {"type": "string"}}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _profile() -> dict[str, Any]:
    schema = copy.deepcopy(profile_schema())
    schema.pop("$schema", None)
    schema.pop("$id", None)
    return schema


def _stored_profile() -> dict[str, Any]:
    """A profile as the API returns it: the document plus its id and, after a write, what
    happened and the problems found."""
    schema = _profile()
    schema["title"] = "Stored patient profile"
    schema["description"] = (
        "A patient profile as stored, with its id; after a write also `status` and `problems`."
    )
    schema["required"] = ["id", "external_id"]
    schema["properties"] = {
        "id": {"type": "integer"},
        **schema["properties"],
        "status": {
            "type": "string",
            "enum": ["created", "updated", "unchanged", "stale"],
            "description": "What the write did (writes only)",
        },
        "problems": {
            **STRINGS,
            "description": "Parts of the document that were not stored, and why (writes only)",
        },
    }
    return schema


CRITERION_OUTCOME = {
    "type": "object",
    "description": "One criterion of the trial and how it came out for the patient",
    "required": ["type", "text", "outcome", "reason"],
    "properties": {
        "type": {"type": "string", "enum": ["inclusion", "exclusion"]},
        "text": {"type": "string", "description": "The criterion as the registry states it"},
        "category": {"type": "string"},
        "outcome": {"type": "string", "enum": ["met", "not_met", "unknown"]},
        "reason": {"type": "string", "description": "Which fact decided it, with its value"},
        "missing": {**STRINGS, "description": "Facts that would decide an unknown"},
        "parsed": {"type": "boolean", "description": "False: the engine could not read it"},
    },
}

_MATCH_CORE: dict[str, Any] = {
    "nct_id": {"type": "string"},
    "title": {"type": "string"},
    "overall_status": {"type": "string"},
    "verdict": {"type": "string", "enum": list(Match.Verdict.values)},
    "flagged": {
        "type": "boolean",
        "description": "A gastric-cancer surgical candidate for a preoperative immunotherapy trial",
    },
    "flag_reason": {"type": "string"},
    "score": {"type": "number"},
    "distance_km": {**NULLABLE_NUMBER, "description": "To the trial's nearest open site"},
    "unknown_facts": {**STRINGS, "description": "Facts to find out to decide the unknowns"},
    "criteria": {"type": "array", "items": ref("CriterionOutcome")},
}


def _patient_match() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "A stored match of one patient and one trial, with every criterion",
        "required": ["id", "patient_id", "nct_id", "verdict", "flagged", "current", "criteria"],
        "properties": {
            "id": {"type": "string", "description": "{patient_id}-{trial_id}"},
            "patient_id": {"type": "integer"},
            "patient": {"type": "string", "description": "The patient's MRN"},
            "site": {"type": "string"},
            **_MATCH_CORE,
            "gastric_preop_immunotherapy": {"type": "boolean"},
            "distance_miles": NULLABLE_NUMBER,
            "current": {
                "type": "boolean",
                "description": "False: the patient, the trial or the engine changed since; a "
                "re-match is on its way",
            },
            "evaluated_at": {"type": "string", "format": "date-time"},
            "review_status": {"type": "string", "enum": list(Review.Status.values)},
            "status_reason": {"type": "string"},
            "assignee": {"type": ["integer", "null"]},
        },
    }


def _match_detail() -> dict[str, Any]:
    schema = _patient_match()
    schema["description"] = "A stored match with its review notes and the moves allowed next"
    schema["properties"] |= {
        "notes": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["text", "created_at"],
                "properties": {
                    "text": {"type": "string"},
                    "author": {"type": ["integer", "null"]},
                    "created_at": {"type": "string", "format": "date-time"},
                },
            },
        },
        "allowed_statuses": {
            "type": "array",
            "items": {"type": "string", "enum": list(Review.Status.values)},
        },
    }
    return schema


PAGED_PATIENT_MATCHES = {
    "type": "object",
    "required": ["count", "results"],
    "properties": {
        "count": {"type": "integer"},
        "next": {"type": ["string", "null"], "format": "uri"},
        "previous": {"type": ["string", "null"], "format": "uri"},
        "results": {"type": "array", "items": ref("PatientMatch")},
    },
}

MATCH_NOW_RESULT = {
    "type": "object",
    "description": "Every open trial evaluated for the profile, best first; nothing stored",
    "required": ["evaluated_on", "checked", "trials", "problems"],
    "properties": {
        "evaluated_on": {"type": "string", "format": "date"},
        "checked": {"type": "integer", "description": "How many open trials were evaluated"},
        "trials": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["nct_id", "verdict", "flagged", "criteria"],
                "properties": _MATCH_CORE,
            },
        },
        "problems": {**STRINGS, "description": "Parts of the profile that could not be used"},
    },
}

FHIR_BUNDLE = {
    "type": "object",
    "description": "A FHIR R4 Bundle (Patient, Condition, Observation, MedicationStatement, "
    "Procedure ... with the mCODE codes the import reads)",
    "required": ["resourceType"],
    "properties": {
        "resourceType": {"const": "Bundle"},
        "type": {"type": "string"},
        "entry": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"resource": {"type": "object"}},
            },
        },
    },
}

EXAMPLE_PROFILE = {
    "external_id": "MRN-20931",
    "site": "GEN",
    "sex": "male",
    "birth_date": "1961-04-18",
    "postal_code": "10065",
    "country": "US",
    "primary_cancer": {"site": "stomach", "histology": "adenocarcinoma", "date": "2026-09-02"},
    "staging": [
        {"context": "clinical", "category": "T", "value": "T3", "date": "2026-09-20"},
        {"context": "clinical", "category": "N", "value": "N1", "date": "2026-09-20"},
        {"context": "clinical", "category": "M", "value": "M0", "date": "2026-09-20"},
    ],
    "performance_status": [{"scale": "ecog", "value": 1, "date": "2026-10-01"}],
    "labs": [],
    "surgeries": [{"procedure": "total_gastrectomy", "status": "planned"}],
}


def components() -> dict[str, dict[str, Any]]:
    """The named schemas, for ``components/schemas``."""
    return {
        "PatientProfile": _profile(),
        "StoredPatientProfile": _stored_profile(),
        "FhirBundle": FHIR_BUNDLE,
        "CriterionOutcome": CRITERION_OUTCOME,
        "PatientMatch": _patient_match(),
        "MatchDetail": _match_detail(),
        "PagedPatientMatches": PAGED_PATIENT_MATCHES,
        "MatchNowResult": MATCH_NOW_RESULT,
    }
