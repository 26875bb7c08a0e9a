"""`imageprune prune --policy FILE`: the selection of an ImagePrunePolicy manifest
on disk. The file is read as the API server would take it: one regular file of
UTF-8 text, at most 1 MiB (Kubernetes caps an object at about 1.5 MiB)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import TypeVar

from imageprune import files
from imageprune.policy import selection

MAX_BYTES = 1 << 20
T = TypeVar("T")

# Byte order marks of encodings other than UTF-8; UTF-32 LE starts like UTF-16 LE.
_BYTE_ORDER_MARKS = (
    (b"\x00\x00\xfe\xff", "UTF-32"),
    (b"\xff\xfe\x00\x00", "UTF-32"),
    (b"\xff\xfe", "UTF-16"),
    (b"\xfe\xff", "UTF-16"),
)


def load_policy_file(path: str | os.PathLike[str], parse: Callable[[Mapping[str, object]], T]) -> T:
    """`parse` applied to the spec of the policy in the file. Raises PolicyError whose
    `where` starts with the path: "p.yaml: not a regular file (a FIFO)",
    "p.yaml: spec.unusedFor: invalid duration ..."."""
    name = os.fspath(path)
    try:
        content = files.read_regular_file(path, limit=MAX_BYTES)
    except files.FileRejected as rejected:
        raise selection.PolicyError(name, str(rejected)) from None
    except OSError as error:
        raise selection.PolicyError(name, error.strerror or str(error)) from None
    text = _decode(content, name)
    try:
        return parse(selection.manifest_spec(text))
    except selection.PolicyError as error:
        raise selection.PolicyError(f"{name}: {error.where}", error.problem) from None


def _decode(content: bytes, name: str) -> str:
    # UTF-16 files (some Windows editors' "Unicode") are refused, BOM or not, rather
    # than guessed at: kubectl takes UTF-8, and so do we.
    for mark, encoding in _BYTE_ORDER_MARKS:
        if content.startswith(mark):
            raise selection.PolicyError(name, f"{encoding} text; save the file as UTF-8")
    if b"\x00" in content:
        raise selection.PolicyError(
            name, "holds NUL bytes (UTF-16 text, or not text at all); save the file as UTF-8"
        )
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError as error:
        byte = content[error.start]
        raise selection.PolicyError(
            name, f"not UTF-8 text (byte 0x{byte:02x} at offset {error.start})"
        ) from None
