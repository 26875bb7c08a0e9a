"""How the plugin prints: aligned tables with human units for people, or the same
facts as JSON or YAML for programs (-o)."""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping, Sequence
from typing import Protocol

import yaml

from imageprune.api import times
from imageprune.policy import durations, quantities

FORMATS = ("table", "json", "yaml")


class Stream(Protocol):
    """Where a command prints: stdout (imageprune.streams.Stdout) or stderr."""

    def write(self, text: str, /) -> int: ...

    def flush(self) -> None: ...


def dump(document: Mapping[str, object], output: str) -> str:
    if output == "yaml":
        return yaml.safe_dump(dict(document), sort_keys=False, allow_unicode=True)
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def table(rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell, two spaces apart, as kubectl prints."""
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    lines = ("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows)
    return "".join(line.rstrip() + "\n" for line in lines)


def size(count: int) -> str:
    return quantities.format_bytes(count)


def count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def ago(moment: datetime.datetime | None, now: datetime.datetime) -> str:
    return "never" if moment is None else durations.format_age(now - moment)


def moment(text: object) -> datetime.datetime | None:
    """An RFC 3339 field of an object, None when absent or unreadable (hand-edited)."""
    if not isinstance(text, str):
        return None
    try:
        return times.from_rfc3339(text)
    except ValueError:
        return None
