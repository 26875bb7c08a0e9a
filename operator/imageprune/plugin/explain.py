"""Why an image was or was not removed on a node, from that node's task: its
status.report lists the images the run meant to remove (at most 50, `resultsTruncated`
counts the rest) with what happened to each. An image kept by a rule (in use, pinned,
excluded, too new...) is not listed: only its rule's count is. So the answer says what
the report can prove, and no more."""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping
from typing import Any

from imageprune.plugin import nodes, output
from imageprune.policy import references

# What each outcome of the node engine means for the image (node/executor.py).
_OUTCOMES = {
    "Removed": "removed",
    "WouldRemove": "would be removed: a dry run removes nothing",
    "NowInUse": "kept: a container started using it while the run was under way",
    "Failed": "not removed: the container runtime refused the removal",
    "Unknown": "maybe removed: the removal was sent and got no answer",
    "NotAttempted": "not removed: the run stopped before reaching it",
}


@dataclasses.dataclass(frozen=True)
class Explanation:
    node: nodes.NodeResult
    image: str
    verdict: str  # one of _OUTCOMES' keys, or NotInReport, NotRun
    reason: str  # a sentence for people
    result: Mapping[str, Any] | None  # the report's entry for the image, when listed
    kept: Mapping[str, int]  # the run's counts per planner verdict (InUse, Excluded...)
    truncated: int

    def to_json(self) -> dict[str, object]:
        return {
            "node": self.node.node,
            "image": self.image,
            "runId": self.node.run_id,
            "trigger": self.node.trigger,
            "completionTime": self.node.to_json()["completionTime"],
            "dryRun": self.node.dry_run,
            "verdict": self.verdict,
            "reason": self.reason,
            "result": dict(self.result) if self.result is not None else None,
            "verdicts": dict(self.kept),
            "resultsTruncated": self.truncated,
        }


def explain(task: Mapping[str, Any], image: str) -> Explanation:
    node = nodes.result(task)
    report = (task.get("status") or {}).get("report") or {}
    verdicts = {str(k): v for k, v in (report.get("verdicts") or {}).items() if isinstance(v, int)}
    truncated = report.get("resultsTruncated") or 0
    base = Explanation(node, image, "NotRun", "", None, verdicts, truncated)
    if not report or node.run_id is None:
        reason = "this node has no finished run with a report"
        if node.state == nodes.RUNNING:
            reason = f"run {node.run_id} is under way on this node; no report yet"
        return dataclasses.replace(base, reason=reason)
    for entry in report.get("results") or ():
        if isinstance(entry, Mapping) and matches(entry, image):
            outcome = str(entry.get("outcome", ""))
            reason = _OUTCOMES.get(outcome, outcome)
            if entry.get("detail"):
                reason += f" ({entry['detail']})"
            return dataclasses.replace(base, verdict=outcome, reason=reason, result=entry)
    if truncated:
        reason = (
            f"not among the {len(report.get('results') or ())} images the report lists; "
            f"{truncated} more were candidates for removal but are not listed, so it may "
            "have been removed, or kept by a rule"
        )
    else:
        reason = (
            "not a candidate for removal: the report lists every image the run meant to "
            "remove, so it was kept by a rule of the policy (or was not on the node)"
        )
    return dataclasses.replace(base, verdict="NotInReport", reason=reason)


def text(answer: Explanation, *, policy: str, now: datetime.datetime) -> str:
    """The explanation for people."""
    node = answer.node
    lines = [f"Image {answer.image} on node {node.node} (policy {policy})"]
    if node.run_id:
        finished = output.ago(node.finished, now) if node.finished else "not finished"
        mode = "dry run" if node.dry_run else "Enforce"
        lines.append(f"  run:     {node.run_id} ({node.trigger}, {mode}), {finished}")
    lines.append(f"  verdict: {answer.verdict}")
    lines.append(f"  why:     {answer.reason}")
    if answer.result is not None:
        tags = ", ".join(map(str, answer.result.get("repoTags") or ())) or "<none>"
        size = answer.result.get("size")
        shown = output.size(size) if isinstance(size, int) else "size unknown"
        lines.append(f"  image:   {answer.result.get('id')} ({tags}, {shown})")
    elif answer.kept:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(answer.kept.items()))
        lines.append(f"  run's verdicts over all images: {counts}")
        lines.append(
            "  The rule that keeps an image is not stored in the report; to see it, run "
            "`imageprune images` with the policy's selection in the node's agent pod "
            "(docs/troubleshooting.md)."
        )
    return "".join(line + "\n" for line in lines)


def matches(entry: Mapping[str, Any], image: str) -> bool:
    """`image` names this entry: its ID (with or without sha256:, or a prefix of at least
    12 hex digits) or one of its tags, compared normalised ("nginx" is
    docker.io/library/nginx:latest)."""
    image_id = str(entry.get("id", "")).removeprefix("sha256:")
    wanted = image.removeprefix("sha256:")
    if len(wanted) >= 12 and image_id.startswith(wanted):
        return True
    try:
        normalized = references.normalize_reference(image)
    except ValueError:
        return False
    for tag in entry.get("repoTags") or ():
        try:
            if references.normalize_reference(str(tag)) == normalized:
                return True
        except ValueError:
            continue
    return False
