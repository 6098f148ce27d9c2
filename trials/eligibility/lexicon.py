"""The parser's vocabulary (``data/lexicon.json``) as compiled patterns, loaded once."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parent / "data" / "lexicon.json"


@cache
def lexicon() -> dict[str, Any]:
    return json.loads(DATA.read_text())


_END, _OPEN_END = "", "*"


def words_pattern(words: list[str]) -> str:
    """One pattern for whole words; a trailing ``*`` allows any word ending.

    The alternatives are factored into a character trie ("metasta(?:sis|ses|tic)" rather than
    three words side by side): the regular-expression engine tries alternatives one by one at
    every position, so a factored pattern reads a criterion several times faster.

    A word written with capitals matches in exactly that case, even in a pattern compiled to
    ignore case: "PT" is prothrombin time, "pt" a patient and "pT" a pathological T stage.
    """
    trie: dict[str, dict] = {}
    exact_case: list[str] = []
    for word in words:
        if word != word.lower():
            exact_case.append(word)
            continue
        node = trie
        for char in word.rstrip("*"):
            node = node.setdefault(" " if char == " " else char, {})
        node[_OPEN_END if word.endswith("*") else _END] = {}
    branches = [_emit(trie)] if trie else []
    branches += [f"(?-i:{_emit_word(word)})" for word in sorted(exact_case, key=len, reverse=True)]
    return r"(?<![\w-])(?:" + "|".join(branches) + r")(?![\w])"


def _emit_word(word: str) -> str:
    """One word on its own, spelled as the trie spells it (spaces, open ending)."""
    stem = word.rstrip("*")
    pattern = r"[\s-]+".join(re.escape(part) for part in stem.split(" "))
    return pattern + (r"[\w-]*" if word.endswith("*") else "")


def _emit(node: dict[str, dict]) -> str:
    branches = []
    for char in sorted(key for key in node if key not in (_END, _OPEN_END)):
        edge = r"[\s-]+" if char == " " else re.escape(char)
        branches.append(edge + _emit(node[char]))
    if _OPEN_END in node:
        branches.append(r"[\w-]*")
    if _END in node:
        branches.append("")
    if len(branches) == 1:
        return branches[0]
    return "(?:" + "|".join(branches) + ")"


@cache
def concept_patterns(group: str) -> dict[str, re.Pattern[str]]:
    """For a lexicon group (``"comorbidities"`` ...), one compiled pattern per concept."""
    return {
        name: re.compile(words_pattern(words), re.IGNORECASE)
        for name, words in lexicon()[group].items()
    }


class GroupMatcher:
    """Finds the words of every concept of a lexicon group in one pass, naming the concept.

    All the group's words go into one factored pattern (the longest word wins at a place);
    the concept of a match is then looked up by its spelling.
    """

    def __init__(self, concepts: dict[str, list[str]]) -> None:
        self.exact: dict[str, tuple[str, ...]] = {}
        self.prefixes: list[tuple[str, str]] = []
        for concept, words in concepts.items():
            for word in words:
                key = _spelling(word.rstrip("*"))
                if word.endswith("*"):
                    self.prefixes.append((key, concept))
                elif concept not in self.exact.get(key, ()):
                    self.exact[key] = (*self.exact.get(key, ()), concept)
        self.prefixes.sort(key=lambda item: len(item[0]), reverse=True)
        every = [word for words in concepts.values() for word in words]
        self.pattern = re.compile(words_pattern(every), re.IGNORECASE)
        self._seen: dict[str, tuple[str, ...]] = {}  # matched spelling -> concepts

    def concepts(self, matched: str) -> tuple[str, ...]:
        """Every concept a matched word belongs to ("chemoradiotherapy": two)."""
        known = self._seen.get(matched)
        if known is not None:
            return known
        key = _spelling(matched)
        found = list(self.exact.get(key, ()))
        for prefix, concept in self.prefixes:
            if key.startswith(prefix) and concept not in found:
                found.append(concept)
        if len(self._seen) < 50_000:  # the words of real text are few; bound it all the same
            self._seen[matched] = tuple(found)
        return tuple(found)

    def concept(self, matched: str) -> str:
        return self.concepts(matched)[0]

    def finditer(self, text: str) -> Iterator[tuple[int, int, str]]:
        for match in self.pattern.finditer(text):
            yield match.start(), match.end(), self.concept(match.group(0))

    def search(self, text: str) -> tuple[int, int, str] | None:
        match = self.pattern.search(text)
        return (match.start(), match.end(), self.concept(match.group(0))) if match else None


_SPELLING = re.compile(r"[\s-]+")


def _spelling(word: str) -> str:
    return _SPELLING.sub(" ", word.lower()).strip()


@cache
def group_matcher(group: str, only: tuple[str, ...] | None = None) -> GroupMatcher:
    concepts = lexicon()[group]
    if only is not None:
        concepts = {name: concepts[name] for name in only}
    return GroupMatcher(concepts)


@cache
def list_pattern(name: str) -> re.Pattern[str]:
    return re.compile(words_pattern(lexicon()[name]), re.IGNORECASE)


# Words that name autoimmune disease in general, not one disease.
GENERIC_AUTOIMMUNE = re.compile(r"auto-?immun|immune[-\s]mediated", re.I)
