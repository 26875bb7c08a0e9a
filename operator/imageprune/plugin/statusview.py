"""`status POLICY` as people read it (a header, a table per node, totals) and as
programs read it (one document for -o json|yaml)."""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import Any

from imageprune.plugin import nodes, output


def document(policy: Mapping[str, Any], found: Sequence[nodes.NodeResult]) -> dict[str, object]:
    spec, status = policy.get("spec") or {}, policy.get("status") or {}
    return {
        "policy": policy["metadata"]["name"],
        "mode": spec.get("mode", "DryRun"),
        "suspend": bool(spec.get("suspend")),
        "run": status.get("run"),
        "nextRunTime": status.get("nextRunTime"),
        "conditions": status.get("conditions") or [],
        "nodes": [r.to_json() for r in found],
        "totals": nodes.totals(found).to_json(),
    }


def text(
    policy: Mapping[str, Any], found: Sequence[nodes.NodeResult], now: datetime.datetime
) -> str:
    return _header(policy, now) + "\n" + _nodes(found, now)


def _header(policy: Mapping[str, Any], now: datetime.datetime) -> str:
    spec, status = policy.get("spec") or {}, policy.get("status") or {}
    mode = spec.get("mode", "DryRun") + (", suspended" if spec.get("suspend") else "")
    lines = [f"Policy {policy['metadata']['name']} ({mode})"]
    run = status.get("run") or {}
    if run:
        counts = run.get("nodes") or {}
        finished = output.moment(run.get("completionTime"))
        state = f"finished {output.ago(finished, now)}" if finished else "in progress"
        if run.get("paused"):
            state = f"paused: {run.get('pausedReason', '')}"
        lines.append(
            f"Last run {run.get('id')} ({run.get('trigger')}), {state}: "
            f"{counts.get('succeeded', 0)} succeeded, {counts.get('failed', 0)} failed, "
            f"{counts.get('skipped', 0)} skipped of {counts.get('matched', 0)} nodes"
        )
    else:
        lines.append("No run yet")
    following = output.moment(status.get("nextRunTime"))
    if following:
        lines.append(f"Next run at {status['nextRunTime']}")
    return "".join(line + "\n" for line in lines)


def _nodes(found: Sequence[nodes.NodeResult], now: datetime.datetime) -> str:
    if not found:
        return "No tasks: no node has been released to this policy yet.\n"
    rows = [["NODE", "LAST RUN", "TRIGGER", "STATE", "REMOVED", "RECLAIMED", "ERRORS"]]
    for r in found:
        would = " (dry run)" if r.dry_run else ""
        rows.append(
            [
                r.node,
                output.ago(r.finished, now) if r.finished else "-",
                r.trigger or "-",
                r.state,
                f"{r.removed_images}{would}",
                output.size(r.removed_bytes),
                str(r.errors),
            ]
        )
    total = nodes.totals(found)
    rows.append(
        [
            f"TOTAL ({total.nodes} nodes)",
            "",
            "",
            f"{total.failed_nodes} failed" if total.failed_nodes else "",
            str(total.removed_images),
            output.size(total.removed_bytes),
            str(total.errors),
        ]
    )
    text = output.table(rows)
    if total.candidates:
        text += (
            f"Dry runs would remove {output.count(total.candidates, 'image')} "
            f"({output.size(total.candidate_bytes)}); not counted in the total.\n"
        )
    return text
