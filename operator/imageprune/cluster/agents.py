"""Which nodes have a working agent: the agent DaemonSet's pods, as a watch delivers
them. A node works when one of its agent pods is Ready (the kubelet's view of the
agent's /healthz) and not being deleted; during a rolling update the old and the new pod
briefly coexist, and either will do. Nothing here talks to the apiserver."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from typing import Any

from imageprune.api.fields import mapping
from imageprune.cluster import observed


class AgentPods:
    def __init__(self) -> None:
        self._pods: dict[str, tuple[str, bool]] = {}  # pod uid -> (node, works)
        self.synced = False  # a complete listing has arrived: absence now means something

    def replace(self, pods: Iterable[Mapping[str, Any]]) -> None:
        """A complete listing."""
        self._pods = {}
        for pod in pods:
            self.update("ADDED", pod)
        self.synced = True

    def update(self, kind: str, pod: Mapping[str, Any]) -> None:
        metadata = mapping(pod.get("metadata"))
        uid = str(metadata.get("uid") or metadata.get("name") or "")
        node = mapping(pod.get("spec")).get("nodeName")
        if kind == "DELETED" or not isinstance(node, str) or not node:
            self._pods.pop(uid, None)  # gone, or not scheduled yet
            return
        # Interned: the same string as the Node's name in fleet.Nodes.
        self._pods[uid] = (
            sys.intern(node),
            _ready(pod) and metadata.get("deletionTimestamp") is None,
        )

    def working(self) -> frozenset[str]:
        return frozenset(node for node, works in self._pods.values() if works)


def pod_essentials(pod: Mapping[str, Any]) -> dict[str, Any]:
    """What AgentPods.update reads of a pod, as the watch delivers it: of its conditions,
    only whether it is Ready."""
    metadata = mapping(pod.get("metadata"))
    node = mapping(pod.get("spec")).get("nodeName")
    return {
        "metadata": {key: metadata.get(key) for key in ("uid", "name", "deletionTimestamp")},
        "spec": {"nodeName": sys.intern(node) if isinstance(node, str) else None},
        "status": observed.ready_status("True" if _ready(pod) else None),
    }


def _ready(pod: Mapping[str, Any]) -> bool:
    return observed.ready_of(pod) == "True"
