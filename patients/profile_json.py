"""The project's own JSON format for patient profiles: import, export and its JSON Schema.

One document per patient (``patients/schema/patient-profile.schema.json`` describes it, and
is generated from the models by ``manage.py profile_schema`` so the two cannot drift):

    {"external_id": "EX1", "site": "default", "sex": "female", "birth_date": "1962-06-15",
     "postal_code": "10021", "country": "US",
     "primary_cancer": {"site": "stomach", "histology": "adenocarcinoma", ...},
     "staging": [{"context": "clinical", "category": "T", "value": "T3", "date": "..."}],
     "labs": [{"analyte": "anc", "original_value": 3.4, "original_unit": "10^3/uL", ...}],
     ...,
     "age": 64, "surgical_candidate": true, "surgical_candidate_reason": "..."}

On import, every fact section is optional and an absent fact is unknown. ``age``, the derived
values and ``surgical_candidate`` are computed on export and ignored on import.
"""

from __future__ import annotations

import datetime
from functools import cache
from typing import Any

import jsonschema
from django.db import models as django_models

from patients import models
from patients.profile import FactData, ProfileData, document_hash

SCHEMA_ID = "https://trialmatch.invalid/schema/patient-profile.schema.json"
# Section of the document -> fact model; primary_cancer is a single object.
SECTIONS: dict[str, type[models.Fact]] = {
    "staging": models.StageObservation,
    "metastases": models.Metastasis,
    "performance_status": models.PerformanceStatus,
    "labs": models.LabResult,
    "biomarkers": models.Biomarker,
    "treatments": models.Treatment,
    "medications": models.Medication,
    "comorbidities": models.Comorbidity,
    "reproductive_status": models.ReproductiveStatus,
    "surgeries": models.Surgery,
}
FACT_BOOKKEEPING = (
    "id",
    "patient",
    "observed_on",
    "source",
    "source_reference",
    "source_key",
    "recorded_by",
    "recorded_at",
)
PATIENT_FIELDS = ("sex", "birth_date", "postal_code", "city", "country", "prior_anticancer_therapy")


class ProfileFormatError(ValueError):
    """The document does not follow the profile schema; the message says where and why."""


def fact_fields(model: type[models.Fact]) -> list[django_models.Field[Any, Any]]:
    """The fields of a fact as the JSON format carries them (computed ones included)."""
    return [
        field
        for field in model._meta.concrete_fields
        if field.name not in FACT_BOOKKEEPING and not field.name.endswith("_ptr")
    ]


# --- Schema -----------------------------------------------------------------------------------


def _field_schema(field: django_models.Field[Any, Any]) -> dict[str, Any]:
    if isinstance(field, django_models.BooleanField):
        schema: dict[str, Any] = {"type": ["boolean", "null"]}
    elif isinstance(field, django_models.FloatField | django_models.DecimalField):
        schema = {"type": ["number", "null"]}
    elif isinstance(field, django_models.IntegerField):
        schema = {"type": ["integer", "null"]}
    elif isinstance(field, django_models.DateField):
        schema = {"type": ["string", "null"], "format": "date"}
    else:
        schema = {
            "type": ["string", "null"] if field.blank else "string",
            "maxLength": field.max_length or 1000,
        }
        if field.choices:
            choices: list[Any] = [value for value, _ in field.choices]
            schema["enum"] = choices + (["", None] if field.blank else [])
    description = str(field.help_text or field.verbose_name)
    if description:
        schema["description"] = description
    return schema


def _fact_schema(model: type[models.Fact], *, computed: tuple[str, ...] = ()) -> dict[str, Any]:
    properties = {
        field.name: _field_schema(field)
        for field in fact_fields(model)
        if field.name not in computed
    }
    properties["date"] = {"type": ["string", "null"], "format": "date"}
    properties["id"] = {"type": "string", "description": "Stable key of the fact in its source"}
    properties["source"] = {"type": "string", "description": "Where it came from (export only)"}
    for name in computed:
        properties[name] = {"description": "Computed on export; ignored on import"}
    required = [
        field.name
        for field in fact_fields(model)
        if not field.blank
        and not field.null
        and field.name not in computed
        and field.editable
        and not field.has_default()
    ]
    return {
        "type": "object",
        "title": str(model._meta.verbose_name),
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


@cache
def profile_schema() -> dict[str, Any]:
    """The JSON Schema of a profile document, built from the models."""
    patient_fields = {
        name: _field_schema(models.Patient._meta.get_field(name))  # type: ignore[arg-type]
        for name in PATIENT_FIELDS
    }
    lab_computed = ("value", "unit", "uln")
    sections = {
        name: {
            "type": "array",
            "items": _fact_schema(
                model, computed=lab_computed if model is models.LabResult else ()
            ),
        }
        for name, model in SECTIONS.items()
    }
    primary = _fact_schema(models.PrimaryCancer)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "Patient profile",
        "description": __doc__.split("\n\n")[0] if __doc__ else "",
        "type": "object",
        "required": ["external_id"],
        "properties": {
            "external_id": {"type": "string", "minLength": 1, "maxLength": 64},
            "site": {"type": "string", "description": "Code of the hospital site"},
            **patient_fields,
            "primary_cancer": {"anyOf": [primary, {"type": "null"}]},
            **sections,
            "age": {"description": "Computed on export; ignored on import"},
            "derived": {"description": "Computed on export; ignored on import"},
            "surgical_candidate": {"description": "Computed on export; ignored on import"},
            "surgical_candidate_reason": {"description": "Computed on export; ignored on import"},
        },
        "additionalProperties": False,
    }


# --- Import -----------------------------------------------------------------------------------


def read_profile_json(document: Any, *, origin: str) -> ProfileData:
    """A profile document (parsed JSON) as a profile; ProfileFormatError when it is invalid."""
    validator = jsonschema.Draft202012Validator(
        profile_schema(), format_checker=jsonschema.FormatChecker()
    )
    error = jsonschema.exceptions.best_match(validator.iter_errors(document))
    if error is not None:
        where = "/".join(str(part) for part in error.absolute_path) or "the document"
        raise ProfileFormatError(f"{where}: {error.message}")
    profile = ProfileData(
        external_id=document["external_id"].strip(),
        site_code=document.get("site", ""),
        sex=document.get("sex") or "",
        birth_date=_date(document.get("birth_date")),
        postal_code=document.get("postal_code") or "",
        city=document.get("city") or "",
        country=document.get("country") or "",
        prior_anticancer_therapy=document.get("prior_anticancer_therapy"),
        source_reference=origin,
        content_hash=document_hash(document),
    )
    if document.get("primary_cancer"):
        profile.facts.append(
            _fact("PrimaryCancer", document["primary_cancer"], "primary_cancer", origin)
        )
    for section, model in SECTIONS.items():
        for index, item in enumerate(document.get(section) or []):
            profile.facts.append(_fact(model.__name__, item, f"{section}[{index}]", origin))
    return profile


def _fact(model: str, item: dict[str, Any], position: str, origin: str) -> FactData:
    ignored = (
        ("date", "id", "source", "value", "unit", "uln")
        if model == "LabResult"
        else ("date", "id", "source")
    )
    values = {
        name: _date(value)
        if name.endswith("_date")
        else ("" if value is None and _is_text(model, name) else value)
        for name, value in item.items()
        if name not in ignored
    }
    return FactData(
        model=model,
        values=values,
        key=item.get("id") or position,
        observed_on=_date(item.get("date")),
    )


def _is_text(model: str, name: str) -> bool:
    """Blank text fields take null in documents and are stored as ""."""
    fact_model = models.PrimaryCancer if model == "PrimaryCancer" else getattr(models, model)
    field = fact_model._meta.get_field(name)
    return isinstance(field, django_models.CharField)


def _date(value: Any) -> datetime.date | None:
    return datetime.date.fromisoformat(value) if isinstance(value, str) and value else None
