"""Task statuses -> policy status: counts, bounded failed nodes, conditions, Events."""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imageprune.api import intorpercent
from imageprune.api.policy import Mode, PolicySpec, Rollout, Trigger
from imageprune.cluster import aggregate, fanout, observed, standing
from testkit.cluster import view

pytestmark = [
    pytest.mark.unit,
    pytest.mark.filterwarnings("ignore:mypy_extensions.TypedDict:DeprecationWarning"),
]

State = observed.NodeState
T0 = datetime.datetime(2026, 11, 29, 3, tzinfo=datetime.UTC)
RUN = observed.Run("20261129-030000-schedule", Trigger.SCHEDULE, Mode.ENFORCE, T0)
EVERYWHERE = PolicySpec(
    rollout=Rollout(
        max_concurrent_nodes=intorpercent.IntOrPercent(100, percent=True),
        max_failed_nodes=intorpercent.IntOrPercent(100, percent=True),
    )
)


def status_for(
    states: Mapping[str, State | None],
    *,
    previous: Mapping[str, object] | None = None,
    now: datetime.datetime = T0,
    spec: PolicySpec = EVERYWHERE,
    dry_run: bool = False,
    unable: Mapping[str, standing.Unable] | None = None,  # nodes with no task (or pending)
) -> dict[str, Any]:
    tasks = [
        view(n, s, RUN.id, dry_run=dry_run, removed=2, removed_bytes=3 * 1024**2)
        for n, s in states.items()
    ]
    result = fanout.plan(
        policy="p",
        generation=4,
        spec=spec,
        nodes={n: {} for n in [*states, *(unable or {})]},
        tasks=tasks,
        run=RUN,
        unable=unable,
        now=now,
    )
    return aggregate.status(result, RUN, previous or {}, aggregate.Context(generation=4, now=now))


def condition(status: Mapping[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == kind)


def test_counts_and_totals_of_a_finished_run() -> None:
    status = status_for({"a": State.SUCCEEDED, "b": State.SUCCEEDED, "c": State.FAILED})
    run = status["run"]
    assert run["nodes"] == {
        "matched": 3,
        "pending": 0,
        "running": 0,
        "succeeded": 2,
        "failed": 1,
        "skipped": 0,
    }
    assert (run["imagesRemoved"], run["bytesReclaimed"], run["reclaimed"]) == (
        6,
        9 * 1024**2,
        "9 MiB",
    )
    assert (run["candidates"], run["candidateBytes"]) == (0, 0)
    assert run["completionTime"] == "2026-11-29T03:00:00Z"
    assert status["failedNodes"] == [
        {"node": "c", "reason": "RuntimeUnavailable", "message": "no CRI runtime answers"}
    ]
    assert condition(status, "Ready")["status"] == "False"
    assert condition(status, "Degraded")["reason"] == "NodesFailed"
    assert condition(status, "Progressing")["status"] == "False"
    assert status["observedGeneration"] == 4


def test_a_dry_run_reports_candidates_not_removals() -> None:
    run = status_for({"a": State.SUCCEEDED}, dry_run=True)["run"]
    assert (run["imagesRemoved"], run["candidates"], run["candidateBytes"]) == (0, 2, 3 * 1024**2)


def test_a_run_in_progress_is_progressing_and_not_complete() -> None:
    status = status_for({"a": State.RUNNING, "b": None, "c": State.SUCCEEDED})
    assert "completionTime" not in status["run"]
    assert status["run"]["nodes"]["pending"] == 1  # released, its agent not started
    assert condition(status, "Progressing")["status"] == "True"
    assert condition(status, "Ready")["status"] == "Unknown"


def test_a_paused_run_says_why_in_its_status_and_conditions() -> None:
    spec = PolicySpec(rollout=Rollout(max_failed_nodes=intorpercent.IntOrPercent(0)))
    status = status_for({"a": State.FAILED, "b": State.PENDING}, spec=spec)
    assert status["run"]["paused"] is True
    assert "rollout.maxFailedNodes" in status["run"]["pausedReason"]
    for kind in ("Ready", "Progressing", "Degraded"):
        assert condition(status, kind)["reason"] == "RolloutPaused"
    names = [e.reason for e in aggregate.events({}, status)]
    assert names == ["NodeFailed", "RolloutPaused"]


def test_skipped_nodes_are_counted_named_and_announced_and_a_run_completes_without_them() -> None:
    unable = {
        "x": standing.Unable.AGENT_NOT_RUNNING,
        "y": standing.Unable.NODE_NOT_READY,
        "b": standing.Unable.AGENT_NOT_RUNNING,  # released, its agent gone before it started
    }
    status = status_for({"a": State.SUCCEEDED, "b": None, "c": State.SUCCEEDED}, unable=unable)
    nodes = status["run"]["nodes"]
    assert (nodes["skipped"], nodes["pending"], nodes["succeeded"]) == (3, 0, 2)
    assert "completionTime" in status["run"]
    assert [(n["node"], n["reason"]) for n in status["skippedNodes"]] == [
        ("b", "AgentNotRunning"),
        ("x", "AgentNotRunning"),
        ("y", "NodeNotReady"),
    ]
    ready = condition(status, "Ready")
    assert (ready["status"], ready["reason"]) == ("True", "RunSucceeded")
    assert ready["message"] == (
        f"run {RUN.id} succeeded on 2 nodes, 3 skipped (no agent: b, x; NotReady: y)"
    )
    events = aggregate.events({}, status)
    skipped = [e for e in events if e.reason == "NodeSkipped"]
    assert [e.message.split(" (")[0] for e in skipped] == [
        "node b was skipped",
        "node x was skipped",
        "node y was skipped",
    ]
    assert "no working imageprune agent" in skipped[0].message
    assert "0 failed, 3 skipped" in next(e for e in events if e.reason == "RunCompleted").message
    # Told once per run.
    assert [e.reason for e in aggregate.events(status, status)] == []


def test_a_run_that_no_node_could_take_is_not_ready() -> None:
    unable = {"x": standing.Unable.NODE_NOT_READY}
    ready = condition(status_for({}, unable=unable), "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "NodesSkipped")


def test_the_status_stays_small_whatever_the_number_of_nodes() -> None:
    small = status_for({f"n{i}": State.FAILED for i in range(3)})
    large = status_for(
        {f"n{i:05}": State.FAILED for i in range(5000)},
        unable=dict.fromkeys((f"s{i:05}" for i in range(5000)), standing.Unable.NODE_NOT_READY),
    )
    assert len(large["failedNodes"]) == aggregate.MAX_FAILED_NODES
    assert len(large["skippedNodes"]) == aggregate.MAX_FAILED_NODES
    assert "and 4990 more" in condition(large, "Ready")["message"]
    assert len(json.dumps(large)) < len(json.dumps(small)) + 2000


def test_transition_times_move_only_when_a_condition_status_changes() -> None:
    later = T0 + datetime.timedelta(minutes=5)
    first = status_for({"a": State.RUNNING, "b": State.RUNNING})
    second = status_for({"a": State.SUCCEEDED, "b": State.RUNNING}, previous=first, now=later)
    assert condition(second, "Progressing")["lastTransitionTime"] == "2026-11-29T03:00:00Z"
    assert condition(second, "Progressing")["message"] != condition(first, "Progressing")["message"]
    done = status_for({"a": State.SUCCEEDED, "b": State.SUCCEEDED}, previous=second, now=later)
    assert condition(done, "Progressing")["lastTransitionTime"] == "2026-11-29T03:05:00Z"
    assert condition(done, "Ready")["status"] == "True"


def test_completion_is_announced_once_and_its_time_kept() -> None:
    done = status_for({"a": State.SUCCEEDED})
    again = status_for({"a": State.SUCCEEDED}, previous=done, now=T0 + datetime.timedelta(hours=1))
    assert again["run"]["completionTime"] == done["run"]["completionTime"]
    assert [e.reason for e in aggregate.events(done, again)] == []
    first = aggregate.events({}, done)
    assert [e.reason for e in first] == ["RunCompleted"]
    assert "1 of 1 nodes succeeded" in first[0].message


def test_the_start_names_the_run_its_trigger_and_mode() -> None:
    event = aggregate.started(RUN)
    assert (event.warning, event.reason) == (False, "RunStarted")
    assert event.message == "run 20261129-030000-schedule started (Schedule, Enforce)"


def test_no_run_yet_says_what_it_waits_for() -> None:
    empty = fanout.plan(
        policy="p", generation=1, spec=EVERYWHERE, nodes={}, tasks=[], run=None, now=T0
    )
    status = aggregate.status(
        empty, None, {}, aggregate.Context(generation=1, now=T0, next_run_time=T0)
    )
    assert condition(status, "Ready")["reason"] == "NoRunYet"
    assert "2026-11-29T03:00:00Z" in condition(status, "Ready")["message"]
    assert status["nextRunTime"] == "2026-11-29T03:00:00Z"


def test_an_invalid_spec_is_degraded_and_keeps_the_last_run() -> None:
    done = status_for({"a": State.SUCCEEDED})
    status = aggregate.invalid(done, message="spec.schedule: bad", generation=5, now=T0)
    assert status["run"] == done["run"]
    assert condition(status, "Degraded")["reason"] == "InvalidSpec"
    assert condition(status, "Ready")["message"] == "spec.schedule: bad"


json_values = st.recursive(
    st.one_of(st.integers(), st.text(max_size=3), st.booleans()),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=2), inner, max_size=3)
    ),
    max_leaves=10,
)
documents = st.dictionaries(st.text(max_size=2), json_values, max_size=4)


def _apply(document: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """RFC 7386, as the apiserver applies a merge patch."""
    result = dict(document)
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            base = result.get(key)
            result[key] = _apply(base if isinstance(base, dict) else {}, value)
        else:
            result[key] = value
    return result


@settings(max_examples=300, deadline=None)
@given(old=documents, new=documents)
def test_a_merge_patch_turns_the_old_status_into_the_new(
    old: dict[str, Any], new: dict[str, Any]
) -> None:
    patch = aggregate.merge_patch(old, new)
    assert _apply(old, patch) == new
    assert (patch == {}) == (old == new)
