"""Leader election over a coordination.k8s.io/v1 Lease, the decisions only (leader.py
does the I/O): whether to take, renew or leave a Lease as we read it, and its next spec.

As client-go's leader election: a holder's lease counts as expired when our own clock has
seen the Lease unchanged for leaseDurationSeconds (never by comparing its renewTime with
our clock, which may be skewed); an empty holderIdentity is a released lease, free at
once; the write that takes or renews carries the resourceVersion we read, so of two
candidates only one wins."""

from __future__ import annotations

import dataclasses
import datetime
import enum
from collections.abc import Mapping
from typing import Any


class Decision(enum.Enum):
    CREATE = "create"  # no Lease yet
    TAKE = "take"  # released or expired: take it over
    RENEW = "renew"  # ours
    WAIT = "wait"  # another candidate leads


@dataclasses.dataclass(frozen=True)
class Record:
    """A Lease's spec and version, as read."""

    holder: str
    duration: float
    transitions: int
    acquired: str | None
    version: str

    @classmethod
    def of(cls, lease: Mapping[str, Any]) -> Record:
        spec = lease.get("spec") or {}
        return cls(
            holder=str(spec.get("holderIdentity") or ""),
            duration=float(spec.get("leaseDurationSeconds") or 0),
            transitions=int(spec.get("leaseTransitions") or 0),
            acquired=spec.get("acquireTime"),
            version=str((lease.get("metadata") or {}).get("resourceVersion") or ""),
        )


class Observer:
    """When our clock first saw the Lease's current version: its holder's time runs from
    there, whatever its renewTime says."""

    def __init__(self) -> None:
        self._version: str | None = None
        self._since = 0.0

    def seen_since(self, record: Record | None, now: float) -> float:
        version = record.version if record else None
        if version != self._version:
            self._version, self._since = version, now
        return self._since


def decide(record: Record | None, *, me: str, seen_since: float, now: float) -> Decision:
    if record is None:
        return Decision.CREATE
    if record.holder == me:
        return Decision.RENEW
    if not record.holder or now - seen_since >= record.duration:
        return Decision.TAKE
    return Decision.WAIT


def spec(
    record: Record | None,
    decision: Decision,
    *,
    me: str,
    duration: int,
    now: datetime.datetime,
) -> dict[str, Any]:
    """The spec that takes, creates or renews the lease (the decision must be one of those)."""
    stamp = micro_time(now)
    if decision is Decision.RENEW and record is not None:
        acquired, transitions = record.acquired or stamp, record.transitions
    elif decision in (Decision.TAKE, Decision.CREATE):
        acquired = stamp
        transitions = record.transitions + 1 if record is not None else 0
    else:
        raise ValueError(f"no spec to write when the decision is {decision.value}")
    return {
        "holderIdentity": me,
        "leaseDurationSeconds": duration,
        "acquireTime": acquired,
        "renewTime": stamp,
        "leaseTransitions": transitions,
    }


def released(record: Record, *, now: datetime.datetime) -> dict[str, Any]:
    """What the leader writes on its way out: no holder, and a 1 s duration for a reader
    that still goes by time, so a standby takes over at its next try."""
    stamp = micro_time(now)
    return {
        "holderIdentity": "",
        "leaseDurationSeconds": 1,
        "acquireTime": stamp,
        "renewTime": stamp,
        "leaseTransitions": record.transitions,
    }


def micro_time(moment: datetime.datetime) -> str:
    """A Kubernetes MicroTime: RFC 3339 in UTC with microseconds."""
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
