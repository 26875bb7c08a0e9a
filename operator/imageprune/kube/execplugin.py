"""Exec credential plugins (`users[].user.exec` in a kubeconfig), as kubectl runs them:
how EKS (`aws eks get-token`), GKE (`gke-gcloud-auth-plugin`) and AKS (`kubelogin`)
are reached. lightkube's own speaks only v1beta1 and reads only the token; this one
speaks client.authentication.k8s.io/v1 and v1beta1, passes KUBERNETES_EXEC_INFO,
keeps the credential until its expirationTimestamp, and accepts a client certificate.

The plugin is someone else's program: it gets a deadline, its output is bounded, and
every failure is a ConfigError that names the command."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import json
import os
import signal
from collections.abc import Callable, Mapping
from typing import Any

import msgspec
from lightkube.config.models import UserExec

from imageprune.kube.auth import Identity
from imageprune.kube.errors import ConfigError

API_VERSIONS = ("client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1")
TIMEOUT = 60.0  # cloud CLIs may need a few network round trips
_OUTPUT_LIMIT = 1024 * 1024
_REAP_TIMEOUT = 5.0
# Renew this long before the expiry, so that no request carries a token that expires
# on the way.
_MARGIN = datetime.timedelta(seconds=10)
_CLUSTER_INFO_FIELDS = (
    "server",
    "tls-server-name",
    "insecure-skip-tls-verify",
    "disable-compression",
)
_EXEC_EXTENSION = "client.authentication.k8s.io/exec"
# A failure is shared this long: the requests that wait on the run, and those that come
# right after (several watches, kopf's login), get it without running the plugin again.
_FAILURE_MEMORY = datetime.timedelta(seconds=30)


def cluster_info(cluster: Mapping[str, Any], *, ca: bytes | None) -> dict[str, Any]:
    """spec.cluster of KUBERNETES_EXEC_INFO, for a plugin with provideClusterInfo, as
    client-go writes it: the kubeconfig's own field names, the CA inline (read from its
    file if need be), and the cluster's client.authentication.k8s.io/exec extension as
    `config`."""
    info = {key: cluster[key] for key in _CLUSTER_INFO_FIELDS if cluster.get(key)}
    if ca is not None:
        info["certificate-authority-data"] = base64.b64encode(ca).decode()
    extensions = cluster.get("extensions")
    info["config"] = next(
        (
            entry.get("extension")
            for entry in (extensions if isinstance(extensions, list) else ())
            if isinstance(entry, Mapping) and entry.get("name") == _EXEC_EXTENSION
        ),
        None,
    )
    return info


class _Status(msgspec.Struct):
    token: str | None = None
    clientCertificateData: str | None = None
    clientKeyData: str | None = None
    expirationTimestamp: datetime.datetime | None = None


class _ExecCredential(msgspec.Struct):
    apiVersion: str
    kind: str
    status: _Status


class ExecPlugin:
    def __init__(
        self,
        config: UserExec,
        *,
        cluster: Mapping[str, Any] | None = None,
        timeout: float = TIMEOUT,
        now: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC),
    ) -> None:
        if config.apiVersion not in API_VERSIONS:
            raise ConfigError(
                f"exec credential plugin {config.command!r}: apiVersion {config.apiVersion!r}"
                f" is not supported, only {' and '.join(API_VERSIONS)}"
            )
        self.config = config
        self.argv = [config.command, *(config.args or [])]
        self.name = f"exec credential plugin {' '.join(self.argv)!r}"
        self.cluster = cluster  # given to the plugin when the kubeconfig asks to
        self.timeout = timeout
        self._now = now
        self._cached: Identity | None = None
        self._lock: asyncio.Lock | None = None
        self._failure: tuple[datetime.datetime, ConfigError] | None = None  # (until, error)
        self.runs = 0  # how often the plugin ran (logged, and tested)

    async def identity(self, *, rejected: Identity | None = None) -> Identity:
        # One run at a time: concurrent requests wait for it and share its answer.
        self._lock = self._lock or asyncio.Lock()
        async with self._lock:
            cached = self._cached
            if cached is not None and cached is not rejected and not self._expired(cached):
                return cached
            if self._failure is not None and self._now() < self._failure[0]:
                raise self._failure[1]
            try:
                self._cached = await self._run()
            except ConfigError as error:
                self._failure = (self._now() + _FAILURE_MEMORY, error)
                raise
            self._failure = None
            return self._cached

    def _expired(self, identity: Identity) -> bool:
        return identity.expires is not None and identity.expires - _MARGIN <= self._now()

    async def _run(self) -> Identity:
        c = self.config
        self.runs += 1
        spec: dict[str, object] = {"interactive": False}
        if self.cluster is not None:
            spec["cluster"] = self.cluster
        info = {"apiVersion": c.apiVersion, "kind": "ExecCredential", "spec": spec}
        env = {**os.environ, **{e.name: e.value for e in c.env or ()}}
        env["KUBERNETES_EXEC_INFO"] = json.dumps(info)
        try:
            process = await asyncio.create_subprocess_exec(
                *self.argv,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as err:
            # Hints span lines (GKE's does): folded into one.
            hint = " ".join((c.installHint or "").split())
            hint = f" ({hint})" if hint else ""
            raise ConfigError(f"{self.name} cannot be run: {err.strerror or err}{hint}") from None
        # Filled as the plugin writes: what it said survives a timeout.
        out, said = bytearray(), bytearray()
        try:
            async with asyncio.timeout(self.timeout):
                assert process.stdout is not None
                assert process.stderr is not None
                await asyncio.gather(
                    _read(process.stdout, process, out), _read(process.stderr, process, said)
                )
                code = await process.wait()
        except TimeoutError:
            # A plugin waiting for a login (a device code to enter) has said so on stderr.
            raise ConfigError(
                f"{self.name} did not finish within {self.timeout:g}s: {_tail(said)}"
            ) from None
        finally:
            if process.returncode is None:  # timed out or cancelled
                _kill(process)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(process.wait(), _REAP_TIMEOUT)
        if max(len(out), len(said)) > _OUTPUT_LIMIT:
            raise ConfigError(f"{self.name} printed more than {_OUTPUT_LIMIT // 1024} KiB")
        if code != 0:
            raise ConfigError(f"{self.name} failed with exit code {code}: {_tail(said)}")
        return self._credential(bytes(out))

    def _credential(self, out: bytes) -> Identity:
        def bad(why: str) -> ConfigError:
            return ConfigError(f"{self.name} did not print a usable ExecCredential: {why}")

        try:
            credential = msgspec.json.decode(out, type=_ExecCredential)
        except msgspec.DecodeError as err:  # not JSON, or a field of the wrong type
            raise bad(f"{err}: {out[:200]!r}") from None
        status, version = credential.status, self.config.apiVersion
        if credential.kind != "ExecCredential" or credential.apiVersion != version:
            raise bad(
                f"{credential.apiVersion} {credential.kind}, expected {version} ExecCredential"
            )
        cert, key = status.clientCertificateData, status.clientKeyData
        if bool(cert) != bool(key):
            raise bad("a client certificate needs its key and a key its certificate")
        if not status.token and not cert:
            raise bad("neither status.token nor status.clientCertificateData")
        expires = status.expirationTimestamp
        return Identity(
            token=status.token or None,
            cert_pem=cert.encode() if cert else None,
            key_pem=key.encode() if key else None,
            expires=expires.replace(tzinfo=expires.tzinfo or datetime.UTC) if expires else None,
        )


async def _read(
    stream: asyncio.StreamReader, process: asyncio.subprocess.Process, into: bytearray
) -> None:
    """Everything up to EOF, into `into`; an output past the limit ends the plugin."""
    while chunk := await stream.read(64 * 1024):
        into += chunk
        if len(into) > _OUTPUT_LIMIT:
            _kill(process)
            return


def _tail(said: bytearray) -> str:
    """The end of what the plugin printed on stderr, its lines joined into one."""
    lines = [line.strip() for line in said.decode(errors="replace").splitlines()]
    return "; ".join(line for line in lines if line)[-2000:] or "(no output)"


def _kill(process: asyncio.subprocess.Process) -> None:
    # The whole group: a child of the plugin may hold its output open.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
