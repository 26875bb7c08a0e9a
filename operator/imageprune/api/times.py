"""Timestamps as the Kubernetes API writes them (RFC 3339, UTC, whole seconds, "Z")."""

from __future__ import annotations

import datetime


def to_rfc3339(moment: datetime.datetime) -> str:
    """ "2026-11-29T18:00:00Z". A naive datetime is refused: its zone would be a guess."""
    if moment.tzinfo is None:
        raise ValueError("a naive datetime has no zone; pass an aware one (e.g. UTC)")
    # isoformat, not strftime: "%Y" leaves years before 1000 unpadded on glibc.
    utc = moment.astimezone(datetime.UTC).replace(microsecond=0, tzinfo=None)
    return utc.isoformat() + "Z"


def from_rfc3339(text: str) -> datetime.datetime:
    """Parse an RFC 3339 timestamp (with "Z" or an offset) into an aware datetime."""
    moment = datetime.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no zone")
    return moment
