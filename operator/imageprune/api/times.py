"""Timestamps as the Kubernetes API writes them (RFC 3339, UTC, whole seconds, "Z")."""

from __future__ import annotations

import datetime


def to_rfc3339(moment: datetime.datetime) -> str:
    """ "2026-11-29T18:00:00Z". A naive datetime is refused: its zone would be a guess."""
    if moment.tzinfo is None:
        raise ValueError("a naive datetime has no zone; pass an aware one (e.g. UTC)")
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def from_rfc3339(text: str) -> datetime.datetime:
    """Parse an RFC 3339 timestamp (with "Z" or an offset) into an aware datetime."""
    moment = datetime.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no zone")
    return moment
