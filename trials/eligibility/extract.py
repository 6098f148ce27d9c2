"""From one criterion's text to its category and structured constraints.

The extractors are small readers, one per kind of constraint, over the normalised text (see
``text.normalize``): each finds its concept through the lexicon (``data/lexicon.json``) or
the drug vocabulary, then reads the numbers, ranges, windows, negation and exceptions around
it. An extractor that is not sure says nothing: an unread criterion stays "needs review",
it is never guessed.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import re
from dataclasses import dataclass, field

from trials.eligibility import constraints as c
from trials.eligibility.coverage import coverage
from trials.eligibility.drugs import find_drugs
from trials.eligibility.facts import IMMUNOSUPPRESSIVE_PREDNISONE_MG
from trials.eligibility.facts import number as number_shown
from trials.eligibility.lexicon import (
    GENERIC_AUTOIMMUNE,
    concept_patterns,
    group_matcher,
    lexicon,
    list_pattern,
)
from trials.eligibility.text import WORD_NUMBERS, mentions, parse_number
from trials.eligibility.units import Analyte, UnitError, to_canonical
from trials.eligibility.vocabulary import STAGE_RANKS, display_code, rank

CATEGORIES = (
    "age",
    "sex",
    "diagnosis",
    "histology",
    "stage",
    "metastasis",
    "resectability",
    "performance_status",
    "lab",
    "prior_therapy",
    "biomarker",
    "comorbidity",
    "medication",
    "pregnancy",
    "surgery",
    "consent",
    "other",
)


@dataclass
class Extraction:
    category: str = "other"
    constraints: list[c.Constraint] = field(default_factory=list)
    join: str = "all"  # "any" when the constraints are alternatives
    found_at: list[int] = field(default_factory=list)  # where each constraint was read
    gaps: tuple[str, ...] = ()  # meaning-bearing words the constraints do not account for
    parts: tuple[int, ...] = ()  # constraints read in full beside the gaps (``Coverage.parts``)
    marks: tuple[str, ...] = ()  # review marks: readings resting on a plausibility correction
    spans: tuple[tuple[int, int], ...] = ()  # text the readers consumed (labs), for coverage
    # A quality the text does not define ("adequate organ function"), read as the floors
    # no definition of it could go below: it decides only where they are crossed.
    undefined: str = ""


@dataclass(frozen=True)
class Context:
    kind: str  # inclusion / exclusion
    parent: str = ""  # normalised text of the item this one belongs to
    section: str = ""


# --- Cheap triggers: an extractor runs only when one of its words is in the text -----------------


_mentions = mentions  # the readers' gate (``text.mentions``)


_AGE_WORDS = ("age", "year", "old", "adult", "yr")
_SEX_WORDS = ("male", "women", "woman", "men ")
_PERFORMANCE_WORDS = ("ecog", "performance", "zubrod", "karnofsky", "kps", "ps", "who ")
_BIOMARKER_WORDS = (
    "her2",
    "her-2",
    "her 2",
    "erbb2",
    "epidermal growth factor receptor 2",
    "msi",
    "mss",
    "mmr",
    "cps",
    "combined positive",
    "claudin",
    "cldn",
    "ebv",
    "epstein",
    "microsat",
    "mismatch",
)
_PREGNANCY_WORDS = ("pregnan", "breast", "lactat", "nursing")
_STAGE_WORDS = (
    "stage",
    "t0",
    "t1",
    "t2",
    "t3",
    "t4",
    "tx",
    "tis",
    "tany",
    "t any",
    "n0",
    "n1",
    "n2",
    "n3",
    "n+",
    "m0",
    "m1",
    "node",
    "t ",
)
_METASTASIS_WORDS = (
    "metasta",
    "dissemin",
    "carcinomatosis",
    "cy1",
    "cy+",
    "peritone",
    "stage iv",
    "m1",
    "spread",
    "cns",
    "brain",
    "leptomening",
    "seeding",
    "implant",
)
_RESECT_WORDS = ("resect", "operab", "amenable")
_SURGERY_WORDS = ("surg", "gastrectomy", "esophagectomy", "operation", "resection")
_HISTOLOGY_WORDS = (
    "adeno",
    "squamous",
    "stromal",
    "gist",
    "neuroendocrine",
    "carcinoid",
    "small cell",
    "small-cell",
    "lymphoma",
    "malt",
    "signet",
    "mucinous",
    "sarcoma",
)
_MEDICATION_WORDS = (
    "steroid",
    "vaccin",
    "immunosupp",
    "immune suppress",
    "prednis",
    "dexameth",
    "hydrocort",
    "glucocortic",
)
_SITE_WORDS = (
    "colo",
    "rect",
    "crc",
    "anal",
    "pancrea",
    "pdac",
    "hepatocell",
    "hcc",
    "liver cancer",
    "biliary",
    "cholang",
    "bile duct",
    "gallbladder",
    "btc",
    "lung",
    "nsclc",
    "sclc",
    "breast",
    "tnbc",
    "head and neck",
    "hnscc",
    "scchn",
    "pharyn",
    "laryn",
    "oral ",
    "prostat",
    "renal cell",
    "rcc",
    "kidney cancer",
    "bladder",
    "urothel",
    "cervi",
    "ovari",
    "gastr",
    "stomach",
    "esophag",
    "oesophag",
    "junction",
    "gej",
    "egj",
    "ogj",
    "cardia",
    "siewert",
    "gc",
    "gejc",
)
_COMORBIDITY_WORDS = (
    "myocard",
    "infarct",
    "heart",
    "cardiac",
    "angina",
    "coronary",
    "stroke",
    "cerebrovasc",
    "ischemic attack",
    "ischaemic attack",
    "arrhythm",
    "fibrillation",
    "thrombo",
    "embol",
    "nyha",
    "mi ",
    "autoimmun",
    "auto-immun",
    "immune-mediated",
    "arthritis",
    "lupus",
    "bowel",
    "crohn",
    "colitis",
    "sclerosis",
    "vasculitis",
    "sjogren",
    "hepatitis",
    "myasthenia",
    "guillain",
    "psoriasis",
    "hashimoto",
    "graves",
    "interstitial",
    "pneumonitis",
    "fibrosis",
    "ild",
    "hbv",
    "hbsag",
    "hcv",
    "hiv",
    "immunodef",
    "infection",
    "immune deficiency",
    "aids",
    "transplant",
    "allograft",
    "hsct",
    "allogeneic",
    "malignan",
    "cancer",
    "tumor",
    "tumour",
    "organizing",
)
_OR = re.compile(r"\bor\b", re.IGNORECASE)


# --- Negation and windows ---------------------------------------------------------------------

_NEGATION_BEFORE = re.compile(
    r"(?<![\w-])(?:no|not|without|never|none|free\s+of|absence\s+of|absent|negative\s+for|"
    r"lack\s+of|neither|nor|exclude[sd]?|excluding|cannot\s+have|must\s+not|"
    r"should\s+not|may\s+not|does\s+not|do\s+not|did\s+not|has\s+not|have\s+not|had\s+not|"
    r"exclusion\s+of|rule\s+out|ruled\s+out|non)(?![\w])",
    re.IGNORECASE,
)
_NEGATION_AFTER = re.compile(
    r"^[^.;]{0,40}?\b(?:not\s+(?:allowed|permitted|eligible|acceptable)|(?:are|is)\s+excluded|"
    r"is\s+not|are\s+not|excluded|prohibited|ruled\s+out|:\s*none\b|:\s*no\b)",
    re.IGNORECASE,
)
_CLAUSE_BREAK = re.compile(
    r"[.;:]|\b(?:but|except|however|unless|other\s+than|who|which|whose)\b", re.IGNORECASE
)
_UNITS_DAYS = {"day": 1, "week": 7, "month": 30, "year": 365}
WINDOW = re.compile(
    r"(?:within|in|during|over|<=?|for)\s+(?:the\s+)?(?:(?:past|last|previous|prior|recent|"
    r"preceding)\s+)?(?P<n>\d+(?:\.\d+)?|one|two|three|four|five|six|twelve)\s*"
    r"(?P<unit>day|week|month|year)s?|"
    r"(?P<n2>\d+(?:\.\d+)?)\s*(?P<unit2>day|week|month|year)s?\s+(?:before|prior\s+to|"
    r"preceding|of)",
    re.IGNORECASE,
)
_WORD_NUMBER = WORD_NUMBERS


_NOT_LIMITED = re.compile(r"not\s+(?:be\s+)?(?:limited|restricted|confined)\s+to\b", re.I)


def negated(text: str, start: int, end: int) -> bool:
    """Is the mention at ``start:end`` negated within its clause?"""
    clause_start = 0
    for match in _CLAUSE_BREAK.finditer(text, 0, start):
        clause_start = match.end()
    before = text[clause_start:start]
    triggers = list(_NEGATION_BEFORE.finditer(before))
    # "non-infectious pneumonitis", "non-small cell": "non" only negates when it stands alone.
    triggers = [
        m
        for m in triggers
        if not (m.group(0).lower() == "non" and before[m.end() : m.end() + 1] == "-")
        # "including, but not limited to, ...": a list's opening, not a negation.
        and not _NOT_LIMITED.match(before, m.start())
    ]
    if triggers:
        return True
    return bool(_NEGATION_AFTER.match(text[end:]))


def window_days(text: str) -> int | None:
    """The first time window stated ("within 28 days", "in the past 2 years") in days."""
    match = WINDOW.search(text)
    if not match:
        return None
    number = match.group("n") or match.group("n2")
    unit = (match.group("unit") or match.group("unit2")).lower()
    amount = _WORD_NUMBER.get(number.lower()) if not number[0].isdigit() else float(number)
    return round((amount or 0) * _UNITS_DAYS[unit])


# --- Age and sex ------------------------------------------------------------------------------

_AGE_CUE = re.compile(r"\b(?:age[ds]?|years?\s+old|years?\s+of\s+age|yrs?\s+old|old)\b", re.I)
_AGE_RANGE = re.compile(
    r"(?P<a>\d{1,3})\s*(?:-|to|and)\s*(?P<b>\d{1,3})\s*(?:years?|yrs?|y\b|(?=\s*\)))", re.I
)
_AGE_BETWEEN = re.compile(
    r"\b(?:aged?|ages?)\s*(?:range[sd]?\s*)?(?:of|:|between|from|is)?\s*(?:between\s+|from\s+)?"
    r"(?P<a>\d{1,3})\s*(?:-|to|and)\s*(?P<b>\d{1,3})\b|"
    r"(?P<a2>\d{1,3})\s*(?:<=|<)\s*age[sd]?\s*(?:<=|<)\s*(?P<b2>\d{1,3})",
    re.I,
)
_AGE_MIN = re.compile(
    r"(?:\b(?:aged?|age)\s*(?:of|:|is|must\s+be)?\s*(?P<op>>=|>)\s*(?P<a>\d{1,3})|"
    r"(?P<op2>>=|>)\s*(?P<a2>\d{1,3})\s*(?:years?|yrs?)|"
    r"(?P<a3>\d{1,3})\s*(?:years?|yrs?)(?:\s+(?:of\s+age|old))?\s*(?:or|and)\s*"
    r"(?:older|above|over|more|greater)|\b(?:aged?|age)\s*(?P<a4>\d{1,3})\s*(?:years?\s*)?"
    r"(?:or|and)\s*(?:older|above|over))",
    re.I,
)
_AGE_MAX = re.compile(
    r"(?:\b(?:aged?|age)\s*(?:of|:|is|must\s+be)?\s*(?P<op><=|<)\s*(?P<a>\d{1,3})|"
    r"(?P<op2><=|<)\s*(?P<a2>\d{1,3})\s*(?:years?|yrs?)|"
    r"(?P<a3>\d{1,3})\s*(?:years?|yrs?)(?:\s+(?:of\s+age|old))?\s*(?:or|and)\s*"
    r"(?:younger|less|under|below))",
    re.I,
)


def extract_age(text: str) -> list[tuple[int, c.Constraint]]:
    if not _mentions(text, _AGE_WORDS):
        return []
    between = _AGE_BETWEEN.search(text)
    if between:
        bottom = int(between.group("a") or between.group("a2"))
        top = int(between.group("b") or between.group("b2"))
        if 0 < bottom < top <= 120:
            return [(between.start(), c.Age(min=bottom, max=top))]
    plain = _AGE_RANGE.search(text)
    # "18-75 years" is an age range even without the word "age"; "2-4 years" is not.
    if plain and (_AGE_CUE.search(text) or int(plain.group("a")) >= 12):
        first, last = int(plain.group("a")), int(plain.group("b"))
        if 12 <= first < last <= 120 and last - first >= 10:
            return [(plain.start(), c.Age(min=first, max=last))]
    if not _AGE_CUE.search(text):
        return []
    low_match, high_match = _AGE_MIN.search(text), _AGE_MAX.search(text)
    low = _first_int(low_match, "a", "a2", "a3", "a4") if low_match else None
    high = _first_int(high_match, "a", "a2", "a3") if high_match else None
    # Ages are whole years: "< 18" is at most 17 (while "> 18", by registry custom, is 18+).
    if (
        high is not None
        and high_match
        and "<" in (high_match.group("op") or high_match.group("op2") or "")
        and "=" not in (high_match.group("op") or high_match.group("op2") or "")
    ):
        high -= 1
    if low is None and high is None:
        return []
    position = min(m.start() for m in (low_match, high_match) if m is not None)
    return [(position, c.Age(min=low, max=high))]


def _first_int(match: re.Match[str], *names: str) -> int | None:
    for name in names:
        value = match.group(name)
        if value is not None:
            number = int(value)
            return number if 0 < number <= 120 else None
    return None


_SEX_ONLY = re.compile(
    r"\b(?:(?P<female>female|women|woman|postmenopausal\s+women)|(?P<male>male|men))\b"
    r"(?:\s+(?:patients?|subjects?|participants?|only|aged))?",
    re.I,
)
_BOTH_SEXES = re.compile(
    r"\b(?:male\s*(?:and|or|/|&)\s*female|female\s*(?:and|or|/|&)\s*male|"
    r"both\s+(?:genders|sexes)|either\s+sex|men\s+(?:and|or)\s+women|"
    r"women\s+(?:and|or)\s+men|all\s+genders)\b",
    re.I,
)


def extract_sex(text: str, kind: str) -> list[tuple[int, c.Constraint]]:
    if kind != "inclusion" or not _mentions(text, _SEX_WORDS):
        return []
    if _BOTH_SEXES.search(text) or kind != "inclusion":
        return []
    if list_pattern_category("pregnancy").search(text):
        return []
    match = _SEX_ONLY.search(text)
    if not match or match.start() > 30:
        return []
    return [(match.start(), c.Sex(sex="female" if match.group("female") else "male"))]


# --- Performance status -----------------------------------------------------------------------

_ECOG_CUE = re.compile(
    r"\b(?:ecog|eastern\s+cooperative\s+oncology\s+group|zubrod|who\s+performance|"
    r"who\s+ps|who/ecog|performance\s+status|performance\s+score|\bps\b)",
    re.I,
)
_KARNOFSKY = re.compile(
    r"\b(?:karnofsky|kps)\b[^.;\d]{0,40}?(?P<op>>=|>)?\s*(?P<a>\d{2,3})\s*%?"
    r"(?:\s*(?:-|to)\s*(?P<b>\d{2,3}))?",
    re.I,
)
_SCORE_LIST = re.compile(r"(?P<first>[0-4])(?:\s*(?:,|or|and|/|-|to)\s*(?:or\s+|and\s+)?[0-5])+")
_SCORE_BOUND = re.compile(r"(?P<op><=|<)\s*(?P<a>[0-5])\b")
# "(up to and including ECOG 2)"
_SCORE_UP_TO = re.compile(
    r"\bup\s+to\s+(?:and\s+including\s+)?(?:(?:an?\s+)?(?:ecog|who|zubrod)\s*(?:ps\s*)?"
    r"(?:of\s+)?)?(?P<a>[0-4])\b",
    re.I,
)


def extract_performance(text: str) -> list[tuple[int, c.Constraint]]:
    if not _mentions(text, _PERFORMANCE_WORDS):
        return []
    found: list[tuple[int, c.Constraint]] = []
    cue = _ECOG_CUE.search(text)
    if cue:
        tail = text[cue.end() : cue.end() + 60]
        bound = _SCORE_BOUND.search(tail)
        listed = _SCORE_LIST.search(tail)
        allowed: tuple[int, ...] = ()
        up_to = _SCORE_UP_TO.search(tail)
        if up_to and not bound:
            allowed = tuple(range(0, int(up_to.group("a")) + 1))
        elif bound and (not listed or bound.start() <= listed.start()):
            top = int(bound.group("a")) - (1 if bound.group("op") == "<" else 0)
            allowed = tuple(range(0, top + 1))
        elif listed:
            allowed = _scores(listed.group(0))
        else:
            single = re.match(r"[^.;\d]{0,25}?\b(?:of|:|=|is|score)?\s*(?P<a>[0-2])\b", tail)
            if single and not re.search(r"karnofsky|kps", tail[: single.start()], re.I):
                allowed = (int(single.group("a")),)
        if allowed:
            found.append((cue.start(), c.Ecog(allowed=allowed)))
    karnofsky = _KARNOFSKY.search(text)
    if karnofsky:
        low = int(karnofsky.group("a"))
        if karnofsky.group("op") == ">":
            low += 10
        if 0 <= low <= 100:
            found.append((karnofsky.start(), c.Karnofsky(min=low)))
    return found


def _scores(listing: str) -> tuple[int, ...]:
    numbers = [int(n) for n in re.findall(r"[0-5]", listing)]
    if re.search(r"\d\s*(?:-|to)\s*\d", listing) and len(numbers) == 2:
        return tuple(range(numbers[0], numbers[1] + 1))
    return tuple(sorted(set(numbers)))


# --- Stage ------------------------------------------------------------------------------------

_T = r"T\s?(?:is|[0-4x]|any)[ab]?"
_TNM = re.compile(
    rf"(?<![A-Za-z])(?P<prefix>[cpy]{{0,2}})(?P<t>{_T}(?:\s*(?:-|to|or|/)\s*T?(?:is|[0-4])[ab]?)?)"
    r"\s*(?P<n>N\s?(?:\+|any|x|[0-3][ab]?)(?:\s*(?:-|to|or|/)\s*N?[0-3][ab]?)?)?"
    r"\s*(?P<m>M[01x])?(?![A-Za-z0-9])",
    re.I,
)
_N_ALONE = re.compile(
    r"(?<![A-Za-z])[cpy]{0,2}N(?P<n>\+|[0-3][ab]?)(?:\s*(?:-|to|or)\s*N?(?P<hi>[0-3][ab]?))?"
    r"(?![A-Za-z0-9])|\bnode[\s-]positive\b|\blymph\s+node[\s-]positive\b",
    re.I,
)
_M_ALONE = re.compile(r"(?<![A-Za-z])[cpy]{0,2}M(?P<m>[01])(?![A-Za-z0-9])")
_OR_HIGHER = re.compile(r"^\s*(?:or|and)\s+(?:higher|above|greater|more|later|beyond)", re.I)
_ROMAN = r"(?:IV[AB]?|I{1,3}[ABC]?|0)"
_STAGE = re.compile(
    rf"\bstage\s*(?:group\s*)?(?:(?P<op>>=|>)\s*)?(?P<a>{_ROMAN})(?![A-Za-z])"
    rf"(?:\s*(?:-|to|or|/|through|and)\s*(?:stage\s*)?(?P<b>{_ROMAN})(?![A-Za-z]))?",
    re.I,
)


def _t_bounds(spec: str) -> tuple[str | None, str | None]:
    if "any" in spec.lower():
        return None, None
    spec = re.sub(r"(?i)([TN])\s+(?=[0-4x])", r"\1", spec)
    parts = re.split(r"\s*(?:-|to|or|/)\s*", spec.strip())
    codes = []
    for part in parts:
        part = part if part.upper().startswith("T") else "T" + part
        codes.append(display_code(part.upper()))
    if codes[0] == "TX":
        return None, None
    return codes[0], codes[-1]


TOP = {"T": "T4", "N": "N3", "stage": "IV"}
BOTTOM = {"T": "T1", "N": "N0", "stage": "I"}


def stage_range(category: str, low: str | None, high: str | None) -> c.Stage:
    """A range with its no-op ends dropped: "T3-4" is "T3 or higher", "N0-1" is "N1 or lower"."""
    if high == TOP.get(category):
        high = None
    if low == BOTTOM.get(category) and high is not None:
        low = None
    if low is not None and low == high:
        return c.Stage(category=category, any_of=(low,))
    return c.Stage(category=category, min=low, max=high)


def extract_stage(text: str) -> list[tuple[int, c.Constraint]]:
    """T / N / M and stage-group constraints, combined through the sentence's structure.

    Each TNM mention is read (``_stage_mentions``); the mentions are then grouped the way the
    text coordinates them: "and" and ";" join conditions, "or" / "and/or" (and a comma between
    two complete TNM groups) join alternatives, and several values of one category inside a
    group are a list ("cT2, cT3, cT4" is any of them). "(cT2-4, any N, M0) or (any T, N+, M0)"
    is one any-of of two all-of groups, never five conditions at once.
    """
    if not _mentions(text, _STAGE_WORDS):
        return _locally_advanced(text)
    if re.search(r"\b(?:thyro\w*|triiodothyronine|hormone)\b", text, re.I):
        return []
    text = _stage_slips(text)
    mentions = _stage_mentions(text)
    if not mentions:
        return _locally_advanced(text)
    if len(mentions) < 2:
        return mentions
    combined = _coordinate(text, mentions, 0, len(text))
    if combined is None:
        return []
    position = mentions[0][0]
    if isinstance(combined, c.AllOf):
        return [(position, item) for item in combined.items]
    return [(position, combined)]


# "Locally advanced": beyond an early cancer (T2 or deeper, or nodes involved) and not
# metastatic; "locally advanced or metastatic": anything but an early cancer.
LOCALLY_ADVANCED = re.compile(
    r"(?:\bmetastatic\s+(?:and/or|or)\s+)?\blocally[\s-]+advanced\b"
    r"(?:(?:\s+[\w-]+){0,3}?\s*(?:,\s*)?(?:and/or|or)\s+metastatic\b)?",
    re.I,
)
_OTHER_ALTERNATIVE = re.compile(
    r"[^,;.()]{0,40}?\b(?:or|and/or)\s+(?:[\w-]+\s+)?(?:recurrent|relapsed|unresectable|"
    r"resectable|inoperable|operable|advanced|localized|localised|early|persistent|progressive)",
    re.I,
)
_NOT_EARLY = (c.Stage(category="T", min="T2"), c.Stage(category="N", min="N1"))


_RESECTABILITY_NEAR = re.compile(
    r"\b(?:un|non-?)resectable|\binoperable|\bnot\s+(?:amenable|suitable)", re.I
)
# "advanced gastric cancer", "advanced solid tumours": beyond an early cancer.
_ADVANCED = re.compile(
    r"(?<!locally\s)(?<!locally-)(?<!end-stage\s)\badvanced\s+(?:[\w/-]+\s+){0,2}?"
    r"(?:cancers?|carcinomas?|adenocarcinomas?|tumou?rs?|malignanc(?:y|ies)|gc|gejc|nsclc|hcc|"
    r"crc|escc|pdac)\b",
    re.I,
)


@functools.lru_cache(maxsize=2048)
def _extent(text: str) -> re.Match[str] | None:
    """The one extent phrase read as a stage ("locally advanced [or metastatic]",
    "advanced ... cancer"), or None."""
    matches = list(LOCALLY_ADVANCED.finditer(text)) or list(_ADVANCED.finditer(text))
    if len(matches) != 1:
        return None
    match = matches[0]
    around = text[max(0, match.start() - 30) : match.end() + 30]
    if _RESECTABILITY_NEAR.search(around):
        return None  # "unresectable, locally advanced or metastatic": read as resectability
    return match


def extent_spans(text: str) -> list[tuple[int, int]]:
    """Where the extent phrase read as a stage stands."""
    match = _extent(text)
    return [(match.start(), match.end())] if match else []


def either_extent_spans(text: str) -> list[tuple[int, int]]:
    """Where "locally advanced or metastatic" is read as one extent: its "metastatic" is
    not a requirement of metastases."""
    match = _extent(text)
    if match and "metastatic" in match.group(0).lower():
        return [(match.start(), match.end())]
    return []


def undefined_extent(text: str) -> str:
    """ "Advanced" alone: beyond early at least, but many protocols mean incurable by it; the
    reading is then a floor that decides only where it is not reached."""
    match = _extent(text)
    if match is None or match.group(0).lower().startswith(("locally", "metastatic")):
        return ""
    return "advanced"


def _locally_advanced(text: str) -> list[tuple[int, c.Constraint]]:
    match = _extent(text)
    if match is None:
        return []
    phrase = match.group(0).lower()
    # "advanced ... cancer" and "locally advanced or metastatic": anything but early.
    either = "metastatic" in phrase or not phrase.startswith("locally")
    if not either and (
        _OTHER_ALTERNATIVE.match(text[match.end() :])
        or re.search(r"\b(?:or|and/or)\s+$", text[: match.start()], re.I)
    ):
        return []  # "locally advanced or recurrent": an alternative not read
    if either:
        not_early = c.AnyOf(items=(*_NOT_EARLY, c.Stage(category="M", any_of=("M1",))))
        return [(match.start(), not_early)]
    return [
        (match.start(), c.Stage(category="M", any_of=("M0",))),
        (match.start(), c.AnyOf(items=_NOT_EARLY)),
    ]


# Typing slips in stage codes: "TlNl" (a letter l for the digit 1), "IHA" (H for II).
_SLIP_L = re.compile(r"(?<![A-Za-z])([cpy]{0,2}[TN])l(?![a-z])")
_SLIP_H = re.compile(r"(?<=\bstage\s)I?H(?=[ABC]?\b)|(?<=,\s)I?H(?=[ABC]\b)", re.I)


def _stage_slips(text: str) -> str:
    if "l" in text:
        text = _SLIP_L.sub(r"\g<1>1", text)
    if "H" in text or "h" in text:
        text = _SLIP_H.sub("III", text)
    return text


def _coordinate(
    text: str, mentions: list[tuple[int, c.Constraint]], start: int, end: int
) -> c.Constraint | None:
    """The mentions inside text[start:end] combined as the text coordinates them."""
    inside = [(p, x) for p, x in mentions if start <= p < end]
    if not inside:
        return None
    for splitter, combine in ((_CONJUNCTION, c.AllOf), (_DISJUNCTION, c.AnyOf)):
        cuts = _top_level_cuts(text, start, end, splitter)
        if combine is c.AnyOf:
            cuts = sorted({*cuts, *_group_commas(text, start, end, inside)})
        else:
            cuts = sorted({*cuts, *_metastasis_commas(text, start, end, inside)})
        if not cuts:
            continue
        parts: list[c.Constraint] = []
        bounds = [start, *cuts, end]
        for left, right in itertools.pairwise(bounds):
            part = _coordinate(text, mentions, left, right)
            if part is not None:
                parts.append(part)
        if len(parts) > 1:
            return _flat(combine, parts)
        if parts:
            return parts[0]
        return None
    enclosing = _enclosing_parenthesis(text, start, end, [p for p, _ in inside])
    if enclosing:
        # "(cT3-4 or N+, M0)": the parenthesis holds the whole structure.
        return _coordinate(text, mentions, *enclosing)
    return _group(inside)


def _enclosing_parenthesis(
    text: str, start: int, end: int, positions: list[int]
) -> tuple[int, int] | None:
    """The inside of one parenthesis of text[start:end] holding every position, if any."""
    stack: list[int] = []
    for index in range(start, end):
        if text[index] == "(":
            stack.append(index)
        elif text[index] == ")" and stack:
            opened = stack.pop()
            inner = (opened + 1, index)
            if not stack and all(opened < p < index for p in positions) and inner != (start, end):
                return inner
    return None


def _metastasis_commas(
    text: str, start: int, end: int, inside: list[tuple[int, c.Constraint]]
) -> list[int]:
    """A comma that sets the M status apart from alternatives of the other categories
    ("cT3-4 or N+, M0"; "M0, T3 or N+"): the M status holds for all of them."""
    # ", or" is the alternative's own comma.
    cuts = _top_level_cuts(text, start, end, re.compile(r",(?!\s*(?:or|and\s*/\s*or)\b)"))
    if not cuts or not _DISJUNCTION.search(text, start, end):
        return []
    found = []
    bounds = [start, *cuts, end]
    for index, (left, right) in enumerate(itertools.pairwise(bounds)):
        here = [x for p, x in inside if left <= p < right]
        only_m = here and all(isinstance(x, c.Stage) and x.category == "M" for x in here)
        if only_m and not _DISJUNCTION.search(text, left, right):
            if index > 0:
                found.append(left)
            if index + 1 < len(bounds) - 1:
                found.append(right)
    return [cut for cut in found if start < cut < end]


_CONJUNCTION = re.compile(r";|\band\b(?!\s*/)(?!\s+(?:higher|above|greater|more|later))", re.I)
_DISJUNCTION = re.compile(
    r"\band\s*/\s*or\b|\bor\b(?!\s+(?:higher|above|greater|more|later|beyond|lower|less))",
    re.I,
)


def _top_level_cuts(text: str, start: int, end: int, splitter: re.Pattern[str]) -> list[int]:
    """Positions in text[start:end] where ``splitter`` matches outside parentheses."""
    cuts = []
    depth = 0
    index = start
    while index < end:
        char = text[index]
        if char == "(":
            depth += 1
        elif char == ")":
            depth = max(0, depth - 1)
        elif depth == 0:
            match = splitter.match(text, index)
            if match and match.end() <= end:
                cuts.append(index)
                index = match.end()
                continue
        index += 1
    return [cut for cut in cuts if start < cut < end]


def _group_commas(
    text: str, start: int, end: int, inside: list[tuple[int, c.Constraint]]
) -> list[int]:
    """Commas between two complete TNM groups ("cT1N1-2M0, cT2-4aN0-2M0"): alternatives.
    A comma inside one group ("cT2-4, any N, M0") is not."""
    t_positions = [p for p, x in inside if isinstance(x, c.Stage) and x.category == "T"]
    cuts = []
    for match in re.finditer(r",", text[start:end]):
        at = start + match.start()
        before = [p for p in t_positions if p < at]
        after = [p for p in t_positions if p > at]
        if not before or not after:
            continue
        left_group = [x for p, x in inside if before[-1] <= p < at]
        if {getattr(x, "category", "") for x in left_group} >= {"T", "N"}:
            cuts.append(at)
    return cuts


def _group(inside: list[tuple[int, c.Constraint]]) -> c.Constraint | None:
    """The constraints of one group: several values of a category are a list of them."""
    by_category: dict[str, list[c.Stage]] = {}
    others: list[c.Constraint] = []
    for _, constraint in inside:
        if isinstance(constraint, c.Stage):
            values = by_category.setdefault(constraint.category, [])
            if constraint not in values:
                values.append(constraint)
        elif constraint not in others:
            others.append(constraint)
    items: list[c.Constraint] = []
    for values in by_category.values():
        if len(values) == 1:
            items.append(values[0])
        elif all(v.any_of for v in values):
            merged = tuple(dict.fromkeys(code for v in values for code in v.any_of))
            items.append(c.Stage(category=values[0].category, any_of=merged))
        else:
            items.append(c.AnyOf(items=tuple(values)))
    items.extend(others)
    if not items:
        return None
    return items[0] if len(items) == 1 else c.AllOf(items=tuple(items))


def _flat(combine: type[c.AnyOf] | type[c.AllOf], parts: list[c.Constraint]) -> c.Constraint:
    items: list[c.Constraint] = []
    for part in parts:
        if isinstance(part, c.AnyOf | c.AllOf) and isinstance(part, combine):
            items.extend(part.items)
        elif part not in items:
            items.append(part)
    return items[0] if len(items) == 1 else combine(items=tuple(items))


_EITHER_SIGN = re.compile(r"\s*(?:/\s*-|\+/-|±)")
NODES_INVOLVED = re.compile(
    r"\b(?:(?:any\s+)?(?:nodal|lymph[\s-]+node)\s+(?:involvement|metastas[ie]s|disease|"
    r"positiv\w*)|(?:positive|involved)\s+(?:regional\s+)?(?:lymph\s+)?nodes?|"
    r"(?:lymph\s+)?node[\s-]positive)\b",
    re.I,
)


def _stage_mentions(text: str) -> list[tuple[int, c.Constraint]]:
    """Every T / N / M / stage-group mention, in order, each read on its own."""
    found: list[tuple[int, c.Constraint]] = []
    taken_n = taken_m = False
    for match in _TNM.finditer(text):
        t_low, t_high = _t_bounds(match.group("t"))
        at_least = re.search(r"(?P<op>>=|>)\s*$", text[max(0, match.start() - 4) : match.start()])
        if t_low and rank("T", t_low) is not None:
            open_ended = at_least or _OR_HIGHER.match(text[match.end() :])
            if at_least and at_least.group("op") == ">" and t_low == t_high:
                t_low = {"T1": "T2", "T2": "T3", "T3": "T4"}.get(t_low, t_low)
            high = None if open_ended else t_high
            found.append((match.start(), stage_range("T", t_low, high)))
        if match.group("n"):
            either = _EITHER_SIGN.match(text, match.end("n"))
            n_constraint = None if either else _n_constraint(match.group("n"))
            if n_constraint:
                found.append((match.start() + match.group(0).upper().find("N"), n_constraint))
            taken_n = True
        if match.group("m"):
            m_value = match.group("m").upper()
            if m_value != "MX":
                found.append(
                    (
                        match.start() + match.group(0).upper().rfind("M"),
                        c.Stage(category="M", any_of=(m_value,)),
                    )
                )
                taken_m = True
    n_seen = {p for p, x in found if isinstance(x, c.Stage) and x.category == "N"}
    for n_match in _N_ALONE.finditer(text):
        if taken_n and any(abs(n_match.start() - p) < 4 for p in n_seen):
            continue
        if any(m.start() <= n_match.start() < m.end() for m in _TNM.finditer(text)):
            continue
        if _EITHER_SIGN.match(text, n_match.end()):
            continue  # "N+/-": either
        constraint = _n_constraint(n_match.group(0))
        if constraint:
            found.append((n_match.start(), constraint))
    for nodes in NODES_INVOLVED.finditer(text):
        if not any(
            abs(nodes.start() - p) < 30 for p, x in found if getattr(x, "category", "") == "N"
        ):
            found.append((nodes.start(), c.Stage(category="N", min="N1")))
    if not taken_m:
        for m_match in _M_ALONE.finditer(text):
            found.append(
                (m_match.start(), c.Stage(category="M", any_of=(f"M{m_match.group('m')}",)))
            )
    bound = re.finditer(r"(?<![A-Za-z])[cpy]{0,2}T\s*(?P<op>>=|>)\s*(?P<a>[1-4])\b", text)
    for match in bound:
        lowest = int(match.group("a")) + (1 if match.group("op") == ">" else 0)
        found.append((match.start(), stage_range("T", f"T{min(lowest, 4)}", None)))
    found.extend(_stage_groups(text))
    found.sort(key=lambda item: item[0])
    return found


_STAGE_LIST_ITEM = re.compile(
    rf"\s*(?:,|or|and|/)\s*(?:stage\s*)?(?P<a>{_ROMAN})(?![A-Za-z])", re.I
)


def _stage_groups(text: str) -> list[tuple[int, c.Constraint]]:
    """ "stage II or higher", "stage IIIB-IV", "Stage IB, II, IIIA, IIIB" (a list)."""
    found: list[tuple[int, c.Constraint]] = []
    for match in _STAGE.finditer(text):
        low = match.group("a").upper()
        high = (match.group("b") or "").upper() or low
        if low not in STAGE_RANKS or high not in STAGE_RANKS:
            continue
        open_ended = match.group("op") or _OR_HIGHER.match(text[match.end() :])
        if match.group("op") == ">":
            low = {"I": "II", "II": "III", "III": "IV"}.get(low, low)
        joiner = text[match.start() : match.end()]
        listed = match.group("b") is not None and not re.search(r"-|to|through", joiner, re.I)
        if listed:
            # "stage I or IV", "II/III": the values named, not the range between them.
            found.append((match.start(), c.Stage(category="stage", any_of=(low, high))))
        else:
            found.append((match.start(), stage_range("stage", low, None if open_ended else high)))
        # More values after it: "IB (T1N1 only), II, IIIA, IIIB".
        cursor = match.end()
        while True:
            paren = re.match(r"\s*\([^()]*\)", text[cursor:])
            if paren:
                cursor += paren.end()
            item = _STAGE_LIST_ITEM.match(text, cursor)
            if not item or item.group("a").upper() not in STAGE_RANKS:
                break
            found.append(
                (item.start("a"), c.Stage(category="stage", any_of=(item.group("a").upper(),)))
            )
            cursor = item.end()
    return found


def _n_constraint(spec: str) -> c.Stage | None:
    lowered = spec.lower()
    if "+" in lowered or "positive" in lowered:
        return c.Stage(category="N", min="N1")
    if "any" in lowered or "x" in lowered:
        return None
    codes = [display_code("N" + code.upper()) for code in re.findall(r"[0-3][ab]?", lowered)]
    if not codes:
        return None
    return stage_range("N", codes[0], codes[-1])


# --- Metastasis and resectability --------------------------------------------------------------


def extract_metastasis(text: str) -> list[tuple[int, c.Constraint]]:
    if not _mentions(text, _METASTASIS_WORDS):
        return []
    non = re.search(r"\bnon-?metastatic\b", text, re.I)
    if non:
        return [(non.start(), c.Metastasis(site="distant", present=False))]
    found: list[tuple[int, c.Constraint]] = []
    seen: set[str] = set()
    extents = either_extent_spans(text)
    for start, end, site in group_matcher("metastasis_sites").finditer(text):
        if site in seen or _conditional(text, start):
            continue
        if any(a <= start < b for a, b in extents):
            continue  # "locally advanced or metastatic": one extent, read as a stage
        if site == "distant" and _REGIONAL_NODES.search(text, max(0, start - 25), start):
            continue  # "lymph node metastases >= 1" are regional, not distant
        word = text[start:end].lower()
        if word == "metastatic" and not _METASTATIC_NOUN.match(text, end):
            continue  # "metastatic" of something else ("metastatic sites") is not a requirement
        present = not negated(text, start, end)
        found.append((start, c.Metastasis(site=site, present=present)))
        seen.add(site)
    return found


_REGIONAL_NODES = re.compile(r"(?<!distant\s)(?:lymph\s+node|nodal|node)s?\s*$", re.I)
_METASTATIC_NOUN = re.compile(
    r"\s*(?:disease|gastric|cancer|tumou?r|setting|or\s+unresectable|adenocarcinoma|carcinoma|solid)",
    re.I,
)


def _conditional(text: str, position: int) -> bool:
    """ "... <= 5 x ULN if liver metastases": a condition of another constraint."""
    return bool(
        re.search(
            r"(?:\bif\b|\bfor\s+(?:patients|subjects|participants)\s+with\b|\bin\s+(?:the\s+)?"
            r"(?:case|presence)\s+of\b|\bin\s+patients\s+with\b|\bdue\s+to\b)[^.;]{0,20}$",
            text[max(0, position - 45) : position],
            re.I,
        )
    )


_RESECTABLE = re.compile(
    r"\b(?P<neg>un|non-?|not\s+|in)?(?P<word>resectable|operable|operability|amenable\s+to\s+"
    r"(?:curative\s+)?(?:resection|surgery)|(?:candidates?|eligible|eligibility|suitable)\s+for\s+(?:a\s+)?"
    r"(?:potentially\s+)?(?:curative|radical|r0|d2)?\s*resection|curatively\s+resected|"
    r"(?:curative|r0)\s+resection\s+(?:is\s+)?(?:possible|feasible))\b",
    re.I,
)


def extract_resectability(text: str) -> list[tuple[int, c.Constraint]]:
    if not _mentions(text, _RESECT_WORDS):
        return []
    match = _RESECTABLE.search(text)
    if not match:
        return []
    positive = not match.group("neg")
    if positive and negated(text, match.start(), match.end()):
        positive = False
    if not positive and (
        _OR_METASTATIC.match(text, match.end())
        or _METASTATIC_OR.search(text[max(0, match.start() - 40) : match.start()])
    ):
        # "unresectable or metastatic": either one, never both.
        return [(match.start(), c.AnyOf(items=(c.Resectable(value=False), METASTATIC)))]
    return [(match.start(), c.Resectable(value=positive))]


# Distant metastases as a stage: M1.
METASTATIC = c.Stage(category="M", any_of=("M1",))
_OR_METASTATIC = re.compile(r"\s*(?:,\s*)?(?:and/or|or)\s+metastatic\b", re.I)
_METASTATIC_OR = re.compile(
    r"\bmetastatic\s+(?:and/or|or)\s+(?:locally[\s-]+advanced\s+)?(?:\w+\s+)?$", re.I
)


# --- Diagnosis and histology ------------------------------------------------------------------

_CANCER_WORD = re.compile(
    r"\b(?:cancer|carcinoma|adenocarcinoma|adenocarcimona|tumou?rs?|neoplasms?|malignan\w*|"
    r"gc|gejc|nsclc|sclc|hcc|tnbc|crc|mcrc|pdac|rcc|hnscc|scchn|btc|escc|disease)\b",
    re.I,
)
_CONFIRMED = re.compile(
    r"\b(?:histolog\w*|cytolog\w*|patholog\w*|confirm\w*|confiemed|proven|documented|"
    r"diagnos\w*|biopsy)\b",
    re.I,
)


def extract_diagnosis(text: str, kind: str) -> list[tuple[int, c.Constraint]]:
    """The disease itself: primary site(s) and histology named together."""
    if not _mentions(text, _SITE_WORDS):
        return []
    sites = []
    first = len(text)
    for site, pattern in concept_patterns("sites").items():
        match = pattern.search(text)
        if match:
            sites.append(site)
            first = min(first, match.start())
    if not sites or not _CANCER_WORD.search(text):
        return []
    if not _CONFIRMED.search(text) and not _disease_phrase(text):
        return []  # "unfit for gastric cancer surgery" names the disease, it does not require it
    found: list[tuple[int, c.Constraint]] = [(first, c.PrimarySite(any_of=tuple(sites)))]
    histologies = _histologies(text)
    if histologies:
        found.append((first, c.Histology(any_of=tuple(histologies))))
    return found


# The patient's disease named as a noun phrase: "HER2-negative breast carcinoma", "stage I
# or IV cancer of the rectum", "neuroendocrine tumours of the pancreas"; not a disease that
# qualifies something else ("gastric cancer surgery") or another cancer ("history of ...").
_DISEASE_NOUN = r"(?:cancers?|carcinomas?|adenocarcinomas?|tumou?rs?|neoplasms?|malignanc(?:y|ies))"
_DISEASE_AFTER = re.compile(
    rf"(?:[\s-]+(?:ductal|squamous|cell|adeno|neuroendocrine|invasive|primary|"
    rf"or\s+[\w/-]+|and/or\s+[\w/-]+))*\s*{_DISEASE_NOUN}\b(?!\s+(?:surgery|resection|"
    rf"operation|treatment|therapy|care|survivors?|screening|risk|patients?\s+undergoing|"
    rf"cases?|controls?|cohorts?|registry|database|specimens?|samples?|tissues?))",
    re.I,
)
_DISEASE_OF = re.compile(rf"\b{_DISEASE_NOUN}\s+(?:of|in)\s+the\s+$", re.I)
# A disease named as the subject of a reference ("the AJCC classification for esophageal
# cancer"): it says how something is defined, not what the patient has.
_REFERENCE = re.compile(
    r"\b(?:classification|staging|criteria|guidelines?|system|edition|manual|according|"
    r"definition|defined)\b[^.;]{0,40}$",
    re.I,
)
_ANOTHER_CANCER = re.compile(
    r"\b(?:history|other|prior|previous|second|secondary|family|concurrent|synchronous|"
    r"metachronous|additional|another)\b[^.;,]{0,30}$",
    re.I,
)


# Words that make the disease after them the object of something else in its clause.
_GOVERNED = re.compile(
    r"\b(?:for|of|except|excluding|than|after|from|to|by|on|including|such\s+as|"
    r"treatment|therapy|resection|surgery|history)\b",
    re.I,
)


def _disease_phrase(text: str) -> bool:
    """A site named as the disease itself, with no word of the kind that would make it the
    subject of something else. A line in capitals is a label ("- OVARIAN CANCER"), a
    population heading rather than a requirement."""
    if text.isupper():
        return False
    for pattern in concept_patterns("sites").values():
        for match in pattern.finditer(text):
            before = text[max(0, match.start() - 40) : match.start()]
            if _ANOTHER_CANCER.search(before) or _REFERENCE.search(before):
                continue
            if _DISEASE_OF.search(before):
                return True
            if _GOVERNED.search(re.split(r"[,;:()]", before)[-1]):
                continue  # "chemotherapy for gastric cancer", "except cervical carcinoma"
            if _CANCER_WORD.search(match.group(0)) or _DISEASE_AFTER.match(text, match.end()):
                after = text[match.end() : match.end() + 30]
                if re.match(r"\s*(?:surgery|resection|operation)\b", after, re.I):
                    continue
                return True
    return False


def _histologies(text: str) -> list[str]:
    if not _mentions(text, _HISTOLOGY_WORDS):
        return []
    names: list[str] = []
    for _, _, name in group_matcher("histology").finditer(text):
        if name not in names:
            names.append(name)
    return [name if name != "sarcoma" else "other" for name in names]


def extract_histology(text: str) -> list[tuple[int, c.Constraint]]:
    names = _histologies(text)
    if not names:
        return []
    first = group_matcher("histology").search(text)
    return [(first[0] if first else 0, c.Histology(any_of=tuple(names)))]


# --- Labs ----------------------------------------------------------------------------------------

_THRESHOLD = re.compile(
    r"(?P<op>>=|<=|>|<|=)\s*(?P<num>\d+(?:[.,]\d+)*)\s*"
    r"(?:(?P<uln>(?:x|times?|fold|\*)?\s*(?:the\s+)?(?:institutional\s+)?(?:uln|unl|ult|upper[\s-]+"
    r"limits?\s+of\s+(?:the\s+)?normal(?:\s+range)?|upper[\s-]+normal\s+limits?)\b)"
    r"|(?P<unit>(?:x\s*)?(?:10\s*\^?\s*[369]|l?0\s*[369]|10e[369]|10\*[369])\s*/\s*[lLuµμ]\w*|"
    r"[a-zA-Zµμ/%][\w/.^*µμ%\[\]{}-]*(?:\s*/\s*[\w.^]+)?))?",
    re.IGNORECASE,
)
_ULN_ALONE = re.compile(
    r"(?P<op>>=|<=|>|<)\s*(?:the\s+)?(?:institutional\s+)?(?:uln|upper\s+limit)", re.I
)
_WITHIN_NORMAL = re.compile(
    r"\b(?:within|in)\s+(?:the\s+)?(?:normal|institutional\s+normal)\s+"
    r"(?:limits?|range)|\bwnl\b|\bnormal\b",
    re.I,
)
_CONDITION_WORDS = re.compile(
    r"\b(?:liver|hepatic)\s+(?:metasta\w*|involvement|tumou?rs?|lesions?)|\bgilbert\w*(?:'s)?",
    re.I,
)


_A1C_AFTER = re.compile(r"\s*a1c|\s*\(?hba1c", re.I)
_GLYCATED_BEFORE = re.compile(r"(?:glycosylated|glycated)\s*$", re.I)


def _analyte_mentions(text: str) -> list[tuple[int, int, Analyte]]:
    """Analyte names in order; "alanine aminotransferase (ALT)" counts once."""
    mentions: list[tuple[int, int, Analyte]] = []
    for start, end, concept in group_matcher("analytes").finditer(text):
        analyte = Analyte(concept)
        if _A1C_AFTER.match(text, end) or _GLYCATED_BEFORE.search(text, max(0, start - 14), start):
            continue  # HbA1c is not haemoglobin
        if (
            mentions
            and mentions[-1][2] == analyte
            and not text[mentions[-1][1] : start].strip(" (")
        ):
            mentions[-1] = (mentions[-1][0], end + 1, analyte)
            continue
        mentions.append((start, end, analyte))
    return mentions


@dataclass
class LabReading:
    found: list[tuple[int, c.Constraint]] = field(default_factory=list)
    join: str = "all"
    spans: list[tuple[int, int]] = field(default_factory=list)  # the words it consumed
    marks: list[str] = field(default_factory=list)  # plausibility corrections made


# Between two thresholds, the words that may stand before a second limit of the same
# analytes ("<= 2.5 x ULN, or <= 5 x ULN in patients with liver metastases").
_SAME_ANALYTE_GAP = frozenset(
    [
        "or",
        "and",
        "if",
        "in",
        "for",
        "with",
        "patients",
        "patient",
        "subjects",
        "participants",
        "who",
        "have",
        "has",
        "had",
        "liver",
        "hepatic",
        "metastases",
        "metastasis",
        "metastatic",
        "involvement",
        "gilbert",
        "gilbert's",
        "syndrome",
        "disease",
        "known",
        "case",
        "of",
        "the",
        "presence",
        "documented",
        "tumor",
        "tumour",
        "tumors",
        "tumours",
        "due",
        "to",
        "presence",
        "when",
        "those",
    ]
)


def read_labs(text: str, kind: str = "inclusion") -> LabReading:
    """Lab thresholds, the words they were read from, and any plausibility corrections.

    Each threshold applies to the analytes named since the previous threshold ("AST and ALT
    <= 2.5 x ULN"). A threshold with no new analyte is a second limit of the previous ones
    (usually conditional: "(<= 5 x ULN if liver metastases)") only when nothing but
    condition words stands between them; after any other word ("; 5) INR <= 1.5") it is the
    limit of something not recognised and is left unread, never put on the wrong analyte.
    """
    reading = LabReading()
    mentions = _analyte_mentions(text)
    if not mentions:
        return reading
    group: list[tuple[int, Analyte]] = []
    thresholds = list(_THRESHOLD.finditer(text))
    conditions = _conditions(text, thresholds, mentions)
    cursor = 0
    named_spans: list[tuple[int, int, Analyte]] = []
    blocks: list[list[tuple[int, c.Constraint]]] = []
    either: list[bool] = []  # a block is an alternative to the one before ("... or CrCl > 60")
    for index, threshold in enumerate(thresholds):
        named = [
            (start, analyte)
            for start, end, analyte in mentions
            if cursor <= start < threshold.start()
        ]
        between = text[cursor : threshold.start()]
        if named:
            group = named
            named_spans = [
                (start, end, analyte)
                for start, end, analyte in mentions
                if cursor <= start < threshold.start()
            ]
            before_name = text[cursor : named[0][0]]
            either.append(bool(blocks) and bool(_OR.search(before_name)))
            blocks.append([])
        elif not group:
            cursor = threshold.end()
            continue
        elif cursor and not _same_analyte_gap(between):
            group = []
            cursor = threshold.end()
            continue
        members = []
        for position, analyte in group:
            constraint = _lab_constraint(analyte, threshold, conditions[index], reading.marks)
            if constraint is not None:
                members.append((position, constraint))
                reading.spans.append((threshold.start(), threshold.end()))
                # The analyte's name is read only when a limit was read for it.
                reading.spans.extend(
                    (start, end)
                    for start, end, named_analyte in named_spans
                    if named_analyte == analyte or named_analyte.value == constraint.analyte
                )
        if (
            kind == "exclusion"
            and len(members) > 1
            and named
            and _OR.search(text[named[0][0] : threshold.start()])
        ):
            # "ALT or AST > 3 x ULN" as an exclusion: either one excludes.
            options = tuple(dict.fromkeys(x for _, x in members))
            if len(options) > 1:
                members = [(members[0][0], c.AnyOf(items=options))]  # type: ignore[list-item]
        blocks[-1].extend(members)
        cursor = threshold.end()
    reading.found = _alternatives(blocks, either)
    return reading


def _alternatives(
    blocks: list[list[tuple[int, c.Constraint]]], either: list[bool]
) -> list[tuple[int, c.Constraint]]:
    """The blocks of a lab line, those joined by "or" made one any-of ("creatinine <= 1.5 x
    ULN or creatinine clearance >= 60 mL/min")."""
    found: list[tuple[int, c.Constraint]] = []
    runs: list[list[list[tuple[int, c.Constraint]]]] = []
    for block, alternative in zip(blocks, either, strict=True):
        if not block:
            continue
        if alternative and runs:
            runs[-1].append(block)
        else:
            runs.append([block])
    for run in runs:
        if len(run) == 1:
            found.extend(run[0])
            continue
        options: list[c.Constraint] = []
        for block in run:
            items = tuple(dict.fromkeys(x for _, x in block))
            option = items[0] if len(items) == 1 else c.AllOf(items=items)
            if option not in options:
                options.append(option)
        if len(options) == 1:
            found.append((run[0][0][0], options[0]))
        else:
            found.append((run[0][0][0], c.AnyOf(items=tuple(options))))
    return found


def _same_analyte_gap(between: str) -> bool:
    words = re.findall(r"[a-z][a-z'-]*", between.lower())
    return all(word in _SAME_ANALYTE_GAP for word in words) and not re.search(r"\d\s*[.)]", between)


def _conditions(
    text: str, thresholds: list[re.Match[str]], mentions: list[tuple[int, int, Analyte]]
) -> list[str | None]:
    """The condition each threshold holds under ("if liver metastases", "Gilbert's"). A
    condition written between two thresholds belongs to the second when it runs straight
    into it ("Gilbert syndrome <= 3 x ULN"), else to the first ("<= 5 x ULN for patients
    with liver metastases"), and always to the first when another analyte's limit follows
    ("bilirubin <= 1.5 x ULN (unless Gilbert syndrome), ANC >= 1.5")."""
    conditions: list[str | None] = [None] * len(thresholds)
    for index, threshold in enumerate(thresholds):
        stop = thresholds[index + 1].start() if index + 1 < len(thresholds) else len(text)
        gap = text[threshold.end() : stop]
        match = _CONDITION_WORDS.search(gap)
        if not match:
            continue
        what = "gilbert" if "gilbert" in match.group(0).lower() else "liver_metastases"
        since = thresholds[index - 1].end() if index else 0
        own = {a for start, _, a in mentions if since <= start < threshold.start()}
        after = {a for start, _, a in mentions if threshold.end() + match.end() <= start < stop}
        has_next = index + 1 < len(thresholds) and not (after - own)
        runs_into_next = (
            has_next
            and (
                re.fullmatch(
                    r"[\s:,]*(?:syndrome|disease|metastas[ie]s|involvement)?[\s:,]*",
                    gap[match.end() :],
                    re.I,
                )
                or re.search(r"\b(?:except|unless|exception)", gap[: match.start()], re.I)
                # A new sentence names the condition, then the limit: "... Subjects with liver
                # metastases may have AST < 5 x ULN."
                or re.search(r"[.;]\s", gap[: match.start()])
            )
        )
        exempting = re.search(
            r"\b(?:except\w*|excluding|unless|other\s+than)\b", gap[: match.start()], re.I
        )
        if exempting and not has_next:
            # "<= 1.5 x ULN, except Gilbert's syndrome": the limit holds for everyone else.
            conditions[index] = f"not_{what}"
            continue
        conditions[index + 1 if runs_into_next else index] = what
    return conditions


def _lab_constraint(
    analyte: Analyte, threshold: re.Match[str], condition: str | None, marks: list[str]
) -> c.Lab | None:
    op = threshold.group("op")
    if op == "=":
        return None
    counts = analyte in (Analyte.ANC, Analyte.PLATELETS, Analyte.WBC, Analyte.LYMPHOCYTES)
    number = parse_number(threshold.group("num"), thousands_dot=counts)
    if number is None:
        return None
    if threshold.group("uln"):
        return c.Lab(analyte=analyte.value, op=op, uln=number, condition=condition)
    unit = (threshold.group("unit") or "").replace(" ", "").lstrip("x*").rstrip(".,;:")
    if unit.lower() in _NOT_UNITS:
        unit = ""  # "INR <= 1.5 and ...": the next word, not a unit
    # "1.5 x l09/L", "100 x 109/L": a lost superscript or a letter l for the digit 1.
    unit = re.sub(r"^[lI]0", "10", unit)
    unit = re.sub(r"^10-?([369])/", r"10^\1/", unit)
    value = _canonical(analyte, number, unit, marks)
    if value is None and analyte == Analyte.CREATININE:
        # "creatinine >= 50 mL/min clearance": a clearance, named loosely.
        analyte = Analyte.CREATININE_CLEARANCE
        value = _canonical(analyte, number, unit, marks) if unit else None
    if value is None:
        return None
    floor = _UPPER_LIMIT_FLOOR.get(analyte)
    if floor is not None and op in ("<", "<=") and value < floor and number <= 10:
        # "ALT <= 2.5 U/L", "bilirubin <= 1.5 umol/L": no such limit is meant; the writer
        # meant a multiple of the upper limit of normal.
        marks.append(
            f"{analyte.label} {op} {number:g} {unit or '(no unit)'} is below any normal value:"
            f" read as {number:g} x ULN"
        )
        return c.Lab(analyte=analyte.value, op=op, uln=number, condition=condition)
    return c.Lab(analyte=analyte.value, op=op, value=value, condition=condition)


_NOT_UNITS = frozenset({"and", "or", "in", "for", "of", "at", "with", "if", "within", "on", "by"})
# An upper limit below these (canonical unit) is below any healthy value: a slip for x ULN.
_UPPER_LIMIT_FLOOR = {
    Analyte.AST: 10.0,
    Analyte.ALT: 10.0,
    Analyte.BILIRUBIN: 0.3,
    Analyte.CREATININE: 0.3,
}


def _canonical(analyte: Analyte, number: float, unit: str, marks: list[str]) -> float | None:
    if not unit:
        return _implicit_unit(analyte, number)
    try:
        value = to_canonical(analyte, number, unit).value
    except UnitError:
        return None  # "7 days", "%": not this analyte's unit, so not its threshold
    meant = _plausible(analyte, value)
    if meant != value:
        marks.append(
            f"{analyte.label} {number:g} {unit} is implausible: read as"
            f" {number_shown(meant)} {_CANONICAL_UNIT.get(analyte, '')}".rstrip()
        )
    return round(meant, 4)


_CANONICAL_UNIT = {
    Analyte.HAEMOGLOBIN: "g/dL",
    Analyte.ANC: "x 10^9/L",
    Analyte.WBC: "x 10^9/L",
    Analyte.LYMPHOCYTES: "x 10^9/L",
    Analyte.PLATELETS: "x 10^9/L",
}


def _plausible(analyte: Analyte, value: float) -> float:
    """Thresholds written with a lost or wrong power of ten, read as meant: no haemoglobin
    threshold is under 2.5 g/dL ("9 g/l" is 9 g/dL) and no neutrophil or white cell threshold
    is over 100 x 10^9/L ("1500 x 10^9/L" is 1500/uL)."""
    if analyte == Analyte.HAEMOGLOBIN and value < 2.5:
        return value * 10
    if analyte in (Analyte.ANC, Analyte.WBC, Analyte.LYMPHOCYTES) and value > 100:
        return value / 1000
    if analyte == Analyte.PLATELETS and value > 2000:
        return value / 1000
    return value


def _implicit_unit(analyte: Analyte, number: float) -> float | None:
    """A bare number only when its unit is unmistakable from its size."""
    if analyte in (Analyte.ANC, Analyte.WBC, Analyte.LYMPHOCYTES):
        return number / 1000 if number >= 100 else (number if number < 50 else None)
    if analyte == Analyte.PLATELETS:
        return number / 1000 if number >= 10_000 else (number if 10 <= number <= 1000 else None)
    if analyte in (Analyte.CREATININE_CLEARANCE, Analyte.EGFR):
        return number if 10 <= number <= 200 else None
    if analyte == Analyte.HAEMOGLOBIN:
        return number / 10 if 50 <= number <= 200 else (number if 5 <= number <= 20 else None)
    if analyte == Analyte.INR:
        return number if 0.5 <= number <= 5 else None  # a ratio has no unit
    return None


# --- Prior therapy ------------------------------------------------------------------------------

_PRIOR_CUE = re.compile(
    r"\b(?:prior|previous(?:ly)?|received|receiving|treated\s+with|treatment\s+with|therapy\s+with|"
    r"history\s+of|naive|naïve|untreated|exposure|exposed|pretreated|undergone|underwent|"
    r"administration\s+of|use\s+of)\b",
    re.I,
)
_THIS_CANCER = re.compile(
    r"\b(?:for|of|against)\s+(?:this|the\s+current|current|gastric|stomach|the\s+present|the)\s+"
    r"(?:cancer|malignancy|disease|tumou?r|adenocarcinoma|gastric\s+cancer)|"
    r"\bgastric\s+cancer\b|\bthis\s+(?:cancer|malignancy|disease)",
    re.I,
)
_DRUG_CLASSES = {
    "anti-PD-1": "anti-PD-1",
    "anti-PD-L1": "anti-PD-L1",
    "anti-CTLA-4": "anti-CTLA-4",
    "anti-PD-1/CTLA-4": "anti-PD-1",
    "anti-PD-1/VEGF": "anti-PD-1",
}


def extract_prior_therapy(text: str, kind: str) -> list[tuple[int, c.Constraint]]:
    cue = _PRIOR_CUE.search(text)
    if not cue:
        return []
    classes: list[str] = []
    first = len(text)
    matcher = group_matcher("prior_therapy")
    for start, end, _ in matcher.finditer(text):
        first = min(first, start)
        for name in matcher.concepts(text[start:end]):
            if name not in classes:
                classes.append(name)
    for drug in find_drugs(text):
        drug_class: str | None = _DRUG_CLASSES.get(drug.drug_class) or (
            "immunotherapy"
            if drug.category == "immunotherapy"
            else drug.category
            if drug.category in ("chemotherapy", "targeted")
            else None
        )
        if drug_class and drug_class not in classes:
            classes.append(drug_class)
            position = text.lower().find(drug.name)
            first = min(first, position) if position >= 0 else first
    lowered_text = text.lower()
    untreated = re.search(
        r"\b(?:untreated|treatment[-\s]naive|therapy[-\s]naive|naive)\b", lowered_text
    )
    if not classes and untreated and "metasta" not in lowered_text:
        classes = ["anticancer"]
        first = cue.start()
    if not classes:
        return []
    if "investigational" in classes and len(classes) > 1:
        classes.remove("investigational")
    lowered = text.lower()
    naive = re.search(r"\b(?:naive|naïve|untreated|previously\s+untreated)\b", lowered)
    present = not (
        negated(text, cue.start(), cue.end()) or negated(text, first, first + 1) or naive
    )
    within = window_days(text)
    return [
        (
            min(first, cue.start()),
            c.PriorTherapy(
                classes=tuple(classes),
                present=present,
                within_days=within,
                this_cancer=True if _THIS_CANCER.search(text) else None,
            ),
        )
    ]


# --- Biomarkers -----------------------------------------------------------------------------------

_HER2 = re.compile(r"\bher[-\s]?2(?:/neu)?\b(?P<tail>[^.;]{0,60})", re.I)
_MSI = re.compile(
    r"\b(?P<value>msi[-\s]?h(?:igh)?|microsatellite\s+instability[-\s]?(?:high|h)|"
    r"high\s+microsatellite\s+instability|mss|microsatellite[-\s]stable|msi[-\s]?l)\b",
    re.I,
)
_MMR = re.compile(
    r"\b(?P<value>dmmr|pmmr|mismatch\s+repair[-\s](?:deficien\w*|proficien\w*)|"
    r"deficient\s+mismatch\s+repair|proficient\s+mismatch\s+repair)\b",
    re.I,
)
_CPS = re.compile(
    r"\b(?:cps|combined\s+positive\s+score)\b[^.;\d]{0,20}?(?P<op>>=|>|<|<=)\s*"
    r"(?P<value>\d+(?:\.\d+)?)",
    re.I,
)
_CLAUDIN = re.compile(r"\b(?:claudin[-\s]?18(?:\.2)?|cldn18(?:\.2)?)\b(?P<tail>[^.;]{0,40})", re.I)
_EBV = re.compile(r"\b(?:ebv|epstein[-\s]barr)\b(?P<tail>[^.;]{0,30})", re.I)


def extract_biomarkers(text: str) -> list[tuple[int, c.Constraint]]:
    if not _mentions(text, _BIOMARKER_WORDS):
        return []
    found: list[tuple[int, c.Constraint]] = []
    before = re.search(
        r"\b(?P<value>positiv\w*|negativ\w*)\s+(?:for\s+)?(?:human\s+epidermal\s+growth\s+factor\s+"
        r"receptor\s+2|her[-\s]?2)",
        text,
        re.I,
    )
    her2 = None if before else _HER2.search(text)
    if before:
        value = "positive" if before.group("value").lower().startswith("positiv") else "negative"
        found.append((before.start(), c.Biomarker(marker="her2_status", any_of=(value,))))
    if her2:
        tail = her2.group("tail").lower()[:25]
        if (
            re.match(r"\s*[-\s]?(?:negative|neg\b|-\s|non[-\s]?amplified)", tail)
            or "negative" in tail[:15]
        ):
            found.append((her2.start(), c.Biomarker(marker="her2_status", any_of=("negative",))))
        elif (
            re.match(
                r"\s*[-\s]?(?:positive|pos\b|\+|overexpress|amplifi|\(?ihc\)?\s*3\+|3\+)", tail
            )
            or "positive" in tail[:15]
        ):
            found.append((her2.start(), c.Biomarker(marker="her2_status", any_of=("positive",))))
    msi = _MSI.search(text) or re.search(
        r"\b(?:known|with)\s+(?P<value>microsatellite\s+instability)\b(?![-\s]*(?:low|l\b))",
        text,
        re.I,
    )
    if msi:
        value = msi.group("value").lower()
        name = (
            "MSS"
            if ("mss" in value or "stable" in value)
            else "MSI-L"
            if value.endswith("l")
            else "MSI-H"
        )
        found.append((msi.start(), c.Biomarker(marker="msi", any_of=(name,))))
    mmr = _MMR.search(text)
    if mmr:
        value = mmr.group("value").lower()
        name = "dMMR" if ("dmmr" in value or "deficien" in value) else "pMMR"
        found.append((mmr.start(), c.Biomarker(marker="mmr", any_of=(name,))))
    found = _one_finding(found)
    cps = _CPS.search(text)
    if cps:
        found.append(
            (
                cps.start(),
                c.Biomarker(marker="pdl1_cps", op=cps.group("op"), value=float(cps.group("value"))),
            )
        )
    for pattern, marker in ((_CLAUDIN, "cldn18"), (_EBV, "ebv")):
        match = pattern.search(text)
        if match:
            tail = match.group("tail").lower()
            if "negative" in tail:
                found.append((match.start(), c.Biomarker(marker=marker, any_of=("negative",))))
            elif "positive" in tail or "+" in tail[:5]:
                found.append((match.start(), c.Biomarker(marker=marker, any_of=("positive",))))
    return found


_SAME_FINDING = {"MSI-H": "dMMR", "MSS": "pMMR", "MSI-L": "pMMR"}


def _one_finding(found: list[tuple[int, c.Constraint]]) -> list[tuple[int, c.Constraint]]:
    """MSI-H and dMMR (MSS and pMMR) are one finding tested two ways: named together
    ("MSI-H or dMMR", "dMMR and/or MSI", "pMMR and/or MSS") they are one any-of, so a
    tumour tested either way qualifies."""
    msi = [(p, x) for p, x in found if isinstance(x, c.Biomarker) and x.marker == "msi"]
    mmr = [(p, x) for p, x in found if isinstance(x, c.Biomarker) and x.marker == "mmr"]
    if len(msi) != 1 or len(mmr) != 1:
        return found
    msi_value, mmr_value = msi[0][1].any_of[0], mmr[0][1].any_of[0]
    if _SAME_FINDING.get(msi_value) != mmr_value:
        return found
    rest = [(p, x) for p, x in found if (p, x) not in (msi[0], mmr[0])]
    first = min(msi[0][0], mmr[0][0])
    return [*rest, (first, c.AnyOf(items=(msi[0][1], mmr[0][1])))]


# --- Comorbidities, medications, pregnancy, surgery ----------------------------------------------

_EXCEPTION = re.compile(
    r"\b(?:except(?:ion)?s?(?:\s+(?:for|of))?|excluding|other\s+than|with\s+the\s+exception\s+of|"
    r"but\s+not(?!\s+limited)|unless|apart\s+from|not\s+including|allowed|permitted|eligible)\b",
    re.I,
)
_N = r"\d+(?:\.\d+)?|one|two|three|four|five|six|seven|eight|nine|ten|twelve"
_YEARS = re.compile(
    rf"\b(?:within|in|during|over)\s+(?:the\s+)?(?:(?:past|last|previous|prior|preceding|recent)\s+)?"
    rf"(?P<n>{_N})\s*(?P<u>years?|yrs?|months?|weeks?)\b|"
    rf"\b(?P<n2>{_N})\s*(?P<u2>years?|months?)\s+(?:before|prior)|"
    rf"<\s*(?P<n3>{_N})\s*(?P<u3>years?|months?)\b|"
    # "disease-free for >= 5 years", "in complete remission ... for a minimum of 3 years",
    # "at least 5 years have elapsed since": an earlier cancer counts only inside that time.
    rf"\b(?:disease[-\s]free|remission|cured|elapsed|no\s+evidence\s+of\s+disease)[^.;()]{{0,80}}?"
    rf"(?:>=|>|at\s+least|for|of|a\s+minimum\s+of)\s*(?P<n4>{_N})\s*(?P<u4>years?|months?)\b|"
    rf"(?:>=|>)\s*(?P<n5>{_N})\s*(?P<u5>years?)\s+(?:have\s+|has\s+)?(?:elapsed|passed)",
    re.I,
)


def _window_years(text: str) -> float | None:
    match = _YEARS.search(text)
    if not match:
        return None
    for suffix in ("", "2", "3", "4", "5"):
        number = match.group(f"n{suffix}" if suffix else "n")
        if number:
            unit = (match.group(f"u{suffix}" if suffix else "u") or "year").lower()
            break
    else:  # pragma: no cover - one group always matches
        return None
    amount = float(number) if number[0].isdigit() else float(_WORD_NUMBER.get(number.lower(), 0))
    if unit.startswith("month"):
        return round(amount / 12, 4)
    if unit.startswith("week"):
        return round(amount / 52, 4)
    return amount


OTHER_MALIGNANCY_EXCEPTIONS = (
    "basal cell",
    "squamous cell skin",
    "skin",
    "carcinoma in situ",
    "in situ",
    "cervical",
    "superficial bladder",
    "prostate",
    "thyroid",
    "cured",
    "curatively treated",
    "non-melanoma",
    "ductal carcinoma in situ",
    # Qualities a record does not tell apart: a cancer of the past may be one of them.
    "resected",
    "localized",
    "localised",
    "low-risk",
    "low risk",
)


def extract_comorbidities(text: str) -> tuple[list[tuple[int, c.Constraint]], str]:
    if not _mentions(text, _COMORBIDITY_WORDS):
        return [], "all"
    found: list[tuple[int, c.Constraint]] = []
    exception = _EXCEPTION.search(text)
    cut = exception.start() if exception else len(text)
    within = _window_years(text)
    seen: set[str] = set()
    matcher = group_matcher("comorbidities")
    for start, end, _ in matcher.finditer(text[:cut]):
        word = text[start:end]
        kinds = list(matcher.concepts(word))
        if _BOTH_HEPATITIS.search(word):
            kinds = ["hbv", "hcv"]
        for kind in kinds:
            if kind in seen or (
                kind == "other_malignancy" and not _malignancy_context(text, start)
            ):
                continue
            seen.add(kind)
            exceptions = _exceptions(text[cut:], kind) if exception else ()
            systemic = True if _SYSTEMIC_TREATMENT.search(text, start) else None
            active = True if _ACTIVE.search(text, max(0, start - 30), end) else None
            if (
                kind == "other_malignancy"
                and _CURRENT.search(text, max(0, start - 30), end)
                and not _PAST.search(text, max(0, start - 40), end)
            ):
                active = True  # "concurrent malignancy": one that is there now
            found.append(
                (
                    start,
                    c.Comorbidity(
                        kind=kind,
                        present=not negated(text, start, end),
                        within_years=within,
                        exceptions=exceptions,
                        active=active,
                        systemic_treatment=systemic if kind == "autoimmune" else None,
                        replacement_allowed=(
                            True
                            if kind == "autoimmune" and systemic and _REPLACEMENT.search(text)
                            else None
                        ),
                    ),
                )
            )
    found = [
        (at, dataclasses.replace(x, named=_named_diseases(text[:cut])))
        if isinstance(x, c.Comorbidity) and x.kind == "autoimmune"
        else (at, x)
        for at, x in found
    ]
    found_kinds = {k.kind for _, k in found if isinstance(k, c.Comorbidity)}
    return found, "any" if len(found_kinds) > 1 else "all"


def _named_diseases(text: str) -> tuple[str, ...]:
    """The specific autoimmune diseases a criterion names, when it names no autoimmune
    disease in general ("History of inflammatory bowel disorders"); () otherwise."""
    named: list[str] = []
    for start, end, _ in group_matcher("comorbidities", ("autoimmune",)).finditer(text):
        if GENERIC_AUTOIMMUNE.match(text, start):
            return ()
        word = text[start:end].lower()
        diseases = group_matcher("autoimmune_diseases")
        for a, b, _ in diseases.finditer(word):
            found = list(diseases.concepts(word[a:b]))
            # The narrowest: "Crohn's disease" is Crohn disease, not any bowel disease.
            best = next((x for x in found if x.split()[0] in word), found[0] if found else "")
            if best and best not in named:
                named.append(best)
    return tuple(named)


_SYSTEMIC_TREATMENT = re.compile(
    r"\b(?:requir\w*|required|needing|need\s+for|needed|treated\s+with|receiving)\s+"
    r"(?:\w+\s+){0,2}?systemic\s+(?:treatment|therapy|therapies|immunosuppress\w*|steroids?)",
    re.I,
)
_BOTH_HEPATITIS = re.compile(r"\bb\s*(?:or|and|/)\s*c\b|hbv\s*(?:or|/)\s*hcv", re.I)
_ACTIVE = re.compile(r"\b(?:active|chronic)\b", re.I)
_CURRENT = re.compile(r"\b(?:concurrent|concomitant|current|currently|ongoing|coexisting)\b", re.I)
_PAST = re.compile(r"\b(?:prior|previous|previously|history|past|earlier|former)\b", re.I)
_OTHER_BEFORE = re.compile(
    r"\b(?:other|another|second|prior|previous|history|additional|concurrent|active)\b", re.I
)


def _malignancy_context(text: str, start: int) -> bool:
    """A bare "malignancy" is another cancer only when the text says so ("other ...")."""
    word = text[start : start + 16].lower()
    if word.startswith(("malignan", "malignant")):
        return bool(_OTHER_BEFORE.search(text, max(0, start - 40), start))
    return True


def _exceptions(tail: str, kind: str) -> tuple[str, ...]:
    lowered = tail.lower()
    if kind == "other_malignancy":
        # Every exception named ("in-situ" is "in situ"): one dropped would exclude its
        # patients although the coverage counts its words as read.
        spaced = re.sub(r"[-\s]+", " ", lowered)
        return tuple(
            word for word in OTHER_MALIGNANCY_EXCEPTIONS if word.replace("-", " ") in spaced
        )
    if kind == "autoimmune":
        return tuple(
            dict.fromkeys(
                m.group(0).lower() for m in list_pattern("autoimmune_exceptions").finditer(tail)
            )
        )
    return ()


_STEROID_DOSE = re.compile(
    r"(?P<op>>|>=)\s*(?P<mg>\d+(?:\.\d+)?)\s*mg(?:\s*/\s*(?:d|day)|\s+(?:per|a|each)\s+day|/d\b|\s*daily|)",
    re.I,
)


# Steroid replacement named as allowed ("replacement therapy ... is allowed", "physiologic
# doses of corticosteroids are permitted").
_REPLACEMENT = re.compile(
    r"\b(?:physiologic(?:al)?|replacement)\b(?:[^.;]|\.(?=\s*[a-z,)]))*?\b(?:allowed|permitted|acceptable|"
    r"not\s+considered|exempt\w*|may\s+be\s+(?:used|included|enrolled|approved))\b",
    re.I,
)


def extract_medications(text: str) -> list[tuple[int, c.Constraint]]:
    if not _mentions(text, _MEDICATION_WORDS):
        return []
    found: list[tuple[int, c.Constraint]] = []
    for category, pattern in concept_patterns("medications").items():
        match = pattern.search(text)
        if not match:
            continue
        if category == "systemic_steroid" and any(
            isinstance(k, c.Medication) and k.category == "live_vaccine" for _, k in found
        ):
            continue
        dose = _STEROID_DOSE.search(text) if category == "systemic_steroid" else None
        over = float(dose.group("mg")) if dose else None
        if category == "systemic_steroid" and over is None and _REPLACEMENT.search(text):
            # "physiologic corticosteroid replacement ... is allowed": only doses above
            # replacement, 10 mg/day prednisone-equivalent, count (docs/domain.md).
            over = IMMUNOSUPPRESSIVE_PREDNISONE_MG
        found.append(
            (
                match.start(),
                c.Medication(
                    category=category,
                    present=not negated(text, match.start(), match.end()),
                    over_mg_per_day=over,
                    within_days=window_days(text),
                ),
            )
        )
    return found


_PREGNANT = re.compile(r"\b(?:pregnan\w*|breast[-\s]?feed\w*|lactat\w*|nursing)\b", re.I)
_CONTRACEPTION = re.compile(
    r"\b(?:contracept\w*|childbearing|child-bearing|birth\s+control|"
    r"pregnancy\s+test|abstinen\w*|sterili[sz]\w*|barrier)\b",
    re.I,
)


def extract_pregnancy(text: str) -> list[tuple[int, c.Constraint]]:
    if not _mentions(text, _PREGNANCY_WORDS):
        return []
    test = re.search(
        r"\bnegative\s+(?:serum\s+|urine\s+)?(?:or\s+urine\s+)?(?:\w+\s+)?pregnancy\s+test",
        text,
        re.I,
    )
    if test:
        return [(test.start(), c.Pregnancy(present=False))]
    match = _PREGNANT.search(text)
    if not match or _CONTRACEPTION.search(text):
        return []
    return [(match.start(), c.Pregnancy(present=not negated(text, match.start(), match.end())))]


_SURGERY_PLANNED = re.compile(
    r"\b(?:undergo(?:ing)?|scheduled\s+(?:for|to\s+undergo)|planned?\s+(?:for|to\s+undergo)?|"
    r"plan\s+to\s+(?:receive|undergo)|candidates?\s+for|eligible\s+for|suitable\s+for|"
    r"fit\s+for|intend\w*\s+to\s+(?:receive|undergo)|will\s+(?:receive|undergo)|"
    r"considered\s+for|proceed\s+to|plans?|(?:can|could|will)\s+be\s+treated\s+with)\s+"
    r"(?:a\s+)?(?:potentially\s+)?(?:radical|curative|d2|"
    r"r0|laparoscopic|open|total|subtotal|distal|proximal|elective|surgical|or|\s)*"
    r"(?:surgery|gastrectomy|operation|esophagectomy|resection)",
    re.I,
)
_SURGERY_DONE = re.compile(
    r"\b(?:underwent|undergone|had|received|after|following|post|previous|prior)\s+(?:a\s+)?"
    r"(?:radical|curative|standard|d2|r0|/|total|subtotal|distal|proximal|laparoscopic|open|"
    r"partial|or|complete|gastric|tumou?r|esophagogastric|\s)*(?:gastrectomy|resection|surgery|"
    r"esophagectomy)",
    re.I,
)


# Named operations: "distal" and "subtotal" gastrectomy are one operation.
PROCEDURES = re.compile(
    r"\b(?P<kind>total|subtotal|distal|proximal)\s+gastrectom(?:y|ies)\b|"
    r"\b(?P<esophagus>o?esophagectom(?:y|ies)|esophagogastrectomy)\b",
    re.I,
)


def _procedures(text: str) -> tuple[str, ...]:
    """The operations a surgery criterion names, or () when it names surgery in general."""
    found: list[str] = []
    for match in PROCEDURES.finditer(text):
        kind = (match.group("kind") or "").lower()
        name = "esophagectomy" if match.group("esophagus") else f"{kind}_gastrectomy"
        name = "distal_gastrectomy" if name == "subtotal_gastrectomy" else name
        if name not in found:
            found.append(name)
    if found and re.search(r"\bgastrectomy\b", PROCEDURES.sub(" ", text), re.I):
        return ()  # also a gastrectomy of any kind
    return tuple(found)


def extract_surgery(text: str) -> list[tuple[int, c.Constraint]]:
    if not _mentions(text, _SURGERY_WORDS):
        return []
    done = _SURGERY_DONE.search(text)
    if done:
        return [
            (
                done.start(),
                c.Surgery(
                    status="done",
                    present=not negated(text, done.start(), done.end()),
                    procedures=_procedures(text),
                ),
            )
        ]
    planned = _SURGERY_PLANNED.search(text)
    if planned:
        return [
            (
                planned.start(),
                c.Surgery(
                    status="planned",
                    present=not negated(text, planned.start(), planned.end()),
                    procedures=_procedures(text),
                ),
            )
        ]
    return []


# --- The category of a criterion ------------------------------------------------------------------

_CATEGORY_ORDER = (
    "consent",
    "pregnancy",
    "performance_status",
    "age",
    "sex",
    "biomarker",
    "resectability",
    "surgery",
    "metastasis",
    "stage",
    "histology",
    "medication",
    "prior_therapy",
    "lab",
    "comorbidity",
    "diagnosis",
    "other",
)


def list_pattern_category(category: str) -> re.Pattern[str]:
    return _category_patterns()[category]


_category_cache: dict[str, re.Pattern[str]] = {}


def _category_patterns() -> dict[str, re.Pattern[str]]:
    if not _category_cache:
        from trials.eligibility.lexicon import words_pattern

        for name, words in lexicon()["categories"].items():
            _category_cache[name] = re.compile(words_pattern(words), re.I)
    return _category_cache


_PRIORITY = ("consent", "pregnancy", "performance_status")


def keyword_category(text: str) -> str:
    """The category named by words alone, for criteria with no constraint read: a few
    categories win wherever they appear, otherwise the earliest word decides."""
    priority = group_matcher("categories", _PRIORITY).search(text)
    if priority:
        return priority[2]
    rest = tuple(name for name in _CATEGORY_ORDER if name not in _PRIORITY)
    match = group_matcher("categories", rest).search(text)
    return match[2] if match else "other"


CONSTRAINT_CATEGORY = {
    "age": "age",
    "sex": "sex",
    "ecog": "performance_status",
    "karnofsky": "performance_status",
    "stage": "stage",
    "primary_site": "diagnosis",
    "histology": "histology",
    "metastasis": "metastasis",
    "resectable": "resectability",
    "lab": "lab",
    "prior_therapy": "prior_therapy",
    "biomarker": "biomarker",
    "comorbidity": "comorbidity",
    "medication": "medication",
    "pregnancy": "pregnancy",
    "surgery": "surgery",
}


def extract(text: str, context: Context) -> Extraction:
    """The category and constraints of one criterion (``text`` already normalised), with
    the words the reading leaves unexplained (``coverage``) and its review marks."""
    reading = _read(text, context)
    if not reading.constraints:
        return reading
    # An exclusion's undefined quality names its floors: they stand where it stands, and an
    # element of its list read by nothing is one more alternative.
    naming = reading.spans if reading.undefined and context.kind == "exclusion" else ()
    consumed = () if naming else reading.spans
    found = coverage(
        text, context.kind, reading.constraints, reading.join, consumed=consumed, naming=naming
    )
    if found.alternatives:
        # An exclusion's list: each element excludes on its own.
        reading = dataclasses.replace(reading, join="any")
        found = coverage(
            text, context.kind, reading.constraints, "any", consumed=consumed, naming=naming
        )
    undefined = reading.undefined or (
        undefined_extent(text)
        if any(isinstance(x, c.AnyOf) and x.items[:2] == _NOT_EARLY for x in reading.constraints)
        else ""
    )
    if undefined:
        found = dataclasses.replace(
            found,
            gaps=(*found.gaps, f"undefined: {undefined}"),
            parts=found.parts if naming else (),
        )
    marks = reading.marks
    if context.kind == "exclusion" and _NEGATED_EXCLUSION.match(text):
        # "No evidence of active malignancy ..." under the exclusions: a double negative
        # whose intended polarity only a reader of the protocol can tell.
        marks = (*marks, "an exclusion worded as a negation: which patients it excludes is unclear")
    return dataclasses.replace(reading, gaps=found.gaps, parts=found.parts, marks=marks)


_NEGATED_EXCLUSION = re.compile(r"^\W*(?:no|not|without|absence\s+of|free\s+of|negative)\b", re.I)


_RESTATEMENT = re.compile(
    r"\b(?:(?:are|is|will\s+be|shall\s+be|should\s+be|must\s+be)\s+)?(?:excluded|"
    r"not\s+(?:be\s+)?(?:eligible|allowed|permitted|included|enrolled|entered|acceptable)|"
    r"ineligible|prohibited)\b(?:\s+(?:from|on|in|into)\s+(?:the|this)\s+(?:study|trial))?",
    re.I,
)


def _without_restatement(text: str, kind: str) -> str:
    """An exclusion's "... are excluded" / "are not eligible" only restates its section: it
    is blanked (same length, so positions hold) so that no reader takes it for a negation."""
    if kind != "exclusion" or not _RESTATEMENT.search(text):
        return text
    return _RESTATEMENT.sub(lambda m: " " * len(m.group(0)), text)


@functools.lru_cache(maxsize=2048)
def extract_category(text: str, context: Context) -> str:
    """The category alone (a heading's, for items read as "other"): no account of words."""
    return _read(text, context).category


def _read(text: str, context: Context) -> Extraction:
    text = _without_restatement(text, context.kind)
    # Only a consent phrase near the start makes the criterion about consent.
    consent_words = _category_patterns()["consent"].search(text[:120])
    if consent_words and consent_words.start() < 40:
        return Extraction(category="consent")
    labs = read_labs(text, context.kind)
    if labs.found:
        result = _result(labs.found, labs.join)
        return dataclasses.replace(
            result, spans=tuple(labs.spans), marks=tuple(dict.fromkeys(labs.marks))
        )
    undefined = _undefined_function(text, context.kind) or _undefined_vascular(text, context.kind)
    if undefined:
        return undefined
    confined = _confined(text, context.kind)
    if confined:
        return confined
    comorbidities, comorbidity_join = extract_comorbidities(text)
    medications = extract_medications(text)
    prior = extract_prior_therapy(text, context.kind)
    surgery = extract_surgery(text)
    resectable = extract_resectability(text)
    found = extract_age(text) + extract_sex(text, context.kind) + extract_performance(text)
    found += extract_biomarkers(text) + extract_pregnancy(text)
    join = "all"
    if (
        comorbidities
        and medications
        and _DISEASE_OR_DRUG.match(text, comorbidities[-1][0], medications[0][0])
    ):
        # "Diagnosis of immunodeficiency or receipt of systemic steroid therapy": either one.
        found += comorbidities + medications
        join = "any"
    elif comorbidities and (not medications or comorbidities[0][0] < medications[0][0]):
        # "pneumonitis that required steroids": the disease is the subject, not the drug.
        found += comorbidities
        join = comorbidity_join
    elif medications:
        found += medications
        if len({m.category for _, m in medications if isinstance(m, c.Medication)}) > 1 and (
            _OR.search(text)
        ):
            join = "any"  # "corticosteroids or other immunosuppressive agents"
    elif prior:
        only_surgery = all(cls == "surgery" for cls in prior[0][1].classes)  # type: ignore[attr-defined]
        found += surgery if (only_surgery and surgery) else prior
    resectable_required = bool(resectable) and getattr(resectable[0][1], "value", False) is True
    if surgery and not prior and not resectable_required:
        found += surgery
    if not (comorbidities or medications):
        found += resectable
        diagnosis = extract_diagnosis(text, context.kind)
        found += diagnosis if diagnosis else extract_histology(text)
        found += extract_stage(text)
        metastases = extract_metastasis(text)
        found += metastases
        alternatives = len(metastases) > 1 or (metastases and resectable)
        # "No brain metastases or carcinomatous meningitis": neither, not either.
        negated_all = all(not getattr(x, "present", True) for _, x in metastases)
        if alternatives and _OR.search(text) and not negated_all:
            join = "any"
    if not found:
        return Extraction(category=keyword_category(text) if text else "other")
    return _result(found, join, confirmed=bool(_CONFIRMED.search(text)))


# A disease, then "or" a drug, with no word making the drug the disease's treatment between.
_DISEASE_OR_DRUG = re.compile(
    r"(?:(?!\b(?:requir\w*|treated|treatment|therapy|that|which|who|due|for|with|on|"
    r"needing|needs?)\b)[^;.])*?\bor\s+(?:(?:the\s+)?(?:receipt|use|intake|administration)"
    r"\s+of\s+|(?:receiv|tak|us)\w*\s+|current\s+)?",
    re.I,
)


# "Adequate organ function", "normal liver and kidney function", "poor bone marrow
# function", "adequate performance status": no limit given. Whatever the protocol means by
# it, a grade 3 or worse dysfunction (CTCAE) is not adequate: those floors are read, as an
# undefined reading that decides only where they are crossed.
_UNDEFINED_FUNCTION = re.compile(
    r"\b(?P<quality>adequate|normal|sufficient|acceptable|satisfactory|poor|inadequate|"
    r"insufficient)\s+(?P<organs>(?:(?:organ|organs|bone\s+marrow|marrow|haematologic\w*|"
    r"hematologic\w*|liver|hepatic|renal|kidney|heart|cardiac|lung|pulmonary|and|,)\s*)*)"
    r"(?P<what>functions?|reserve|labs|laboratory\s+values|performance\s+status)\b"
    r"(?:\s+of\s+(?:the\s+)?(?P<of>(?:(?:heart|lung|lungs|liver|kidney|kidneys|bone\s+marrow|"
    r"marrow|and|,)\s*)+))?"
    r"(?P<labs>\s+and\s+(?:labs|laboratory\s+values|(?:organ|bone\s+marrow)\s+functions?))?",
    re.I,
)
_FLOORS = {
    "marrow": (("anc", 1.0, None), ("platelets", 50.0, None), ("haemoglobin", 8.0, None)),
    "liver": (("bilirubin", None, 3.0), ("ast", None, 5.0), ("alt", None, 5.0)),
    "kidney": (("creatinine_clearance", 30.0, None),),
}
_ORGAN_WORDS = {
    "marrow": ("marrow", "haematolog", "hematolog"),
    "liver": ("liver", "hepatic"),
    "kidney": ("renal", "kidney"),
}


# A gate for ``_UNDEFINED_FUNCTION`` ("inadequate" and "insufficient" hold two of them).
_QUALITY_WORDS = ("adequate", "normal", "sufficient", "acceptable", "satisfactory", "poor")


def _undefined_function(text: str, kind: str) -> Extraction | None:
    if not _mentions(text, _QUALITY_WORDS):
        return None
    if text.rstrip().endswith(":") or re.search(
        r"\b(?:as\s+follows|defined|following)\b", text, re.I
    ):
        return None  # a heading: its items give the limits
    match = _UNDEFINED_FUNCTION.search(text)
    if not match:
        return None
    poor = match.group("quality").lower() in ("poor", "inadequate", "insufficient")
    if poor != (kind == "exclusion"):
        return None
    organs_text = (match.group("organs") + " " + (match.group("of") or "")).lower()
    what = match.group("what").lower()
    found: list[tuple[int, c.Constraint]] = []
    organs: list[str] = []
    if what == "performance status":
        allowed = (3, 4) if poor else (0, 1, 2)
        found.append((match.start(), c.Ecog(allowed=allowed)))
    else:
        organs = [
            organ for organ, words in _ORGAN_WORDS.items() if any(w in organs_text for w in words)
        ]
        if "organ" in organs_text or what in ("labs", "laboratory values"):
            organs = list(_FLOORS)
    if match.group("labs"):
        organs = list(_FLOORS)
    if what != "performance status" or match.group("labs"):
        for organ in organs:
            for analyte, value, uln in _FLOORS[organ]:
                low = analyte in ("anc", "platelets", "haemoglobin", "creatinine_clearance")
                op = (">=" if low else "<=") if not poor else ("<" if low else ">")
                found.append((match.start(), c.Lab(analyte=analyte, op=op, value=value, uln=uln)))
    if not found:
        return None
    result = _result(found, "any" if poor else "all")
    phrase = " ".join(match.group(0).lower().split())
    return dataclasses.replace(result, undefined=phrase, spans=(match.span(),))


# "Disease must be clinically limited to the esophagus": that organ's cancer, not spread
# to distant sites (whether regional nodes or neighbouring organs may be involved it leaves
# open: the reading requires only what it says for certain).
_CONFINED = re.compile(
    r"^\W*(?:the\s+)?(?:disease|cancer|tumou?r|carcinoma|malignancy)\s+(?:must\s+be\s+|is\s+|"
    r"should\s+be\s+)?(?:clinically\s+|radiologically\s+)?(?:limited|confined|restricted)\s+"
    r"to\s+the\s+(?P<organ>[a-z-]+)\W*$",
    re.I,
)


def _confined(text: str, kind: str) -> Extraction | None:
    if kind != "inclusion" or not _mentions(text, ("limited", "confined", "restricted")):
        return None
    match = _CONFINED.match(text)
    if not match:
        return None
    organ = match.group("organ")
    sites = [
        site for site, pattern in concept_patterns("sites").items() if pattern.fullmatch(organ)
    ]
    if len(sites) != 1:
        return None
    found: list[tuple[int, c.Constraint]] = [
        (match.start("organ"), c.PrimarySite(any_of=(sites[0],))),
        (match.start("organ"), c.Metastasis(site="distant", present=False)),
    ]
    return dataclasses.replace(_result(found, "all"), spans=(match.span(),))


# "Clinically significant cardiac disease", "serious cardiovascular and cerebrovascular
# diseases": no list given. Whatever the protocol means, a myocardial infarction, unstable
# angina or stroke in the last 6 months is such a disease (docs/domain.md): those floors are
# read, as an undefined reading that decides only where one is present.
_UNDEFINED_VASCULAR = re.compile(
    r"\b(?P<quality>(?:clinically\s+)?(?:significant|serious|severe|uncontrolled|unstable|"
    r"major|active))\s+(?P<organs>(?:(?:cardiovascular|cardiac|heart|cerebrovascular|"
    r"cardio-cerebrovascular|cardiocerebrovascular|and|or|/|,)\s*)+?)"
    r"(?:diseases?|disorders?|conditions?|illness(?:es)?|events?)\b",
    re.I,
)
_VASCULAR_FLOOR_YEARS = 0.5
_VASCULAR_FLOORS = {
    "cardiac": ("myocardial_infarction", "unstable_angina"),
    "cerebral": ("stroke",),
}


def _undefined_vascular(text: str, kind: str) -> Extraction | None:
    if kind != "exclusion" or not _mentions(text, ("cardi", "vascular", "heart")):
        return None
    if text.rstrip().endswith(":"):
        return None
    match = _UNDEFINED_VASCULAR.search(text)
    if not match or re.search(
        r"\b(?:defined|as\s+follows|following|such\s+as|including|e\.g)\b",
        text[match.end() :],
        re.I,
    ):
        return None  # the criterion lists what it means: those are read instead
    organs = match.group("organs").lower()
    found: list[tuple[int, c.Constraint]] = []
    wanted: list[str] = []
    if re.search(r"cardio|cardiac|heart", organs):
        wanted += _VASCULAR_FLOORS["cardiac"]
    if "cerebro" in organs or "cardiovascular" in organs:
        wanted += _VASCULAR_FLOORS["cerebral"]
    for name in wanted:
        found.append((match.start(), c.Comorbidity(kind=name, within_years=_VASCULAR_FLOOR_YEARS)))
    result = _result(found, "any")
    phrase = " ".join(match.group(0).lower().split())
    return dataclasses.replace(result, undefined=phrase, spans=(match.span(),))


def _result(
    found: list[tuple[int, c.Constraint]], join: str, *, confirmed: bool = False
) -> Extraction:
    found.sort(key=lambda item: item[0])
    unique: list[c.Constraint] = []
    for _, constraint in found:
        if constraint not in unique:
            unique.append(constraint)
    category = CONSTRAINT_CATEGORY[c.leaves(found[0][1])[0].type]
    types = {leaf.type for constraint in unique for leaf in c.leaves(constraint)}
    if (
        confirmed
        and "primary_site" in types
        and category
        in (
            "histology",
            "prior_therapy",
            "resectability",
            "metastasis",
            "sex",
            "age",
        )
    ):
        category = "diagnosis"  # "confirmed untreated gastric cancer": the disease is the subject
    return Extraction(
        category=category, constraints=unique, join=join, found_at=[p for p, _ in found]
    )
