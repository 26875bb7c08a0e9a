"""A lightkube AsyncClient on our transport, behind the few calls imageprune makes
(get, list, create, merge patch, delete, watch), each with a deadline and our errors.

The transport (an httpx transport: lightkube's public hook for the connection) does
what lightkube leaves out: it presents our credential on every request and renews it
once after a 401 (exec plugins, rotated token files); it verifies the apiserver with
our TLS setup, including a client certificate an exec plugin hands out; it asks watches
for bookmarks and gives them a read deadline (lightkube gives them none), so that a
silent connection is noticed; and it bounds every answer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import tempfile
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import httpx2
import lightkube
from lightkube.config.client_adapter import verify_cluster
from lightkube.config.kubeconfig import SingleConfig
from lightkube.config.models import Cluster, Context, User
from lightkube.types import PatchType

from imageprune.kube.auth import Credential, Identity
from imageprune.kube.config import Target
from imageprune.kube.errors import AnswerTooLarge, ConfigError, translated

DEFAULT_TIMEOUT = 30.0
# httpx logs every request at INFO: 10,000 lines for a fan-out to 10,000 nodes. Our
# own messages name the calls that matter (failures, retries).
logging.getLogger(httpx2.__name__).setLevel(logging.WARNING)
_log = logging.getLogger(__name__)
# Our objects are small; a bigger answer (or watch event) means something is wrong.
# Counted decompressed: the apiserver gzips answers over 128 KiB.
MAX_BODY = 32 * 1024 * 1024
# A gzipped answer is inflated this much at a time: a small input never becomes a big
# buffer in one step.
_INFLATE_STEP = 1024 * 1024

# A request extension: a successful answer is dropped unread (an error is still read).
_DROP_ANSWER = "imageprune_drop_answer"
JsonObject = dict[str, Any]
T = TypeVar("T")
Resource = Any  # a lightkube generic resource class (kube.resources)


class Client:
    def __init__(self, target: Target, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.server = target.server
        self.timeout = timeout
        self.transport = Transport(target, timeout=timeout)
        # Only the server matters: TLS and credentials are the transport's. lightkube
        # still builds a TLS context of its own, unused; "insecure" spares it loading
        # the system's CA bundle for nothing (1.4 MiB).
        unused_tls = Cluster(server=target.server, insecure=True)
        self._api = lightkube.AsyncClient(
            SingleConfig("imageprune", Context(cluster="c"), unused_tls, User()),
            timeout=httpx2.Timeout(timeout),
            trust_env=False,
            transport=self.transport,
        )

    async def check(self) -> None:
        """Obtain the credential once (an exec plugin runs), failing early if it cannot."""
        await self.transport.credential.identity()

    async def get(self, res: Resource, name: str, *, namespace: str | None = None) -> JsonObject:
        call = self._api.get(res, name, namespace=namespace)
        return dict(await self._call(f"GET {name}", call))

    async def list(
        self,
        res: Resource,
        *,
        namespace: str | None = None,
        labels: Mapping[str, str] | None = None,
        fields: str | None = None,
        chunk_size: int | None = None,
        keep: Callable[[JsonObject], JsonObject] | None = None,
    ) -> tuple[list[JsonObject], str]:
        """The items and the list's resourceVersion; in pages of `chunk_size`, each item
        reduced by `keep` as its page arrives (so that a big list is never whole in memory).
        A page over the answer bound (objects near their maximum size) lists again, in
        pages of an eighth as many objects, down to one."""

        async def listing(size: int | None) -> tuple[list[JsonObject], str]:
            pages = self._api.list(
                res,
                namespace=namespace,
                labels=dict(labels) if labels else None,
                fields=_selector(fields),
                chunk_size=size,
            )
            items = [keep(dict(item)) if keep else dict(item) async for item in pages]
            return items, str(pages.resourceVersion)

        async def shrinking() -> tuple[list[JsonObject], str]:
            size = chunk_size
            while True:
                try:
                    return await listing(size)
                except AnswerTooLarge:
                    if not size or size == 1:
                        raise
                    smaller = max(1, size // 8)
                    _log.warning(
                        "LIST %s: a page of %d exceeds %d bytes; listing again in pages of %d",
                        _plural(res),
                        size,
                        MAX_BODY,
                        smaller,
                    )
                    size = smaller

        return await self._call(f"LIST {_plural(res)}", shrinking())

    async def create(self, obj: Any) -> JsonObject:
        return dict(await self._call(f"POST {_plural(type(obj))}", self._api.create(obj)))

    async def merge_patch(
        self,
        res: Resource,
        name: str,
        patch: Mapping[str, object],
        *,
        namespace: str | None = None,
    ) -> JsonObject:
        """A JSON merge patch (RFC 7386): null deletes a field, lists are replaced whole."""
        call = self._api.patch(
            res, name, dict(patch), namespace=namespace, patch_type=PatchType.MERGE
        )
        return dict(await self._call(f"PATCH {_plural(res)}/{name}", call))

    async def delete(self, res: Resource, name: str) -> None:
        await self._call(f"DELETE {_plural(res)}/{name}", self._api.delete(res, name))

    async def delete_collection(self, res: Resource, *, labels: Mapping[str, str]) -> None:
        """One DELETE for every object with these labels. lightkube's deletecollection
        takes no selector, so the request is built through its generic client. The
        apiserver answers with every object it deleted (tens of MB for 10,000 tasks): the
        transport drops that answer as it arrives, unread and unbounded."""
        selector = ",".join(f"{key}={value}" for key, value in labels.items())
        generic = self._api._client
        basic = generic.prepare_request(
            "deletecollection", res=res, params={"labelSelector": selector}
        )
        request = generic.build_adapter_request(basic)
        request.extensions[_DROP_ANSWER] = True

        async def call() -> None:
            answer = await generic.send(request)  # type: ignore[no-untyped-call]
            generic.handle_response("deletecollection", answer, basic)

        await self._call(f"DELETECOLLECTION {_plural(res)}", call())

    async def watch(
        self,
        res: Resource,
        *,
        resource_version: str,
        timeout_seconds: int,
        namespace: str | None = None,
        labels: Mapping[str, str] | None = None,
        fields: str | None = None,
    ) -> AsyncIterator[tuple[str, JsonObject]]:
        """(type, object) events from `resource_version` on, BOOKMARKs included; the
        watch is renewed from its last version each time the server ends it. Raises
        Gone when the version is too old."""
        events = self._api.watch(
            res,
            namespace=namespace,
            labels=dict(labels) if labels else None,
            fields=_selector(fields),
            resource_version=resource_version,
            server_timeout=timeout_seconds,
        )
        with translated(f"WATCH {_plural(res)}", self.server):
            async with contextlib.aclosing(events):  # type: ignore[type-var]
                async for kind, obj in events:
                    yield kind, dict(obj)

    async def close(self) -> None:
        await self._api.close()

    async def _call(self, what: str, call: Awaitable[T]) -> T:
        with translated(what, self.server):
            async with asyncio.timeout(self.timeout):
                return await call


def _selector(fields: str | None) -> dict[str, Any] | None:
    """lightkube takes selectors as {field: value}; ours are "field=value"."""
    if fields is None:
        return None
    field, _, value = fields.partition("=")
    return {field: value}


def _plural(res: Resource) -> str:
    return str(res._api_info.plural)


class Transport(httpx2.AsyncBaseTransport):
    def __init__(self, target: Target, *, timeout: float) -> None:
        self.credential: Credential = target.credential
        self.timeout = timeout
        self.tls_server_name = target.tls_server_name
        try:
            # lightkube's TLS setup: the configured CA (else the system roots), the
            # kubeconfig's client certificate if any (kube.config made paths absolute).
            self._ssl = verify_cluster(target.cluster, target.user, lambda p: p, trust_env=False)
        except (OSError, ValueError) as err:  # ssl.SSLError is an OSError
            raise ConfigError(f"cannot set up TLS from {target.source}: {err}") from None
        self._inner = httpx2.AsyncHTTPTransport(verify=self._ssl, proxy=target.proxy)
        self._plugin_cert: bytes | None = None

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        watch = request.url.params.get("watch") == "true"
        if watch:
            # Bookmarks keep the resume point fresh; the read deadline outlasts the
            # server's own end of the watch, so only a dead connection trips it.
            request.url = request.url.copy_merge_params({"allowWatchBookmarks": "true"})
            seconds = int(request.url.params.get("timeoutSeconds") or 0)
            request.extensions["timeout"] = {
                **request.extensions.get("timeout", {}),
                "read": seconds + self.timeout,
            }
        if self.tls_server_name:
            request.extensions["sni_hostname"] = self.tls_server_name
        # The one encoding _Bounded inflates (and counts) itself.
        request.headers["Accept-Encoding"] = "gzip"
        identity = await self.credential.identity()
        response = await self._send(request, identity)
        if response.status_code == 401:
            renewed = await self.credential.identity(rejected=identity)
            if renewed is not identity:
                await response.aclose()
                response = await self._send(request, renewed)
        if response.status_code >= 400 and "content-type" not in response.headers:
            response.headers["Content-Type"] = "text/plain"  # lightkube reads it
        if request.extensions.get(_DROP_ANSWER) and response.status_code < 400:
            response.stream = _Dropped(response.stream)
        else:
            encoding = response.headers.pop("Content-Encoding", "identity").strip().lower()
            response.stream = _Bounded(response.stream, per_line=watch, encoding=encoding)
        return response

    async def _send(self, request: httpx2.Request, identity: Identity) -> httpx2.Response:
        if identity.token:
            request.headers["Authorization"] = f"Bearer {identity.token}"
        if identity.cert_pem and identity.key_pem and identity.cert_pem != self._plugin_cert:
            # New connections present it; those still pooled keep the one they had.
            _load_cert_chain(self._ssl, identity.cert_pem, identity.key_pem)
            self._plugin_cert = identity.cert_pem
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


class _Bounded(httpx2.AsyncByteStream):
    """At most MAX_BODY bytes, once inflated: in all (an answer) or between two newlines
    (a watch). It inflates a gzipped answer itself, so that httpx (which the answer's
    Content-Encoding is hidden from) never holds more than the bound."""

    def __init__(self, inner: Any, *, per_line: bool, encoding: str = "identity") -> None:
        self._inner = inner
        self._per_line = per_line
        self._encoding = encoding

    async def __aiter__(self) -> AsyncIterator[bytes]:
        size = 0
        async for chunk in self._inflated():
            size += len(chunk)
            if self._per_line and b"\n" in chunk:
                size = len(chunk) - chunk.rfind(b"\n") - 1  # what the last line has so far
            if size > MAX_BODY:
                raise AnswerTooLarge(f"the answer exceeds {MAX_BODY} bytes")
            yield chunk

    async def _inflated(self) -> AsyncIterator[bytes]:
        if self._encoding == "identity":
            async for chunk in self._inner:
                yield chunk
            return
        if self._encoding != "gzip":
            raise httpx2.ReadError(f"the answer is in an encoding not asked for: {self._encoding}")
        inflate = zlib.decompressobj(zlib.MAX_WBITS | 16)
        try:
            async for chunk in self._inner:
                rest = chunk
                while rest and (piece := inflate.decompress(rest, _INFLATE_STEP)):
                    yield piece
                    rest = inflate.unconsumed_tail
            yield inflate.flush()
        except zlib.error as err:
            raise httpx2.ReadError(f"the answer is not valid gzip: {err}") from None

    async def aclose(self) -> None:
        await self._inner.aclose()


class _Dropped(httpx2.AsyncByteStream):
    """An answer read to its end (the connection stays usable) and thrown away."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for _ in self._inner:
            yield b""

    async def aclose(self) -> None:
        await self._inner.aclose()


def _load_cert_chain(context: ssl.SSLContext, cert: bytes, key: bytes) -> None:
    # ssl loads certificates only from files: they pass through a private temporary
    # directory that is gone before the first connection.
    with tempfile.TemporaryDirectory(prefix="imageprune-tls-") as tmp:
        cert_path, key_path = Path(tmp) / "client.crt", Path(tmp) / "client.key"
        cert_path.write_bytes(cert)
        key_path.touch(mode=0o600)
        key_path.write_bytes(key)
        context.load_cert_chain(cert_path, key_path)
