from __future__ import annotations

import pytest

from imageprune.agent import outcome
from imageprune.agent.status import Reason
from imageprune.node.executor import Outcome, Report, Result
from imageprune_cri.types import Image

pytestmark = pytest.mark.unit

MIB = 1024 * 1024


def _result(n: int, result: Outcome, kind: str = "", detail: str = "") -> Result:
    return Result(Image(f"sha256:{n:064x}", size=MIB), result, detail, error_kind=kind)


def test_all_removed_succeeds() -> None:
    report = Report(False, (_result(1, Outcome.REMOVED), _result(2, Outcome.NOW_IN_USE)))
    assert outcome.judge(report, images_seen=5) == (
        Reason.SUCCEEDED,
        "removed 1 of 5 images (1 MiB)",
    )
    assert [r.image.size for r in outcome.removed(report)] == [MIB]


def test_a_dry_run_would_remove_and_removes_nothing() -> None:
    report = Report(True, (_result(1, Outcome.WOULD_REMOVE),))
    reason, message = outcome.judge(report, images_seen=1)
    assert reason is Reason.SUCCEEDED
    assert message.startswith("would remove 1 of 1")
    assert outcome.removed(report) == []


def test_a_failed_removal_fails_the_run_with_an_example() -> None:
    report = Report(
        False,
        (_result(1, Outcome.REMOVED), _result(2, Outcome.FAILED, "FAILED_PRECONDITION", "busy")),
    )
    reason, message = outcome.judge(report, images_seen=2)
    assert reason is Reason.REMOVALS_FAILED
    assert "1 removals failed" in message
    assert f"sha256:{2:064x}: busy" in message


def test_removals_not_sent_at_shutdown_read_as_interrupted() -> None:
    report = Report(
        False,
        (
            _result(1, Outcome.REMOVED),
            _result(2, Outcome.NOT_ATTEMPTED, "Stopped", "not sent: the run was stopped"),
            _result(3, Outcome.NOT_ATTEMPTED, "Stopped", "not sent: the run was stopped"),
        ),
    )
    reason, message = outcome.judge(report, images_seen=3)
    assert reason is Reason.INTERRUPTED
    assert message == "stopped at shutdown: removed 1 of 3 images (1 MiB); 2 removals not attempted"
