"""REST API of the trials app: trials (read-only) and registry syncs, under ``/api/v1/``.

``register(router)`` adds the routes; ``config.api_urls`` calls it.
"""

from __future__ import annotations

import datetime
import hashlib
import math
from typing import Any

import django_filters
from django.db.models import (
    Count,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Subquery,
    prefetch_related_objects,
)
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.cache import get_conditional_response
from django.utils.http import http_date
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import permissions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.routers import BaseRouter

from config.api_platform import ID_PATTERN
from trials.eligibility.geo import haversine_km
from trials.models import Criterion, SyncRun, Trial, TrialSite, TrialVersion
from trials.tasks import sync_trials_task

KM_PER_DEGREE_LATITUDE = 111.32
MAX_WITHIN_KM = 5000.0

# --- Serializers ---------------------------------------------------------------------------


class TrialSiteSerializer(serializers.ModelSerializer[TrialSite]):
    class Meta:
        model = TrialSite
        fields = [
            "facility",
            "status",
            "city",
            "state",
            "zip",
            "country",
            "latitude",
            "longitude",
        ]
        read_only_fields = fields


class CriterionSerializer(serializers.ModelSerializer[Criterion]):
    category = serializers.CharField(
        source="effective_category", read_only=True, help_text="After a coordinator's correction"
    )
    constraints = serializers.JSONField(
        source="effective_constraints",
        read_only=True,
        help_text="What the matcher checks, after a coordinator's correction",
    )
    join = serializers.CharField(source="effective_join", read_only=True)
    corrected = serializers.BooleanField(read_only=True)

    class Meta:
        model = Criterion
        fields = [
            "position",
            "kind",
            "text",
            "header",
            "parent_position",
            "category",
            "constraints",
            "join",
            "corrected",
            "needs_review",
        ]
        read_only_fields = fields


class TrialVersionSerializer(serializers.ModelSerializer[TrialVersion]):
    class Meta:
        model = TrialVersion
        fields = ["number", "recorded_at", "last_update_posted", "overall_status", "changes"]
        read_only_fields = fields


class ClassificationSerializer(serializers.ModelSerializer[Trial]):
    override = serializers.BooleanField(
        source="classification_override", read_only=True, allow_null=True
    )
    note = serializers.CharField(source="classification_note", read_only=True)
    evidence = serializers.JSONField(source="classification_evidence", read_only=True)

    class Meta:
        model = Trial
        fields = [
            "gastric_preop_immunotherapy",
            "classified_gastric",
            "classified_immunotherapy",
            "classified_preoperative",
            "override",
            "note",
            "evidence",
        ]
        read_only_fields = fields


def overall_status_field() -> serializers.CharField:
    """The registry's status as it sent it: not an enum, since ClinicalTrials.gov may add
    values and a record may have none ("")."""
    return serializers.CharField(
        read_only=True,
        help_text="ClinicalTrials.gov overall status as sent: "
        + ", ".join(Trial.Status.values)
        + ' or a value the registry adds later; "" when the record has none',
    )


class TrialListSerializer(serializers.ModelSerializer[Trial]):
    url = serializers.HyperlinkedIdentityField(
        view_name="trial-detail", lookup_field="nct_id", read_only=True
    )
    title = serializers.CharField(read_only=True)
    phases = serializers.ListField(child=serializers.CharField(), read_only=True)
    conditions = serializers.ListField(child=serializers.CharField(), read_only=True)
    site_count = serializers.IntegerField(read_only=True)
    overall_status = overall_status_field()
    distance_km = serializers.SerializerMethodField(
        help_text="Distance of the nearest site from ?near= (null without it)"
    )

    class Meta:
        model = Trial
        fields = [
            "url",
            "nct_id",
            "title",
            "acronym",
            "overall_status",
            "phases",
            "conditions",
            "lead_sponsor",
            "last_update_posted",
            "gastric_preop_immunotherapy",
            "classified_gastric",
            "removed_from_registry",
            "site_count",
            "distance_km",
            "updated_at",
        ]
        read_only_fields = fields

    def get_distance_km(self, trial: Trial) -> float | None:
        distances: dict[int, float] = self.context.get("distances") or {}
        found = distances.get(trial.pk)
        return None if found is None else round(found, 1)


class TrialDetailSerializer(serializers.ModelSerializer[Trial]):
    title = serializers.CharField(read_only=True)
    phases = serializers.ListField(child=serializers.CharField(), read_only=True)
    conditions = serializers.ListField(child=serializers.CharField(), read_only=True)
    keywords = serializers.ListField(child=serializers.CharField(), read_only=True)
    interventions = serializers.JSONField(read_only=True)
    registry_url = serializers.CharField(source="get_registry_url", read_only=True)
    overall_status = overall_status_field()
    classification = ClassificationSerializer(source="*", read_only=True)
    sites = TrialSiteSerializer(many=True, read_only=True)
    criteria = CriterionSerializer(many=True, read_only=True)
    versions = TrialVersionSerializer(many=True, read_only=True)

    class Meta:
        model = Trial
        fields = [
            "nct_id",
            "title",
            "brief_title",
            "official_title",
            "acronym",
            "registry_url",
            "overall_status",
            "phases",
            "study_type",
            "conditions",
            "keywords",
            "interventions",
            "lead_sponsor",
            "brief_summary",
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
            "removed_from_registry",
            "removed_at",
            "criteria_engine_version",
            "criteria_parsed_at",
            "curation_needs_review",
            "classification",
            "sites",
            "criteria",
            "versions",
            "version_count",
            "updated_at",
        ]
        read_only_fields = fields


class SyncRunSerializer(serializers.ModelSerializer[SyncRun]):
    duration_seconds = serializers.FloatField(read_only=True, allow_null=True)

    class Meta:
        model = SyncRun
        fields = [
            "id",
            "mode",
            "status",
            "started_at",
            "finished_at",
            "duration_seconds",
            "query",
            "since",
            "resumed_from",
            "pages",
            "total_count",
            "fetched",
            "created",
            "updated",
            "unchanged",
            "removed",
            "failed",
            "high_water_mark",
            "message",
        ]
        read_only_fields = fields


class SyncRunDetailSerializer(SyncRunSerializer):
    class Meta(SyncRunSerializer.Meta):
        fields = [*SyncRunSerializer.Meta.fields, "errors"]
        read_only_fields = fields


class SyncTriggerSerializer(serializers.Serializer[Any]):
    full = serializers.BooleanField(
        default=False,
        help_text="List the whole registry query (and mark trials that left it) instead of "
        "the records updated since the last successful run",
    )


# --- Filters -------------------------------------------------------------------------------


def _bounding_box(lat: float, lon: float, km: float) -> Q:
    """Sites whose coordinates may lie within ``km`` of the point (a superset, in SQL)."""
    dlat = km / KM_PER_DEGREE_LATITUDE
    box = Q(latitude__gte=max(-90.0, lat - dlat), latitude__lte=min(90.0, lat + dlat))
    if abs(lat) + dlat >= 90.0:
        return box  # the circle reaches a pole: every longitude
    dlon = km / (KM_PER_DEGREE_LATITUDE * math.cos(math.radians(abs(lat) + dlat)))
    if dlon >= 180.0:
        return box
    west, east = lon - dlon, lon + dlon
    if west < -180.0:
        lon_q = Q(longitude__gte=west + 360.0) | Q(longitude__lte=east)
    elif east > 180.0:
        lon_q = Q(longitude__gte=west) | Q(longitude__lte=east - 360.0)
    else:
        lon_q = Q(longitude__gte=west, longitude__lte=east)
    return box & lon_q


def nearest_sites(lat: float, lon: float, km: float) -> dict[int, float]:
    """Trial id -> distance (km) of its nearest site, for trials with a site within ``km``."""
    nearest: dict[int, float] = {}
    candidates = TrialSite.objects.filter(
        _bounding_box(lat, lon, km), latitude__isnull=False, longitude__isnull=False
    ).values_list("trial_id", "latitude", "longitude")
    for trial_id, site_lat, site_lon in candidates.iterator(chunk_size=2000):
        if site_lat is None or site_lon is None:
            continue
        distance = haversine_km(lat, lon, site_lat, site_lon)
        if distance <= km and distance < nearest.get(trial_id, math.inf):
            nearest[trial_id] = distance
    return nearest


class TrialFilter(django_filters.FilterSet):
    condition = django_filters.CharFilter(
        method="filter_condition", label="Text in the trial's conditions or their MeSH terms"
    )
    status = django_filters.BaseInFilter(
        field_name="overall_status",
        label="Overall status; several separated by commas (RECRUITING,NOT_YET_RECRUITING)",
    )
    phase = django_filters.CharFilter(
        method="filter_phase", label="Phase as the registry names it (PHASE2, EARLY_PHASE1, NA)"
    )
    gastric_preop_immunotherapy = django_filters.BooleanFilter(
        label="Gastric/GEJ preoperative immunotherapy trial (coordinator's answer wins)"
    )
    classified_gastric = django_filters.BooleanFilter(label="The engine read a gastric trial")
    classified_immunotherapy = django_filters.BooleanFilter()
    classified_preoperative = django_filters.BooleanFilter()
    updated_since = django_filters.DateFilter(
        method="filter_updated_since",
        label="Posted as updated in the registry, or changed here, on or after this day",
    )
    near = django_filters.CharFilter(
        method="filter_near", label='A point "latitude,longitude"; requires within_km'
    )
    within_km = django_filters.NumberFilter(
        method="filter_noop", label=f"Radius around near (km, at most {MAX_WITHIN_KM:g})"
    )

    class Meta:
        model = Trial
        fields = ["removed_from_registry"]

    def filter_condition(self, queryset: QuerySet[Trial], name: str, value: str) -> QuerySet[Trial]:
        return queryset.filter(
            Q(conditions__icontains=value) | Q(condition_mesh_terms__icontains=value)
        )

    def filter_phase(self, queryset: QuerySet[Trial], name: str, value: str) -> QuerySet[Trial]:
        wanted = [part.strip().upper() for part in value.split(",") if part.strip()]
        query = Q()
        for phase in wanted:
            # The JSON text of the list holds each phase in quotes: an exact element match.
            query |= Q(phases__icontains=f'"{phase}"')
        return queryset.filter(query) if wanted else queryset

    def filter_updated_since(
        self, queryset: QuerySet[Trial], name: str, value: datetime.date
    ) -> QuerySet[Trial]:
        start = timezone.make_aware(datetime.datetime.combine(value, datetime.time.min))
        return queryset.filter(Q(last_update_posted__gte=value) | Q(updated_at__gte=start))

    def filter_noop(self, queryset: QuerySet[Trial], name: str, value: Any) -> QuerySet[Trial]:
        return queryset

    def filter_near(self, queryset: QuerySet[Trial], name: str, value: str) -> QuerySet[Trial]:
        try:
            lat_text, lon_text = value.split(",")
            lat, lon = float(lat_text), float(lon_text)
        except ValueError:
            raise ValidationError({"near": ['Give "latitude,longitude" in degrees.']}) from None
        if not (math.isfinite(lat) and math.isfinite(lon)) or abs(lat) > 90 or abs(lon) > 180:
            raise ValidationError({"near": ["Latitude -90..90, longitude -180..180."]})
        km = self.form.cleaned_data.get("within_km")
        if km is None:
            raise ValidationError({"within_km": ["Required with near."]})
        km = float(km)
        if not (0 < km <= MAX_WITHIN_KM):
            raise ValidationError({"within_km": [f"Between 0 and {MAX_WITHIN_KM:g} km."]})
        distances = nearest_sites(lat, lon, km)
        if self.request is not None:
            self.request.trial_distances = distances
        return queryset.filter(pk__in=list(distances))


# --- Views ---------------------------------------------------------------------------------

_LIST_FIELDS = [
    "id",
    "nct_id",
    "brief_title",
    "official_title",
    "acronym",
    "overall_status",
    "phases",
    "conditions",
    "lead_sponsor",
    "last_update_posted",
    "gastric_preop_immunotherapy",
    "classified_gastric",
    "removed_from_registry",
    "updated_at",
]


def trial_etag(trial: Trial) -> str:
    """Changes with the record (content hash), the criteria reading and every curation."""
    parts = [
        trial.content_hash,
        trial.criteria_engine_version,
        trial.criteria_text_hash,
        trial.matching_inputs_at.isoformat(),
        trial.updated_at.isoformat(),
        str(trial.version_count),
    ]
    return '"' + hashlib.sha256("|".join(parts).encode()).hexdigest()[:32] + '"'


def trial_last_modified(trial: Trial) -> datetime.datetime:
    return max(trial.updated_at, trial.matching_inputs_at)


@extend_schema_view(
    list=extend_schema(
        summary="List and search trials",
        description="Example, recruiting gastric preoperative immunotherapy trials with a site "
        "within 100 km of Boston: `GET /api/v1/trials/?status=RECRUITING"
        "&gastric_preop_immunotherapy=true&near=42.36,-71.06&within_km=100`. "
        "`distance_km` is then the distance of each trial's nearest site.",
    ),
    retrieve=extend_schema(
        summary="A trial with sites, criteria, classification and versions",
        description="Answers 304 to If-None-Match (ETag) or If-Modified-Since when unchanged.",
        parameters=[
            OpenApiParameter("If-None-Match", OpenApiTypes.STR, OpenApiParameter.HEADER),
            OpenApiParameter("If-Modified-Since", OpenApiTypes.STR, OpenApiParameter.HEADER),
        ],
        responses={
            200: TrialDetailSerializer,
            304: OpenApiResponse(description="Not modified since the ETag or date sent"),
        },
    ),
)
class TrialViewSet(viewsets.ReadOnlyModelViewSet[Trial]):
    """Trials as synced from ClinicalTrials.gov, read by the criteria engine."""

    lookup_field = "nct_id"
    lookup_value_regex = r"NCT\d{8}"
    filterset_class = TrialFilter
    search_fields = ["nct_id", "brief_title", "official_title", "acronym"]
    ordering_fields = ["nct_id", "last_update_posted", "updated_at", "overall_status"]
    ordering = ["nct_id"]

    def get_queryset(self) -> QuerySet[Trial]:
        if self.action == "list":
            # A subquery, not a join: the page's COUNT(*) leaves it out.
            site_count = (
                TrialSite.objects.filter(trial=OuterRef("pk"))
                .order_by()
                .values("trial")
                .annotate(n=Count("pk"))
                .values("n")
            )
            return Trial.objects.only(*_LIST_FIELDS).annotate(
                site_count=Coalesce(Subquery(site_count), 0)
            )
        return Trial.objects.defer("raw", "detailed_description", "arm_groups")

    def get_serializer_class(self) -> type[serializers.BaseSerializer[Trial]]:
        return TrialListSerializer if self.action == "list" else TrialDetailSerializer

    def get_serializer_context(self) -> dict[str, Any]:
        context = super().get_serializer_context()
        context["distances"] = getattr(self.request, "trial_distances", None)
        return context

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        trial = self.get_object()
        etag = trial_etag(trial)
        last_modified = trial_last_modified(trial)
        headers = {"ETag": etag, "Last-Modified": http_date(last_modified.timestamp())}
        # Django's rules for If-None-Match / If-Modified-Since (If-Match and
        # If-Unmodified-Since too): a 304 (or 412) when they say so.
        conditional = get_conditional_response(
            request, etag=etag, last_modified=int(last_modified.timestamp())
        )
        if conditional is not None and conditional.status_code == status.HTTP_304_NOT_MODIFIED:
            return Response(status=status.HTTP_304_NOT_MODIFIED, headers=headers)
        if conditional is not None:  # If-Match / If-Unmodified-Since did not hold
            error = {"status": 412, "code": "precondition_failed", "message": "Changed since."}
            return Response({"error": error}, status=conditional.status_code, headers=headers)
        prefetch_related_objects(
            [trial],
            "sites",
            Prefetch("criteria", queryset=Criterion.objects.order_by("position")),
            Prefetch("versions", queryset=TrialVersion.objects.order_by("-number")),
        )
        return Response(self.get_serializer(trial).data, headers=headers)


class CanTriggerSync(permissions.BasePermission):
    """Site admins (``trials.add_syncrun``) and superusers."""

    message = "Only site admins may start a sync."

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        return bool(
            user
            and user.is_authenticated
            and (user.is_superuser or user.has_perm("trials.add_syncrun"))
        )


@extend_schema_view(
    list=extend_schema(summary="Registry syncs, latest first"),
    retrieve=extend_schema(summary="One registry sync, with its errors"),
)
class SyncRunViewSet(viewsets.ReadOnlyModelViewSet[SyncRun]):
    """Imports from ClinicalTrials.gov (nightly, or started by a site admin)."""

    queryset = SyncRun.objects.defer("checkpoint")
    lookup_value_regex = ID_PATTERN
    filterset_fields = ["status", "mode"]
    search_fields: list[str] = []
    ordering_fields = ["started_at", "finished_at"]
    ordering = ["-started_at"]

    def get_queryset(self) -> QuerySet[SyncRun]:
        queryset = SyncRun.objects.defer("checkpoint")
        if self.action == "list":
            queryset = queryset.defer("checkpoint", "errors")
        return queryset

    def get_serializer_class(self) -> type[serializers.BaseSerializer[SyncRun]]:
        if self.action == "retrieve":
            return SyncRunDetailSerializer
        if self.action == "trigger":
            return SyncTriggerSerializer
        return SyncRunSerializer

    @extend_schema(
        summary="Start a sync now (site admins)",
        request=SyncTriggerSerializer,
        responses={
            202: inline_serializer(
                "SyncQueued",
                {
                    "task_id": serializers.CharField(),
                    "full": serializers.BooleanField(),
                    "status": serializers.CharField(),
                    "runs_url": serializers.CharField(),
                },
            )
        },
        examples=[OpenApiExample("Incremental", value={"full": False}, request_only=True)],
    )
    @action(
        detail=False,
        methods=["post"],
        permission_classes=[CanTriggerSync],
        filter_backends=[],
        pagination_class=None,
    )
    def trigger(self, request: Request) -> Response:
        """Queue a sync for the workers; it is listed here once a worker starts it."""
        serializer = SyncTriggerSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        full = serializer.validated_data["full"]
        result = sync_trials_task.delay(full=full)
        return Response(
            {
                "task_id": result.id,
                "full": full,
                "status": "queued",
                "runs_url": reverse("syncrun-list", request=request),
            },
            status=status.HTTP_202_ACCEPTED,
        )


def register(router: BaseRouter) -> None:
    router.register("trials", TrialViewSet, basename="trial")
    router.register("syncs", SyncRunViewSet, basename="syncrun")
