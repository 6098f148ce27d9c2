"""Eligibility text cut into criteria: sections, items, sub-items, each with its exact span.

Real records come in many shapes (see the corpus): "Inclusion Criteria:" / "Key Exclusion
Criteria:" headings, the older NCI layout (DISEASE CHARACTERISTICS: ... with "Hepatic:"
sub-headings, sometimes all on one line), ``*`` and ``-`` bullets indented for sub-items,
numbered items (``1.``, ``1)``, ``(1)``, ``（1）``), numbered items run together on one line,
lab lists separated by semicolons, and text with no headings at all. Whatever the shape, every
segment's ``start:end`` is a span of the original text, so the criterion's source text is
exactly what the record says.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

from trials.eligibility.structure import qualifies_previous

INCLUSION, EXCLUSION = "inclusion", "exclusion"

_HEADING = re.compile(
    r"(?im)(?:^|(?<=[\s.;:]))[#*\s]*"
    r"(?:(?:key|main|major|general|additional|specific)\s+)?"
    r"(?P<kind>inclusion|exclusion|eligibility|non-?inclusion)\s+criteri(?:a|on)s?\b"
    r"(?:\s+(?:for|in|of)\s+[^:\n]{1,60}?)?[ \t*]*(?::|-(?=\s)|(?=\n)|$)"
)
_SHORT_HEADING = re.compile(r"(?im)^[ \t#*]*(?P<kind>inclusions?|exclusions?)[ \t*]*:")
_OLD_HEADING = re.compile(
    r"(?m)^[ \t]*(?P<old>DISEASE CHARACTERISTICS|PATIENT CHARACTERISTICS|"
    r"PRIOR CONCURRENT THERAPY)[ \t]*:?"
)
_MARKER = re.compile(
    r"(?:(?P<marker>[*\-+•·▪◦●○■□➢►✓]|o(?=\s)|"
    r"\(?\d{1,2}\s*[.)](?!\d)|\(\d{1,2}\)|\d{1,2}\s*、|"
    r"\(?[a-hj-z]\)|[a-hj-z]\.(?=\s)|\(?(?:i{1,3}|iv|v|vi{1,3}|ix|x)[.)](?=\s))"
    r"[ \t]+|(?P<wide>[（(]\d{1,2}[）)])[ \t]*)(?=\S)",
    re.IGNORECASE,
)
# Sub-headings of the older NCI layout, which may sit inline: "Age: 18 and over Hepatic: ..."
OLD_SUBHEADINGS = (
    "Age",
    "Sex",
    "Menopausal status",
    "Performance status",
    "Life expectancy",
    "Hematopoietic",
    "Hepatic",
    "Renal",
    "Cardiovascular",
    "Pulmonary",
    "Neurologic",
    "Gastrointestinal",
    "Immunologic",
    "Other",
    "Biologic therapy",
    "Chemotherapy",
    "Endocrine therapy",
    "Radiotherapy",
    "Surgery",
)
_OLD_SUBHEADING = re.compile(r"(?:^|(?<=\s))(?P<name>" + "|".join(OLD_SUBHEADINGS) + r"):(?=\s)")
_INLINE_NUMBER = re.compile(
    r"(?:^|(?<=[\s;.:]))(?:(?P<plain>\d{1,2})[.)、](?=\s*[A-Za-z(（])|"
    r"[（(](?P<paren>\d{1,2})[）)](?=\s*[A-Za-z])|"
    r"(?P<roman>i{1,3}|iv|vi{0,3}|ix|x)[.)](?=\s+[A-Z]))"
)
_ROMAN_VALUES = {
    "i": 1,
    "ii": 2,
    "iii": 3,
    "iv": 4,
    "v": 5,
    "vi": 6,
    "vii": 7,
    "viii": 8,
    "ix": 9,
    "x": 10,
}
_SENTENCE = re.compile(r"(?<=[a-z0-9)%])\.\s+(?=[A-Z])")
_ALTERNATIVE_START = re.compile(r"^\s*(?:or|and/or|nor|unless|except|but)\b", re.I)
_QUALIFIER = re.compile(
    r"^(?:note|this|these|such|that|it|they|except|exceptions?|however|in\s+addition|"
    r"e\.g|i\.e|for\s+example|palliative|if|unless|where|when|\w+(?:\s+\w+){0,6}\s+"
    r"(?:is|are)\s+(?:allowed|permitted|eligible|acceptable))\b",
    re.I,
)


@dataclass(frozen=True)
class Segment:
    """One criterion's place in the text."""

    kind: str  # inclusion / exclusion
    start: int
    end: int
    depth: int = 0
    parent: int | None = None  # index of the segment this one belongs to
    section: str = ""  # the heading it sits under, e.g. "PATIENT CHARACTERISTICS"
    header: bool = False  # introduces sub-items ("Adequate organ function:")


@dataclass
class _Draft:
    start: int
    end: int
    indent: int
    marked: bool
    parent: int | None = None
    depth: int = 0


def segment(text: str) -> list[Segment]:
    """Every criterion of ``text`` in order, as spans of it."""
    segments: list[Segment] = []
    for kind, section, start, end in _sections(text):
        _segment_section(text, start, end, kind, section, segments)
    return segments


def _sections(text: str) -> list[tuple[str, str, int, int]]:
    """(kind, heading, body start, body end) for each section, in order."""
    marks: list[tuple[int, int, str, str]] = []
    lowered = text.lower()
    headings = _HEADING.finditer(text) if "criteri" in lowered else ()
    for match in headings:
        word = match.group("kind").lower()
        kind = EXCLUSION if word.startswith(("exclusion", "non")) else INCLUSION
        marks.append((match.start(), match.end(), kind, match.group(0).strip(" \t\n*#:-")))
    for match in _SHORT_HEADING.finditer(text) if "clusion" in lowered else ():
        kind = EXCLUSION if match.group("kind").lower().startswith("exclusion") else INCLUSION
        marks.append((match.start(), match.end(), kind, match.group("kind")))
    old_layout = "CHARACTERISTICS" in text or "PRIOR CONCURRENT" in text
    for match in _OLD_HEADING.finditer(text) if old_layout else ():
        marks.append((match.start(), match.end(), INCLUSION, match.group("old")))
    marks.sort()
    sections: list[tuple[str, str, int, int]] = []
    position, kind, heading = 0, INCLUSION, ""
    for start, end, next_kind, next_heading in marks:
        if start < position:
            continue  # overlapping heading matches: the first wins
        sections.append((kind, heading, position, start))
        position, kind, heading = end, next_kind, next_heading
    sections.append((kind, heading, position, len(text)))
    return [section for section in sections if text[section[2] : section[3]].strip()]


def _lines(text: str, start: int, end: int) -> list[tuple[int, int]]:
    spans, position = [], start
    while position < end:
        newline = text.find("\n", position, end)
        stop = end if newline == -1 else newline
        spans.append((position, stop))
        position = stop + 1
    return spans


def _segment_section(
    text: str, start: int, end: int, kind: str, section: str, out: list[Segment]
) -> None:
    drafts: list[_Draft] = []
    current: _Draft | None = None
    blank_before = True
    for line_start, line_end in _lines(text, start, end):
        line = text[line_start:line_end]
        content = line.strip()
        if not content:
            blank_before = True
            continue
        indent = len(line) - len(line.lstrip(" \t"))
        match = _MARKER.match(line, indent)
        if match and not _is_number_not_marker(line, match):
            body = match.end()
            current = _Draft(line_start + body, line_end, indent, marked=True)
            drafts.append(current)
        elif current is not None and not blank_before:
            current.end = line_end  # a continuation line
        else:
            current = _Draft(line_start + indent, line_end, indent, marked=False)
            drafts.append(current)
        blank_before = False
    _nest(text, drafts)
    first_segment: dict[int, int] = {}  # draft index -> index of its first segment in ``out``
    parents = {draft.parent for draft in drafts}
    for index, draft in enumerate(drafts):
        parent = first_segment.get(draft.parent) if draft.parent is not None else None
        has_children = index in parents
        for piece_start, piece_end in _split_run_together(text, draft.start, draft.end):
            piece_start, piece_end = _trim(text, piece_start, piece_end)
            if piece_end <= piece_start:
                continue
            out.append(
                Segment(
                    kind=kind,
                    start=piece_start,
                    end=piece_end,
                    depth=draft.depth,
                    parent=parent,
                    section=section,
                    header=has_children and text[piece_start:piece_end].endswith(":"),
                )
            )
            first_segment.setdefault(index, len(out) - 1)


def _is_number_not_marker(line: str, match: re.Match[str]) -> bool:
    """``1.5 x ULN`` or ``18 years`` at the start of a line are values, not item numbers."""
    marker = match.group("marker") or ""
    following = line[match.end() : match.end() + 12].lower()
    return (marker[-1:] == "." and marker[:-1].isdigit() and following[:1].isdigit()) or (
        marker.isdigit() and following.startswith(("years", "year", "%"))
    )


def _nest(text: str, drafts: list[_Draft]) -> None:
    """Sub-items belong to the item above them: deeper-indented bullets, and the items that
    follow an unmarked line ending with ':' (a sub-heading such as "Hepatic:")."""
    stack: list[int] = []  # indices of open parents
    for index, draft in enumerate(drafts):
        while stack:
            parent = drafts[stack[-1]]
            if draft.marked and (draft.indent > parent.indent or not parent.marked):
                break
            if not draft.marked and not parent.marked:
                stack.pop()
                continue
            stack.pop()
        if stack:
            draft.parent = stack[-1]
            draft.depth = drafts[stack[-1]].depth + 1
        if text[draft.start : draft.end].rstrip().endswith(":"):
            stack.append(index)


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start] in " \t\n\r*":
        start += 1
    while end > start and text[end - 1] in " \t\n\r":
        end -= 1
    return start, end


def _split_run_together(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Several criteria written as one paragraph: inline numbering ("1. ... 2. ..."), the
    old layout's inline sub-headings ("Hepatic: ... Renal: ..."), or a list of values
    separated by semicolons ("ANC >= 1.5; platelets >= 100; ...")."""
    chunk = text[start:end]
    if len(chunk) < 40:
        return [(start, end)]
    numbered = _numbered_pieces(chunk)
    if numbered:
        return [(start + a, start + b) for a, b in numbered]
    headings = [m.start() for m in _OLD_SUBHEADING.finditer(chunk)] if ":" in chunk else []
    if len(headings) >= 2 or (headings and headings[0] > 0 and len(chunk) > 80):
        cuts = [0, *[h for h in headings if h > 0], len(chunk)]
        return [(start + a, start + b) for a, b in itertools.pairwise(cuts)]
    sentences = _sentences(chunk) if ". " in chunk else None
    if sentences:
        return [(start + a, start + b) for a, b in sentences]
    pieces = re.split(r"[;；]", chunk)
    if len(pieces) >= 2 and len(chunk) > 60 and chunk.count("(") == chunk.count(")"):
        substantial = [p for p in pieces if p.strip()]
        if len(substantial) >= 2 and (
            all(len(p.strip()) >= 25 for p in substantial)
            or (
                all(len(p.strip()) >= 12 for p in substantial)
                and sum(any(c.isdigit() for c in p) for p in substantial) >= 2
            )
        ):
            spans: list[tuple[int, int]] = []
            position = start
            for piece in pieces:
                if spans and (_ALTERNATIVE_START.match(piece) or qualifies_previous(piece)):
                    # "...; or <= 5 x ULN if liver metastases": the same criterion goes on.
                    spans[-1] = (spans[-1][0], position + len(piece))
                else:
                    spans.append((position, position + len(piece)))
                position += len(piece) + 1
            if len(spans) >= 2:
                return spans
    return [(start, end)]


def _numbered_pieces(chunk: str) -> list[tuple[int, int]] | None:
    """Pieces of ``1. a 2. b 3. c`` (or ``（2）… （3）…``): the longest run of consecutive
    numbers written inline, when it has at least two of them."""
    marks = [(match, _number(match)) for match in _INLINE_NUMBER.finditer(chunk)]
    chains: list[list[re.Match[str]]] = []
    for match, number in marks:
        previous = next(
            (chain for chain in reversed(chains) if _number(chain[-1]) == number - 1), None
        )
        chains.append([*previous, match] if previous else [match])
    best = max(chains, key=len, default=[])
    if len(best) < 2:
        return None
    pieces = []
    if chunk[: best[0].start()].strip():
        pieces.append((0, best[0].start()))
    for index, match in enumerate(best):
        stop = best[index + 1].start() if index + 1 < len(best) else len(chunk)
        pieces.append((match.end(), stop))
    return pieces


def _number(match: re.Match[str]) -> int:
    if match.group("roman"):
        return _ROMAN_VALUES[match.group("roman").lower()]
    return int(match.group("plain") or match.group("paren"))


def _sentences(chunk: str) -> list[tuple[int, int]] | None:
    """An unmarked paragraph of several full sentences, each a requirement of its own; a
    sentence that only qualifies the one before ("Note: ...", "... is allowed") stays with it."""
    cuts = [m.end() for m in _SENTENCE.finditer(chunk)]
    if not cuts:
        return None
    pieces: list[tuple[int, int]] = []
    start = 0
    for cut in [*cuts, len(chunk)]:
        sentence = chunk[start:cut]
        if pieces and (
            _QUALIFIER.match(sentence) or qualifies_previous(sentence) or cut - start < 30
        ):
            pieces[-1] = (pieces[-1][0], cut)
        else:
            pieces.append((start, cut))
        start = cut
    if len(pieces) < 2 or any(b - a < 30 for a, b in pieces):
        return None
    return pieces
