"""Status conditions shaped like metav1.Condition. They are observations: setting one
replaces the entry of its type, and lastTransitionTime moves only when the status does,
so `kubectl describe` shows how long a policy or task has been in its state."""

from __future__ import annotations

import datetime
import enum
import re
from collections.abc import Mapping, Sequence
from typing import TypedDict

from imageprune.api import times


class Type(enum.StrEnum):
    READY = "Ready"  # the summary: the last run completed on every matching node
    PROGRESSING = "Progressing"  # a run is under way
    DEGRADED = "Degraded"  # something failed: nodes, the spec, the runtime


class Status(enum.StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(TypedDict):
    type: str
    status: str
    observedGeneration: int
    lastTransitionTime: str
    reason: str
    message: str


# metav1.Condition's own limits, as the CRD schema enforces them.
_REASON = re.compile(r"[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?")
MAX_REASON = 1024
MAX_MESSAGE = 32768


def set_condition(
    conditions: Sequence[Mapping[str, object]],
    *,
    kind: Type,
    status: Status,
    reason: str,
    message: str,
    observed_generation: int,
    now: datetime.datetime,
) -> list[Mapping[str, object]]:
    """A new list with the condition of type `kind` set, the others unchanged and in order
    (a new type goes last). lastTransitionTime is `now` unless the status is unchanged."""
    if not _REASON.fullmatch(reason) or len(reason) > MAX_REASON:
        raise ValueError(f"condition reason {reason!r} must be CamelCase, e.g. RunCompleted")
    previous = find(conditions, kind)
    unchanged = previous is not None and previous.get("status") == status.value
    transition = previous.get("lastTransitionTime") if unchanged and previous else None
    updated = Condition(
        type=kind.value,
        status=status.value,
        observedGeneration=observed_generation,
        lastTransitionTime=transition if isinstance(transition, str) else times.to_rfc3339(now),
        reason=reason,
        message=_bounded(message),
    )
    result = [updated if c.get("type") == kind.value else c for c in conditions]
    return result if previous is not None else [*result, updated]


def find(conditions: Sequence[Mapping[str, object]], kind: Type) -> Mapping[str, object] | None:
    return next((c for c in conditions if c.get("type") == kind.value), None)


def is_true(conditions: Sequence[Mapping[str, object]], kind: Type) -> bool:
    condition = find(conditions, kind)
    return condition is not None and condition.get("status") == Status.TRUE.value


def _bounded(message: str) -> str:
    if len(message) <= MAX_MESSAGE:
        return message
    marker = " [...]"
    return message[: MAX_MESSAGE - len(marker)] + marker
