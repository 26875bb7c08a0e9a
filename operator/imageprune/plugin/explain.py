"""Why an image was or was not removed on a node, from that node's task: its
status.report lists the images the run meant to remove (`results`, at most 50,
`resultsTruncated` counts the rest) with what happened to each, and the largest images
a rule kept (`kept`, at most 100, `keptTruncated` counts the rest) with that rule. An
image in neither list has only its rule's count, so the answer says what the report
can prove, and no more."""

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

# The rule behind each planner verdict that keeps an image (node/planner.py), named as
# the policy names it; the report's detail follows.
_RULES = {
    "InUse": "kept: a container uses it",
    "SandboxImage": "kept: a pod sandbox image",
    "Pinned": "kept: pinned by the container runtime",
    "Excluded": "kept: excluded by the policy",
    "NotIncluded": "kept: outside the policy's scope or include patterns",
    "TooNew": "kept: younger than olderThan",
    "RecentlyUsed": "kept: used more recently than unusedFor",
    "KeptLatest": "kept: one of the newest of its repository (keepLatestPerRepository)",
    "DiskBelowTarget": "kept: the image filesystem is below the policy's disk target",
    "CapReached": "kept: the run reached its limits (maxImagesPerRun or maxBytesPerRun)",
}


@dataclasses.dataclass(frozen=True)
class Explanation:
    node: nodes.NodeResult
    image: str
    verdict: str  # one of _OUTCOMES' or _RULES' keys, or NotInReport, NotOnNode, NotRun
    reason: str  # a sentence for people
    result: Mapping[str, Any] | None  # the report's entry for the image, when listed
    kept: Mapping[str, int]  # the run's counts per planner verdict (InUse, Excluded...)
    truncated: int
    kept_listed: int  # how many kept images the report lists
    kept_truncated: int

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
            "keptTruncated": self.kept_truncated,
        }


def explain(task: Mapping[str, Any], image: str) -> Explanation:
    node = nodes.result(task)
    report = (task.get("status") or {}).get("report") or {}
    verdicts = {str(k): v for k, v in (report.get("verdicts") or {}).items() if isinstance(v, int)}
    results, kept = _entries(report, "results"), _entries(report, "kept")
    base = Explanation(
        node,
        image,
        "NotRun",
        "",
        None,
        verdicts,
        truncated=_count(report, "resultsTruncated"),
        kept_listed=len(kept),
        kept_truncated=_count(report, "keptTruncated"),
    )
    if not report or node.run_id is None:
        reason = "this node has no finished run with a report"
        if node.state == nodes.RUNNING:
            reason = f"run {node.run_id} is under way on this node; no report yet"
        return dataclasses.replace(base, reason=reason)
    for entry in results:
        if matches(entry, image):
            return _listed(base, entry, str(entry.get("outcome", "")), _OUTCOMES)
    for entry in kept:
        if matches(entry, image):
            return _listed(base, entry, str(entry.get("reason", "")), _RULES)
    return _unlisted(base, kept_in_report="kept" in report, results_listed=len(results))


def _listed(
    base: Explanation, entry: Mapping[str, Any], verdict: str, phrases: Mapping[str, str]
) -> Explanation:
    reason = phrases.get(verdict, verdict)
    if entry.get("detail"):
        reason += f" ({entry['detail']})"
    return dataclasses.replace(base, verdict=verdict, reason=reason, result=entry)


def _unlisted(base: Explanation, *, kept_in_report: bool, results_listed: int) -> Explanation:
    """An image in neither list: what the report's counts still prove."""
    if base.truncated:
        reason = (
            f"not among the {results_listed} images the report lists; {base.truncated} more "
            "were candidates for removal but are not listed, so it may have been removed, "
            "or kept by a rule"
        )
    elif not kept_in_report:  # an agent from before the report listed kept images
        reason = (
            "not a candidate for removal: the report lists every image the run meant to "
            "remove, so it was kept by a rule of the policy (or was not on the node)"
        )
    elif base.kept_truncated:
        reason = (
            "kept by a rule (or not on the node): the report lists every image the run "
            f"meant to remove, and it is not among the {base.kept_listed} largest kept "
            f"images listed ({base.kept_truncated} more were kept)"
        )
    else:
        reason = (
            "not on the node when the run listed its images: the report lists every "
            "image, removed or kept (a kept image by its ID and first tags)"
        )
        return dataclasses.replace(base, verdict="NotOnNode", reason=reason)
    return dataclasses.replace(base, verdict="NotInReport", reason=reason)


def _entries(report: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    return [e for e in report.get(key) or () if isinstance(e, Mapping)]


def _count(report: Mapping[str, Any], key: str) -> int:
    value = report.get(key)
    return value if isinstance(value, int) else 0


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
        if answer.verdict == "NotInReport":
            lines.append(
                "  To see the rule for every image, run `imageprune images` with the "
                "policy's selection in the node's agent pod (docs/troubleshooting.md)."
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
