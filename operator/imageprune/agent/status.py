"""What the agent writes into a task's /status, built purely from the task's current
status and what happened, so that every rule of the contract (docs/protocol.md) is
unit-tested: Progressing first, then the report with Ready/Progressing/Degraded.

Each function returns the `status` object of a JSON merge patch: a None deletes a
field (a new run clears the previous run's completionTime and report)."""

from __future__ import annotations

import datetime
import enum
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from imageprune.api import conditions, times
from imageprune.api.conditions import Status, Type

Body = dict[str, object]
# Builds a status from the task's current one; None when nothing needs writing.
Builder = Callable[[Mapping[str, object]], Body | None]


class Reason(enum.StrEnum):
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    RUNTIME_UNAVAILABLE = "RuntimeUnavailable"
    RUNTIME_AVAILABLE = "RuntimeAvailable"
    REMOVALS_FAILED = "RemovalsFailed"
    INVALID_SELECTION = "InvalidSelection"
    INTERRUPTED = "Interrupted"
    NODE_BUSY = "NodeBusy"  # another prune (e.g. a person's CLI) holds the node's lock
    INTERNAL_ERROR = "InternalError"


def wanted_run(task: Mapping[str, Any], *, done: str | None) -> str | None:
    """The spec.runId to run now, or None: this node completed it already (`done`, from
    the ledger: after a disk-pressure run the status shows that run's id instead), or
    the status says it completed (e.g. by an earlier agent process that lost its
    ledger). A status naming it without completionTime is a run cut short by a crash:
    it runs again."""
    run_id = (task.get("spec") or {}).get("runId")
    current = task.get("status") or {}
    if not isinstance(run_id, str) or not run_id or done == run_id:
        return None
    if current.get("runId") == run_id and current.get("completionTime"):
        return None
    return run_id


def started(
    current: Mapping[str, object],
    *,
    run_id: str,
    trigger: str,
    generation: int,
    now: datetime.datetime,
) -> Body:
    """A run begins: the operator counts the node as running from here on."""
    return _with_conditions(
        {
            "runId": run_id,
            "trigger": trigger,
            "startTime": times.to_rfc3339(now),
            "completionTime": None,
            "report": None,
            "message": f"run {run_id} started",
        },
        current,
        ((Type.PROGRESSING, Status.TRUE), (Type.READY, Status.UNKNOWN)),
        reason=Reason.RUNNING,
        message=f"run {run_id} ({trigger}) is under way",
        generation=generation,
        now=now,
    )


def finished(
    current: Mapping[str, object],
    *,
    run_id: str,
    trigger: str,
    reason: Reason,
    message: str,
    report: Mapping[str, object] | None,
    generation: int,
    started_at: datetime.datetime,
    now: datetime.datetime,
) -> Body:
    """A run ends, well (reason Succeeded) or not (any other reason): Ready says which,
    Degraded carries the failure's reason."""
    ok = reason is Reason.SUCCEEDED
    return _with_conditions(
        {
            "runId": run_id,
            "trigger": trigger,
            "startTime": times.to_rfc3339(started_at),
            "completionTime": times.to_rfc3339(now),
            "report": dict(report) if report is not None else None,
            "message": _short(message),
        },
        current,
        (
            (Type.READY, Status.TRUE if ok else Status.FALSE),
            (Type.PROGRESSING, Status.FALSE),
            (Type.DEGRADED, Status.FALSE if ok else Status.TRUE),
        ),
        reason=reason,
        message=message,
        generation=generation,
        now=now,
    )


def left_unfinished(
    current: Mapping[str, object],
    *,
    run_id: str,
    message: str,
    generation: int,
    now: datetime.datetime,
) -> Body:
    """A released run cut short by the agent's shutdown (a rollout of the DaemonSet, a
    drain): no completionTime and no report, as after a crash, so that the agent's next
    start runs it again (wanted_run) and the operator keeps counting the node as running
    rather than failed."""
    return _with_conditions(
        {"runId": run_id, "completionTime": None, "report": None, "message": _short(message)},
        current,
        ((Type.PROGRESSING, Status.TRUE), (Type.READY, Status.UNKNOWN)),
        reason=Reason.INTERRUPTED,
        message=message,
        generation=generation,
        now=now,
    )


def runtime_condition(
    current: Mapping[str, object],
    *,
    available: bool,
    message: str,
    generation: int,
    now: datetime.datetime,
) -> Body | None:
    """Between runs: Degraded True (RuntimeUnavailable) while the CRI does not answer,
    back to False once it does. None when nothing needs writing. Ready is left alone:
    it describes the last run, which the operator reads."""
    conds = _conditions(current)
    degraded = conditions.find(conds, Type.DEGRADED)
    marked = (
        degraded is not None
        and degraded.get("status") == Status.TRUE.value
        and degraded.get("reason") == Reason.RUNTIME_UNAVAILABLE.value
    )
    if available != marked:
        return None  # down and marked, or up and not marked by us
    return {
        "conditions": conditions.set_condition(
            conds,
            kind=Type.DEGRADED,
            status=Status.FALSE if available else Status.TRUE,
            reason=Reason.RUNTIME_AVAILABLE if available else Reason.RUNTIME_UNAVAILABLE,
            message=message,
            observed_generation=generation,
            now=now,
        )
    }


def _with_conditions(
    body: Body,
    current: Mapping[str, object],
    states: Sequence[tuple[Type, Status]],
    *,
    reason: Reason,
    message: str,
    generation: int,
    now: datetime.datetime,
) -> Body:
    """`body` with observedGeneration and the current conditions, each (type, status) of
    `states` set in that order, all for one reason and message."""
    conds = _conditions(current)
    for kind, state in states:
        conds = conditions.set_condition(
            conds,
            kind=kind,
            status=state,
            reason=reason,
            message=message,
            observed_generation=generation,
            now=now,
        )
    return {**body, "observedGeneration": generation, "conditions": conds}


def _conditions(current: Mapping[str, object]) -> Sequence[Mapping[str, object]]:
    found = current.get("conditions")
    if not isinstance(found, list):
        return []
    return [c for c in found if isinstance(c, Mapping)]


_MAX_MESSAGE = 4096  # status.message's maxLength in the CRD


def _short(message: str) -> str:
    return message if len(message) <= _MAX_MESSAGE else message[: _MAX_MESSAGE - 6] + " [...]"
