"""Helpers for the operator's tests: task views in a given state (unit tests of the pure
decisions), and, against the real apiserver, the operator process, Node objects, and
the agent's side of the protocol (patching a task's /status as docs/protocol.md says)."""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from imageprune.api import names
from imageprune.cluster import observed
from testkit import kube

_T = TypeVar("_T")
# On every Node these helpers create, so a module can delete exactly its own.
NODE_MARK = ("imageprune-test", "operator")


# ---- unit builders -----------------------------------------------------------------


def view(
    node: str,
    state: observed.NodeState | None,
    run_id: str,
    *,
    policy: str = "p",
    dry_run: bool = False,
    removed: int = 0,
    removed_bytes: int = 0,
) -> observed.TaskView:
    """The task of `node` in `state` for run `run_id`; state None: a task released into
    run `run_id` whose agent has not started."""
    name = f"{policy}.{node}"
    base = observed.TaskView(name=name, node=node, policy=policy, spec_run_id=run_id)
    if state is None:
        return base
    if state is observed.NodeState.PENDING:  # carries an older, finished run
        return observed.TaskView(
            name=name,
            node=node,
            policy=policy,
            spec_run_id="old",
            status_run_id="old",
            completed=True,
            ready=True,
        )
    return observed.TaskView(
        name=name,
        node=node,
        policy=policy,
        spec_run_id=run_id,
        status_run_id=run_id,
        completed=state is not observed.NodeState.RUNNING,
        ready={observed.NodeState.SUCCEEDED: True, observed.NodeState.FAILED: False}.get(state),
        reason="RuntimeUnavailable" if state is observed.NodeState.FAILED else "",
        message="no CRI runtime answers" if state is observed.NodeState.FAILED else "",
        dry_run=dry_run,
        removed_images=removed,
        removed_bytes=removed_bytes,
    )


# ---- against the real apiserver ---------------------------------------------------


def wait_for(
    what: str, probe: Callable[[], _T | None], *, timeout: float = 90.0, every: float = 0.3
) -> _T:
    """Poll until `probe` returns something true (not None, False, 0 or empty); fail
    naming `what`.
    A generous deadline, never a timed assertion: it only bounds a hang."""
    deadline = time.monotonic() + timeout
    last: _T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def create_node(plane: kube.ControlPlane, name: str, labels: Mapping[str, str]) -> None:
    """A Node object through the API: no kubelet, which the operator does not need."""
    metadata = {"name": name, "labels": {**labels, NODE_MARK[0]: NODE_MARK[1]}}
    body = {"apiVersion": "v1", "kind": "Node", "metadata": metadata}
    plane.kubectl("create", "-f", "-", stdin=json.dumps(body))


def delete_nodes(plane: kube.ControlPlane) -> None:
    """Every Node created by create_node."""
    plane.kubectl("delete", "nodes", "-l", "=".join(NODE_MARK), "--wait=true")


def label_node(plane: kube.ControlPlane, name: str, **labels: str | None) -> None:
    """Set labels (value) or remove them (None)."""
    args = [f"{k}-" if v is None else f"{k}={v}" for k, v in labels.items()]
    plane.kubectl("label", "node", name, "--overwrite", *args)


def apply(plane: kube.ControlPlane, manifest: Mapping[str, Any]) -> None:
    plane.kubectl("apply", "-f", "-", stdin=json.dumps(manifest))


def policy(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": names.API_VERSION,
        "kind": names.POLICY_KIND,
        "metadata": {"name": name},
        "spec": spec,
    }


def tasks(plane: kube.ControlPlane, policy_name: str) -> dict[str, dict[str, Any]]:
    """The policy's tasks by node name."""
    found = plane.get(names.TASK_PLURAL, "-l", f"{names.POLICY_LABEL}={policy_name}")
    return {item["spec"]["nodeName"]: item for item in found["items"]}


def status(plane: kube.ControlPlane, policy_name: str) -> dict[str, Any]:
    body = plane.get(names.POLICY_PLURAL, policy_name)
    return dict(body.get("status") or {})


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _condition(kind: str, state: str, reason: str, message: str = "") -> dict[str, str]:
    return {
        "type": kind,
        "status": state,
        "lastTransitionTime": now_rfc3339(),
        "reason": reason,
        "message": message,
    }


def patch_task_status(plane: kube.ControlPlane, name: str, status: Mapping[str, Any]) -> None:
    plane.kubectl(
        "patch",
        names.TASK_PLURAL,
        name,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": status}),
    )


def agent_starts(plane: kube.ControlPlane, task: Mapping[str, Any]) -> None:
    """The agent's first patch for the run its task's spec asks for."""
    patch_task_status(
        plane,
        task["metadata"]["name"],
        {
            "runId": task["spec"]["runId"],
            "trigger": task["spec"]["trigger"],
            "startTime": now_rfc3339(),
            "completionTime": None,
            "conditions": [
                _condition("Progressing", "True", "Running"),
                _condition("Ready", "Unknown", "Running"),
            ],
        },
    )


def agent_finishes(
    plane: kube.ControlPlane,
    task: Mapping[str, Any],
    *,
    failure: str | None = None,
    removed: int = 0,
    removed_bytes: int = 0,
) -> None:
    """The agent's final patch: success, or failure with reason `failure`."""
    dry_run = task["spec"]["mode"] == "DryRun"
    conditions = (
        [
            _condition("Ready", "True", "Succeeded"),
            _condition("Progressing", "False", "Succeeded"),
            _condition("Degraded", "False", "Succeeded"),
        ]
        if failure is None
        else [
            _condition("Ready", "False", failure, "simulated failure"),
            _condition("Progressing", "False", failure, "simulated failure"),
            _condition("Degraded", "True", failure, "simulated failure"),
        ]
    )
    patch_task_status(
        plane,
        task["metadata"]["name"],
        {
            "runId": task["spec"]["runId"],
            "completionTime": now_rfc3339(),
            "conditions": conditions,
            "report": {
                "dryRun": dry_run,
                "imagesSeen": removed + 3,
                "removedImages": removed,
                "removedBytes": removed_bytes,
                "results": [],
            },
        },
    )


class OperatorProcess:
    """`python -m imageprune.cluster.main` against the test control plane (it imports
    imageprune from this process's sys.path: the worktree, or the installed package)."""

    def __init__(
        self,
        plane: kube.ControlPlane,
        workdir: Path,
        *,
        interval: float,
        kubeconfig: Path | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.metrics_port, self.health_port = kube.free_ports(2)
        argv = [
            sys.executable,
            "-m",
            "imageprune.cluster.main",
            f"--kubeconfig={kubeconfig or plane.kubeconfig_path}",
            f"--metrics-port={self.metrics_port}",
            f"--health-port={self.health_port}",
            f"--interval={interval}",
            "--log-format=json",
            *extra_args,
        ]
        self._argv, self._workdir, self._starts = argv, workdir, 0
        self._process = self._spawn()

    def _spawn(self) -> kube._Process:
        self._starts += 1
        return kube._Process("operator", self._argv, self._workdir / f"operator-{self._starts}.log")

    def restart(self) -> None:
        """SIGTERM, wait, start again (same ports)."""
        self._process.stop()
        self._process = self._spawn()

    def log_tail(self) -> str:
        return self._process.log_tail(80)

    def log_lines(self) -> list[str]:
        """Every line the current process logged."""
        return self._process.log.read_text(errors="replace").splitlines()

    def alive(self) -> bool:
        return not self._process.exited()

    def exit_code(self) -> int | None:
        """None while it runs."""
        return self._process.popen.poll()

    def kill(self) -> None:
        """SIGKILL: a crash, nothing released on the way out."""
        os.killpg(self._process.popen.pid, signal.SIGKILL)
        self._process.popen.wait()

    def stop(self) -> None:
        self._process.stop()


@contextlib.contextmanager
def operator(
    plane: kube.ControlPlane,
    workdir: Path,
    *,
    interval: float = 1.0,
    kubeconfig: Path | None = None,
    extra_args: Sequence[str] = (),
) -> Iterator[OperatorProcess]:
    """The operator for the block; on the way out every policy is deleted while it still
    runs, since only the operator removes their finalizers (then the CRDs can go)."""
    process = OperatorProcess(
        plane, workdir, interval=interval, kubeconfig=kubeconfig, extra_args=extra_args
    )
    try:
        yield process
        plane.kubectl(
            "delete", names.POLICY_PLURAL, "--all", "--wait=true", "--timeout=120s", timeout=150
        )
    finally:
        process.stop()
