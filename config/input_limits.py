"""Input that parses is not yet input that can be stored or evaluated: the rule, in one place.

PostgreSQL refuses text holding a NUL character and text that is not valid UTF-8 (a JSON
``"\\ud800"`` decodes to an unpaired surrogate, which has no UTF-8 form); a JSON document
nested thousands of levels deep exhausts the interpreter's stack in whatever walks it next;
``NaN`` and ``Infinity`` are not JSON and no stored number may be either. ``text_flaw``,
``json_flaw`` and ``loads`` say why such input is refused, naming where; ``stored_text_flaws``
applies the text rule to a model instance before it is written. ``config.input_edge`` applies
them to every request; the registry mapping and the file readers call them directly.
"""

from __future__ import annotations

import json
import math
import unicodedata
from typing import Any

from django.db import models

# Deeper than any FHIR Bundle, profile document or registry record this service reads (their
# deepest values sit about a dozen levels down), shallow enough for any recursive walk.
MAX_JSON_DEPTH = 64


def text_flaw(value: str) -> str | None:
    """Why ``value`` cannot be stored as text, or None."""
    if "\x00" in value:
        return "holds a NUL character"
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "holds an unpaired surrogate (not valid Unicode text)"
    return None


def json_flaw(document: Any, *, max_depth: int = MAX_JSON_DEPTH) -> str | None:
    """The first reason ``document`` (parsed JSON) is refused, naming where, or None."""
    stack: list[tuple[Any, str, int]] = [(document, "", 0)]
    while stack:
        value, where, depth = stack.pop()
        if depth > max_depth:
            return f"{where or 'the document'}: nested more than {max_depth} levels deep"
        if isinstance(value, str):
            flaw = text_flaw(value)
            if flaw:
                return f"{where or 'the document'}: text {flaw}"
        elif isinstance(value, float) and not math.isfinite(value):
            where = where or "the document"
            return f"{where}: a number that is not finite (NaN, Infinity or too large)"
        elif isinstance(value, dict):
            for key, item in value.items():
                flaw = text_flaw(key)
                if flaw:
                    return f"{where or 'the document'}: a key {flaw}"
                stack.append((item, f"{where}.{key}" if where else key, depth + 1))
        elif isinstance(value, list):
            stack.extend((item, f"{where}[{index}]", depth + 1) for index, item in enumerate(value))
    return None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def loads(data: str | bytes) -> Any:
    """``json.loads`` as strict JSON: ``NaN`` and ``Infinity`` refused, nesting bounded.

    Raises ValueError with a readable reason.
    """
    try:
        document = json.loads(data, parse_constant=_refuse_constant)
    except RecursionError:
        raise ValueError(f"nested more than {MAX_JSON_DEPTH} levels deep") from None
    flaw = json_flaw(document)
    if flaw:
        raise ValueError(flaw)
    return document


def stored_text_flaws(instance: models.Model) -> dict[str, str]:
    """Text fields of ``instance`` whose value cannot be stored, with the reason."""
    flaws = {}
    for field in instance._meta.concrete_fields:
        if isinstance(field, models.CharField | models.TextField):
            value = getattr(instance, field.attname)
            if isinstance(value, str):
                flaw = text_flaw(value)
                if flaw:
                    flaws[field.name] = flaw
    return flaws


# Characters nobody sees that change how the rest is shown or read: the bidi controls
# (U+202A-U+202E, U+2066-U+2069, U+200E, U+200F, U+061C), zero-width and other format
# characters (category Cf), control characters (Cc), line and paragraph separators, surrogates.
# The zero-width joiner and non-joiner stay between letters: Persian and Indic names are
# spelled with them.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_SPELLING_FORMAT_CHARACTERS = frozenset({"\u200c", "\u200d"})


def visible_text(value: str, *, spelling: bool = True) -> str:
    """``value`` without invisible characters: the ones that stand for a space (a tab, a line
    break) become one, the others go; then the ends are stripped. A zero-width joiner or
    non-joiner stays between two letters, where it is spelling, unless ``spelling`` is off
    (an email address, where it would only disguise the domain).

    They are removed silently rather than refused with an error: the person typing cannot see
    them (they come with pasted text, some keyboards or another system's export) so could not
    find what to remove, and what is kept is exactly the text they saw. Without them, a name
    or address can no longer show reversed or disguised in the workspace, in emails or in
    exports. The public form's fields and every patient write (``patients.services``) use it.
    """
    if value.isascii() and value.isprintable():
        return value.strip()
    kept: list[str] = []
    last = len(value) - 1
    for index, char in enumerate(value):
        if unicodedata.category(char) not in _INVISIBLE_CATEGORIES:
            kept.append(char)
        elif char.isspace():
            kept.append(" ")
        elif (
            spelling
            and char in _SPELLING_FORMAT_CHARACTERS
            and 0 < index < last
            and value[index - 1].isalpha()
            and value[index + 1].isalpha()
        ):
            kept.append(char)
    return "".join(kept).strip()
