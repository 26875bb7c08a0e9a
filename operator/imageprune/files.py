"""Files and directories that anyone may have put in our way: policy manifests,
usage records and the state directory. Only a regular file is read, never more than
a set size, and nothing blocks: a FIFO, a directory or /dev/zero (or a symlink to
one) is refused before a single byte is read. A directory we need is made, or found
to be a directory, and whatever is in its place instead is named."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path


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


def make_directory(directory: Path, *, mode: int) -> None:
    """`directory`, and its missing parents, made with `mode` (pathlib would give the
    parents default permissions). Raises OSError; when something else stands in the
    way, its strerror says what: "not a directory (a regular file)", "a symlink loop",
    "a symlink to nothing"."""
    for each in reversed((directory, *directory.parents)):
        try:
            found = os.stat(each).st_mode
        except FileNotFoundError:
            try:
                os.mkdir(each, mode)
                continue
            except FileExistsError:
                found = _stat_in_the_way(each)  # a dangling symlink, or made meanwhile
        except OSError as err:
            raise _in_the_way(err, each) from None
        if not stat.S_ISDIR(found):
            raise NotADirectoryError(errno.ENOTDIR, f"not a directory ({_kind(found)})", str(each))


def _stat_in_the_way(path: Path) -> int:
    try:
        return os.stat(path).st_mode
    except OSError as err:
        raise _in_the_way(err, path) from None


def _in_the_way(err: OSError, path: Path) -> OSError:
    causes = {errno.ELOOP: "a symlink loop", errno.ENOENT: "a symlink to nothing"}
    return OSError(err.errno, causes.get(err.errno or 0, err.strerror), str(path))


_KINDS = (
    (stat.S_ISREG, "a regular file"),
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _check_kind(mode: int) -> None:
    if stat.S_ISREG(mode):
        return
    raise FileRejected(f"not a regular file ({_kind(mode)})")


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a file")


def _size(limit: int) -> str:
    mebibytes, remainder = divmod(limit, 1 << 20)
    return f"{mebibytes} MiB" if mebibytes and not remainder else f"{limit} bytes"
