"""The operator's own watches of nodes and tasks, against a real kube-apiserver: a task's
change wakes its policy's pass (the timer here is too slow to be what moves the run on),
and a deleted policy's tasks go in one DeleteCollection, or one by one where RBAC
refuses that verb."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from testkit import cluster, rbac
from testkit.kube import ControlPlane

pytestmark = pytest.mark.k8s

# Longer than any wait below: whatever moves a run on within it is a woken pass.
SLOW_TIMER = 600.0


@pytest.fixture(scope="module")
def plane(kube_control_plane: ControlPlane, imageprune_crds: list[str]) -> Iterator[ControlPlane]:
    try:
        yield kube_control_plane
    finally:
        cluster.delete_nodes(kube_control_plane)


def released_into(plane: ControlPlane, policy: str, run: str) -> dict[str, dict[str, object]]:
    tasks = cluster.tasks(plane, policy)
    return {
        node: task
        for node, task in tasks.items()
        if task["spec"]["runId"] == run and not task.get("status", {}).get("completionTime")
    }


def test_a_finished_task_wakes_its_policy_for_the_next_wave_and_the_status(
    plane: ControlPlane, tmp_path: Path
) -> None:
    for name in ("wake-0", "wake-1"):
        cluster.create_node(plane, name, {"test": "wake"})
    with cluster.operator(plane, tmp_path, interval=SLOW_TIMER) as operator:
        cluster.apply(
            plane,
            cluster.policy(
                "wake",
                nodeSelector={"matchLabels": {"test": "wake"}},
                rollout={"maxConcurrentNodes": 1},
            ),
        )
        run = cluster.wait_for(
            "a run", lambda: cluster.status(plane, "wake").get("run", {}).get("id")
        )
        for _ in range(2):  # each wave: one node, released after the last one finished
            flying = cluster.wait_for("a released node", lambda: released_into(plane, "wake", run))
            assert len(flying) == 1, sorted(flying)
            task = next(iter(flying.values()))
            cluster.agent_starts(plane, task)
            cluster.agent_finishes(plane, task)
        status = cluster.wait_for(
            "the status to say the run completed",
            lambda: (s := cluster.status(plane, "wake"))["run"].get("completionTime") and s,
        )
        assert status["run"]["nodes"]["succeeded"] == 2
        assert operator.alive(), operator.log_tail()


def test_without_deletecollection_a_deleted_policy_s_tasks_go_one_by_one(
    plane: ControlPlane, tmp_path: Path
) -> None:
    # RBAC from before the verb
    rules = rbac.without_deletecollection()
    with plane.user_with_rules("imageprune-operator-old-rbac", rules) as kubeconfig:
        allowed = plane.kubectl(
            "auth",
            "can-i",
            "deletecollection",
            "imageprunetasks.imageprune.io",
            f"--kubeconfig={kubeconfig}",
            check=False,
        )
        assert allowed.stdout.strip() == "no", allowed  # the verb is really missing
        for name in ("old-rbac-0", "old-rbac-1"):
            cluster.create_node(plane, name, {"test": "old-rbac"})
        # An old chart's rules have no leases either: one operator, no election.
        with cluster.operator(
            plane, tmp_path, kubeconfig=kubeconfig, extra_args=["--no-leader-election"]
        ) as operator:
            cluster.apply(
                plane,
                cluster.policy(
                    "old-rbac",
                    nodeSelector={"matchLabels": {"test": "old-rbac"}},
                    rollout={"maxConcurrentNodes": "100%"},
                ),
            )
            cluster.wait_for("two tasks", lambda: len(cluster.tasks(plane, "old-rbac")) == 2)
            plane.kubectl("delete", "imageprunepolicy", "old-rbac", "--wait=true")
            assert cluster.tasks(plane, "old-rbac") == {}
            assert operator.alive(), operator.log_tail()
