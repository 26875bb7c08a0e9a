"""Reading an object's fields as the apiserver (or an older agent) wrote them: a field
that is missing or of another type reads as empty, never as an error."""

from __future__ import annotations

from collections.abc import Mapping


def mapping(value: object) -> Mapping[str, object]:
    return value if isinstance(value, Mapping) else {}


def integer(value: object) -> int:
    """An int, not a bool (JSON true counts nothing); anything else is 0."""
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
