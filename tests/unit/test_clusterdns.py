"""The test kit's DNS responder (tests/testkit/clusterdns.py) answers as a resolver
expects: checked against hand-made query messages, and once over a real socket."""

from __future__ import annotations

import socket
import struct

import pytest

from testkit import clusterdns

pytestmark = pytest.mark.unit

RECORDS = {"kubernetes.default.svc": "10.0.0.1"}


def query(name: str, qtype: int = 1, ident: int = 0x1234) -> bytes:
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split("."))
    return (
        struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0)
        + labels
        + b"\0"
        + struct.pack("!HH", qtype, 1)
    )


def header(response: bytes) -> tuple[int, int, int, int]:
    ident, flags, qdcount, ancount = struct.unpack("!HHHH", response[:8])
    return ident, flags, qdcount, ancount


def test_a_record_of_a_known_name() -> None:
    q = query("Kubernetes.Default.svc")
    response = clusterdns.answer(q, RECORDS)
    assert response is not None
    ident, flags, qdcount, ancount = header(response)
    assert (ident, qdcount, ancount) == (0x1234, 1, 1)
    assert flags & 0x8000  # a response
    assert flags & 0x0100  # recursion desired, as asked
    assert flags & 0xF == 0  # NOERROR
    assert response[12 : len(q)] == q[12:]  # the question, echoed
    assert response[-4:] == socket.inet_aton("10.0.0.1")


def test_other_type_of_a_known_name_is_empty() -> None:
    response = clusterdns.answer(query("kubernetes.default.svc", qtype=28), RECORDS)
    assert response is not None
    _, flags, _, ancount = header(response)
    assert (flags & 0xF, ancount) == (0, 0)


def test_unknown_name_is_nxdomain() -> None:
    response = clusterdns.answer(query("example.com"), RECORDS)
    assert response is not None
    _, flags, _, ancount = header(response)
    assert (flags & 0xF, ancount) == (3, 0)


@pytest.mark.parametrize(
    "message",
    [b"", b"\0" * 11, query("a")[:-3], struct.pack("!HHHHHH", 1, 0x8000, 1, 0, 0, 0) + b"\0"],
    ids=["empty", "short", "truncated", "a-response"],
)
def test_what_is_not_a_query_gets_no_answer(message: bytes) -> None:
    assert clusterdns.answer(message, RECORDS) is None


def test_responder_answers_over_udp() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    responder = clusterdns.Responder("127.0.0.1", RECORDS, port=port)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.settimeout(10)
            client.sendto(query("kubernetes.default.svc"), ("127.0.0.1", port))
            response, _ = client.recvfrom(512)
        assert response[-4:] == socket.inet_aton("10.0.0.1")
    finally:
        responder.stop()
