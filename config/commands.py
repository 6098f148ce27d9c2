"""What the export commands share: writing their documents to stdout or to a file."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO, TypeVar

from django.core.management.base import BaseCommand, CommandError

Documents = TypeVar("Documents")


def write_export(
    command: BaseCommand,
    write: Callable[[Documents, IO[str]], int],
    documents: Documents,
    output: Path | None,
    noun: str,
) -> None:
    """``write`` the documents to ``output``, or to stdout when None; on a file, report
    "Exported N <noun> to <output>." on stderr, and turn an unwritable path into a clear
    CommandError. A reader of stdout that stops early (e.g. ``head``) is not an error."""
    if output is None:
        command.stdout.ending = ""  # the writers end their own lines
        try:
            write(documents, command.stdout)  # type: ignore[arg-type]
        except BrokenPipeError:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return
    try:
        with output.open("w", encoding="utf-8", newline="") as stream:
            count = write(documents, stream)
    except OSError as exc:
        raise CommandError(f"Cannot write {output}: {exc.strerror}") from None
    command.stderr.write(f"Exported {count} {noun} to {output}.")
