"""Which nodes have a working agent: the agent DaemonSet's pods, as a watch delivers
them. A node works when one of its agent pods is Ready (the kubelet's view of the
agent's /healthz) and not being deleted; during a rolling update the old and the new pod
briefly coexist, and either will do. Nothing here talks to the apiserver."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from imageprune.api.fields import mapping


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
        self._pods[uid] = (node, _ready(pod) and metadata.get("deletionTimestamp") is None)

    def working(self) -> frozenset[str]:
        return frozenset(node for node, works in self._pods.values() if works)


def pod_essentials(pod: Mapping[str, Any]) -> dict[str, Any]:
    """What AgentPods.update reads of a pod, as the watch delivers it."""
    metadata = mapping(pod.get("metadata"))
    return {
        "metadata": {key: metadata.get(key) for key in ("uid", "name", "deletionTimestamp")},
        "spec": {"nodeName": mapping(pod.get("spec")).get("nodeName")},
        "status": {"conditions": mapping(pod.get("status")).get("conditions")},
    }


def _ready(pod: Mapping[str, Any]) -> bool:
    found = mapping(pod.get("status")).get("conditions")
    conditions = found if isinstance(found, list) else []
    return any(
        isinstance(c, Mapping) and c.get("type") == "Ready" and c.get("status") == "True"
        for c in conditions
    )
