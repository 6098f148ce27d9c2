"""The sentence structure of one criterion, read before its concepts.

A small grammar of our own (see docs/reading-model.md for why not a general parser): a
criterion is cut into sentences, each sentence into clauses, and every clause gets a role:

- ``main``: what the criterion requires or excludes;
- ``condition``: when the rest applies ("if liver metastases", "for patients with", "when");
- ``exception``: what the rest does not cover ("except", "other than", "excluding", "unless");
- ``allowance``: who is admitted after all ("... are eligible", "is allowed", "may have received");
- ``remark``: a note or a procedure ("Note: ...", "will be excluded", "must be performed");
- ``scope``: a time or setting that is not the patient's past ("while on study", "during the
  study", "at any time during treatment");
- ``example``: an illustration of the words before it ("(e.g. ...)", "such as ...").

Each clause keeps its exact span of the normalised text, the words that gave it its role
(``marker``), and the main clauses record how they are coordinated: ``or`` (and "and/or",
"either ... or") between them is an alternative, never silently a conjunction. The concept
readers (``extract``) read the text; ``coverage`` then checks that every meaning-bearing word
is accounted for by what they read, clause by clause. Grammar words are data:
``data/reading.json`` ("markers").
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from trials.eligibility.text import mentions

DATA = Path(__file__).resolve().parent / "data" / "reading.json"


class Role(StrEnum):
    MAIN = "main"
    CONDITION = "condition"
    EXCEPTION = "exception"
    ALLOWANCE = "allowance"
    REMARK = "remark"
    SCOPE = "scope"
    EXAMPLE = "example"


@dataclass(frozen=True, slots=True)
class Clause:
    start: int
    end: int
    role: Role
    marker: str = ""  # the words that gave the clause its role

    def text(self, source: str) -> str:
        return source[self.start : self.end]


@dataclass(frozen=True, slots=True)
class Structure:
    text: str
    clauses: tuple[Clause, ...]


@functools.cache
def reading_data() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DATA.read_text())
    return data


def _alternation(words: list[str]) -> str:
    ordered = sorted(words, key=len, reverse=True)
    return "|".join(re.escape(word).replace(r"\ ", r",?\s+") for word in ordered)


@functools.cache
def _patterns() -> dict[str, re.Pattern[str]]:
    markers = reading_data()["markers"]
    return {
        # A clause that starts at one of these words and runs to the clause's end.
        "condition": re.compile(rf"(?<![\w-])(?:{_alternation(markers['condition'])})\b", re.I),
        "exception": re.compile(rf"(?<![\w-])(?:{_alternation(markers['exception'])})\b", re.I),
        "scope": re.compile(rf"(?<![\w-])(?:{_alternation(markers['scope'])})\b", re.I),
        "example": re.compile(rf"(?<![\w-])(?:{_alternation(markers['example'])})(?![\w-])", re.I),
        # A whole sentence (or parenthesis) that admits, or that only remarks.
        "allowance": re.compile(rf"(?<![\w-])(?:{_alternation(markers['allowance'])})\b", re.I),
        "remark": re.compile(rf"(?<![\w-])(?:{_alternation(markers['remark'])})\b", re.I),
        # When a value is taken, not a condition of it ("when ICF is signed").
        "timing": re.compile(rf"(?<![\w-])(?:{_alternation(markers['timing'])})\b", re.I),
        "remark_start": re.compile(rf"^\W*(?:{_alternation(markers['remark_start'])})\b", re.I),
    }


# A sentence ends at ". " before a capital or a digit, at ";" and at " - " lists; decimal
# points, "e.g." and "i.e." do not end one.
_SENTENCE_END = re.compile(r"(?<!\be\.g)(?<!\bi\.e)(?<![A-Z])\.(?=\s+[A-Z(\d])|;")
_CLAUSE_END = re.compile(r"[,;:)]|\.(?=\s)|\bor\b(?=\s+(?:if|when|unless)\b)", re.I)


_NOTE = re.compile(r"\b(?:note|nb|n\.b\.)\s*:", re.I)


def parse_structure(text: str) -> Structure:
    """The clauses of a normalised criterion, with their roles."""
    return _parse(text)


@functools.lru_cache(maxsize=8192)
def _parse(text: str) -> Structure:
    patterns = _patterns()
    clauses: list[Clause] = []
    for start, end in _sentences(text):
        sentence = text[start:end]
        # A parenthesis speaks for itself: "Hb >= 9 g/dL (transfusion is permitted)" is a
        # requirement with an allowance inside, not an allowance.
        role, marker = _sentence_role(_blank_parentheses(sentence), first=start == 0)
        if role is not Role.MAIN:
            clauses.append(Clause(start, end, role, marker))
            if role is Role.EXCEPTION:
                # "Exceptions include in situ cancers of any type (e.g. bladder, colon)": the
                # examples of an exception list are examples too.
                for match in patterns["example"].finditer(sentence):
                    at = start + match.start()
                    stop = _clause_stop(text, start + match.end(), end, Role.EXAMPLE)
                    clauses.append(Clause(at, stop, Role.EXAMPLE, match.group(0)))
            continue
        clauses.append(Clause(start, end, Role.MAIN))
        for open_at, close_at in _parentheses(sentence):
            inner = sentence[open_at + 1 : close_at]
            inner_role, inner_marker = _sentence_role(inner, first=False)
            if inner_role is Role.MAIN:
                example = patterns["example"].match(inner.lstrip())
                if example:
                    inner_role, inner_marker = Role.EXAMPLE, example.group(0)
            if inner_role is not Role.MAIN:
                clauses.append(
                    Clause(start + open_at, start + close_at + 1, inner_role, inner_marker)
                )
        note = _NOTE.search(sentence)
        if note and note.start() > 0:
            # "... meningitis* NOTE: *Baseline MRI required if ...": a note to the end.
            clauses.append(Clause(start + note.start(), end, Role.REMARK, "note"))
        # "including but not limited to": its "but not" opens examples, not an exception.
        openers = (
            [(m.start(), m.end()) for m in patterns["example"].finditer(sentence)]
            if mentions(sentence, _gate("example"))
            else []
        )
        for name, role_of in (
            ("exception", Role.EXCEPTION),
            ("condition", Role.CONDITION),
            ("scope", Role.SCOPE),
            ("example", Role.EXAMPLE),
        ):
            if not mentions(sentence, _gate(name)):
                continue
            for match in patterns[name].finditer(sentence):
                at = start + match.start()
                if any(c.start <= at < c.end and c.role is not Role.MAIN for c in clauses):
                    continue
                if role_of is not Role.EXAMPLE and any(a < match.start() < b for a, b in openers):
                    continue
                if patterns["timing"].match(text, at):
                    continue
                stop = _clause_stop(text, start + match.end(), end, role_of)
                clauses.append(Clause(at, stop, role_of, match.group(0)))
    clauses.sort(key=lambda clause: (clause.start, -clause.end))
    return Structure(text, tuple(clauses))


@functools.cache
def _gate(name: str) -> tuple[str, ...]:
    """A word every marker of the kind holds (its longest): a substring test that rules
    most sentences out before the pattern runs."""
    markers = reading_data()["markers"][name]
    return tuple({max(marker.lower().split(), key=len) for marker in markers})


def _sentence_role(sentence: str, *, first: bool) -> tuple[Role, str]:
    """A sentence or parenthesis as a whole: an allowance or a remark, else main."""
    patterns = _patterns()
    remark = patterns["remark_start"].match(sentence) or (
        mentions(sentence, _gate("remark")) and patterns["remark"].search(sentence)
    )
    if remark:
        return Role.REMARK, remark.group(0).strip(" (:")
    allowance = mentions(sentence, _gate("allowance")) and patterns["allowance"].search(sentence)
    if allowance:
        return Role.ALLOWANCE, allowance.group(0)
    if not first:
        stripped = sentence.lstrip(" (")
        for name, role in (("exception", Role.EXCEPTION), ("condition", Role.CONDITION)):
            match = patterns[name].match(stripped)
            if match:
                return role, match.group(0)
    return Role.MAIN, ""


def _clause_stop(text: str, position: int, limit: int, role: Role) -> int:
    """Where a clause opened by a marker ends: the end of its parenthesis or sentence; an
    exception list or a scope also runs on through commas."""
    depth = 0
    for index in range(position, limit):
        char = text[index]
        if char == "(":
            depth += 1
        elif char == ")":
            if depth == 0:
                return index
            depth -= 1
        elif (depth == 0 and char == ";") or (
            depth == 0
            and char == ","
            and role in (Role.CONDITION, Role.EXAMPLE)
            and not _list_goes_on(text, index + 1, limit)
        ):
            return index
    return limit


def _list_goes_on(text: str, position: int, limit: int) -> bool:
    """After a comma: one more item of the same list ("a, b or c"), not a new clause."""
    rest = text[position:limit]
    return bool(
        re.match(
            r"\s*(?:(?:or|and)\s+)?[\w/-]+(?:\s+[\w/-]+){0,3}\s*(?:,|\bor\b|\band\b|\)|$)", rest
        )
    )


@functools.lru_cache(maxsize=4096)
def sentence_spans(text: str) -> tuple[tuple[int, int], ...]:
    """The sentences of a normalised criterion as (start, end) positions."""
    return tuple(_sentences(text))


def _sentences(text: str) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    start = 0
    depth = 0
    for index, char in enumerate(text):
        if char == "(":
            depth += 1
        elif char == ")":
            depth = max(0, depth - 1)
        elif depth == 0 and char in ".;" and _SENTENCE_END.match(text, index):
            spans.append((start, index + 1))
            start = index + 1
    if text[start:].strip():
        spans.append((start, len(text)))
    # Leading spaces are not part of a sentence.
    return [(a + len(text[a:b]) - len(text[a:b].lstrip()), b) for a, b in spans if a < b]


def _blank_parentheses(sentence: str) -> str:
    chars = list(sentence)
    for open_at, close_at in _parentheses(sentence):
        for index in range(open_at, close_at + 1):
            chars[index] = " "
    return "".join(chars)


def _parentheses(sentence: str) -> list[tuple[int, int]]:
    """Top-level parentheses of a sentence as (open, close) positions."""
    found: list[tuple[int, int]] = []
    stack: list[int] = []
    for index, char in enumerate(sentence):
        if char == "(":
            stack.append(index)
        elif char == ")" and stack:
            opened = stack.pop()
            if not stack:
                found.append((opened, index))
    return found


def timing_spans(text: str) -> list[tuple[int, int]]:
    """Phrases that say when a value is taken ("at the time of signing informed consent")."""
    found = []
    for match in _patterns()["timing"].finditer(text):
        tail = re.match(r"(?:\s+[\w-]+){0,4}", text[match.end() :])
        found.append((match.start(), match.end() + (tail.end() if tail else 0)))
    return found


_HEADING_SCOPE = re.compile(
    r"\b(?:(?:one|any|either|at\s+least\s+one)\s+of\s+the\s+following|either|cohorts?\s*\w*|"
    r"arms?\s+[a-z0-9]\b|parts?\s+[a-z0-9]\b|phase\s+(?:[0-9]|i{1,3}\b)|groups?\s+[a-z0-9]\b|"
    r"(?:for|in)\s+(?:patients|subjects|participants|those)\s+(?:with|who)|only\s+(?:for|in)|"
    r"(?:control|experimental|treatment|expansion|escalation)\s+(?:group|arm|cohort|part|phase))",
    re.I,
)


# "Exclusion criteria for the cirrhosis and chronic liver disease groups:"
_GROUP_HEADING = re.compile(
    r"\bcriteria\s+for\s+(?:the\s+)?(?!(?:all|both|every|each)\b)(?:[\w-]+\s+){1,6}?"
    r"(?:groups?|cohorts?|arms?|parts?|populations?)\b",
    re.I,
)


@functools.lru_cache(maxsize=2048)
def group_scope(heading: str) -> str:
    """The group an exclusion heading names ("Exclusion criteria for the cirrhosis
    groups:"): its items exclude only that group's members, "" when it names none. (Under
    an inclusion heading, a group's items are what its members must meet.)"""
    found = _GROUP_HEADING.search(heading or "")
    return " ".join(found.group(0).lower().split()) if found else ""


@functools.lru_cache(maxsize=2048)
def heading_scope(heading: str) -> str:
    """What a heading says of the items under it beyond "all of these": a condition ("For
    patients with HBV ... if:"), an allowance, a population ("Cohort E2:", "Part 2 only"),
    or alternatives ("one of the following"). "" for a plain heading ("Adequate organ
    function:"), whose items hold as they stand."""
    if not heading:
        return ""
    scope = _HEADING_SCOPE.search(heading)
    if not scope and _PLAIN_HEADING.search(heading):
        return ""  # "eligible only if all of the following criteria apply:"
    structure = parse_structure(heading)
    for clause in structure.clauses:
        if clause.role not in (Role.MAIN, Role.EXAMPLE):
            return f"{clause.role.value}: {clause.marker.lower()}"
    if scope:
        return " ".join(scope.group(0).lower().split())
    return ""


_PLAIN_HEADING = re.compile(
    r"\ball\s+(?:of\s+)?the\s+following\b|\bthe\s+following\s+(?:criteria|conditions|requirements)"
    r"\s+(?:must\s+be\s+met|apply)|\bmust\s+(?:meet|fulfil+|satisfy)\s+(?:all|each)\b",
    re.I,
)


def qualifies_previous(sentence: str) -> bool:
    """Does a sentence only qualify the one before it (an allowance, a condition, an
    exception, a remark)? The segmenter keeps such a sentence with its criterion."""
    role, _ = _sentence_role(sentence, first=False)
    return role is not Role.MAIN


__all__ = [
    "Clause",
    "Role",
    "Structure",
    "group_scope",
    "heading_scope",
    "parse_structure",
    "qualifies_previous",
    "reading_data",
    "timing_spans",
]
