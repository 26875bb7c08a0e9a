"""Progress for long removals: a redrawn bar on a terminal, a line every few
seconds otherwise (so logs of a DaemonSet pod stay readable)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from imageprune.node import executor
from imageprune.policy import quantities


class Progress:
    def __init__(self, total: int, *, stream: TextIO = sys.stderr, label: str = "Removing") -> None:
        self.total = total
        self.done = 0
        self.bytes = 0
        self.failed = 0
        self.label = label
        self._stream = stream
        self._tty = stream.isatty()
        self._last = 0.0
        self._silenced = False

    def __call__(self, result: executor.Result) -> None:
        self.done += 1
        if result.outcome.takes_image:
            self.bytes += result.image.size
        elif result.error_kind:  # failed, unknown or not attempted
            self.failed += 1
        if self._silenced:
            return
        now = time.monotonic()
        if self.done == self.total or now - self._last >= (0.1 if self._tty else 5.0):
            self._last = now
            self._draw()

    def _draw(self) -> None:
        width = 30
        filled = width * self.done // max(self.total, 1)
        text = (
            f"{self.label} [{'#' * filled}{'.' * (width - filled)}] "
            f"{self.done}/{self.total} images, {quantities.format_bytes(self.bytes)}"
            + (f", {self.failed} not removed or unknown" if self.failed else "")
        )
        try:
            if self._tty:
                end = "\n" if self.done == self.total else ""
                self._stream.write("\r" + text + end)
            else:
                self._stream.write(text + "\n")
            self._stream.flush()
        except OSError:
            # Progress is a courtesy: a stderr that cannot be written (a closed pipe,
            # a full disk) must not stop the removals it reports on.
            self._silenced = True
