"""Patient profiles: who the patient is and the clinical facts trial criteria ask about.

Every clinical fact is its own row with the date it refers to and where it came from (who
entered it, or which bundle and resource it was read from). A fact never recorded has no row:
unknown, not false. Values are stored in canonical units with the original kept beside them.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from trials.eligibility.facts import ComorbidityKind, TreatmentCategory
from trials.eligibility.units import Analyte, UnitError, to_canonical
from trials.eligibility.vocabulary import (
    CANCER_SITE_LABELS,
    HISTOLOGY_LABELS,
    CancerSite,
    Histology,
    StagingError,
    parse_stage_group,
    parse_tnm,
)


class Site(models.Model):
    """A hospital or clinic whose coordinators look after its patients."""

    code = models.SlugField(max_length=40, unique=True)
    name = models.CharField(max_length=200)
    postal_code = models.CharField(max_length=20, blank=True)
    country = models.CharField(max_length=2, blank=True, help_text="ISO 3166 alpha-2")
    latitude = models.FloatField(null=True, blank=True)
    longitude = models.FloatField(null=True, blank=True)
    # Who looks after this site's patients: they see those patients, their matches, reviews,
    # notes and exports, and nobody else's (``patients.access``). Superusers see every site.
    coordinators = models.ManyToManyField(
        settings.AUTH_USER_MODEL, related_name="coordinator_sites", blank=True
    )

    class Meta:
        ordering = ["name"]
        verbose_name = "hospital site"

    def __str__(self) -> str:
        return self.name


class Source(models.TextChoices):
    ADMIN = "admin", "Entered in the admin"
    WEB_FORM = "web_form", "Public pre-screening form"
    FHIR = "fhir", "FHIR import"
    JSON = "json", "Profile JSON import"
    API = "api", "REST API"


class Sex(models.TextChoices):
    FEMALE = "female", "Female"
    MALE = "male", "Male"
    OTHER = "other", "Other"


class Patient(models.Model):
    site = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="patients")
    external_id = models.CharField(
        "MRN", max_length=64, help_text="Unique within the site and its identifier system"
    )
    identifier_system = models.CharField(
        "MRN system",
        max_length=200,
        blank=True,
        help_text="The namespace the MRN belongs to (a FHIR Identifier.system); empty when the "
        "source gives none. Equal MRNs of two systems are two patients.",
    )
    sex = models.CharField(max_length=10, choices=Sex.choices, blank=True)
    birth_date = models.DateField(null=True, blank=True)
    # A deceased patient is kept, marked, and never matched nor flagged.
    deceased = models.BooleanField(default=False)
    deceased_on = models.DateField(null=True, blank=True)
    postal_code = models.CharField(max_length=20, blank=True)
    city = models.CharField(max_length=120, blank=True)
    country = models.CharField(max_length=2, blank=True, help_text="ISO 3166 alpha-2")
    latitude = models.FloatField(null=True, blank=True, editable=False)
    longitude = models.FloatField(null=True, blank=True, editable=False)
    location_precision = models.CharField(max_length=20, blank=True, editable=False)
    # Contact details: only for referrals from the public form, with consent.
    given_name = models.CharField(max_length=100, blank=True)
    family_name = models.CharField(max_length=100, blank=True)
    email = models.EmailField(blank=True)
    phone = models.CharField(max_length=40, blank=True)
    preferred_contact_time = models.CharField(max_length=100, blank=True)
    contact_consent_at = models.DateTimeField(null=True, blank=True)
    prior_anticancer_therapy = models.BooleanField(
        null=True,
        blank=True,
        help_text="Any chemotherapy, radiotherapy or immunotherapy for this cancer so far? "
        "Empty: not known.",
    )
    source = models.CharField(max_length=20, choices=Source.choices, default=Source.ADMIN)
    source_reference = models.CharField(max_length=300, blank=True)
    bundle_hash = models.CharField(max_length=64, blank=True, editable=False)
    bundle_timestamp = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now, editable=False)
    facts_changed_at = models.DateTimeField(
        default=timezone.now, editable=False, help_text="Last change of any clinical fact"
    )
    # Derived, written by each evaluation (``patients.matching``): candidate for radical
    # gastric surgery, true / false / unknown (None), with the reason. For filters and counts.
    surgical_candidate = models.BooleanField(null=True, blank=True, editable=False)
    surgical_candidate_reason = models.TextField(blank=True, editable=False)

    class Meta:
        ordering = ["site", "external_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["site", "identifier_system", "external_id"],
                name="unique_mrn_per_site_and_system",
            )
        ]

    def __str__(self) -> str:
        return f"{self.external_id} ({self.site.code})"

    def clean(self) -> None:
        if self.birth_date and self.birth_date > timezone.localdate():
            raise ValidationError({"birth_date": "The birth date is in the future."})
        if self.birth_date and self.birth_date.year < 1900:
            raise ValidationError({"birth_date": "The birth date is before 1900."})

    @property
    def full_name(self) -> str:
        return " ".join(part for part in (self.given_name, self.family_name) if part)


# The patient's own fields the matcher reads: a change to any is a change of facts.
MATCHED_FIELDS = (
    "sex",
    "birth_date",
    "deceased",
    "latitude",
    "longitude",
    "prior_anticancer_therapy",
)


class Fact(models.Model):
    """What every clinical fact carries: its date and where it came from."""

    observed_on = models.DateField("date", null=True, blank=True)
    source = models.CharField(max_length=20, choices=Source.choices, default=Source.ADMIN)
    source_reference = models.CharField(
        max_length=300, blank=True, help_text="Bundle and resource it was read from"
    )
    source_key = models.CharField(
        max_length=300,
        blank=True,
        editable=False,
        help_text="Identifier of the fact within its source (e.g. a FHIR fullUrl): a re-import "
        "updates this row",
    )
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    recorded_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        abstract = True

    def clean(self) -> None:
        if self.observed_on is None:
            return
        if self.observed_on > timezone.localdate() and not self.may_be_in_the_future():
            raise ValidationError({"observed_on": "The date is in the future."})
        # The patient may not be saved yet (the admin's add page): use the object as given.
        cached = "patient" in self._state.fields_cache
        patient: Patient | None = (
            self.patient  # type: ignore[attr-defined]
            if cached or self.patient_id  # type: ignore[attr-defined]
            else None
        )
        born = patient.birth_date if patient else None
        # A birth date that is itself impossible gets its own message, not one per fact.
        if born and born <= timezone.localdate() and self.observed_on < born:
            raise ValidationError({"observed_on": "The date is before the birth date."})

    def may_be_in_the_future(self) -> bool:
        return False

    def provenance_text(self) -> str:
        parts = [self.get_source_display()]
        if self.source_reference:
            parts.append(self.source_reference)
        return ": ".join(parts)


class PrimaryCancer(Fact):
    patient = models.OneToOneField(Patient, on_delete=models.CASCADE, related_name="primary_cancer")
    site = models.CharField(
        max_length=20, choices=[(s.value, CANCER_SITE_LABELS[s]) for s in CancerSite], blank=True
    )
    siewert_type = models.CharField(
        max_length=3, choices=[("I", "I"), ("II", "II"), ("III", "III")], blank=True
    )
    icd10_code = models.CharField("ICD-10 code", max_length=10, blank=True)
    histology = models.CharField(
        max_length=20, choices=[(h.value, HISTOLOGY_LABELS[h]) for h in Histology], blank=True
    )
    morphology_code = models.CharField(
        "ICD-O-3 morphology", max_length=10, blank=True, help_text="e.g. 8140/3"
    )

    class Meta:
        verbose_name = "primary cancer"

    def __str__(self) -> str:
        return f"{self.get_site_display() or 'unknown site'}, {self.get_histology_display()}"


class StageObservation(Fact):
    class Context(models.TextChoices):
        CLINICAL = "clinical", "Clinical (cTNM)"
        PATHOLOGICAL = "pathological", "Pathological (pTNM)"

    class Category(models.TextChoices):
        T = "T", "T (primary tumour)"
        N = "N", "N (regional nodes)"
        M = "M", "M (distant metastasis)"
        STAGE = "stage", "Stage group"
        CYTOLOGY = "CY", "Peritoneal cytology"

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="stages")
    context = models.CharField(max_length=20, choices=Context.choices, default=Context.CLINICAL)
    category = models.CharField(max_length=10, choices=Category.choices)
    value = models.CharField(
        max_length=10, help_text="AJCC 8th: T3, T4b, N2, M0, IIIA; cytology CY0 / CY1"
    )

    class Meta:
        ordering = ["patient", "context", "category", "observed_on"]
        verbose_name = "staging"

    def __str__(self) -> str:
        prefix = "c" if self.context == self.Context.CLINICAL else "p"
        return self.value if self.category in ("stage", "CY") else prefix + self.value

    def clean(self) -> None:
        super().clean()
        try:
            self.value = normalize_stage_value(self.category, self.value)
        except StagingError as exc:
            raise ValidationError({"value": str(exc)}) from None


def normalize_stage_value(category: str, value: str) -> str:
    """The canonical spelling of a staging value; StagingError when it does not exist."""
    if category == StageObservation.Category.CYTOLOGY:
        cleaned = value.strip().upper().replace(" ", "")
        if cleaned in ("CY0", "CY1", "CY+", "CY-"):
            return {"CY+": "CY1", "CY-": "CY0"}.get(cleaned, cleaned)
        raise StagingError(f"{value!r} is not a peritoneal cytology result (CY0 or CY1)")
    if category == StageObservation.Category.STAGE:
        return parse_stage_group(value)
    return parse_tnm(value, category)[0]


class Metastasis(Fact):
    class Location(models.TextChoices):
        PERITONEUM = "peritoneum", "Peritoneum"
        LIVER = "liver", "Liver"
        LUNG = "lung", "Lung"
        BONE = "bone", "Bone"
        BRAIN = "brain", "Brain"
        LEPTOMENINGEAL = "leptomeningeal", "Leptomeninges"
        DISTANT_NODES = "distant_lymph_nodes", "Distant lymph nodes"
        OTHER = "other", "Other"

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="metastases")
    location = models.CharField(max_length=30, choices=Location.choices)
    icd10_code = models.CharField("ICD-10 code", max_length=10, blank=True)

    class Meta:
        verbose_name_plural = "metastases"

    def __str__(self) -> str:
        return self.get_location_display()


class PerformanceStatus(Fact):
    class Scale(models.TextChoices):
        ECOG = "ecog", "ECOG / WHO"
        KARNOFSKY = "karnofsky", "Karnofsky"

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="performance")
    scale = models.CharField(max_length=10, choices=Scale.choices, default=Scale.ECOG)
    value = models.PositiveSmallIntegerField(validators=[MaxValueValidator(100)])

    class Meta:
        verbose_name_plural = "performance status"

    def __str__(self) -> str:
        return f"{self.get_scale_display()} {self.value}"

    def clean(self) -> None:
        super().clean()
        if self.value is None:
            return
        if self.scale == self.Scale.ECOG and not 0 <= self.value <= 5:
            raise ValidationError({"value": "ECOG is a score from 0 to 5."})
        if self.scale == self.Scale.KARNOFSKY and (self.value > 100 or self.value % 10):
            raise ValidationError({"value": "Karnofsky is 0 to 100 in steps of 10."})


class LabResult(Fact):
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="labs")
    analyte = models.CharField(max_length=30, choices=[(a.value, a.label) for a in Analyte])
    original_value = models.FloatField("value", validators=[MinValueValidator(0)])
    original_unit = models.CharField("unit", max_length=30, help_text="As reported, e.g. 10^3/uL")
    original_uln = models.FloatField(
        "upper limit of normal",
        null=True,
        blank=True,
        validators=[MinValueValidator(0)],
        help_text="The result's own ULN, in the same unit",
    )
    value = models.FloatField(editable=False, help_text="In the canonical unit")
    unit = models.CharField(max_length=20, editable=False, help_text="Canonical unit")
    uln = models.FloatField(null=True, blank=True, editable=False, help_text="Canonical unit")

    class Meta:
        ordering = ["patient", "analyte", "observed_on"]
        verbose_name = "lab result"

    def __str__(self) -> str:
        return f"{self.get_analyte_display()} {self.value:g} {self.unit}"

    def clean(self) -> None:
        super().clean()
        if not self.analyte or self.original_value is None or not self.original_unit:
            return
        if self.original_value < 0 or (self.original_uln or 0) < 0:
            return  # the fields' own validators say so, next to the right field
        try:
            self.convert()
        except UnitError as exc:
            raise ValidationError({"original_unit": str(exc)}) from None

    def convert(self) -> None:
        """Fill the canonical value (and ULN) from what was reported; UnitError if it can't."""
        analyte = Analyte(self.analyte)
        canonical = to_canonical(analyte, self.original_value, self.original_unit)
        self.value, self.unit = canonical.value, canonical.unit
        self.uln = (
            to_canonical(analyte, self.original_uln, self.original_unit).value
            if self.original_uln is not None
            else None
        )


class Biomarker(Fact):
    class Marker(models.TextChoices):
        HER2_STATUS = "her2_status", "HER2 status"
        HER2_IHC = "her2_ihc", "HER2 IHC score"
        HER2_ISH = "her2_ish", "HER2 in situ hybridisation"
        MSI = "msi", "Microsatellite instability"
        MMR = "mmr", "Mismatch repair"
        PDL1_CPS = "pdl1_cps", "PD-L1 combined positive score"
        EBV = "ebv", "EBV"
        CLDN18 = "cldn18", "Claudin 18.2"

    # Accepted values per marker (numeric markers take a number instead).
    VALUES = {
        "her2_status": ("positive", "negative", "equivocal"),
        "her2_ihc": ("0", "1+", "2+", "3+"),
        "her2_ish": ("amplified", "not amplified"),
        "msi": ("MSI-H", "MSI-L", "MSS"),
        "mmr": ("dMMR", "pMMR"),
        "ebv": ("positive", "negative"),
        "cldn18": ("positive", "negative"),
    }

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="biomarkers")
    marker = models.CharField(max_length=20, choices=Marker.choices)
    value = models.CharField(max_length=20, blank=True)
    numeric_value = models.FloatField(
        null=True, blank=True, validators=[MinValueValidator(0)], help_text="PD-L1 CPS, %"
    )

    def __str__(self) -> str:
        shown = self.value or (f"{self.numeric_value:g}" if self.numeric_value is not None else "")
        return f"{self.get_marker_display()}: {shown}"

    def clean(self) -> None:
        super().clean()
        allowed = self.VALUES.get(self.marker)
        if allowed and self.value not in allowed:
            raise ValidationError({"value": f"Use one of: {', '.join(allowed)}."})
        if self.marker == self.Marker.PDL1_CPS and self.numeric_value is None:
            raise ValidationError({"numeric_value": "Give the combined positive score."})


class Treatment(Fact):
    class Intent(models.TextChoices):
        NEOADJUVANT = "neoadjuvant", "Neoadjuvant"
        PERIOPERATIVE = "perioperative", "Perioperative"
        ADJUVANT = "adjuvant", "Adjuvant"
        PALLIATIVE = "palliative", "Palliative"
        CURATIVE = "curative", "Curative"

    class Status(models.TextChoices):
        COMPLETED = "completed", "Completed"
        ACTIVE = "active", "Ongoing"
        STOPPED = "stopped", "Stopped"

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="treatments")
    category = models.CharField(
        max_length=20, choices=[(c.value, c.value.capitalize()) for c in TreatmentCategory]
    )
    agent = models.CharField(max_length=120, blank=True)
    agent_class = models.CharField(max_length=60, blank=True, help_text="e.g. anti-PD-1")
    rxnorm_code = models.CharField("RxNorm code", max_length=20, blank=True)
    intent = models.CharField(max_length=20, choices=Intent.choices, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, blank=True)
    start_date = models.DateField(null=True, blank=True)
    end_date = models.DateField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.category}: {self.agent}" if self.agent else self.category

    def clean(self) -> None:
        super().clean()
        if self.start_date and self.end_date and self.end_date < self.start_date:
            raise ValidationError({"end_date": "The treatment ends before it starts."})


class Medication(Fact):
    class Category(models.TextChoices):
        SYSTEMIC_STEROID = "systemic_steroid", "Systemic corticosteroid"
        IMMUNOSUPPRESSANT = "immunosuppressant", "Other immunosuppressant"
        OTHER = "other", "Other"

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="medications")
    name = models.CharField(max_length=120)
    rxnorm_code = models.CharField("RxNorm code", max_length=20, blank=True)
    category = models.CharField(max_length=20, choices=Category.choices)
    active = models.BooleanField(null=True, blank=True, help_text="Taken now? Empty: not known")
    prednisone_mg_per_day = models.FloatField(
        "prednisone-equivalent mg/day", null=True, blank=True, validators=[MinValueValidator(0)]
    )
    start_date = models.DateField(null=True, blank=True)
    end_date = models.DateField(null=True, blank=True)

    def __str__(self) -> str:
        return self.name


class Comorbidity(Fact):
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="comorbidities")
    kind = models.CharField(
        max_length=30,
        choices=[
            (ComorbidityKind.AUTOIMMUNE.value, "Autoimmune disease"),
            (ComorbidityKind.ILD.value, "Interstitial lung disease / pneumonitis"),
            (ComorbidityKind.HBV.value, "Hepatitis B"),
            (ComorbidityKind.HCV.value, "Hepatitis C"),
            (ComorbidityKind.HIV.value, "HIV"),
            (ComorbidityKind.IMMUNODEFICIENCY.value, "Immunodeficiency (not HIV)"),
            (ComorbidityKind.INFECTION.value, "Acute infection (treated systemically)"),
            (ComorbidityKind.ORGAN_TRANSPLANT.value, "Organ transplant"),
            (ComorbidityKind.STEM_CELL_TRANSPLANT.value, "Allogeneic stem-cell transplant"),
            (ComorbidityKind.OTHER_MALIGNANCY.value, "Other malignancy"),
            (ComorbidityKind.MYOCARDIAL_INFARCTION.value, "Myocardial infarction"),
            (ComorbidityKind.UNSTABLE_ANGINA.value, "Unstable angina"),
            (ComorbidityKind.HEART_FAILURE.value, "Heart failure"),
            (ComorbidityKind.ARRHYTHMIA.value, "Cardiac arrhythmia"),
            (ComorbidityKind.STROKE.value, "Stroke / transient ischaemic attack"),
            (ComorbidityKind.ARTERIAL_THROMBOEMBOLISM.value, "Arterial thromboembolism"),
            (ComorbidityKind.VENOUS_THROMBOEMBOLISM.value, "Venous thromboembolism (DVT / PE)"),
            (ComorbidityKind.OTHER.value, "Other"),
        ],
    )
    name = models.CharField(max_length=200, blank=True, help_text="e.g. type 1 diabetes")
    icd10_code = models.CharField("ICD-10 code", max_length=10, blank=True)
    present = models.BooleanField(default=True, help_text="Untick to record it as ruled out")
    active = models.BooleanField(null=True, blank=True, help_text="Empty: not known")
    onset_date = models.DateField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "comorbidities"

    def __str__(self) -> str:
        label = self.name or self.get_kind_display()
        return label if self.present else f"no {label}"


class ReproductiveStatus(Fact):
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="reproductive")
    pregnant = models.BooleanField(null=True, blank=True)
    breastfeeding = models.BooleanField(null=True, blank=True)

    class Meta:
        verbose_name = "pregnancy / breastfeeding"
        verbose_name_plural = "pregnancy / breastfeeding"

    def __str__(self) -> str:
        return f"pregnant: {self.pregnant}, breastfeeding: {self.breastfeeding}"


class Surgery(Fact):
    class Procedure(models.TextChoices):
        TOTAL_GASTRECTOMY = "total_gastrectomy", "Total gastrectomy"
        SUBTOTAL_GASTRECTOMY = "subtotal_gastrectomy", "Subtotal gastrectomy"
        DISTAL_GASTRECTOMY = "distal_gastrectomy", "Distal gastrectomy"
        PROXIMAL_GASTRECTOMY = "proximal_gastrectomy", "Proximal gastrectomy"
        ESOPHAGECTOMY = "esophagectomy", "Esophagectomy"
        OTHER = "other", "Other"

    class Status(models.TextChoices):
        PLANNED = "planned", "Planned"
        DONE = "done", "Done"
        CANCELLED = "cancelled", "Cancelled"

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="surgeries")
    procedure = models.CharField(max_length=30, choices=Procedure.choices)
    status = models.CharField(max_length=20, choices=Status.choices)

    class Meta:
        verbose_name_plural = "surgeries"

    def __str__(self) -> str:
        return f"{self.get_procedure_display()} ({self.get_status_display()})"

    def may_be_in_the_future(self) -> bool:
        return self.status == self.Status.PLANNED


FACT_MODELS: tuple[type[Fact], ...] = (
    PrimaryCancer,
    StageObservation,
    Metastasis,
    PerformanceStatus,
    LabResult,
    Biomarker,
    Treatment,
    Medication,
    Comorbidity,
    ReproductiveStatus,
    Surgery,
)


class MatchQuerySet(models.QuerySet["Match"]):
    def current(self) -> MatchQuerySet:
        """Matches evaluated on the patient's and the trial's present inputs, by this engine."""
        from patients.matching import MATCHER_VERSION

        return self.filter(
            engine_version=MATCHER_VERSION,
            patient_facts_at=models.F("patient__facts_changed_at"),
            trial_inputs_at=models.F("trial__matching_inputs_at"),
        )

    def stale(self) -> MatchQuerySet:
        return self.exclude(pk__in=self.current().values("pk"))


# The review queue's order: flagged pairs first, then possible, then eligible, ineligible
# last. One expression for the queue's ORDER BY and the index that serves it.
QUEUE_RANK = models.Case(
    models.When(flagged=True, then=models.Value(0)),
    models.When(verdict="possible", then=models.Value(1)),
    models.When(verdict="eligible", then=models.Value(2)),
    default=models.Value(3),
    output_field=models.IntegerField(),
)

# What a list of matches reads of each (queue, patient page, trial page): enough for the
# verdict, flag, score, distance and currency columns, without the outcomes.
MATCH_LIST_FIELDS = (
    "patient_id",
    "trial_id",
    "verdict",
    "score",
    "flagged",
    "flag_reason",
    "distance_km",
    "engine_version",
    "patient_facts_at",
    "trial_inputs_at",
)


class Match(models.Model):
    """One patient against one trial: the verdict, the flag and every criterion's outcome.

    Derived data, recomputed whenever its inputs change; a match whose patient facts, trial
    inputs or engine changed since it was evaluated is not current (``Match.objects.current``)
    and is never presented as if it were.
    """

    class Verdict(models.TextChoices):
        ELIGIBLE = "eligible", "Eligible"
        POSSIBLE = "possible", "Possibly eligible"
        INELIGIBLE = "ineligible", "Ineligible"

    # Indexes are the composite ones in Meta only: every re-match rewrites these rows, and
    # each extra index (the foreign keys' own, verdict, flagged) is paid on every write.
    patient = models.ForeignKey(
        Patient, on_delete=models.CASCADE, related_name="matches", db_index=False
    )
    trial = models.ForeignKey(
        "trials.Trial", on_delete=models.CASCADE, related_name="matches", db_index=False
    )
    verdict = models.CharField(max_length=12, choices=Verdict.choices)
    score = models.FloatField(help_text="Share of criteria satisfied, 0-100")
    flagged = models.BooleanField(default=False)
    flag_reason = models.TextField(blank=True)
    distance_km = models.FloatField(null=True, blank=True)
    # [[position, outcome, reason, [missing facts]], ...] for the criteria the engine read;
    # a criterion not listed was not read (unknown, needs review).
    outcomes = models.JSONField(default=list)
    unknown_facts = models.JSONField(default=list, help_text="Facts that would decide it")
    engine_version = models.CharField(max_length=40)
    patient_facts_at = models.DateTimeField()
    trial_inputs_at = models.DateTimeField()
    evaluated_at = models.DateTimeField(default=timezone.now)
    evaluated_on = models.DateField(help_text="The date ages and windows were computed for")

    objects = MatchQuerySet.as_manager()

    class Meta:
        verbose_name = "match"
        verbose_name_plural = "review queue"
        constraints = [
            models.UniqueConstraint(fields=["patient", "trial"], name="one_match_per_pair")
        ]
        indexes = [
            models.Index(fields=["patient", "flagged", "verdict"], name="match_patient_queue"),
            models.Index(fields=["trial", "verdict"], name="match_trial_verdict"),
            # The queue's default page: a walk of this index instead of sorting every pair
            # (380 ms -> 65 ms with 2 million pairs). Ineligible pairs are not in the queue.
            models.Index(
                QUEUE_RANK,
                models.F("score").desc(),
                "patient",
                "trial",
                name="match_queue_order",
                condition=~models.Q(verdict="ineligible"),
            ),
            # The queue sorted by distance or by score: the first key from an index, the
            # rest an incremental sort (700 ms -> tens of ms with 2.7 million pairs).
            models.Index(
                "distance_km",  # ascending: PostgreSQL puts NULLs last, as the queue does
                name="match_queue_distance",
                condition=~models.Q(verdict="ineligible"),
            ),
            models.Index(
                models.F("score").desc(),
                name="match_queue_score",
                condition=~models.Q(verdict="ineligible"),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.patient_id} x {self.trial_id}: {self.verdict}"


class Review(models.Model):
    """The coordinator's follow-up of one (patient, trial) pair.

    Kept apart from ``Match``, which every re-evaluation rewrites: status, assignee and notes
    survive any number of re-matches. ``verdict_seen`` / ``flagged_seen`` hold what the match
    said when the review last moved, so a verdict that changed since shows as such.
    """

    class Status(models.TextChoices):
        NEW = "new", "New"
        UNDER_REVIEW = "under_review", "Under review"
        CONTACTED = "contacted", "Contacted"
        CONSENTED = "consented", "Consented"
        ENROLLED = "enrolled", "Enrolled"
        NOT_ELIGIBLE = "not_eligible", "Not eligible"
        DECLINED = "declined", "Declined"

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="reviews")
    trial = models.ForeignKey("trials.Trial", on_delete=models.CASCADE, related_name="reviews")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.NEW)
    status_reason = models.TextField(
        blank=True, help_text="Why not eligible / declined (required for those)"
    )
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="assigned_reviews",
    )
    verdict_seen = models.CharField(max_length=12, blank=True)
    flagged_seen = models.BooleanField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["patient", "trial"], name="one_review_per_pair")
        ]
        indexes = [models.Index(fields=["status"], name="review_status")]

    def __str__(self) -> str:
        return f"review {self.patient_id} x {self.trial_id}: {self.status}"


class ReviewNote(models.Model):
    review = models.ForeignKey(Review, on_delete=models.CASCADE, related_name="notes")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    text = models.TextField()
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["created_at", "pk"]

    def __str__(self) -> str:
        return f"note on {self.review_id} at {self.created_at:%Y-%m-%d %H:%M}"


class ReviewTransition(models.Model):
    """One move of a review (status or assignee), by whom and when; append-only."""

    review = models.ForeignKey(Review, on_delete=models.CASCADE, related_name="transitions")
    from_status = models.CharField(max_length=20, choices=Review.Status.choices, blank=True)
    to_status = models.CharField(max_length=20, choices=Review.Status.choices)
    reason = models.TextField(blank=True)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    verdict = models.CharField(max_length=12, blank=True, help_text="The match's, at the time")
    at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["at", "pk"]

    def __str__(self) -> str:
        return f"{self.from_status or '-'} -> {self.to_status}"


class FlagEvent(models.Model):
    """A flag that appeared, changed verdict or went away in an evaluation.

    Written by ``patients.matching`` when it replaces a patient's matches; read by the
    dashboard ("new flags since the last sync") and the coordinators' email digest, which
    stamps ``notified_at`` once it has gone out.
    """

    class Kind(models.TextChoices):
        NEW = "new", "New flag"
        CHANGED = "changed", "Flag changed verdict"
        CLEARED = "cleared", "Flag cleared"

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="flag_events")
    trial = models.ForeignKey("trials.Trial", on_delete=models.CASCADE, related_name="flag_events")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    verdict = models.CharField(max_length=12, blank=True)
    previous_verdict = models.CharField(max_length=12, blank=True)
    at = models.DateTimeField(default=timezone.now, db_index=True)
    notified_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        ordering = ["-at", "pk"]

    def __str__(self) -> str:
        return f"{self.kind} flag {self.patient_id} x {self.trial_id}"


class PrescreenDailyCount(models.Model):
    """How many visitors started, completed and were referred from the public pre-screening
    form on a day: counts only, never an answer (``PRESCREEN_KEEP_ANONYMOUS = "counts"``)."""

    day = models.DateField(unique=True)
    started = models.PositiveIntegerField(default=0)
    completed = models.PositiveIntegerField(default=0)
    referred = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-day"]
        verbose_name = "pre-screening daily count"

    def __str__(self) -> str:
        return f"{self.day}: {self.started} started, {self.completed} completed"


class ApiToken(models.Model):
    """A REST API key of a hospital system, acting as ``user``.

    The key is shown once, when it is created; only its SHA-256 is stored (``key_hash``), with
    its first characters (``prefix``) to tell keys apart. A revoked key is refused at once.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100, help_text="What uses it, e.g. the EHR integration")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    prefix = models.CharField(max_length=12, db_index=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)

    KEY_PREFIX = "tm_"
    PREFIX_LENGTH = 11  # "tm_" and 8 characters of the key

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.name})"

    @staticmethod
    def hash_key(key: str) -> str:
        import hashlib

        return hashlib.sha256(key.encode()).hexdigest()

    @classmethod
    def issue(cls, user: object, name: str) -> tuple[ApiToken, str]:
        """Create a token for ``user``; returns it with the key, which is never shown again."""
        import secrets

        key = cls.KEY_PREFIX + secrets.token_urlsafe(32)
        token = cls.objects.create(
            user=user, name=name, key_hash=cls.hash_key(key), prefix=key[: cls.PREFIX_LENGTH]
        )
        return token, key

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None
