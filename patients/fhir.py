"""FHIR R4 (mCODE-style) bundles read into a patient profile, as FHIR-IMPORT.md specifies.

The reader takes what it knows, keeps the source resource of every fact, and reports what it
left out and why; it never guesses a value it did not read (a lab without a unit is left out,
not assumed). A bundle that cannot stand for one patient (not a Bundle, no Patient, two
Patients, no identifier) is refused whole; a resource that fails validation or cannot be
used is reported and skipped while the rest is read.
"""

from __future__ import annotations

import collections
import datetime
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.utils import timezone
from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from patients.profile import FactData, Problem, ProfileData, document_hash
from trials.eligibility.drugs import Drug, drug_by_rxnorm, find_drugs
from trials.eligibility.units import (
    Analyte,
    UnitError,
    from_canonical,
    normalize_unit,
    to_canonical,
)
from trials.eligibility.vocabulary import (
    SNOMED_HISTOLOGY,
    Histology,
    StagingError,
    histology_from_morphology,
    histology_from_text,
    parse_stage_group,
    parse_tnm,
)

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
ICD10 = ("http://hl7.org/fhir/sid/icd-10-cm", "http://hl7.org/fhir/sid/icd-10")
ICDO3 = "http://terminology.hl7.org/CodeSystem/icd-o-3"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
UCUM = "http://unitsofmeasure.org"
MCODE_PRIMARY = "http://hl7.org/fhir/us/mcode/StructureDefinition/mcode-primary-cancer-condition"
HISTOLOGY_EXTENSION = (
    "http://hl7.org/fhir/us/mcode/StructureDefinition/mcode-histology-morphology-behavior"
)

STAGING_CODES = {
    "21905-5": ("clinical", "T"),
    "21906-3": ("clinical", "N"),
    "21907-1": ("clinical", "M"),
    "21908-9": ("clinical", "stage"),
    "21899-0": ("pathological", "T"),
    "21900-6": ("pathological", "N"),
    "21901-4": ("pathological", "M"),
    "21902-2": ("pathological", "stage"),
}
# The same categories as mCODE STU2 and later code them (SNOMED CT), with their values coded
# in SNOMED whose display is the AJCC code ("American Joint Committee on Cancer cT3").
SNOMED_STAGING_CODES = {
    "399504009": ("clinical", "T"),
    "399534004": ("clinical", "N"),
    "399387003": ("clinical", "M"),
    "399537006": ("clinical", "stage"),
    "384625004": ("pathological", "T"),
    "371494008": ("pathological", "N"),
    "371497001": ("pathological", "M"),
    "399588009": ("pathological", "stage"),
}
# Condition.stage.type: which staging a stage summary is.
STAGE_TYPES = {code: context for code, (context, category) in SNOMED_STAGING_CODES.items()}
STAGE_TYPES.update(
    {code: context for code, (context, category) in STAGING_CODES.items() if category == "stage"}
)
STAGE_TYPES.update({"260998006": "clinical", "261023001": "pathological"})  # SNOMED staging
LAB_CODES = {
    "751-8": Analyte.ANC,
    "26499-4": Analyte.ANC,
    "777-3": Analyte.PLATELETS,
    "26515-7": Analyte.PLATELETS,
    "718-7": Analyte.HAEMOGLOBIN,
    "6690-2": Analyte.WBC,
    "26464-8": Analyte.WBC,
    "731-0": Analyte.LYMPHOCYTES,
    "24467-3": Analyte.CD4,
    "2160-0": Analyte.CREATININE,
    "14682-9": Analyte.CREATININE,
    "1975-2": Analyte.BILIRUBIN,
    "14631-6": Analyte.BILIRUBIN,
    "1920-8": Analyte.AST,
    "1742-6": Analyte.ALT,
    "1751-7": Analyte.ALBUMIN,
    "2164-2": Analyte.CREATININE_CLEARANCE,
    "33914-3": Analyte.EGFR,
    "62238-1": Analyte.EGFR,
    "29463-7": Analyte.WEIGHT,
    "8302-2": Analyte.HEIGHT,
    "6301-6": Analyte.INR,  # INR in Platelet poor plasma by Coagulation assay
    "34714-6": Analyte.INR,  # INR in Blood by Coagulation assay
    "46418-0": Analyte.INR,  # INR in Capillary blood by Coagulation assay
    "38875-1": Analyte.INR,  # INR in Platelet poor plasma or blood by Coagulation assay
    "5902-2": Analyte.PT,  # Prothrombin time (PT)
    "5964-2": Analyte.PT,  # Prothrombin time (PT) in Blood by Coagulation assay
    "3173-2": Analyte.APTT,  # aPTT in Blood by Coagulation assay
    "14979-9": Analyte.APTT,  # aPTT in Platelet poor plasma by Coagulation assay
    "6768-6": Analyte.ALP,  # Alkaline phosphatase [Enzymatic activity/volume] in Serum or Plasma
    "2889-4": Analyte.URINE_PROTEIN,  # Protein [Mass/time] in 24 hour Urine
    "10230-1": Analyte.LVEF,  # Left ventricular Ejection fraction
    "8806-2": Analyte.LVEF,  # Left ventricular Ejection fraction by 2D echo
    "18043-0": Analyte.LVEF,  # Left ventricular Ejection fraction by US
    "8636-3": Analyte.QTC,  # QT interval corrected (8634-8 is the uncorrected QT: not used)
}
ECOG_CODE, KARNOFSKY_CODE = "89247-1", "89243-0"
ECOG_ANSWERS = {
    "LA9622-7": 0,
    "LA9623-5": 1,
    "LA9624-3": 2,
    "LA9625-0": 3,
    "LA9626-8": 4,
    "LA9627-6": 5,
}
HER2_STATUS_CODE, HER2_IHC_CODE, MSI_CODE, PREGNANCY_CODE = (
    "48676-1",
    "18474-7",
    "81695-9",
    "82810-3",
)
POSITIVE, NEGATIVE = "10828004", "260385009"
PREGNANT, NOT_PREGNANT = "77386006", "60001007"
GASTRIC_PRIMARY_SNOMED = "363349007"

# ICD-10-CM prefixes of the comorbidities trial criteria ask about (FHIR-IMPORT.md, DOMAIN.md).
COMORBIDITY_CODES: tuple[tuple[str, str, str], ...] = (
    ("M05", "autoimmune", "rheumatoid arthritis"),
    ("M06", "autoimmune", "rheumatoid arthritis"),
    ("M32", "autoimmune", "systemic lupus erythematosus"),
    ("M30", "autoimmune", "vasculitis"),
    ("M31", "autoimmune", "vasculitis"),
    ("M35.0", "autoimmune", "Sjögren syndrome"),
    ("K50", "autoimmune", "Crohn's disease"),
    ("K51", "autoimmune", "ulcerative colitis"),
    ("E05.0", "autoimmune", "Graves' disease"),
    ("E06.3", "autoimmune", "autoimmune thyroiditis"),
    ("E10", "autoimmune", "type 1 diabetes"),
    ("L40", "autoimmune", "psoriasis"),
    ("L80", "autoimmune", "vitiligo"),
    ("G35", "autoimmune", "multiple sclerosis"),
    ("G70.0", "autoimmune", "myasthenia gravis"),
    ("K90.0", "autoimmune", "coeliac disease"),
    ("J84", "ild", "interstitial lung disease"),
    ("J70.2", "ild", "drug-induced interstitial lung disorder"),
    ("J70.3", "ild", "drug-induced interstitial lung disorder"),
    ("J70.4", "ild", "drug-induced interstitial lung disorder"),
    ("J70.1", "ild", "radiation pneumonitis"),
    ("J70.0", "ild", "radiation pneumonitis"),
    ("B18.0", "hbv", "chronic hepatitis B"),
    ("B18.1", "hbv", "chronic hepatitis B"),
    ("B16", "hbv", "acute hepatitis B"),
    ("B18.2", "hcv", "chronic hepatitis C"),
    ("B17.1", "hcv", "acute hepatitis C"),
    ("B20", "hiv", "HIV disease"),
    ("Z21", "hiv", "asymptomatic HIV infection"),
    # Acute infections that are treated systemically (not viral colds, not influenza).
    ("A15", "infection", "respiratory tuberculosis"),
    ("A16", "infection", "respiratory tuberculosis"),
    ("A17", "infection", "tuberculosis of nervous system"),
    ("A18", "infection", "tuberculosis of other organs"),
    ("A19", "infection", "miliary tuberculosis"),
    ("A40", "infection", "streptococcal sepsis"),
    ("A41", "infection", "other sepsis"),
    ("A49", "infection", "bacterial infection of unspecified site"),
    ("J13", "infection", "pneumococcal pneumonia"),
    ("J14", "infection", "pneumonia due to Haemophilus influenzae"),
    ("J15", "infection", "bacterial pneumonia"),
    ("J16", "infection", "pneumonia due to other infectious organisms"),
    ("J17", "infection", "pneumonia in diseases classified elsewhere"),
    ("J18", "infection", "pneumonia, unspecified organism"),
    ("J85", "infection", "abscess of lung and mediastinum"),
    ("J86", "infection", "pyothorax"),
    ("K65", "infection", "peritonitis"),
    ("K75.0", "infection", "abscess of liver"),
    ("L03", "infection", "cellulitis and acute lymphangitis"),
    ("N10", "infection", "acute pyelonephritis"),
    ("N39.0", "infection", "urinary tract infection"),
    ("T81.4", "infection", "infection following a procedure"),
    ("D80", "immunodeficiency", "immunodeficiency with predominantly antibody defects"),
    ("D81", "immunodeficiency", "combined immunodeficiency"),
    ("D82", "immunodeficiency", "immunodeficiency associated with other major defects"),
    ("D83", "immunodeficiency", "common variable immunodeficiency"),
    ("D84", "immunodeficiency", "other immunodeficiency"),
    ("Z94.81", "stem_cell_transplant", "bone marrow transplant"),
    ("Z94.84", "stem_cell_transplant", "stem cell transplant"),
    ("Z94", "organ_transplant", "organ transplant"),
    ("Z85", "other_malignancy", "personal history of malignancy"),
    # Cardiovascular events and conditions.
    ("I21", "myocardial_infarction", "acute myocardial infarction"),
    ("I22", "myocardial_infarction", "subsequent myocardial infarction"),
    ("I23", "myocardial_infarction", "complication of acute myocardial infarction"),
    ("I25.2", "myocardial_infarction", "old myocardial infarction"),
    ("I20.0", "unstable_angina", "unstable angina"),
    ("I50", "heart_failure", "heart failure"),
    ("I11.0", "heart_failure", "hypertensive heart disease with heart failure"),
    ("I13.0", "heart_failure", "hypertensive heart and chronic kidney disease with heart failure"),
    ("I13.2", "heart_failure", "hypertensive heart and chronic kidney disease with heart failure"),
    ("I47", "arrhythmia", "paroxysmal tachycardia"),
    ("I48", "arrhythmia", "atrial fibrillation and flutter"),
    ("I49", "arrhythmia", "cardiac arrhythmia"),
    ("I60", "stroke", "subarachnoid haemorrhage"),
    ("I61", "stroke", "intracerebral haemorrhage"),
    ("I63", "stroke", "cerebral infarction"),
    ("I64", "stroke", "stroke, not specified as haemorrhage or infarction"),  # ICD-10 (WHO)
    ("G45.0", "stroke", "transient ischaemic attack"),
    ("G45.1", "stroke", "transient ischaemic attack"),
    ("G45.2", "stroke", "transient ischaemic attack"),
    ("G45.3", "stroke", "amaurosis fugax"),
    ("G45.8", "stroke", "transient ischaemic attack"),
    ("G45.9", "stroke", "transient ischaemic attack"),  # not G45.4, transient global amnesia
    ("I69.3", "stroke", "sequelae of cerebral infarction"),
    ("Z86.73", "stroke", "personal history of TIA or cerebral infarction"),
    ("I74", "arterial_thromboembolism", "arterial embolism and thrombosis"),
    ("I26", "venous_thromboembolism", "pulmonary embolism"),
    ("I80.1", "venous_thromboembolism", "deep vein thrombosis"),  # not I80.0, superficial
    ("I80.2", "venous_thromboembolism", "deep vein thrombosis"),
    ("I82.2", "venous_thromboembolism", "vena cava thrombosis"),
    ("I82.4", "venous_thromboembolism", "deep vein thrombosis"),
    ("I82.5", "venous_thromboembolism", "chronic deep vein thrombosis"),
    ("I82.62", "venous_thromboembolism", "deep vein thrombosis of upper extremity"),
    ("I82.72", "venous_thromboembolism", "chronic deep vein thrombosis of upper extremity"),
    ("I82.A", "venous_thromboembolism", "axillary vein thrombosis"),
    ("I82.B", "venous_thromboembolism", "subclavian vein thrombosis"),
    ("I82.C", "venous_thromboembolism", "internal jugular vein thrombosis"),
    ("I82.9", "venous_thromboembolism", "venous thrombosis"),
    ("Z86.71", "venous_thromboembolism", "personal history of venous thromboembolism"),
)
# Codes that say a past event happened without dating it (an "old" infarction, a personal
# history): their recordedDate is when it was written down, not its onset.
HISTORY_CODES = ("I25.2", "I69", "Z86.7")
METASTASIS_CODES = {
    "C78.6": "peritoneum",
    "C78.7": "liver",
    "C78.0": "lung",
    "C79.5": "bone",
    "C79.32": "leptomeningeal",  # before C79.3: the longest code wins
    "C79.3": "brain",
    "C77": "distant_lymph_nodes",
}
MCODE_SECONDARY = (
    "http://hl7.org/fhir/us/mcode/StructureDefinition/mcode-secondary-cancer-condition"
)
# SNOMED CT disorders "secondary malignant neoplasm of ..." / "metastatic ... to ...".
SNOMED_METASTASES = {
    "94381002": "liver",
    "94222008": "bone",
    "94225005": "brain",
    "94391008": "lung",
}
# bodySite of a secondary cancer condition (SNOMED CT body structures).
BODY_SITES = {
    "10200004": "liver",
    "39607008": "lung",
    "272673000": "bone",
    "12738006": "brain",
    "8935007": "leptomeningeal",  # cerebral meninges
    "15425007": "peritoneum",
}
# Lymph nodes are left out on purpose: regional or distant is not in these words.
METASTASIS_WORDS = (
    ("mening", "leptomeningeal"),
    ("peritone", "peritoneum"),
    ("liver", "liver"),
    ("hepatic", "liver"),
    ("lung", "lung"),
    ("pulmonary", "lung"),
    ("bone", "bone"),
    ("brain", "brain"),
)
_SECONDARY_WORDS = re.compile(r"\bsecondary malignant|\bmetasta(?:sis|ses|tic)\b", re.I)
# The site a metastasis is *to*, as SNOMED CT's display names it: "Secondary malignant neoplasm
# of liver", "Metastatic malignant neoplasm to lung", "metastasis to the brain". "Brain
# metastasis from lung cancer" or "metastatic lung cancer" name no site this way: reported.
_METASTASIS_TO = re.compile(
    r"\b(?:secondary\s+malignant\s+neoplasm\s+of|metasta(?:sis|ses|tic)"
    r"(?:\s+malignant\s+neoplasm)?\s+(?:to|in))\s+(?:the\s+)?(?P<site>[a-z]+(?:\s+[a-z]+)?)",
    re.I,
)
_NEGATED = re.compile(r"\b(?:no|non|not|without|free\s+of|negative\s+for|ruled\s+out)\b", re.I)


def _metastasis_site_in_words(text: str) -> str | None:
    """The site of ``text``'s "secondary malignant neoplasm of X" / "metastasis to X", or None
    (also when the words are negated: "no evidence of metastasis to liver")."""
    found = _METASTASIS_TO.search(text)
    if found is None or _NEGATED.search(text[: found.start()]):
        return None
    site = found.group("site").lower()
    if "marrow" in site:  # bone marrow is not bone
        return None
    return next((name for word, name in METASTASIS_WORDS if site.startswith(word)), None)


SURGERY_WORDS = (
    ("subtotal gastrectomy", "subtotal_gastrectomy"),
    ("distal gastrectomy", "distal_gastrectomy"),
    ("proximal gastrectomy", "proximal_gastrectomy"),
    ("total gastrectomy", "total_gastrectomy"),
    ("gastrectomy", "gastrectomy"),
    ("esophagectomy", "esophagectomy"),
    ("oesophagectomy", "esophagectomy"),
    ("esophagogastrectomy", "esophagectomy"),
)
BIOMARKER_WORDS = (
    "her2",
    "mismatch repair",
    "mmr",
    "in situ hybrid",
    " ish",
    "fish",
    "epstein",
    "ebv",
    "claudin",
    "cldn18",
    "microsatellite",
)
INTENT_WORDS = ("neoadjuvant", "perioperative", "adjuvant", "palliative", "curative")
FACT_RESOURCES = (
    "Condition",
    "Observation",
    "MedicationStatement",
    "MedicationAdministration",
    "MedicationRequest",
    "Procedure",
    "ServiceRequest",
)


class BundleError(ValueError):
    """The document cannot be read as one patient's bundle; the message says why."""


@dataclass(frozen=True)
class Entry:
    resource: dict[str, Any]
    key: str  # fullUrl, or ResourceType/id, or the entry's position

    @property
    def kind(self) -> str:
        return str(self.resource.get("resourceType", ""))


def read_bundle(document: Any, *, origin: str) -> ProfileData:
    """One FHIR Bundle (parsed JSON) as a profile; raises BundleError when unusable."""
    if not isinstance(document, dict) or document.get("resourceType") != "Bundle":
        raise BundleError("not a FHIR Bundle (resourceType must be 'Bundle')")
    entries_json = document.get("entry")
    if not isinstance(entries_json, list):
        raise BundleError("the Bundle has no entries")
    problems: list[Problem] = []
    entries = list(_valid_entries(entries_json, origin, problems))
    patients = [entry for entry in entries if entry.kind == "Patient"]
    if not patients:
        refused = [
            problem for problem in problems if problem.where.startswith(f"{origin} Patient ")
        ]
        if refused:  # say why the Patient was refused, not only that it was
            raise BundleError(f"the Bundle's Patient is refused: {refused[0].message}")
        raise BundleError("the Bundle has no Patient resource")
    if len(patients) > 1:
        raise BundleError(f"the Bundle has {len(patients)} Patient resources; one is expected")
    profile = _patient(patients[0])
    profile.problems = problems
    profile.source_reference = origin
    profile.content_hash = document_hash(document)
    profile.timestamp = _instant(document.get("timestamp")) or _instant(
        (document.get("meta") or {}).get("lastUpdated")
    )
    reader = _FactReader(profile, origin)
    unused: collections.Counter[str] = collections.Counter()
    for entry in entries:
        if entry.kind in FACT_RESOURCES:
            reader.read(entry)
        elif entry.kind != "Patient":
            unused[entry.kind] += 1
    reader.finish()
    # After the notes on resources that were read: one line per kind never read, with its
    # count (a Synthea bundle holds thousands of claims and encounters).
    for kind, count in sorted(unused.items(), key=lambda item: (-item[1], item[0])):
        noun = "resource" if count == 1 else "resources"
        profile.problems.append(
            Problem(origin, f"{count} {kind} {noun} not used: {READ_KINDS_TEXT}")
        )
    return profile


READ_KINDS_TEXT = "the import reads " + ", ".join(("Patient", *FACT_RESOURCES)) + " only"


def _valid_entries(entries: list[Any], origin: str, problems: list[Problem]) -> Iterator[Entry]:
    for index, item in enumerate(entries, start=1):
        resource = item.get("resource") if isinstance(item, dict) else None
        if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
            problems.append(Problem(f"{origin} entry {index}", "no resource in this entry"))
            continue
        kind = resource["resourceType"]
        key = item.get("fullUrl") if isinstance(item.get("fullUrl"), str) else ""
        if not key:
            key = f"{kind}/{resource['id']}" if isinstance(resource.get("id"), str) else ""
        key = key or f"entry {index}"
        if kind != "Patient" and kind not in FACT_RESOURCES:
            yield Entry(resource, key)  # never read: not validated either (counted as unused)
            continue
        try:
            get_fhir_model_class(kind).model_validate(resource)
        except ValueError as exc:  # pydantic's ValidationError, or an unknown resource type
            problems.append(Problem(f"{origin} {kind} {key}", _validation_message(exc)))
            continue
        yield Entry(resource, key)


def _validation_message(exc: ValueError) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        return f"not valid FHIR R4: {where}: {message}{more}"
    return f"not valid FHIR R4: {exc}"


# Identifier.type of a medical record number (HL7 v2 table 0203).
IDENTIFIER_TYPES = "http://terminology.hl7.org/CodeSystem/v2-0203"
# Sex when ``gender`` is absent: US Core's individual-sex (SNOMED), then its birth sex (F / M).
US_CORE_INDIVIDUAL_SEX = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-individual-sex"
US_CORE_BIRTH_SEX = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex"
SNOMED_SEX = {"248152002": "female", "248153007": "male", "32570681000036106": "other"}
BIRTH_SEX = {"F": "female", "M": "male"}


def _identifier_type(identifier: dict[str, Any]) -> set[str]:
    return {
        str(coding.get("code"))
        for coding in (identifier.get("type") or {}).get("coding") or []
        if isinstance(coding, dict) and coding.get("system") in (IDENTIFIER_TYPES, None)
    }


def medical_record_number(resource: dict[str, Any]) -> tuple[str, str]:
    """The Patient's MRN as (system, value): one in a system of ``FHIR_MRN_SYSTEMS`` (in its
    order: the site's own numbers, named by whoever runs it), else the identifier typed
    ``MR``, else the first identifier with a value. Raises BundleError when no identifier has
    a value."""
    identifiers = [
        item
        for item in resource.get("identifier") or []
        if isinstance(item, dict)
        and isinstance(item.get("value"), str)
        and item["value"].strip()
        and item.get("use") != "old"
    ]
    if not identifiers:
        raise BundleError("the Patient has no identifier with a value (the MRN)")
    systems = list(getattr(settings, "FHIR_MRN_SYSTEMS", []) or [])

    def rank(item: dict[str, Any]) -> tuple[int, int]:
        system = item.get("system")
        configured = systems.index(system) if system in systems else len(systems)
        typed = 0 if "MR" in _identifier_type(item) else 1
        return (configured, typed)

    chosen = min(identifiers, key=rank)
    return str(chosen.get("system") or ""), chosen["value"].strip()


def _sex(resource: dict[str, Any]) -> str:
    gender = resource.get("gender", "")
    if gender in ("female", "male", "other"):
        return str(gender)
    for extension in resource.get("extension") or []:
        if not isinstance(extension, dict):
            continue
        if extension.get("url") == US_CORE_INDIVIDUAL_SEX:
            coding = extension.get("valueCoding") or {}
            if coding.get("code") in SNOMED_SEX:
                return SNOMED_SEX[coding["code"]]
    for extension in resource.get("extension") or []:
        if isinstance(extension, dict) and extension.get("url") == US_CORE_BIRTH_SEX:
            sex = BIRTH_SEX.get(str(extension.get("valueCode")))
            if sex:
                return sex
    return ""


def current_address(resource: dict[str, Any], today: datetime.date) -> dict[str, Any]:
    """The address the patient lives at now: not ``use: old`` nor one whose period ended,
    ``home`` before others; {} when none is current."""
    current = []
    for position, address in enumerate(resource.get("address") or []):
        if not isinstance(address, dict) or address.get("use") in ("old", "billing"):
            continue
        period = address.get("period")
        ended = _date(period.get("end")) if isinstance(period, dict) else None
        if ended is not None and ended < today:
            continue
        current.append((0 if address.get("use") == "home" else 1, position, address))
    return min(current, key=lambda item: item[:2])[2] if current else {}


def _deceased(resource: dict[str, Any]) -> tuple[bool | None, datetime.date | None]:
    if isinstance(resource.get("deceasedBoolean"), bool):
        return resource["deceasedBoolean"], None
    if resource.get("deceasedDateTime"):
        return True, _date(resource["deceasedDateTime"])
    return None, None


def _patient(entry: Entry) -> ProfileData:
    resource = entry.resource
    system, external_id = medical_record_number(resource)
    address = current_address(resource, timezone.localdate())
    deceased, deceased_on = _deceased(resource)
    return ProfileData(
        external_id=external_id,
        identifier_system=system,
        sex=_sex(resource),
        birth_date=_date(resource.get("birthDate")),
        postal_code=str(address.get("postalCode", "")).strip(),
        city=str(address.get("city", "")).strip(),
        country=str(address.get("country", "")).strip(),
        deceased=deceased,
        deceased_on=deceased_on,
    )


class _FactReader:
    """Turns each resource into facts (or a reported reason why not)."""

    def __init__(self, profile: ProfileData, origin: str) -> None:
        self.profile = profile
        self.origin = origin
        self.primary_candidates: list[tuple[int, Entry, dict[str, Any]]] = []

    def skip(self, entry: Entry, message: str) -> None:
        self.profile.problems.append(Problem(f"{self.origin} {entry.kind} {entry.key}", message))

    def add(
        self, entry: Entry, model: str, values: dict[str, Any], date: datetime.date | None
    ) -> None:
        self.profile.facts.append(
            FactData(
                model=model,
                values=values,
                key=entry.key,
                observed_on=date,
                reference=f"{self.origin}, {entry.kind} {entry.key}",
            )
        )

    def read(self, entry: Entry) -> None:
        resource = entry.resource
        status = resource.get("status") or _code(resource.get("verificationStatus"))
        if status in (
            "entered-in-error",
            "cancelled",
            "not-done",
            "not-taken",
            "revoked",
            "refuted",
        ):
            self.skip(entry, f"status {status}")
            return
        handler = getattr(self, f"_{entry.kind.lower()}")
        handler(entry)

    def finish(self) -> None:
        """The primary cancer is chosen once every Condition was seen."""
        if not self.primary_candidates:
            return
        self.primary_candidates.sort(key=lambda item: item[0], reverse=True)
        _, entry, values = self.primary_candidates[0]
        self.add(entry, "PrimaryCancer", values, _condition_date(entry.resource))
        self._condition_stage(entry)
        for _, other, _ in self.primary_candidates[1:]:
            self._other_malignancy(other)

    # Conditions ------------------------------------------------------------------------
    def _condition(self, entry: Entry) -> None:
        resource = entry.resource
        icd = _codes(resource.get("code"), ICD10)
        text = _text(resource.get("code"))
        profiles = (resource.get("meta") or {}).get("profile") or []
        gastric_code = next((c for c in icd if c.startswith(("C15", "C16"))), None)
        if (
            MCODE_PRIMARY in profiles
            or gastric_code
            or GASTRIC_PRIMARY_SNOMED in _codes(resource.get("code"), (SNOMED,))
        ):
            weight = 2 if gastric_code else 1
            self.primary_candidates.append((weight, entry, self._primary(resource, icd, text)))
            return
        if self._secondary_cancer(entry, profiles, icd, text):
            return
        for code in icd:
            location = next(
                (loc for prefix, loc in METASTASIS_CODES.items() if code.startswith(prefix)), None
            )
            if location:
                values = {"location": location, "icd10_code": code}
                self.add(entry, "Metastasis", values, _condition_date(resource))
                return
            match = next((row for row in COMORBIDITY_CODES if code.startswith(row[0])), None)
            if match:
                self._comorbidity(entry, match[1], match[2], code)
                return
            if code.startswith("C") or _IN_SITU.match(code):
                self._other_malignancy(entry)
                return
        words = text.lower()
        if any(w in words for w in ("pneumonitis", "interstitial lung")):
            self._comorbidity(entry, "ild", text, "")
            return
        self.skip(entry, f"condition not used by trial criteria ({text or ', '.join(icd)})")

    def _secondary_cancer(
        self, entry: Entry, profiles: list[str], icd: list[str], text: str
    ) -> bool:
        """A metastasis coded in SNOMED CT, or written as mCODE's secondary cancer condition
        (its site in ``bodySite``, or in the condition's own words). True when handled (read,
        or reported with the reason); the ICD-10 reading comes after."""
        resource = entry.resource
        snomed = _codes(resource.get("code"), (SNOMED,))
        location = next((SNOMED_METASTASES[c] for c in snomed if c in SNOMED_METASTASES), None)
        secondary = MCODE_SECONDARY in profiles or bool(_SECONDARY_WORDS.search(text))
        if location is None and secondary and not icd:
            sites = _codes_of_all(resource.get("bodySite"), (SNOMED,))
            location = next((BODY_SITES[c] for c in sites if c in BODY_SITES), None)
            if location is None:
                location = _metastasis_site_in_words(text)
        if location is None:
            if secondary and not icd:
                self.skip(
                    entry,
                    f"a metastasis at a site trial criteria do not ask about, or not named "
                    f"({text or 'no text'})",
                )
                return True
            return False
        self.add(entry, "Metastasis", {"location": location}, _condition_date(resource))
        return True

    def _primary(self, resource: dict[str, Any], icd: list[str], text: str) -> dict[str, Any]:
        code = next((c for c in icd if c.startswith("C")), "")
        words = (text + " " + _text(resource.get("bodySite"))).lower()
        siewert = re.search(r"siewert(?:\s+type)?\s+(III|II|I)\b", words, re.I)
        if "junction" in words or "gej" in words or siewert or code.startswith("C16.0"):
            site = "gej"
        elif code.startswith("C16") or "stomach" in words or "gastric" in words:
            site = "stomach"
        elif code.startswith("C15") or "esophag" in words or "oesophag" in words:
            site = "esophagus"
        else:
            site = "other"
        histology, morphology = None, ""
        for extension in resource.get("extension") or []:
            if isinstance(extension, dict) and extension.get("url") == HISTOLOGY_EXTENSION:
                histology, morphology = _histology(extension.get("valueCodeableConcept"))
        return {
            "site": site,
            "siewert_type": siewert.group(1).upper() if siewert else "",
            "icd10_code": code,
            "histology": histology.value if histology else "",
            "morphology_code": morphology,
        }

    def _other_malignancy(self, entry: Entry) -> None:
        resource = entry.resource
        codes = _codes(resource.get("code"), ICD10)
        self.add(
            entry,
            "Comorbidity",
            {
                "kind": "other_malignancy",
                "name": _text(resource.get("code")) or "another malignancy",
                "icd10_code": codes[0] if codes else "",
                "present": True,
                "active": _remission_coded(codes)
                if _remission_coded(codes) is not None
                else _active(resource),
                "onset_date": _condition_date(resource),
            },
            _condition_date(resource),
        )

    def _comorbidity(self, entry: Entry, kind: str, name: str, code: str) -> None:
        resource = entry.resource
        refuted = _code(resource.get("verificationStatus")) == "refuted"
        onset = (
            _onset_date(resource) if code.startswith(HISTORY_CODES) else _condition_date(resource)
        )
        self.add(
            entry,
            "Comorbidity",
            {
                "kind": kind,
                "name": _text(resource.get("code")) or name,
                "icd10_code": code,
                "present": not refuted,
                "active": _active(resource),
                "onset_date": onset,
            },
            _condition_date(resource),
        )

    # Observations ----------------------------------------------------------------------
    def _observation(self, entry: Entry) -> None:
        resource = entry.resource
        loinc = _codes(resource.get("code"), (LOINC,))
        text = _text(resource.get("code")).lower()
        date = (
            _date(resource.get("effectiveDateTime"))
            or _date((resource.get("effectivePeriod") or {}).get("start"))
            or _date(resource.get("issued"))
        )
        for code in _codes(resource.get("code"), (SNOMED,)):
            if code in SNOMED_STAGING_CODES:
                self._staging(entry, *SNOMED_STAGING_CODES[code], date)
                return
        for code in loinc:
            if code in STAGING_CODES:
                self._staging(entry, *STAGING_CODES[code], date)
                return
            if code in LAB_CODES:
                self._lab(entry, LAB_CODES[code], date)
                return
            if code in (ECOG_CODE, KARNOFSKY_CODE):
                self._performance(entry, code, date)
                return
            if code in (HER2_STATUS_CODE, HER2_IHC_CODE, MSI_CODE):
                self._biomarker(entry, code, date)
                return
            if code == PREGNANCY_CODE:
                self._pregnancy(entry, date)
                return
        if "pd-l1" in text or "combined positive score" in text:
            self._pdl1(entry, date)
        elif "cytology" in text and ("peritone" in text or "lavage" in text):
            self._cytology(entry, date)
        elif any(word in text for word in BIOMARKER_WORDS):
            self._biomarker(entry, "", date)
        elif "ecog" in text or "karnofsky" in text:
            self._performance(entry, ECOG_CODE if "ecog" in text else KARNOFSKY_CODE, date)
        else:
            self.skip(entry, f"observation not used ({text or ', '.join(loinc) or 'no code'})")

    def _staging(
        self, entry: Entry, context: str, category: str, date: datetime.date | None
    ) -> None:
        concept = entry.resource.get("valueCodeableConcept")
        value = staging_value(concept, category)
        if value is None:
            shown = ", ".join(_concept_words(concept)) or "no value"
            self.skip(entry, f"{category} value not an AJCC 8th edition code ({shown})")
            return
        values = {"context": context, "category": category, "value": value}
        self.add(entry, "StageObservation", values, date)

    def _condition_stage(self, entry: Entry) -> None:
        """``Condition.stage``: each summary a stage group, its context from ``stage.type``
        (reported, not read, when the sender does not say which)."""
        for index, stage in enumerate(entry.resource.get("stage") or []):
            if not isinstance(stage, dict) or not stage.get("summary"):
                continue
            value = staging_value(stage["summary"], "stage")
            where = Entry(entry.resource, f"{entry.key}#stage{index}")
            if value is None:
                shown = ", ".join(_concept_words(stage["summary"])) or "no value"
                self.skip(where, f"stage summary not an AJCC 8th edition stage group ({shown})")
                continue
            types = _codes(stage.get("type"), (SNOMED, LOINC))
            context = next((STAGE_TYPES[code] for code in types if code in STAGE_TYPES), None)
            if context is None:  # clinical or pathological is not guessed
                self.skip(
                    where,
                    f"stage summary {value} without a type saying whether it is clinical or "
                    "pathological",
                )
                continue
            values = {"context": context, "category": "stage", "value": value}
            self.add(where, "StageObservation", values, _condition_date(entry.resource))

    def _cytology(self, entry: Entry, date: datetime.date | None) -> None:
        answer = _text(entry.resource.get("valueCodeableConcept")).lower()
        snomed = _codes(entry.resource.get("valueCodeableConcept"), (SNOMED,))
        if "cy1" in answer or POSITIVE in snomed or re.search(r"\bpositive\b", answer):
            value = "CY1"
        elif "cy0" in answer or NEGATIVE in snomed or re.search(r"\bnegative\b", answer):
            value = "CY0"
        else:
            self.skip(entry, f"peritoneal cytology result not understood ({answer or 'no value'})")
            return
        values = {"context": "clinical", "category": "CY", "value": value}
        self.add(entry, "StageObservation", values, date)

    def _lab(self, entry: Entry, analyte: Analyte, date: datetime.date | None) -> None:
        """Kept as reported (value, unit, ULN in that unit); LabResult converts it. A unit
        that does not convert is reported here, per resource."""
        quantity = entry.resource.get("valueQuantity")
        if not isinstance(quantity, dict) or quantity.get("value") is None:
            self.skip(entry, "lab result without a numeric value")
            return
        unit = _unit(quantity)
        if not unit:
            self.skip(entry, "lab result without a unit: the value is not guessed")
            return
        value = float(quantity["value"])
        try:
            to_canonical(analyte, value, unit)
            uln = _upper_limit(entry.resource, analyte, unit)
        except UnitError as exc:
            self.skip(entry, str(exc))
            return
        values = {
            "analyte": analyte.value,
            "original_value": value,
            "original_unit": unit,
            "original_uln": uln,
        }
        self.add(entry, "LabResult", values, date)

    def _performance(self, entry: Entry, code: str, date: datetime.date | None) -> None:
        resource = entry.resource
        value = resource.get("valueInteger")
        if value is None and isinstance(resource.get("valueQuantity"), dict):
            value = resource["valueQuantity"].get("value")
        if value is None:
            answers = _codes(resource.get("valueCodeableConcept"), (LOINC,))
            value = next((ECOG_ANSWERS[a] for a in answers if a in ECOG_ANSWERS), None)
        if value is None:
            self.skip(entry, "performance status without a score")
            return
        scale = "ecog" if code == ECOG_CODE else "karnofsky"
        self.add(entry, "PerformanceStatus", {"scale": scale, "value": int(value)}, date)

    def _biomarker(self, entry: Entry, code: str, date: datetime.date | None) -> None:
        resource = entry.resource
        concept = resource.get("valueCodeableConcept")
        answer = (_text(concept) + " " + " ".join(_codes(concept, (SNOMED,)))).strip()
        if not answer and isinstance(resource.get("valueString"), str):
            answer = resource["valueString"]
        name = _text(resource.get("code")).lower()
        reading = _biomarker_value(code, name, answer, concept)
        if reading is None:
            self.skip(entry, f"biomarker result not understood ({answer or 'no value'})")
            return
        marker, value = reading
        self.add(entry, "Biomarker", {"marker": marker, "value": value}, date)

    def _pdl1(self, entry: Entry, date: datetime.date | None) -> None:
        quantity = entry.resource.get("valueQuantity")
        number = quantity.get("value") if isinstance(quantity, dict) else None
        if number is None and isinstance(entry.resource.get("valueInteger"), int):
            number = entry.resource["valueInteger"]
        if number is None:
            self.skip(entry, "PD-L1 CPS without a number")
            return
        values = {"marker": "pdl1_cps", "value": "", "numeric_value": float(number)}
        self.add(entry, "Biomarker", values, date)

    def _pregnancy(self, entry: Entry, date: datetime.date | None) -> None:
        concept = entry.resource.get("valueCodeableConcept")
        codes = _codes(concept, (SNOMED,))
        text = _text(concept).lower()
        if PREGNANT in codes or text == "pregnant":
            pregnant = True
        elif NOT_PREGNANT in codes or "not pregnant" in text:
            pregnant = False
        else:
            self.skip(entry, f"pregnancy status not understood ({text or 'no value'})")
            return
        self.add(entry, "ReproductiveStatus", {"pregnant": pregnant}, date)

    # Medications -----------------------------------------------------------------------
    def _medicationstatement(self, entry: Entry) -> None:
        self._medication(entry)

    def _medicationadministration(self, entry: Entry) -> None:
        self._medication(entry)

    def _medicationrequest(self, entry: Entry) -> None:
        self._medication(entry)

    def _medication(self, entry: Entry) -> None:
        resource = entry.resource
        concept = resource.get("medicationCodeableConcept")
        drug = next(
            (d for d in map(drug_by_rxnorm, _codes(concept, (RXNORM,))) if d is not None), None
        )
        if drug is None:
            found = find_drugs(_text(concept))
            drug = found[0] if found else None
        if drug is None:
            self.skip(entry, f"medication not used by trial criteria ({_text(concept)})")
            return
        start, end = _period(resource)
        status = str(resource.get("status", ""))
        if drug.category in ("immunotherapy", "targeted", "chemotherapy"):
            self._treatment(entry, drug, status, start, end)
            return
        values = {
            "name": drug.name,
            "rxnorm_code": next(iter(_codes(concept, (RXNORM,))), ""),
            "category": drug.category,
            "active": {"active": True, "completed": False, "stopped": False}.get(status),
            "prednisone_mg_per_day": self._prednisone(entry, drug),
            "start_date": start,
            "end_date": end,
        }
        self.add(entry, "Medication", values, start)

    def _treatment(
        self,
        entry: Entry,
        drug: Drug,
        status: str,
        start: datetime.date | None,
        end: datetime.date | None,
    ) -> None:
        reasons = " ".join(
            _text(reason) for reason in entry.resource.get("reasonCode") or []
        ).lower()
        intent = next((word for word in INTENT_WORDS if word in reasons), "")
        values = {
            "category": drug.category,
            "agent": drug.name,
            "agent_class": drug.drug_class,
            "rxnorm_code": next(iter(drug.rxnorm), ""),
            "intent": intent,
            "status": status if status in ("completed", "active", "stopped") else "",
            "start_date": start,
            "end_date": end,
        }
        self.add(entry, "Treatment", values, start)

    def _prednisone(self, entry: Entry, drug: Drug) -> float | None:
        if drug.prednisone_factor is None:
            return None
        dosage_key = "dosageInstruction" if entry.kind == "MedicationRequest" else "dosage"
        dosages = entry.resource.get(dosage_key) or []
        if entry.kind == "MedicationAdministration":
            dosages = [entry.resource.get("dosage") or {}]
        for dosage in dosages:
            dose = _dose(dosage)
            if dose is None:
                continue
            amount, unit = dose
            if unit.lower() != "mg":
                self.profile.problems.append(
                    Problem(
                        f"{self.origin} {entry.kind} {entry.key}",
                        f"dose in {unit!r}, not mg: prednisone equivalent not computed",
                        skipped=False,
                    )
                )
                return None
            per_day = _per_day((dosage.get("timing") or {}).get("repeat") or {})
            return round(amount * per_day * drug.prednisone_factor, 2)
        return None

    # Procedures ------------------------------------------------------------------------
    def _procedure(self, entry: Entry) -> None:
        resource = entry.resource
        text = _text(resource.get("code")).lower()
        status = resource.get("status")
        date = _date(resource.get("performedDateTime")) or _date(
            (resource.get("performedPeriod") or {}).get("start")
        )
        if "radiotherapy" in text or "radiation" in text:
            values = {
                "category": "radiotherapy",
                "agent": "radiotherapy",
                "status": "completed" if status == "completed" else "active",
                "start_date": date,
            }
            self.add(entry, "Treatment", values, date)
            return
        procedure = _surgery(text)
        if procedure is None:
            # Only gastric and oesophageal resections are read: whether another procedure was
            # major surgery (what criteria ask) is not decided from its name.
            self.skip(
                entry,
                f"procedure not used: not a gastric or oesophageal resection nor radiotherapy "
                f"({text or 'no code'})",
            )
            return
        planned = status in ("preparation", "on-hold")
        values = {"procedure": procedure, "status": "planned" if planned else "done"}
        if status not in ("completed", "preparation", "on-hold", "in-progress"):
            self.skip(entry, f"procedure status {status!r}")
            return
        self.add(entry, "Surgery", values, date)

    def _servicerequest(self, entry: Entry) -> None:
        resource = entry.resource
        text = _text(resource.get("code")).lower()
        procedure = _surgery(text)
        if procedure is None or resource.get("intent") not in ("plan", "proposal", "order"):
            self.skip(entry, f"request not used ({text or 'no code'})")
            return
        if resource.get("status") in ("completed", "revoked"):
            self.skip(entry, f"request status {resource.get('status')}")
            return
        date = _date(resource.get("occurrenceDateTime")) or _date(
            (resource.get("occurrencePeriod") or {}).get("start")
        )
        self.add(entry, "Surgery", {"procedure": procedure, "status": "planned"}, date)


# --- Small readers of FHIR datatypes ---------------------------------------------------------


def _codes(concept: Any, systems: tuple[str, ...]) -> list[str]:
    if not isinstance(concept, dict):
        return []
    return [
        str(coding.get("code", "")).strip()
        for coding in concept.get("coding") or []
        if isinstance(coding, dict) and coding.get("system") in systems and coding.get("code")
    ]


def _codes_of_all(concepts: Any, systems: tuple[str, ...]) -> list[str]:
    """The codes of a list of CodeableConcepts (``bodySite``)."""
    if not isinstance(concepts, list):
        return []
    return [code for concept in concepts for code in _codes(concept, systems)]


def _code(concept: Any) -> str:
    """The first code of a CodeableConcept whatever its system (e.g. clinicalStatus)."""
    if isinstance(concept, dict):
        for coding in concept.get("coding") or []:
            if isinstance(coding, dict) and coding.get("code"):
                return str(coding["code"])
    return ""


def _text(concept: Any) -> str:
    """``text``, else the first coding's ``display``."""
    if not isinstance(concept, dict):
        return ""
    if isinstance(concept.get("text"), str) and concept["text"].strip():
        return concept["text"].strip()
    for coding in concept.get("coding") or []:
        if isinstance(coding, dict) and isinstance(coding.get("display"), str):
            return coding["display"].strip()
    return ""


def _histology(concept: Any) -> tuple[Histology | None, str]:
    morphology = next(iter(_codes(concept, (ICDO3,))), "")
    histology = histology_from_morphology(morphology) if morphology else None
    if histology is None:
        histology = next(
            (SNOMED_HISTOLOGY[c] for c in _codes(concept, (SNOMED,)) if c in SNOMED_HISTOLOGY),
            None,
        )
    if histology is None:
        histology = histology_from_text(_text(concept))
    return histology, morphology


# A HER2 IHC answer that is a score and nothing else: "2+", "Score 3+", "IHC 1+", "0",
# "2+ (equivocal)". Ranges and mixed text ("0-1+", "less than 1+", "score 0, ISH 2+") are no
# score: reported, never read as their first number.
_IHC_SCORE = re.compile(
    r"^\s*(?:her2\s*)?(?:ihc\s*)?(?:score\s*:?\s*)?(?P<digit>[0-3])\s*\+{0,3}\s*"
    r"(?:\(?\s*(?:negative|equivocal|positive|low|weak|moderate|strong)\s*\)?\s*)?$",
    re.I,
)


# "American Joint Committee on Cancer cT3", "AJCC pN1a": the code after the words.
_AJCC_WORDS = re.compile(r"^\s*(?:american\s+joint\s+committee\s+on\s+cancer|ajcc)\b\s*", re.I)
# A stage group as AJCC's own code system and senders write it: "3C", "4", "c3A", "Stage 2B",
# "pIIIA".
_NUMBERED_STAGE = re.compile(
    r"^\s*(?:stage\s*)?[cpy]{0,2}\s*(?P<number>[0-4])(?P<letter>[ABCabc]?)\s*$", re.I
)
_PREFIXED_STAGE = re.compile(r"^\s*(?:stage\s*)?[cpy]{1,2}\s*(?P<code>[IV]+[ABCabc]?)\s*$", re.I)
_ROMAN = {"0": "0", "1": "I", "2": "II", "3": "III", "4": "IV"}


def _concept_words(concept: Any) -> list[str]:
    """A CodeableConcept's codes, displays and text, in that order, without repeats."""
    words: list[str] = []
    if isinstance(concept, dict):
        for coding in concept.get("coding") or []:
            if isinstance(coding, dict):
                words += [str(coding.get("code") or ""), str(coding.get("display") or "")]
        words.append(str(concept.get("text") or ""))
    return list(dict.fromkeys(word.strip() for word in words if word and word.strip()))


_SEMANTIC_TAG = re.compile(r"\s*\([a-z ]+\)\s*$")  # SNOMED's "(qualifier value)"


def _stage_spellings(word: str) -> Iterator[str]:
    yield word
    bare = _AJCC_WORDS.sub("", _SEMANTIC_TAG.sub("", word))
    yield bare
    numbered = _NUMBERED_STAGE.match(bare)
    if numbered:
        yield _ROMAN[numbered.group("number")] + numbered.group("letter").upper()
    prefixed = _PREFIXED_STAGE.match(bare)
    if prefixed:
        yield prefixed.group("code")


def staging_value(concept: Any, category: str) -> str | None:
    """The AJCC 8th edition code a staging value holds (``"T3"``, ``"IIIC"``), read from its
    codes, displays or text; None when none of them is one."""
    for word in _concept_words(concept):
        for spelling in _stage_spellings(word):
            try:
                if category == "stage":
                    return parse_stage_group(spelling)
                return parse_tnm(spelling, category)[0]
            except StagingError:
                continue
    return None


def _biomarker_value(code: str, name: str, answer: str, concept: Any) -> tuple[str, str] | None:
    lowered = answer.lower()
    snomed = _codes(concept, (SNOMED,))
    ihc = any(w in name for w in ("ihc", "immunohisto", "immune stain"))
    situ = "situ" in name or "ish" in name.split() or "fish" in name
    if code == HER2_IHC_CODE or (not code and "her2" in name and ihc):
        # A score comes only from a score-shaped answer ("2+", "Score 3+", "0"), read in the
        # answer's words, never in its codes: "Negative (260385009)" holds no score.
        score = _IHC_SCORE.match(_text(concept) if concept else answer)
        if score:
            digit = score.group("digit")
            return "her2_ihc", digit + ("+" if digit != "0" else "")
        if POSITIVE in snomed or re.search(r"\bpositive\b", lowered):
            return "her2_status", "positive"
        if NEGATIVE in snomed or re.search(r"\bnegative\b", lowered):
            return "her2_status", "negative"
        return None
    if code == HER2_STATUS_CODE or (not code and "her2" in name and not situ):
        if POSITIVE in snomed or "positive" in lowered:
            return "her2_status", "positive"
        if NEGATIVE in snomed or "negative" in lowered:
            return "her2_status", "negative"
        if "equivocal" in lowered:
            return "her2_status", "equivocal"
        return None
    if situ:
        if "not amplified" in lowered or "non-amplified" in lowered:
            return "her2_ish", "not amplified"
        if "amplified" in lowered:
            return "her2_ish", "amplified"
        return None
    if code == MSI_CODE or "microsatellite" in name:
        for value in ("MSI-H", "MSI-L", "MSS"):
            if value.lower() in lowered.replace(" ", "-"):
                return "msi", value
        if "high" in lowered:
            return "msi", "MSI-H"
        if "stable" in lowered:
            return "msi", "MSS"
        return None
    if "mismatch" in name or "mmr" in name:
        if "dmmr" in lowered or "deficient" in lowered:
            return "mmr", "dMMR"
        if "pmmr" in lowered or "proficient" in lowered:
            return "mmr", "pMMR"
        return None
    marker = "ebv" if ("ebv" in name or "epstein" in name) else "cldn18"
    if "claudin" not in name and "cldn18" not in name and marker == "cldn18":
        return None
    if POSITIVE in snomed or "positive" in lowered:
        return marker, "positive"
    if NEGATIVE in snomed or "negative" in lowered:
        return marker, "negative"
    return None


def _unit(quantity: dict[str, Any]) -> str:
    """The UCUM code when the quantity is coded in UCUM, else its human-readable unit."""
    if quantity.get("system") == UCUM and quantity.get("code"):
        return str(quantity["code"]).strip()
    return str(quantity.get("unit") or quantity.get("code") or "").strip()


def _upper_limit(resource: dict[str, Any], analyte: Analyte, unit: str) -> float | None:
    """``referenceRange.high``, expressed in ``unit`` (the result's own unit)."""
    for reference in resource.get("referenceRange") or []:
        high = reference.get("high") if isinstance(reference, dict) else None
        if isinstance(high, dict) and high.get("value") is not None:
            high_unit = _unit(high) or unit
            value = float(high["value"])
            if normalize_unit(high_unit) == normalize_unit(unit):
                return value
            canonical = to_canonical(analyte, value, high_unit).value
            return from_canonical(analyte, canonical, unit)
    return None


def _dose(dosage: Any) -> tuple[float, str] | None:
    if not isinstance(dosage, dict):
        return None
    dose = dosage.get("dose")  # MedicationAdministration.dosage.dose
    for rate in dosage.get("doseAndRate") or []:
        if isinstance(rate, dict) and isinstance(rate.get("doseQuantity"), dict):
            dose = rate["doseQuantity"]
    if not isinstance(dose, dict) or dose.get("value") is None:
        return None
    return float(dose["value"]), _unit(dose) or ""


def _per_day(repeat: dict[str, Any]) -> float:
    """Doses per day from a Timing.repeat (once a day when not said)."""
    frequency = float(repeat.get("frequency") or 1)
    period = float(repeat.get("period") or 1)
    unit = repeat.get("periodUnit") or "d"
    hours = {"h": 1 / 24, "d": 1, "wk": 7, "mo": 30}.get(unit, 1)
    return frequency / (period * hours)


def _surgery(text: str) -> str | None:
    return next((procedure for word, procedure in SURGERY_WORDS if word in text), None)


# In-situ neoplasms (D00-D09) are malignancies the criteria name, mostly as exceptions.
_IN_SITU = re.compile(r"^D0\d")
# Leukaemias, myeloma and lymphomas whose ICD-10-CM code states the remission status
# (C91.10 "not having achieved remission", C91.11 "in remission", C91.12 "in relapse").
_REMISSION_CODED = re.compile(r"^C9[0-5]\.[0-9A-Z]([012])$")


def _remission_coded(codes: list[str]) -> bool | None:
    """Active (True) or in remission (False) as the code itself says; None when it does not."""
    for code in codes:
        match = _REMISSION_CODED.match(code)
        if match:
            return match.group(1) != "1"
    return None


def _active(resource: dict[str, Any]) -> bool | None:
    status = _code(resource.get("clinicalStatus"))
    if status in ("active", "recurrence", "relapse"):
        return True
    if status in ("inactive", "remission", "resolved"):
        return False
    return None


def _condition_date(resource: dict[str, Any]) -> datetime.date | None:
    return _onset_date(resource) or _date(resource.get("recordedDate"))


def _onset_date(resource: dict[str, Any]) -> datetime.date | None:
    """The onset the Condition states (``onsetDateTime`` or ``onsetPeriod.start``), if any."""
    return _date(resource.get("onsetDateTime")) or _date(
        (resource.get("onsetPeriod") or {}).get("start")
    )


def _period(resource: dict[str, Any]) -> tuple[datetime.date | None, datetime.date | None]:
    period = resource.get("effectivePeriod") or resource.get("dispenseRequest", {}).get(
        "validityPeriod"
    )
    if isinstance(period, dict):
        return _date(period.get("start")), _date(period.get("end"))
    single = _date(resource.get("effectiveDateTime")) or _date(resource.get("authoredOn"))
    return single, None


def _date(value: Any) -> datetime.date | None:
    """The day of a FHIR date or dateTime (partial dates give their first day)."""
    if not isinstance(value, str) or len(value) < 4:
        return None
    text = value[:10]
    try:
        if len(text) == 4:
            return datetime.date(int(text), 1, 1)
        if len(text) == 7:
            return datetime.date(int(text[:4]), int(text[5:7]), 1)
        return datetime.date.fromisoformat(text)
    except ValueError:
        return None


def _instant(value: Any) -> datetime.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)
