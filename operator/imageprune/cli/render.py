"""Human and JSON output of the node CLI."""

from __future__ import annotations

import collections
import datetime
import json
from collections.abc import Mapping
from typing import TextIO

from imageprune.node import executor, planner, report, service, usage
from imageprune.policy import durations, quantities


def _short_id(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:12]


def age_text(moment: datetime.datetime | None, now: datetime.datetime) -> str:
    if moment is None:
        return "never"
    return durations.format_age(now - moment)


def _iso(moment: datetime.datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def verdict_json(v: planner.Verdict, record: usage.UsageRecord | None) -> dict[str, object]:
    return {
        "id": v.image.id,
        "repoTags": list(v.image.repo_tags),
        "repoDigests": list(v.image.repo_digests),
        "size": v.image.size,
        "pinned": v.image.pinned,
        "createdAt": _iso(v.image.created_at),
        "firstSeen": _iso(record.first_seen) if record else None,
        "lastUsed": _iso(record.last_used) if record else None,
        "usedBy": list(v.users),
        "reason": v.reason.value,
        "detail": v.detail,
    }


def images(
    plan: planner.Plan,
    records: Mapping[str, usage.UsageRecord],
    *,
    output: str,
    stream: TextIO,
    now: datetime.datetime | None = None,
) -> None:
    if output == "json":
        items = [verdict_json(v, records.get(v.image.id)) for v in plan.verdicts]
        document = {"images": items, "unmatchedExcludes": list(plan.unmatched_excludes)}
        json.dump(document, stream, indent=2)
        stream.write("\n")
        return
    now = now or datetime.datetime.now(datetime.UTC)
    rows = [["IMAGE ID", "TAGS", "SIZE", "USED BY", "PINNED", "LAST USED", "VERDICT", "WHY"]]
    for v in sorted(plan.verdicts, key=lambda v: (v.image.repo_tags or ("~",), v.image.id)):
        tags = v.image.repo_tags
        record = records.get(v.image.id)
        rows.append(
            [
                _short_id(v.image.id),
                (tags[0] + (f" (+{len(tags) - 1})" if len(tags) > 1 else "")) if tags else "<none>",
                quantities.format_bytes(v.image.size),
                str(len(v.users)) if v.users else "-",
                "yes" if v.image.pinned else "-",
                age_text(record.last_used if record else None, now),
                v.reason.value,
                v.detail,
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        stream.write("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        stream.write("\n")
    stream.write(
        f"\n{len(plan.removable)} of {len(plan.verdicts)} images removable, "
        f"{quantities.format_bytes(plan.removable_bytes)}\n"
    )


# What each outcome that is not a success means, for the summary lines.
_OUTCOME_TEXT = {
    executor.Outcome.FAILED: "not removed",
    executor.Outcome.UNKNOWN: "outcome unknown (sent, no answer; may be gone)",
    executor.Outcome.NOT_ATTEMPTED: "not attempted",
}


def prune_report(run: service.PruneRun, *, output: str, stream: TextIO) -> None:
    """The report of a prune. Text: one line per image taken or kept at the last
    moment, ONE line per kind of error (a dead runtime fails hundreds of images
    alike), then a summary. JSON: node/report.py's document, every image."""
    if output == "json":
        json.dump(report.document(run), stream, indent=2)
        stream.write("\n")
        return
    plan, result = run.observation.plan, run.report
    kept = collections.Counter(
        v.reason.value for v in plan.verdicts if v.reason is not planner.Reason.REMOVABLE
    )
    taken = [r for r in result.results if r.outcome.takes_image]
    verb = "Would remove" if result.dry_run else "Removed"
    for r in taken:
        name = ", ".join(r.image.repo_tags) or "<none>"
        stream.write(f"{verb.lower()}: {_short_id(r.image.id)} {name}\n")
    for r in result.with_outcome(executor.Outcome.NOW_IN_USE):
        stream.write(f"kept (now in use): {_short_id(r.image.id)} {r.detail}\n")
    for group in report.error_groups(result):
        example = group.example
        stream.write(
            f"error: {group.count} {'image' if group.count == 1 else 'images'} "
            f"{_OUTCOME_TEXT[group.outcome]} ({group.kind}), e.g. "
            f"{_short_id(example.image.id)}: {example.detail}\n"
        )
    line = f"{verb} {len(taken)} images, {quantities.format_bytes(result.removed_bytes)}"
    before, after = run.observation.snapshot.disk, run.disk_after
    if before and after:
        delta = before.used_bytes - after.used_bytes
        line += (
            f" (image filesystem: {quantities.format_bytes(abs(delta))} "
            f"{'less' if delta >= 0 else 'more'} used, shared with other writers)"
        )
    troubles = collections.Counter(r.outcome for r in result.failed)
    if troubles:
        line += "; " + ", ".join(
            f"{troubles[outcome]} {outcome.value}"
            for outcome in executor.Outcome
            if troubles[outcome]
        )
    kept_text = ", ".join(f"{n} {reason}" for reason, n in sorted(kept.items()))
    stream.write(line + (f". Kept: {kept_text}." if kept_text else ".") + "\n")
