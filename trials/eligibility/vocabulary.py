"""The clinical vocabulary patient facts and trial criteria share (AJCC 8th, sites, histology).

Pure data and small parsers: no Django. See DOMAIN.md for the clinical background.
"""

from __future__ import annotations

import re
from enum import StrEnum


class CancerSite(StrEnum):
    STOMACH = "stomach"
    GEJ = "gej"
    ESOPHAGUS = "esophagus"
    OTHER = "other"


CANCER_SITE_LABELS = {
    CancerSite.STOMACH: "stomach",
    CancerSite.GEJ: "gastroesophageal junction",
    CancerSite.ESOPHAGUS: "esophagus",
    CancerSite.OTHER: "other site",
}

# Primary sites beyond the upper GI tract that criteria name (the trial is for another
# cancer, or names it beside ours), by the ICD-10 codes of a patient's primary: a patient of
# another site is told apart by the code alone (``PatientFacts.primary_site_code``).
OTHER_SITE_CODES: dict[str, tuple[str, ...]] = {
    "colon": ("C18",),
    "rectum": ("C19", "C20"),
    "anus": ("C21",),
    "small_intestine": ("C17",),
    "liver": ("C22.0", "C22.2", "C22.7", "C22.8", "C22.9"),
    "biliary": ("C22.1", "C23", "C24"),
    "pancreas": ("C25",),
    "lung": ("C33", "C34"),
    "breast": ("C50",),
    "head_and_neck": (*(f"C{n:02d}" for n in range(15)), "C30", "C31", "C32"),
    "prostate": ("C61",),
    "kidney": ("C64", "C65"),
    "bladder": ("C66", "C67", "C68"),
    "cervix": ("C53",),
    "uterus": ("C54", "C55"),
    "ovary": ("C56", "C57.0"),
    "skin_melanoma": ("C43",),
    "thyroid": ("C73",),
}


# A junction tumour is staged and treated as gastric or as oesophageal (by its Siewert type):
# a trial for either site is one it may enter, whatever the trial's criteria then say.
GEJ_NEIGHBOURS = frozenset({CancerSite.STOMACH, CancerSite.ESOPHAGUS})


class Histology(StrEnum):
    ADENOCARCINOMA = "adenocarcinoma"
    SIGNET_RING = "signet_ring"
    DIFFUSE = "diffuse"
    INTESTINAL = "intestinal"
    MUCINOUS = "mucinous"
    SQUAMOUS = "squamous"
    ADENOSQUAMOUS = "adenosquamous"
    GIST = "gist"
    NEUROENDOCRINE = "neuroendocrine"
    LYMPHOMA = "lymphoma"
    OTHER = "other"


HISTOLOGY_LABELS = {
    Histology.ADENOCARCINOMA: "adenocarcinoma",
    Histology.SIGNET_RING: "signet ring cell carcinoma",
    Histology.DIFFUSE: "adenocarcinoma, diffuse type",
    Histology.INTESTINAL: "adenocarcinoma, intestinal type",
    Histology.MUCINOUS: "mucinous adenocarcinoma",
    Histology.SQUAMOUS: "squamous cell carcinoma",
    Histology.ADENOSQUAMOUS: "adenosquamous carcinoma",
    Histology.GIST: "gastrointestinal stromal tumour",
    Histology.NEUROENDOCRINE: "neuroendocrine tumour",
    Histology.LYMPHOMA: "lymphoma",
    Histology.OTHER: "other histology",
}
# Adenocarcinoma and its subtypes: what gastric-cancer trials mean by "adenocarcinoma".
ADENOCARCINOMA_FAMILY = frozenset(
    {
        Histology.ADENOCARCINOMA,
        Histology.SIGNET_RING,
        Histology.DIFFUSE,
        Histology.INTESTINAL,
        Histology.MUCINOUS,
    }
)

# ICD-O-3 morphology (without behaviour) -> histology.
MORPHOLOGY_HISTOLOGY = {
    "8140": Histology.ADENOCARCINOMA,
    "8144": Histology.INTESTINAL,
    "8145": Histology.DIFFUSE,
    "8142": Histology.DIFFUSE,  # linitis plastica
    "8211": Histology.ADENOCARCINOMA,  # tubular
    "8260": Histology.ADENOCARCINOMA,  # papillary
    "8480": Histology.MUCINOUS,
    "8481": Histology.MUCINOUS,
    "8490": Histology.SIGNET_RING,
    "8070": Histology.SQUAMOUS,
    "8071": Histology.SQUAMOUS,
    "8072": Histology.SQUAMOUS,
    "8560": Histology.ADENOSQUAMOUS,
    "8936": Histology.GIST,
    "9680": Histology.LYMPHOMA,
    "9699": Histology.LYMPHOMA,
}
for _code in range(8240, 8250):
    MORPHOLOGY_HISTOLOGY[str(_code)] = Histology.NEUROENDOCRINE
# SNOMED CT morphologic abnormalities seen in mCODE bundles.
SNOMED_HISTOLOGY = {
    "35917007": Histology.ADENOCARCINOMA,
    "87737001": Histology.SIGNET_RING,
    "28899001": Histology.SQUAMOUS,
    "59367005": Histology.ADENOSQUAMOUS,
    "128756002": Histology.GIST,
}
# Words in free text (longest first so "adenosquamous" is not read as "squamous").
HISTOLOGY_WORDS: tuple[tuple[str, Histology], ...] = (
    ("adenosquamous", Histology.ADENOSQUAMOUS),
    ("signet", Histology.SIGNET_RING),
    ("diffuse", Histology.DIFFUSE),
    ("intestinal", Histology.INTESTINAL),
    ("mucinous", Histology.MUCINOUS),
    ("squamous", Histology.SQUAMOUS),
    ("stromal", Histology.GIST),
    ("gist", Histology.GIST),
    ("neuroendocrine", Histology.NEUROENDOCRINE),
    ("carcinoid", Histology.NEUROENDOCRINE),
    ("lymphoma", Histology.LYMPHOMA),
    ("adenocarcinoma", Histology.ADENOCARCINOMA),
)


def histology_from_morphology(code: str) -> Histology | None:
    """``8140/3`` -> adenocarcinoma; unknown codes -> None."""
    return MORPHOLOGY_HISTOLOGY.get(code.strip().split("/")[0])


def histology_from_text(text: str) -> Histology | None:
    lowered = text.lower()
    for word, histology in HISTOLOGY_WORDS:
        if word in lowered:
            return histology
    return None


# --- AJCC 8th edition TNM -------------------------------------------------------------------

# Ranks order the categories so that ranges ("T3-4a", "N1 or higher") can be compared; a
# subcategory sits just above its parent ("T4" in a criterion covers T4a and T4b).
T_RANKS = {
    "TX": None,
    "T0": 0.0,
    "TIS": 0.5,
    "T1": 1.0,
    "T1A": 1.1,
    "T1B": 1.2,
    "T2": 2.0,
    "T3": 3.0,
    "T4": 4.0,
    "T4A": 4.1,
    "T4B": 4.2,
}
N_RANKS = {
    "NX": None,
    "N0": 0.0,
    "N1": 1.0,
    "N2": 2.0,
    "N3": 3.0,
    "N3A": 3.1,
    "N3B": 3.2,
}
M_RANKS = {"M0": 0.0, "M1": 1.0}
# Stage groups of the clinical and pathological classifications of stomach cancer.
STAGE_RANKS = {
    "0": 0.0,
    "I": 1.0,
    "IA": 1.1,
    "IB": 1.2,
    "II": 2.0,
    "IIA": 2.1,
    "IIB": 2.2,
    "III": 3.0,
    "IIIA": 3.1,
    "IIIB": 3.2,
    "IIIC": 3.3,
    "IV": 4.0,
    "IVA": 4.1,
    "IVB": 4.2,
}
CATEGORY_RANKS: dict[str, dict[str, float | None]] = {
    "T": T_RANKS,
    "N": N_RANKS,
    "M": M_RANKS,  # type: ignore[dict-item]
    "stage": STAGE_RANKS,  # type: ignore[dict-item]
}
_TNM_CODE = re.compile(r"^\s*(?P<prefix>[cpy]{0,2})(?P<code>[TNM][0-4XxIiSs]{1,2}[AaBb]?)\s*$")
_STAGE_CODE = re.compile(r"^\s*(?:stage\s*)?(?P<code>0|I{1,3}V?[ABC]?|IV[AB]?)\s*$", re.I)


class StagingError(ValueError):
    """A T, N, M or stage-group code that does not exist in AJCC 8th."""


def parse_tnm(text: str, category: str) -> tuple[str, str]:
    """``"cT3"`` -> (``"T3"``, ``"c"``); ``"T4b"`` -> (``"T4b"``, ``""``).

    Raises StagingError for a code that does not exist (``"T5"``, ``"N4"``, ``"M2"``).
    """
    match = _TNM_CODE.match(text or "")
    if not match or match.group("code")[0] != category:
        raise StagingError(f"{text!r} is not a {category} category of AJCC 8th edition")
    code = match.group("code").upper()
    if code not in CATEGORY_RANKS[category]:
        raise StagingError(f"{text!r} is not a {category} category of AJCC 8th edition")
    return display_code(code), match.group("prefix").lower()


def parse_stage_group(text: str) -> str:
    """``"Stage IIIA"`` -> ``"IIIA"``; raises StagingError for groups that do not exist."""
    match = _STAGE_CODE.match(text or "")
    if not match or match.group("code").upper() not in STAGE_RANKS:
        raise StagingError(f"{text!r} is not an AJCC 8th edition stage group")
    return match.group("code").upper()


def display_code(code: str) -> str:
    """Canonical spelling: ``T4B`` -> ``T4b``, ``TIS`` -> ``Tis``."""
    code = code.upper()
    if code == "TIS":
        return "Tis"
    if code[-1] in "AB" and code[0] in "TN":
        return code[:-1] + code[-1].lower()
    return code


def rank(category: str, code: str) -> float | None:
    """Order of a canonical code within its category (None for TX / NX)."""
    return CATEGORY_RANKS[category].get(code.upper())


def within(category: str, code: str, low: str | None, high: str | None) -> bool | None:
    """Is ``code`` inside [low, high]? A bare parent bound covers its subcategories:
    ``T4`` as an upper bound admits T4b, as a lower bound admits T4a. None when ``code`` is
    not informative (TX)."""
    value = rank(category, code)
    if value is None:
        return None
    if low is not None:
        low_rank = rank(category, low)
        if low_rank is not None and value < low_rank:
            return False
    if high is not None:
        high_rank = rank(category, high)
        if high_rank is not None:
            ceiling = high_rank + 0.9 if high_rank == int(high_rank) else high_rank
            if value > ceiling:
                return False
    return True


# --- Performance status ---------------------------------------------------------------------


def ecog_from_karnofsky(karnofsky: int) -> int:
    """KPS 90-100 -> ECOG 0, 70-80 -> 1, 50-60 -> 2, 30-40 -> 3, 10-20 -> 4, 0 -> 5."""
    if karnofsky >= 90:
        return 0
    if karnofsky >= 70:
        return 1
    if karnofsky >= 50:
        return 2
    if karnofsky >= 30:
        return 3
    if karnofsky >= 10:
        return 4
    return 5
