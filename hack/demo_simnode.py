"""The demo's simulated nodes: a Node object, its own containerd and an `imageprune
agent` process, with no kubelet. One real kubelet fits on a machine (fixed ports and
paths), so the other nodes stand in for more of a fleet.

The chart's operator only sends work to Ready nodes whose agent pod is Ready, as a
kubelet reports them. Here the demo reports for the missing kubelet, and only the truth:
the Node is Ready while its containerd answers, and the DaemonSet's agent pod bound to it
is Ready while the agent process's /healthz answers (that process plays the pod). A
taint keeps every other pod off these nodes.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from testkit import chart
from testkit.agent import AgentProcess
from testkit.containerd import ContainerdNode, running
from testkit.kube import ControlPlane

TAINT = {"key": "imageprune.io/simulated", "value": "true", "effect": "NoSchedule"}
HEARTBEAT = 5.0  # seconds; the node lifecycle controller's grace period is 50 s
# Enough for the agent pod's requests (the scheduler fits pods to allocatable).
CAPACITY = {"cpu": "2", "memory": "4Gi", "pods": "110"}


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class SimulatedNode:
    """Node `name`: runtime, agent, and the status a kubelet would post."""

    def __init__(
        self,
        plane: ControlPlane,
        runtime: ContainerdNode,
        name: str,
        *,
        labels: Mapping[str, str],
        namespace: str,
        workdir: Path,
    ) -> None:
        self.plane, self.runtime, self.name, self.namespace = plane, runtime, name, namespace
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name, "labels": {**labels, "kubernetes.io/hostname": name}},
            "spec": {"taints": [TAINT]},
        }
        plane.kubectl("create", "-f", "-", stdin=json.dumps(node))
        self._since = _now()
        self._report_node()
        # As the chart's agent pod logs in: a token of its service account, bound to the Node.
        token = chart.service_account_token(
            plane, namespace, "imageprune-agent", node=name, duration="24h"
        )
        self.agent = AgentProcess(
            plane,
            runtime,
            node_name=name,
            workdir=workdir / name,
            usage_interval="2s",
            kubeconfig=chart.token_kubeconfig(plane, f"agent-{name}", token),
        ).start()

    def report(self) -> None:
        """One heartbeat: the Node's status, and the agent pod's if its process is healthy."""
        self._report_node()
        self._report_agent_pods()

    def _report_node(self) -> None:
        try:
            self.runtime.image_ids()
            ready = True
        except Exception:  # any CRI error: the runtime does not answer
            ready = False
        condition = {
            "type": "Ready",
            "status": "True" if ready else "False",
            "reason": "SimulatedNodeReady" if ready else "RuntimeUnavailable",
            "message": "the demo's containerd answers" if ready else "containerd does not answer",
            "lastHeartbeatTime": _now(),
            "lastTransitionTime": self._since,
        }
        status = {"capacity": CAPACITY, "allocatable": CAPACITY, "conditions": [condition]}
        self._patch_status("node", self.name, status)

    def _report_agent_pods(self) -> None:
        pods = self.plane.get(
            "pods", "-n", self.namespace, f"--field-selector=spec.nodeName={self.name}"
        )["items"]
        for pod in pods:
            name = pod["metadata"]["name"]
            if pod["metadata"].get("deletionTimestamp"):  # a kubelet confirms it is gone
                self.plane.kubectl(
                    "delete", "pod", "-n", self.namespace, name, "--grace-period=0", "--force"
                )
            elif not _ready(pod) and self._agent_healthy():
                self._patch_status("pod", name, _running_status(pod), namespace=self.namespace)

    def _agent_healthy(self) -> bool:
        try:
            status: int = self.agent.get("/healthz")[0]
        except OSError:
            return False
        return status == 200

    def _patch_status(
        self, kind: str, name: str, status: Mapping[str, Any], namespace: str | None = None
    ) -> None:
        where = ["-n", namespace] if namespace else []
        self.plane.kubectl(
            "patch",
            kind,
            name,
            *where,
            "--subresource=status",
            "--type=merge",
            "-p",
            json.dumps({"status": status}),
        )

    def stop(self) -> None:
        self.agent.stop()


def _ready(pod: Mapping[str, Any]) -> bool:
    conditions = pod.get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def _running_status(pod: Mapping[str, Any]) -> dict[str, Any]:
    now = _now()
    conditions = ("PodScheduled", "Initialized", "ContainersReady", "Ready")
    return {
        "phase": "Running",
        "startTime": now,
        "conditions": [
            {"type": t, "status": "True", "lastTransitionTime": now} for t in conditions
        ],
        "containerStatuses": [
            {
                "name": c["name"],
                "image": c["image"],
                "imageID": "",
                "ready": True,
                "restartCount": 0,
                "started": True,
                "state": {"running": {"startedAt": now}},
            }
            for c in pod["spec"]["containers"]
        ],
    }


class Heartbeat:
    """Reports every simulated node every HEARTBEAT seconds, in a thread."""

    def __init__(self, nodes: list[SimulatedNode]) -> None:
        self.nodes = nodes
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(HEARTBEAT):
            for node in self.nodes:
                with contextlib.suppress(Exception):  # the next beat tries again
                    node.report()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


@contextlib.contextmanager
def started(
    plane: ControlPlane,
    count: int,
    *,
    labels: Mapping[str, str],
    namespace: str,
    workdir: Path,
) -> Iterator[list[SimulatedNode]]:
    """`count` simulated nodes (sim-1..), alternating containerd 1.6 and 2.x."""
    with contextlib.ExitStack() as stack:
        nodes: list[SimulatedNode] = []
        for n in range(1, count + 1):
            runtime = stack.enter_context(running("1.6" if n % 2 else "2.x"))
            node = SimulatedNode(
                plane, runtime, f"sim-{n}", labels=labels, namespace=namespace, workdir=workdir
            )
            stack.callback(node.stop)
            nodes.append(node)
        stack.callback(Heartbeat(nodes).stop)
        yield nodes
