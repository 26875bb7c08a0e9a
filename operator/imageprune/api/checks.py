"""Checks the API's parsers share; each raises selection.PolicyError naming the field."""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping
from typing import TypeVar

from imageprune.policy import selection

_Choice = TypeVar("_Choice", bound=enum.StrEnum)


def choice(kind: type[_Choice], value: object, path: str) -> _Choice:
    """The member of `kind` whose value `value` is."""
    try:
        return kind(str(value))
    except ValueError:
        choices = ", ".join(member.value for member in kind)
        raise selection.PolicyError(path, f"must be one of {choices} (got {value!r})") from None


def no_unknown(body: Mapping[str, object], path: str, known: Collection[str]) -> None:
    unknown = sorted(str(key) for key in body if key not in known)
    if unknown:
        raise selection.PolicyError(
            f"{path}.{unknown[0]}", f"unknown field; expected one of {', '.join(sorted(known))}"
        )
