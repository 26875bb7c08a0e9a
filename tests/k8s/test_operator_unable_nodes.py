"""Nodes that cannot run never stall a run, against a real kube-apiserver: a NotReady
node, or one without a Ready agent pod, is skipped at once (counted, named, announced, no
wave place, no failure budget); a node that can run again mid-run joins it; and an agent
that started a run and went silent fails its node after rollout.nodeTimeout.

The operator runs as the chart runs it, watching the agent pods by namespace and labels.
No kubelet runs here: each agent is a Pod object bound to its node whose Ready condition
the test sets, and the test plays the agents by patching task /status as
docs/protocol.md says."""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterator
from typing import Any

import pytest

from imageprune.api import names
from testkit import cluster
from testkit.kube import ControlPlane

pytestmark = pytest.mark.k8s


AGENTS = "imageprune-agents"
AGENT_LABELS = {"app.kubernetes.io/name": "imageprune", "app.kubernetes.io/component": "agent"}


@pytest.fixture(scope="module")
def plane(
    kube_control_plane: ControlPlane,
    imageprune_crds: list[str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ControlPlane]:
    workdir = tmp_path_factory.mktemp("operator")
    kube_control_plane.kubectl("create", "namespace", AGENTS)
    selector = ",".join(f"{k}={v}" for k, v in AGENT_LABELS.items())
    agents = (f"--agent-namespace={AGENTS}", f"--agent-selector={selector}")
    try:
        with cluster.operator(
            kube_control_plane, workdir, interval=1.0, extra_args=agents
        ) as process:
            yield kube_control_plane
            assert process.alive(), process.log_tail()
    finally:
        cluster.delete_nodes(kube_control_plane)
        kube_control_plane.kubectl("delete", "namespace", AGENTS, "--wait=false")


def _agent_pod(plane: ControlPlane, node: str, *, ready: bool = True) -> None:
    """The agent DaemonSet's pod on `node`, as the kubelet would report it."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"agent-{node}", "namespace": AGENTS, "labels": AGENT_LABELS},
        "spec": {"nodeName": node, "containers": [{"name": "agent", "image": "imageprune"}]},
    }
    plane.kubectl("apply", "-f", "-", stdin=json.dumps(pod))
    now = cluster.now_rfc3339()
    condition = {"type": "Ready", "status": str(ready), "lastTransitionTime": now}
    plane.kubectl(
        "patch",
        "pod",
        f"agent-{node}",
        f"--namespace={AGENTS}",
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": {"phase": "Running", "conditions": [condition]}}),
    )


def _set_ready(plane: ControlPlane, node: str, ready: bool) -> None:
    now = cluster.now_rfc3339()
    condition = {
        "type": "Ready",
        "status": "True" if ready else "False",
        "reason": "KubeletReady" if ready else "KubeletNotReady",
        "message": "simulated",
        "lastHeartbeatTime": now,
        "lastTransitionTime": now,
    }
    plane.kubectl(
        "patch",
        "node",
        node,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": {"conditions": [condition]}}),
    )


def _nodes(plane: ControlPlane, group: str, count: int, *, agents: bool = True) -> list[str]:
    created = [f"{group}-{i}" for i in range(count)]
    for name in created:
        cluster.create_node(plane, name, {"test": group})
        _set_ready(plane, name, ready=True)
        if agents:
            _agent_pod(plane, name)
    return created


def _policy(plane: ControlPlane, name: str, **rollout: Any) -> str:
    cluster.apply(
        plane,
        cluster.policy(
            name,
            nodeSelector={"matchLabels": {"test": name}},
            rollout={"maxConcurrentNodes": 1, **rollout},
        ),
    )
    return str(
        cluster.wait_for("a run", lambda: cluster.status(plane, name).get("run", {}).get("id"))
    )


def _released_task(plane: ControlPlane, policy: str, node: str, run: str) -> dict[str, Any]:
    return dict(
        cluster.wait_for(
            f"{node} released into {run}",
            lambda: (
                (t := cluster.tasks(plane, policy).get(node)) and t["spec"]["runId"] == run and t
            ),
        )
    )


def _run_to_the_end(plane: ControlPlane, policy: str, node: str, run: str) -> None:
    task = _released_task(plane, policy, node, run)
    cluster.agent_starts(plane, task)
    cluster.agent_finishes(plane, task)


def _completed(plane: ControlPlane, policy: str) -> dict[str, Any]:
    return dict(
        cluster.wait_for(
            "the run to complete",
            lambda: (s := cluster.status(plane, policy)).get("run", {}).get("completionTime") and s,
        )
    )


def _event_messages(plane: ControlPlane, policy: str, reason: str) -> list[str]:
    found = plane.get(
        "events",
        "-A",
        "--field-selector",
        f"involvedObject.kind={names.POLICY_KIND},involvedObject.name={policy},reason={reason}",
    )
    return [str(e["message"]) for e in found["items"]]


def test_a_not_ready_node_released_first_is_skipped_and_the_run_completes(
    plane: ControlPlane,
) -> None:
    down, first, second = _nodes(plane, "skip", 3)
    _set_ready(plane, down, ready=False)
    run = _policy(plane, "skip")

    # maxConcurrentNodes 1, and the NotReady node sorts first: the wave moves past it.
    _run_to_the_end(plane, "skip", first, run)
    _run_to_the_end(plane, "skip", second, run)
    status = _completed(plane, "skip")

    nodes = status["run"]["nodes"]
    assert (nodes["succeeded"], nodes["skipped"], nodes["failed"]) == (2, 1, 0)
    assert status["skippedNodes"][0]["node"] == down
    assert status["skippedNodes"][0]["reason"] == "NodeNotReady"
    # (Released or not: the operator's node index may have lagged the NotReady patch.)
    assert cluster.tasks(plane, "skip").get(down, {}).get("status", {}).get("runId") != run
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True"
    assert ready["message"].endswith(f"succeeded on 2 nodes, 1 skipped (NotReady: {down})")
    assert any(down in m for m in _event_messages(plane, "skip", "NodeSkipped"))
    wide = plane.kubectl("get", names.POLICY_PLURAL, "skip", "-o", "wide").stdout
    header, row = wide.splitlines()[:2]
    assert row.split()[header.split().index("SKIPPED")] == "1"


def test_a_node_that_becomes_ready_mid_run_joins_the_run(plane: ControlPlane) -> None:
    late, busy = _nodes(plane, "join", 2)
    _set_ready(plane, late, ready=False)
    run = _policy(plane, "join")
    task = _released_task(plane, "join", busy, run)
    cluster.agent_starts(plane, task)
    cluster.wait_for(
        "the NotReady node counted as skipped at once",
        lambda: cluster.status(plane, "join")["run"]["nodes"].get("skipped") == 1,
    )

    _set_ready(plane, late, ready=True)
    cluster.wait_for(
        "the node counted as pending again",
        lambda: cluster.status(plane, "join")["run"]["nodes"].get("skipped") == 0,
    )
    cluster.agent_finishes(plane, task)
    _run_to_the_end(plane, "join", late, run)
    nodes = _completed(plane, "join")["run"]["nodes"]
    assert (nodes["succeeded"], nodes["skipped"]) == (2, 0)


def test_an_agent_silent_past_the_node_timeout_fails_its_node(plane: ControlPlane) -> None:
    silent, healthy = _nodes(plane, "silent", 2)
    run = _policy(plane, "silent", maxFailedNodes=1, nodeTimeout="1m")
    task = _released_task(plane, "silent", silent, run)
    # The agent took the run two minutes ago and was killed: its startTime stays behind.
    started = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=2)
    cluster.agent_starts(plane, task)
    cluster.patch_task_status(
        plane, task["metadata"]["name"], {"startTime": started.strftime("%Y-%m-%dT%H:%M:%SZ")}
    )

    _run_to_the_end(plane, "silent", healthy, run)  # its place in the wave was freed
    status = _completed(plane, "silent")
    assert status["run"]["nodes"]["failed"] == 1
    assert status["failedNodes"][0]["node"] == silent
    assert status["failedNodes"][0]["reason"] == "NodeTimeout"
    assert "rollout.nodeTimeout (1m)" in status["failedNodes"][0]["message"]


def test_a_node_without_a_working_agent_is_skipped_and_joins_once_its_agent_works(
    plane: ControlPlane,
) -> None:
    virtual, crashing, healthy = _nodes(plane, "agentless", 3, agents=False)
    _agent_pod(plane, crashing, ready=False)  # CrashLoopBackOff: never Ready
    _agent_pod(plane, healthy)
    run = _policy(plane, "agentless")

    # maxConcurrentNodes 1: neither agentless node, both first in order, holds the wave.
    task = _released_task(plane, "agentless", healthy, run)
    cluster.agent_starts(plane, task)
    status = cluster.wait_for(
        "both counted as skipped",
        lambda: (s := cluster.status(plane, "agentless"))["run"]["nodes"].get("skipped") == 2 and s,
    )
    assert {(n["node"], n["reason"]) for n in status["skippedNodes"]} == {
        (virtual, "AgentNotRunning"),
        (crashing, "AgentNotRunning"),
    }
    # The crashing agent recovers mid-run: its node joins the run.
    _agent_pod(plane, crashing)
    cluster.wait_for(
        "the recovered node counted as pending",
        lambda: cluster.status(plane, "agentless")["run"]["nodes"].get("skipped") == 1,
    )
    cluster.agent_finishes(plane, task)
    _run_to_the_end(plane, "agentless", crashing, run)
    status = _completed(plane, "agentless")
    assert (status["run"]["nodes"]["succeeded"], status["run"]["nodes"]["skipped"]) == (2, 1)
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["message"].endswith(f"1 skipped (no agent: {virtual})")
    assert any(virtual in m for m in _event_messages(plane, "agentless", "NodeSkipped"))
