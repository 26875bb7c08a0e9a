"""Byte sizes: Kubernetes quantities in ("500M", "50Gi", "1.5G"), binary units out."""

from __future__ import annotations

import fractions
import math
import re

_MULTIPLIERS: dict[str, int] = {
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}
# Kubernetes also takes "m" (milli) and exponents ("1e9"); for bytes "500m" is
# nearly always a typo for "500M", so both are refused rather than guessed at.
_QUANTITY = re.compile(
    r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(" + "|".join(sorted(_MULTIPLIERS, key=len, reverse=True)) + ")"
)
_ACCEPTED = (
    "a number with an optional suffix, e.g. 500M, 50Gi, 1.5G, 1073741824 "
    "(suffixes: k, M, G, T, P, E, Ki, Mi, Gi, Ti, Pi, Ei)"
)
_DISPLAY_UNITS = ("KiB", "MiB", "GiB", "TiB", "PiB", "EiB")
# Far more than any real size needs; longer text is refused before int() sees its
# digits (CPython limits those, with an error text of its own).
MAX_LENGTH = 64


def parse_bytes(text: str) -> int:
    """Parse a Kubernetes byte quantity. Fractions of a byte round up, as Kubernetes
    rounds them. Raises ValueError saying what is accepted."""
    if not text:
        raise ValueError(f"byte quantity must not be empty; expected {_ACCEPTED}")
    if len(text) > MAX_LENGTH:
        raise ValueError(
            f"invalid byte quantity {text[:20]!r}...: longer than {MAX_LENGTH} characters"
        )
    if text.startswith("-"):
        raise ValueError(f"invalid byte quantity {text!r}: must not be negative")
    match = _QUANTITY.fullmatch(text)
    if match is None:
        raise ValueError(f"invalid byte quantity {text!r}: expected {_ACCEPTED}")
    number, suffix = match.groups()
    return math.ceil(fractions.Fraction(number) * _MULTIPLIERS[suffix])


def format_bytes(count: int) -> str:
    """Human-readable with binary units and one decimal: "512 B", "1.5 GiB", "2 MiB"."""
    if count < 0:
        return "-" + format_bytes(-count)
    if count < 1024:
        return f"{count} B"
    for exponent, unit in enumerate(_DISPLAY_UNITS[:-1], start=1):
        scaled = round(count / 1024**exponent, 1)
        # Move up a unit rather than print "1024 KiB".
        if scaled < 1024:
            return _one_decimal(scaled, unit)
    return _one_decimal(round(count / 1024 ** len(_DISPLAY_UNITS), 1), _DISPLAY_UNITS[-1])


def _one_decimal(value: float, unit: str) -> str:
    return f"{value:.1f}".removesuffix(".0") + f" {unit}"
