"""An HTTP CONNECT proxy, as a corporate network puts between a laptop and a managed
cluster: it tunnels TLS to the host a client names, resolving names the client itself
cannot (`hosts`), and records each tunnel's target. Threads, not asyncio: kubectl runs
as a blocking subprocess in the tests that use it."""

from __future__ import annotations

import contextlib
import select
import socket
import socketserver
import threading
from collections.abc import Iterator, Mapping


class Proxy(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, hosts: Mapping[str, str]) -> None:
        super().__init__(("127.0.0.1", 0), _Tunnel)
        self.hosts = dict(hosts)
        self.tunnels: list[str] = []  # "host:port" of each CONNECT, in order


class _Tunnel(socketserver.StreamRequestHandler):
    server: Proxy

    def handle(self) -> None:
        request = self.rfile.readline(65536).decode("latin-1").split()
        while self.rfile.readline(65536) not in (b"\r\n", b"\n", b""):
            pass  # the request's headers
        if len(request) < 2 or request[0] != "CONNECT":
            self.wfile.write(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            return
        self.server.tunnels.append(request[1])
        host, _, port = request[1].rpartition(":")
        try:
            upstream = socket.create_connection((self.server.hosts.get(host, host), int(port)))
        except (OSError, ValueError):
            self.wfile.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            return
        with upstream:
            self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            self.wfile.flush()
            _pump(self.connection, upstream)


def _pump(a: socket.socket, b: socket.socket) -> None:
    peers = {a: b, b: a}
    while True:
        readable, _, _ = select.select(list(peers), [], [], 60)
        if not readable:
            return
        for sock in readable:
            data = sock.recv(65536)
            if not data:
                return
            peers[sock].sendall(data)


@contextlib.contextmanager
def running(hosts: Mapping[str, str] | None = None) -> Iterator[Proxy]:
    """The proxy, serving until the block ends: `.server_address`, `.tunnels`."""
    server = Proxy(hosts or {})
    thread = threading.Thread(target=server.serve_forever, name="connect-proxy", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
