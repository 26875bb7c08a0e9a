"""A real Kubernetes control plane for tests: etcd + kube-apiserver, the way
controller-runtime's envtest runs them.

No kube-controller-manager runs: no garbage collection, namespaces stay Terminating and
workloads create no pods. Tests must not rely on those.

All PKI is generated here: one CA signs the apiserver serving cert (so clients verify TLS
instead of skipping it) and the client certs (admin in O=system:masters, plus any user from
user_kubeconfig for RBAC tests).
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime
import http.client
import ipaddress
import json
import logging
import os
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from testkit import binaries

SERVICE_CIDR = "10.0.0.0/24"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
FIELD_MANAGER = "imageprune-tests"

_log = logging.getLogger(__name__)


# ---- PKI ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class KeyPair:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return _key_pem(self.key)

    def write(self, cert_path: Path, key_path: Path) -> None:
        cert_path.write_bytes(self.cert_pem)
        key_path.write_bytes(self.key_pem)
        key_path.chmod(0o600)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _name(common_name: str, organizations: Sequence[str] = ()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    return x509.Name([*attrs, x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _builder(
    subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePrivateKey
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        # Backdated: tolerate clock skew between us and the apiserver's view.
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=7))
    )


def new_ca(common_name: str = "imageprune-test-ca") -> KeyPair:
    # EC keys: generating RSA keys would cost noticeable time per test user.
    key = ec.generate_private_key(ec.SECP256R1())
    subject = _name(common_name)
    cert = (
        _builder(subject, subject, key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return KeyPair(cert, key)


def issue_cert(
    ca: KeyPair,
    common_name: str,
    *,
    organizations: Sequence[str] = (),
    server_names: Sequence[str] = (),
) -> KeyPair:
    """A leaf cert signed by `ca`: a server cert if server_names (DNS names or IPs) are
    given, else a client cert (CN = user name, O = groups, as Kubernetes reads them)."""
    key = ec.generate_private_key(ec.SECP256R1())
    builder = _builder(_name(common_name, organizations), ca.cert.subject, key)
    builder = builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
    if server_names:
        sans: list[x509.GeneralName] = []
        for n in server_names:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(n)))
            except ValueError:
                sans.append(x509.DNSName(n))
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        usage = ExtendedKeyUsageOID.SERVER_AUTH
    else:
        usage = ExtendedKeyUsageOID.CLIENT_AUTH
    builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    return KeyPair(builder.sign(ca.key, hashes.SHA256()), key)


# ---- processes -------------------------------------------------------------------


def free_ports(count: int) -> list[int]:
    """Distinct loopback ports free right now (the usual small race until the servers bind
    them). All sockets stay open until the last is bound, so no port is handed out twice."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            s = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            s.bind(("127.0.0.1", 0))
            ports.append(int(s.getsockname()[1]))
        return ports


class _Process:
    """A child in its own session, so stop() can signal it and anything it spawned."""

    def __init__(self, name: str, argv: Sequence[str], log: Path) -> None:
        self.name = name
        self.log = log
        with log.open("wb") as out:
            self.popen = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def exited(self) -> bool:
        return self.popen.poll() is not None

    def log_tail(self, lines: int = 60) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, grace: float = 15.0) -> None:
        pgid = self.popen.pid  # start_new_session: the child leads its own group
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        try:
            self.popen.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            self.popen.wait()
        # The leader is reaped; make sure nothing it spawned lingers in the group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)


class KubectlError(subprocess.CalledProcessError):
    def __str__(self) -> str:
        return f"{super().__str__()}\nstdout: {self.stdout}\nstderr: {self.stderr}"


class ControlPlane:
    """etcd + kube-apiserver on free loopback ports, state and logs under `workdir`."""

    def __init__(
        self,
        workdir: Path,
        *,
        etcd: Path,
        apiserver: Path,
        kubectl: Path,
        apiserver_flags: Mapping[str, str | None] | None = None,
    ) -> None:
        self.workdir = workdir
        # Replaces (or with None, drops) kube-apiserver flags by name: a real node needs
        # Node authorization, the ServiceAccount admission plugin and a non-loopback bind.
        self.apiserver_flags = dict(apiserver_flags or {})
        self.etcd_bin = etcd
        self.apiserver_bin = apiserver
        self.kubectl_bin = kubectl
        self.pki = workdir / "pki"
        self.kubeconfig_path = workdir / "admin.kubeconfig"
        self.port = 0
        self.server = ""
        self._ca: KeyPair | None = None
        self._processes: list[_Process] = []

    @property
    def ca(self) -> KeyPair:
        if self._ca is None:
            raise RuntimeError("control plane not started")
        return self._ca

    # ---- lifecycle ----------------------------------------------------------------

    def start(self, *, timeout: float = 90.0) -> None:
        started = time.monotonic()
        deadline = started + timeout
        try:
            etcd_client, etcd_peer, self.port = free_ports(3)
            self.server = f"https://127.0.0.1:{self.port}"
            self._write_pki()
            etcd_url = self._start_etcd(etcd_client, etcd_peer, deadline)
            self._start_apiserver(etcd_url, deadline)
        except BaseException:
            self.stop()
            raise
        # Startup time drifts with machine load; logged to spot slow CI runners.
        _log.info("control plane ready in %.1fs at %s", time.monotonic() - started, self.server)

    def stop(self) -> None:
        # Reverse order: the apiserver first, so it does not log etcd errors on the way out.
        while self._processes:
            self._processes.pop().stop()

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _write_pki(self) -> None:
        serving = self.pki / "serving"
        serving.mkdir(parents=True, exist_ok=True)
        self._ca = new_ca()
        self.ca.write(self.pki / "ca.crt", self.pki / "ca.key")
        # kube-apiserver picks apiserver.crt/.key from --cert-dir instead of self-signing.
        issue_cert(
            self.ca,
            "kube-apiserver",
            server_names=[
                "127.0.0.1",
                "10.0.0.1",
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ],
        ).write(serving / "apiserver.crt", serving / "apiserver.key")
        sa_key = ec.generate_private_key(ec.SECP256R1())
        (self.pki / "sa.key").write_bytes(_key_pem(sa_key))
        # --service-account-key-file wants the public half (it rejects PKCS#8 private keys).
        (self.pki / "sa.pub").write_bytes(
            sa_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        admin = issue_cert(self.ca, "imageprune-test-admin", organizations=["system:masters"])
        # ssl.load_cert_chain (the readiness probe) reads files only.
        admin.write(self.pki / "admin.crt", self.pki / "admin.key")
        self._write_kubeconfig(self.kubeconfig_path, "imageprune-test-admin", admin)

    def _start_etcd(self, client: int, peer: int, deadline: float) -> str:
        client_url, peer_url = f"http://127.0.0.1:{client}", f"http://127.0.0.1:{peer}"
        etcd = self._spawn(
            "etcd",
            [
                str(self.etcd_bin),
                f"--data-dir={self.workdir / 'etcd-data'}",
                f"--listen-client-urls={client_url}",
                f"--advertise-client-urls={client_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=default={peer_url}",
                "--unsafe-no-fsync",  # test data is disposable; fsync dominates on slow disks
                "--log-level=warn",
            ],
        )
        self._poll(
            etcd,
            deadline,
            lambda: _http_get(
                http.client.HTTPConnection("127.0.0.1", client, timeout=2), "/health"
            ),
        )
        return client_url

    def _start_apiserver(self, etcd_url: str, deadline: float) -> None:
        flags = {
            "etcd-servers": etcd_url,
            "cert-dir": str(self.pki / "serving"),
            "secure-port": str(self.port),
            # Otherwise it advertises the default route's address.
            "bind-address": "127.0.0.1",
            "advertise-address": "127.0.0.1",
            "authorization-mode": "RBAC",
            "service-cluster-ip-range": SERVICE_CIDR,
            "service-account-issuer": SERVICE_ACCOUNT_ISSUER,
            "service-account-key-file": str(self.pki / "sa.pub"),
            "service-account-signing-key-file": str(self.pki / "sa.key"),
            "client-ca-file": str(self.pki / "ca.crt"),
            # No controller-manager creates the default ServiceAccount it would require.
            "disable-admission-plugins": "ServiceAccount",
        } | self.apiserver_flags
        apiserver = self._spawn(
            "kube-apiserver",
            [str(self.apiserver_bin)]
            + [f"--{name}={value}" for name, value in flags.items() if value is not None],
        )
        context = ssl.create_default_context(cafile=self.pki / "ca.crt")
        context.load_cert_chain(self.pki / "admin.crt", self.pki / "admin.key")
        self._poll(
            apiserver,
            deadline,
            # ?verbose lists the failing checks, which the timeout error then shows.
            lambda: _http_get(
                http.client.HTTPSConnection("127.0.0.1", self.port, context=context, timeout=5),
                "/readyz?verbose",
            ),
        )

    def _spawn(self, name: str, argv: Sequence[str]) -> _Process:
        process = _Process(name, argv, self.workdir / f"{name}.log")
        self._processes.append(process)
        return process

    @staticmethod
    def _poll(process: _Process, deadline: float, probe: Callable[[], tuple[bool, str]]) -> None:
        """Call probe() -> (ok, detail) until ok; fail early if the process dies."""
        detail = "no answer yet"
        while True:
            if process.exited():
                raise RuntimeError(
                    f"{process.name} exited with {process.popen.returncode}; "
                    f"log {process.log}:\n{process.log_tail()}"
                )
            ok, detail = probe()
            if ok:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{process.name} not ready in time (last probe: {detail}); "
                    f"log {process.log}:\n{process.log_tail()}"
                )
            time.sleep(0.25)

    # ---- clients ------------------------------------------------------------------

    def _write_kubeconfig(self, path: Path, user: str, creds: KeyPair) -> None:
        def b64(data: bytes) -> str:
            return base64.b64encode(data).decode()

        # Credentials embedded, so the file alone is enough for kubectl, helm and
        # Python clients alike.
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "imageprune-test",
                    "cluster": {
                        "server": self.server,
                        "certificate-authority-data": b64(self.ca.cert_pem),
                    },
                }
            ],
            "users": [
                {
                    "name": user,
                    "user": {
                        "client-certificate-data": b64(creds.cert_pem),
                        "client-key-data": b64(creds.key_pem),
                    },
                }
            ],
            "contexts": [{"name": user, "context": {"cluster": "imageprune-test", "user": user}}],
            "current-context": user,
        }
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)

    def user_kubeconfig(self, username: str, groups: Sequence[str] = ()) -> Path:
        """A kubeconfig authenticating as `username` in `groups` (no roles unless bound)."""
        path = self.workdir / f"user-{username}.kubeconfig"
        self._write_kubeconfig(path, username, issue_cert(self.ca, username, organizations=groups))
        return path

    def bind_cluster_role(
        self, name: str, rules: Sequence[Mapping[str, Any]], subject: str
    ) -> None:
        """A ClusterRole `name` of exactly `rules`, bound (binding `name` too) to `subject`,
        kubectl's flag for it: --user=NAME or --serviceaccount=NAMESPACE:NAME."""
        role = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": name},
            "rules": list(rules),
        }
        self.kubectl("apply", "-f", "-", stdin=json.dumps(role))
        self.kubectl("create", "clusterrolebinding", name, f"--clusterrole={name}", subject)

    @contextlib.contextmanager
    def user_with_rules(self, username: str, rules: Sequence[Mapping[str, Any]]) -> Iterator[Path]:
        """A kubeconfig for `username`, bound cluster-wide to a ClusterRole of the same
        name that holds exactly `rules`; the role and its binding go afterwards."""
        self.bind_cluster_role(username, rules, f"--user={username}")
        try:
            yield self.user_kubeconfig(username)
        finally:
            self.kubectl("delete", "clusterrolebinding,clusterrole", username, "--ignore-not-found")

    def kubectl(
        self,
        *args: str,
        kubeconfig: Path | None = None,
        stdin: str | None = None,
        check: bool = True,
        timeout: float = 60.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run the real kubectl (as admin unless `kubeconfig` is given)."""
        argv = [
            str(self.kubectl_bin),
            f"--kubeconfig={kubeconfig or self.kubeconfig_path}",
            # Keep discovery caches out of $HOME.
            f"--cache-dir={self.workdir / 'kubectl-cache'}",
            *args,
        ]
        result = subprocess.run(
            argv, input=stdin, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            raise KubectlError(result.returncode, argv, result.stdout, result.stderr)
        return result

    def get(self, *args: str) -> Any:
        """`kubectl get ... -o json`, parsed."""
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def apply_crd(self, manifest: Mapping[str, Any] | Path) -> list[str]:
        """Apply CRD(s) from a dict or a YAML/JSON file; returns the CRD names.
        Server-side apply: big CRDs overflow client-side apply's annotation."""
        apply = ("apply", "--server-side", f"--field-manager={FIELD_MANAGER}", "-o", "name")
        if isinstance(manifest, Path):
            out = self.kubectl(*apply, "-f", str(manifest)).stdout
        else:
            out = self.kubectl(*apply, "-f", "-", stdin=json.dumps(manifest)).stdout
        # -o name prints "customresourcedefinition.apiextensions.k8s.io/<name>".
        return [line.split("/", 1)[1] for line in out.split()]

    def wait_established(self, name: str, timeout: float = 30.0) -> None:
        self.kubectl(
            "wait",
            "--for=condition=Established",
            f"--timeout={timeout}s",
            f"customresourcedefinition/{name}",
            timeout=timeout + 10,
        )


def _http_get(conn: http.client.HTTPConnection, path: str) -> tuple[bool, str]:
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read().decode(errors="replace")
    except (OSError, http.client.HTTPException) as e:
        return False, repr(e)
    finally:
        conn.close()
    # /readyz?verbose marks failing checks with [-]; the rest is noise in an error message.
    failing = [line for line in body.splitlines() if line.startswith("[-]")]
    return response.status == 200, f"HTTP {response.status}: {'; '.join(failing) or body[:500]}"


# ---- fixtures ----------------------------------------------------------------------


@pytest.fixture(scope="session")
def kube_control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """One etcd + kube-apiserver for the whole session: startup takes ~3 s on an idle
    2-core machine, much longer on a loaded one."""
    apiserver = binaries.require_binary("kube-apiserver")
    plane = ControlPlane(
        tmp_path_factory.mktemp("kube"),
        etcd=binaries.require_binary("etcd"),
        apiserver=apiserver,
        # Same dir as the apiserver first: kubectl must be within one minor version of it,
        # and $PATH may hold an older one (e.g. a cloud SDK's).
        kubectl=binaries.require_binary(
            "kubectl", dirs=[apiserver.parent, *binaries.default_dirs("kubectl")]
        ),
    )
    with plane:
        yield plane
