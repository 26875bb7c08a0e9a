"""Reading small files that anyone may have put in our way: policy manifests and
usage records. Only a regular file is read, never more than a set size, and
nothing blocks: a FIFO, a directory or /dev/zero (or a symlink to one) is refused
before a single byte is read."""

from __future__ import annotations

import os
import stat


class FileRejected(ValueError):
    """The file exists but is not one we read: not a regular file, or too big."""


def read_regular_file(path: str | os.PathLike[str], *, limit: int) -> bytes:
    """The content of `path`, at most `limit` bytes. Raises FileRejected when it is
    not a regular file or is larger, OSError (FileNotFoundError, ...) when it cannot
    be opened."""
    # stat first, so that no device is ever opened (opening has side effects for
    # some); then open without blocking (a FIFO would wait for a writer) and check
    # again what was opened, as the path may have been swapped in between.
    _check_kind(os.stat(path).st_mode)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        _check_kind(os.fstat(fd).st_mode)
        chunks = []
        remaining = limit + 1  # one byte more tells "exactly at the limit" from "over"
        while remaining > 0:
            chunk = os.read(fd, min(remaining, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
    finally:
        os.close(fd)
    if remaining <= 0:
        raise FileRejected(f"larger than {_size(limit)}")
    return b"".join(chunks)


_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _check_kind(mode: int) -> None:
    if stat.S_ISREG(mode):
        return
    kind = next((name for test, name in _KINDS if test(mode)), "not a file")
    raise FileRejected(f"not a regular file ({kind})")


def _size(limit: int) -> str:
    mebibytes, remainder = divmod(limit, 1 << 20)
    return f"{mebibytes} MiB" if mebibytes and not remainder else f"{limit} bytes"
