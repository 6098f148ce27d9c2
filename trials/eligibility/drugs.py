"""The drug vocabulary (``data/drugs.json``): generic names, classes, synonyms, RxNorm codes."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from trials.eligibility.lexicon import words_pattern

DATA = Path(__file__).resolve().parent / "data" / "drugs.json"


@dataclass(frozen=True)
class Drug:
    name: str
    category: str  # immunotherapy, targeted, chemotherapy, systemic_steroid, immunosuppressant
    drug_class: str
    synonyms: tuple[str, ...] = ()
    rxnorm: tuple[str, ...] = ()
    prednisone_factor: float | None = None


@cache
def drugs() -> dict[str, Drug]:
    entries = json.loads(DATA.read_text())
    return {
        name: Drug(
            name=name,
            category=entry["category"],
            drug_class=entry["class"],
            synonyms=tuple(entry.get("synonyms", ())),
            rxnorm=tuple(entry.get("rxnorm", ())),
            prednisone_factor=entry.get("prednisone_factor"),
        )
        for name, entry in entries.items()
        if not name.startswith("_")
    }


@cache
def _by_rxnorm() -> dict[str, Drug]:
    return {code: drug for drug in drugs().values() for code in drug.rxnorm}


_SPACING = re.compile(r"[\s-]+")


def _spelling(name: str) -> str:
    return _SPACING.sub(" ", name.lower()).strip()


@cache
def _name_pattern() -> tuple[re.Pattern[str], dict[str, Drug]]:
    """Every name and synonym in one trie-factored pattern (see ``lexicon.words_pattern``)."""
    names: dict[str, Drug] = {}
    for drug in drugs().values():
        for name in (drug.name, *drug.synonyms):
            names[_spelling(name)] = drug
    pattern = words_pattern(
        sorted({name.lower() for d in drugs().values() for name in (d.name, *d.synonyms)})
    )
    return re.compile(pattern, re.IGNORECASE), names


def drug_by_rxnorm(code: str) -> Drug | None:
    return _by_rxnorm().get(code.strip())


def find_drugs(text: str) -> list[Drug]:
    """Every known drug named in ``text``, in order of appearance, without repeats."""
    pattern, names = _name_pattern()
    found: dict[str, Drug] = {}
    for match in pattern.finditer(text):
        drug = names[_spelling(match.group(0))]
        found.setdefault(drug.name, drug)
    return list(found.values())
