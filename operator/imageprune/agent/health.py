"""/healthz for the kubelet's liveness probe: a tiny HTTP server on the event loop, so
that it answers only while the loop itself runs (a wedged loop fails the probe)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable

log = logging.getLogger("imageprune.agent.health")

Check = Callable[[], tuple[bool, dict[str, object]]]
_READ_TIMEOUT = 5.0


async def serve(port: int, check: Check, *, host: str = "0.0.0.0") -> asyncio.Server:  # noqa: S104
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(_READ_TIMEOUT):
                request = await reader.readline()
                while (await reader.readline()).strip():
                    pass  # headers: nothing in them matters here
            parts = request.decode("latin-1").split()
            path = parts[1].split("?")[0] if len(parts) > 1 else ""
            if path in ("/healthz", "/livez"):
                ok, detail = check()
                status = "200 OK" if ok else "503 Service Unavailable"
                body = json.dumps({"ok": ok, **detail}).encode()
            else:
                status, body = "404 Not Found", b'{"error": "try /healthz"}'
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (OSError, TimeoutError, UnicodeDecodeError) as err:
            log.debug("health probe connection failed: %s", err)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    return await asyncio.start_server(handle, host, port)
