"""Trials as ClinicalTrials.gov describes them, their history, and the syncs that keep them."""

from __future__ import annotations

from typing import Any

from django.db import models
from django.utils import timezone

from trials.fields import RecordJSONField

# Statuses under which a trial takes (or will soon take) patients.
OPEN_STATUSES = ("RECRUITING", "NOT_YET_RECRUITING", "ENROLLING_BY_INVITATION")


class TrialQuerySet(models.QuerySet["Trial"]):
    def open_to_enrolment(self) -> TrialQuerySet:
        return self.filter(overall_status__in=OPEN_STATUSES, removed_from_registry=False)


class Trial(models.Model):
    """One registry record, mapped to columns, with the record itself kept as received."""

    class Status(models.TextChoices):
        RECRUITING = "RECRUITING", "Recruiting"
        NOT_YET_RECRUITING = "NOT_YET_RECRUITING", "Not yet recruiting"
        ENROLLING_BY_INVITATION = "ENROLLING_BY_INVITATION", "Enrolling by invitation"
        ACTIVE_NOT_RECRUITING = "ACTIVE_NOT_RECRUITING", "Active, not recruiting"
        SUSPENDED = "SUSPENDED", "Suspended"
        TERMINATED = "TERMINATED", "Terminated"
        COMPLETED = "COMPLETED", "Completed"
        WITHDRAWN = "WITHDRAWN", "Withdrawn"
        UNKNOWN = "UNKNOWN", "Unknown status"

    nct_id = models.CharField("NCT id", max_length=11, unique=True)
    brief_title = models.TextField(blank=True)
    official_title = models.TextField(blank=True)
    acronym = models.CharField(max_length=200, blank=True)
    # Not limited to the choices: the registry may add statuses; unknown ones are kept as sent.
    overall_status = models.CharField(
        max_length=40, blank=True, choices=Status.choices, db_index=True
    )
    phases = models.JSONField(default=list, blank=True)
    study_type = models.CharField(max_length=40, blank=True)
    conditions = models.JSONField(default=list, blank=True)
    condition_mesh_terms = models.JSONField("condition MeSH terms", default=list, blank=True)
    keywords = models.JSONField(default=list, blank=True)
    interventions = models.JSONField(default=list, blank=True)
    intervention_mesh_terms = models.JSONField("intervention MeSH terms", default=list, blank=True)
    arm_groups = models.JSONField(default=list, blank=True)
    brief_summary = models.TextField(blank=True)
    detailed_description = models.TextField(blank=True)
    lead_sponsor = models.CharField(max_length=500, blank=True)
    start_date = models.CharField(max_length=10, blank=True, help_text="As given: 2023, 2023-04")
    completion_date = models.CharField(max_length=10, blank=True)
    last_update_posted = models.DateField(null=True, blank=True, db_index=True)
    eligibility_criteria = models.TextField(blank=True)
    minimum_age_value = models.DecimalField(max_digits=7, decimal_places=2, null=True, blank=True)
    minimum_age_unit = models.CharField(max_length=10, blank=True)
    maximum_age_value = models.DecimalField(max_digits=7, decimal_places=2, null=True, blank=True)
    maximum_age_unit = models.CharField(max_length=10, blank=True)
    sex = models.CharField(max_length=10, blank=True)
    healthy_volunteers = models.BooleanField(null=True, blank=True)
    raw = RecordJSONField("record as received", default=dict)
    content_hash = models.CharField(max_length=64)
    source_hash = models.CharField(
        max_length=64, blank=True, help_text="SHA-256 of the record's text as read from a file"
    )
    version_count = models.PositiveIntegerField(default=0)
    removed_from_registry = models.BooleanField(default=False, db_index=True)
    removed_at = models.DateTimeField(null=True, blank=True)
    needs_evaluation = models.BooleanField(
        default=True,
        db_index=True,
        help_text="Eligibility or status changed: criteria and matches must be recomputed.",
    )
    matching_inputs_at = models.DateTimeField(
        default=timezone.now,
        editable=False,
        help_text="Last change of anything the matcher reads (criteria, corrections, status, "
        "sites, classification): matches evaluated before it are not current.",
    )
    # What the criteria engine read (see trials.criteria): re-read when the record changes or
    # the engine's version does.
    criteria_engine_version = models.CharField(max_length=40, blank=True, db_index=True)
    criteria_text_hash = models.CharField(max_length=64, blank=True)
    criteria_parsed_at = models.DateTimeField(null=True, blank=True)
    classified_gastric = models.BooleanField(default=False)
    classified_immunotherapy = models.BooleanField(default=False)
    classified_preoperative = models.BooleanField(default=False)
    classification_evidence = models.JSONField(default=list, blank=True)
    classification_override = models.BooleanField(
        "coordinator's classification",
        null=True,
        blank=True,
        help_text="Set to overrule the engine: is this a gastric preoperative immunotherapy "
        "trial? Empty: as the engine classifies it.",
    )
    classification_note = models.TextField(blank=True)
    classification_by = models.ForeignKey(
        "auth.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    classification_at = models.DateTimeField(null=True, blank=True)
    gastric_preop_immunotherapy = models.BooleanField(
        default=False,
        db_index=True,
        help_text="Gastric/GEJ cancer, an immunotherapy arm, given before surgery (the engine's "
        "answer, or the coordinator's where they overruled it)",
    )
    curation_needs_review = models.BooleanField(
        default=False,
        db_index=True,
        help_text="The eligibility text changed after a coordinator corrected this trial",
    )
    orphaned_corrections = models.JSONField(
        default=list,
        blank=True,
        help_text="Corrections of criteria that are no longer in the eligibility text",
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = TrialQuerySet.as_manager()

    class Meta:
        ordering = ["nct_id"]

    def __str__(self) -> str:
        return f"{self.nct_id}: {self.brief_title or self.official_title}"[:120]

    @property
    def title(self) -> str:
        return self.brief_title or self.official_title

    @property
    def is_open(self) -> bool:
        return self.overall_status in OPEN_STATUSES and not self.removed_from_registry

    def get_registry_url(self) -> str:
        return f"https://clinicaltrials.gov/study/{self.nct_id}"


class Criterion(models.Model):
    """One eligibility criterion as the engine read it, and as a coordinator corrected it.

    The engine's reading is recomputed whenever the record changes; a coordinator's
    correction is carried over to the criterion with the same text, and wins.
    """

    class Kind(models.TextChoices):
        INCLUSION = "inclusion", "Inclusion"
        EXCLUSION = "exclusion", "Exclusion"

    class Category(models.TextChoices):
        AGE = "age", "Age"
        SEX = "sex", "Sex"
        DIAGNOSIS = "diagnosis", "Diagnosis"
        HISTOLOGY = "histology", "Histology"
        STAGE = "stage", "Stage"
        METASTASIS = "metastasis", "Metastasis"
        RESECTABILITY = "resectability", "Resectability"
        PERFORMANCE_STATUS = "performance_status", "Performance status"
        LAB = "lab", "Laboratory"
        PRIOR_THERAPY = "prior_therapy", "Prior therapy"
        BIOMARKER = "biomarker", "Biomarker"
        COMORBIDITY = "comorbidity", "Comorbidity"
        MEDICATION = "medication", "Medication"
        PREGNANCY = "pregnancy", "Pregnancy"
        SURGERY = "surgery", "Surgery"
        CONSENT = "consent", "Consent"
        OTHER = "other", "Other (not read)"

    class Join(models.TextChoices):
        ALL = "all", "All must hold"
        ANY = "any", "Any one is enough"

    trial = models.ForeignKey(Trial, on_delete=models.CASCADE, related_name="criteria")
    position = models.PositiveIntegerField()
    kind = models.CharField(max_length=10, choices=Kind.choices)
    text = models.TextField()
    start = models.PositiveIntegerField(null=True, blank=True)
    end = models.PositiveIntegerField(null=True, blank=True)
    parent_position = models.PositiveIntegerField(null=True, blank=True)
    header = models.BooleanField(default=False)
    origin = models.CharField(max_length=12, default="text")  # text / structured
    category = models.CharField(max_length=20, choices=Category.choices)
    constraints = models.JSONField(default=list, blank=True)
    join = models.CharField(max_length=3, choices=Join.choices, default=Join.ALL)
    # What the engine's reading left unexplained, and its review marks: a reading with either
    # never decides (unknown, "reading incomplete: ..."), until a coordinator corrects it.
    reading_gaps = models.JSONField(default=list, blank=True)
    reading_marks = models.JSONField(default=list, blank=True)
    # The constraints (indexes) read in full beside the gaps: each may still decide alone
    # (an inclusion's requirement not met, an exclusion's alternative present).
    reading_parts = models.JSONField(default=list, blank=True)
    # A coordinator's correction: empty fields keep the engine's reading.
    corrected_category = models.CharField(max_length=20, choices=Category.choices, blank=True)
    corrected_constraints = models.JSONField(null=True, blank=True)
    corrected_join = models.CharField(max_length=3, choices=Join.choices, blank=True)
    correction_note = models.TextField(blank=True)
    corrected_by = models.ForeignKey(
        "auth.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    corrected_at = models.DateTimeField(null=True, blank=True)
    needs_review = models.BooleanField(
        default=False, help_text="Corrected before the eligibility text last changed"
    )

    class Meta:
        ordering = ["trial", "position"]
        verbose_name_plural = "criteria"
        constraints = [
            models.UniqueConstraint(fields=["trial", "position"], name="unique_criterion_position")
        ]

    def __str__(self) -> str:
        return f"{self.trial_id} #{self.position} {self.kind}: {self.text[:60]}"

    @property
    def corrected(self) -> bool:
        # A note alone is curation too ("checked, the engine reads this right").
        return bool(
            self.corrected_category
            or self.corrected_constraints is not None
            or self.corrected_join
            or self.correction_note
        )

    @property
    def effective_category(self) -> str:
        return self.corrected_category or self.category

    @property
    def effective_constraints(self) -> list[dict[str, Any]]:
        return (
            self.corrected_constraints
            if self.corrected_constraints is not None
            else self.constraints
        )

    @property
    def effective_join(self) -> str:
        return self.corrected_join or self.join

    @property
    def parsed(self) -> bool:
        return bool(self.effective_constraints)


class TrialSite(models.Model):
    """A location of a trial (replaced as a whole whenever the record changes)."""

    trial = models.ForeignKey(Trial, on_delete=models.CASCADE, related_name="sites")
    facility = models.CharField(max_length=500, blank=True)
    status = models.CharField(max_length=40, blank=True)
    city = models.CharField(max_length=200, blank=True)
    state = models.CharField(max_length=200, blank=True)
    zip = models.CharField(max_length=40, blank=True)
    country = models.CharField(max_length=100, blank=True)
    latitude = models.FloatField(null=True, blank=True)
    longitude = models.FloatField(null=True, blank=True)
    # Where the coordinates come from when the registry gave none: "postal_code" or "city"
    # (looked up offline, see services.locate_sites), "none" when not found, "" not tried.
    located_from = models.CharField(max_length=20, blank=True, db_default="", default="")

    class Meta:
        ordering = ["trial", "id"]

    def __str__(self) -> str:
        place = ", ".join(part for part in (self.city, self.country) if part)
        return f"{self.facility} ({place})" if place else self.facility

    def as_dict(self) -> dict[str, Any]:
        return {
            "facility": self.facility,
            "status": self.status,
            "city": self.city,
            "state": self.state,
            "zip": self.zip,
            "country": self.country,
            "latitude": self.latitude,
            "longitude": self.longitude,
        }


class TrialVersion(models.Model):
    """The eligibility text and status of a trial as of one sync: its readable history."""

    trial = models.ForeignKey(Trial, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    recorded_at = models.DateTimeField(default=timezone.now)
    sync_run = models.ForeignKey(
        "SyncRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    last_update_posted = models.DateField(null=True, blank=True)
    overall_status = models.CharField(max_length=40, blank=True)
    eligibility_criteria = models.TextField(blank=True)
    content_hash = models.CharField(max_length=64)
    changes = models.JSONField(
        default=list, help_text='What changed from the previous version: "created", ...'
    )

    class Meta:
        ordering = ["trial", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["trial", "number"], name="unique_trial_version")
        ]

    def __str__(self) -> str:
        return f"{self.trial_id} v{self.number}"


class SyncRun(models.Model):
    """One import of registry records: what was asked, what came, what was done with it."""

    class Mode(models.TextChoices):
        FULL = "full", "Full listing"
        INCREMENTAL = "incremental", "Incremental"
        FILE = "file", "From files"
        SELECTED = "selected", "Selected trials"

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        INTERRUPTED = "interrupted", "Interrupted (resumed by a later run)"

    MAX_ERRORS_KEPT = 500

    mode = models.CharField(max_length=20, choices=Mode.choices)
    status = models.CharField(
        max_length=20, choices=Status.choices, default=Status.RUNNING, db_index=True
    )
    started_at = models.DateTimeField(default=timezone.now, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    source = models.TextField(blank=True, help_text="API base URL or the files imported")
    query = models.TextField(blank=True, help_text="API parameters, as a URL query string")
    since = models.DateField(null=True, blank=True, help_text="Records updated on/after this day")
    resumed_from = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="resumed_by"
    )
    pages = models.PositiveIntegerField(default=0)
    total_count = models.PositiveIntegerField(null=True, blank=True)
    fetched = models.PositiveIntegerField(default=0)
    created = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    unchanged = models.PositiveIntegerField(default=0)
    removed = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True, help_text="[{record, message}]")
    high_water_mark = models.DateField(
        null=True, blank=True, help_text="Latest last-update date seen; the next run starts there"
    )
    checkpoint = models.JSONField(
        default=dict, blank=True, help_text="Last committed page: token, number, records"
    )
    message = models.TextField(blank=True, help_text="Why the run failed, if it did")

    class Meta:
        ordering = ["-started_at"]
        get_latest_by = "started_at"

    def __str__(self) -> str:
        return f"Sync #{self.pk} {self.mode} {self.status}"

    @property
    def duration_seconds(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()

    def add_error(self, record: str, message: str) -> None:
        self.failed += 1
        if len(self.errors) < self.MAX_ERRORS_KEPT:
            self.errors.append({"record": record, "message": message})

    def summary(self) -> str:
        return (
            f"sync #{self.pk} {self.mode} {self.status}: {self.pages} page(s), "
            f"{self.fetched} fetched, {self.created} created, {self.updated} updated, "
            f"{self.unchanged} unchanged, {self.removed} removed, {self.failed} failed"
        )


class SyncRunListing(models.Model):
    """An NCT id a full listing returned; tells, at the end, which trials left the registry."""

    run = models.ForeignKey(SyncRun, on_delete=models.CASCADE, related_name="+")
    nct_id = models.CharField(max_length=11)

    class Meta:
        indexes = [models.Index(fields=["run", "nct_id"])]

    def __str__(self) -> str:
        return f"{self.run_id}: {self.nct_id}"
