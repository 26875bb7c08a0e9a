"""Where a run asked for with the run-now annotation stands, from the policy alone
(docs/protocol.md, "A run, step by step"): the operator writes `status.run` first, then
records the annotation value it acted on in `run-now-handled`. So once our value is
recorded, the run in the status is ours if it is a new RunNow run; if it is not, the
operator ignored the request (a suspended policy: RunNowIgnored)."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from imageprune.api import names
from imageprune.plugin import nodes, output


class Phase(enum.StrEnum):
    WAITING = "Waiting"  # the operator has not acted on the request yet
    IGNORED = "Ignored"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"  # completed with failed nodes
    PAUSED = "Paused"  # the rollout stopped: too many failures, or suspended mid-run
    INVALID = "InvalidSpec"  # the operator refuses the spec and starts nothing

    @property
    def final(self) -> bool:
        return self not in (Phase.WAITING, Phase.RUNNING)


@dataclasses.dataclass(frozen=True)
class Progress:
    phase: Phase
    run: Mapping[str, Any]  # status.run once it is ours, else empty
    message: str = ""  # the operator's, for INVALID

    def line(self) -> str:
        """One line for people; the same line is not printed twice."""
        if self.phase is Phase.WAITING:
            return "waiting for the operator to start the run..."
        if self.phase is Phase.INVALID:
            return f"the operator starts no run: the policy's spec is invalid: {self.message}"
        if self.phase is Phase.IGNORED:
            return "the operator ignored the request (RunNowIgnored): the policy is suspended"
        counts = self.run.get("nodes")
        if not isinstance(counts, Mapping):  # written at the start, before any node
            return f"run {self.run.get('id')} started"
        done = counts.get("succeeded", 0) + counts.get("failed", 0)
        text = (
            f"run {self.run.get('id')}: {done} of {counts.get('matched', 0)} nodes done "
            f"({counts.get('succeeded', 0)} succeeded, {counts.get('failed', 0)} failed), "
            f"{counts.get('running', 0)} running, {counts.get('pending', 0)} pending"
        )
        if counts.get("skipped"):
            text += f", {counts['skipped']} skipped"
        if self.phase is Phase.PAUSED:
            text += f"; paused: {self.run.get('pausedReason', '')}"
        return text


def progress(policy: Mapping[str, Any], *, request: str, before: str | None) -> Progress:
    """`request` is the run-now value we wrote, `before` the run id the status showed
    before we wrote it."""
    metadata = policy.get("metadata") or {}
    invalid = _invalid_spec(policy.get("status") or {}, metadata.get("generation"))
    if invalid is not None:
        # The operator checks the spec before any run-now request, and never handles one.
        return Progress(Phase.INVALID, {}, invalid)
    annotations = metadata.get("annotations") or {}
    if annotations.get(names.RUN_NOW_HANDLED_ANNOTATION) != request:
        return Progress(Phase.WAITING, {})
    run = (policy.get("status") or {}).get("run") or {}
    if run.get("trigger") != "RunNow" or run.get("id") == before:
        return Progress(Phase.IGNORED, {})
    counts = run.get("nodes") or {}
    if run.get("completionTime"):
        return Progress(Phase.FAILED if counts.get("failed") else Phase.SUCCEEDED, run)
    if run.get("paused") and not counts.get("running"):
        return Progress(Phase.PAUSED, run)
    return Progress(Phase.RUNNING, run)


def _invalid_spec(status: Mapping[str, Any], generation: object) -> str | None:
    """The operator's message when it found this generation's spec invalid."""
    for condition in status.get("conditions") or ():
        if (
            isinstance(condition, Mapping)
            and condition.get("type") == "Ready"
            and condition.get("reason") == "InvalidSpec"
            and condition.get("observedGeneration") == generation
        ):
            return str(condition.get("message", ""))
    return None


def finished_nodes(
    announced: Collection[str], current: Sequence[nodes.NodeResult], run_id: str
) -> list[nodes.NodeResult]:
    """The nodes whose agent has finished `run_id` and that were not `announced` yet.
    (The policy and the tasks come on two watches, in any order: a node may finish
    before the policy shows which run is ours.)"""
    return [r for r in current if r.run_id == run_id and r.finished and r.node not in announced]


def node_line(result: nodes.NodeResult) -> str:
    verb = "would remove" if result.dry_run else "removed"
    line = (
        f"  {result.node}: {result.state}, {verb} {output.count(result.removed_images, 'image')} "
        f"({output.size(result.removed_bytes)})"
    )
    if result.errors:
        line += f", {output.count(result.errors, 'error')}"
    if result.state != "Succeeded" and result.message:
        line += f": {result.message}"
    return line
