"""Which nodes have a working agent, from the agent pods a watch delivers; and which
nodes cannot run, from that and the NotReady nodes."""

from __future__ import annotations

from typing import Any

import pytest

from imageprune.cluster import agents, standing

pytestmark = pytest.mark.unit


def pod(uid: str, node: str | None, *, ready: bool = True, deleting: bool = False) -> Any:
    metadata: dict[str, Any] = {"uid": uid, "name": f"agent-{uid}"}
    if deleting:
        metadata["deletionTimestamp"] = "2026-12-07T10:00:00Z"
    status = {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    return {"metadata": metadata, "spec": {"nodeName": node} if node else {}, "status": status}


def test_a_node_works_while_one_of_its_agent_pods_is_ready() -> None:
    pods = agents.AgentPods()
    assert not pods.synced
    pods.replace([pod("1", "a"), pod("2", "b", ready=False), pod("3", None)])
    assert pods.synced
    assert pods.working() == {"a"}
    # A rolling update on b: the new pod is Ready before the old one goes.
    pods.update("ADDED", pod("4", "b"))
    pods.update("DELETED", pod("2", "b", ready=False))
    assert pods.working() == {"a", "b"}
    # Deleted, or being deleted: it no longer counts.
    pods.update("MODIFIED", pod("1", "a", deleting=True))
    assert pods.working() == {"b"}
    pods.update("DELETED", pod("4", "b"))
    assert pods.working() == frozenset()


def test_a_new_listing_replaces_what_was_known() -> None:
    pods = agents.AgentPods()
    pods.replace([pod("1", "a")])
    pods.replace([pod("2", "b")])
    assert pods.working() == {"b"}


@pytest.mark.parametrize(
    "junk",
    [{}, {"metadata": None, "spec": [], "status": "x"}, {"spec": {"nodeName": 3}}],
)
def test_a_malformed_pod_counts_for_no_node(junk: Any) -> None:
    pods = agents.AgentPods()
    pods.replace([junk])
    assert pods.working() == frozenset()


def test_nodes_that_cannot_run_and_why() -> None:
    nodes = ["ok", "down", "no-agent", "down-no-agent"]
    found = standing.unable(nodes, not_ready={"down", "down-no-agent"}, working={"ok", "down"})
    assert found == {
        "down": standing.Unable.NODE_NOT_READY,
        "no-agent": standing.Unable.AGENT_NOT_RUNNING,
        "down-no-agent": standing.Unable.NODE_NOT_READY,
    }
    # Agents not known (no watch, or no listing yet): only NotReady counts.
    assert standing.unable(nodes, not_ready={"down"}, working=None) == {
        "down": standing.Unable.NODE_NOT_READY
    }


def test_what_is_kept_of_a_pod_reads_as_the_whole() -> None:
    whole = pod("1", "a", deleting=True)
    whole["spec"]["containers"] = [{"name": "agent", "image": "agent:1"}]
    kept = agents.pod_essentials(whole)
    assert "containers" not in kept["spec"]
    for listed in (whole, kept):
        pods = agents.AgentPods()
        pods.replace([listed, pod("2", "b")])
        assert pods.working() == {"b"}
    # Of its conditions, only whether it is Ready is kept.
    ready = pod("3", "c")
    ready["status"]["conditions"].insert(0, {"type": "PodScheduled", "status": "True"})
    assert agents.pod_essentials(ready)["status"] == {
        "conditions": ({"type": "Ready", "status": "True"},)
    }
    not_ready = pod("4", "d", ready=False)
    assert agents.pod_essentials(not_ready)["status"] == {"conditions": ()}
    pods = agents.AgentPods()
    pods.replace([agents.pod_essentials(p) for p in (ready, not_ready)])
    assert pods.working() == {"c"}
