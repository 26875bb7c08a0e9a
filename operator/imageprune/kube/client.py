"""HTTP/1.1 to the apiserver over asyncio streams: one connection per request (the
agent makes a handful per minute, and a fresh connection never carries a stale
half-closed socket), JSON bodies, chunked watch streams read line by line.

Every call has a deadline; a watch has one per read, longer than the
timeoutSeconds it asks the server for, so a silent connection is noticed."""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import tempfile
import urllib.parse
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import imageprune
from imageprune.kube.config import Credentials
from imageprune.kube.errors import ApiError, ConfigError, Gone, Unreachable

DEFAULT_TIMEOUT = 30.0
# The agent's objects are small; a bigger answer means something is wrong.
MAX_BODY = 32 * 1024 * 1024
_READ = 64 * 1024
_CLOSE_TIMEOUT = 2.0

JsonObject = dict[str, Any]


class Client:
    def __init__(self, credentials: Credentials, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.credentials = credentials
        self.timeout = timeout
        self.server = credentials.server
        self._ssl = ssl_context(credentials) if credentials.tls else None

    # ---- verbs ------------------------------------------------------------------

    async def get(self, path: str) -> JsonObject:
        return await self._json("GET", path)

    async def list(self, path: str, *, field_selector: str | None = None) -> JsonObject:
        return await self._json("GET", path, query={"fieldSelector": field_selector})

    async def merge_patch(self, path: str, patch: Mapping[str, object]) -> JsonObject:
        """A JSON merge patch (RFC 7386): null deletes a field, lists are replaced whole."""
        return await self._json(
            "PATCH",
            path,
            body=json.dumps(patch).encode(),
            content_type="application/merge-patch+json",
        )

    async def watch(
        self,
        path: str,
        *,
        resource_version: str,
        timeout_seconds: int,
        field_selector: str | None = None,
    ) -> AsyncIterator[JsonObject]:
        """Watch events ({"type", "object"}) from `resource_version` on, BOOKMARKs
        included, until the server ends the watch (after about timeout_seconds).
        Raises Gone when the version is too old, ApiError for other ERROR events."""
        query = {
            "watch": "1",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(timeout_seconds),
            "fieldSelector": field_selector,
        }
        async with self._open("GET", path, query=query) as response:
            status, headers, reader = response
            if status != 200:
                raise _api_error(status, await _body(reader, headers, self.timeout), path)
            pending = b""
            silence = timeout_seconds + self.timeout
            try:
                async for chunk in _chunks(reader, headers, read_timeout=silence):
                    pending += chunk
                    *lines, pending = pending.split(b"\n")
                    for line in lines:
                        if line.strip():
                            yield _event(line, path)
            except TimeoutError:
                raise Unreachable(
                    f"the watch of {path} at {self.server} stayed silent for {silence:g}s"
                ) from None

    # ---- plumbing ---------------------------------------------------------------

    async def _json(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str | None] | None = None,
        body: bytes | None = None,
        content_type: str | None = None,
    ) -> JsonObject:
        try:
            async with asyncio.timeout(self.timeout):
                async with self._open(
                    method, path, query=query, body=body, content_type=content_type
                ) as (
                    status,
                    headers,
                    reader,
                ):
                    payload = await _body(reader, headers, None)
        except TimeoutError:
            raise Unreachable(
                f"the apiserver at {self.server} did not answer {method} {path} within "
                f"{self.timeout:g}s"
            ) from None
        if status >= 400:
            raise _api_error(status, payload, f"{method} {path}")
        try:
            document = json.loads(payload)
        except ValueError:
            raise Unreachable(
                f"the apiserver at {self.server} sent invalid JSON for {path}"
            ) from None
        if not isinstance(document, dict):
            raise Unreachable(f"the apiserver at {self.server} sent a non-object for {path}")
        return document

    @contextlib.asynccontextmanager
    async def _open(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str | None] | None = None,
        body: bytes | None = None,
        content_type: str | None = None,
    ) -> AsyncIterator[tuple[int, dict[str, str], asyncio.StreamReader]]:
        """Send one request; yield (status, headers, reader) once the headers are in."""
        c = self.credentials
        target = path
        if query:
            target += "?" + urllib.parse.urlencode(
                {k: v for k, v in query.items() if v is not None}
            )
        writer: asyncio.StreamWriter | None = None
        try:
            async with asyncio.timeout(self.timeout):
                reader, writer = await asyncio.open_connection(
                    c.host,
                    c.port,
                    ssl=self._ssl,
                    server_hostname=(c.tls_server_name or c.host) if self._ssl else None,
                    limit=_READ,
                )
                writer.write(self._request_head(method, target, body, content_type))
                if body:
                    writer.write(body)
                await writer.drain()
                status, headers = await _read_head(reader)
            yield status, headers, reader
        except TimeoutError:  # before OSError, which it subclasses
            raise Unreachable(
                f"the apiserver at {self.server} did not answer {method} {path} within "
                f"{self.timeout:g}s"
            ) from None
        except (OSError, asyncio.IncompleteReadError, ValueError) as err:
            # ssl.SSLError is an OSError: a certificate problem lands here too.
            raise Unreachable(
                f"cannot reach the apiserver at {self.server}: {_describe(err)}"
            ) from None
        finally:
            if writer is not None:
                writer.close()
                # TLS says goodbye asynchronously: wait (briefly) so no transport outlives
                # its request.
                with contextlib.suppress(OSError, TimeoutError):
                    await asyncio.wait_for(writer.wait_closed(), _CLOSE_TIMEOUT)

    def _request_head(
        self, method: str, target: str, body: bytes | None, content_type: str | None
    ) -> bytes:
        c = self.credentials
        lines = [
            f"{method} {target} HTTP/1.1",
            f"Host: [{c.host}]:{c.port}" if ":" in c.host else f"Host: {c.host}:{c.port}",
            f"User-Agent: imageprune/{imageprune.__version__}",
            "Accept: application/json",
            "Connection: close",
        ]
        token = self._token()
        if token:
            lines.append(f"Authorization: Bearer {token}")
        if body is not None:
            lines += [f"Content-Type: {content_type}", f"Content-Length: {len(body)}"]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    def _token(self) -> str | None:
        c = self.credentials
        if c.token_file is not None:
            try:
                return c.token_file.read_text().strip()
            except OSError as err:
                raise ConfigError(f"cannot read the token file {c.token_file}: {err}") from None
        return c.token


def ssl_context(c: Credentials) -> ssl.SSLContext:
    """Verify the apiserver against the configured CA (the system roots when none is
    set); present the client certificate if there is one."""
    try:
        if c.ca_file is not None or c.ca_data is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.load_verify_locations(
                cafile=c.ca_file, cadata=c.ca_data.decode() if c.ca_data else None
            )
        else:
            context = ssl.create_default_context()
        if c.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if c.cert_file or c.cert_data:
            _load_client_cert(context, c)
    except (OSError, ValueError) as err:
        raise ConfigError(f"cannot set up TLS from {c.source}: {_describe(err)}") from None
    return context


def _load_client_cert(context: ssl.SSLContext, c: Credentials) -> None:
    # ssl only loads certificates from files: inline data goes through a private
    # temporary directory that is gone before the first connection.
    with tempfile.TemporaryDirectory(prefix="imageprune-tls-") as tmp:
        cert, key = c.cert_file, c.key_file
        if c.cert_data is not None:
            cert = Path(tmp) / "client.crt"
            cert.write_bytes(c.cert_data)
        if c.key_data is not None:
            key = Path(tmp) / "client.key"
            key.touch(mode=0o600)
            key.write_bytes(c.key_data)
        context.load_cert_chain(cert or "", key)


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    status_line = await reader.readline()
    parts = status_line.decode("latin-1").split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise ValueError(f"not an HTTP response: {status_line[:80]!r}")
    headers: dict[str, str] = {}
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n"):
            return int(parts[1]), headers
        if not line:
            raise asyncio.IncompleteReadError(line, None)
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()


async def _chunks(
    reader: asyncio.StreamReader, headers: Mapping[str, str], *, read_timeout: float | None
) -> AsyncIterator[bytes]:
    """The body as it arrives: chunked, sized or up to EOF."""

    async def timed(read: Any) -> bytes:
        async with asyncio.timeout(read_timeout):
            data: bytes = await read
        return data

    if "chunked" in headers.get("transfer-encoding", "").lower():
        while True:
            size_line = await timed(reader.readline())
            if not size_line:
                raise asyncio.IncompleteReadError(b"", None)
            size = int(size_line.split(b";")[0].strip(), 16)
            if size == 0:
                while (await timed(reader.readline())).strip():
                    pass  # trailers
                return
            yield await timed(reader.readexactly(size))
            await timed(reader.readexactly(2))
    elif "content-length" in headers:
        length = int(headers["content-length"])
        if length > MAX_BODY:
            raise ValueError(f"response of {length} bytes exceeds {MAX_BODY}")
        yield await timed(reader.readexactly(length))
    else:
        while data := await timed(reader.read(_READ)):
            yield data


async def _body(
    reader: asyncio.StreamReader, headers: Mapping[str, str], read_timeout: float | None
) -> bytes:
    parts = []
    size = 0
    async for chunk in _chunks(reader, headers, read_timeout=read_timeout):
        size += len(chunk)
        if size > MAX_BODY:
            raise ValueError(f"response exceeds {MAX_BODY} bytes")
        parts.append(chunk)
    return b"".join(parts)


def _event(line: bytes, path: str) -> JsonObject:
    try:
        event = json.loads(line)
    except ValueError:
        raise Unreachable(f"invalid watch event for {path}: {line[:200]!r}") from None
    if not isinstance(event, dict) or not isinstance(event.get("object"), dict):
        raise Unreachable(f"invalid watch event for {path}: {line[:200]!r}")
    if event.get("type") == "ERROR":
        status = event["object"]
        raise _api_error(
            int(status.get("code") or 500), json.dumps(status).encode(), f"watch {path}"
        )
    return event


def _api_error(status: int, payload: bytes, what: str) -> ApiError:
    message, reason = "", ""
    with contextlib.suppress(ValueError, AttributeError):
        document = json.loads(payload)
        message, reason = str(document.get("message", "")), str(document.get("reason", ""))
    text = f"{what}: HTTP {status} {reason}: {message or payload[:300].decode(errors='replace')}"
    kind = Gone if status == 410 else ApiError
    return kind(text, status=status, reason=reason)


def _describe(err: BaseException) -> str:
    if isinstance(err, asyncio.IncompleteReadError):
        return "the connection closed mid-answer"
    return str(err) or type(err).__name__
