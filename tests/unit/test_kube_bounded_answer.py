"""The transport's answer bound over a gzipped body, fed in chunks as a connection
delivers them: inflated whole when within the bound, in bounded pieces, and refused
when corrupt, in an encoding not asked for, or inflating past the bound (a small
compressed answer must not become a big buffer)."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator, Sequence

import httpx2
import pytest

from imageprune.kube import client as kube_client

pytestmark = pytest.mark.unit


class _Chunks(httpx2.AsyncByteStream):
    def __init__(self, chunks: Sequence[bytes]) -> None:
        self._chunks = chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self._chunks:
            yield chunk


def _split(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


async def _pieces(encoding: str, chunks: Sequence[bytes]) -> list[bytes]:
    stream = kube_client._Bounded(_Chunks(chunks), per_line=False, encoding=encoding)
    return [piece async for piece in stream]


async def test_a_gzipped_answer_in_small_chunks_inflates_whole() -> None:
    body = b'{"items": [' + b'{"a": 1},' * 50_000 + b"]}"
    pieces = await _pieces("gzip", _split(gzip.compress(body), 7))
    assert b"".join(pieces) == body


async def test_inflating_past_the_bound_stops_in_bounded_pieces(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(kube_client, "MAX_BODY", 3 * kube_client._INFLATE_STEP)
    bomb = gzip.compress(bytes(64 * kube_client._INFLATE_STEP))  # 64 MiB of zeros: ~64 KB
    assert len(bomb) < kube_client._INFLATE_STEP
    seen: list[int] = []

    async def read() -> None:
        stream = kube_client._Bounded(_Chunks([bomb]), per_line=False, encoding="gzip")
        async for piece in stream:
            seen.append(len(piece))

    with pytest.raises(httpx2.ReadError, match="exceeds"):
        await read()
    assert seen
    assert max(seen) <= kube_client._INFLATE_STEP
    assert sum(seen) <= kube_client.MAX_BODY


async def test_a_corrupt_gzip_answer_is_a_read_error() -> None:
    broken = bytearray(gzip.compress(b"x" * 1000))
    broken[12:20] = b"\xff" * 8
    with pytest.raises(httpx2.ReadError, match="not valid gzip"):
        await _pieces("gzip", [bytes(broken)])


async def test_an_encoding_not_asked_for_is_a_read_error() -> None:
    with pytest.raises(httpx2.ReadError, match="not asked for: br"):
        await _pieces("br", [b"anything"])
