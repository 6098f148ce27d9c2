"""The patient-data endpoints of the REST API (``/api/v1/``): patients, their matches, the
review queue, and matching a profile without storing it.

Every queryset goes through ``patients.access``: another site's patient, match or review is
404, never 403, and never in a list. Request bodies are the project's profile document
(``patients.profile_json``, validated by its JSON Schema: no field outside it is accepted) or
a FHIR R4 Bundle; the site comes from a ``site`` code checked against the caller's sites, and
review moves go through ``patients.workflow`` (the admin's rules). Every read of patient data
is an ACCESS entry (``patients.audit.record_access``, purpose ``api: ...``); writes are logged
by django-auditlog.

Writes re-match the patient in-process (``matching.match_patients``): one patient against
the compiled open trials takes milliseconds, and a caller that writes a profile and then asks
for its matches gets the current ones, not the previous ones while a worker catches up. The
write and its matching are one transaction: if matching fails, nothing is stored (503).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.http import Http404
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django_filters import rest_framework as filters
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import permissions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from config.addresses import client_ip
from config.api_platform import ID_PATTERN, MAX_ID, parse_id
from patients import access, matching, workflow
from patients.api_schema import EXAMPLE_PROFILE, ref
from patients.audit import record_access, record_unstored_access
from patients.exports import profile_document
from patients.facts import FACT_RELATIONS, patient_facts, with_facts
from patients.fhir import BundleError, read_bundle
from patients.match_exports import document as match_document
from patients.match_exports import with_document_fields
from patients.models import (
    FACT_MODELS,
    MATCH_LIST_FIELDS,
    QUEUE_RANK,
    Match,
    Patient,
    Review,
    Site,
    Source,
)
from patients.profile import ProfileData
from patients.profile_json import SECTIONS, ProfileFormatError, read_profile_json
from patients.services import (
    ProfileRejected,
    UpsertResult,
    _assign_patient,
    _valid_instance,
    patient_upsert,
)
from trials.eligibility.evaluate import PatientEvaluator, rank_key
from trials.models import Criterion, Trial

logger = logging.getLogger(__name__)

# Keys of a profile document as this API returns it that are not part of the format.
RESPONSE_ONLY_KEYS = ("id", "problems", "status")


# --- Helpers ----------------------------------------------------------------------------------


def _audit(request: Request, patients: Iterable[Patient], purpose: str) -> None:
    unique = {patient.pk: patient for patient in patients}
    record_access(
        unique.values(),
        actor=request.user,
        purpose=f"api: {purpose}",
        remote_addr=client_ip(request),
    )


def _document_body(request: Request) -> dict[str, Any]:
    if not isinstance(request.data, dict):
        raise ValidationError({"non_field_errors": ["Send one JSON object."]})
    return dict(request.data)


def _format_error(exc: Exception) -> ValidationError:
    """A reader's error as a field error: the first part of its path names the field."""
    text = str(exc)
    where, _, message = text.partition(": ")
    if message and where != "the document":
        return ValidationError({where.split("/")[0]: [text]})
    return ValidationError({"non_field_errors": [text]})


def _caller_site(user: Any, code: str | None) -> Site:
    """The site a new profile goes to: ``code`` if it is one of the caller's sites, else the
    caller's only site when ``code`` is not given."""
    sites = access.sites_for(user)
    if code:
        site = sites.filter(code=code).first()
        if site is None:
            raise ValidationError({"site": [f"{code!r} is not one of your sites."]})
        return site
    mine = list(sites[:2])
    if len(mine) != 1:
        raise ValidationError({"site": ["Give the code of one of your sites."]})
    return mine[0]


class MatchingFailed(APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "matching_failed"
    default_detail = (
        "The profile could not be matched against the trials, so it was not stored: nothing "
        "changed. Try again later; if it persists, tell the service's operators."
    )


def _rematch(result: UpsertResult) -> None:
    if result.status in ("created", "updated") and result.patient is not None:
        matching.match_patients([result.patient.pk])


def _patient_response(patient: Patient, result: UpsertResult | None = None) -> dict[str, Any]:
    loaded = with_facts(Patient.objects.filter(pk=patient.pk)).get()
    body = {"id": loaded.pk, **profile_document(loaded)}
    if result is not None:
        body["status"] = result.status
        body["problems"] = [str(problem) for problem in result.problems]
    return body


def _drop_other_sources(patient: Patient, document: dict[str, Any]) -> list[str]:
    """Leave out the facts of the document that another source (a FHIR import, the admin)
    holds: a read document sent back must not copy them as API facts. They change at their
    source; the returned notes say which were left as they are."""
    held: dict[str, str] = {}
    for model in FACT_MODELS:
        manager: Any = model._default_manager
        for key, pk, source in (
            manager.filter(patient=patient)
            .exclude(source=Source.API)
            .values_list("source_key", "pk", "source")
        ):
            held[key or f"{model.__name__}/{pk}"] = source
    notes = []

    def other(item: Any, where: str) -> bool:
        source = held.get(item.get("id", "")) if isinstance(item, dict) else None
        if source:
            notes.append(f"{where}: kept as recorded by its source ({source}); change it there")
        return bool(source)

    if other(document.get("primary_cancer"), "primary_cancer"):
        document.pop("primary_cancer")
    for section in SECTIONS:
        items = document.get(section)
        if isinstance(items, list):
            document[section] = [
                item for n, item in enumerate(items) if not other(item, f"{section}[{n}]")
            ]
    return notes


class NotStored:
    """Patient data in answers: no browser or proxy keeps a copy (``Cache-Control:
    no-store``), whatever the answer (an error may name the patient's record too)."""

    def finalize_response(self, request: Request, response: Any, *args: Any, **kwargs: Any) -> Any:
        response = super().finalize_response(request, response, *args, **kwargs)  # type: ignore[misc]
        response["Cache-Control"] = "no-store"
        return response


class ActionPermissions(permissions.BasePermission):
    """Model permissions per action (the roles of ``patients.roles``), on top of login."""

    required: dict[str, tuple[str, ...]] = {}

    def has_permission(self, request: Request, view: Any) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        wanted = view.required_permissions.get(getattr(view, "action", None) or "", ())
        return all(request.user.has_perm(name) for name in wanted)


PROFILE_EXAMPLE = OpenApiExample(
    "A resectable gastric cancer", value=EXAMPLE_PROFILE, request_only=True
)
PROFILE_BODY = {"application/json": ref("PatientProfile")}
SITE_PARAMETER = OpenApiParameter(
    "site", str, description="Code of one of your sites (needed with more than one)"
)


# --- Serializers ------------------------------------------------------------------------------


class PatientSummarySerializer(serializers.ModelSerializer[Patient]):
    site = serializers.CharField(source="site.code", read_only=True)

    class Meta:
        model = Patient
        fields = (
            "id",
            "external_id",
            "site",
            "sex",
            "birth_date",
            "source",
            "created_at",
            "updated_at",
            "surgical_candidate",
        )
        read_only_fields = fields


class MatchListSerializer(serializers.Serializer[Match]):
    id = serializers.SerializerMethodField()
    patient = serializers.IntegerField(source="patient_id", read_only=True)
    external_id = serializers.CharField(source="patient.external_id", read_only=True)
    site = serializers.CharField(source="patient.site.code", read_only=True)
    nct_id = serializers.CharField(source="trial.nct_id", read_only=True)
    title = serializers.CharField(source="trial.title", read_only=True)
    verdict = serializers.CharField(read_only=True)
    flagged = serializers.BooleanField(read_only=True)
    flag_reason = serializers.CharField(read_only=True)
    score = serializers.FloatField(read_only=True)
    distance_km = serializers.FloatField(read_only=True, allow_null=True)
    current = serializers.SerializerMethodField()
    review_status = serializers.CharField(read_only=True)
    assignee = serializers.IntegerField(source="assignee_id", read_only=True, allow_null=True)

    def get_id(self, match: Match) -> str:
        return f"{match.patient_id}-{match.trial_id}"

    def get_current(self, match: Match) -> bool:
        return _is_current(match)


class ReviewMoveSerializer(serializers.Serializer[Any]):
    """A move of the pair's review: status (with reason), assignee, note; all optional."""

    status = serializers.ChoiceField(choices=Review.Status.choices, required=False)
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")
    note = serializers.CharField(required=False, allow_blank=True, max_length=5000, default="")
    assignee = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=MAX_ID
    )


def _is_current(match: Match) -> bool:
    return (
        match.engine_version == matching.MATCHER_VERSION
        and match.patient_facts_at == match.patient.facts_changed_at
        and match.trial_inputs_at == match.trial.matching_inputs_at
    )


def _review_fields(review: Review | None) -> dict[str, Any]:
    if review is None:
        return {"review_status": Review.Status.NEW, "status_reason": "", "assignee": None}
    return {
        "review_status": review.status,
        "status_reason": review.status_reason,
        "assignee": review.assignee_id,
    }


def _match_documents(matches: list[Match]) -> list[dict[str, Any]]:
    """Matches (patient, site and trial loaded) with every criterion and the review status, in
    three queries whatever their number."""
    criteria: dict[int, list[Criterion]] = {}
    for criterion in (
        Criterion.objects.filter(trial_id__in={m.trial_id for m in matches})
        .only(*matching.CRITERIA_OF_FIELDS)
        .order_by("trial_id", "position")
    ):
        criteria.setdefault(criterion.trial_id, []).append(criterion)
    reviews = {
        (r.patient_id, r.trial_id): r
        for r in Review.objects.filter(
            patient_id__in={m.patient_id for m in matches},
            trial_id__in={m.trial_id for m in matches},
        )
    }
    documents = []
    for match in matches:
        item = match_document(match, criteria.get(match.trial_id, []))
        item.pop("_pk", None)
        item["id"] = f"{match.patient_id}-{match.trial_id}"
        item["patient_id"] = match.patient_id
        item.update(_review_fields(reviews.get((match.patient_id, match.trial_id))))
        documents.append(item)
    return documents


# --- Patients ---------------------------------------------------------------------------------


class PatientFilter(filters.FilterSet):
    site = filters.CharFilter(field_name="site__code")
    external_id = filters.CharFilter(field_name="external_id")

    class Meta:
        model = Patient
        fields = ("site", "external_id")


class PatientMatchFilter(filters.FilterSet):
    verdict = filters.ChoiceFilter(choices=Match.Verdict.choices)
    flagged = filters.BooleanFilter()

    class Meta:
        model = Match
        fields = ("verdict", "flagged")


class PatientViewSet(NotStored, viewsets.GenericViewSet[Patient]):
    """Patients of the caller's sites in the profile document format."""

    serializer_class = PatientSummarySerializer
    lookup_value_regex = ID_PATTERN
    filter_backends = [filters.DjangoFilterBackend]
    filterset_class = PatientFilter
    permission_classes = [ActionPermissions]
    http_method_names = ["get", "post", "put", "delete", "head", "options"]
    required_permissions: dict[str, tuple[str, ...]] = {
        "list": ("patients.view_patient",),
        "retrieve": ("patients.view_patient",),
        "matches": ("patients.view_patient", "patients.view_match"),
        "create": ("patients.add_patient",),
        "fhir_import": ("patients.add_patient", "patients.change_patient"),
        "update": ("patients.change_patient",),
        "destroy": ("patients.delete_patient",),
    }

    def get_queryset(self) -> QuerySet[Patient]:
        return access.patients_for(
            self.request.user, Patient.objects.select_related("site")
        ).order_by("site__code", "external_id", "pk")

    def list(self, request: Request) -> Response:
        queryset = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(queryset)
        rows = list(page if page is not None else queryset)
        _audit(request, rows, "patient list")
        data = self.get_serializer(rows, many=True).data
        return self.get_paginated_response(data) if page is not None else Response(data)

    @extend_schema(responses={200: ref("StoredPatientProfile")})
    def retrieve(self, request: Request, pk: str | None = None) -> Response:
        patient = self.get_object()
        _audit(request, [patient], "patient read")
        return Response(_patient_response(patient))

    @extend_schema(
        request=PROFILE_BODY,
        responses={201: ref("StoredPatientProfile")},
        examples=[PROFILE_EXAMPLE],
    )
    def create(self, request: Request) -> Response:
        document = _document_body(request)
        site = _caller_site(request.user, document.get("site"))
        document["site"] = site.code
        profile = self._read(document)
        if Patient.objects.filter(site=site, external_id=profile.external_id).exists():
            raise ValidationError(
                {"external_id": ["A patient with this MRN exists at this site; PUT to update."]}
            )
        result = self._write(profile, site, request, Source.API)
        return Response(_patient_response(result.patient, result), status=status.HTTP_201_CREATED)  # type: ignore[arg-type]

    @extend_schema(
        request=PROFILE_BODY,
        responses={200: ref("StoredPatientProfile")},
        examples=[PROFILE_EXAMPLE],
    )
    def update(self, request: Request, pk: str | None = None) -> Response:
        patient = self.get_object()
        document = _document_body(request)
        for key in RESPONSE_ONLY_KEYS:
            document.pop(key, None)
        if document.setdefault("external_id", patient.external_id) != patient.external_id:
            raise ValidationError({"external_id": ["The MRN of a patient cannot change here."]})
        if document.setdefault("site", patient.site.code) != patient.site.code:
            raise ValidationError({"site": ["A patient cannot move to another site."]})
        kept = _drop_other_sources(patient, document)
        profile = self._read(document)
        profile.identifier_system = patient.identifier_system  # this patient, by id
        result = self._write(profile, patient.site, request, Source.API)
        body = _patient_response(patient, result)
        body["problems"] += kept
        return Response(body)

    def destroy(self, request: Request, pk: str | None = None) -> Response:
        patient = self.get_object()
        _audit(request, [patient], "patient delete")
        patient.delete()  # django-auditlog records the deletion
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        request={"application/json": ref("FhirBundle")},
        responses={200: ref("StoredPatientProfile"), 201: ref("StoredPatientProfile")},
        parameters=[SITE_PARAMETER],
    )
    @action(detail=False, methods=["post"], url_path="import")
    def fhir_import(self, request: Request) -> Response:
        """A FHIR R4 Bundle, read as the ``import_patients`` command reads it; ``?site=CODE``
        (needed when the caller has more than one site)."""
        document = _document_body(request)
        if document.get("resourceType") != "Bundle":
            raise ValidationError({"resourceType": ["Send a FHIR R4 Bundle."]})
        site = _caller_site(request.user, request.query_params.get("site"))
        try:
            profile = read_bundle(document, origin="api")
        except BundleError as exc:
            raise _format_error(exc) from None
        result = self._write(profile, site, request, Source.FHIR)
        assert result.patient is not None
        code = status.HTTP_201_CREATED if result.status == "created" else status.HTTP_200_OK
        return Response(_patient_response(result.patient, result), status=code)

    @extend_schema(
        parameters=[
            OpenApiParameter("verdict", str, enum=Match.Verdict.values),
            OpenApiParameter("flagged", bool),
            OpenApiParameter("page", int, description="Page number (1 first)"),
            OpenApiParameter("page_size", int, description="50 by default, at most 200"),
        ],
        responses={200: ref("PagedPatientMatches")},
    )
    @action(detail=True, methods=["get"])
    def matches(self, request: Request, pk: str | None = None) -> Response:
        """The patient's matches in the review queue's order (flagged, then possible, best
        score first), a page at a time, each with every criterion's outcome and reason."""
        patient = self.get_object()
        chosen = PatientMatchFilter(
            request.query_params,
            with_document_fields(Match.objects.filter(patient=patient)).order_by(
                QUEUE_RANK, "-score", "trial_id"
            ),
        )
        if not chosen.is_valid():
            raise ValidationError(chosen.errors)
        page = self.paginate_queryset(chosen.qs)
        matches = list(page if page is not None else chosen.qs)
        for match in matches:
            match.patient = patient  # its site is loaded already
        _audit(request, [patient], "patient matches")
        return self.get_paginated_response(_match_documents(matches))

    def _read(self, document: dict[str, Any]) -> ProfileData:
        try:
            return read_profile_json(document, origin="api")
        except ProfileFormatError as exc:
            raise _format_error(exc) from None

    def _write(
        self, profile: ProfileData, site: Site, request: Request, source: str
    ) -> UpsertResult:
        """Store the profile and re-match the patient: both land or neither does, so a stored
        patient always has the matches of what is stored."""
        with transaction.atomic():
            try:
                result = patient_upsert(profile, source=source, site=site, actor=request.user)
            except ProfileRejected as exc:
                raise ValidationError({"non_field_errors": [str(exc)]}) from None
            if result.patient is not None:
                _audit(request, [result.patient], "patient write")
            try:
                _rematch(result)
            except Exception as exc:
                logger.exception("patient write undone: matching failed")
                raise MatchingFailed() from exc
        return result


# --- Matching without storing -----------------------------------------------------------------


def facts_without_storing(profile: ProfileData) -> Any:
    """The engine's facts of a profile, through the same model validation and the same
    ``patient_facts`` as a stored patient, with nothing written (unsaved instances)."""
    patient = Patient(external_id=profile.external_id, site=Site(code="-"))
    _assign_patient(patient, profile, profile.problems)
    patient.pk = 0  # lets the related managers read the prefetched lists below; never saved
    held = UpsertResult(None, "preview")
    related: dict[str, list[Any]] = {name: [] for name in FACT_RELATIONS}
    by_model = {
        "StageObservation": "stages",
        "Metastasis": "metastases",
        "PerformanceStatus": "performance",
        "LabResult": "labs",
        "Biomarker": "biomarkers",
        "Treatment": "treatments",
        "Medication": "medications",
        "Comorbidity": "comorbidities",
        "ReproductiveStatus": "reproductive",
        "Surgery": "surgeries",
    }
    for fact in profile.facts:
        instance = _valid_instance(patient, fact, Source.API, None, held)
        if instance is None:
            continue
        if fact.model == "PrimaryCancer":
            patient._state.fields_cache["primary_cancer"] = instance
        else:
            related[by_model[fact.model]].append(instance)
    patient._prefetched_objects_cache = related  # type: ignore[attr-defined]
    profile.problems.extend(held.problems)
    return patient_facts(patient)


class MatchNowViewSet(NotStored, viewsets.ViewSet):
    """``POST /api/v1/match/``: a profile document or a FHIR Bundle against the open trials,
    ranked (flagged first), with verdicts and every criterion's reason; nothing is stored."""

    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(
        request={
            "application/json": {"oneOf": [ref("PatientProfile"), ref("FhirBundle")]},
        },
        responses={200: ref("MatchNowResult")},
        examples=[PROFILE_EXAMPLE],
    )
    def create(self, request: Request) -> Response:
        document = _document_body(request)
        try:
            if document.get("resourceType") == "Bundle":
                profile = read_bundle(document, origin="api")
            else:
                document.setdefault("external_id", "unsaved")
                document.pop("site", None)
                profile = read_profile_json(document, origin="api")
        except (BundleError, ProfileFormatError) as exc:
            raise _format_error(exc) from None
        today = timezone.localdate()
        facts = facts_without_storing(profile)
        evaluated = matching.evaluate_with(
            PatientEvaluator(facts, today), matching.rules_cache().rules()
        )
        evaluated.sort(key=lambda pair: rank_key(pair[1], pair[0]))
        trials = Trial.objects.in_bulk([rules.key for rules, _ in evaluated])
        texts: dict[tuple[int, int], str] = {
            (c.trial_id, c.position): c.text
            for c in Criterion.objects.filter(trial_id__in=list(trials)).only(
                "trial_id", "position", "text"
            )
        }
        ranked = []
        for rules, result in evaluated:
            trial = trials.get(rules.key)
            if trial is None:
                continue
            ranked.append(
                {
                    "nct_id": trial.nct_id,
                    "title": trial.title,
                    "overall_status": trial.overall_status,
                    "verdict": str(result.verdict),
                    "flagged": result.flagged,
                    "flag_reason": result.flag_reason,
                    "score": result.score,
                    "distance_km": result.distance_km,
                    "unknown_facts": list(result.unknown_facts),
                    "criteria": [
                        {
                            "type": c.kind,
                            "text": texts.get((trial.pk, c.position), ""),
                            "category": c.category,
                            "outcome": str(c.outcome),
                            "reason": c.reason,
                            "missing": list(c.missing),
                            "parsed": c.parsed,
                        }
                        for c in result.criteria
                    ],
                }
            )
        # Nothing of the profile is kept, but health data was sent and read: who, when, from
        # where, as for every other read of patient data.
        record_unstored_access(
            actor=request.user,
            purpose="api: match without storing",
            remote_addr=client_ip(request),
            detail={"format": "fhir" if document.get("resourceType") else "profile"},
        )
        return Response(
            {
                "evaluated_on": today.isoformat(),
                "checked": len(ranked),
                "trials": ranked,
                "problems": [str(problem) for problem in profile.problems],
            }
        )


# --- Matches (the review queue) ---------------------------------------------------------------


class MatchFilter(filters.FilterSet):
    site = filters.CharFilter(field_name="patient__site__code")
    trial = filters.CharFilter(field_name="trial__nct_id")
    patient = filters.NumberFilter(field_name="patient_id", min_value=1, max_value=MAX_ID)
    verdict = filters.ChoiceFilter(choices=Match.Verdict.choices)
    flagged = filters.BooleanFilter()
    review_status = filters.ChoiceFilter(choices=Review.Status.choices)
    assignee = filters.NumberFilter(field_name="assignee_id", min_value=1, max_value=MAX_ID)

    class Meta:
        model = Match
        fields = ("site", "trial", "patient", "verdict", "flagged", "review_status", "assignee")


def _review_of(field: str) -> Subquery:
    return Subquery(workflow.reviews_of_pair().values(field)[:1])


class MatchViewSet(NotStored, viewsets.ReadOnlyModelViewSet[Match]):
    """The caller's sites' matches in the review queue's order; ``{patient_id}-{trial_id}``."""

    serializer_class = MatchListSerializer
    filter_backends = [filters.DjangoFilterBackend]
    filterset_class = MatchFilter
    permission_classes = [ActionPermissions]
    lookup_value_regex = f"{ID_PATTERN}-{ID_PATTERN}"
    required_permissions: dict[str, tuple[str, ...]] = {
        "list": ("patients.view_match",),
        "retrieve": ("patients.view_match",),
        "review": ("patients.view_match", "patients.change_review"),
    }

    def get_queryset(self) -> QuerySet[Match]:
        queryset = access.narrow(Match.objects.all(), self.request.user)
        return (
            queryset.select_related("patient__site", "trial")
            .only(
                *MATCH_LIST_FIELDS,
                "patient__external_id",
                "patient__facts_changed_at",
                "patient__site__code",
                "trial__nct_id",
                "trial__brief_title",
                "trial__official_title",
                "trial__matching_inputs_at",
            )
            .annotate(
                review_status=Coalesce(_review_of("status"), Value(Review.Status.NEW)),
                assignee_id=_review_of("assignee_id"),
            )
            .order_by(QUEUE_RANK, "-score", "patient_id", "trial_id")
        )

    def get_object(self) -> Match:
        patient_text, _, trial_text = str(self.kwargs["pk"]).partition("-")
        patient_id, trial_id = parse_id(patient_text), parse_id(trial_text)
        if patient_id is None or trial_id is None:
            raise Http404
        # The full row (outcomes) and the trial, only within the caller's sites.
        return get_object_or_404(
            access.narrow(
                Match.objects.select_related("patient__site", "trial"), self.request.user
            ),
            patient_id=patient_id,
            trial_id=trial_id,
        )

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        queryset = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(queryset)
        rows = list(page if page is not None else queryset)
        _audit(request, [match.patient for match in rows], "match list")
        data = self.get_serializer(rows, many=True).data
        return self.get_paginated_response(data) if page is not None else Response(data)

    @extend_schema(responses={200: ref("MatchDetail")})
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        match = self.get_object()
        _audit(request, [match.patient], "match read")
        return Response(self._detail(match))

    @extend_schema(request=ReviewMoveSerializer, responses={200: ref("MatchDetail")})
    @action(detail=True, methods=["post"])
    def review(self, request: Request, pk: str | None = None) -> Response:
        """Move the pair's review (the admin's workflow rules), assign it, add a note."""
        match = self.get_object()
        move = ReviewMoveSerializer(data=request.data)
        move.is_valid(raise_exception=True)
        data = move.validated_data
        if "status" not in data and "assignee" not in data and not data["note"].strip():
            raise ValidationError({"status": ["Give a status, an assignee or a note."]})
        assignee = None
        if data.get("assignee") is not None:
            assignee = (
                get_user_model()
                .objects.filter(
                    Q(coordinator_sites=match.patient.site_id) | Q(is_superuser=True),
                    pk=data["assignee"],
                    is_active=True,
                )
                .first()
            )
            if assignee is None:
                raise ValidationError({"assignee": ["Not a coordinator of this patient's site."]})
        with transaction.atomic():
            review = workflow.review_for(match.patient_id, match.trial_id)
            try:
                if "status" in data:
                    review = workflow.move(
                        review,
                        data["status"],
                        actor=request.user,
                        reason=data["reason"],
                        note=data["note"],
                    )
                elif data["note"].strip():
                    workflow.add_note(review, data["note"], actor=request.user)
            except workflow.WorkflowError as exc:
                field = "status" if "status" in data else "note"
                raise ValidationError({field: exc.messages}) from None
            if "assignee" in data:
                review = workflow.assign(review, assignee, actor=request.user)
        _audit(request, [match.patient], "review move")
        return Response(self._detail(match))

    def _detail(self, match: Match) -> dict[str, Any]:
        item = _match_documents([match])[0]
        review = Review.objects.filter(patient_id=match.patient_id, trial_id=match.trial_id).first()
        item["notes"] = (
            [
                {
                    "text": note.text,
                    "author": note.author_id,
                    "created_at": note.created_at.isoformat(),
                }
                for note in review.notes.all()
            ]
            if review
            else []
        )
        item["allowed_statuses"] = list(
            workflow.allowed_next(review.status if review else Review.Status.NEW)
        )
        return item


def register(router: Any) -> None:
    """Put the patient-data endpoints on the API's router (``config/api_urls.py``)."""
    router.register("patients", PatientViewSet, basename="patient")
    router.register("matches", MatchViewSet, basename="match")
    router.register("match", MatchNowViewSet, basename="match-now")
