"""Leader election, the I/O (election.py decides): the operator takes the Lease before
kopf starts, waits as a standby while another holds it, renews it from a thread of its
own (so that a busy event loop never delays a renewal), and releases it on its way out.

A leader that cannot renew within the renew deadline exits at once, before the lease it
last renewed can expire: the standby that takes over is then the only one writing."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import http.server
import logging
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

from imageprune.cluster import election
from imageprune.kube import resources
from imageprune.kube.client import Client as KubeClient
from imageprune.kube.config import Target
from imageprune.kube.errors import ApiError, ConfigError, KubeError

EXIT_LOST = 1
_log = logging.getLogger("imageprune.cluster.leader")


@dataclasses.dataclass(frozen=True)
class Settings:
    namespace: str
    name: str = "imageprune-operator"
    duration: int = 15  # leaseDurationSeconds: how long a standby waits on a silent leader
    renew_deadline: float = 10.0  # a leader that has not renewed for this long leaves
    retry: float = 2.0  # seconds between two tries, to take or to renew


def identity() -> str:
    """The pod's name (its hostname) and a random suffix: a restarted pod is a new
    candidate, and two processes on one host differ."""
    return f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"


class Elector:
    def __init__(self, client: KubeClient, settings: Settings, me: str) -> None:
        self._client, self._settings, self.me = client, settings, me
        self._observer = election.Observer()
        self._record: election.Record | None = None
        self._leader_seen: str | None = None
        # When the last successful write began: the lease runs from no later than that.
        self._renewed = 0.0
        self._refused_since: float | None = None  # RBAC has refused the lease since then

    @property
    def _where(self) -> str:
        return f"lease {self._settings.namespace}/{self._settings.name}"

    async def acquire(self, stop: asyncio.Event) -> bool:
        """True once we lead; False if `stop` is set first."""
        while not stop.is_set():
            started = time.monotonic()
            if await self._attempt():
                self._renewed = started
                _log.info("leading (%s, as %s)", self._where, self.me)
                return True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._settings.retry)
        return False

    async def keep(self, stop: asyncio.Event) -> None:
        """Renew every retry period until `stop`; raise Lost past the renew deadline."""
        renewed = self._renewed
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._settings.retry)
            if stop.is_set():
                return
            started = time.monotonic()
            left = renewed + self._settings.renew_deadline - started
            try:
                async with asyncio.timeout(max(left, 0.0)):
                    ours = await self._attempt()
            except TimeoutError:
                ours = False
            except (ConfigError, Refused) as error:  # a plugin failing, RBAC changed
                _log.warning("cannot renew the %s: %s", self._where, error)
                ours = False
            if ours:
                # From the try's start, not its answer: a slow answer must not stretch
                # the deadline past the moment a standby may take over.
                renewed = started
            elif time.monotonic() - renewed >= self._settings.renew_deadline:
                raise Lost(
                    f"could not renew the {self._where} for {self._settings.renew_deadline:g}s"
                )

    async def release(self) -> None:
        """Best effort: a lease left held expires after its duration anyway."""
        if self._record is None or self._record.holder != self.me:
            return
        spec = election.released(self._record, now=_now())
        try:
            await self._write(spec, self._record.version)
            _log.info("released the %s", self._where)
        except KubeError as error:
            _log.warning("could not release the %s: %s", self._where, error)

    async def _attempt(self) -> bool:
        """One read and, if the lease is ours to take or renew, one write: True if it is ours.
        Raises ConfigError when the credentials fail, and Refused when RBAC has refused
        the lease for a whole lease duration (retrying will not help either)."""
        settings = self._settings
        try:
            lease = await self._client.get(
                resources.Lease, settings.name, namespace=settings.namespace
            )
        except ApiError as error:
            self._refused(error)
            if error.status != 404:
                _log.warning("cannot read the %s: %s", self._where, error)
                return False
            lease = None
        except ConfigError:
            raise
        except KubeError as error:
            _log.warning("cannot read the %s: %s", self._where, error)
            return False
        record = election.Record.of(lease) if lease is not None else None
        now = time.monotonic()
        decision = election.decide(
            record, me=self.me, seen_since=self._observer.seen_since(record, now), now=now
        )
        if decision is election.Decision.WAIT:
            assert record is not None
            if record.holder != self._leader_seen:
                self._leader_seen = record.holder
                _log.info("standby: %s leads (%s)", record.holder, self._where)
            return False
        spec = election.spec(record, decision, me=self.me, duration=settings.duration, now=_now())
        try:
            if record is None:
                written = await self._client.create(
                    resources.Lease.from_dict(
                        {
                            "metadata": {"name": settings.name, "namespace": settings.namespace},
                            "spec": spec,
                        }
                    )
                )
            else:
                written = await self._write(spec, record.version)
        except ApiError as error:
            self._refused(error)
            if error.status != 409:  # 409: another candidate wrote first; read again
                _log.warning("cannot write the %s: %s", self._where, error)
            return False
        except ConfigError:
            raise
        except KubeError as error:
            _log.warning("cannot write the %s: %s", self._where, error)
            return False
        self._record = election.Record.of(written)
        self._refused_since = None
        return True

    def _refused(self, error: ApiError) -> None:
        """A refusal that outlasts a lease duration is RBAC, not its cache catching up
        with a Role just installed: say which permission is missing and give up."""
        if error.status not in (401, 403):
            self._refused_since = None
            return
        now = time.monotonic()
        if self._refused_since is None:
            self._refused_since = now
        if now - self._refused_since >= self._settings.duration:
            raise Refused(
                f"the apiserver refuses the {self._where} ({error}); the operator needs "
                f"get, create and patch on leases.coordination.k8s.io in namespace "
                f"{self._settings.namespace} (the chart's Role), or --no-leader-election "
                f"for a single replica"
            )

    async def _write(self, spec: dict[str, Any], version: str) -> dict[str, Any]:
        # The resourceVersion in the patch is a precondition: 409 if the lease moved on.
        patch = {"metadata": {"resourceVersion": version}, "spec": spec}
        return await self._client.merge_patch(
            resources.Lease, self._settings.name, patch, namespace=self._settings.namespace
        )


class Lost(Exception):
    """The leader could not renew in time."""


class Refused(KubeError):
    """RBAC does not let this operator take part in the election."""


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class Leadership:
    """The elector on a thread with its own event loop and client: `acquire` blocks the
    caller until we lead; then renewals go on beside kopf until `resign`."""

    def __init__(self, target: Target, settings: Settings) -> None:
        self.me = identity()
        self._target, self._settings = target, settings
        self._loop = asyncio.new_event_loop()
        self._stop = asyncio.Event()
        self._decided = threading.Event()
        self._leading = False
        # Why we gave up standing by: the credentials failed, or RBAC refused the lease.
        self.failure: str | None = None
        self._thread = threading.Thread(target=self._main, name="leader-election", daemon=True)

    def acquire(self) -> bool:
        """True once we lead; False if `stop` was called while we stood by, or if the
        credentials failed (`failure`)."""
        self._thread.start()
        self._decided.wait()
        return self._leading

    def stop(self) -> None:
        """From any thread (or a signal handler): stop waiting, or stop renewing."""
        with contextlib.suppress(RuntimeError):  # the thread has ended, its loop closed
            self._loop.call_soon_threadsafe(self._stop.set)

    def resign(self) -> None:
        """Stop renewing and release the lease (kopf has stopped writing by then)."""
        self.stop()
        self._thread.join(timeout=self._settings.renew_deadline + self._settings.retry)

    def _main(self) -> None:
        try:
            self._loop.run_until_complete(self._run())
        finally:
            self._decided.set()
            self._loop.close()

    async def _run(self) -> None:
        client = KubeClient(self._target, timeout=self._settings.renew_deadline)
        elector = Elector(client, self._settings, self.me)
        try:
            try:
                self._leading = await elector.acquire(self._stop)
            except ConfigError as error:
                self.failure = f"cannot log in: {error}"
                return
            except Refused as error:
                self.failure = str(error)
                return
            self._decided.set()
            if not self._leading:
                return
            try:
                await elector.keep(self._stop)
            except Lost as lost:
                # Stop writing now: kopf's graceful stop would go on writing for a while,
                # and a standby may take the lease once it expires.
                _log.critical("lost the lead: %s; exiting", lost)
                logging.shutdown()
                sys.stderr.flush()
                os._exit(EXIT_LOST)
            await elector.release()
        finally:
            await client.close()


@contextlib.contextmanager
def healthy(port: int) -> Iterator[None]:
    """/healthz answers 200 on `port` while we stand by (kopf serves it once it runs), so
    that the kubelet does not restart a standby. Raises OSError if the port is taken."""
    if not port:
        yield
        return
    # The kubelet probes the pod IP, as it does kopf's endpoint on 0.0.0.0.
    server = http.server.ThreadingHTTPServer(("0.0.0.0", port), _Healthz)  # noqa: S104
    thread = threading.Thread(target=server.serve_forever, name="standby-healthz", daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


class _Healthz(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        found = self.path.split("?")[0] == "/healthz"
        body = b"standby\n" if found else b"not found\n"
        self.send_response(200 if found else 404)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the probe calls every few seconds."""
