"""One prune at a time per node: an exclusive lock on `<state-dir>/lock` and, for
the CLI, one on the runtime's own lock file under /run/imageprune.

Two prunes that overlap plan from the same listing, so both would remove (and
count) the same images. The locks are flock(2)s: the one in the state directory is
shared by the agent and a person's CLI; the runtime's keeps apart two CLI prunes of
one runtime whatever their --state-dir. (The agent, in its container, has its own
/run, so it takes only the first.) The kernel releases a lock when its holder exits,
however it exits, so a crashed prune never leaves a stale lock. The holder writes its
pid into the file so that whoever waits can name it.

Only runs that remove take it: a dry run or a listing racing a real prune is
harmless (at worst it reports an image that is gone a moment later).
"""

from __future__ import annotations

import asyncio
import dataclasses
import fcntl
import hashlib
import os
import stat
import time
from pathlib import Path
from types import TracebackType

from imageprune import files

LOCK_FILE = "lock"
# Prunes of one runtime with different --state-dir values share no state directory,
# so a second lock, named after the runtime's socket, lives here (a tmpfs: nothing
# outlives a reboot, and neither does a runtime's lock holder).
RUNTIME_LOCK_DIR = Path("/run/imageprune")
DEFAULT_TIMEOUT = 30.0
_POLL_SECONDS = 0.1  # flock has no timeout of its own; asking again this often is cheap


class LockError(Exception):
    """A lock file cannot be created, opened or written (a bad --state-dir)."""


class LockHeld(LockError):
    """Another prune held the lock for longer than we were willing to wait."""


@dataclasses.dataclass(frozen=True)
class _LockFile:
    path: Path
    holder: str  # who would be holding it, for messages: "another prune"
    fix: str  # what the user can do when it cannot be made


def runtime_lock_path(socket_path: str, directory: Path = RUNTIME_LOCK_DIR) -> Path:
    """The lock of the runtime at `socket_path`, however its path is spelt."""
    digest = hashlib.sha256(os.path.realpath(socket_path).encode(errors="surrogateescape"))
    return directory / f"runtime-{digest.hexdigest()[:16]}.lock"


class StateLock:
    """`async with StateLock(state_dir, timeout=..., runtime_socket=...):` holds the
    node's prune lock: the runtime's lock first (when its socket is given), then the
    state directory's, always in that order so that two takers never deadlock."""

    def __init__(
        self,
        state_dir: Path,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        runtime_socket: str | None = None,
        runtime_lock_dir: Path = RUNTIME_LOCK_DIR,
    ) -> None:
        self.path = state_dir / LOCK_FILE
        self.timeout = timeout
        self._files = [
            _LockFile(self.path, "another prune", "set --state-dir to a writable directory")
        ]
        if runtime_socket is not None:
            runtime = _LockFile(
                runtime_lock_path(runtime_socket, runtime_lock_dir),
                f"another prune of the runtime at {runtime_socket}",
                f"run as root, or make {runtime_lock_dir} writable",
            )
            self._files.insert(0, runtime)
        self._fds: list[int] = []

    async def __aenter__(self) -> StateLock:
        deadline = time.monotonic() + self.timeout
        try:
            for lock in self._files:
                self._fds.append(await self._take(lock, deadline))
        except BaseException:
            self._release()
            raise
        return self

    async def _take(self, lock: _LockFile, deadline: float) -> int:
        fd = _open(lock)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise LockHeld(
                            f"{lock.holder}{_holder(fd)} holds {lock.path}; "
                            f"gave up after waiting {self.timeout:g}s (--lock-timeout)"
                        ) from None
                await asyncio.sleep(_POLL_SECONDS)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError as err:  # a full filesystem
            os.close(fd)
            raise LockError(f"cannot write the lock file {lock.path}: {err.strerror}") from None
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _release(self) -> None:
        # Closing releases a lock; the pid stays behind and is simply stale.
        while self._fds:
            os.close(self._fds.pop())

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._release()


def _open(lock: _LockFile) -> int:
    """The lock file, created if need be. Never through a symlink and only a regular
    file: we run as root and write into it."""
    try:
        files.make_directory(lock.path.parent, mode=0o755)
        fd = os.open(lock.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
    except OSError as err:
        # make_directory names the directory in the way, which may be a parent.
        where = "" if err.filename in (None, str(lock.path)) else f"{err.filename}: "
        raise LockError(
            f"cannot create the lock file {lock.path}: {where}{err.strerror}; {lock.fix}"
        ) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise LockError(f"the lock file {lock.path} is not a regular file; remove it")
    return fd


def _holder(fd: int) -> str:
    """' (pid N)' from what the holder wrote, or '' when it is unreadable."""
    try:
        text = os.pread(fd, 32, 0).decode("ascii").strip()
    except (OSError, UnicodeDecodeError):
        return ""
    return f" (pid {text})" if text.isdigit() else ""
