"""Ctrl-C (SIGINT), SIGTERM and SIGHUP (the terminal went away): never a
traceback, and never a lie about what a prune already did.

Before removals begin, a signal simply ends the command: nothing was done, so
there is nothing to report. Once they have begun, the first signal stops sending
new removals; those in flight finish (each within --timeout), and the report of
what was removed is printed as usual. A second signal gives up at once. Either
way the exit code is 128 + the signal's number (130, 143, 129), as shells report it.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Iterator
from types import FrameType

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(BaseException):
    """A signal ended the command outside the event loop (start-up, parsing)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.exit_code = 128 + signum


def _raise(signum: int, _frame: FrameType | None) -> None:
    raise Interrupted(signum)


@contextlib.contextmanager
def outside_the_loop() -> Iterator[None]:
    """Turn SIGINT, SIGTERM and SIGHUP into Interrupted (SIGTERM's and SIGHUP's
    defaults would kill the process mid-write; SIGINT's raises KeyboardInterrupt
    wherever it lands)."""
    previous = {sig: signal.signal(sig, _raise) for sig in SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class Interrupts:
    """The signals while the event loop runs a command. `stop` is what the executor
    watches; `arm()` marks that removals have begun."""

    def __init__(self) -> None:
        self.stop = asyncio.Event()
        self.signum: int | None = None
        self._armed = False
        self._task: asyncio.Task[object] | None = None

    def install(self) -> None:
        loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        for sig in SIGNALS:
            loop.add_signal_handler(sig, self._on_signal, sig)

    def uninstall(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in SIGNALS:
            loop.remove_signal_handler(sig)
            signal.signal(sig, _raise)  # remove_signal_handler restores the default

    def arm(self) -> None:
        self._armed = True

    @property
    def exit_code(self) -> int | None:
        return None if self.signum is None else 128 + self.signum

    def _on_signal(self, signum: int) -> None:
        if self.signum is None:
            self.signum = signum
        if self._armed and not self.stop.is_set():
            name = signal.Signals(signum).name
            print(
                f"imageprune: {name}: sending no more removals; waiting for those in "
                "flight (again to abandon them)",
                file=sys.stderr,
            )
            self.stop.set()
        elif self._task is not None:
            self._task.cancel()
