"""A policy's results per node, read from its tasks' status (docs/protocol.md): the last
run each node's agent wrote, and the totals over the nodes."""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from imageprune.api.fields import integer, mapping
from imageprune.plugin import output

PENDING = "Pending"  # released into a run the agent has not started (or never ran one)
RUNNING = "Running"


@dataclasses.dataclass(frozen=True)
class NodeResult:
    node: str
    task: str
    run_id: str | None  # the run the status describes
    trigger: str | None
    dry_run: bool
    started: datetime.datetime | None
    finished: datetime.datetime | None
    state: str  # Succeeded, a failure reason (Ready's or Degraded's), Running, Pending
    message: str
    removed_images: int  # in a dry run: the images it would remove
    removed_bytes: int
    errors: int  # images the run meant to remove and may not have

    def to_json(self) -> dict[str, object]:
        return {
            "node": self.node,
            "task": self.task,
            "runId": self.run_id,
            "trigger": self.trigger,
            "dryRun": self.dry_run,
            "startTime": _rfc3339(self.started),
            "completionTime": _rfc3339(self.finished),
            "state": self.state,
            "message": self.message,
            "removedImages": self.removed_images,
            "removedBytes": self.removed_bytes,
            "errors": self.errors,
        }


def results(tasks: Iterable[Mapping[str, Any]]) -> list[NodeResult]:
    """One per task, by node name."""
    return sorted((result(task) for task in tasks), key=lambda r: r.node)


def result(task: Mapping[str, Any]) -> NodeResult:
    spec, status = mapping(task.get("spec")), mapping(task.get("status"))
    report: Mapping[str, Any] = mapping(status.get("report"))
    finished = output.moment(status.get("completionTime"))
    errors = sum(integer(e.get("count")) for e in report.get("errors") or () if isinstance(e, dict))
    return NodeResult(
        node=str(spec.get("nodeName", "")),
        task=str(mapping(task.get("metadata")).get("name", "")),
        run_id=_str(status.get("runId")),
        trigger=_str(status.get("trigger")),
        dry_run=report.get("dryRun") is True,
        started=output.moment(status.get("startTime")),
        finished=finished,
        state=_state(spec, status, finished),
        message=str(status.get("message") or ""),
        removed_images=integer(report.get("removedImages")),
        removed_bytes=integer(report.get("removedBytes")),
        errors=errors,
    )


def _state(
    spec: Mapping[str, Any], status: Mapping[str, Any], finished: datetime.datetime | None
) -> str:
    if status.get("runId") and not finished:
        return RUNNING
    if not status.get("runId") or spec.get("runId") != status.get("runId"):
        return PENDING  # a run is asked for; the columns still show the last one, if any
    conditions = {
        c.get("type"): c for c in status.get("conditions") or () if isinstance(c, Mapping)
    }
    ready, degraded = conditions.get("Ready", {}), conditions.get("Degraded", {})
    if ready.get("status") == "True":
        return "Succeeded"
    # As the operator reads a failed node (docs/protocol.md): Degraded's reason when True.
    chosen = degraded if degraded.get("status") == "True" else ready
    return str(chosen.get("reason") or "Failed")


@dataclasses.dataclass(frozen=True)
class Totals:
    nodes: int
    removed_images: int
    removed_bytes: int
    candidates: int  # images dry runs would remove
    candidate_bytes: int
    errors: int
    failed_nodes: int

    def to_json(self) -> dict[str, object]:
        return {
            "nodes": self.nodes,
            "removedImages": self.removed_images,
            "removedBytes": self.removed_bytes,
            "candidates": self.candidates,
            "candidateBytes": self.candidate_bytes,
            "errors": self.errors,
            "failedNodes": self.failed_nodes,
        }


def totals(found: Sequence[NodeResult]) -> Totals:
    enforced = [r for r in found if not r.dry_run]
    dry = [r for r in found if r.dry_run]
    return Totals(
        nodes=len(found),
        removed_images=sum(r.removed_images for r in enforced),
        removed_bytes=sum(r.removed_bytes for r in enforced),
        candidates=sum(r.removed_images for r in dry),
        candidate_bytes=sum(r.removed_bytes for r in dry),
        errors=sum(r.errors for r in found),
        failed_nodes=sum(1 for r in found if r.state not in _NOT_FAILED),
    )


_NOT_FAILED = frozenset({"Succeeded", RUNNING, PENDING})


def _rfc3339(moment: datetime.datetime | None) -> str | None:
    return moment.astimezone(datetime.UTC).isoformat().replace("+00:00", "Z") if moment else None


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
