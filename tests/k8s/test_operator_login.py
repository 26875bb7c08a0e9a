"""`imageprune operator --kubeconfig` whose user is an exec credential plugin, against
the real kube-apiserver: kopf's own watches and our calls both log in through it, as
v1 and as v1beta1; a plugin that fails stops the operator with an error naming it.

The plugin is a script printing an ExecCredential with the token of a ServiceAccount
bound to cluster-admin (testkit.agent.exec_plugin_kubeconfig)."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from testkit import cluster, proxy
from testkit.agent import admin_token, exec_plugin_kubeconfig, kubeconfig
from testkit.kube import ControlPlane

pytestmark = pytest.mark.k8s

V1, V1BETA1 = "client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1"


@pytest.fixture(scope="module")
def plane(kube_control_plane: ControlPlane, imageprune_crds: list[str]) -> ControlPlane:
    return kube_control_plane


@pytest.mark.parametrize("version", [V1, V1BETA1])
def test_the_operator_logs_in_through_an_exec_plugin(
    plane: ControlPlane, tmp_path: Path, version: str
) -> None:
    name = f"exec-{uuid.uuid4().hex[:8]}"
    kubeconfig = exec_plugin_kubeconfig(
        plane, name, api_version=version, token=admin_token(plane, name)
    )
    cluster.create_node(plane, name, {"exec-login": name})
    try:
        with cluster.operator(plane, tmp_path, kubeconfig=kubeconfig) as operator:
            selector = {"matchLabels": {"exec-login": name}}
            cluster.apply(plane, cluster.policy(name, nodeSelector=selector))
            # The task is our call; the status and the finalizer pass through kopf.
            cluster.wait_for("the node's task", lambda: name in cluster.tasks(plane, name))
            status = cluster.wait_for("the policy status", lambda: cluster.status(plane, name))
            assert status["run"]["nodes"]["matched"] == 1
            assert operator.alive(), operator.log_tail()
            # A refusal, not a bare "403": a watch's random timeoutSeconds can be 403.
            log = operator.log_tail()
            assert "HTTP/1.1 403" not in log, log
            assert "Forbidden" not in log, log
    finally:
        cluster.delete_nodes(plane)


def test_the_operator_works_through_a_proxy_url(plane: ControlPlane, tmp_path: Path) -> None:
    """The server's name resolves only at the proxy: kopf's connections (the policy's
    status) and ours (the task) both go through it, or fail."""
    name = f"proxied-{uuid.uuid4().hex[:8]}"
    private = "kubernetes.default.svc"  # in the apiserver's certificate
    port = plane.server.rsplit(":", 1)[1]
    cluster.create_node(plane, name, {"proxied": name})
    try:
        with proxy.running({private: "127.0.0.1"}) as server:
            config = kubeconfig(
                plane,
                name,
                {"token": admin_token(plane, name)},
                cluster={
                    "server": f"https://{private}:{port}",
                    "proxy-url": f"http://127.0.0.1:{server.server_address[1]}",
                },
            )
            with cluster.operator(plane, tmp_path, kubeconfig=config) as operator:
                cluster.apply(
                    plane, cluster.policy(name, nodeSelector={"matchLabels": {"proxied": name}})
                )
                cluster.wait_for("the node's task", lambda: name in cluster.tasks(plane, name))
                status = cluster.wait_for("the policy status", lambda: cluster.status(plane, name))
                assert status["run"]["nodes"]["matched"] == 1
                assert operator.alive(), operator.log_tail()
        assert server.tunnels, "nothing went through the proxy"
        assert {target.split(":")[0] for target in server.tunnels} == {private}
    finally:
        cluster.delete_nodes(plane)


def test_a_failing_plugin_stops_the_operator_naming_it(plane: ControlPlane) -> None:
    kubeconfig = exec_plugin_kubeconfig(plane, "broken-operator", api_version=V1, token=None)
    done = subprocess.run(
        [sys.executable, "-m", "imageprune.cluster.main", f"--kubeconfig={kubeconfig}"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("imageprune operator: error: ")
    assert "broken-operator-credential-plugin' failed with exit code 1" in done.stderr
    assert "cannot reach the token service" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_plugin_failing_once_kopf_logs_in_again_stops_the_operator(
    plane: ControlPlane, tmp_path: Path
) -> None:
    """The first credential is refused (401): kopf logs in again, the plugin now fails,
    and the operator exits naming it instead of retrying for ever."""
    runs = tmp_path / "runs"
    credential = {"apiVersion": V1, "kind": "ExecCredential", "status": {"token": "refused"}}
    script = tmp_path / "flaky-plugin"
    script.write_text(
        f"#!/bin/sh\necho run >> {runs}\n"
        f'if [ "$(wc -l < {runs})" -gt 1 ]; then echo "token service gone" >&2; exit 1; fi\n'
        f"echo '{json.dumps(credential)}'\n"
    )
    script.chmod(0o755)
    plugin = {"apiVersion": V1, "command": str(script), "interactiveMode": "Never"}
    config = kubeconfig(plane, "flaky", {"exec": plugin})
    done = subprocess.run(
        [sys.executable, "-m", "imageprune.cluster.main", f"--kubeconfig={config}"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stderr[-3000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("imageprune operator: error: cannot log in: exec credential plugin")
    assert "flaky-plugin' failed with exit code 1: token service gone" in last
    assert runs.read_text().count("run") == 2
