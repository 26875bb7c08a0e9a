"""How a finished run reads in the task status: the reason and message of its
conditions. (The report document itself is imageprune.node.report's, the one
`imageprune prune -o json` prints.)"""

from __future__ import annotations

from imageprune.agent.status import Reason
from imageprune.node import executor
from imageprune.policy import quantities

MAX_RESULTS = 50  # the CRD's bound on status.report.results
MAX_KEPT = 100  # the CRD's bound on status.report.kept (docs/protocol.md: its size)
_STOPPED = "Stopped"  # the executor's error kind for removals not sent after a stop


def judge(report: executor.Report, *, images_seen: int) -> tuple[Reason, str]:
    """Succeeded unless a removal failed, or was not sent because the agent was
    stopping (Interrupted); the message says what happened in one line."""
    taken = [r for r in report.results if r.outcome.takes_image]
    size = quantities.format_bytes(sum(r.image.size for r in taken))
    verb = "would remove" if report.dry_run else "removed"
    message = f"{verb} {len(taken)} of {images_seen} images ({size})"
    stopped = [r for r in report.failed if r.error_kind == _STOPPED]
    failed = [r for r in report.failed if r.error_kind != _STOPPED]
    if failed:
        example = failed[0]
        message += f"; {len(failed)} removals failed, e.g. {example.image.id}: {example.detail}"
    if stopped:
        return (
            Reason.INTERRUPTED,
            f"stopped at shutdown: {message}; {len(stopped)} removals not attempted",
        )
    if failed:
        return Reason.REMOVALS_FAILED, message
    return Reason.SUCCEEDED, message


def removed(report: executor.Report) -> list[executor.Result]:
    """The results whose image this run took (none in a dry run)."""
    return [] if report.dry_run else [r for r in report.results if r.outcome.takes_image]
