"""`imageprune agent` as a real process for tests, against the test control plane
(tests/testkit/kube.py) and a test containerd node (tests/testkit/containerd.py), and
ImagePruneTasks created directly, as the operator would (no operator runs here)."""

from __future__ import annotations

import datetime
import http.client
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import imageprune
import imageprune_cri
from imageprune.api import task as api_task
from imageprune.api.policy import Mode, Trigger
from testkit import kube
from testkit.containerd import ContainerdNode

# The operator sets the policy as owner; no garbage collector runs here, so any uid does.
POLICY_UID = "00000000-0000-4000-8000-000000000001"

Task = dict[str, Any]


def import_path() -> str:
    """The PYTHONPATH that makes the child import the code under test, not another
    installed copy."""
    roots = {
        Path(imageprune.__file__).resolve().parents[1],
        Path(imageprune_cri.__file__).resolve().parents[1],
    }
    return os.pathsep.join(map(str, sorted(roots)))


class AgentProcess:
    """One agent for one node. Start with start(); stop() returns its exit code."""

    def __init__(
        self,
        plane: kube.ControlPlane,
        node: ContainerdNode,
        *,
        node_name: str,
        workdir: Path,
        usage_interval: str = "1s",
        disk_check_interval: str = "1s",
        timeout: float = 5.0,
        kubeconfig: Path | None = None,
        extra: Sequence[str] = (),
    ) -> None:
        self.plane = plane
        self.node = node
        self.node_name = node_name
        self.workdir = workdir
        self.state_dir = workdir / "state"
        self.metrics_port, self.health_port = kube.free_ports(2)
        self.argv = [
            "env",
            f"PYTHONPATH={import_path()}",
            sys.executable,
            "-m",
            "imageprune.agent.main",
            f"--node-name={node_name}",
            f"--runtime-endpoint={node.endpoint}",
            f"--state-dir={self.state_dir}",
            f"--kubeconfig={kubeconfig or plane.kubeconfig_path}",
            f"--metrics-port={self.metrics_port}",
            f"--health-port={self.health_port}",
            f"--usage-interval={usage_interval}",
            f"--disk-check-interval={disk_check_interval}",
            f"--timeout={timeout:g}",
            "--log-format=json",
            *extra,
        ]
        self.process: kube._Process | None = None  # the control plane's process runner

    def start(self) -> AgentProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.process = kube._Process(
            f"agent-{self.node_name}", self.argv, self.workdir / "agent.log"
        )
        return self

    def stop(self) -> int | None:
        if self.process is None:
            return None
        self.process.stop()
        code = self.process.popen.returncode
        self.process = None
        return code

    def signal(self, signum: signal.Signals) -> None:
        assert self.process is not None
        os.kill(self.process.popen.pid, signum)

    def wait_exit(self, timeout: float = 30.0) -> int:
        assert self.process is not None
        return self.process.popen.wait(timeout=timeout)

    def __enter__(self) -> AgentProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log_lines(self) -> list[dict[str, Any]]:
        """The agent's JSON log lines (anything else, e.g. a traceback, as a message)."""
        path = self.workdir / "agent.log"
        lines = []
        for line in path.read_text(errors="replace").splitlines() if path.exists() else ():
            try:
                lines.append(json.loads(line))
            except ValueError:
                lines.append({"level": "raw", "message": line})
        return lines

    def log_text(self) -> str:
        return "\n".join(f"{e.get('level')}: {e.get('message')}" for e in self.log_lines())

    def get(self, path: str) -> tuple[int, bytes]:
        """GET one of the agent's endpoints (health or metrics)."""
        port = self.metrics_port if path.startswith("/metrics") else self.health_port
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def wait_until(self, what: str, check: Callable[[], bool], timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if self.process is not None and self.process.exited():
                raise AssertionError(
                    f"the agent exited while waiting for {what}:\n{self.log_text()}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{what}: not within {timeout:g}s; agent log:\n{self.log_text()}"
                )
            time.sleep(0.2)


def create_task(
    plane: kube.ControlPlane,
    *,
    policy: str,
    node: str,
    run_id: str,
    selection: Mapping[str, object],
    mode: Mode = Mode.ENFORCE,
    trigger: Trigger = Trigger.CREATE,
) -> str:
    """Create the task of (policy, node) asking for run `run_id`, as the operator
    would; returns its name."""
    spec = api_task.TaskSpec(
        node_name=node,
        policy_name=policy,
        policy_generation=1,
        run_id=run_id,
        trigger=trigger,
        mode=mode,
        selection=selection,
        requested_at=datetime.datetime.now(datetime.UTC),
    )
    manifest = api_task.manifest(spec, policy_uid=POLICY_UID)
    plane.kubectl("create", "-f", "-", stdin=json.dumps(manifest))
    return api_task.task_name(policy, node)


def request_run(plane: kube.ControlPlane, name: str, run_id: str, **spec: object) -> None:
    """Ask for a new run, as the operator does when it releases the node."""
    patch = {"spec": {"runId": run_id, **spec}}
    plane.kubectl("patch", "imageprunetask", name, "--type=merge", "-p", json.dumps(patch))


def get_task(plane: kube.ControlPlane, name: str) -> Task:
    task: Task = plane.get("imageprunetask", name)
    return task


def condition(task: Task, kind: str) -> tuple[str, str] | None:
    """(status, reason) of the task's condition `kind`, if set."""
    for c in (task.get("status") or {}).get("conditions") or ():
        if c.get("type") == kind:
            return c["status"], c["reason"]
    return None


def wait_for_run(
    plane: kube.ControlPlane, agent: AgentProcess, name: str, run_id: str, timeout: float = 60.0
) -> Task:
    """The task once its status reports run `run_id` completed."""
    found: Task = {}

    def completed() -> bool:
        nonlocal found
        found = get_task(plane, name)
        status = found.get("status") or {}
        return status.get("runId") == run_id and bool(status.get("completionTime"))

    agent.wait_until(f"task {name} completing run {run_id}", completed, timeout)
    return found


def restart_apiserver(plane: kube.ControlPlane, *, down_for: float = 2.0) -> None:
    """Kill the kube-apiserver and start it again on the same port, etcd untouched (so
    resourceVersions stay valid). kube.ControlPlane has no restart of its own: this
    reuses its process list and start arguments."""
    apiserver = plane._processes.pop()
    assert apiserver.name == "kube-apiserver"
    argv = list(apiserver.popen.args)  # type: ignore[arg-type]
    apiserver.stop()
    time.sleep(down_for)
    restarted = plane._spawn("kube-apiserver", argv)
    deadline = time.monotonic() + 90
    while plane.kubectl("get", "--raw=/readyz", check=False).returncode != 0:
        if restarted.exited() or time.monotonic() > deadline:
            raise RuntimeError(f"kube-apiserver did not come back:\n{restarted.log_tail()}")
        time.sleep(0.25)


AGENT_RULES = [
    {
        "apiGroups": ["imageprune.io"],
        "resources": ["imageprunetasks"],
        "verbs": ["get", "list", "watch"],
    },
    {"apiGroups": ["imageprune.io"], "resources": ["imageprunetasks/status"], "verbs": ["patch"]},
]


def service_account_kubeconfig(plane: kube.ControlPlane, name: str, *, bind: bool) -> Path:
    """A kubeconfig with the bearer token of a new ServiceAccount `name` (as a pod's
    would be), granted the agent's ClusterRole when `bind` (see bind_cluster_role)."""
    plane.kubectl("create", "serviceaccount", name, "-n", "default")
    token = plane.kubectl("create", "token", name, "-n", "default").stdout.strip()
    path = kubeconfig(plane, name, {"token": token})
    if bind:
        bind_cluster_role(plane, name)
    return path


def kubeconfig(
    plane: kube.ControlPlane,
    name: str,
    user: Mapping[str, object],
    cluster: Mapping[str, object] | None = None,
) -> Path:
    """A kubeconfig for the test apiserver whose user is `user`; `cluster` adds to or
    replaces its cluster's fields."""
    path = plane.workdir / f"{name}.kubeconfig"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "c",
                "cluster": {
                    "server": plane.server,
                    "certificate-authority": str(plane.pki / "ca.crt"),
                    **(cluster or {}),
                },
            }
        ],
        "users": [{"name": name, "user": dict(user)}],
        "contexts": [{"name": name, "context": {"cluster": "c", "user": name}}],
        "current-context": name,
    }
    path.write_text(json.dumps(config))  # JSON is YAML
    return path


def admin_token(plane: kube.ControlPlane, name: str) -> str:
    """A token of a new ServiceAccount `name` that may do anything (cluster-admin)."""
    plane.kubectl("create", "serviceaccount", name, "-n", "default")
    plane.kubectl(
        "create",
        "clusterrolebinding",
        name,
        "--clusterrole=cluster-admin",
        f"--serviceaccount=default:{name}",
    )
    return plane.kubectl("create", "token", name, "-n", "default").stdout.strip()


def exec_plugin_kubeconfig(
    plane: kube.ControlPlane, name: str, *, api_version: str, token: str | None
) -> Path:
    """A kubeconfig whose user is an exec credential plugin: a script that prints an
    ExecCredential of `api_version` with `token`, or, without one, fails as a plugin
    that cannot reach its token service does."""
    script = plane.workdir / f"{name}-credential-plugin"
    if token is None:
        body = 'echo "cannot reach the token service" >&2\nexit 1\n'
    else:
        credential = {
            "apiVersion": api_version,
            "kind": "ExecCredential",
            "status": {"token": token},
        }
        body = f"cat <<'EOF'\n{json.dumps(credential)}\nEOF\n"
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(0o755)
    user = {"exec": {"apiVersion": api_version, "command": str(script), "interactiveMode": "Never"}}
    return kubeconfig(plane, name, user)


def bind_cluster_role(
    plane: kube.ControlPlane, name: str, rules: Sequence[Mapping[str, object]] = AGENT_RULES
) -> None:
    """A ClusterRole `name` of exactly `rules` (by default the least the agent needs: read
    its tasks, write their status), bound to the ServiceAccount `name` in default."""
    plane.bind_cluster_role(name, rules, f"--serviceaccount=default:{name}")
