"""Standard output as Unix tools treat it, for the node CLI and the kubectl plugin. A
reader that leaves early (`| head`) ends the output quietly; any other failure to write
it (a full disk, a closed stdout) is one line on stderr. Neither changes the exit code,
which says what the command did: by the time a prune's report is written, its removals
are done and its usage records saved; a run the plugin asked for goes on."""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Callable
from typing import TextIO


def guard_closed_descriptors() -> None:
    """Started with a standard descriptor closed (`>&-`), the process would hand its
    number to the next file it opens (the lock file, the CRI socket), and output would
    land there. Each closed one gets /dev/null instead: stdout read-only, so that
    writing the output still fails (EBADF) and deliver() says so."""
    for fd, flags in ((0, os.O_RDONLY), (1, os.O_RDONLY), (2, os.O_WRONLY)):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, flags)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
    # Python found these closed at start-up and left them None.
    if sys.stdout is None:
        sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115 - lives as long as the process
    if sys.stderr is None:
        sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115


def deliver(write: Callable[[TextIO], object], *, program: str = "imageprune: ") -> None:
    """Run `write` on stdout and flush it (a full disk shows only on the flush). Once
    it failed, what follows is written into nothing, without a second message."""
    try:
        write(sys.stdout)
        sys.stdout.flush()
    except BrokenPipeError:
        _discard_stdout()
    except OSError as err:
        _discard_stdout()
        reason = "stdout is closed" if err.errno == errno.EBADF else err.strerror
        print(f"{program}error: cannot write the output: {reason}", file=sys.stderr)


def flush(*, program: str = "imageprune: ") -> None:
    """What is still buffered (argparse's --help, say), written before Python's own
    flush at exit would fail with "Exception ignored" and exit code 120."""
    deliver(lambda _stream: None, program=program)


class Stdout:
    """stdout for a command that writes as it goes, each piece delivered at once."""

    def __init__(self, *, program: str) -> None:
        self._program = program

    def write(self, text: str) -> int:
        deliver(lambda stream: stream.write(text), program=self._program)
        return len(text)

    def flush(self) -> None:
        flush(program=self._program)


def _discard_stdout() -> None:
    # What is still buffered would fail again when Python flushes at exit, which
    # prints a traceback and exits 120.
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.close(null)
