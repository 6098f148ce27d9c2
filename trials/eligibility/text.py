"""Eligibility text made regular for reading: one spelling for comparators, numbers, symbols.

Only for interpretation: criteria keep their exact source text and position; this module
produces the copy the extractors read (``normalize``), and small readers of numbers and
comparators shared by them.
"""

from __future__ import annotations

import html
import re
import unicodedata
from functools import lru_cache

# Markdown escapes CT.gov puts before symbols: "\>=", "\<", "\*".
_ESCAPE = re.compile(r"\\([<>=*_\-\[\]()#+.|~^])")
_TIMES_POWER = re.compile(r"\btimes\s+10(?=\s*\^)", re.IGNORECASE)
_PER_MINUTE = re.compile(r"/minutes?\b", re.IGNORECASE)
_SLASH_SPACES = re.compile(r"(?<=\S)\s*/\s+|\s+/\s*(?=\S)")
_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200b\u3000]+")
# Longest first: "greater than or equal to" before "greater than".
_COMPARATOR_WORDS: tuple[tuple[str, str], ...] = (
    (r"greater\s+than\s+(?:or\s+)?equal(?:\s+to)?", ">="),
    (r"greater\s+than\s*/\s*equal(?:\s+to)?", ">="),
    (r"more\s+than\s+or\s+equal(?:\s+to)?", ">="),
    (r"higher\s+than\s+or\s+equal(?:\s+to)?", ">="),
    (r"equal\s+to\s+or\s+(?:greater|more|higher)\s+than", ">="),
    (r"less\s+than\s+(?:or\s+)?equal(?:\s+to)?", "<="),
    (r"less\s+than\s*/\s*equal(?:\s+to)?", "<="),
    (r"lower\s+than\s+or\s+equal(?:\s+to)?", "<="),
    (r"equal\s+to\s+or\s+(?:less|lower)\s+than", "<="),
    (r"(?:no|not)\s+(?:less|lower|fewer)\s+than", ">="),
    (r"(?:no|not)\s+(?:more|greater|higher)\s+than", "<="),
    (r"not\s+(?:exceeding|to\s+exceed|above)", "<="),
    (r"at\s+least", ">="),
    (r"a\s+minimum\s+of", ">="),
    (r"minimum(?:\s+of)?", ">="),
    (r"at\s+most", "<="),
    (r"a\s+maximum\s+of", "<="),
    (r"maximum(?:\s+of)?", "<="),
    (r"up\s+to", "<="),
    (r"older\s+than", ">"),
    (r"younger\s+than", "<"),
    (r"greater\s+than", ">"),
    (r"more\s+than", ">"),
    (r"higher\s+than", ">"),
    (r"exceeding", ">"),
    (r"above", ">"),
    (r"over", ">"),
    (r"less\s+than", "<"),
    (r"lower\s+than", "<"),
    (r"fewer\s+than", "<"),
    (r"below", "<"),
    (r"under", "<"),
)
# Words become symbols only before a number: "over 18 years", not "over the study period".
_COMPARATOR_WORD = re.compile(
    r"\b(?:"
    + "|".join(f"(?P<w{i}>{p})" for i, (p, _) in enumerate(_COMPARATOR_WORDS))
    + r")\b(?=\s*\(?\s*\d)",
    re.IGNORECASE,
)
_SYMBOLS = (
    ("≥", ">="),
    ("≧", ">="),
    ("⩾", ">="),
    ("≤", "<="),
    ("≦", "<="),
    ("⩽", "<="),
    ("=>", ">="),
    ("=<", "<="),
    ("> =", ">="),
    ("< =", "<="),
    ("> or =", ">="),
    ("< or =", "<="),
    (">/=", ">="),
    ("</=", "<="),
    ("＞", ">"),
    ("＜", "<"),
    ("–", "-"),
    ("—", "-"),
    ("‐", "-"),
    ("‑", "-"),
    ("−", "-"),
    ("～", "-"),
    ("~", "-"),
    ("’", "'"),
    ("“", '"'),
    ("”", '"'),
    ("μ", "u"),
    ("µ", "u"),
    ("㎣", "mm3"),
    ("³", "3"),
    ("²", "2"),
    ("⁹", "9"),
    ("×", " x "),
    ("，", ", "),
    ("；", "; "),
    ("：", ": "),
    ("（", " ("),
    ("）", ") "),
)


_ASCII_SYMBOLS = tuple((old, new) for old, new in _SYMBOLS if old.isascii())


@lru_cache(maxsize=4096)
@lru_cache(maxsize=256)
def _lower(text: str) -> str:
    return text.lower()


def mentions(text: str, words: tuple[str, ...]) -> bool:
    """Does the text contain any of these (lower-case) substrings, whatever its case? A gate
    far cheaper than a pattern, run before one."""
    lowered = _lower(text)
    for word in words:  # noqa: SIM110 -- a plain loop is measurably faster than any() here
        if word in lowered:
            return True
    return False


def normalize(text: str) -> str:
    """The reading copy of a criterion: NFKC, escapes removed, one comparator spelling
    (``>=``, ``<=``, ``>``, ``<``), ASCII dashes and micro, single spaces."""
    if "&" in text:
        text = html.unescape(text)  # "&lt;25 ml/min": an HTML escape left in the record
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
    if "\\" in text:
        text = _ESCAPE.sub(r"\1", text)
    symbols = _SYMBOLS if not text.isascii() else _ASCII_SYMBOLS
    for old, new in symbols:
        if old in text:
            text = text.replace(old, new)
    lowered = text.lower()
    if any(word in lowered for word in _COMPARATOR_HINTS):
        text = _COMPARATOR_WORD.sub(_comparator_symbol, text)
    if "/" in text:
        text = _SLASH_SPACES.sub("/", text)
        if "/min" in lowered:
            text = _PER_MINUTE.sub("/min", text)
    if "times" in lowered:
        text = _TIMES_POWER.sub("x 10", text)
    if "  " not in text and "\t" not in text and text.isascii():
        return text.strip()
    return _SPACES.sub(" ", text).strip()


_COMPARATOR_HINTS = (
    "than",
    "least",
    "most",
    "imum",
    "up to",
    "over",
    "under",
    "above",
    "below",
    "exceed",
    "equal",
)


def _comparator_symbol(match: re.Match[str]) -> str:
    for name, value in match.groupdict().items():
        if value is not None:
            return f" {_COMPARATOR_WORDS[int(name[1:])][1]} "
    return match.group(0)  # pragma: no cover - one group always matches


_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


def parse_number(text: str, *, thousands_dot: bool = False) -> float | None:
    """``1,500`` -> 1500; ``1,5`` -> 1.5; ``100.000`` -> 100000 when ``thousands_dot`` (cell
    counts per mm3, written the European way); ``1.5`` -> 1.5."""
    text = text.strip()
    if not _NUMBER.fullmatch(text):
        return None
    if "," in text:
        groups = text.split(",")
        if all(len(group) == 3 for group in groups[1:]) and "." not in groups[-1]:
            text = text.replace(",", "")
        elif len(groups) == 2 and "." not in text:
            text = text.replace(",", ".")
        else:
            text = text.replace(",", "")
    if thousands_dot and text.count(".") >= 1:
        groups = text.split(".")
        if all(len(group) == 3 for group in groups[1:]):
            text = text.replace(".", "")
    try:
        return float(text)
    except ValueError:
        return None


def clean_item(text: str) -> str:
    """An item's text without trailing punctuation and spaces, for display and matching."""
    return text.strip().rstrip(";,.").strip()


WORD_NUMBERS = {
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "twelve": 12,
}
