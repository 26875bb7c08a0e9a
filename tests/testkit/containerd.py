"""Real containerd instances for tests: each one a "node" with its own root, state
dir and sockets under a temp dir, so several run side by side.

Two flavours: Debian's containerd 1.6 (never sets the CRI `pinned` field) and
containerd 2.x built by hack/testbin.sh (does). Images come from our own OCI
archives (tests/testkit/oci.py); containers are created through CRI in
host-network sandboxes, so no CNI is needed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc

from imageprune_cri._pb import api_pb2, api_pb2_grpc
from testkit import binaries, oci

NAMESPACE = "k8s.io"  # the containerd namespace the CRI plugin uses
SANDBOX_IMAGE = "registry.imageprune.test/pause:1"
PINNED_LABEL = "io.cri-containerd.pinned=pinned"


@dataclasses.dataclass(frozen=True)
class Flavour:
    name: str  # "1.6" or "2.x"
    containerd: Path
    ctr: Path
    # Extra PATH entries so containerd finds the matching runc shim first.
    path_prefix: tuple[Path, ...] = ()


def _daemon_config(d: Path, version: int) -> str:
    """What every flavour shares: its own root, state and sockets under `d`, so
    several instances never touch each other (or a system containerd)."""
    return f"""
version = {version}
root = "{d}/root"
state = "{d}/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "{d}/containerd.sock"
[ttrpc]
  address = "{d}/containerd.sock.ttrpc"
[debug]
  address = "{d}/debug.sock"
"""


def _config_v2(d: Path) -> str:
    """containerd 1.6 (config version 2)."""
    return (
        _daemon_config(d, 2)
        + f"""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{SANDBOX_IMAGE}"
  restrict_oom_score_adj = true
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{d}/cni/bin"
    conf_dir = "{d}/cni/conf"
"""
    )


def _config_v3(d: Path) -> str:
    """containerd 2.x (config version 3: the CRI plugin is split in three)."""
    return (
        _daemon_config(d, 3)
        + f"""
[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "{SANDBOX_IMAGE}"
[plugins."io.containerd.cri.v1.runtime"]
  restrict_oom_score_adj = true
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["{d}/cni/bin"]
    conf_dir = "{d}/cni/conf"
[plugins."io.containerd.grpc.v1.cri"]
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
"""
    )


class ContainerdNode:
    """One running containerd. Use as a context manager, or call stop()."""

    def __init__(self, flavour: Flavour, workdir: Path) -> None:
        self.flavour = flavour
        self.dir = workdir
        self.socket = workdir / "containerd.sock"
        self.endpoint = f"unix://{self.socket}"
        self._proc: subprocess.Popen[bytes] | None = None
        self._channel: grpc.Channel | None = None
        self._sandbox_imported = False

    # ---- lifecycle -----------------------------------------------------------

    def start(self, *, timeout: float = 30.0) -> None:
        for sub in ("root", "state", "cni/bin", "cni/conf"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        config = self.dir / "config.toml"
        make = _config_v2 if self.flavour.name == "1.6" else _config_v3
        config.write_text(make(self.dir))
        env = dict(os.environ)
        env["PATH"] = os.pathsep.join(
            [*map(str, self.flavour.path_prefix), env.get("PATH", "/usr/sbin:/usr/bin")]
        )
        with (self.dir / "containerd.log").open("wb") as log:
            self._proc = subprocess.Popen(
                [str(self.flavour.containerd), "--config", str(config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self._proc.poll() is not None:
                raise RuntimeError(f"containerd exited early:\n{self.log_tail()}")
            if self.socket.exists() and self._cri_answers():
                return
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"containerd CRI did not answer in {timeout}s:\n{self.log_tail()}"
                )
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL the daemon alone, as a crash would: its root, state and shims stay,
        and start() brings it back on them. stop() still cleans up afterwards."""
        assert self._proc is not None, "not started"
        self._proc.kill()
        self._proc.wait()
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    def freeze(self, *, frozen: bool = True) -> None:
        """SIGSTOP (or SIGCONT) the daemon: a runtime that accepts connections and
        answers nothing, as a wedged one does."""
        assert self._proc is not None, "not started"
        self._proc.send_signal(signal.SIGSTOP if frozen else signal.SIGCONT)

    def _cri_answers(self) -> bool:
        try:
            self.runtime.Version(api_pb2.VersionRequest(), timeout=2)
        except grpc.RpcError:
            return False
        return True

    def stop(self) -> None:
        """Remove every container and sandbox, then stop the daemon and its shims."""
        if self._proc is None:
            return
        with contextlib.suppress(grpc.RpcError):
            for sb in self.runtime.ListPodSandbox(
                api_pb2.ListPodSandboxRequest(), timeout=10
            ).items:
                self.runtime.StopPodSandbox(
                    api_pb2.StopPodSandboxRequest(pod_sandbox_id=sb.id), timeout=30
                )
                self.runtime.RemovePodSandbox(
                    api_pb2.RemovePodSandboxRequest(pod_sandbox_id=sb.id), timeout=30
                )
        if self._channel is not None:
            self._channel.close()
            self._channel = None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._proc.pid, signal.SIGTERM)
        try:
            self._proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait()
        self._proc = None
        # Shims outlive the daemon by design; ours are identified by our socket path.
        subprocess.run(["pkill", "-f", "--", f"-address {self.socket}"], check=False)
        with contextlib.suppress(OSError):
            subprocess.run(
                ["umount", "-R", "-l", str(self.dir / "state")], check=False, capture_output=True
            )
            subprocess.run(
                ["umount", "-R", "-l", str(self.dir / "root")], check=False, capture_output=True
            )
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> ContainerdNode:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log_tail(self, lines: int = 40) -> str:
        path = self.dir / "containerd.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    # ---- raw CRI stubs (test-side; the product uses imageprune_cri) --------------

    @property
    def channel(self) -> grpc.Channel:
        if self._channel is None:
            self._channel = grpc.insecure_channel(self.endpoint)
        return self._channel

    @property
    def runtime(self) -> api_pb2_grpc.RuntimeServiceStub:
        return api_pb2_grpc.RuntimeServiceStub(self.channel)

    @property
    def images(self) -> api_pb2_grpc.ImageServiceStub:
        return api_pb2_grpc.ImageServiceStub(self.channel)

    # ---- images ----------------------------------------------------------------

    def ctr(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.flavour.ctr), "--address", str(self.socket), "-n", NAMESPACE, *args],
            check=check,
            capture_output=True,
            text=True,
        )

    def import_image(self, archive: Path) -> None:
        result = self.ctr("images", "import", str(archive), check=False)
        if result.returncode != 0:
            raise RuntimeError(f"ctr import {archive} failed: {result.stderr}")

    def add_images(self, *specs: oci.ImageSpec) -> list[oci.BuiltImage]:
        """Build `specs` into one archive, import it, and wait until CRI lists them."""
        archive = self.dir / f"images-{next(_archive_numbers)}.tar"
        built = oci.build_archive(archive, specs)
        self.import_image(archive)
        archive.unlink()
        self._wait_listed(built)
        return built

    def _wait_listed(self, built: list[oci.BuiltImage], timeout: float = 10.0) -> None:
        """The CRI image cache follows containerd's image events, one per tag, so an
        image may be listed before all its tags are: wait for every tag."""
        deadline = time.monotonic() + timeout
        while True:
            listed = {
                i.id: set(i.repo_tags)
                for i in self.images.ListImages(api_pb2.ListImagesRequest(), timeout=30).images
            }
            missing = [
                b for b in built if b.id not in listed or not set(b.repo_tags) <= listed[b.id]
            ]
            if not missing:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"not listed with all tags after {timeout}s: {missing}")
            time.sleep(0.05)

    def add_image(self, **spec: object) -> oci.BuiltImage:
        """add_images for one image: `spec` holds oci.ImageSpec's fields."""
        if "repo_tags" in spec:
            spec["repo_tags"] = tuple(spec["repo_tags"])  # type: ignore[arg-type]
        return self.add_images(oci.ImageSpec(**spec))[0]  # type: ignore[arg-type]

    def image_ids(self) -> set[str]:
        return {
            i.id for i in self.images.ListImages(api_pb2.ListImagesRequest(), timeout=30).images
        }

    def image_id_of(self, ref: str) -> str:
        spec = api_pb2.ImageSpec(image=ref)
        status = self.images.ImageStatus(api_pb2.ImageStatusRequest(image=spec), timeout=30)
        return str(status.image.id)

    def image_filesystem_used_percent(self) -> float:
        """How full the filesystem under this node's snapshots is, per statvfs."""
        st = os.statvfs(self.dir / "root")
        return 100.0 * (st.f_blocks - st.f_bfree) / st.f_blocks

    def wait_image(self, image_id: str, *, present: bool = True, timeout: float = 10.0) -> None:
        """The CRI image cache follows containerd's image events; wait until it has."""
        deadline = time.monotonic() + timeout
        while True:
            if (image_id in self.image_ids()) == present:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"image {image_id} present={not present} after {timeout}s")
            time.sleep(0.05)

    def tag(self, ref: str, new_ref: str, *, timeout: float = 10.0) -> None:
        """`ctr images tag`, then wait until the CRI image cache resolves `new_ref`."""
        self.ctr("images", "tag", ref, new_ref)
        deadline = time.monotonic() + timeout
        while self.image_id_of(new_ref) != self.image_id_of(ref):
            if time.monotonic() > deadline:
                raise AssertionError(f"{new_ref} not resolved by the CRI after {timeout}s")
            time.sleep(0.05)

    def pin(self, ref: str) -> None:
        self.ctr("images", "label", ref, PINNED_LABEL)

    # ---- sandboxes and containers ---------------------------------------------

    def ensure_sandbox_image(self) -> None:
        if not self._sandbox_imported:
            self.add_image(
                repo_tags=[SANDBOX_IMAGE],
                seed="pause",
                entrypoint=("/bin/busybox", "sleep", "2147483647"),
            )
            if self.flavour.name != "1.6":
                # containerd 2.x pins its sandbox image when it pulls it through CRI;
                # an imported one needs the label by hand to look the same.
                self.pin(SANDBOX_IMAGE)
            self._sandbox_imported = True

    def sandbox_config(self, name: str) -> api_pb2.PodSandboxConfig:
        return api_pb2.PodSandboxConfig(
            metadata=api_pb2.PodSandboxMetadata(name=name, uid=name, namespace="default"),
            log_directory=str(self.dir / "logs" / name),
            linux=api_pb2.LinuxPodSandboxConfig(
                security_context=api_pb2.LinuxSandboxSecurityContext(
                    namespace_options=api_pb2.NamespaceOption(network=api_pb2.NODE)
                )
            ),
        )

    def run_sandbox(self, name: str) -> str:
        self.ensure_sandbox_image()
        (self.dir / "logs" / name).mkdir(parents=True, exist_ok=True)
        resp = self.runtime.RunPodSandbox(
            api_pb2.RunPodSandboxRequest(config=self.sandbox_config(name)), timeout=60
        )
        return str(resp.pod_sandbox_id)

    def create_container(
        self,
        sandbox_id: str,
        sandbox_name: str,
        *,
        name: str,
        image: str,
        command: tuple[str, ...] = ("/bin/busybox", "sleep", "3600"),
        start: bool = True,
    ) -> str:
        resp = self.runtime.CreateContainer(
            api_pb2.CreateContainerRequest(
                pod_sandbox_id=sandbox_id,
                config=api_pb2.ContainerConfig(
                    metadata=api_pb2.ContainerMetadata(name=name),
                    image=api_pb2.ImageSpec(image=image),
                    command=list(command),
                    log_path=f"{name}.log",
                ),
                sandbox_config=self.sandbox_config(sandbox_name),
            ),
            timeout=60,
        )
        container_id = str(resp.container_id)
        if start:
            self.runtime.StartContainer(
                api_pb2.StartContainerRequest(container_id=container_id), timeout=60
            )
        return container_id

    def stop_container(self, container_id: str) -> None:
        self.runtime.StopContainer(
            api_pb2.StopContainerRequest(container_id=container_id, timeout=0), timeout=60
        )

    def remove_all_containers(self) -> None:
        for c in self.runtime.ListContainers(
            api_pb2.ListContainersRequest(), timeout=30
        ).containers:
            self.remove_container(c.id)

    def remove_container(self, container_id: str) -> None:
        self.runtime.RemoveContainer(
            api_pb2.RemoveContainerRequest(container_id=container_id), timeout=60
        )


_archive_numbers = itertools.count()
FLAVOURS = ("1.6", "2.x")
Factory = Callable[[str], "ContainerdNode"]


def flavour(name: str) -> Flavour:
    """Debian's containerd 1.6 from /usr/bin, or 2.x from the testbin dir (with its
    own runc shim first on PATH)."""
    if name == "1.6":
        debian = [Path("/usr/bin")]
        return Flavour(
            name,
            binaries.require_binary("containerd", dirs=debian, search_path=False),
            binaries.require_binary("ctr", dirs=debian, search_path=False),
        )
    # Never $PATH here: /usr/bin/containerd is the 1.6 one.
    daemon = binaries.require_binary("containerd", search_path=False)
    ctr = binaries.require_binary("ctr", search_path=False)
    return Flavour(name, daemon, ctr, path_prefix=(daemon.parent,))


@contextlib.contextmanager
def running(name: str) -> Iterator[ContainerdNode]:
    """A started node of flavour `name` in a fresh short temp dir (unix socket
    paths must stay under 108 bytes, which pytest's tmp_path can exceed)."""
    node = ContainerdNode(flavour(name), Path(tempfile.mkdtemp(prefix="ipn-", dir="/tmp")))
    node.start()
    try:
        yield node
    finally:
        node.stop()
