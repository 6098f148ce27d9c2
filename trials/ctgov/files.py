"""Study records read from files: what ``sync_trials --from PATH`` accepts.

A file holds one API v2 study object, an API page ``{"studies": [...]}``, or a JSON array of
studies (the website's "Download JSON"); ``.gz`` files are read transparently; a directory
means every ``.json`` / ``.json.gz`` file in it, in name order. Arrays are decoded one element
at a time from a rolling buffer, so a large download never sits in memory whole.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson

READ_SIZE = 1 << 22  # characters read at a time from an array file
WHITESPACE = " \t\r\n"
WHITESPACE_AND_COMMAS = WHITESPACE + ","
RECORD_START = '{"protocolSection":'
_UNDECODED = object()

NEXT_RECORD = re.compile(r',\s*(?=\{\s*"protocolSection"\s*:)')


class RecordFileError(Exception):
    """A path (or what is left of a file after some records) cannot be read.

    The message says why, without the path: the caller reports which path it was.
    """


@dataclass(frozen=True)
class FileRecord:
    path: Path
    index: int
    study: Any  # None when the caller already knows the record (see ``known``)
    source_hash: str | None = None  # SHA-256 of the element's text, when it was read alone


def record_files(path: Path) -> list[Path]:
    """The files a path stands for; raises RecordFileError when there are none."""
    if path.is_dir():
        files = sorted(
            p for p in path.rglob("*") if p.is_file() and p.name.endswith((".json", ".json.gz"))
        )
        if not files:
            raise RecordFileError("no .json or .json.gz files in this folder")
        return files
    if path.is_file():
        return [path]
    raise RecordFileError("no such file or folder")


def iter_file_studies(
    path: Path, *, known: Callable[[str], bool] | None = None
) -> Iterator[FileRecord]:
    """Every study in one file; RecordFileError (after the good ones) when it is unreadable.

    ``known(source_hash)`` tells which element texts the caller already holds byte for byte:
    those are not decoded (their ``study`` is None). A byte-identical text was decoded and
    checked when it was first stored, so it is exactly one valid element.
    """
    count = 0
    try:
        with _open(path) as stream:
            for study, source_hash in _studies(stream, known):
                yield FileRecord(path, count, study, source_hash)
                count += 1
    except (OSError, EOFError, ValueError, zlib.error) as exc:  # bad gzip, JSON, UTF-8
        where = f" after {count} record(s)" if count else ""
        raise RecordFileError(f"not readable JSON{where} ({_describe(exc)})") from None
    except RecursionError:
        where = f" after {count} record(s)" if count else ""
        raise RecordFileError(f"not readable JSON{where} (nested too deeply)") from None


def _open(path: Path) -> IO[str]:
    if path.name.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8-sig")
    return path.open(encoding="utf-8-sig")


def _studies(
    stream: IO[str], known: Callable[[str], bool] | None
) -> Iterator[tuple[Any, str | None]]:
    buffer = stream.read(READ_SIZE)
    start = len(buffer) - len(buffer.lstrip())
    first = buffer[start : start + 1]
    if first == "[":
        yield from _array_items(stream, buffer, start + 1, known)
    elif first == "{":
        top = json.loads(buffer + stream.read())
        if "protocolSection" not in top and isinstance(top.get("studies"), list):
            for study in top["studies"]:
                yield study, None
        else:
            yield top, None
    elif first == "":
        raise RecordFileError("the file is empty")
    else:
        raise RecordFileError("not JSON: expected a study object, a page or an array")


def _array_items(
    stream: IO[str], buffer: str, position: int, known: Callable[[str], bool] | None
) -> Iterator[tuple[Any, str | None]]:
    """The elements of a top-level array, one by one, each with the hash of its text.

    Fast path: registry records begin with ``{"protocolSection":``, a text that cannot occur
    inside a JSON string (its quotes would be escaped), so the span up to the comma before the
    next one is taken as a whole element: skipped undecoded when ``known``, else decoded with
    orjson. orjson accepts only one complete value, and an object is complete only at its own
    closing brace, so an accepted span is exactly the element. Anything else (the last element,
    odd files) goes through the standard decoder, which also says where the element ends. An
    element cut by the end of the buffer is tried again once more text is read; only at the
    end of the file is a failure final.
    """
    decoder = json.JSONDecoder()
    at_end = False
    while True:
        while position < len(buffer) and buffer[position] in WHITESPACE_AND_COMMAS:
            position += 1
        if position < len(buffer) and buffer[position] == "]":
            return
        boundary = _next_record(buffer, position)
        if boundary is not None:
            text = buffer[position:boundary]
            source_hash = _text_hash(text)
            item = None if known and known(source_hash) else _decode_whole(text)
            if item is not _UNDECODED:
                yield item, source_hash
                position = boundary
                if position > READ_SIZE:
                    buffer, position = buffer[position:], 0
                continue
        elif not at_end:
            buffer, position, at_end = _read_more(stream, buffer, position)
            continue
        try:
            item, end = decoder.raw_decode(buffer, position)
        except json.JSONDecodeError:
            if at_end:
                raise
            buffer, position, at_end = _read_more(stream, buffer, position)
            continue
        yield item, _text_hash(buffer[position:end])
        position = end


def _read_more(stream: IO[str], buffer: str, position: int) -> tuple[str, int, bool]:
    """The unread part of the buffer plus the next block; and whether the file has ended."""
    more = stream.read(READ_SIZE)
    return buffer[position:] + more, 0, not more


def _decode_whole(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return _UNDECODED


def _text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _next_record(buffer: str, position: int) -> int | None:
    """Index of the comma before the next ``{"protocolSection":`` after ``position``."""
    start = buffer.find(RECORD_START, position + 1)
    while start != -1:
        comma = start - 1
        while comma > position and buffer[comma] in WHITESPACE:
            comma -= 1
        if buffer[comma] == ",":
            return comma
        start = buffer.find(RECORD_START, start + 1)
    match = NEXT_RECORD.search(buffer, position)  # spaced out: '{ "protocolSection" :'
    return match.start() if match else None


def _describe(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text[:200]
