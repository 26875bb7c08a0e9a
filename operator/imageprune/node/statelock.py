"""One prune at a time per node: an exclusive lock on `<state-dir>/lock`.

Two prunes that overlap plan from the same listing, so both would remove (and
count) the same images. The lock is an flock(2) on a file in the state directory,
which the agent and a person's CLI share; the kernel releases it when its holder
exits, however it exits, so a crashed prune never leaves a stale lock. The holder
writes its pid into the file so that whoever waits can name it.

Only runs that remove take it: a dry run or a listing racing a real prune is
harmless (at worst it reports an image that is gone a moment later).
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import stat
import time
from pathlib import Path
from types import TracebackType

LOCK_FILE = "lock"
DEFAULT_TIMEOUT = 30.0
_POLL_SECONDS = 0.1  # flock has no timeout of its own; asking again this often is cheap


class LockError(Exception):
    """The lock file cannot be created or opened (a bad --state-dir)."""


class LockHeld(LockError):
    """Another prune held the lock for longer than we were willing to wait."""


class StateLock:
    """`async with StateLock(state_dir, timeout=...):` holds the node's prune lock."""

    def __init__(self, state_dir: Path, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.path = state_dir / LOCK_FILE
        self.timeout = timeout
        self._fd: int | None = None

    async def __aenter__(self) -> StateLock:
        fd = self._open()
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = _holder(fd)
                    os.close(fd)
                    raise LockHeld(
                        f"another prune{holder} holds {self.path}; "
                        f"gave up after waiting {self.timeout:g}s (--lock-timeout)"
                    ) from None
            except BaseException:
                os.close(fd)
                raise
            try:
                await asyncio.sleep(_POLL_SECONDS)
            except BaseException:
                os.close(fd)
                raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def _open(self) -> int:
        """The lock file, created if need be. Never through a symlink and only a
        regular file: we run as root and write into it."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
        except OSError as err:
            raise LockError(
                f"cannot create the lock file {self.path}: {err.strerror}; "
                "set --state-dir to a writable directory"
            ) from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise LockError(f"the lock file {self.path} is not a regular file; remove it")
        return fd

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._fd is not None:
            # Closing releases the lock; the pid stays behind and is simply stale.
            os.close(self._fd)
            self._fd = None


def _holder(fd: int) -> str:
    """' (pid N)' from what the holder wrote, or '' when it is unreadable."""
    try:
        text = os.pread(fd, 32, 0).decode("ascii").strip()
    except (OSError, UnicodeDecodeError):
        return ""
    return f" (pid {text})" if text.isdigit() else ""
