"""Durations as policies write them: Go/Kubernetes style ("90s", "1h30m", "168h")
plus "d" (days) and "w" (weeks), which Go lacks but image ages need."""

from __future__ import annotations

import datetime
import fractions
import itertools
import re

_NANOSECONDS_PER_UNIT: dict[str, int] = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,  # U+00B5 MICRO SIGN, as Go accepts
    "μs": 1_000,  # U+03BC GREEK SMALL LETTER MU, as Go accepts
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60 * 1_000_000_000,
    "h": 3_600 * 1_000_000_000,
    "d": 86_400 * 1_000_000_000,
    "w": 7 * 86_400 * 1_000_000_000,
}
# [0-9], not \d: \d also matches digits of other scripts, which Go rejects.
_NUMBER = r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+"
# Longer units first, so "ms" is not read as "m" followed by garbage.
_UNIT = "|".join(sorted(_NANOSECONDS_PER_UNIT, key=len, reverse=True))
_TERM = re.compile(rf"({_NUMBER})({_UNIT})")
_DURATION = re.compile(rf"(?:(?:{_NUMBER})(?:{_UNIT}))+")
_ACCEPTED = (
    "a number and a unit, e.g. 90s, 30m, 168h, 1h30m, 7d, 2w (units: ns, us, ms, s, m, h, d, w)"
)

# Display ladder in microseconds, largest first; no weeks, so 7d reads as 7d.
_DISPLAY_UNITS: tuple[tuple[str, int], ...] = (
    ("d", 86_400_000_000),
    ("h", 3_600_000_000),
    ("m", 60_000_000),
    ("s", 1_000_000),
    ("ms", 1_000),
    ("us", 1),
)
_MICROSECOND = datetime.timedelta(microseconds=1)
# Far more than any real duration needs; longer text is refused before int() sees
# its digits (CPython limits those, with an error text of its own).
MAX_LENGTH = 64


def parse_duration(text: str) -> datetime.timedelta:
    """Parse "90s", "1h30m", "7d", "2w", "1.5h" or "0". Raises ValueError saying what
    is accepted. Precision is one microsecond (finer parts are dropped)."""
    if not text:
        raise ValueError(f"duration must not be empty; expected {_ACCEPTED}")
    if len(text) > MAX_LENGTH:
        raise ValueError(f"invalid duration {text[:20]!r}...: longer than {MAX_LENGTH} characters")
    if text.startswith("-"):
        raise ValueError(f"invalid duration {text!r}: must not be negative")
    if text == "0":
        return datetime.timedelta(0)
    if not _DURATION.fullmatch(text):
        raise ValueError(f"invalid duration {text!r}: expected {_ACCEPTED}")
    nanoseconds = sum(
        fractions.Fraction(number) * _NANOSECONDS_PER_UNIT[unit]
        for number, unit in _TERM.findall(text)
    )
    try:
        return datetime.timedelta(microseconds=nanoseconds // 1_000)  # floor: an int
    except OverflowError:
        raise ValueError(f"invalid duration {text!r}: too large") from None


def format_duration(value: datetime.timedelta) -> str:
    """Compact display: "7d", "36h", "90m", "90s", "3h17m".

    Uses the largest unit the value is a whole number of, or holds at least two of,
    then adds the next smaller unit when it is not zero and drops the rest. So whole
    policy values read back exactly, and arbitrary ages stay short.
    """
    microseconds = value // _MICROSECOND
    if microseconds < 0:
        return "-" + format_duration(-value)
    if not microseconds:
        return "0s"
    for (name, unit), (next_name, next_unit) in itertools.pairwise(_DISPLAY_UNITS):
        count, remainder = divmod(microseconds, unit)
        if remainder and count < 2:
            continue
        next_count = remainder // next_unit
        return f"{count}{name}" + (f"{next_count}{next_name}" if next_count else "")
    return f"{microseconds}us"


def format_age(age: datetime.timedelta) -> str:
    """How long ago, as people say it: '3h ago', or 'just now' under a second (and for
    a clock that ran backwards). Whole seconds: '346ms353us' is noise to a reader."""
    if age < datetime.timedelta(seconds=1):
        return "just now"
    return format_duration(datetime.timedelta(seconds=int(age.total_seconds()))) + " ago"
