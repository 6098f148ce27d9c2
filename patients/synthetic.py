"""Synthetic gastric-cancer patients as mCODE-style FHIR R4 collection Bundles.

No real person is described: every value is drawn from a seeded ``random.Random``. The bundles
use exactly the shapes and codes the patient importer recognises (see FHIR-IMPORT.md and the
examples in ``data/fhir/examples/``): Patient, primary-cancer Condition with histology
extension, clinical TNM Observations, performance status, labs in mixed UCUM units with the
lab's own upper limit of normal, biomarkers, metastasis and comorbidity Conditions,
MedicationStatements (RxNorm), completed Procedures and planned ServiceRequests, pregnancy.

About one patient in five is deliberately incomplete (no performance status, no N category,
no labs, no histology, ...), as real referrals are. Everything is deterministic for a given
random state: resource ids are uuid5 values derived from the generator's own draws.

Clinical stage groups follow the AJCC 8th edition clinical (cTNM) tables: the stomach table for
gastric primaries and for Siewert type III junction tumours, the oesophageal adenocarcinoma or
squamous-cell tables for oesophageal primaries and Siewert type I/II junction tumours (AJCC
stages a tumour whose epicentre is within 2 cm of the junction as oesophageal). GIST,
neuroendocrine tumours and non-upper-GI primaries get T/N/M categories but no stage group:
their AJCC groups need grade or mitotic rate, which these bundles do not carry.
"""

from __future__ import annotations

import dataclasses
import datetime
import random
import re
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

Resource = dict[str, Any]

UCUM = "http://unitsofmeasure.org"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
ICDO3 = "http://terminology.hl7.org/CodeSystem/icd-o-3"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
AJCC = "http://cancerstaging.org"
CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CONDITION_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
MCODE = "http://hl7.org/fhir/us/mcode/StructureDefinition/"
HISTOLOGY_EXTENSION = MCODE + "mcode-histology-morphology-behavior"
SYNTHETIC_TAG_SYSTEM = "urn:trialmatch:synthetic"
MRN_SYSTEM = "urn:example:mrn"

# SNOMED CT "American Joint Commission on Cancer, Cancer Staging Manual, 8th edition neoplasm
# staging system", the staging method mCODE examples name.
AJCC_8TH_METHOD = {
    "coding": [
        {
            "system": SNOMED,
            "code": "897275008",
            "display": "American Joint Commission on Cancer, Cancer Staging Manual, 8th edition "
            "neoplasm staging system",
        }
    ]
}

_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:trialmatch:synthetic-patients")
_SITE_CODE = re.compile(r"[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*")

# --- Clinical stage groups (AJCC 8th edition, clinical cTNM) -------------------------------

STAGE_SCHEMES = ("stomach", "esophagus-adenocarcinoma", "esophagus-squamous")


def clinical_stage_group(scheme: str, t: str, n: str, m: str) -> str:
    """The AJCC 8th clinical stage group for cT/cN/cM categories such as ``cT3``, ``cN1``,
    ``cM0``. ``scheme`` is one of :data:`STAGE_SCHEMES`."""
    if scheme not in STAGE_SCHEMES:
        raise ValueError(f"unknown staging scheme {scheme!r}")
    if m == "cM1":
        return "IVB"
    tt, nn = t.removeprefix("cT"), n.removeprefix("cN")
    if scheme == "stomach":
        if tt == "4b":
            return "IVA"
        if tt in ("1", "2"):
            return "I" if nn == "0" else "IIA"
        return "IIB" if nn == "0" else "III"  # cT3, cT4a
    if nn == "3":
        return "IVA"
    if scheme == "esophagus-adenocarcinoma":
        if tt in ("4a", "4b") or nn == "2":
            return "IVA"
        if tt == "1":
            return "I" if nn == "0" else "IIA"
        if tt == "2":
            return "IIB" if nn == "0" else "III"
        return "III"  # cT3 N0-1
    # oesophageal squamous-cell carcinoma
    if tt in ("4a", "4b"):
        return "IVA"
    if nn == "2":
        return "III"
    if tt == "1":
        return "I"
    if tt == "2":
        return "II"
    return "II" if nn == "0" else "III"  # cT3


_T_VALUES = ("cT1", "cT2", "cT3", "cT4a", "cT4b")
_N_VALUES = ("cN0", "cN1", "cN2", "cN3")
_M_VALUES = ("cM0", "cM1")


def determined_stage_group(scheme: str, t: str | None, n: str | None, m: str | None) -> str | None:
    """The stage group when the categories that are known fix it whatever the unknown ones are
    (e.g. cM1 is IVB for any T and N), else None."""
    groups = {
        clinical_stage_group(scheme, tt, nn, mm)
        for tt in ((t,) if t else _T_VALUES)
        for nn in ((n,) if n else _N_VALUES)
        for mm in ((m,) if m else _M_VALUES)
    }
    return groups.pop() if len(groups) == 1 else None


# --- Reference tables ----------------------------------------------------------------------

# ICD-O-3 morphology, label, SNOMED CT morphology code (None where not given).
HISTOLOGIES: dict[str, tuple[str, str, str | None]] = {
    "adenocarcinoma": ("8140/3", "Adenocarcinoma, NOS", "35917007"),
    "signet-ring": ("8490/3", "Signet ring cell carcinoma", "87737001"),
    "diffuse": ("8145/3", "Carcinoma, diffuse type", None),
    "intestinal": ("8144/3", "Adenocarcinoma, intestinal type", None),
    "squamous": ("8070/3", "Squamous cell carcinoma, NOS", "28899001"),
    "adenosquamous": ("8560/3", "Adenosquamous carcinoma", "59367005"),
    "gist": ("8936/3", "Gastrointestinal stromal tumor, malignant", None),
    "neuroendocrine": ("8240/3", "Neuroendocrine tumor, grade 1", None),
}
_SNOMED_HISTOLOGY_DISPLAY = {
    "35917007": "Adenocarcinoma, no subtype",
    "87737001": "Signet ring cell carcinoma",
    "28899001": "Squamous cell carcinoma, no ICD-O subtype",
    "59367005": "Adenosquamous carcinoma",
}

_STOMACH_SUBSITES = (
    ("C16.0", "Malignant neoplasm of cardia", 8),
    ("C16.1", "Malignant neoplasm of fundus of stomach", 3),
    ("C16.2", "Malignant neoplasm of body of stomach", 18),
    ("C16.3", "Malignant neoplasm of pyloric antrum", 25),
    ("C16.4", "Malignant neoplasm of pylorus", 4),
    ("C16.5", "Malignant neoplasm of lesser curvature of stomach, unspecified", 10),
    ("C16.6", "Malignant neoplasm of greater curvature of stomach, unspecified", 5),
    ("C16.8", "Malignant neoplasm of overlapping sites of stomach", 4),
    ("C16.9", "Malignant neoplasm of stomach, unspecified", 23),
)
_ESOPHAGUS_SUBSITES = {
    "C15.3": "Malignant neoplasm of upper third of esophagus",
    "C15.4": "Malignant neoplasm of middle third of esophagus",
    "C15.5": "Malignant neoplasm of lower third of esophagus",
    "C15.9": "Malignant neoplasm of esophagus, unspecified",
}
_OTHER_PRIMARIES = (
    ("C18.7", "Malignant neoplasm of sigmoid colon", "Sigmoid colectomy"),
    ("C25.0", "Malignant neoplasm of head of pancreas", "Pancreaticoduodenectomy (Whipple)"),
)

METASTASIS_SITES: dict[str, tuple[str, str]] = {
    "peritoneum": ("C78.6", "Secondary malignant neoplasm of retroperitoneum and peritoneum"),
    "liver": ("C78.7", "Secondary malignant neoplasm of liver and intrahepatic bile duct"),
    "lung": ("C78.00", "Secondary malignant neoplasm of unspecified lung"),
    "bone": ("C79.51", "Secondary malignant neoplasm of bone"),
    "ovary": ("C79.60", "Secondary malignant neoplasm of unspecified ovary"),
}

# (ICD-10-CM code, display, kind). Kinds drive the medications that come with them.
_AUTOIMMUNE = (
    ("M06.9", "Rheumatoid arthritis, unspecified", "ra", 18),
    ("M32.9", "Systemic lupus erythematosus, unspecified", "lupus", 6),
    ("K50.90", "Crohn's disease, unspecified, without complications", "ibd", 8),
    ("K51.90", "Ulcerative colitis, unspecified, without complications", "ibd", 8),
    (
        "E05.00",
        "Thyrotoxicosis with diffuse goiter without thyrotoxic crisis or storm",
        "graves",
        5,
    ),
    ("E06.3", "Autoimmune thyroiditis", "hashimoto", 12),
    ("E03.9", "Hypothyroidism, unspecified", "hypothyroid", 12),
    ("E10.9", "Type 1 diabetes mellitus without complications", "t1dm", 10),
    ("L40.0", "Psoriasis vulgaris", "psoriasis", 10),
    ("G35", "Multiple sclerosis", "ms", 4),
    ("L80", "Vitiligo", "vitiligo", 4),
)
_BACKGROUND = (
    ("I10", "Essential (primary) hypertension", 0.30),
    ("E11.9", "Type 2 diabetes mellitus without complications", 0.12),
    ("E78.5", "Hyperlipidemia, unspecified", 0.15),
    ("K21.9", "Gastro-esophageal reflux disease without esophagitis", 0.08),
    ("J44.9", "Chronic obstructive pulmonary disease, unspecified", 0.06),
)
_ILD = (
    ("J84.10", "Pulmonary fibrosis, unspecified"),
    ("J84.9", "Interstitial pulmonary disease, unspecified"),
    ("J84.112", "Idiopathic pulmonary fibrosis"),
)
_HEPATITIS = (
    ("B18.1", "Chronic viral hepatitis B without delta-agent"),
    ("B18.2", "Chronic viral hepatitis C"),
)
_TRANSPLANTS = (
    ("Z94.0", "Kidney transplant status", True),
    ("Z94.4", "Liver transplant status", True),
    ("Z94.81", "Bone marrow transplant status", False),
)
# (code, display, sex or None, kind)
_OTHER_MALIGNANCIES = (
    ("C61", "Malignant neoplasm of prostate", "male", "prostate"),
    (
        "C50.911",
        "Malignant neoplasm of unspecified site of right female breast",
        "female",
        "breast",
    ),
    ("C18.9", "Malignant neoplasm of colon, unspecified", None, "colon"),
    ("C67.9", "Malignant neoplasm of bladder, unspecified", None, "bladder"),
    ("C43.9", "Malignant melanoma of skin, unspecified", None, "melanoma"),
    ("C44.91", "Basal cell carcinoma of skin, unspecified", None, "bcc"),
    ("C73", "Malignant neoplasm of thyroid gland", None, "thyroid"),
)

# RxNorm ingredient codes (FHIR-IMPORT.md) and a few more; None where RxNorm has no entry.
DRUGS: dict[str, tuple[str | None, str]] = {
    "oxaliplatin": ("32592", "oxaliplatin"),
    "docetaxel": ("72962", "docetaxel"),
    "fluorouracil": ("4492", "fluorouracil"),
    "leucovorin": ("6313", "leucovorin"),
    "capecitabine": ("194000", "capecitabine"),
    "cisplatin": ("2555", "cisplatin"),
    "carboplatin": ("40048", "carboplatin"),
    "paclitaxel": ("56946", "paclitaxel"),
    "s-1": (None, "S-1 (tegafur/gimeracil/oteracil)"),
    "trastuzumab": ("224905", "trastuzumab"),
    "pembrolizumab": ("1547545", "pembrolizumab"),
    "nivolumab": ("1597876", "nivolumab"),
    "ipilimumab": ("1094833", "ipilimumab"),
    "atezolizumab": ("1792776", "atezolizumab"),
    "durvalumab": ("1919503", "durvalumab"),
    "prednisone": ("8640", "prednisone"),
    "methotrexate": ("6851", "methotrexate"),
    "tacrolimus": ("42316", "tacrolimus"),
    "levothyroxine": ("10582", "levothyroxine"),
}
REGIMENS: dict[str, tuple[str, ...]] = {
    "FLOT": ("fluorouracil", "leucovorin", "oxaliplatin", "docetaxel"),
    "SOX": ("s-1", "oxaliplatin"),
    "CAPOX": ("capecitabine", "oxaliplatin"),
    "FOLFOX": ("fluorouracil", "leucovorin", "oxaliplatin"),
    "XP": ("capecitabine", "cisplatin"),
    "Carboplatin/paclitaxel (CROSS)": ("carboplatin", "paclitaxel"),
}

# (city, state, postal code); country US.
US_PLACES = (
    ("New York", "NY", "10021"),
    ("Boston", "MA", "02115"),
    ("Houston", "TX", "77030"),
    ("Los Angeles", "CA", "90095"),
    ("Chicago", "IL", "60637"),
    ("Seattle", "WA", "98109"),
    ("Duarte", "CA", "91010"),
    ("Atlanta", "GA", "30322"),
    ("Rochester", "MN", "55905"),
    ("Birmingham", "AL", "35233"),
)
# (city, postal code, country)
NON_US_PLACES = (
    ("Paris", "75013", "FR"),
    ("Heidelberg", "69120", "DE"),
    ("Tokyo", "104-0045", "JP"),
    ("Seoul", "03722", "KR"),
    ("Beijing", "100021", "CN"),
)

_LOINC_DISPLAY = {
    "21905-5": "Primary tumor.clinical [Class] Cancer",
    "21906-3": "Regional lymph nodes.clinical [Class] Cancer",
    "21907-1": "Distant metastases.clinical [Class] Cancer",
    "21908-9": "Stage group.clinical Cancer",
    "89247-1": "ECOG Performance Status score",
    "89243-0": "Karnofsky Performance Status score",
    "751-8": "Neutrophils [#/volume] in Blood by Automated count",
    "777-3": "Platelets [#/volume] in Blood by Automated count",
    "718-7": "Hemoglobin [Mass/volume] in Blood",
    "6690-2": "Leukocytes [#/volume] in Blood by Automated count",
    "731-0": "Lymphocytes [#/volume] in Blood by Automated count",
    "24467-3": "CD3+CD4+ (T4 helper) cells [#/volume] in Blood",
    "2160-0": "Creatinine [Mass/volume] in Serum or Plasma",
    "14682-9": "Creatinine [Moles/volume] in Serum or Plasma",
    "1975-2": "Bilirubin.total [Mass/volume] in Serum or Plasma",
    "14631-6": "Bilirubin.total [Moles/volume] in Serum or Plasma",
    "1920-8": "Aspartate aminotransferase [Enzymatic activity/volume] in Serum or Plasma",
    "1742-6": "Alanine aminotransferase [Enzymatic activity/volume] in Serum or Plasma",
    "1751-7": "Albumin [Mass/volume] in Serum or Plasma",
    "29463-7": "Body weight",
    "8302-2": "Body height",
    "48676-1": "HER2 [Interpretation] in Tissue",
    "18474-7": "HER2 Ag [Presence] in Tissue by Immune stain",
    "81695-9": "Microsatellite instability [Interpretation] in Cancer specimen Qualitative",
    "82810-3": "Pregnancy status",
}

# Deliberate gaps of an incomplete profile, with their relative frequency.
OMISSIONS = {
    "no-performance-status": 25,
    "no-cN": 18,
    "no-cT": 8,
    "no-staging": 8,
    "no-labs": 15,
    "no-chemistry": 8,
    "no-histology": 12,
    "no-reference-ranges": 6,
}
INCOMPLETE_SHARE = 0.2


# --- Small FHIR helpers --------------------------------------------------------------------


def valid_site_code(site_code: str) -> bool:
    """Whether ``site_code`` can prefix an MRN, a file name and a FHIR resource id."""
    return bool(_SITE_CODE.fullmatch(site_code)) and len(site_code) <= 50


def _coding(system: str, code: str, display: str | None = None) -> dict[str, str]:
    coding = {"system": system, "code": code}
    if display:
        coding["display"] = display
    return coding


def _concept(*codings: dict[str, str], text: str | None = None) -> dict[str, Any]:
    concept: dict[str, Any] = {}
    if codings:
        concept["coding"] = list(codings)
    if text:
        concept["text"] = text
    return concept


def _loinc(code: str) -> dict[str, Any]:
    display = _LOINC_DISPLAY[code]
    return _concept(_coding(LOINC, code, display), text=display)


def _quantity(value: float, code: str, unit: str | None = None) -> dict[str, Any]:
    return {"value": value, "unit": unit or code, "system": UCUM, "code": code}


def _status(code: str) -> dict[str, Any]:
    return _concept(_coding(CONDITION_CLINICAL, code))


def _drug(name: str) -> dict[str, Any]:
    rxnorm, display = DRUGS[name]
    if rxnorm is None:
        return _concept(text=display)
    return _concept(_coding(RXNORM, rxnorm, display), text=display)


def _shift_years(day: datetime.date, years: int) -> datetime.date:
    """``day`` moved by whole years; 29 February becomes 28 February in a common year."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


def _days(n: int) -> datetime.timedelta:
    return datetime.timedelta(days=n)


def _weighted(rng: random.Random, options: Iterable[tuple[Any, float]]) -> Any:
    items = list(options)
    return rng.choices([value for value, _ in items], weights=[w for _, w in items])[0]


# --- The patient's story, drawn first, written out second ----------------------------------


@dataclasses.dataclass
class _Tumour:
    site: str  # stomach, gej, esophagus, other
    icd10: str
    display: str
    text: str
    histology: str
    scheme: str | None  # AJCC stage table, None where no group is given
    siewert: str | None = None
    other_surgery: str | None = None


@dataclasses.dataclass
class _Stage:
    t: str
    n: str
    m: str
    metastases: list[str]

    @property
    def resectable(self) -> bool:
        return self.m == "cM0" and self.t != "cT4b"

    @property
    def early(self) -> bool:
        return self.t in ("cT1", "cT2") and self.n in ("cN0", "cN1")


def _draw_tumour(rng: random.Random) -> _Tumour:
    site = _weighted(rng, (("stomach", 66), ("gej", 15), ("esophagus", 14), ("other", 5)))
    if site == "stomach":
        code, display = _weighted(rng, (((c, d), w) for c, d, w in _STOMACH_SUBSITES))
        histology = _weighted(
            rng,
            (
                ("adenocarcinoma", 38),
                ("signet-ring", 14),
                ("diffuse", 12),
                ("intestinal", 16),
                ("adenosquamous", 3),
                ("gist", 10),
                ("neuroendocrine", 7),
            ),
        )
        scheme = None if histology in ("gist", "neuroendocrine") else "stomach"
        return _Tumour(site, code, display, display, histology, scheme)
    if site == "gej":
        siewert = _weighted(rng, (("I", 30), ("II", 45), ("III", 25)))
        code = "C15.5" if siewert == "I" else "C16.0"
        display = (
            _ESOPHAGUS_SUBSITES["C15.5"] if code == "C15.5" else "Malignant neoplasm of cardia"
        )
        text = f"Malignant neoplasm of the gastroesophageal junction, Siewert type {siewert}"
        histology = _weighted(
            rng, (("adenocarcinoma", 75), ("intestinal", 15), ("signet-ring", 10))
        )
        scheme = "stomach" if siewert == "III" else "esophagus-adenocarcinoma"
        return _Tumour(site, code, display, text, histology, scheme, siewert=siewert)
    if site == "esophagus":
        if rng.random() < 0.6:
            histology = "squamous"
            code = _weighted(rng, (("C15.3", 15), ("C15.4", 45), ("C15.5", 40)))
            scheme = "esophagus-squamous"
        else:
            histology = "adenocarcinoma"
            code = _weighted(rng, (("C15.5", 80), ("C15.9", 20)))
            scheme = "esophagus-adenocarcinoma"
        display = _ESOPHAGUS_SUBSITES[code]
        return _Tumour(site, code, display, display, histology, scheme)
    code, display, surgery = rng.choice(_OTHER_PRIMARIES)
    return _Tumour(site, code, display, display, "adenocarcinoma", None, other_surgery=surgery)


def _draw_stage(rng: random.Random, tumour: _Tumour, sex: str) -> _Stage:
    if tumour.histology in ("gist", "neuroendocrine") or tumour.site == "other":
        if tumour.histology == "gist":
            t = _weighted(rng, (("cT1", 15), ("cT2", 40), ("cT3", 30), ("cT4", 15)))
            n = "cN1" if rng.random() < 0.03 else "cN0"
            m1 = rng.random() < 0.08
        elif tumour.histology == "neuroendocrine":
            t = _weighted(rng, (("cT1", 40), ("cT2", 30), ("cT3", 20), ("cT4", 10)))
            n = "cN1" if rng.random() < 0.3 else "cN0"
            m1 = rng.random() < 0.1
        else:
            t = _weighted(rng, (("cT2", 20), ("cT3", 50), ("cT4", 30)))
            n = _weighted(rng, (("cN0", 40), ("cN1", 35), ("cN2", 25)))
            m1 = rng.random() < 0.3
        metastases = [_weighted(rng, (("liver", 70), ("peritoneum", 30)))] if m1 else []
        return _Stage(t, n, "cM1" if m1 else "cM0", metastases)

    t = _weighted(rng, (("cT1", 8), ("cT2", 14), ("cT3", 38), ("cT4a", 28), ("cT4b", 12)))
    n_weights = {
        "cT1": (75, 20, 5, 0),
        "cT2": (45, 35, 15, 5),
        "cT3": (25, 35, 25, 15),
        "cT4a": (15, 30, 30, 25),
        "cT4b": (10, 25, 35, 30),
    }[t]
    n = _weighted(rng, zip(_N_VALUES, n_weights, strict=True))
    m1_chance = {"cT1": 0.02, "cT2": 0.05, "cT3": 0.15, "cT4a": 0.25, "cT4b": 0.4}[t]
    if rng.random() >= m1_chance:
        return _Stage(t, n, "cM0", [])
    if tumour.site == "esophagus":
        sites = (("liver", 45), ("lung", 30), ("bone", 15), ("peritoneum", 10))
    else:
        sites = (("peritoneum", 55), ("liver", 35), ("lung", 5), ("bone", 5))
    metastases = [_weighted(rng, sites)]
    if rng.random() < 0.3:
        second = _weighted(rng, sites)
        if second not in metastases:
            metastases.append(second)
    if sex == "female" and tumour.site == "stomach" and rng.random() < 0.1:
        metastases.append("ovary")  # Krukenberg tumour
    return _Stage(t, n, "cM1", metastases)


def _draw_age(rng: random.Random) -> int:
    return max(30, min(88, round(rng.gauss(66, 11))))


def _birth_date(rng: random.Random, today: datetime.date, age: int) -> datetime.date:
    """A birth date that makes the patient exactly ``age`` years old on ``today``."""
    latest = _shift_years(today, -age)
    earliest = _shift_years(today, -age - 1) + _days(1)
    # One draw whatever the span (365 or 366 days), so that the rest of the patient does not
    # depend on the date the bundles are made.
    return earliest + _days(int(rng.random() * ((latest - earliest).days + 1)))


class _Writer:
    """Collects the entries of one bundle; every fullUrl is a uuid5 of the patient's token."""

    def __init__(self, token: str) -> None:
        self._token = token
        self.entries: list[Resource] = []
        self.patient_url = ""

    def add(self, resource: Resource) -> str:
        url = f"urn:uuid:{uuid.uuid5(_NAMESPACE, f'{self._token}/{len(self.entries)}')}"
        if self.patient_url:
            resource["subject"] = {"reference": self.patient_url}
        self.entries.append({"fullUrl": url, "resource": resource})
        return url

    def observation(
        self,
        code: dict[str, Any],
        when: datetime.date,
        *,
        category: str | None = None,
        profile: str | None = None,
        **value: Any,
    ) -> str:
        resource: Resource = {"resourceType": "Observation"}
        if profile:
            resource["meta"] = {"profile": [MCODE + profile]}
        resource["status"] = "final"
        if category:
            resource["category"] = [_concept(_coding(OBSERVATION_CATEGORY, category))]
        resource["code"] = code
        resource["effectiveDateTime"] = when.isoformat()
        resource.update(value)
        return self.add(resource)

    def condition(
        self,
        code: str,
        display: str,
        *,
        status: str = "active",
        onset: datetime.date | None = None,
        text: str | None = None,
        profile: str | None = None,
        extension: list[Resource] | None = None,
    ) -> str:
        resource: Resource = {"resourceType": "Condition"}
        if profile:
            resource["meta"] = {"profile": [MCODE + profile]}
        if extension:
            resource["extension"] = extension
        resource["clinicalStatus"] = _status(status)
        resource["verificationStatus"] = _concept(_coding(CONDITION_VERIFICATION, "confirmed"))
        resource["code"] = _concept(_coding(ICD10CM, code, display), text=text or display)
        if onset:
            resource["onsetDateTime"] = onset.isoformat()
        return self.add(resource)

    def medication(
        self,
        drug: str,
        *,
        status: str,
        start: datetime.date,
        end: datetime.date | None = None,
        reason: str | None = None,
        reason_ref: str | None = None,
        note: str | None = None,
        dosage: Resource | None = None,
    ) -> str:
        period = {"start": start.isoformat()}
        if end:
            period["end"] = end.isoformat()
        resource: Resource = {
            "resourceType": "MedicationStatement",
            "status": status,
            "medicationCodeableConcept": _drug(drug),
            "effectivePeriod": period,
        }
        if reason:
            resource["reasonCode"] = [_concept(text=reason)]
        if reason_ref:
            resource["reasonReference"] = [{"reference": reason_ref}]
        if note:
            resource["note"] = [{"text": note}]
        if dosage:
            resource["dosage"] = [dosage]
        return self.add(resource)


def _daily_dosage(drug_label: str, mg: float, per_day: int) -> Resource:
    dose = int(mg) if float(mg).is_integer() else mg
    how_often = {1: "once daily", 2: "twice daily", 3: "three times daily"}[per_day]
    return {
        "text": f"{drug_label} {dose} mg by mouth {how_often}",
        "timing": {"repeat": {"frequency": per_day, "period": 1, "periodUnit": "d"}},
        "doseAndRate": [{"doseQuantity": _quantity(dose, "mg")}],
    }


# --- Labs ----------------------------------------------------------------------------------


def _round(value: float, digits: int) -> float | int:
    return round(value) if digits == 0 else round(value, digits)


def _unit_style(rng: random.Random, country: str) -> str:
    if country == "US":
        return _weighted(rng, (("conventional", 65), ("mm3", 10), ("si", 10), ("mixed", 15)))
    return _weighted(rng, (("si", 50), ("conventional", 25), ("mm3", 10), ("mixed", 15)))


def _pick(rng: random.Random, style: str, conventional: str, si: str, *others: str) -> str:
    if style == "mixed":
        return rng.choice((conventional, si, *others))
    return si if style == "si" else conventional


def _count_quantity(value_1e9_per_l: float, unit: str, digits: int) -> dict[str, Any]:
    """A cell count given in 10^9/L as UCUM 10*3/uL, 10*9/L or /mm3."""
    if unit == "/mm3":
        return _quantity(
            int(round(value_1e9_per_l * 1000, -1 if value_1e9_per_l < 10 else -3)), unit
        )
    label = "10^3/uL" if unit == "10*3/uL" else "10^9/L"
    return _quantity(_round(value_1e9_per_l, digits), unit, label)


def _write_labs(
    rng: random.Random,
    w: _Writer,
    *,
    when: datetime.date,
    sex: str,
    country: str,
    liver_metastases: bool,
    chemistry: bool,
    reference_ranges: bool,
) -> None:
    style = _unit_style(rng, country)
    count_unit = "/mm3" if style == "mm3" else _pick(rng, style, "10*3/uL", "10*9/L", "/mm3")

    anc = rng.uniform(0.4, 1.45) if rng.random() < 0.08 else max(1.6, rng.gauss(4.0, 1.3))
    w.observation(
        _loinc("751-8"),
        when,
        category="laboratory",
        valueQuantity=_count_quantity(anc, count_unit, 1),
    )
    if rng.random() < 0.5:
        wbc = anc / rng.uniform(0.5, 0.7)
        w.observation(
            _loinc("6690-2"),
            when,
            category="laboratory",
            valueQuantity=_count_quantity(wbc, count_unit, 1),
        )
    lymphocytes = max(0.3, rng.gauss(1.7, 0.6))
    if rng.random() < 0.3:
        w.observation(
            _loinc("731-0"),
            when,
            category="laboratory",
            valueQuantity=_count_quantity(lymphocytes, count_unit, 1),
        )
    if rng.random() < 0.08:
        cd4 = int(round(lymphocytes * rng.uniform(0.35, 0.6) * 1000, -1))
        w.observation(
            _loinc("24467-3"),
            when,
            category="laboratory",
            valueQuantity=_quantity(cd4, "/mm3", "cells/mm3"),
        )

    roll = rng.random()
    if roll < 0.05:
        platelets = rng.uniform(40, 95)
    elif roll < 0.1:
        platelets = rng.uniform(450, 620)
    else:
        platelets = min(449.0, max(150.0, rng.gauss(255, 60)))
    w.observation(
        _loinc("777-3"),
        when,
        category="laboratory",
        valueQuantity=_count_quantity(platelets, count_unit, 0),
    )

    mean_hgb = 13.2 if sex == "male" else 12.2
    hgb = rng.uniform(6.8, 8.9) if rng.random() < 0.1 else max(9.0, rng.gauss(mean_hgb - 0.8, 1.4))
    hgb_unit = _pick(rng, style, "g/dL", "g/L" if rng.random() < 0.85 else "mmol/L", "mmol/L")
    if hgb_unit == "g/L":
        hgb_quantity = _quantity(round(hgb * 10), "g/L")
    elif hgb_unit == "mmol/L":
        hgb_quantity = _quantity(round(hgb * 0.6206, 1), "mmol/L")
    else:
        hgb_quantity = _quantity(round(hgb, 1), "g/dL")
    w.observation(_loinc("718-7"), when, category="laboratory", valueQuantity=hgb_quantity)

    if not chemistry:
        return

    def with_uln(quantity: dict[str, Any], uln: float, code: str, unit: str) -> dict[str, Any]:
        extra: dict[str, Any] = {"valueQuantity": quantity}
        if reference_ranges:
            extra["referenceRange"] = [{"high": _quantity(uln, code, unit)}]
        return extra

    # Creatinine (mg/dL x 88.4 = umol/L); the lab's own ULN, in the result's unit.
    creatinine = (
        rng.uniform(1.6, 2.8)
        if rng.random() < 0.08
        else max(0.45, rng.gauss(0.95 if sex == "male" else 0.78, 0.17))
    )
    uln: float
    if _pick(rng, style, "mg/dL", "umol/L") == "umol/L":
        uln = rng.choice((104, 115, 110) if sex == "male" else (84, 90, 97))
        w.observation(
            _loinc("14682-9"),
            when,
            category="laboratory",
            **with_uln(
                _quantity(round(creatinine * 88.4), "umol/L", "µmol/L"), uln, "umol/L", "µmol/L"
            ),
        )
    else:
        uln = rng.choice((1.2, 1.3, 1.17) if sex == "male" else (1.0, 1.1, 1.02))
        w.observation(
            _loinc("2160-0"),
            when,
            category="laboratory",
            **with_uln(_quantity(round(creatinine, 2), "mg/dL"), uln, "mg/dL", "mg/dL"),
        )

    bilirubin = rng.uniform(1.9, 3.6) if rng.random() < 0.06 else max(0.2, rng.gauss(0.6, 0.25))
    if _pick(rng, style, "mg/dL", "umol/L") == "umol/L":
        uln = rng.choice((17, 21, 20))
        w.observation(
            _loinc("14631-6"),
            when,
            category="laboratory",
            **with_uln(
                _quantity(round(bilirubin * 17.1), "umol/L", "µmol/L"), uln, "umol/L", "µmol/L"
            ),
        )
    else:
        uln = rng.choice((1.0, 1.2, 1.1))
        w.observation(
            _loinc("1975-2"),
            when,
            category="laboratory",
            **with_uln(_quantity(round(bilirubin, 1), "mg/dL"), uln, "mg/dL", "mg/dL"),
        )

    high_transaminases = rng.random() < (0.3 if liver_metastases else 0.06)
    for code, ulns in (("1920-8", (35, 40, 37)), ("1742-6", (40, 45, 56, 35))):
        uln = rng.choice(ulns)
        value = (
            round(uln * rng.uniform(2.0, 6.0))
            if high_transaminases
            else max(8, round(rng.gauss(24, 8)))
        )
        w.observation(
            _loinc(code),
            when,
            category="laboratory",
            **with_uln(_quantity(value, "U/L"), uln, "U/L", "U/L"),
        )

    if rng.random() < 0.85:
        albumin = min(5.0, max(2.2, rng.gauss(3.8, 0.45)))
        if _pick(rng, style, "g/dL", "g/L") == "g/L":
            quantity = _quantity(round(albumin * 10), "g/L")
        else:
            quantity = _quantity(round(albumin, 1), "g/dL")
        w.observation(_loinc("1751-7"), when, category="laboratory", valueQuantity=quantity)


def _write_body_size(
    rng: random.Random, w: _Writer, when: datetime.date, sex: str, country: str
) -> None:
    asian = country in ("JP", "KR", "CN")
    if sex == "male":
        height = rng.gauss(170 if asian else 176, 7)
        weight = rng.gauss(66 if asian else 80, 12)
    else:
        height = rng.gauss(158 if asian else 163, 6)
        weight = rng.gauss(54 if asian else 66, 10)
    weight = max(38.0, weight)
    if rng.random() < 0.95:
        if country == "US" and rng.random() < 0.3:
            quantity = _quantity(round(weight * 2.20462, 1), "[lb_av]", "lb")
        else:
            quantity = _quantity(round(weight, 1), "kg")
        w.observation(_loinc("29463-7"), when, category="vital-signs", valueQuantity=quantity)
    if rng.random() < 0.9:
        w.observation(
            _loinc("8302-2"),
            when,
            category="vital-signs",
            valueQuantity=_quantity(round(height), "cm"),
        )


# --- Biomarkers ----------------------------------------------------------------------------


_Result = tuple[dict[str, Any], dict[str, Any]]  # (Observation.code, value[x] fields)


def _draw_biomarkers(
    rng: random.Random, tumour: _Tumour, stage: _Stage
) -> tuple[list[_Result], bool]:
    """HER2 / MSI or MMR / PD-L1 results for some patients, and whether HER2 is positive."""
    results: list[_Result] = []
    if tumour.histology in ("gist", "neuroendocrine", "squamous") or tumour.site == "other":
        if tumour.histology == "squamous" and rng.random() < 0.4:
            results.append(_draw_pdl1(rng))
        return results, False
    her2_positive = False
    if rng.random() < (0.85 if stage.m == "cM1" else 0.5):
        ihc = _weighted(rng, (("0", 45), ("1+", 25), ("2+", 18), ("3+", 12)))
        her2_positive = ihc == "3+" or (ihc == "2+" and rng.random() < 0.35)
        if rng.random() < 0.85:
            results.append((_loinc("18474-7"), {"valueCodeableConcept": _concept(text=ihc)}))
        if ihc == "2+":
            ish = "amplified" if her2_positive else "not amplified"
            results.append(
                (
                    _concept(text="HER2 in situ hybridization (ISH)"),
                    {"valueCodeableConcept": _concept(text=ish)},
                )
            )
        interpretation = (
            _coding(SNOMED, "10828004", "Positive")
            if her2_positive
            else _coding(SNOMED, "260385009", "Negative")
        )
        results.append(
            (
                _loinc("48676-1"),
                {"valueCodeableConcept": _concept(interpretation, text=interpretation["display"])},
            )
        )
    if rng.random() < 0.5:
        unstable = rng.random() < 0.1
        if rng.random() < 0.75:
            msi = "MSI-H" if unstable else ("MSI-L" if rng.random() < 0.05 else "MSS")
            results.append((_loinc("81695-9"), {"valueCodeableConcept": _concept(text=msi)}))
        else:
            results.append(
                (
                    _concept(
                        text="Mismatch repair (MMR) protein expression by immunohistochemistry"
                    ),
                    {"valueCodeableConcept": _concept(text="dMMR" if unstable else "pMMR")},
                )
            )
    if rng.random() < 0.45:
        results.append(_draw_pdl1(rng))
    return results, her2_positive


def _draw_pdl1(rng: random.Random) -> _Result:
    band = _weighted(rng, (((0, 0), 15), ((1, 4), 30), ((5, 9), 20), ((10, 60), 35)))
    return (
        _concept(text="PD-L1 combined positive score (CPS)"),
        {"valueQuantity": {"value": rng.randint(*band), "unit": "score"}},
    )


# --- Surgery and treatment -----------------------------------------------------------------


def _surgery_name(rng: random.Random, tumour: _Tumour, stage: _Stage) -> str:
    if tumour.other_surgery:
        return tumour.other_surgery
    if tumour.histology == "gist":
        if stage.t in ("cT1", "cT2"):
            return "Laparoscopic wedge resection of stomach"
        return "Subtotal gastrectomy"
    if tumour.histology == "neuroendocrine" and stage.t == "cT1":
        return "Endoscopic submucosal dissection of gastric lesion"
    if tumour.site == "esophagus" or tumour.siewert == "I":
        return rng.choice(("Esophagectomy", "Ivor Lewis esophagectomy"))
    if tumour.siewert == "II":
        return rng.choice(("Esophagectomy", "Total gastrectomy", "Extended total gastrectomy"))
    if tumour.siewert == "III" or tumour.icd10 in ("C16.0", "C16.1"):
        name = "Proximal gastrectomy" if stage.t == "cT1" and rng.random() < 0.5 else None
        name = name or "Total gastrectomy"
    elif tumour.icd10 in ("C16.3", "C16.4"):
        name = rng.choice(("Subtotal gastrectomy", "Subtotal gastrectomy", "Distal gastrectomy"))
    else:
        total = 0.7 if tumour.histology in ("diffuse", "signet-ring") else 0.5
        name = "Total gastrectomy" if rng.random() < total else "Subtotal gastrectomy"
    if rng.random() < 0.3:
        name += " with D2 lymphadenectomy"
    return name


@dataclasses.dataclass
class _Treatment:
    regimen: str
    drugs: tuple[str, ...]
    intent: str
    completed: bool
    radiotherapy: bool = False


def _draw_treatment(
    rng: random.Random, tumour: _Tumour, stage: _Stage, surgery: str, her2_positive: bool
) -> _Treatment | None:
    carcinoma = tumour.scheme is not None
    if not carcinoma:
        return None
    if stage.resectable and not stage.early and surgery != "done" and rng.random() < 0.3:
        if tumour.site == "esophagus" and (tumour.histology == "squamous" or rng.random() < 0.5):
            regimen = "Carboplatin/paclitaxel (CROSS)"
            return _Treatment(
                regimen, REGIMENS[regimen], "neoadjuvant", rng.random() < 0.4, radiotherapy=True
            )
        regimen = _weighted(rng, (("FLOT", 70), ("SOX", 15), ("CAPOX", 15)))
        return _Treatment(regimen, REGIMENS[regimen], "neoadjuvant", rng.random() < 0.4)
    if not stage.resectable and rng.random() < 0.45:
        if her2_positive:
            regimen = rng.choice(("CAPOX", "XP"))
            return _Treatment(
                regimen + " + trastuzumab",
                (*REGIMENS[regimen], "trastuzumab"),
                "palliative",
                rng.random() < 0.3,
            )
        regimen = _weighted(rng, (("CAPOX", 40), ("FOLFOX", 35), ("SOX", 25)))
        agent = _weighted(rng, ((None, 35), ("nivolumab", 40), ("pembrolizumab", 25)))
        drugs = REGIMENS[regimen] + ((agent,) if agent else ())
        name = f"{regimen} + {agent}" if agent else regimen
        return _Treatment(name, drugs, "palliative", rng.random() < 0.3)
    return None


# --- The bundle ----------------------------------------------------------------------------


def generate_bundle(
    rng: random.Random,
    index: int,
    *,
    site_code: str = "DEMO",
    today: datetime.date,
    incomplete: bool | None = None,
) -> dict[str, Any]:
    """One synthetic patient as a FHIR R4 collection Bundle (a plain dict).

    The MRN is ``f"{site_code}-{index:06d}"``; every other value comes from ``rng``, and dates
    are relative to ``today`` (diagnosis within the last 3 months, labs 2-4 weeks old).
    ``incomplete`` forces a deliberately incomplete profile (True) or a complete one (False);
    by default one patient in five is incomplete, at random.
    """
    if not valid_site_code(site_code):
        raise ValueError(f"site code {site_code!r} must be letters and digits (and inner dashes)")
    if index < 0:
        raise ValueError("index must not be negative")
    mrn = f"{site_code}-{index:06d}"
    w = _Writer(f"{mrn}/{rng.getrandbits(64):016x}")

    # Who and where.
    sex = "male" if rng.random() < 0.66 else "female"
    age = _draw_age(rng)
    birth = _birth_date(rng, today, age)
    if rng.random() < 0.85:
        city, state, postal = rng.choice(US_PLACES)
        address = {"city": city, "state": state, "postalCode": postal, "country": "US"}
    else:
        city, postal, country = rng.choice(NON_US_PLACES)
        address = {"city": city, "postalCode": postal, "country": country}
    country = address["country"]

    # The disease and what has been done about it.
    tumour = _draw_tumour(rng)
    stage = _draw_stage(rng, tumour, sex)
    omissions: set[str] = set()
    drawn_incomplete = rng.random() < INCOMPLETE_SHARE
    if drawn_incomplete if incomplete is None else incomplete:
        # Most incomplete profiles miss one thing, some two.
        for _ in range(1 if rng.random() < 0.7 else 2):
            omissions.add(_weighted(rng, OMISSIONS.items()))
    surgery_name = _surgery_name(rng, tumour, stage)
    if stage.resectable:
        done, planned = (0.35, 0.5) if stage.early else (0.08, 0.65)
        if country in ("JP", "KR", "CN"):  # upfront gastrectomy is the norm there
            done += 0.15
        roll = rng.random()
        surgery = "done" if roll < done else ("planned" if roll < done + planned else "none")
    else:
        surgery = "none"
    biomarkers, her2_positive = _draw_biomarkers(rng, tumour, stage)
    treatment = _draw_treatment(rng, tumour, stage, surgery, her2_positive)

    # Dates: a completed course of treatment needs an older diagnosis.
    if treatment and treatment.completed:
        diagnosed_days_ago = rng.randint(75, 90)
    elif surgery == "done":
        diagnosed_days_ago = rng.randint(30, 90)
    else:
        diagnosed_days_ago = rng.randint(14, 90)
    diagnosed = today - _days(diagnosed_days_ago)
    staged = diagnosed + _days(rng.randint(3, min(12, diagnosed_days_ago - 1)))
    labs_on = today - _days(rng.randint(14, 28))
    assessed = today - _days(rng.randint(0, 13))

    w.patient_url = w.add(
        {
            "resourceType": "Patient",
            "id": mrn,
            "identifier": [{"system": MRN_SYSTEM, "value": mrn}],
            "gender": sex,
            "birthDate": birth.isoformat(),
            "address": [address],
        }
    )

    morphology, label, snomed = HISTOLOGIES[tumour.histology]
    histology_codings = [_coding(ICDO3, morphology, label)]
    if snomed:
        histology_codings.insert(0, _coding(SNOMED, snomed, _SNOMED_HISTOLOGY_DISPLAY[snomed]))
    extension = None
    if "no-histology" not in omissions:
        extension = [
            {
                "url": HISTOLOGY_EXTENSION,
                "valueCodeableConcept": _concept(*histology_codings, text=label),
            }
        ]
    primary = w.condition(
        tumour.icd10,
        tumour.display,
        text=tumour.text,
        onset=diagnosed,
        profile="mcode-primary-cancer-condition",
        extension=extension,
    )

    if rng.random() < 0.6:
        w.add(
            {
                "resourceType": "Procedure",
                "status": "completed",
                "code": _concept(
                    text="Colonoscopy with biopsy"
                    if tumour.icd10.startswith("C18")
                    else "Esophagogastroduodenoscopy with biopsy"
                ),
                "performedDateTime": diagnosed.isoformat(),
            }
        )

    # Clinical TNM and stage group.
    if "no-staging" not in omissions:
        t = None if "no-cT" in omissions else stage.t
        n = None if "no-cN" in omissions else stage.n
        categories = [("21905-5", t, "primary-tumor"), ("21906-3", n, "regional-nodes")]
        categories.append(("21907-1", stage.m, "distant-metastases"))
        for loinc, value, kind in categories:
            if value is None and kind == "regional-nodes" and rng.random() < 0.35:
                value = "cNX"  # recorded as not assessable rather than left out
            if value is None:
                continue
            w.observation(
                _loinc(loinc),
                staged,
                category="survey",
                profile=f"mcode-tnm-{kind}-category",
                method=AJCC_8TH_METHOD,
                focus=[{"reference": primary}],
                valueCodeableConcept=_concept(_coding(AJCC, value), text=value),
            )
        if tumour.scheme:
            group = determined_stage_group(tumour.scheme, t, n, stage.m)
            if group:
                w.observation(
                    _loinc("21908-9"),
                    staged,
                    category="survey",
                    profile="mcode-tnm-stage-group",
                    method=AJCC_8TH_METHOD,
                    focus=[{"reference": primary}],
                    valueCodeableConcept=_concept(_coding(AJCC, group), text=group),
                )
    for site in stage.metastases:
        code, display = METASTASIS_SITES[site]
        w.condition(code, display, onset=staged, profile="mcode-secondary-cancer-condition")
    staging_laparoscopy = stage.m == "cM0" and stage.t in ("cT3", "cT4a")
    if staging_laparoscopy and tumour.scheme == "stomach" and rng.random() < 0.25:
        w.add(
            {
                "resourceType": "Procedure",
                "status": "completed",
                "code": _concept(text="Diagnostic laparoscopy with peritoneal lavage"),
                "performedDateTime": staged.isoformat(),
            }
        )
        w.observation(
            _concept(text="Peritoneal lavage cytology"),
            staged,
            category="laboratory",
            valueCodeableConcept=_concept(text="Negative for malignant cells (CY0)"),
        )

    # Performance status.
    if "no-performance-status" not in omissions:
        weights = (15, 45, 28, 12) if stage.m == "cM1" else (38, 42, 14, 6)
        ecog = _weighted(rng, zip(range(4), weights, strict=True))
        if age > 80 and ecog < 3 and rng.random() < 0.3:
            ecog += 1
        if rng.random() < 0.15:
            karnofsky = rng.choice(((90, 100), (70, 80), (50, 60), (30, 40))[ecog])
            w.observation(
                _loinc("89243-0"),
                assessed,
                category="survey",
                profile="mcode-karnofsky-performance-status",
                valueInteger=karnofsky,
            )
        else:
            w.observation(
                _loinc("89247-1"),
                assessed,
                category="survey",
                profile="mcode-ecog-performance-status",
                valueInteger=ecog,
            )

    # Labs and body size.
    if "no-labs" not in omissions:
        _write_labs(
            rng,
            w,
            when=labs_on,
            sex=sex,
            country=country,
            liver_metastases="liver" in stage.metastases,
            chemistry="no-chemistry" not in omissions,
            reference_ranges="no-reference-ranges" not in omissions,
        )
    _write_body_size(rng, w, labs_on, sex, country)

    for biomarker, result in biomarkers:
        w.observation(biomarker, staged + _days(2), category="laboratory", **result)

    _write_comorbidities_and_medications(rng, w, today=today, sex=sex, age=age)

    # Treatment of this cancer.
    if treatment:
        start = diagnosed + _days(rng.randint(10, 18))
        end = None
        if treatment.completed:
            weeks = 5 if treatment.radiotherapy else 8
            end = min(start + _days(7 * weeks + rng.randint(0, 14)), today - _days(5))
        for drug in treatment.drugs:
            w.medication(
                drug,
                status="completed" if end else "active",
                start=start,
                end=end,
                reason=treatment.intent,
                reason_ref=primary,
                note=f"{treatment.regimen} ({treatment.intent})",
            )
        if treatment.radiotherapy:
            radiotherapy: Resource = {
                "resourceType": "Procedure",
                "status": "completed" if end else "in-progress",
                "code": _concept(text="External beam radiotherapy, 41.4 Gy in 23 fractions"),
                "reasonCode": [_concept(text=treatment.intent)],
                "reasonReference": [{"reference": primary}],
            }
            period = {"start": start.isoformat()}
            if end:
                period["end"] = end.isoformat()
            radiotherapy["performedPeriod"] = period
            w.add(radiotherapy)

    # Surgery: done, or planned.
    if surgery == "done":
        performed = diagnosed + _days(rng.randint(14, diagnosed_days_ago - 3))
        w.add(
            {
                "resourceType": "Procedure",
                "status": "completed",
                "code": _concept(text=surgery_name),
                "performedDateTime": performed.isoformat(),
                "reasonReference": [{"reference": primary}],
            }
        )
    elif surgery == "planned":
        w.add(
            {
                "resourceType": "ServiceRequest",
                "status": "active",
                "intent": "plan",
                "code": _concept(text=surgery_name),
                "occurrenceDateTime": (today + _days(rng.randint(7, 45))).isoformat(),
                "authoredOn": min(staged + _days(rng.randint(1, 5)), today).isoformat(),
                "reasonReference": [{"reference": primary}],
            }
        )

    # Pregnancy status for some women of child-bearing age.
    if sex == "female" and age < 55 and rng.random() < 0.7:
        pregnant = rng.random() < 0.05
        answer = (
            _coding(SNOMED, "77386006", "Pregnant")
            if pregnant
            else _coding(SNOMED, "60001007", "Not pregnant")
        )
        w.observation(
            _loinc("82810-3"),
            assessed,
            category="survey",
            valueCodeableConcept=_concept(answer, text=answer["display"]),
        )

    return {
        "resourceType": "Bundle",
        "meta": {
            "tag": [
                {
                    "system": SYNTHETIC_TAG_SYSTEM,
                    "code": "synthetic",
                    "display": "Synthetic patient: no real person",
                }
            ]
        },
        "type": "collection",
        "entry": w.entries,
    }


def _write_comorbidities_and_medications(
    rng: random.Random, w: _Writer, *, today: datetime.date, sex: str, age: int
) -> None:
    def years_ago(low: int, high: int) -> datetime.date:
        high = max(low, min(high, age - 18))
        return _shift_years(today, -rng.randint(low, high)) - _days(rng.randint(0, 300))

    for code, display, chance in _BACKGROUND:
        if rng.random() < chance:
            w.condition(code, display, onset=years_ago(1, 20) if rng.random() < 0.5 else None)

    steroid_reason: str | None = None
    if rng.random() < 0.12:
        code, display, kind = _weighted(rng, ((c[:3], c[3]) for c in _AUTOIMMUNE))
        status = _weighted(rng, (("active", 75), ("inactive", 10), ("remission", 15)))
        condition = w.condition(code, display, status=status, onset=years_ago(2, 30))
        start = years_ago(1, 5)
        if kind == "ra" and rng.random() < 0.6:
            w.medication(
                "methotrexate",
                status="active",
                start=start,
                reason_ref=condition,
                dosage={
                    "text": "methotrexate 15 mg by mouth once weekly",
                    "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "wk"}},
                    "doseAndRate": [{"doseQuantity": _quantity(15, "mg")}],
                },
            )
        if kind in ("hypothyroid", "hashimoto") and rng.random() < 0.8:
            w.medication("levothyroxine", status="active", start=start, reason_ref=condition)
        if kind in ("ra", "lupus", "ibd", "ms") and status == "active" and rng.random() < 0.5:
            steroid_reason = display
    if rng.random() < 0.03:
        code, display = rng.choice(_ILD)
        w.condition(code, display, onset=years_ago(1, 8))
        if rng.random() < 0.4:
            steroid_reason = display
    if rng.random() < 0.04:
        code, display = rng.choice(_HEPATITIS)
        status = "resolved" if code == "B18.2" and rng.random() < 0.4 else "active"
        w.condition(code, display, status=status, onset=years_ago(3, 30))
    if rng.random() < 0.015:
        w.condition("B20", "Human immunodeficiency virus [HIV] disease", onset=years_ago(3, 25))
    if rng.random() < 0.015:
        code, display, solid_organ = rng.choice(_TRANSPLANTS)
        condition = w.condition(code, display, onset=years_ago(2, 20))
        if solid_organ:
            w.medication(
                "tacrolimus",
                status="active",
                start=years_ago(1, 2),
                reason_ref=condition,
                dosage=_daily_dosage("tacrolimus", 2, 2),
            )
    if rng.random() < 0.06:
        code, display, _, kind = rng.choice([m for m in _OTHER_MALIGNANCIES if m[2] in (None, sex)])
        # Melanoma at least 2 years ago, so that a year of adjuvant treatment is over.
        onset = years_ago(2 if kind == "melanoma" else 1, 15)
        still_active = rng.random() < 0.3
        status = rng.choice(("remission", "resolved"))
        if still_active and onset > _shift_years(today, -3):
            status = "active"
        condition = w.condition(code, display, status=status, onset=onset)
        start = onset + _days(rng.randint(30, 90))
        if kind == "melanoma" and rng.random() < 0.7:
            w.medication(
                "pembrolizumab",
                status="completed",
                start=start,
                end=start + _days(365),
                reason="adjuvant",
                reason_ref=condition,
            )

    if steroid_reason is None and rng.random() < 0.04:
        steroid_reason = rng.choice(
            ("polymyalgia rheumatica", "chronic obstructive pulmonary disease")
        )
    if steroid_reason:
        mg, per_day = _weighted(
            rng,
            (
                ((5, 1), 25),
                ((7.5, 1), 10),
                ((10, 1), 15),
                ((15, 1), 10),
                ((20, 1), 15),
                ((10, 2), 8),
                ((30, 1), 8),
                ((40, 1), 9),
            ),
        )
        w.medication(
            "prednisone",
            status="active",
            start=today - _days(rng.randint(20, 400)),
            reason=steroid_reason,
            dosage=_daily_dosage("prednisone", mg, per_day),
        )


def generate_bundles(
    count: int, *, seed: int = 0, today: datetime.date, site_code: str = "DEMO"
) -> Iterator[dict[str, Any]]:
    """``count`` synthetic patients (MRNs ``<site>-000001`` on), the same for the same seed.

    Exactly one patient in each run of five consecutive MRNs is incomplete, so that even a
    small demo set shows the share of incomplete profiles real referrals have.
    """
    rng = random.Random(seed)  # noqa: S311 - synthetic data, not security
    for block in range(1, count + 1, 5):
        chosen = block + rng.randrange(5)
        for index in range(block, min(block + 5, count + 1)):
            yield generate_bundle(
                rng, index, site_code=site_code, today=today, incomplete=index == chosen
            )


# --- Reading a generated bundle back (mix reports, the command's summary) -------------------


@dataclasses.dataclass(frozen=True)
class Summary:
    """What a generated bundle says about the facts that matter for matching."""

    mrn: str
    site: str  # stomach, gej, esophagus, other
    histology: str | None
    t: str | None
    n: str | None
    m: str | None
    stage_group: str | None
    ecog: int | None
    karnofsky: int | None
    metastases: tuple[str, ...]
    missing: tuple[str, ...]

    @property
    def incomplete(self) -> bool:
        return bool(self.missing)


_CORE_LABS = {
    "neutrophils": ("751-8",),
    "platelets": ("777-3",),
    "haemoglobin": ("718-7",),
    "creatinine": ("2160-0", "14682-9"),
    "bilirubin": ("1975-2", "14631-6"),
    "AST": ("1920-8",),
    "ALT": ("1742-6",),
}
_ULN_LABS = {"2160-0", "14682-9", "1975-2", "14631-6", "1920-8", "1742-6"}


def summarize(bundle: dict[str, Any]) -> Summary:
    """The key facts of a bundle written by :func:`generate_bundle`, and what it leaves out."""
    resources = [entry["resource"] for entry in bundle["entry"]]
    mrn = ""
    site = "other"
    histology = None
    carcinoma = True
    values: dict[str, Any] = {}
    metastases: list[str] = []
    lab_codes: set[str] = set()
    missing_uln = False
    for resource in resources:
        kind = resource["resourceType"]
        if kind == "Patient":
            mrn = resource["identifier"][0]["value"]
        elif kind == "Condition":
            coding = resource["code"]["coding"][0]
            profiles = resource.get("meta", {}).get("profile", [])
            if MCODE + "mcode-primary-cancer-condition" in profiles:
                text = resource["code"].get("text", "")
                if "Siewert" in text:
                    site = "gej"
                elif coding["code"].startswith("C16"):
                    site = "stomach"
                elif coding["code"].startswith("C15"):
                    site = "esophagus"
                for extension in resource.get("extension", []):
                    if extension["url"] == HISTOLOGY_EXTENSION:
                        histology = extension["valueCodeableConcept"]["text"]
                carcinoma = coding["code"][:3] in ("C15", "C16") and histology not in (
                    HISTOLOGIES["gist"][1],
                    HISTOLOGIES["neuroendocrine"][1],
                )
            elif coding["code"][:3] in ("C77", "C78", "C79"):
                metastases.append(coding["code"])
        elif kind == "Observation":
            codings = resource["code"].get("coding", [])
            if not codings:
                continue
            code = codings[0]["code"]
            if "valueCodeableConcept" in resource:
                values[code] = resource["valueCodeableConcept"].get("text")
            elif "valueInteger" in resource:
                values[code] = resource["valueInteger"]
            lab_codes.add(code)
            if code in _ULN_LABS and not resource.get("referenceRange"):
                missing_uln = True
    n = values.get("21906-3")
    missing = []
    if "89247-1" not in values and "89243-0" not in values:
        missing.append("performance status")
    if "21905-5" not in values:
        missing.append("cT")
    if n in (None, "cNX"):
        missing.append("cN")
    if "21907-1" not in values:
        missing.append("cM")
    if histology is None:
        missing.append("histology")
    if carcinoma and "21908-9" not in values:
        missing.append("stage group")
    absent_labs = [name for name, codes in _CORE_LABS.items() if not lab_codes & set(codes)]
    if len(absent_labs) == len(_CORE_LABS):
        missing.append("labs")
    elif absent_labs:
        missing.append("chemistry")
    if missing_uln:
        missing.append("ULN")
    return Summary(
        mrn=mrn,
        site=site,
        histology=histology,
        t=values.get("21905-5"),
        n=n,
        m=values.get("21907-1"),
        stage_group=values.get("21908-9"),
        ecog=values.get("89247-1"),
        karnofsky=values.get("89243-0"),
        metastases=tuple(metastases),
        missing=tuple(missing),
    )
