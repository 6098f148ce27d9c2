"""CSV cells a spreadsheet would run as a formula are quoted (CSV injection).

Registry text, MRNs and names reach the exports as they were given; a cell starting with
``=``, ``+``, ``-``, ``@``, a tab or a carriage return is prefixed with ``'``, so a
spreadsheet shows it as text. Every CSV the service writes goes through ``cell`` / ``row``.
"""

from __future__ import annotations

from typing import Any

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def cell(value: Any) -> Any:
    """The value, quoted when a spreadsheet would run it."""
    if isinstance(value, str) and value[:1] in _FORMULA_STARTS:
        return "'" + value
    return value


def row(values: dict[str, Any]) -> dict[str, Any]:
    """Each cell of a CSV row made safe."""
    return {key: cell(value) for key, value in values.items()}
