from __future__ import annotations

import io

import pytest

from imageprune.cli import progress
from imageprune.node import executor
from testkit import builders

pytestmark = pytest.mark.unit


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _result(n: int, outcome: executor.Outcome) -> executor.Result:
    kind = "" if outcome.takes_image else "INTERNAL"
    return executor.Result(builders.image(n, size=2**20), outcome, error_kind=kind)


def test_terminal_bar_redraws_in_place_and_ends_with_a_newline() -> None:
    out = Terminal()
    bar = progress.Progress(2, stream=out)
    bar(_result(1, executor.Outcome.REMOVED))
    bar(_result(2, executor.Outcome.FAILED))
    text = out.getvalue()
    assert text.startswith("\rRemoving [")
    assert text.endswith("2/2 images, 1 MiB, 1 not removed or unknown\n")


def test_logs_get_whole_lines_not_a_line_per_image() -> None:
    out = io.StringIO()
    bar = progress.Progress(100, stream=out, label="Would remove")
    for n in range(100):
        bar(_result(n, executor.Outcome.WOULD_REMOVE))
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert 1 <= len(lines) <= 3  # the first, perhaps one on a slow machine, and the last
    assert lines[-1].endswith("100/100 images, 100 MiB")
