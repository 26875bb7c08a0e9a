"""The report of one prune as a JSON-ready document: what `imageprune prune -o json`
prints and what the agent puts into an ImagePruneTask's status. One shape for a dry
run and a real run; `dryRun` says which it was.

Two figures answer "how much": `removedImages` / `removedBytes` count the images this
run took (Removed, or WouldRemove in a dry run) at their CRI sizes, which include
layers other images share. `imageFs` is a separate measurement of the whole image
filesystem before and after, by statvfs: other writers (pulls, container logs)
share that filesystem, so its delta is not what this run freed.

`kept` answers "why is this image still here?" for the largest images a rule kept
(in use, pinned, excluded, too new...), the ones a person asks about first.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime

from imageprune.node import executor, planner, service

# The bounds of ImagePruneTask's status.report (charts/imageprune/crds/): the agent
# stores this document there, and the apiserver refuses anything larger.
MAX_ERROR_KINDS = 20
MAX_TEXT = 1024  # a result's detail, an error's example
MAX_TAGS = 32  # per result
MAX_KEPT_TEXT = 256  # a kept image's tags and detail: short, as there can be 100
MAX_KEPT_TAGS = 4


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


def _text(text: str, limit: int = MAX_TEXT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def kept(plan: planner.Plan, *, limit: int | None = None) -> tuple[list[dict[str, object]], int]:
    """The images a rule kept, largest first (ID breaks ties), with the rule (`reason`,
    a planner verdict) and its detail; at most `limit` of them (None: all), and how many
    were left out."""
    verdicts = [v for v in plan.verdicts if v.reason is not planner.Reason.REMOVABLE]
    shown = sorted(verdicts, key=lambda v: (-v.image.size, v.image.id))[:limit]
    entries: list[dict[str, object]] = [
        {
            "id": v.image.id,
            "repoTags": [_text(tag, MAX_KEPT_TEXT) for tag in v.image.repo_tags[:MAX_KEPT_TAGS]],
            "size": v.image.size,
            "reason": v.reason.value,
            "detail": _text(v.detail, MAX_KEPT_TEXT),
        }
        for v in shown
    ]
    return entries, len(verdicts) - len(shown)


def document(
    run: service.PruneRun, *, max_results: int | None = None, max_kept: int | None = None
) -> dict[str, object]:
    """The run as plain JSON types, within the bounds of the task status schema.
    `max_results` caps the per-image `results` (the agent keeps 50) and `max_kept` the
    `kept` images (the agent keeps 100); None keeps them all. `resultsTruncated` and
    `keptTruncated` say how many were left out; counts are never capped."""
    plan, report = run.observation.plan, run.report
    taken = [r for r in report.results if r.outcome.takes_image]
    results = report.results if max_results is None else report.results[:max_results]
    kept_images, kept_left_out = kept(plan, limit=max_kept)
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
        "kept": kept_images,
        "keptTruncated": kept_left_out,
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
