"""The report of one prune as a JSON-ready document: what `imageprune prune -o json`
prints and what the agent puts into an ImagePruneTask's status. One shape for a dry
run and a real run; `dryRun` says which it was.

Two figures answer "how much": `removedImages` / `removedBytes` count the images this
run took (Removed, or WouldRemove in a dry run) at their CRI sizes, which include
layers other images share. `imageFs` is a separate measurement of the whole image
filesystem before and after, by statvfs: other writers (pulls, container logs)
share that filesystem, so its delta is not what this run freed.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime

from imageprune.node import executor, service

# The bounds of ImagePruneTask's status.report (charts/imageprune/crds/): the agent
# stores this document there, and the apiserver refuses anything larger.
MAX_ERROR_KINDS = 20
MAX_TEXT = 1024  # a result's detail, an error's example
MAX_TAGS = 32  # per result


@dataclasses.dataclass(frozen=True)
class ErrorGroup:
    """Every image with one kind of error, for one line of a summary."""

    kind: str
    outcome: executor.Outcome
    count: int
    example: executor.Result


def error_groups(report: executor.Report) -> list[ErrorGroup]:
    """The images the run meant to remove and may not have, one group per error
    kind, largest first."""
    groups: dict[str, list[executor.Result]] = collections.defaultdict(list)
    for result in report.failed:
        groups[result.error_kind].append(result)
    return [
        ErrorGroup(kind, results[0].outcome, len(results), results[0])
        for kind, results in sorted(groups.items(), key=lambda g: (-len(g[1]), g[0]))
    ]


def _iso(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).isoformat().replace("+00:00", "Z")


def _text(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def document(run: service.PruneRun, *, max_results: int | None = None) -> dict[str, object]:
    """The run as plain JSON types, within the bounds of the task status schema.
    `max_results` caps the per-image `results` (the agent keeps 50); None keeps them
    all. `resultsTruncated` says how many were left out; counts are never capped."""
    plan, report = run.observation.plan, run.report
    taken = [r for r in report.results if r.outcome.takes_image]
    results = report.results if max_results is None else report.results[:max_results]
    before = run.observation.snapshot.disk
    return {
        "dryRun": report.dry_run,
        "startTime": _iso(run.observation.now),
        "completionTime": _iso(run.finished_at),
        "imagesSeen": len(plan.verdicts),
        "verdicts": dict(collections.Counter(v.reason.value for v in plan.verdicts)),
        "outcomes": dict(collections.Counter(r.outcome.value for r in report.results)),
        "removedImages": len(taken),
        "removedBytes": sum(r.image.size for r in taken),
        "imageFs": None
        if before is None
        else {
            "mountpoint": before.mountpoint,
            "capacityBytes": before.capacity_bytes,
            "usedBytesBefore": before.used_bytes,
            "usedBytesAfter": run.disk_after.used_bytes if run.disk_after else None,
        },
        "results": [
            {
                "id": r.image.id,
                "repoTags": list(r.image.repo_tags[:MAX_TAGS]),
                "size": r.image.size,
                "outcome": r.outcome.value,
                "detail": _text(r.detail),
            }
            for r in results
        ],
        "resultsTruncated": len(report.results) - len(results),
        "errors": [
            {
                "kind": g.kind,
                "count": g.count,
                "example": _text(f"{g.example.image.id}: {g.example.detail}"),
            }
            for g in error_groups(report)[:MAX_ERROR_KINDS]
        ],
        "unmatchedExcludes": list(plan.unmatched_excludes),
    }
