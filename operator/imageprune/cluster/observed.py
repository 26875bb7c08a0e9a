"""What the operator reads back from the cluster, reduced to the few fields its decisions
need: a task's view (kept in a kopf index, so it must stay small) and the policy's current
run as recorded in its status."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import sys
from collections.abc import Mapping
from types import MappingProxyType

from imageprune.api import conditions, task, times
from imageprune.api.fields import mapping
from imageprune.api.policy import Mode, Trigger


class NodeState(enum.StrEnum):
    """A matched node's state in run R (docs/protocol.md, "Node state as the operator reads it")."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"  # no working agent, or the node NotReady (see standing)


@dataclasses.dataclass(frozen=True, slots=True)
class TaskView:
    name: str
    node: str
    policy: str
    spec_run_id: str
    status_run_id: str | None = None
    status_trigger: str | None = None
    started_at: datetime.datetime | None = None  # status.startTime of status_run_id
    completed: bool = False  # status.completionTime is set
    ready: bool | None = None  # the Ready condition: True, False, or absent/Unknown
    reason: str = ""  # why it failed (the Degraded reason, else Ready's)
    message: str = ""
    dry_run: bool = False
    removed_images: int = 0  # in a dry run: the candidates
    removed_bytes: int = 0

    def released(self, run_id: str) -> bool:
        return self.spec_run_id == run_id

    def busy(self) -> bool:
        """The agent has started a run (any run) and not finished it."""
        return self.status_run_id is not None and not self.completed

    def state(self, run_id: str) -> NodeState:
        if self.spec_run_id != run_id or self.status_run_id != run_id:
            return NodeState.PENDING
        if not self.completed:
            return NodeState.RUNNING
        return NodeState.SUCCEEDED if self.ready else NodeState.FAILED

    def in_flight(self, run_id: str) -> bool:
        """Counts against rollout.maxConcurrentNodes: released into run R and not finished
        with it, or still busy with an earlier run (or a DiskPressure run of its own)."""
        finished = self.state(run_id) in (NodeState.SUCCEEDED, NodeState.FAILED)
        return (self.released(run_id) and not finished) or (
            self.busy() and self.status_run_id != run_id
        )


def task_view(body: Mapping[str, object]) -> TaskView | None:
    """A task object as the operator sees it; None when it is not one of ours (no node or
    policy in its spec), which the operator then leaves alone. Its strings are interned:
    the node name is fleet.Nodes' own, and the policy, run ids, trigger and reasons repeat
    on thousands of tasks (the operator keeps every view, fleet.Tasks)."""
    metadata = mapping(body.get("metadata"))
    spec = mapping(body.get("spec"))
    status = mapping(body.get("status"))
    name, node, policy = metadata.get("name"), spec.get("nodeName"), spec.get("policyName")
    if not (isinstance(name, str) and isinstance(node, str) and isinstance(policy, str)):
        return None
    found = _conditions_of(body)
    ready = conditions.find(found, conditions.Type.READY)
    degraded = conditions.find(found, conditions.Type.DEGRADED)
    failure = degraded if conditions.is_true(found, conditions.Type.DEGRADED) else ready
    report = mapping(status.get("report"))
    ready_status = ready.get("status") if ready else None
    why = failure or {}
    return TaskView(
        name=name,
        node=sys.intern(node),
        policy=sys.intern(policy),
        spec_run_id=_interned(spec.get("runId")) or "",
        status_run_id=_interned(status.get("runId")),
        status_trigger=_interned(status.get("trigger")),
        started_at=time_field(status, "startTime"),
        completed=_string(status.get("completionTime")) is not None,
        ready={"True": True, "False": False}.get(str(ready_status)),
        reason=_interned(why.get("reason")) or "",
        message=sys.intern(
            (_string(why.get("message")) or _string(status.get("message")) or "")[:1024]
        ),
        dry_run=report.get("dryRun") is True,
        removed_images=_count(report.get("removedImages")),
        removed_bytes=_count(report.get("removedBytes")),
    )


def node_not_ready(body: Mapping[str, object]) -> bool:
    """A Node whose Ready condition is False or Unknown (the kubelet stopped posting). A
    Node with no Ready condition at all is not known to be NotReady."""
    ready = ready_of(body)
    return ready is not None and ready != "True"


def ready_of(body: Mapping[str, object]) -> str | None:
    """The status of an object's Ready condition (a Node's, a pod's); None: it has none."""
    ready = conditions.find(_conditions_of(body), conditions.Type.READY)
    return None if ready is None else str(ready.get("status"))


def _conditions_of(body: Mapping[str, object]) -> list[Mapping[str, object]]:
    found = _list(mapping(body.get("status")).get("conditions"))
    return [c for c in found if isinstance(c, Mapping)]


def ready_status(ready: str | None) -> Mapping[str, object]:
    """A Node's or a pod's status reduced to its Ready condition's status (None: it has
    none), as the operator keeps it while a listing of thousands is held whole: the
    common ones are shared, read-only."""
    shared = _READY_STATUS.get(ready or "")
    return shared if shared is not None else _ready_only(ready)


def _ready_only(ready: str | None) -> Mapping[str, object]:
    found = () if ready is None else (MappingProxyType({"type": "Ready", "status": ready}),)
    return MappingProxyType({"conditions": found})


_READY_STATUS = {s: _ready_only(s) for s in ("True", "False", "Unknown")} | {"": _ready_only(None)}


def policy_label(policy: str) -> str:
    """The value of the imageprune.io/policy label on this policy's tasks."""
    return task.label_value(policy)


@dataclasses.dataclass(frozen=True, slots=True)
class Run:
    """status.run: the identity of the current (or last) run. Counts are recomputed."""

    id: str
    trigger: Trigger
    mode: Mode
    start_time: datetime.datetime
    completion_time: datetime.datetime | None = None
    paused: bool = False

    def to_status(self) -> dict[str, object]:
        body: dict[str, object] = {
            "id": self.id,
            "trigger": self.trigger.value,
            "mode": self.mode.value,
            "startTime": times.to_rfc3339(self.start_time),
        }
        if self.completion_time is not None:
            body["completionTime"] = times.to_rfc3339(self.completion_time)
        return body


def run_from_status(status: Mapping[str, object]) -> Run | None:
    """The run recorded in a policy status, None if there is none (or it is unreadable:
    then the next trigger starts a fresh one)."""
    run = mapping(status.get("run"))
    run_id, started = _string(run.get("id")), _string(run.get("startTime"))
    if run_id is None or started is None:
        return None
    try:
        trigger, mode = Trigger(str(run.get("trigger"))), Mode(str(run.get("mode")))
        start_time = times.from_rfc3339(started)
        finished = _string(run.get("completionTime"))
        completion_time = times.from_rfc3339(finished) if finished else None
    except ValueError:
        return None
    return Run(run_id, trigger, mode, start_time, completion_time, run.get("paused") is True)


def time_field(status: Mapping[str, object], field: str) -> datetime.datetime | None:
    text = _string(status.get(field))
    try:
        return times.from_rfc3339(text) if text else None
    except ValueError:
        return None


def _list(value: object) -> list[object] | tuple[object, ...]:
    return value if isinstance(value, list | tuple) else []


def _string(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _interned(value: object) -> str | None:
    text = _string(value)
    return sys.intern(text) if text is not None else None


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0
