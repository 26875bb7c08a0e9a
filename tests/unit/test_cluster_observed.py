"""What the operator reads from a task body and a policy status."""

from __future__ import annotations

import datetime

import pytest

from imageprune.api.policy import Mode, Trigger
from imageprune.cluster import observed

pytestmark = pytest.mark.unit

R = "20261129-030000-schedule"


def body(status: dict[str, object] | None = None, run_id: str = R) -> dict[str, object]:
    return {
        "metadata": {"name": "p.node-a"},
        "spec": {"nodeName": "node-a", "policyName": "p", "runId": run_id},
        "status": status or {},
    }


def condition(kind: str, status: str, reason: str, message: str = "") -> dict[str, str]:
    return {"type": kind, "status": status, "reason": reason, "message": message}


def test_a_failed_run_reads_the_degraded_reason_and_the_report() -> None:
    view = observed.task_view(
        body(
            {
                "runId": R,
                "completionTime": "2026-11-29T03:01:00Z",
                "conditions": [
                    condition("Ready", "False", "RemovalsFailed", "2 removals failed"),
                    condition("Degraded", "True", "RemovalsFailed", "2 removals failed"),
                ],
                "report": {"dryRun": False, "removedImages": 3, "removedBytes": 300},
            }
        )
    )
    assert view is not None
    assert view.state(R) is observed.NodeState.FAILED
    assert (view.reason, view.message) == ("RemovalsFailed", "2 removals failed")
    assert (view.removed_images, view.removed_bytes, view.dry_run) == (3, 300, False)


def test_node_states_follow_the_contract() -> None:
    released = observed.task_view(body({"runId": "older", "completionTime": "x"}))
    started = observed.task_view(body({"runId": R}))
    done = observed.task_view(
        body({"runId": R, "completionTime": "x", "conditions": [condition("Ready", "True", "S")]})
    )
    other = observed.task_view(body({}, run_id="older"))
    assert released is not None
    assert started is not None
    assert done is not None
    assert other is not None
    assert released.state(R) is observed.NodeState.PENDING
    assert released.in_flight(R)  # released, its agent has not started
    assert started.state(R) is observed.NodeState.RUNNING
    assert done.state(R) is observed.NodeState.SUCCEEDED
    assert not done.in_flight(R)
    assert other.state(R) is observed.NodeState.PENDING
    assert not other.in_flight(R)


def test_hostile_bodies_are_skipped_or_read_as_zero() -> None:
    assert observed.task_view({"metadata": {"name": "x"}, "spec": "nonsense"}) is None
    view = observed.task_view(
        body({"runId": 7, "report": {"removedImages": -1, "removedBytes": True}, "conditions": 3})
    )
    assert view is not None
    assert (view.status_run_id, view.removed_images, view.removed_bytes) == (None, 0, 0)


def test_the_run_round_trips_through_the_status() -> None:
    start = datetime.datetime(2026, 11, 29, 3, tzinfo=datetime.UTC)
    run = observed.Run(R, Trigger.SCHEDULE, Mode.ENFORCE, start)
    assert observed.run_from_status({"run": run.to_status()}) == run
    assert observed.run_from_status({"run": {"id": R, "trigger": "Sometimes"}}) is None
    assert observed.run_from_status({}) is None


@pytest.mark.parametrize(
    ("status", "not_ready"),
    [
        ({"conditions": [{"type": "Ready", "status": "True"}]}, False),
        ({"conditions": [{"type": "Ready", "status": "False"}]}, True),
        ({"conditions": [{"type": "Ready", "status": "Unknown"}]}, True),  # kubelet silent
        ({"conditions": [{"type": "MemoryPressure", "status": "False"}]}, False),
        ({}, False),  # no Ready condition: not known to be NotReady
        ({"conditions": "junk"}, False),
    ],
)
def test_a_node_is_not_ready_only_when_its_ready_condition_says_so(
    status: dict[str, object], not_ready: bool
) -> None:
    assert observed.node_not_ready({"metadata": {"name": "n"}, "status": status}) is not_ready
