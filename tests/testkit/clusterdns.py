"""The one piece of cluster DNS a real node's pods need: the apiserver's Service name.

kopf's in-cluster login (the operator) connects to https://kubernetes.default.svc, as
clients do in every real cluster, where CoreDNS answers it. The real-node fixture runs no
CoreDNS: this UDP responder answers A queries for the names in `records` and NXDOMAIN
for anything else, and the kubelet's resolvConf points the pods at it.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import struct
import threading
from collections.abc import Mapping

_A, _AAAA, _IN = 1, 28, 1
_NXDOMAIN = 3
_TTL = 30


def answer(query: bytes, records: Mapping[str, str]) -> bytes | None:
    """The response to one DNS query message, or None for what is not a query."""
    if len(query) < 12:
        return None
    ident, flags, qdcount = struct.unpack("!HHH", query[:6])
    if flags & 0x8000 or qdcount != 1:  # a response, or not exactly one question
        return None
    labels, offset = [], 12
    while offset < len(query) and (length := query[offset]) != 0:
        if length > 63:  # compression pointers never appear in a question we accept
            return None
        labels.append(query[offset + 1 : offset + 1 + length].decode("ascii", "replace"))
        offset += 1 + length
    if offset + 5 > len(query):
        return None
    qtype, qclass = struct.unpack("!HH", query[offset + 1 : offset + 5])
    question = query[12 : offset + 5]
    name = ".".join(labels).lower()
    address = records.get(name)
    answers = b""
    if address is not None and qtype == _A and qclass == _IN:
        # The name as a pointer to the question's (offset 12).
        answers = struct.pack("!HHHIH", 0xC00C, _A, _IN, _TTL, 4)
        answers += ipaddress.IPv4Address(address).packed
    rcode = 0 if address is not None else _NXDOMAIN
    # QR, the query's RD bit, RA; known names with another type get an empty NOERROR.
    header = struct.pack(
        "!HHHHHH", ident, 0x8080 | (flags & 0x0100) | rcode, 1, 1 if answers else 0, 0, 0
    )
    return header + question + answers


class Responder:
    """answer() on a UDP socket, in a thread, until stop()."""

    def __init__(self, address: str, records: Mapping[str, str], port: int = 53) -> None:
        self.records = {name.lower(): ip for name, ip in records.items()}
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self._socket.bind((address, port))
        except OSError as e:
            self._socket.close()
            raise RuntimeError(f"cannot serve DNS on {address}:{port}: {e}") from e
        self._socket.settimeout(0.5)  # how often the thread checks for stop()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="cluster-dns", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stopping.is_set():
            try:
                query, peer = self._socket.recvfrom(512)
            except TimeoutError:
                continue
            except OSError:
                return
            if (response := answer(query, self.records)) is not None:
                with contextlib.suppress(OSError):
                    self._socket.sendto(response, peer)

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join()
        self._socket.close()
