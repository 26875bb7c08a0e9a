"""How a finished run reads in the task status: its report document, and the reason
and message of its conditions."""

from __future__ import annotations

import collections
import datetime

from imageprune.agent.status import Reason
from imageprune.node import service
from imageprune.policy import quantities

MAX_RESULTS = 50  # the CRD's bound on status.report.results


def _iso(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).isoformat().replace("+00:00", "Z")


def report_document(run: service.PruneRun, *, completed: datetime.datetime) -> dict[str, object]:
    # Stand-in until imageprune.node.report (the CLI's -o json) lands: same shape.
    plan, report = run.observation.plan, run.report
    taken = [r for r in report.results if r.outcome.takes_image]
    results = report.results[:MAX_RESULTS]
    before = run.observation.snapshot.disk
    failed = collections.Counter(r.outcome.value for r in report.failed)
    return {
        "dryRun": report.dry_run,
        "startTime": _iso(run.observation.now),
        "completionTime": _iso(completed),
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
                "detail": r.detail[:1024],
            }
            for r in results
        ],
        "resultsTruncated": len(report.results) - len(results),
        "errors": [{"kind": kind, "count": n, "example": ""} for kind, n in failed.most_common(20)],
        "unmatchedExcludes": [],
    }


def judge(run: service.PruneRun) -> tuple[Reason, str]:
    """Succeeded unless a removal failed; the message says what happened in one line."""
    report = run.report
    taken = [r for r in report.results if r.outcome.takes_image]
    size = quantities.format_bytes(sum(r.image.size for r in taken))
    verb = "would remove" if report.dry_run else "removed"
    message = f"{verb} {len(taken)} of {len(run.observation.plan.verdicts)} images ({size})"
    if report.failed:
        example = report.failed[0]
        return (
            Reason.REMOVALS_FAILED,
            f"{message}; {len(report.failed)} removals failed, e.g. {example.image.id}: "
            f"{example.detail}",
        )
    return Reason.SUCCEEDED, message
