from __future__ import annotations

import logging
from pathlib import Path

import pytest

from imageprune.agent.ledger import Ledger

pytestmark = pytest.mark.unit


def test_completed_runs_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "state" / "agent-runs.json"
    Ledger(path).record("p.node", "r1")
    assert Ledger(path).done("p.node") == "r1"
    assert Ledger(path).done("other.node") is None


def test_deleted_tasks_are_forgotten(tmp_path: Path) -> None:
    path = tmp_path / "runs.json"
    ledger = Ledger(path)
    ledger.record("a", "r1")
    ledger.record("b", "r2")
    ledger.keep_only({"b"})
    assert Ledger(path).done("a") is None
    assert Ledger(path).done("b") == "r2"


@pytest.mark.parametrize("content", ["{not json", '["a list"]'])
def test_a_corrupt_ledger_is_ignored_with_a_warning(
    tmp_path: Path, content: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "runs.json"
    path.write_text(content)
    with caplog.at_level(logging.WARNING):
        ledger = Ledger(path)
    assert ledger.done("a") is None
    assert "ignoring" in caplog.text
    ledger.record("a", "r1")  # and it is replaced by a good one
    assert Ledger(path).done("a") == "r1"


def test_an_unwritable_ledger_warns_and_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    ledger = Ledger(blocker / "runs.json")  # its directory cannot exist
    with caplog.at_level(logging.WARNING):
        ledger.record("a", "r1")
    assert ledger.done("a") == "r1"  # still known to this process
    assert "cannot save the run ledger" in caplog.text
