"""The operator's own indexes of nodes and tasks, fed by watches: labels and NotReady
nodes, and tasks by policy, with the policy a change concerns (the one to wake)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from imageprune.api import task as api_task
from imageprune.cluster import fleet, observed

pytestmark = pytest.mark.unit


def node(name: str, *, ready: str | None = "True", **labels: str) -> dict[str, Any]:
    conditions = [] if ready is None else [{"type": "Ready", "status": ready}]
    return {"metadata": {"name": name, "labels": labels}, "status": {"conditions": conditions}}


def task(name: str, policy: str, node_name: str = "n1", run: str = "r1") -> dict[str, Any]:
    spec = {"nodeName": node_name, "policyName": policy, "runId": run}
    return {"metadata": {"name": name}, "spec": spec}


def test_nodes_keep_labels_and_the_not_ready_ones() -> None:
    nodes = fleet.Nodes()
    assert not nodes.synced
    nodes.replace([node("a", zone="x"), node("b", ready="Unknown"), node("c", ready=None)])
    assert nodes.synced
    assert nodes.labels == {"a": {"zone": "x"}, "b": {}, "c": {}}
    assert nodes.not_ready == {"b"}  # no Ready condition at all: not known to be NotReady
    nodes.update("MODIFIED", node("b", zone="y"))
    nodes.update("MODIFIED", node("a", ready="False"))
    assert nodes.labels["b"] == {"zone": "y"}
    assert nodes.not_ready == {"a"}
    nodes.update("DELETED", node("a"))
    assert "a" not in nodes.labels
    assert nodes.not_ready == set()


def test_a_new_node_listing_replaces_what_was_known() -> None:
    nodes = fleet.Nodes()
    nodes.replace([node("a", ready="False")])
    nodes.replace([node("b")])
    assert nodes.labels == {"b": {}}
    assert nodes.not_ready == set()


def test_nodes_ignore_objects_without_a_name() -> None:
    nodes = fleet.Nodes()
    nodes.update("ADDED", {"metadata": "garbage"})
    assert nodes.labels == {}


def test_tasks_are_kept_by_policy_and_say_which_policy_changed() -> None:
    tasks = fleet.Tasks()
    tasks.replace([task("p.n1", "p"), task("q.n1", "q")])
    assert tasks.synced
    assert [v.name for v in tasks.of("p")] == ["p.n1"]
    assert tasks.update("MODIFIED", task("p.n2", "p", "n2")) == "p"
    assert sorted(v.name for v in tasks.of("p")) == ["p.n1", "p.n2"]
    assert tasks.update("DELETED", task("q.n1", "q")) == "q"
    assert tasks.of("q") == []
    assert tasks.by_policy.keys() == {"p"}


def test_a_task_that_changes_policy_moves_and_one_that_stops_being_ours_goes() -> None:
    tasks = fleet.Tasks()
    tasks.replace([task("t", "p")])
    assert tasks.update("MODIFIED", task("t", "q")) == "q"
    assert tasks.of("p") == []
    assert [v.name for v in tasks.of("q")] == ["t"]
    # No policy in its spec: not ours any more; the policy it left is the one to wake.
    assert tasks.update("MODIFIED", {"metadata": {"name": "t"}, "spec": {}}) == "q"
    assert tasks.of("q") == []
    assert tasks.update("ADDED", {"metadata": {}, "spec": {}}) is None


def test_what_is_kept_of_a_node_and_a_task_reads_as_the_whole() -> None:
    whole = node("a", zone="x")
    whole["status"]["images"] = [{"names": ["big:1"], "sizeBytes": 1}] * 20
    kept = fleet.node_essentials(whole)
    assert "images" not in kept["status"]
    nodes = fleet.Nodes()
    nodes.replace([kept])
    assert nodes.labels == {"a": {"zone": "x"}}
    # Of its conditions, only Ready's status is kept.
    down = node("b", ready="Unknown")
    down["status"]["conditions"].insert(0, {"type": "DiskPressure", "status": "True"})
    down["status"]["conditions"][1] |= {"reason": "NodeStatusUnknown", "message": "stopped"}
    assert fleet.node_essentials(down)["status"] == {
        "conditions": ({"type": "Ready", "status": "Unknown"},)
    }
    nodes.update("ADDED", fleet.node_essentials(down))
    assert nodes.not_ready == {"b"}

    body = task("p.n1", "p")
    body["metadata"]["ownerReferences"] = [{"kind": "ImagePrunePolicy", "name": "p"}]
    body["status"] = {
        "runId": "r1",
        "completionTime": "2026-12-07T10:00:00Z",
        "conditions": [{"type": "Ready", "status": "True"}],
        "report": {
            "dryRun": True,
            "removedImages": 2,
            "results": [{"image": "x"}] * 100,
            "kept": [{"id": "sha256:k", "reason": "InUse"}] * 100,
            "keptTruncated": 3,
        },
    }
    reduced = api_task.essentials(body)
    assert reduced["status"]["report"] == {"dryRun": True, "removedImages": 2, "keptTruncated": 3}
    assert reduced["metadata"]["ownerReferences"] == body["metadata"]["ownerReferences"]
    assert observed.task_view(reduced) == observed.task_view(body)


def test_nodes_and_tasks_share_their_strings() -> None:
    """Each object arrives parsed on its own (its own copies of every string); the indexes
    keep one copy of each name, label key and value, policy and run id."""
    nodes, tasks = fleet.Nodes(), fleet.Tasks()
    for name in ("n1", "n2"):
        body = node(name, zone="eu-west-1a", host=name)
        nodes.update("ADDED", fleet.node_essentials(json.loads(json.dumps(body))))
        tasks.update("ADDED", json.loads(json.dumps(task(f"p.{name}", "p", name))))
    a, b = (fleet.node_essentials(node(name)) for name in ("n1", "n2"))
    assert a["status"] is b["status"]  # the same Ready status: one read-only copy
    one, two = nodes.labels["n1"], nodes.labels["n2"]
    assert one["zone"] is two["zone"]
    assert next(k for k in one if k == "zone") is next(k for k in two if k == "zone")
    names = {name: name for name in nodes.labels}
    for view in tasks.of("p"):
        assert view.node is names[view.node] is nodes.labels[view.node]["host"]
    first, second = tasks.of("p")
    assert first.policy is second.policy
    assert first.spec_run_id is second.spec_run_id
