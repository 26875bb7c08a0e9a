"""A real single-node cluster: etcd and kube-apiserver (Node,RBAC authorization and the
NodeRestriction admission plugin), kube-controller-manager, kube-scheduler and one
kubelet on a containerd of ours. ../shared/notes/real-node.md has the measurements
behind the settings here.

The kubelet is not a contained process: it changes sysctls, makes /kubepods in every
cgroup v1 hierarchy, bind-mounts its root dir onto itself, listens on fixed ports and
writes below /var/lib/kubelet and /var/log/containers whatever --root-dir says. So one
real node runs at a time (an flock), and HostState puts all of that back on teardown,
also when a test fails.

Pods get a network: the chart's pods are not host-network ones, and the operator and the
agents must reach the apiserver and answer their readiness probes. A bridge (Debian's
containernetworking-plugins) gives each pod an address; one DNAT rule stands in for
kube-proxy, taking the `kubernetes` Service's address to the apiserver.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import logging
import os
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from testkit import binaries, clusterdns, containerd, kube

NODE_NAME = "real-node"
LOCK_PATH = Path("/run/lock/imageprune-real-node.lock")
# The kubelet's, the controller-manager's and the scheduler's: not configurable to be free.
FIXED_PORTS = (10248, 10250, 10257, 10259)
# What the kubelet (and the bridge plugin: ip_forward) set on start.
SYSCTLS = (
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
    "net/ipv4/ip_forward",
)
# Outside --root-dir, used all the same (device-plugins, container log links, CNI result
# cache, network namespaces).
HOST_DIRS = (
    Path("/var/lib/kubelet"),
    Path("/var/log/containers"),
    Path("/var/log/pods"),
    Path("/var/lib/cni"),
    Path("/run/netns"),
)
CGROUP_ROOT = Path("/sys/fs/cgroup")
CNI_PLUGINS = Path("/usr/lib/cni")
BRIDGE = "ipn-cni0"
POD_SUBNET = "10.244.0.0/24"
KUBERNETES_SERVICE_IP = "10.0.0.1"  # the first address of kube.SERVICE_CIDR
KUBERNETES_NAMES = (
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)

_log = logging.getLogger(__name__)


class NodeUnavailableError(RuntimeError):
    """The real node cannot run here; the message says why."""


def unavailable(reason: str) -> None:
    """Fail under CI (nothing there may skip silently), skip locally."""
    message = f"a real node cannot start: {reason}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def node_ip() -> str:
    """The machine's first global IPv4 address: the kubelet refuses a loopback node IP."""
    out = subprocess.run(
        ["ip", "-4", "-o", "addr", "show", "scope", "global"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    for line in out.splitlines():
        fields = line.split()
        if "inet" in fields:
            return fields[fields.index("inet") + 1].split("/")[0]
    raise NodeUnavailableError("no global IPv4 address (`ip -4 addr show scope global`)")


def preflight() -> None:
    """Why a real node cannot start here, as NodeUnavailableError; nothing changed yet."""
    if os.geteuid() != 0:
        raise NodeUnavailableError("the kubelet needs root")
    if not (CGROUP_ROOT / "cpu").is_dir() and not (CGROUP_ROOT / "cgroup.controllers").exists():
        raise NodeUnavailableError(f"no cgroup hierarchy under {CGROUP_ROOT}")
    for plugin in ("bridge", "host-local", "loopback"):
        if not os.access(CNI_PLUGINS / plugin, os.X_OK):
            raise NodeUnavailableError(
                f"no CNI plugin {CNI_PLUGINS / plugin}: apt-get install containernetworking-plugins"
            )
    for tool in ("iptables", "iptables-save", "ip", "umount"):
        if shutil.which(tool) is None:
            raise NodeUnavailableError(f"{tool} not found")
    for port in FIXED_PORTS:
        with socket.socket() as s:
            try:
                s.bind(("0.0.0.0", port))  # noqa: S104  # as the kubelet binds them
            except OSError as e:
                raise NodeUnavailableError(f"port {port} is taken ({e})") from e
    if Path(f"/sys/class/net/{BRIDGE}").exists():
        raise NodeUnavailableError(f"network interface {BRIDGE} exists already")
    node_ip()


@contextlib.contextmanager
def node_lock(timeout: float = 900.0) -> Iterator[None]:
    """One real node on the machine at a time: two kubelets collide on fixed ports and
    paths. Waits for another test run's node (bounded, never a hang)."""
    LOCK_PATH.parent.mkdir(parents=True, exist_ok=True)
    with LOCK_PATH.open("a+") as f:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    f.seek(0)
                    raise NodeUnavailableError(
                        f"{LOCK_PATH} still held after {timeout:.0f}s by {f.read().strip()}"
                    ) from None
                time.sleep(1)
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()}\n")
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _iptables() -> set[tuple[str, str, str]]:
    """(command, table, ":chain" or "-A chain rule...") of every chain and rule, IPv4
    and IPv6, as iptables-save prints them."""
    found = set()
    for save, command in (("iptables-save", "iptables"), ("ip6tables-save", "ip6tables")):
        if shutil.which(save) is None:
            continue
        table = ""
        out = subprocess.run([save], capture_output=True, text=True, check=False).stdout
        for line in out.splitlines():
            if line.startswith("*"):
                table = line[1:]
            elif line.startswith(":"):
                found.add((command, table, line.split()[0]))
            elif line.startswith("-A "):
                found.add((command, table, line))
    return found


def _remove_iptables(added: set[tuple[str, str, str]]) -> None:
    """The kubelet's chains (KUBE-FIREWALL, KUBE-KUBELET-CANARY, ...) and rules: rules
    first, so that no jump keeps a chain from going."""
    for command, table, entry in sorted(added, key=lambda a: a[2].startswith(":")):
        rule = entry.startswith("-A ")
        argv = ["-D", *shlex.split(entry)[1:]] if rule else ["-X", entry[1:]]
        subprocess.run([command, "-t", table, *argv], capture_output=True, check=False)


def _tree(root: Path) -> set[Path]:
    if not root.exists():
        return set()
    found = {root}
    for d, dirs, files in os.walk(root):
        found.update(Path(d) / n for n in (*dirs, *files))
    return found


def _mounts_under(root: Path) -> list[str]:
    """Mount points at or below `root`, deepest first."""
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point == str(root) or point.startswith(f"{root}/"):
            points.append(point)
    return sorted(points, key=len, reverse=True)


def _umount_all(root: Path) -> None:
    for point in _mounts_under(root):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)


def _cgroup_kubepods() -> list[Path]:
    return sorted(CGROUP_ROOT.glob("*/kubepods")) + sorted(CGROUP_ROOT.glob("kubepods"))


@dataclasses.dataclass
class HostState:
    """What the kubelet and the CNI plugins change outside our own directories, saved
    before and put back after."""

    sysctls: dict[str, str] = dataclasses.field(default_factory=dict)
    trees: dict[Path, set[Path]] = dataclasses.field(default_factory=dict)
    iptables: set[tuple[str, str, str]] = dataclasses.field(default_factory=set)
    cgroups: list[Path] = dataclasses.field(default_factory=list)

    @classmethod
    def save(cls) -> HostState:
        state = cls()
        for name in SYSCTLS:
            path = Path("/proc/sys") / name
            if path.exists():
                state.sysctls[name] = path.read_text().strip()
        state.trees = {d: _tree(d) for d in HOST_DIRS}
        state.iptables = _iptables()
        state.cgroups = _cgroup_kubepods()
        return state

    def restore(self) -> list[str]:
        """Put everything back; returns what could not be (for the teardown's error)."""
        problems = self._restore_files()
        _remove_iptables(_iptables() - self.iptables)
        if left := _iptables() - self.iptables:
            problems.append(f"iptables: {sorted(left)}")
        for top in _cgroup_kubepods():
            if top not in self.cgroups:
                problems += _remove_cgroup(top)
        if Path(f"/sys/class/net/{BRIDGE}").exists():
            subprocess.run(["ip", "link", "delete", BRIDGE], capture_output=True, check=False)
        return problems

    def _restore_files(self) -> list[str]:
        problems: list[str] = []
        for name, value in self.sysctls.items():
            path = Path("/proc/sys") / name
            try:
                if path.read_text().strip() != value:
                    path.write_text(value)
            except OSError as e:
                problems.append(f"sysctl {name}: {e}")
        for root, before in self.trees.items():
            for path in sorted(_tree(root) - before, key=lambda p: len(p.parts), reverse=True):
                _umount_all(path)
                try:
                    if path.is_dir() and not path.is_symlink():
                        path.rmdir()
                    else:
                        path.unlink()
                except OSError as e:
                    problems.append(f"{path}: {e}")
        return problems


def _remove_cgroup(top: Path) -> list[str]:
    problems = []
    for d, _dirs, _files in os.walk(top, topdown=False):
        try:
            os.rmdir(d)
        except OSError as e:
            problems.append(f"cgroup {d}: {e}")
    return problems


class RealNode:
    """The cluster; start() and stop() (which always leaves the host as it found it)."""

    def __init__(self, workdir: Path, flavour: str = "2.x") -> None:
        self.workdir = workdir
        self.node_ip = node_ip()
        apiserver = binaries.require_binary("kube-apiserver")
        self.plane = kube.ControlPlane(
            workdir / "kube",
            etcd=binaries.require_binary("etcd"),
            apiserver=apiserver,
            kubectl=binaries.require_binary("kubectl", dirs=[apiserver.parent]),
            apiserver_flags={
                "authorization-mode": "Node,RBAC",
                "enable-admission-plugins": "NodeRestriction",
                "disable-admission-plugins": None,
                # Pods reach it through the node's address (see _service_rule).
                "bind-address": "0.0.0.0",  # noqa: S104  # a test machine's apiserver
                "kubelet-client-certificate": str(workdir / "kube" / "pki" / "admin.crt"),
                "kubelet-client-key": str(workdir / "kube" / "pki" / "admin.key"),
                "kubelet-preferred-address-types": "InternalIP",
            },
        )
        self.plane.workdir.mkdir(parents=True, exist_ok=True)
        self.bins = {
            name: binaries.require_binary(name, dirs=[apiserver.parent], search_path=False)
            for name in ("kubelet", "kube-controller-manager", "kube-scheduler")
        }
        # A short path (a unix socket's stays under 108 bytes), not under /tmp: the chart's
        # pods mount an emptyDir on /tmp, and the image filesystem's mount would sit in it.
        runtime_dir = Path(tempfile.mkdtemp(prefix="ipr-", dir="/var/tmp"))
        self.runtime = containerd.ContainerdNode(containerd.flavour(flavour), runtime_dir)
        self.kubelet_dir = self.runtime.dir / "kubelet"
        self.kubelet_kubeconfig = self.plane.workdir / "kubelet.kubeconfig"
        self.kubelet: kube._Process | None = None
        self._processes: list[kube._Process] = []
        self._host: HostState | None = None
        self._rule: list[str] = []
        self._dns: clusterdns.Responder | None = None
        self.kubelet_config: dict[str, object] = {}

    # ---- lifecycle ---------------------------------------------------------------

    def start(self) -> None:
        self._host = HostState.save()
        started = time.monotonic()
        self.plane.start()
        self._write_cni()
        self.runtime.start()
        self.runtime.ensure_sandbox_image()
        self._service_rule()
        self._dns = clusterdns.Responder(
            self.node_ip, dict.fromkeys(KUBERNETES_NAMES, KUBERNETES_SERVICE_IP)
        )
        self._start_controllers()
        self._write_kubelet_config()
        self.start_kubelet()
        self.wait_ready()
        # The controller-manager's service-account controller makes `default`, which
        # the ServiceAccount admission plugin wants for every pod.
        self._wait("the default ServiceAccount", self._has_default_service_account)
        _log.info("real node ready in %.1fs", time.monotonic() - started)

    def stop(self) -> None:
        """Everything down, and the host as it was; raises if something stayed changed."""
        self.stop_kubelet()
        for process in reversed(self._processes):
            process.stop()
        self._processes.clear()
        # The pods' volumes and the kubelet's bind mount of its root dir onto itself
        # first: the runtime's stop removes its whole dir, the kubelet's root among it.
        _umount_all(self.kubelet_dir)
        self.runtime.stop()  # removes the sandboxes, stops the shims, removes its dir
        shutil.rmtree(self.runtime.dir, ignore_errors=True)
        if self._rule:
            subprocess.run(
                ["iptables", "-t", "nat", "-D", *self._rule], capture_output=True, check=False
            )
            self._rule = []
        if self._dns is not None:
            self._dns.stop()
            self._dns = None
        self.plane.stop()
        problems = self._host.restore() if self._host is not None else []
        if problems:
            raise RuntimeError("the host is not as it was: " + "; ".join(problems))

    def restart_kubelet(self) -> None:
        """As a node's service manager restarts it; its pods keep running meanwhile."""
        self.stop_kubelet()
        self.start_kubelet()
        self.wait_ready()

    def reconfigure_kubelet(self, **settings: object) -> dict[str, object]:
        """KubeletConfiguration fields set (None: left out) and the kubelet restarted to
        read them, as a node's admin would; returns the values they had, to put back."""
        previous = {name: self.kubelet_config.get(name) for name in settings}
        for name, value in settings.items():
            if value is None:
                self.kubelet_config.pop(name, None)
            else:
                self.kubelet_config[name] = value
        self._write_kubelet_config_file()
        self.restart_kubelet()
        return previous

    def start_kubelet(self) -> None:
        self.kubelet = kube._Process(
            "kubelet",
            [
                str(self.bins["kubelet"]),
                f"--config={self.workdir / 'kubelet.yaml'}",
                f"--kubeconfig={self.kubelet_kubeconfig}",
                f"--root-dir={self.kubelet_dir}",
                f"--hostname-override={NODE_NAME}",
                f"--node-ip={self.node_ip}",
            ],
            self.workdir / "kubelet.log",
        )

    def stop_kubelet(self) -> None:
        """SIGTERM, as systemd stops it: its pods keep running."""
        if self.kubelet is not None:
            self.kubelet.stop()
            self.kubelet = None

    def wait_ready(self) -> None:
        self._wait("node Ready", self._node_ready, process=self.kubelet)

    # ---- pieces ------------------------------------------------------------------

    def _write_cni(self) -> None:
        cni = self.runtime.dir / "cni"
        (cni / "bin").mkdir(parents=True, exist_ok=True)
        (cni / "conf").mkdir(parents=True, exist_ok=True)
        for plugin in ("bridge", "host-local", "loopback"):
            (cni / "bin" / plugin).symlink_to(CNI_PLUGINS / plugin)
        conflist = {
            "cniVersion": "0.4.0",
            "name": "imageprune-test",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": BRIDGE,
                    "isGateway": True,
                    "ipMasq": False,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": POD_SUBNET}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": str(cni / "ipam"),
                    },
                }
            ],
        }
        (cni / "conf" / "10-imageprune.conflist").write_text(json.dumps(conflist))

    def _service_rule(self) -> None:
        """kube-proxy's one job here: the `kubernetes` Service's address (which the
        kubelet gives pods as KUBERNETES_SERVICE_HOST) to the apiserver."""
        self._rule = [
            "PREROUTING",
            "-d",
            f"{KUBERNETES_SERVICE_IP}/32",
            "-p",
            "tcp",
            "--dport",
            "443",
            "-m",
            "comment",
            "--comment",
            f"imageprune real-node test {os.getpid()}",
            "-j",
            "DNAT",
            "--to-destination",
            f"{self.node_ip}:{self.plane.port}",
        ]
        subprocess.run(["iptables", "-t", "nat", "-A", *self._rule], check=True)

    def _start_controllers(self) -> None:
        pki = self.plane.pki
        admin = str(self.plane.kubeconfig_path)
        logins = [f"--{f}={admin}" for f in ("kubeconfig", "authentication-kubeconfig")]
        logins.append(f"--authorization-kubeconfig={admin}")
        common = [*logins, "--leader-elect=false", "--bind-address=127.0.0.1"]
        self._spawn(
            "kube-controller-manager",
            [
                *common,
                "--use-service-account-credentials",
                f"--service-account-private-key-file={pki / 'sa.key'}",
                f"--root-ca-file={pki / 'ca.crt'}",
                f"--cluster-signing-cert-file={pki / 'ca.crt'}",
                f"--cluster-signing-key-file={pki / 'ca.key'}",
            ],
        )
        self._spawn("kube-scheduler", common)

    def _spawn(self, name: str, args: list[str]) -> None:
        self._processes.append(
            kube._Process(name, [str(self.bins[name]), *args], self.workdir / f"{name}.log")
        )

    def _write_kubelet_config(self) -> None:
        pki = self.workdir / "kubelet-pki"
        pki.mkdir()
        kube.issue_cert(self.plane.ca, NODE_NAME, server_names=[self.node_ip, NODE_NAME]).write(
            pki / "kubelet.crt", pki / "kubelet.key"
        )
        shutil.copy(
            self.plane.user_kubeconfig(f"system:node:{NODE_NAME}", groups=["system:nodes"]),
            self.kubelet_kubeconfig,
        )
        self.kubelet_config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "failCgroupV1": False,  # refused from 1.35 on otherwise; this machine has v1
            "cgroupDriver": "cgroupfs",
            "failSwapOn": False,
            "containerRuntimeEndpoint": self.runtime.endpoint,
            "podLogsDir": str(self.kubelet_dir / "pod-logs"),
            "address": self.node_ip,
            "readOnlyPort": 0,
            "tlsCertFile": str(pki / "kubelet.crt"),
            "tlsPrivateKeyFile": str(pki / "kubelet.key"),
            "authentication": {
                "x509": {"clientCAFile": str(self.plane.pki / "ca.crt")},
                "anonymous": {"enabled": False},
                "webhook": {"enabled": False},
            },
            "authorization": {"mode": "AlwaysAllow"},
            "resolvConf": str(self.workdir / "resolv.conf"),
            "oomScoreAdj": 0,  # no CAP_SYS_RESOURCE here
            "evictionHard": {
                "memory.available": "100Mi",
                "nodefs.available": "1%",
                "imagefs.available": "1%",
            },
            # The kubelet's own image GC stays out of the way of the tests' images.
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
        }
        self._write_kubelet_config_file()
        # No clusterDNS: pods get this file (dnsPolicy ClusterFirst falls back to it).
        (self.workdir / "resolv.conf").write_text(f"nameserver {self.node_ip}\n")

    def _write_kubelet_config_file(self) -> None:
        (self.workdir / "kubelet.yaml").write_text(yaml.safe_dump(self.kubelet_config))

    # ---- probes --------------------------------------------------------------------

    def _node_ready(self) -> bool:
        result = self.plane.kubectl("get", "node", NODE_NAME, "-o", "json", check=False)
        if result.returncode != 0:
            return False
        conditions = json.loads(result.stdout)["status"].get("conditions", [])
        return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)

    def _has_default_service_account(self) -> bool:
        result = self.plane.kubectl("get", "serviceaccount", "default", check=False)
        return result.returncode == 0

    def _wait(
        self,
        what: str,
        probe: Callable[[], bool],
        *,
        process: kube._Process | None = None,
        timeout: float = 120.0,
    ) -> None:
        deadline = time.monotonic() + timeout
        while not probe():
            for p in [*self._processes, *([process] if process else [])]:
                if p.exited():
                    raise RuntimeError(
                        f"{p.name} exited with {p.popen.returncode}; log {p.log}:\n{p.log_tail()}"
                    )
            if time.monotonic() > deadline:
                logs = self.kubelet.log_tail() if self.kubelet else ""
                raise RuntimeError(f"{what}: not after {timeout:.0f}s; kubelet log:\n{logs}")
            time.sleep(0.5)


@contextlib.contextmanager
def running(workdir: Path, flavour: str = "2.x") -> Iterator[RealNode]:
    """A started real node for the block (skipped locally, failed under CI, when it
    cannot start, with the reason)."""
    with contextlib.ExitStack() as stack:
        try:
            # The lock first: another test run's node holds the fixed ports until it
            # is done, and that is a reason to wait, not to skip.
            stack.enter_context(node_lock())
            preflight()
        except NodeUnavailableError as e:
            unavailable(str(e))
        node = RealNode(workdir, flavour)
        stack.callback(node.stop)
        try:
            node.start()
        except Exception as e:
            unavailable(f"{type(e).__name__}: {e}")
        yield node
