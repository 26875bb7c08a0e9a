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


def document(run: service.PruneRun, *, max_results: int | None = None) -> dict[str, object]:
    """The run as plain JSON types. `max_results` caps the per-image `results` (the
    agent keeps its status small); None keeps them all. Counts are never capped."""
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
                "repoTags": list(r.image.repo_tags),
                "size": r.image.size,
                "outcome": r.outcome.value,
                "detail": r.detail,
            }
            for r in results
        ],
        "resultsTruncated": len(results) < len(report.results),
        "errors": [
            {
                "kind": g.kind,
                "count": g.count,
                "example": f"{g.example.image.id}: {g.example.detail}",
            }
            for g in error_groups(report)
        ],
        "unmatchedExcludes": list(plan.unmatched_excludes),
    }
