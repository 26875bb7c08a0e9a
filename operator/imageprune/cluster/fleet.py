"""The nodes and tasks the operator knows, as its watches deliver them: our own indexes,
not kopf's. kopf keeps one readiness toggle per indexed object until each has been
indexed once, and each new object wakes every worker: its start cost grew as the square
of the nodes (about 50 s at 4,000, docs/benchmarks.md "Fleet"). A listing here costs
one pass over the items. Nothing here talks to the apiserver."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from typing import Any

from imageprune.api.fields import mapping
from imageprune.cluster import observed


class Nodes:
    """Every Node's labels, and the few that are NotReady. Names, label keys and values are
    interned: the keys and most values repeat on every Node, the hostname label repeats the
    name, and the tasks and agent pods name the same nodes (observed, agents); shared, the
    labels of 10,000 Nodes take about 3 MiB instead of 8 (docs/benchmarks.md "Fleet")."""

    def __init__(self) -> None:
        self.labels: dict[str, dict[str, str]] = {}
        self.not_ready: set[str] = set()
        self.synced = False  # a complete listing has arrived

    def replace(self, nodes: Iterable[Mapping[str, Any]]) -> None:
        self.labels, self.not_ready = {}, set()
        for node in nodes:
            self.update("ADDED", node)
        self.synced = True

    def update(self, kind: str, node: Mapping[str, Any]) -> None:
        metadata = mapping(node.get("metadata"))
        name = metadata.get("name")
        if not isinstance(name, str):
            return
        if kind == "DELETED":
            self.labels.pop(name, None)
            self.not_ready.discard(name)
            return
        name = sys.intern(name)
        labels = mapping(metadata.get("labels"))
        self.labels[name] = _interned(labels)
        if observed.node_not_ready(node):
            self.not_ready.add(name)
        else:
            self.not_ready.discard(name)


class Tasks:
    """Our tasks' views, by policy then task name. update() says which policy a change
    concerns, so that only that policy is woken."""

    def __init__(self) -> None:
        self.by_policy: dict[str, dict[str, observed.TaskView]] = {}
        self._policy_of: dict[str, str] = {}  # task name -> policy
        self.synced = False

    def replace(self, tasks: Iterable[Mapping[str, Any]]) -> None:
        self.by_policy, self._policy_of = {}, {}
        for body in tasks:
            self.update("ADDED", body)
        self.synced = True

    def update(self, kind: str, body: Mapping[str, Any]) -> str | None:
        """The policy whose task changed; None for an object that is not one of ours."""
        view = observed.task_view(body)
        name = mapping(body.get("metadata")).get("name")
        if not isinstance(name, str):
            return None
        previous = self._policy_of.pop(name, None)
        if previous is not None:
            self._drop(previous, name)
        if view is None or kind == "DELETED":
            return previous
        self._policy_of[name] = view.policy
        self.by_policy.setdefault(view.policy, {})[name] = view
        return view.policy

    def of(self, policy: str) -> list[observed.TaskView]:
        return list(self.by_policy.get(policy, {}).values())

    def _drop(self, policy: str, name: str) -> None:
        views = self.by_policy.get(policy, {})
        views.pop(name, None)
        if not views:
            self.by_policy.pop(policy, None)


def node_essentials(node: Mapping[str, Any]) -> dict[str, Any]:
    """What Nodes.update reads: a Node's status.images alone is most of its 6 KB or more,
    and of its conditions (with their messages) only Ready counts. The labels are interned
    already here, while a listing of thousands is held whole."""
    metadata = mapping(node.get("metadata"))
    name = metadata.get("name")
    return {
        "metadata": {
            "name": sys.intern(name) if isinstance(name, str) else None,
            "labels": _interned(metadata.get("labels")),
        },
        "status": observed.ready_status(observed.ready_of(node)),
    }


def _interned(labels: object) -> dict[str, str]:
    return {sys.intern(str(k)): sys.intern(str(v)) for k, v in mapping(labels).items()}
