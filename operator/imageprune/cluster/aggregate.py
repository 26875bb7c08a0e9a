"""Task statuses -> the policy status: node counts, images and bytes, the failed nodes (at
most 10), and the Ready/Progressing/Degraded conditions. Its size does not grow with the
number of nodes. Also the Events worth telling a person, from the change between two
statuses."""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping, Sequence

from imageprune.api import conditions, times
from imageprune.api.fields import integer, mapping
from imageprune.cluster import fanout, observed
from imageprune.policy import quantities

MAX_FAILED_NODES = 10  # the CRD's maxItems for status.failedNodes (and skippedNodes)

_True, _False, _Unknown = conditions.Status.TRUE, conditions.Status.FALSE, conditions.Status.UNKNOWN


@dataclasses.dataclass(frozen=True, slots=True)
class Context:
    generation: int
    now: datetime.datetime
    suspended: bool = False
    last_schedule_time: datetime.datetime | None = None
    next_run_time: datetime.datetime | None = None


def status(
    plan: fanout.Plan,
    run: observed.Run | None,
    previous: Mapping[str, object],
    context: Context,
) -> dict[str, object]:
    """The whole policy status for this plan (before its writes land: a node released now
    counts as pending until its agent starts)."""
    body: dict[str, object] = {"observedGeneration": context.generation}
    old_conditions = _listed(previous, "conditions")
    if run is None:
        body["conditions"] = _set_all(
            old_conditions,
            context,
            ready=(_Unknown, "NoRunYet", _waiting(context)),
            progressing=(_False, "Idle", _waiting(context)),
            degraded=(_False, "AsExpected", ""),
        )
    else:
        run_status, failed, skipped = _run(plan, run, previous, context)
        body["run"] = run_status
        body["failedNodes"] = failed
        body["skippedNodes"] = skipped
        body["conditions"] = _run_conditions(old_conditions, run_status, skipped, context)
    if context.last_schedule_time is not None:
        body["lastScheduleTime"] = times.to_rfc3339(context.last_schedule_time)
    if context.next_run_time is not None:
        body["nextRunTime"] = times.to_rfc3339(context.next_run_time)
    return body


def invalid(
    previous: Mapping[str, object], *, message: str, generation: int, now: datetime.datetime
) -> dict[str, object]:
    """The status of a policy whose spec cannot be used: the rest of the status stays."""
    context = Context(generation=generation, now=now)
    return {
        **previous,
        "observedGeneration": generation,
        "conditions": _set_all(
            _listed(previous, "conditions"),
            context,
            ready=(_False, "InvalidSpec", message),
            progressing=(_False, "InvalidSpec", message),
            degraded=(_True, "InvalidSpec", message),
        ),
    }


def _run(
    plan: fanout.Plan, run: observed.Run, previous: Mapping[str, object], context: Context
) -> tuple[dict[str, object], list[dict[str, str]], list[dict[str, str]]]:
    counts = dict.fromkeys(observed.NodeState, 0)
    removed = removed_bytes = candidates = candidate_bytes = 0
    noted: dict[observed.NodeState, list[dict[str, str]]] = {
        observed.NodeState.FAILED: [],
        observed.NodeState.SKIPPED: [],
    }
    for node in plan.matched:
        standing = plan.standings[node]
        state = standing.state
        counts[state] += 1
        notes = noted.get(state)
        if notes is not None and len(notes) < MAX_FAILED_NODES:
            notes.append({"node": node, "reason": standing.reason, "message": standing.message})
        view = plan.tasks.get(node)
        if view is None or state not in (observed.NodeState.SUCCEEDED, observed.NodeState.FAILED):
            continue
        if view.dry_run:
            candidates += view.removed_images
            candidate_bytes += view.removed_bytes
        else:
            removed += view.removed_images
            removed_bytes += view.removed_bytes
    body = run.to_status() | {
        "nodes": {
            "matched": len(plan.matched),
            **{state.value: counts[state] for state in observed.NodeState},
        },
        "imagesRemoved": removed,
        "bytesReclaimed": removed_bytes,
        "reclaimed": quantities.format_bytes(removed_bytes),
        "candidates": candidates,
        "candidateBytes": candidate_bytes,
        "paused": bool(plan.wave and plan.wave.paused),
    }
    if plan.wave and plan.wave.paused_reason:
        body["pausedReason"] = plan.wave.paused_reason
    done = counts[observed.NodeState.PENDING] == counts[observed.NodeState.RUNNING] == 0
    body.pop("completionTime", None)
    if done:
        # Kept from the previous status for the same run: it completed once, at that time.
        old = mapping(previous.get("run"))
        same = old.get("id") == run.id and isinstance(old.get("completionTime"), str)
        body["completionTime"] = old["completionTime"] if same else times.to_rfc3339(context.now)
    return body, noted[observed.NodeState.FAILED], noted[observed.NodeState.SKIPPED]


def _run_conditions(
    old: Sequence[Mapping[str, object]],
    run: Mapping[str, object],
    skipped_nodes: Sequence[Mapping[str, str]],
    context: Context,
) -> list[Mapping[str, object]]:
    nodes = mapping(run.get("nodes"))
    matched, failed = integer(nodes.get("matched")), integer(nodes.get("failed"))
    running, skipped = integer(nodes.get("running")), integer(nodes.get("skipped"))
    succeeded = integer(nodes.get("succeeded"))
    skips = _skips(skipped, skipped_nodes)
    progress = (
        f"run {run.get('id')}: {succeeded + failed} of {matched} nodes done, {running} running"
        + skips
    )
    failures = f"{failed} of {matched} nodes failed in run {run.get('id')}"
    degraded = (_True, "NodesFailed", failures) if failed else (_False, "AsExpected", "")
    if run.get("paused"):
        reason = str(run.get("pausedReason", ""))
        paused = (_False, "RolloutPaused", reason)
        ready, progressing, degraded = paused, paused, (_True, "RolloutPaused", reason)
    elif "completionTime" in run:
        if matched == 0:
            ready = (_True, "NoMatchingNodes", "no node matches spec.nodeSelector")
        elif failed:
            ready = (_False, "NodesFailed", failures + skips)
        elif succeeded == 0:
            ready = (_False, "NodesSkipped", f"run {run.get('id')}: no node could run it" + skips)
        else:
            done = f"run {run.get('id')} succeeded on {succeeded} nodes"
            ready = (_True, "RunSucceeded", done + skips)
        progressing = (_False, "RunCompleted", progress)
    elif context.suspended and running == 0:
        waiting = f"suspended; {progress}"
        ready, progressing = (_Unknown, "Suspended", waiting), (_False, "Suspended", waiting)
    else:
        ready, progressing = (_Unknown, "RunInProgress", progress), (_True, "Running", progress)
    return _set_all(old, context, ready=ready, progressing=progressing, degraded=degraded)


_Value = tuple[conditions.Status, str, str]
_SKIP_REASONS = {"AgentNotRunning": "no agent", "NodeNotReady": "NotReady"}


def _skips(count: int, listed: Sequence[Mapping[str, str]]) -> str:
    """', 2 skipped (no agent: node-a; NotReady: node-b)', naming the listed nodes."""
    if not count:
        return ""
    by_reason: dict[str, list[str]] = {}
    for note in listed:
        reason = _SKIP_REASONS.get(note.get("reason", ""), note.get("reason", ""))
        by_reason.setdefault(reason, []).append(note.get("node", ""))
    names = "; ".join(f"{reason}: {', '.join(nodes)}" for reason, nodes in by_reason.items())
    more = f" and {count - len(listed)} more" if count > len(listed) else ""
    return f", {count} skipped ({names}{more})"


def _set_all(
    old: Sequence[Mapping[str, object]],
    context: Context,
    *,
    ready: _Value,
    progressing: _Value,
    degraded: _Value,
) -> list[Mapping[str, object]]:
    result = list(old)
    for kind, (state, reason, message) in (
        (conditions.Type.READY, ready),
        (conditions.Type.PROGRESSING, progressing),
        (conditions.Type.DEGRADED, degraded),
    ):
        result = conditions.set_condition(
            result,
            kind=kind,
            status=state,
            reason=reason,
            message=message,
            observed_generation=context.generation,
            now=context.now,
        )
    return result


def _waiting(context: Context) -> str:
    if context.suspended:
        return "suspended"
    if context.next_run_time is not None:
        return f"the first run starts at {times.to_rfc3339(context.next_run_time)}"
    return "waiting for the first run"


# ---- Events --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Event:
    warning: bool
    reason: str
    message: str


def events(old: Mapping[str, object], new: Mapping[str, object]) -> list[Event]:
    """What changed between two statuses that a person should see in `kubectl describe`:
    node failed or skipped, rollout paused, run completed (run started: see started())."""
    old_run, new_run = mapping(old.get("run")), mapping(new.get("run"))
    if not new_run:
        return []
    same_run = old_run.get("id") == new_run.get("id")
    found: list[Event] = []
    for field, reason, verb in (
        ("failedNodes", "NodeFailed", "failed"),
        ("skippedNodes", "NodeSkipped", "was skipped"),
    ):
        known = {str(f.get("node")) for f in _listed(old, field)} if same_run else set()
        found.extend(
            Event(
                True,
                reason,
                f"node {note.get('node')} {verb} ({note.get('reason')}): {note.get('message')}",
            )
            for note in _listed(new, field)
            if note.get("node") not in known
        )
    if new_run.get("paused") and not (same_run and old_run.get("paused")):
        found.append(Event(True, "RolloutPaused", str(new_run.get("pausedReason", ""))))
    if "completionTime" in new_run and not (same_run and "completionTime" in old_run):
        nodes = mapping(new_run.get("nodes"))
        if new_run.get("mode") == "DryRun":
            outcome = (
                f"{new_run.get('candidates')} images"
                f" ({quantities.format_bytes(integer(new_run.get('candidateBytes')))}) would go"
            )
        else:
            outcome = f"{new_run.get('imagesRemoved')} images removed, {new_run.get('reclaimed')}"
        found.append(
            Event(
                bool(integer(nodes.get("failed"))),
                "RunCompleted",
                f"run {new_run.get('id')} completed: {nodes.get('succeeded')} of"
                f" {nodes.get('matched')} nodes succeeded, {nodes.get('failed')} failed,"
                f" {integer(nodes.get('skipped'))} skipped;"
                f" {outcome}",
            )
        )
    return found


def started(run: observed.Run) -> Event:
    """Announced as soon as the run is persisted, before its first wave."""
    return Event(
        False, "RunStarted", f"run {run.id} started ({run.trigger.value}, {run.mode.value})"
    )


def merge_patch(old: Mapping[str, object], new: Mapping[str, object]) -> dict[str, object]:
    """A JSON merge patch turning `old` into `new` (None deletes a key; lists are
    replaced whole); empty when nothing changed."""
    patch: dict[str, object] = {}
    for key in old.keys() - new.keys():
        patch[key] = None
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, Mapping) and isinstance(before, Mapping):
            inner = merge_patch(before, value)
            if inner:
                patch[key] = inner
        elif before != value:
            patch[key] = value
    return patch


def _listed(status: Mapping[str, object], field: str) -> list[Mapping[str, object]]:
    found = status.get(field)
    return [f for f in found if isinstance(f, Mapping)] if isinstance(found, list) else []
