"""The container image (Dockerfile, hack/build-image.sh): built for real with buildah on
an mmdebstrap base, imported into containerd 2.x, and the agent and the operator run from
it through CRI as the chart runs them, against the real kube-apiserver."""

from __future__ import annotations

import http.client
import uuid
from pathlib import Path
from typing import Any

import pytest

from imageprune_cri._pb import api_pb2
from testkit import cluster, image, oci
from testkit.agent import AGENT_RULES, bind_cluster_role, condition, create_task, get_task
from testkit.cluster import wait_for
from testkit.containerd import ContainerdNode, Factory
from testkit.kube import ControlPlane
from testkit.rbac import LEADER_RULES, OPERATOR_RULES

pytestmark = pytest.mark.k8s  # and a real containerd, as tests/k8s/test_agent.py

SOCKET_GROUP = 2024  # not the agent's own group: only the supplementary group opens the socket
ALL_CAPABILITIES_DROPPED = "0000000000000000"


@pytest.fixture(scope="module")
def archive() -> Path:
    return image.build()


@pytest.fixture(scope="module")
def plane(kube_control_plane: ControlPlane, imageprune_crds: list[str]) -> ControlPlane:
    return kube_control_plane


def test_the_image_holds_the_runtime_and_nothing_else(archive: Path) -> None:
    contents = image.read_archive(archive)

    assert contents.ref == image.REF  # `ctr images import` names it so
    assert contents.config["User"] == "65532:65532"
    assert contents.config["Entrypoint"] == ["imageprune"]
    assert contents.size <= 150_000_000, contents.layer_sizes
    site = "opt/imageprune/lib/python3.11/site-packages"
    for needed in ("opt/imageprune/bin/imageprune", f"{site}/imageprune/agent/main.py"):
        assert needed in contents.paths
    # Bytecode is built in: the root filesystem is read-only at run time.
    assert f"{site}/imageprune/agent/__pycache__/main.cpython-311.pyc" in contents.paths
    for build_only in (f"{site}/pip", f"{site}/setuptools", "src", "usr/bin/apt", "usr/bin/gcc"):
        assert build_only not in contents.paths
    assert not any("/tests/" in p or ".wheelhouse" in p for p in contents.paths)


@pytest.fixture
def node(containerd_factory: Factory, archive: Path) -> ContainerdNode:
    node = containerd_factory("2.x")
    node.import_image(archive)
    wait_for(f"{image.REF} listed", lambda: image.REF in _tags(node))
    return node


def _pod(
    node: ContainerdNode, plane: ControlPlane, workdir: Path, rules: list[dict[str, Any]]
) -> image.ImagePod:
    """A started pod on `node` whose service account has exactly `rules`."""
    node_name = f"node-{uuid.uuid4().hex[:8]}"
    account = f"sa-{node_name}"
    token_dir = image.service_account(plane, account, workdir)
    bind_cluster_role(plane, account, rules)
    image.grant_socket(node, SOCKET_GROUP)
    return image.ImagePod(
        node,
        plane,
        node_name=node_name,
        workdir=workdir / "pod",
        socket_group=SOCKET_GROUP,
        service_account_dir=token_dir,
    ).start()


def _tags(node: ContainerdNode) -> set[str]:
    listed = node.images.ListImages(api_pb2.ListImagesRequest(), timeout=30).images
    return {tag for i in listed for tag in i.repo_tags}


def _health(pod: image.ImagePod) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", pod.health_port, timeout=5)
    try:
        conn.request("GET", "/healthz")
        return conn.getresponse().status
    except OSError:
        return 0
    finally:
        conn.close()


def test_the_agent_runs_from_the_image_locked_down_and_completes_a_run(
    plane: ControlPlane, node: ContainerdNode, tmp_path: Path
) -> None:
    pod = _pod(node, plane, tmp_path, AGENT_RULES)
    agent = pod.start_agent()
    (unused,) = node.add_images(oci.ImageSpec(repo_tags=("docker.io/test/unused:1",)))
    own_image = node.image_id_of(image.REF)

    # The process is what the DaemonSet asks for, as the host's kernel sees it.
    status = pod.process_status(agent)
    assert status["Uid"].split() == ["65532"] * 4
    assert status["Gid"].split() == ["65532"] * 4
    assert str(SOCKET_GROUP) in status["Groups"].split()
    assert status["CapEff"] == status["CapPrm"] == status["CapBnd"] == ALL_CAPABILITIES_DROPPED
    assert status["NoNewPrivs"] == "1"
    assert status["Seccomp"] == "2"  # filter mode: RuntimeDefault

    name = create_task(
        plane,
        policy=f"image-{uuid.uuid4().hex[:8]}",
        node=pod.node_name,
        run_id="r1",
        selection={"unusedFor": "0s"},
    )

    def completed() -> dict[str, Any] | None:
        if not pod.running(agent):
            raise AssertionError(f"the agent's container stopped:\n{pod.log_text(agent)}")
        task = get_task(plane, name)
        done = (task.get("status") or {}).get("runId") == "r1"
        return task if done and task["status"].get("completionTime") else None

    try:
        task = wait_for(f"task {name} completing run r1", completed)
    except AssertionError as e:
        raise AssertionError(f"{e}\nagent log:\n{pod.log_text(agent)}") from None

    assert condition(task, "Ready") == ("True", "Succeeded"), task["status"]
    report = task["status"]["report"]
    assert [r["id"] for r in report["results"]] == [unused.id]
    assert report["results"][0]["outcome"] == "Removed"
    assert report["verdicts"]["InUse"] == 1  # its own image
    # The image filesystem, mounted read-only at the runtime's path, gives the figures.
    assert report["imageFs"]["mountpoint"] == str(pod.image_filesystem())
    assert report["imageFs"]["usedBytesAfter"] > 0
    left = node.image_ids()
    assert unused.id not in left
    assert own_image in left
    # Its state directory (a hostPath owned by its user) took the usage records.
    records = pod.state_dir / "usage.json"
    wait_for("usage records", records.exists)
    assert records.stat().st_uid == image.USER
    assert wait_for("/healthz answering 200", lambda: _health(pod) == 200)
    # The socket's group is what opens the socket: without it, the same container cannot.
    code, output = pod.run_cli("with-group", ["images"], socket_group=True)
    assert code == 0, output
    code, output = pod.run_cli("without-group", ["images"], socket_group=False)
    assert code == 3, output  # the runtime could not be reached
    assert "Permission denied" in output
    assert pod.stop(agent) == 0  # SIGTERM, as the kubelet stops it: a clean exit


def test_the_operator_runs_from_the_image_and_releases_a_node(
    plane: ControlPlane, node: ContainerdNode, tmp_path: Path
) -> None:
    pod = _pod(node, plane, tmp_path, OPERATOR_RULES + LEADER_RULES)
    operator = pod.start_operator()
    labels = {"imageprune.test/image": pod.node_name}
    cluster.create_node(plane, pod.node_name, labels)
    policy = f"image-{uuid.uuid4().hex[:8]}"
    try:
        cluster.apply(
            plane, cluster.policy(policy, mode="DryRun", nodeSelector={"matchLabels": labels})
        )

        def released() -> dict[str, Any] | None:
            if not pod.running(operator):
                raise AssertionError(f"the operator stopped:\n{pod.log_text(operator)}")
            return cluster.tasks(plane, policy).get(pod.node_name)

        task = wait_for(f"the operator releasing {pod.node_name}", released)
        assert task["spec"]["runId"] == cluster.status(plane, policy)["run"]["id"]
        assert task["spec"]["mode"] == "DryRun"
        assert wait_for("/healthz answering 200", lambda: _health(pod) == 200)
    finally:
        # Only the operator removes a policy's finalizer: delete it while it runs.
        plane.kubectl("delete", "imageprunepolicy", policy, "--wait=true", timeout=90)
        plane.kubectl("delete", "node", pod.node_name)
    assert pod.stop(operator) == 0, pod.log_text(operator)
