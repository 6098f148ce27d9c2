"""What a reading accounts for, and what it leaves unexplained.

A criterion's reading (its constraints) decides a patient's eligibility only when it explains
the whole criterion: every meaning-bearing word is either a grammar word with no condition of
its own (``neutral``), or a word of a concept the reading holds (the analyte, the disease, the
drug class, the stage codes, the window ...), or a structure the reading represents (an "or"
between alternatives it joins with any-of, an exception list it keeps, the condition of a
conditional lab limit, the negation of a constraint it negates). Whatever is left is the
reading's **gap**: the words it did not understand. A reading with a gap is shown and
evaluated as "reading incomplete: <words>" and never makes anyone ineligible.

The vocabularies are data (``data/reading.json``; the concept words come from
``data/lexicon.json`` and ``data/drugs.json``), so the account grows with the readers.
"""

from __future__ import annotations

import bisect
import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from trials.eligibility import constraints as c
from trials.eligibility.drugs import drugs
from trials.eligibility.facts import IMMUNOSUPPRESSIVE_PREDNISONE_MG
from trials.eligibility.lexicon import GENERIC_AUTOIMMUNE, concept_patterns, group_matcher, lexicon
from trials.eligibility.structure import (
    Clause,
    Role,
    Structure,
    parse_structure,
    reading_data,
    sentence_spans,
    timing_spans,
)

# Words and numbers: "anti-PD-1", "HER2", "1.5", "10^9", "3+", "0-1"; a number glued to
# its unit ("9g", "10mg") is two tokens.
_TOKEN = re.compile(
    r"\d+(?:[.,]\d+)*(?=[A-Za-z])|\d+(?:[.,]\d+)*(?:-\d+(?:[.,]\d+)*)?\+?"
    r"|[A-Za-z0-9]+(?:['.^-][A-Za-z0-9]+)*\+?|[<>]=?|%"
)
_NUMBER = re.compile(r"^\d+(?:[.,]\d+)*(?:-\d+(?:[.,]\d+)*)?\+?$")
_TNM_TOKEN = re.compile(
    r"^(?:[cpy]{0,3}[tnm](?:is|x|any|[0-4l][a-d]?|\+)?(?:[-/](?:[cpy]{0,3}[tnm]?)?(?:is|[0-4l][a-d]?|\+))*\+?)+$",
    re.I,
)
_ROMAN = re.compile(
    r"^(?:0|i{1,3}[abc]?|iv[abc]?|v|i?h[abc]?)(?:-(?:i{1,3}[abc]?|iv[abc]?))?$", re.I
)
_CONDITION_NAMED = re.compile(r"\b(?:liver|hepatic|gilbert)", re.I)
_ACTIVE_WORDS = frozenset(
    {
        "active",
        "chronic",
        "concurrent",
        "concomitant",
        "current",
        "currently",
        "ongoing",
        "coexisting",
    }
)
_SYSTEMIC_WORDS = frozenset(
    {
        "requiring",
        "required",
        "require",
        "requires",
        "needing",
        "need",
        "needed",
        "systemic",
        "treatment",
        "therapy",
        "therapies",
        "immunosuppressive",
        "immunosuppression",
        "steroids",
        "disease-modifying",
        "modifying",
        "dmards",
        "dmard",
        "agents",
        "corticosteroids",
        "drugs",
        "use",
        "with",
        "treated",
        "receiving",
    }
)
_R0 = re.compile(
    r"\b(?:without|no)\s+(?:a\s+|any\s+)?(?:remnant|residual|remaining)\s+"
    r"(?:cancer|tumou?r|disease)\b|\bR0\b",
    re.I,
)
_ANCHOR = re.compile(
    r"\b(?:first|last|initial)\s+(?:dose|administration|infusion|day)\s+of\s+(?:the\s+)?"
    r"(?:study\s+)?[\w-]+(?:\s+(?:treatment|therapy|drug|medication|intervention))?",
    re.I,
)
_SHORT_UNITS = frozenset(
    {
        "g",
        "dl",
        "l",
        "ml",
        "mg",
        "ug",
        "mcg",
        "ul",
        "mcl",
        "mm",
        "mm3",
        "kg",
        "u",
        "iu",
        "min",
        "sec",
        "ms",
        "h",
        "m2",
        "mmol",
        "umol",
        "mol",
        "x",
        "times",
        "fold",
        "uln",
        "percent",
    }
)
_READ = -1  # owner of words a reader consumed without naming the constraint
_OR_WORDS = frozenset({"or", "and/or", "either", "nor"})
# Constraints on a value taken at a time: a window only says when it is taken.
_MEASURED = frozenset({"lab", "ecog", "karnofsky", "age", "biomarker", "pregnancy"})


@dataclass(frozen=True, slots=True)
class Coverage:
    """The words of a criterion its reading did not account for (empty: a complete one)."""

    gaps: tuple[str, ...] = ()
    # The constraints (their indexes) whose own words are all accounted for, when the
    # criterion's gaps lie beside other constraints only: each may decide on its own
    # ("breast cancer that is unresectable or metastatic": the site, whatever the extent).
    parts: tuple[int, ...] = ()
    # An exclusion's constraints each in an element of their own of one list ("thyroid
    # disorders, diabetes, ..., pregnant"): alternatives, whatever the readers joined.
    alternatives: bool = False

    @property
    def complete(self) -> bool:
        return not self.gaps

    def describe(self) -> str:
        return ", ".join(f'"{gap}"' for gap in self.gaps)


@functools.cache
def _words(name: str) -> frozenset[str]:
    data = reading_data()
    if name.startswith("type:"):
        return frozenset(data["types"].get(name[5:], ()))
    return frozenset(data[name])


@functools.cache
def _phrases(name: str) -> re.Pattern[str]:
    words = sorted(reading_data()[name], key=len, reverse=True)
    return re.compile(
        r"(?<![\w-])(?:" + "|".join(re.escape(w).replace(r"\ ", r"\s+") for w in words) + r")\b",
        re.I,
    )


@functools.cache
def _exception_words() -> frozenset[str]:
    """Words of the exception lists a comorbidity reading keeps."""
    from trials.eligibility.extract import OTHER_MALIGNANCY_EXCEPTIONS

    found: set[str] = set()
    for phrase in (*lexicon()["autoimmune_exceptions"], *OTHER_MALIGNANCY_EXCEPTIONS):
        found.update(_tokens_of(phrase.rstrip("*")))
    found.update(
        {
            "skin",
            "cancer",
            "carcinoma",
            "carcinomas",
            "cervix",
            "cervical",
            "in",
            "situ",
            "in-situ",
            "treated",
            "curatively",
            "adequately",
            "superficial",
            "localized",
            "localised",
            "basal",
            "squamous",
            "cell",
            "non-melanoma",
            "nonmelanoma",
            "melanoma",
            "non",
            "resected",
            "completely",
            "disease",
            "free",
            "cured",
            "diabetes",
            "type",
            "1",
            "i",
            "limited",
            "non-melanomatous",
            "nonmelanomatous",
            "melanomatous",
            "cis",
            "dcis",
            "bladder",
            "prostate",
            "prostatic",
            "thyroid",
            "papillary",
            "low-risk",
            "grade",
            "hypothyroidism",
            "hormone",
            "replacement",
            "stable",
            "on",
            "requiring",
            "only",
            "controlled",
            "vitiligo",
            "psoriasis",
            "alopecia",
            "eczema",
            "or",
            "and",
        }
    )
    return frozenset(found)


_PAST_OR_CURRENT = re.compile(
    r"\b(?:previous|prior|past|history)\b[^.;]{0,40}?\bor\s+(?:current|concurrent|coexisting)\b|"
    r"\b(?:current|concurrent)\s+or\s+(?:previous|prior|past)\b",
    re.I,
)
_METASTATIC_WORD = re.compile(r"\bmetastatic\b", re.I)
# An allowance's own verdict ("is allowed to be included"), an exception list's head
# ("Exceptions include ..."): words of the clause's role, not of its content.
_ADMITTED = frozenset({"included", "enrolled", "eligible", "entered", "participate", "study"})
_EXCEPTION_HEADS = frozenset({"exceptions", "exception", "include", "includes", "including"})


def _further_condition(
    tokens: list[tuple[int, int, str]], inside: list[int], leftover: list[int]
) -> str:
    """The words of an exception's further condition ("... and no additional therapy is
    required"), when all the words not read follow an "and" after the window: "" else."""
    words = [tokens[p][2] for p in inside]
    joined = [i for i, w in enumerate(words) if w == "and"]
    if not joined or not leftover:
        return ""
    first = inside.index(leftover[0])
    if not any(i < first for i in joined) or not any(
        _NUMBER.match(w) for w in words[: max(i for i in joined if i < first)]
    ):
        return ""
    return " ".join(tokens[p][2] for p in leftover)


def _tokens_of(phrase: str) -> list[str]:
    return [m.group(0).lower() for m in _TOKEN.finditer(phrase)]


def coverage(
    text: str,
    kind: str,
    constraints: Sequence[c.Constraint],
    join: str = "all",
    *,
    structure: Structure | None = None,
    consumed: Sequence[tuple[int, int]] = (),
    naming: Sequence[tuple[int, int]] = (),
) -> Coverage:
    """The words of ``text`` (normalised) that the constraints read from it leave unexplained.

    ``consumed``: the spans a reader reports it read (the lab reader does); numbers outside
    them are then not accounted for by the reading's type alone. ``naming``: spans that name
    every constraint ("serious cardiovascular disease" for its floors)."""
    if not constraints:
        return Coverage()
    structure = structure or parse_structure(text)
    tokens = _tokens(text)
    starts = [a for a, _, _ in tokens]
    owner: list[set[int] | None] = [None] * len(tokens)  # which constraints account for it
    neutral = [False] * len(tokens)
    concept = [False] * len(tokens)  # a word naming a concept read (not a generic word)
    # The constraints naming each word, by a concept word, a code or a number of theirs:
    # where a constraint stands.
    namers: list[set[int]] = [set() for _ in tokens]
    remarked = [False] * len(tokens)  # in a note that names concepts but decides nothing

    def mark_span(start: int, end: int, index: int) -> None:
        position = bisect.bisect_left(starts, start)
        # A token that starts inside the span is its word ("crohn*" covers "Crohn's").
        while position < len(tokens) and tokens[position][0] < end:
            owner[position] = (owner[position] or set()) | {index}
            if index != _READ:
                concept[position] = True
                namers[position].add(index)
            position += 1

    for start, end in consumed:
        mark_span(start, end, _READ)
    for start, end in naming:
        # Words that name every constraint at once (an undefined quality's floors).
        for index in range(len(constraints)):
            mark_span(start, end, index)
    flat = [leaf for x in constraints for leaf in c.leaves(x)]
    types = {leaf.type for leaf in flat}
    # Numbers and units are accounted for by a lab reading that does not say what it read;
    # an age, a score or a marker value accounts only for its own numbers.
    numeric = bool(types & {"lab"} and not consumed)
    own_numbers = {n for x in flat for n in _numbers_of(x)}
    # A window is accounted for by a constraint that holds one, and by a measurement
    # whose window only says when it is taken ("ECOG 0-1 within 7 days of allocation").
    windowed = any(
        getattr(x, "within_days", None) or getattr(x, "within_years", None) for x in flat
    ) or all(x.type in _MEASURED for x in flat)
    negated = any(getattr(x, "present", True) is False for x in flat) or any(
        isinstance(x, c.Resectable) and not x.value for x in flat
    )
    for index, whole in enumerate(constraints):
        for constraint in c.leaves(whole):
            for start, end in _concept_spans(text, constraint):
                mark_span(start, end, index)
            vocabulary = _words(f"type:{constraint.type}")
            if constraint.type == "karnofsky":
                vocabulary = vocabulary | _words("type:ecog")
            if isinstance(constraint, c.Comorbidity) and constraint.kind == "other_malignancy":
                vocabulary = vocabulary | _words("other_malignancy")
                if constraint.within_years:
                    vocabulary = vocabulary | _words("remission")
                    if _PAST_OR_CURRENT.search(text):
                        # "previous (< 10 years) or current": a current cancer is inside
                        # any window (``evaluate._recent``).
                        vocabulary = vocabulary | {"current", "concurrent", "coexisting"}
            if isinstance(constraint, c.Comorbidity) and constraint.kind == "infection":
                # The infections the kind holds are those treated systemically (antibiotics).
                vocabulary = vocabulary | _words("infection_treatment")
            typed = isinstance(constraint, c.Stage | c.Biomarker) or (
                isinstance(constraint, c.Medication) and constraint.over_mg_per_day is not None
            )
            for position, (_, _, word) in enumerate(tokens):
                if typed and _typed_token(constraint, word):
                    owner[position] = (owner[position] or set()) | {index}
                    namers[position].add(index)
                elif (
                    _known(word, vocabulary)
                    or (word in _SYSTEMIC_WORDS and getattr(constraint, "systemic_treatment", None))
                    or (word in _ACTIVE_WORDS and getattr(constraint, "active", None))
                ):
                    owner[position] = (owner[position] or set()) | {index}
    unit_words = _words("numbers_and_units")
    window_words = _words("window")
    neutral_words = _words("neutral")
    for position, (_, _, word) in enumerate(tokens):
        if owner[position]:
            continue
        if (
            _known(word, neutral_words)
            or (numeric and (_NUMBER.match(word) or _unit(word, unit_words)))
            or (consumed and _unit(word, unit_words) and not _NUMBER.match(word))
            or (windowed and (word in window_words or _NUMBER.match(word)))
        ):
            neutral[position] = True
        elif (
            _NUMBER.match(word)
            and _number_values(word) & own_numbers
            and "^" not in text[max(0, tokens[position][0] - 1) : tokens[position][1] + 1]
        ):  # not the 10 or the 9 of "10^9/L"
            values = _number_values(word)
            numbered = {
                i
                for i, x in enumerate(constraints)
                if any(values & _numbers_of(leaf) for leaf in c.leaves(x))
            }
            owner[position] = numbered
            namers[position] = set(numbered)
        elif (
            word in ("<", ">", "<=", ">=", "%")
            and (numeric or consumed or own_numbers or "stage" in types)
        ) or (word in _words("negation") and negated):
            neutral[position] = True
    if re.search(r"cockcr?oft|gault", text, re.I) and any(
        isinstance(x, c.Lab) and x.analyte == "creatinine_clearance" for x in flat
    ):
        for position, (_, _, word) in enumerate(tokens):
            if word in _words("formula"):
                neutral[position] = True
    if windowed:
        # "within 14 days before the first dose of durvalumab": the anchor's name is timing.
        for anchor in _ANCHOR.finditer(text):
            for position, (a, _, _) in enumerate(tokens):
                if anchor.start() <= a < anchor.end():
                    neutral[position] = True
    for start, end in timing_spans(text):
        for position, (a, _, _) in enumerate(tokens):
            if start <= a < end:
                neutral[position] = True
    # "who have provided informed consent to participate": enrolment itself, not a fact.
    for match in _phrases("procedure").finditer(text):
        for position, (a, _, _) in enumerate(tokens):
            if match.start() <= a < match.end():
                neutral[position] = True
    if kind == "exclusion":
        for match in _phrases("restatement").finditer(text):
            for position, (a, _, _) in enumerate(tokens):
                if match.start() <= a < match.end():
                    neutral[position] = True
    gaps: list[str] = []
    whole_gaps: list[tuple[int, int]] = []  # clauses that are a gap as a whole
    enclosed: list[int] = []  # ... in parentheses: the first word of each
    qualified: set[int] = set()  # constraints a condition on their organ's function qualifies
    placed = 0  # whole-clause gaps placed on some constraints, not on all
    # Roles: a clause that is not main is explained only by a reading that represents it.
    conditions = [x for x in flat if isinstance(x, c.Lab) and x.condition]
    exceptions = [x for x in flat if getattr(x, "exceptions", ())]
    # Examples first: "exceptions include in situ cancers (e.g. bladder, colon)" holds them.
    ordered = sorted(structure.clauses, key=lambda x: x.role is not Role.EXAMPLE)
    for clause in ordered:
        if clause.role is Role.MAIN:
            continue
        inside = [p for p, (a, _, _) in enumerate(tokens) if clause.start <= a < clause.end]
        aside = _procedural(tokens, inside, clause.role) or _steroid_allowance(
            tokens, inside, clause.role, flat
        )
        if clause.role is Role.EXAMPLE or aside or _supportive(tokens, inside, clause.role):
            for position in inside:
                neutral[position] = True
                if aside:
                    # A note on testing, or an allowance the reading holds, names concepts
                    # without saying who is eligible: no constraint stands there.
                    remarked[position] = True
            continue
        if clause.role is Role.CONDITION and _formula(tokens, inside, flat):
            for position in inside:
                neutral[position] = True
            continue
        timed = any(getattr(x, "within_years", None) for x in flat)
        supported = (
            (
                clause.role in (Role.CONDITION, Role.ALLOWANCE)
                and conditions
                and _CONDITION_NAMED.search(text, clause.start, clause.end)
            )
            or (
                clause.role is Role.EXCEPTION
                and (
                    exceptions or timed or any("gilbert" in (x.condition or "") for x in conditions)
                )
            )
            or (clause.role is Role.ALLOWANCE and timed)
        )
        if supported:
            # Represented only when every word of the clause is accounted for: the reading
            # holds its exception list, its condition or the window it states.
            allowed = (
                _exception_words()
                | _words("condition_words")
                | (_words("remission") if timed else frozenset())
                | set(_tokens_of(clause.marker))
                | (_ADMITTED if clause.role is Role.ALLOWANCE else _EXCEPTION_HEADS)
            )
            leftover = [
                p
                for p in inside
                if not (owner[p] or neutral[p])
                and tokens[p][2] not in allowed
                and not (_NUMBER.match(tokens[p][2]) and (timed or conditions))
            ]
            if not leftover:
                for position in inside:
                    neutral[position] = True
                continue
            if kind == "exclusion" and clause.role is Role.EXCEPTION and timed:
                further = _further_condition(tokens, inside, leftover)
                if further:
                    # "excluded unless in remission for 2 years and no therapy is needed":
                    # the window read excludes; the condition joined to it only adds to
                    # whom the criterion excludes.
                    for position in inside:
                        neutral[position] = True
                    gaps.append(f"further: {further}")
                    whole_gaps.append((clause.start, clause.end))  # no part is read in full
                    continue
        gaps.append(f"{clause.role.value}: {clause.marker.lower()}")
        whole_gaps.append((clause.start, clause.end))
        function = (
            _one_function(text, clause, constraints)
            if kind == "inclusion" and clause.role is Role.CONDITION
            else set()
        )
        if function:
            # "creatinine clearance > 60 mL/min, if just below 60 then GFR > 60 by 24-hour
            # urine": a condition naming the kidney's measures qualifies the kidney's limits.
            qualified |= function
            placed += 1
        elif _parenthesised(text, clause.start, clause.end) and inside:
            # "chronic hepatitis B (... can be included)": it qualifies its list element.
            enclosed.append(inside[0])
            placed += 1
    # "or" between words of different constraints joined as all-of is not understood.
    alternative = [False] * len(tokens)
    alternatives: list[str] = []
    beside: list[tuple[int, set[int] | None]] = []  # each alternative: its "or", the side read
    qualifier_or: dict[int, set[int]] = {}  # an "or" between a constraint and a qualifier
    for position, (_, _, word) in enumerate(tokens):
        if word not in _OR_WORDS or join == "any":
            if word in _OR_WORDS:
                neutral[position] = True
            continue
        left = _side(owner, neutral, tokens, position, -1)
        right = _side(owner, neutral, tokens, position, 1)
        if left == "unread" or right == "unread":
            # An alternative the reading does not hold is one gap, "or: ...", when it stands
            # apart from the concepts read ("major surgery, open biopsy, or traumatic
            # injury"); words that run into a concept read ("untreated or symptomatic CNS
            # metastases") qualify it instead, and stay gaps of their own.
            left_run, left_stop = _unread_run(concept, owner, neutral, tokens, position, -1)
            right_run, right_stop = _unread_run(concept, owner, neutral, tokens, position, 1)
            apart = (left != "unread" or left_stop == "owned") and (
                right != "unread" or right_stop != "owned"
            )
            if apart:
                words = [
                    tokens[i][2]
                    for i in sorted({*left_run, *right_run})
                    if (left == "unread" and i in left_run)
                    or (right == "unread" and i in right_run)
                ]
                for index in (
                    *(left_run if left == "unread" else ()),
                    *(right_run if right == "unread" else ()),
                ):
                    alternative[index] = True
                alternatives.append(f"or: {' '.join(words)}")
                read_side = right if left == "unread" else left
                beside.append((position, read_side if isinstance(read_side, set) else None))
                neutral[position] = True
            elif isinstance(left, set) or isinstance(right, set):
                # "unresectable or metastatic GC": an alternative of the constraint read
                # beside it, qualifying the concept after it; not of the whole criterion.
                read_side = (left if isinstance(left, set) else right) - {_READ}
                for index in (position, *(left_run if left == "unread" else right_run)):
                    qualifier_or[index] = read_side
            continue
        if not left or not right or left & right or _related(constraints, left, right):
            neutral[position] = True

    # Where each constraint stands: its concept words, codes and numbers, and the words of
    # its vocabulary no other constraint shares ("pregnant").
    neutral_words = _words("neutral")
    # A constraint stands where it is named ("count" of "neutrophil count" is the
    # neutrophils', not every count's), or where only its vocabulary says it ("pregnant").
    # A word in a note that decides nothing is where no constraint stands.
    standing = [
        None
        if aside
        else set(m)
        if m
        else o
        if (
            o
            and len(o - {_READ}) == 1
            and constraints[next(iter(o - {_READ}))].type in _NAMED_BY_VOCABULARY
            and len(word) > 3
            and word not in neutral_words
        )
        else None
        for o, m, aside, (_, _, word) in zip(owner, namers, remarked, tokens, strict=True)
    ]
    places = _Places(text, tokens, standing, kind)
    # A clause not understood is part of every constraint, unless it could be placed.
    unplaced = len(whole_gaps) > placed
    places.dirty |= qualified
    for position in enclosed:
        if not unplaced:
            unplaced = places.attach(position, local=True)
    windows = _window_spans(text)
    heads = (
        _example_heads(structure, tokens, owner, neutral, concept) if kind == "exclusion" else {}
    )
    for position, (start, end, word) in enumerate(tokens):
        if owner[position] or neutral[position] or alternative[position]:
            continue
        if any(a <= start < b for a, b in whole_gaps):
            continue  # its clause is already a gap as a whole
        if len(word) == 1 and not word.isdigit():
            continue
        if position in heads:
            # "non-surgical treatment (e.g. radiotherapy, chemotherapy)": the examples read
            # are instances of a wider head, so their presence excludes (and only that).
            gaps.append(f"wider: {heads[position]}")
            if not unplaced:
                unplaced = places.attach(position)  # never settles the head's absence
            continue
        window = next(((a, b) for a, b in windows if a <= start < b), None)
        if window:
            # A time window the reading does not hold ("diagnosed within 60 days prior"):
            # one gap that can only narrow the concept beside it.
            gaps.append("window: " + " ".join(text[window[0] : window[1]].lower().split()))
            if not unplaced:
                unplaced = places.attach(position)
            continue
        slashed = (start > 0 and text[start - 1] == "/") or text[end : end + 1] == "/"
        gaps.append(f"/{word}" if slashed else word)
        if position in qualifier_or:
            # In an exclusion the constraint read excludes whatever its alternative means;
            # the alternative's words qualify the concept after them.
            if unplaced or (kind == "exclusion" and word in _OR_WORDS):
                continue
            if kind == "exclusion":
                unplaced = places.attach(position)
            else:
                unplaced = places.attach_alternative(position, qualifier_or[position], own=True)
        elif (
            word in _OR_WORDS
            or word in _words("negation")
            or word in _SUBJECT_CHANGERS
            or (slashed and kind == "inclusion")
        ):
            unplaced = True
        elif not unplaced:
            unplaced = places.attach(position)
    for position, read_side in beside:
        if not unplaced:
            unplaced = places.attach_alternative(position, read_side)
    gaps.extend(alternatives)
    parts: tuple[int, ...] = ()
    if gaps and not unplaced:
        parts = places.parts(constraints)
    separate = kind == "exclusion" and join == "all" and places.separate(constraints)
    return Coverage(tuple(dict.fromkeys(gaps)), parts, separate)


# Measures of one organ's function: a condition naming one qualifies the limits on all.
_FUNCTIONS = (
    frozenset({"ast", "alt", "alp", "ggt"}),
    frozenset({"creatinine", "creatinine_clearance", "egfr"}),
    frozenset({"bilirubin", "direct_bilirubin"}),
    frozenset({"inr", "pt", "aptt"}),
)


def _one_function(text: str, clause: Clause, constraints: Sequence[c.Constraint]) -> set[int]:
    """The constraints limiting the one organ function a condition inside a sentence names
    (beside limits of other functions); empty when it names none, or more than one."""
    if clause.start == 0 or not text[: clause.start].rstrip().endswith(","):
        return set()
    named = {
        concept
        for _, _, found in _group_matches(text[clause.start : clause.end], "analytes")
        for concept in found
    }
    family = next((f for f in _FUNCTIONS if named and named <= f), None)
    if family is None:
        return set()
    found = {
        i
        for i, x in enumerate(constraints)
        if any(isinstance(leaf, c.Lab) and str(leaf.analyte) in family for leaf in c.leaves(x))
    }
    others = any(
        isinstance(leaf, c.Lab) and str(leaf.analyte) not in family
        for x in constraints
        for leaf in c.leaves(x)
    )
    return found if others else set()


def _parenthesised(text: str, start: int, end: int) -> bool:
    """Does the span lie inside one pair of parentheses ("(... can be included)")?"""
    opened = text.rfind("(", 0, start + 1)
    if opened < 0 or text.rfind(")", opened, start) >= 0:
        return False
    closed = text.find(")", max(end - 1, start))
    return closed >= 0 and text.find("(", start + 1, closed) < 0


# The words of a grade ("≥ grade 2", "grade 3 or higher", "CTCAE grade > 1").
_GRADE_WORD = re.compile(
    r"^(?:[<>]=?|=|grades?|ctcae|\d|or|and|higher|greater|worse|above|more)$", re.I
)
# Where one list element ends: top-level ";", "," (not a thousands comma), ":", a sentence's
# end and a numbered item ("(2)", "3)").
_ELEMENT_BREAK = re.compile(r";|,(?!\d{3}(?!\d))|:(?=\s)|\.(?=\s|$)|\n|(?<![\w(])\(?\d\)\s")
# An element that only says more of the one before ("..., defined as ...").
_ELABORATION = re.compile(
    r"^\W*(?:defined|i\.?e|e\.?g|such|including|includes|which|that|who|whose|with|without|"
    r"requiring|as|in|of|for|due|by|at|on|per|according|especially|particularly)\b",
    re.I,
)
# Constraints the readers name by words of their type only ("pregnant", "ECOG").
_NAMED_BY_VOCABULARY = frozenset(
    {"pregnancy", "age", "sex", "ecog", "karnofsky", "surgery", "resectable"}
)
# The disease and the person: they qualify the rest, never an alternative to it.
_TOGETHER = frozenset({"primary_site", "histology", "age", "sex", "stage"})
_JOINED = re.compile(r"^\W*(?:or|and|and/or|nor)\b", re.I)


@functools.lru_cache(maxsize=4096)
def _element_breaks(text: str) -> tuple[int, ...]:
    """Where list elements start: after each top-level break (outside parentheses)."""
    found = []
    for match in _ELEMENT_BREAK.finditer(text):
        before = text[: match.start()]
        if "(" not in before or before.count("(") <= before.count(")"):
            found.append(match.start() + 1)
    return tuple(found)


class _Places:
    """Which constraint each word not understood stands beside.

    A gap belongs to the nearest constraint of its list element ("unstable arrhythmia":
    the arrhythmia); an exclusion's element read by nothing is one more alternative of its
    list; an inclusion's, and anything else that cannot be placed, belongs to every
    constraint of its sentence. A constraint no gap stands beside is read in full."""

    def __init__(
        self,
        text: str,
        tokens: list[tuple[int, int, str]],
        owner: list[set[int] | None],
        kind: str,
    ) -> None:
        # The indexes are built on first use: most readings have no gap to place.
        self.text, self.tokens, self.kind, self._owner = text, tokens, kind, owner
        self.dirty: set[int] = set()  # constraints a gap stands beside
        self.dirty_at: set[tuple[int, int]] = set()  # ... in one list element

    @functools.cached_property
    def owners(self) -> list[frozenset[int]]:
        return [frozenset((found or set()) - {_READ}) for found in self._owner]

    @functools.cached_property
    def _sentence_starts(self) -> list[int]:
        return [a for a, _ in sentence_spans(self.text)] or [0]

    @functools.cached_property
    def breaks(self) -> list[int]:
        return sorted({0, *_element_breaks(self.text), *self._sentence_starts})

    @functools.cached_property
    def element(self) -> list[int]:
        """Each token's list element."""
        return [bisect.bisect_right(self.breaks, a) - 1 for a, _, _ in self.tokens]

    @functools.cached_property
    def sentence(self) -> list[int]:
        """Each token's sentence."""
        return [bisect.bisect_right(self._sentence_starts, a) - 1 for a, _, _ in self.tokens]

    @functools.cached_property
    def _members(self) -> tuple[dict[int, list[int]], dict[int, list[int]]]:
        """The token positions of each element and of each sentence."""
        elements: dict[int, list[int]] = {}
        sentences: dict[int, list[int]] = {}
        for position, (element, sentence) in enumerate(
            zip(self.element, self.sentence, strict=True)
        ):
            elements.setdefault(element, []).append(position)
            sentences.setdefault(sentence, []).append(position)
        return elements, sentences

    def _of_element(self, element: int) -> list[int]:
        return self._members[0].get(element, [])

    def _of_sentence(self, position: int) -> list[int]:
        return self._members[1][self.sentence[position]]

    def _owners(self, positions: Iterable[int]) -> set[int]:
        return {i for p in positions for i in self.owners[p]}

    def attach(self, position: int, *, local: bool = False) -> bool:
        """Place one gap word; True when it cannot be placed (it is part of everything).
        ``local``: it qualifies its own list element only (a parenthesis)."""
        here = self.element[position]
        owned = [p for p in self._of_element(here) if self.owners[p]]
        sentence = self._of_sentence(position)
        elements = sorted({self.element[p] for p in sentence})
        if owned:
            if len(elements) > 1 and (
                (
                    here == elements[-1]
                    and position > max(owned)
                    and not (local or self._graded(position))
                )
                or (here == elements[0] and position < min(owned))
            ):
                # Before a list's first concept or after its last ("DVT, PE or other events
                # present during the screening period"): it may qualify every element.
                self.dirty |= self._owners(sentence)
                return False
            # The nearest constraint; on a tie the one after (a qualifier precedes its noun).
            nearest = min(owned, key=lambda p: (abs(p - position), p < position))
            self.dirty_at |= {(i, here) for i in self.owners[nearest]}
            return False
        start = self.breaks[here]
        words = self.text[start : start + 80]
        alternative = len(elements) >= 3 or _JOINED.match(words)
        if self.kind == "exclusion" and not _ELABORATION.match(words) and alternative:
            return False  # one more alternative of an exclusion's list
        if self.kind == "exclusion":
            # It says more of its neighbour: the element before, or else the one after.
            before = [e for e in elements if e < here and self._owners(self._of_element(e))]
            after = [e for e in elements if e > here and self._owners(self._of_element(e))]
            chosen = before[-1:] or after[:1]
            if chosen:
                self.dirty |= self._owners(self._of_element(chosen[0]))
                return False
            return True
        found = self._owners(sentence)
        if not found:
            return True
        self.dirty |= found
        return False

    def _graded(self, position: int) -> bool:
        """Is the word part of a grade written right after a concept ("pneumonitis >= grade
        2")? A grade binds to the concept it follows, not to the whole list."""
        words = [w for _, _, w in self.tokens]
        start = end = position
        while start > 0 and _GRADE_WORD.match(words[start - 1]) and not self.owners[start - 1]:
            start -= 1
        while end + 1 < len(words) and _GRADE_WORD.match(words[end + 1]):
            end += 1
        run = words[start : end + 1]
        return start > 0 and bool(self.owners[start - 1]) and bool({"grade", "grades"} & set(run))

    def attach_alternative(
        self, position: int, read_side: set[int] | None, *, own: bool = False
    ) -> bool:
        """An alternative not read ("or: ..."): in an exclusion it excludes on its own, so it
        takes nothing from the rest; in an inclusion it widens the constraint it stands
        beside, and a whole list when it ends one ("A, B or C"). ``own``: an alternative of
        that one constraint's value ("unresectable or metastatic"), in either kind."""
        if self.kind == "exclusion" and not own:
            return False
        if not read_side:
            return True
        self.dirty |= read_side - {_READ}
        sentence = self._of_sentence(position)
        if len({self.element[p] for p in sentence}) > 1:
            self.dirty |= self._owners(sentence)
        return False

    def separate(self, constraints: Sequence[c.Constraint]) -> bool:
        """Does each constraint stand in list elements of its own, all in one sentence?"""
        if len(constraints) < 2 or any(x.type in _TOGETHER for x in constraints):
            return False
        standing: dict[int, set[int]] = {}
        sentences = set()
        for p, found in enumerate(self.owners):
            for i in found:
                standing.setdefault(i, set()).add(self.element[p])
                sentences.add(self.sentence[p])
        if len(standing) < len(constraints) or len(sentences) != 1:
            return False
        seen: set[int] = set()
        for elements in standing.values():
            if elements & seen:
                return False
            seen |= elements
        return True

    def parts(self, constraints: Sequence[c.Constraint]) -> tuple[int, ...]:
        """The constraints no gap stands beside. In an exclusion, one element naming a
        constraint with no gap beside it is enough: each element is an alternative that
        excludes on its own ("interstitial lung disease, drug-induced pneumonitis, ...")."""
        at = {(i, self.element[p]) for p, found in enumerate(self.owners) for i in found}
        owned = {i for i, _ in at}
        dirty = set(self.dirty)
        for i in owned:
            elements = {e for j, e in at if j == i}
            gapped = {e for j, e in self.dirty_at if j == i}
            if gapped and (self.kind == "inclusion" or not elements - gapped):
                dirty.add(i)
        # Limits of one analyte stand or fall together ("<= 3 x ULN, or <= 5 x ULN if ...").
        spread = True
        while spread:
            spread = False
            for i in range(len(constraints)):
                for j in range(len(constraints)):
                    if i in dirty and j not in dirty and _related(constraints, {i}, {j}):
                        dirty.add(j)
                        spread = True
        return tuple(i for i in range(len(constraints)) if i in owned and i not in dirty)


def _example_heads(
    structure: Structure,
    tokens: list[tuple[int, int, str]],
    owner: list[set[int] | None],
    neutral: list[bool],
    concept: list[bool],
) -> dict[int, str]:
    """The words not read just before an example clause whose examples are read: the head
    the examples are instances of (up to three words), by position."""
    heads: dict[int, str] = {}
    for clause in structure.clauses:
        if clause.role is not Role.EXAMPLE:
            continue
        inside = [p for p, (a, _, _) in enumerate(tokens) if clause.start <= a < clause.end]
        if not any((owner[p] or set()) - {_READ} for p in inside):
            continue
        before = [p for p, (a, _, _) in enumerate(tokens) if a < clause.start]
        run: list[int] = []
        for p in reversed(before):
            if concept[p]:
                break  # the examples are of a concept read: no wider head
            if neutral[p] or owner[p]:
                if run:
                    break
                continue
            run.insert(0, p)
            if len(run) == 3:
                break
        words = " ".join(tokens[p][2] for p in run)
        heads.update(dict.fromkeys(run, words))
    return heads


def _window_spans(text: str) -> list[tuple[int, int]]:
    from trials.eligibility.extract import WINDOW

    return [(m.start(), m.end()) for m in WINDOW.finditer(text)]


def _unread_run(
    concept: list[bool],
    owner: list[set[int] | None],
    neutral: list[bool],
    tokens: list[tuple[int, int, str]],
    position: int,
    step: int,
) -> tuple[list[int], str]:
    """The words on one side of an "or" up to the nearest word a constraint owns, another
    "or" or the end, and which of the three it stopped at ("owned", "or", "edge")."""
    found: list[int] = []
    index = position + step
    while 0 <= index < len(tokens):
        if concept[index]:
            return found, "owned"
        if tokens[index][2] in _OR_WORDS:
            return found, "or"
        if not neutral[index] and not owner[index]:
            found.append(index)
        index += step
    return found, "edge"


# Words that change what a criterion is about, so that the concepts read are not its subject
# ("toxicity from prior therapy", "allergy to platinum", "family history of cancer").
_SUBJECT_CHANGERS = frozenset(
    [
        # "receiving chemotherapy for the first time": a therapy to come, not a prior one.
        "first",
        "toxicity",
        "toxicities",
        "adverse",
        "side",
        "effect",
        "effects",
        "allergy",
        "allergies",
        "allergic",
        "hypersensitivity",
        "intolerance",
        "intolerant",
        "contraindication",
        "contraindications",
        "contraindicated",
        "family",
        "relative",
        "relatives",
        "father",
        "mother",
        "sibling",
        "siblings",
        "partner",
        "partners",
        "risk",
        "suspected",
        "suspicion",
        "complication",
        "complications",
        "sequelae",
        "resolved",
        "recovered",
        "recovery",
        "unresolved",
        "failure",
        "failed",
        "fail",
        "progression",
        "progressed",
        "progressing",
        "refractory",
        "prophylaxis",
        "prophylactic",
        "willing",
        "able",
        "agree",
        "agrees",
        "consent",
        "opinion",
        "judgment",
        "judgement",
        "investigator's",
        "discretion",
        "reaction",
        "reactions",
        "induced",
        "related",
        "focus",
        "especially",
        "particularly",
        "mainly",
        "mostly",
        "primarily",
        "preferably",
        "emphasis",
        "secondary",
        "following",
        "after",
        "post",
        "due",
        "caused",
        "matched",
        "age-matched",
        "sex-matched",
        "cases",
        "controls",
    ]
)


def decides_only_absent(gaps: Sequence[str], kind: str) -> bool:
    """Can a reading with these gaps still decide where the concepts it read are absent?

    Yes when every gap can only narrow the concept it stands beside: an unknown qualifier
    ("untreated", "pelvic", "colorectal"), and in an exclusion an exception, a condition or
    an allowance (the exclusion then covers fewer patients; in an inclusion these may admit
    more: "<= 1.8 x ULN unless on anticoagulation"). Whatever may widen a criterion or change
    its subject makes the reading opaque: an "or" or a "/" not understood, a condition,
    exception or allowance of an inclusion, a scope ("while on study"), a remark, a negation
    or a number not accounted for, a subject-changing word, a heading's scope."""
    if not gaps:
        return True
    for gap in gaps:
        role, _, marker = gap.partition(": ")
        if marker:
            if kind == "exclusion" and role in ("exception", "condition", "allowance"):
                continue
            if role == "window" or (role == "undefined" and kind == "inclusion"):
                continue
            return False
        if gap.startswith(("/", "or: ")) or gap in _OR_WORDS or gap in _words("negation"):
            return False
        if gap[0].isdigit() or gap in ("<", ">", "<=", ">=", "%") or gap in _SUBJECT_CHANGERS:
            return False
        unit_like = not gap.isalpha() or gap in _SHORT_UNITS
        if gap in _words("numbers_and_units") and unit_like:
            return False  # a unit not accounted for: a limit not read
    return True


def _numbers_of(constraint: c.Constraint) -> set[float]:
    """The numbers a constraint was read from ("< 18" is an age of at most 17)."""
    found: set[float] = set()
    for name in ("min", "max", "value", "over_mg_per_day", "within_years"):
        value = getattr(constraint, name, None)
        if isinstance(value, int | float) and not isinstance(value, bool):
            found.update({float(value), float(value) + 1, float(value) - 1})
    for score in getattr(constraint, "allowed", ()) or ():
        found.add(float(score))
    if isinstance(constraint, c.Karnofsky):
        found.update({float(constraint.min), float(constraint.min - 10)})
    return found


def _number_values(word: str) -> set[float]:
    values = set()
    for part in word.rstrip("+").split("-"):
        try:
            values.add(
                float(part.replace(",", "."))
                if part.count(",") == 1 and len(part.split(",")[1]) != 3
                else float(part.replace(",", ""))
            )
        except ValueError:
            continue
    return values


def _known(word: str, vocabulary: frozenset[str]) -> bool:
    """In the vocabulary, whole or (hyphenated) in every part: "her2-negative"."""
    if word in vocabulary:
        return True
    if "-" in word:
        parts = [part for part in word.split("-") if part]
        return bool(parts) and all(part in vocabulary or _NUMBER.match(part) for part in parts)
    return False


_POWER = re.compile(r"^x?(?:10|l0)\^?\d$|^x?10e\d$|^x$", re.I)


def _unit(word: str, units: frozenset[str]) -> bool:
    return _known(word, units) or bool(_POWER.match(word))


def _related(constraints: Sequence[c.Constraint], left: set[int], right: set[int]) -> bool:
    """Lab limits of the same analyte or with the same limit are one list ("AST/ALT <= 3 x
    ULN; or <= 5 x ULN if liver metastases", "AST or ALT <= 2.5 x ULN")."""

    def limits(indexes: set[int]) -> list[c.Lab]:
        return [
            leaf
            for i in indexes
            if 0 <= i < len(constraints)
            for leaf in c.leaves(constraints[i])
            if isinstance(leaf, c.Lab)
        ]

    for a in limits(left):
        for b in limits(right):
            if a.analyte == b.analyte:
                return True
            same_limit = (a.op, a.value, a.uln) == (b.op, b.value, b.uln)
            if same_limit and _same_function(str(a.analyte), str(b.analyte)):
                return True
    return False


def _same_function(a: str, b: str) -> bool:
    """Measures of one organ's function ("AST or ALT"), not bilirubin beside creatinine."""
    return any(a in family and b in family for family in _FUNCTIONS)


def _supportive(tokens: list[tuple[int, int, str]], inside: list[int], role: Role) -> bool:
    """An allowance or note that only says how a value may be reached ("transfusion is
    permitted", "may receive RBC transfusions"): it changes nothing of the requirement."""
    if role not in (Role.ALLOWANCE, Role.REMARK) or not inside:
        return False
    words = [tokens[p][2] for p in inside]
    supportive = _words("supportive")
    if not any(w in supportive and w not in _FILLER for w in words):
        return False
    return all(
        w in supportive
        or w in _words("neutral")
        or _NUMBER.match(w)
        or w in _words("window")
        or w in _analyte_words()
        or _unit(w, _words("numbers_and_units"))
        or w in ("<", ">", "<=", ">=")
        for w in words
    )


def _steroid_allowance(
    tokens: list[tuple[int, int, str]], inside: list[int], role: Role, flat: Sequence[c.Constraint]
) -> bool:
    """ "Inhaled or topical steroids and physiologic replacement are allowed" beside a systemic
    steroid exclusion: topical and inhaled use is not systemic, and replacement is held by the
    reading's dose floor (at most 10 mg/day prednisone-equivalent is replacement)."""
    if role not in (Role.ALLOWANCE, Role.EXCEPTION, Role.REMARK) or not inside:
        return False
    words = {tokens[p][2] for p in inside}
    vocabulary = _words("steroid_allowance")
    if not all(w in vocabulary or w in _FILLER for w in words):
        return False
    if any(
        isinstance(x, c.Comorbidity) and x.systemic_treatment and x.replacement_allowed
        for x in flat
    ):
        return True  # "replacement therapy is not a form of systemic treatment": held
    steroids = [x for x in flat if isinstance(x, c.Medication) and x.category == "systemic_steroid"]
    if not steroids or not all(x.present for x in steroids):
        return False
    if {"replacement", "physiologic", "physiological"} & words:
        return all(
            x.over_mg_per_day is not None and x.over_mg_per_day <= IMMUNOSUPPRESSIVE_PREDNISONE_MG
            for x in steroids
        )
    return bool({"inhaled", "inhalational", "topical", "intranasal", "nasal", "ocular"} & words)


# "if the subject becomes pregnant during the study": what happens later, not who enters.
_BECOMES = frozenset({"becomes", "become", "develops", "develop"})


def _procedural(tokens: list[tuple[int, int, str]], inside: list[int], role: Role) -> bool:
    """A note on how the study tests ("Note: baseline MRI of the brain required if there is
    clinical suspicion"; "no testing for hepatitis B is required unless mandated"), or a
    condition on what happens later ("if the subject becomes pregnant during the study"): it
    changes nothing of who is eligible, unless it admits or excludes someone."""
    if role is Role.CONDITION and inside:
        words = {tokens[p][2] for p in inside}
        return bool(words & _BECOMES and "during" in words and words & {"study", "trial"})
    if role is not Role.REMARK or not inside:
        return False
    sequence = [tokens[p][2] for p in inside]
    words = set(sequence)
    required = _words("procedure_requirements")
    # "... unless mandated by local health authority": the test's exception, not a patient's.
    verdicts = {
        w
        for i, w in enumerate(sequence)
        if w in _words("procedure_verdicts")
        and not (w in ("unless", "except") and set(sequence[i + 1 : i + 3]) & required)
    }
    return bool(words & _words("procedure_tests") and words & required and not verdicts)


_FILLER = frozenset(
    {
        "to",
        "of",
        "or",
        "and",
        "the",
        "is",
        "are",
        "may",
        "be",
        "use",
        "other",
        "in",
        "order",
        "note",
        "without",
        "within",
        "days",
        "prior",
        "last",
        "no",
        "not",
        "cell",
        "cells",
        "blood",
        "red",
        "receive",
        "received",
        "used",
        "acceptable",
        "allowed",
        "permitted",
        "achieve",
        "reach",
        "care",
        "support",
    }
)


@functools.cache
def _analyte_words() -> frozenset[str]:
    found: set[str] = set()
    for words in lexicon()["analytes"].values():
        for word in words:
            found.update(_tokens_of(word.rstrip("*")))
    return frozenset(found)


def _formula(
    tokens: list[tuple[int, int, str]], inside: list[int], flat: list[c.Constraint]
) -> bool:
    """A creatinine-clearance formula spelled out ("(x 0.85 if female)")."""
    if not any(isinstance(x, c.Lab) and x.analyte == "creatinine_clearance" for x in flat):
        return False
    formula = _words("formula")
    return all(tokens[p][2] in formula or _NUMBER.match(tokens[p][2]) for p in inside)


def _side(
    owner: list[set[int] | None],
    neutral: list[bool],
    tokens: list[tuple[int, int, str]],
    position: int,
    step: int,
) -> Any:
    """What stands on one side of an "or": the constraints owning the nearest word that is
    not neutral, "unread" when that word is not accounted for, None when there is none."""
    index = position + step
    while 0 <= index < len(owner):
        found = (owner[index] or set()) - {_READ}
        if found:
            return found
        word = tokens[index][2]
        unread = not neutral[index] and not owner[index] and (len(word) > 1 or word.isdigit())
        if unread and word not in _OR_WORDS:
            return "unread"
        index += step
    return None


def _typed_token(constraint: c.Constraint, word: str) -> bool:
    """Codes a constraint accounts for by their shape (stage codes, scores, roman numerals)."""
    if isinstance(constraint, c.Stage):
        return bool(_TNM_TOKEN.match(word) or _ROMAN.match(word) or _NUMBER.match(word))
    if isinstance(constraint, c.Biomarker):
        return bool(_NUMBER.match(word))
    if isinstance(constraint, c.Medication) and constraint.over_mg_per_day is not None:
        return bool(_NUMBER.match(word))
    return False


def _concept_spans(text: str, constraint: c.Constraint) -> Iterable[tuple[int, int]]:
    """Where the concepts a constraint holds are named in the text."""
    if isinstance(constraint, c.Surgery | c.PriorTherapy | c.Resectable):
        # "without a remnant cancer (R0)": a complete resection, not a negation.
        yield from ((m.start(), m.end()) for m in _R0.finditer(text))
    if isinstance(constraint, c.Surgery) and constraint.procedures:
        from trials.eligibility.extract import PROCEDURES

        yield from ((m.start(), m.end()) for m in PROCEDURES.finditer(text))
    if isinstance(constraint, c.Stage):
        from trials.eligibility.extract import NODES_INVOLVED, extent_spans

        yield from extent_spans(text)
    if isinstance(constraint, c.Stage) and constraint.category == "N":
        yield from ((m.start(), m.end()) for m in NODES_INVOLVED.finditer(text))
    elif isinstance(constraint, c.Stage) and constraint.any_of == ("M1",):
        yield from ((m.start(), m.end()) for m in _METASTATIC_WORD.finditer(text))
    elif isinstance(constraint, c.Lab):
        yield from _group_spans(text, "analytes", {constraint.analyte})
        if constraint.condition == "liver_metastases":
            yield from _group_spans(text, "metastasis_sites", {"liver"})
    elif isinstance(constraint, c.Comorbidity):
        for start, end in _group_spans(text, "comorbidities", {constraint.kind}):
            if (
                constraint.kind == "autoimmune"
                and not constraint.named
                and not GENERIC_AUTOIMMUNE.match(text, start)
            ):
                # A named disease ("inflammatory bowel disease") is narrower than the kind
                # read: its words stay unexplained, so the reading decides only its absence.
                continue
            yield start, end
    elif isinstance(constraint, c.Metastasis):
        yield from _group_spans(text, "metastasis_sites", {constraint.site})
    elif isinstance(constraint, c.Histology):
        yield from _group_spans(text, "histology", set(constraint.any_of))
    elif isinstance(constraint, c.PrimarySite):
        for site in constraint.any_of:
            pattern = concept_patterns("sites").get(site)
            if pattern:
                yield from ((m.start(), m.end()) for m in pattern.finditer(text))
    elif isinstance(constraint, c.Medication):
        pattern = concept_patterns("medications").get(constraint.category)
        if pattern:
            yield from ((m.start(), m.end()) for m in pattern.finditer(text))
    elif isinstance(constraint, c.PriorTherapy):
        classes = set(constraint.classes)
        yield from _group_spans(text, "prior_therapy", classes)
        yield from _drug_spans(text, classes)


def _group_spans(text: str, group: str, concepts: set[str]) -> Iterable[tuple[int, int]]:
    for start, end, named in _group_matches(text, group):
        if concepts & named:
            yield start, end


@functools.lru_cache(maxsize=4096)
def _group_matches(text: str, group: str) -> tuple[tuple[int, int, frozenset[str]], ...]:
    """Every concept word of a lexicon group in the text (one pass per text and group)."""
    matcher = group_matcher(group)
    return tuple(
        (start, end, frozenset(matcher.concepts(text[start:end])))
        for start, end, _ in matcher.finditer(text)
    )


@functools.lru_cache(maxsize=4096)
def _tokens(text: str) -> list[tuple[int, int, str]]:
    return [(m.start(), m.end(), m.group(0).lower()) for m in _TOKEN.finditer(text)]


@functools.cache
def _drug_names() -> tuple[tuple[re.Pattern[str], str, str, str], ...]:
    found = []
    for drug in drugs().values():
        for name in (drug.name, *drug.synonyms):
            pattern = re.compile(rf"(?<![\w-]){re.escape(name)}(?![\w-])", re.I)
            found.append((pattern, drug.category, drug.drug_class, name))
    return tuple(found)


def _drug_spans(text: str, classes: set[str]) -> Iterable[tuple[int, int]]:
    lowered = text.lower()
    for pattern, category, drug_class, name in _drug_names():
        if name.lower() not in lowered:
            continue
        if (
            category in classes
            or drug_class in classes
            or (category == "immunotherapy" and "immunotherapy" in classes)
            or drug_class.startswith(tuple(classes))
        ):
            yield from ((m.start(), m.end()) for m in pattern.finditer(text))


def review_note(gaps: Sequence[str], marks: Sequence[str]) -> str:
    """Why a reading may not decide, in the words coordinators see ("" when it may)."""
    parts = []
    if gaps:
        parts.append("reading incomplete, not understood: " + ", ".join(f'"{g}"' for g in gaps))
    if marks:
        parts.append("reading to check: " + "; ".join(marks))
    return "; ".join(parts)


def decides_only_present(gaps: Sequence[str], kind: str) -> bool:
    """Can an exclusion with these gaps still decide where the concepts it read are present?

    Yes when every gap is an alternative it did not read ("major surgery within 28 days, or
    traumatic injury"): whatever the alternative means, the part read already excludes."""
    return (
        kind == "exclusion"
        and bool(gaps)
        and all(gap.startswith(("or: ", "undefined: ", "wider: ", "further: ")) for gap in gaps)
    )


def reading_review(kind: str, gaps: Sequence[str], marks: Sequence[str]) -> tuple[str, str]:
    """A reading's review note, and where it may still decide: "absent" (only gaps that can
    narrow the concepts read), "present" (only alternatives an exclusion did not read) or
    "" (nowhere). No review mark may be there. ("", ""): it decides."""
    note = review_note(gaps, marks)
    if not note or marks:
        return note, ""
    if decides_only_absent(gaps, kind):
        return note, "absent"
    if decides_only_present(gaps, kind):
        return note, "present"
    return note, ""


# A review mark on one constraint of a reading ends with this: the others, read in full,
# may still decide ("Age > 18, female" against a registry admitting all sexes: the age).
OTHERS_DECIDE = "; the rest of the reading still decides"


def deciding_parts(
    gaps: Sequence[str], marks: Sequence[str], parts: Sequence[int]
) -> tuple[int, ...]:
    """The constraints that may decide on their own: beside gaps, or beside marks that each
    concern one constraint only (``OTHERS_DECIDE``), never beside a mark on the whole."""
    if not parts or any(not mark.endswith(OTHERS_DECIDE) for mark in marks):
        return ()
    return tuple(parts) if gaps or marks else ()


__all__ = [
    "OTHERS_DECIDE",
    "Coverage",
    "coverage",
    "decides_only_absent",
    "decides_only_present",
    "deciding_parts",
    "reading_review",
    "review_note",
]
