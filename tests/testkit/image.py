"""The container image for tests: built by hack/build-image.sh (cached by its inputs, so
only the first build of a tree costs anything), read back from its OCI archive, and run
on a test containerd through CRI the way the chart runs the agent and the operator.

Containers are created with crictl, the runtime's reference client, from JSON configs:
our CRI stubs (imageprune_cri/_pb) carry only what the product uses, and a container's
mounts and security context are not part of that."""

from __future__ import annotations

import base64
import dataclasses
import gzip
import io
import json
import os
import subprocess
import tarfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from google.protobuf import json_format

import imageprune
from imageprune_cri._pb import api_pb2
from testkit import binaries, kube
from testkit.containerd import ContainerdNode

BUILD_SCRIPT = binaries.REPO_ROOT / "hack" / "build-image.sh"
REF = f"docker.io/library/imageprune:{imageprune.__version__}"
USER = 65532  # the image's default user, and the chart's runAsUser / runAsGroup
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
# Where the chart mounts the node's socket, state directory and scratch space.
SOCKET_IN_POD = "/run/imageprune/cri.sock"
STATE_IN_POD = "/var/lib/imageprune"
KUBECONFIG_IN_POD = "/etc/imageprune/kubeconfig"


def build() -> Path:
    """The image's OCI archive, built (or found in the cache) by hack/build-image.sh."""
    for tool in ("buildah", "mmdebstrap"):
        binaries.require_binary(
            tool, dirs=[], hint="apt-get install buildah mmdebstrap (.ci/run installs them)"
        )
    result = subprocess.run(
        [str(BUILD_SCRIPT)], capture_output=True, text=True, timeout=1800, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"{BUILD_SCRIPT} failed:\n{result.stderr[-4000:]}")
    return Path(result.stdout.splitlines()[-1])


@dataclasses.dataclass(frozen=True)
class ArchiveContents:
    ref: str  # the name the archive gives its one image
    config: dict[str, Any]  # the OCI image config's "config" (User, Entrypoint, ...)
    layer_sizes: tuple[int, ...]  # uncompressed bytes of each layer
    paths: frozenset[str]  # every path in every layer, without a leading "./" or "/"

    @property
    def size(self) -> int:
        return sum(self.layer_sizes)


def read_archive(path: Path) -> ArchiveContents:
    """What an OCI archive of one image holds."""
    with tarfile.open(path) as archive:

        def blob(digest: str) -> bytes:
            return _member(archive, "blobs/" + digest.replace(":", "/"))

        index = json.loads(_member(archive, "index.json"))
        (entry,) = index["manifests"]
        manifest = json.loads(blob(entry["digest"]))
        config = json.loads(blob(manifest["config"]["digest"]))
        sizes, paths = [], set()
        for layer in manifest["layers"]:
            data = blob(layer["digest"])
            if layer["mediaType"].endswith("gzip"):
                data = gzip.decompress(data)
            sizes.append(len(data))
            with tarfile.open(fileobj=io.BytesIO(data)) as layer_tar:
                paths.update(n.removeprefix("./").lstrip("/") for n in layer_tar.getnames())
    return ArchiveContents(
        ref=entry["annotations"]["org.opencontainers.image.ref.name"],
        config=config["config"],
        layer_sizes=tuple(sizes),
        paths=frozenset(paths),
    )


def _member(archive: tarfile.TarFile, name: str) -> bytes:
    member = archive.extractfile(name)
    assert member is not None, name
    return member.read()


def grant_socket(node: ContainerdNode, gid: int) -> None:
    """Give the runtime's socket to group `gid`, as containerd's `[grpc] gid` does; the
    mode stays containerd's 0660, so that group is the only way in for a non-root user."""
    os.chown(node.socket, -1, gid)
    assert node.socket.stat().st_mode & 0o777 == 0o660, oct(node.socket.stat().st_mode)


def service_account(plane: kube.ControlPlane, name: str, workdir: Path) -> Path:
    """A directory laid out as the kubelet mounts a pod's service account token (token,
    ca.crt, namespace), holding a token of the new ServiceAccount `name`."""
    plane.kubectl("create", "serviceaccount", name, "-n", "default")
    token = plane.kubectl("create", "token", name, "-n", "default").stdout.strip()
    directory = workdir / "serviceaccount"
    directory.mkdir(parents=True)
    (directory / "token").write_text(token)
    (directory / "ca.crt").write_bytes((plane.pki / "ca.crt").read_bytes())
    (directory / "namespace").write_text("default")
    return directory


class ImagePod:
    """A host-network pod sandbox on `node` whose containers run the image as the chart
    runs them: uid/gid 65532, ALL capabilities dropped, no_new_privs, a read-only root
    filesystem, RuntimeDefault seccomp, a writable /tmp (an emptyDir) and the service
    account's token mounted. The agent's containers (`node_access`) also get the
    DaemonSet's host mounts: the CRI socket with its group as a supplementary group, the
    state directory, and the image filesystem read-only at the runtime's path."""

    def __init__(
        self,
        node: ContainerdNode,
        plane: kube.ControlPlane,
        *,
        node_name: str,
        workdir: Path,
        socket_group: int,
        service_account_dir: Path,
    ) -> None:
        self.node = node
        self.node_name = node_name
        self.workdir = workdir
        self.state_dir = workdir / "state"
        self.metrics_port, self.health_port = kube.free_ports(2)
        self._plane = plane
        self._socket_group = socket_group
        self._service_account_dir = service_account_dir
        self._crictl = binaries.require_binary("crictl", search_path=False)
        self._sandbox_id = ""
        self._pod_json = workdir / "pod.json"

    def _run(self, *args: str) -> str:
        result = subprocess.run(
            [str(self._crictl), "--runtime-endpoint", self.node.endpoint, "--timeout=60s", *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"crictl {' '.join(args)}: {result.stderr.strip()}")
        return result.stdout.strip()

    def start(self) -> ImagePod:
        # Host directories as the kubelet makes them: the state directory owned by the
        # agent's user (the chart's init container chowns it), /tmp an emptyDir.
        for d in (self.state_dir, self.workdir / "tmp"):
            d.mkdir(parents=True)
            os.chown(d, USER, USER)
        sandbox_name = f"imageprune-{self.node_name}"
        self._sandbox_id = self.node.run_sandbox(sandbox_name)
        sandbox_config = json_format.MessageToDict(
            self.node.sandbox_config(sandbox_name),
            preserving_proto_field_name=True,
            use_integers_for_enums=True,
        )
        self._pod_json.write_text(json.dumps(sandbox_config))
        return self

    def start_agent(self) -> str:
        """`imageprune agent` with the chart's arguments, the intervals shortened so that
        a test sees usage records; its container id."""
        args = [
            "agent",
            f"--runtime-endpoint=unix://{SOCKET_IN_POD}",
            f"--state-dir={STATE_IN_POD}",
            f"--metrics-port={self.metrics_port}",
            f"--health-port={self.health_port}",
            "--log-format=json",
            "--usage-interval=1s",
            "--disk-check-interval=1s",
        ]
        return self._create("agent", args, node_access=True)

    def start_operator(self) -> str:
        """`imageprune operator` as the chart's Deployment runs it, except for the login:
        a kubeconfig holding the service account's token. kopf's in-cluster login calls
        https://kubernetes.default.svc, a name only cluster DNS resolves, which a
        host-network sandbox does not have. Its container id."""
        args = [
            "operator",
            f"--kubeconfig={KUBECONFIG_IN_POD}",
            f"--metrics-port={self.metrics_port}",
            f"--health-port={self.health_port}",
            "--log-format=json",
            "--interval=1",
        ]
        return self._create("operator", args, node_access=False)

    def run_cli(self, name: str, args: Sequence[str], *, socket_group: bool) -> tuple[int, str]:
        """Run `imageprune <args>` to its end in a container set up as the agent's, with
        or without the socket's group; its exit code and output."""
        container = self._create(
            name,
            ["--runtime-endpoint", f"unix://{SOCKET_IN_POD}", *args],
            node_access=True,
            socket_group=socket_group,
        )
        deadline = time.monotonic() + 60
        while (found := self.inspect(container))["status"]["state"] != "CONTAINER_EXITED":
            if time.monotonic() > deadline:
                raise AssertionError(f"imageprune {' '.join(args)} still running after 60s")
            time.sleep(0.2)
        return int(found["status"]["exitCode"]), self.log_text(container)

    def _create(
        self, name: str, args: Sequence[str], *, node_access: bool, socket_group: bool = True
    ) -> str:
        """Create and start container `name` of the pod (the image's entrypoint with
        `args`); its id."""
        config = self.workdir / f"{name}.json"
        config.write_text(json.dumps(self._container_config(name, args, node_access, socket_group)))
        container = self._run("create", self._sandbox_id, str(config), str(self._pod_json))
        self._run("start", container)
        return container

    def _container_config(
        self, name: str, args: Sequence[str], node_access: bool, socket_group: bool
    ) -> dict[str, Any]:
        mounts: list[tuple[str, Path, bool]] = [
            ("/tmp", self.workdir / "tmp", False),
            (SERVICE_ACCOUNT_DIR, self._service_account_dir, True),
            (KUBECONFIG_IN_POD, self._kubeconfig(), True),
        ]
        # What the kubelet sets for the apiserver's Service; with the host network, the
        # test apiserver's loopback address.
        env = {
            "KUBERNETES_SERVICE_HOST": "127.0.0.1",
            "KUBERNETES_SERVICE_PORT": str(self._plane.port),
        }
        groups = []
        if node_access:
            image_fs = self.image_filesystem()
            mounts += [
                (SOCKET_IN_POD, self.node.socket, False),
                (STATE_IN_POD, self.state_dir, False),
                (str(image_fs), image_fs, True),  # read-only, at the path the runtime reports
            ]
            env["NODE_NAME"] = self.node_name  # the downward API's spec.nodeName
            groups = [self._socket_group] if socket_group else []
        return {
            "metadata": {"name": name},
            "image": {"image": REF},
            # No command: the image's ENTRYPOINT (imageprune) runs with these arguments.
            "args": list(args),
            "envs": [{"key": k, "value": v} for k, v in env.items()],
            "mounts": [
                {"container_path": inside, "host_path": str(host), "readonly": readonly}
                for inside, host, readonly in mounts
            ],
            "log_path": f"{name}.log",
            "linux": {
                "security_context": {
                    "run_as_user": {"value": USER},
                    "run_as_group": {"value": USER},
                    "supplemental_groups": groups,
                    "capabilities": {"drop_capabilities": ["ALL"]},
                    "no_new_privs": True,
                    "readonly_rootfs": True,
                    "seccomp": {"profile_type": 0},  # RuntimeDefault
                    "namespace_options": {"network": api_pb2.NODE},
                }
            },
        }

    def _kubeconfig(self) -> Path:
        """The service account's token and CA as a kubeconfig, for the test apiserver."""
        path = self.workdir / "kubeconfig"
        token = (self._service_account_dir / "token").read_text()
        ca = base64.b64encode((self._service_account_dir / "ca.crt").read_bytes()).decode()
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "test",
                    "cluster": {"server": self._plane.server, "certificate-authority-data": ca},
                }
            ],
            "users": [{"name": "sa", "user": {"token": token}}],
            "contexts": [{"name": "sa", "context": {"cluster": "test", "user": "sa"}}],
            "current-context": "sa",
        }
        path.write_text(json.dumps(config))  # JSON is YAML
        return path

    def image_filesystem(self) -> Path:
        """The image filesystem's path as CRI's ImageFsInfo reports it (the chart's
        agent.imageFilesystem)."""
        info = self.node.images.ImageFsInfo(api_pb2.ImageFsInfoRequest(), timeout=30)
        return Path(info.image_filesystems[0].fs_id.mountpoint)

    def inspect(self, container: str) -> dict[str, Any]:
        found: dict[str, Any] = json.loads(self._run("inspect", container))
        return found

    def running(self, container: str) -> bool:
        return bool(self.inspect(container)["status"]["state"] == "CONTAINER_RUNNING")

    def process_status(self, container: str) -> dict[str, str]:
        """/proc/<pid>/status of the container's process, as the host sees it."""
        pid = self.inspect(container)["info"]["pid"]
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
        return dict(line.split(":\t", 1) for line in lines if ":\t" in line)

    def log_text(self, container: str) -> str:
        """A container's output (CRI log lines: time, stream, tag, message)."""
        path = Path(self.inspect(container)["status"]["logPath"])
        lines = path.read_text(errors="replace").splitlines() if path.exists() else []
        return "\n".join(line.split(" ", 3)[-1] for line in lines)

    def stop(self, container: str, grace: int = 15) -> int:
        """Stop it as the kubelet does (SIGTERM, then SIGKILL after `grace` seconds);
        returns its exit code."""
        self._run("stop", "--timeout", str(grace), container)
        deadline = time.monotonic() + grace + 30
        while self.running(container):
            if time.monotonic() > deadline:
                raise AssertionError(f"container {container} still running after stop")
            time.sleep(0.2)
        return int(self.inspect(container)["status"]["exitCode"])
