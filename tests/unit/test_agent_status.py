"""The task status the agent writes, rule by rule (docs/protocol.md)."""

from __future__ import annotations

import datetime
from collections.abc import Mapping

import pytest

from imageprune.agent import status
from imageprune.agent.status import Reason
from imageprune.api import conditions
from imageprune.api.conditions import Type

pytestmark = pytest.mark.unit

T0 = datetime.datetime(2026, 11, 29, 18, 0, tzinfo=datetime.UTC)
T1 = T0 + datetime.timedelta(minutes=1)


def _state(body: Mapping[str, object], kind: Type) -> tuple[object, object]:
    found = conditions.find(body["conditions"], kind)  # type: ignore[arg-type]
    assert found is not None, f"no {kind} condition in {body}"
    return found["status"], found["reason"]


def _start(current: Mapping[str, object] | None = None) -> dict[str, object]:
    return status.started(current or {}, run_id="r1", trigger="Create", generation=3, now=T0)


def _finish(current: Mapping[str, object], reason: Reason) -> dict[str, object]:
    return status.finished(
        current,
        run_id="r1",
        trigger="Create",
        reason=reason,
        message="m",
        report={"removedImages": 1} if reason is Reason.SUCCEEDED else None,
        generation=3,
        started_at=T0,
        now=T1,
    )


def test_a_start_marks_the_run_and_clears_the_last_one() -> None:
    body = _start({"runId": "r0", "completionTime": "2026-01-01T00:00:00Z", "report": {"x": 1}})
    assert body["runId"] == "r1"
    assert body["startTime"] == "2026-11-29T18:00:00Z"
    # None deletes the field in a merge patch: the operator must not read r0's end as r1's.
    assert body["completionTime"] is None
    assert body["report"] is None
    assert _state(body, Type.PROGRESSING) == ("True", "Running")
    assert _state(body, Type.READY) == ("Unknown", "Running")
    assert body["observedGeneration"] == 3


def test_success_is_ready_not_progressing_not_degraded() -> None:
    body = _finish(_start(), Reason.SUCCEEDED)
    assert body["completionTime"] == "2026-11-29T18:01:00Z"
    assert body["startTime"] == "2026-11-29T18:00:00Z"
    assert body["report"] == {"removedImages": 1}
    assert _state(body, Type.READY) == ("True", "Succeeded")
    assert _state(body, Type.PROGRESSING) == ("False", "Succeeded")
    assert _state(body, Type.DEGRADED) == ("False", "Succeeded")


@pytest.mark.parametrize(
    "reason",
    [
        Reason.RUNTIME_UNAVAILABLE,
        Reason.REMOVALS_FAILED,
        Reason.INVALID_SELECTION,
        Reason.INTERRUPTED,
    ],
)
def test_a_failure_is_not_ready_and_degraded_with_its_reason(reason: Reason) -> None:
    body = _finish(_start(), reason)
    assert body["completionTime"] is not None
    assert _state(body, Type.READY) == ("False", reason.value)
    assert _state(body, Type.DEGRADED) == ("True", reason.value)
    assert _state(body, Type.PROGRESSING) == ("False", reason.value)


def test_a_run_cut_short_by_shutdown_is_left_for_the_next_agent() -> None:
    started = {**_start(), "startTime": "2026-11-29T18:00:00Z"}
    body = status.left_unfinished(started, run_id="r1", message="x" * 10_000, generation=3, now=T1)
    assert body["runId"] == "r1"
    assert body["completionTime"] is None
    assert body["report"] is None
    assert "startTime" not in body  # the merge patch keeps the run's own start
    assert _state(body, Type.PROGRESSING) == ("True", "Interrupted")
    assert _state(body, Type.READY) == ("Unknown", "Interrupted")
    assert len(str(body["message"])) == 4096
    # What the next agent reads: the run is not done, so it runs it again.
    assert status.wanted_run({"spec": {"runId": "r1"}, "status": body}, done=None) == "r1"


def test_long_messages_are_cut_to_the_crd_bound() -> None:
    body = status.finished(
        {},
        run_id="r",
        trigger="Create",
        reason=Reason.REMOVALS_FAILED,
        message="x" * 10_000,
        report=None,
        generation=1,
        started_at=T0,
        now=T1,
    )
    assert len(str(body["message"])) == 4096


def _runtime(current: Mapping[str, object], *, available: bool) -> dict[str, object] | None:
    return status.runtime_condition(
        current, available=available, message="msg", generation=3, now=T1
    )


def test_runtime_down_marks_degraded_and_leaves_ready_alone() -> None:
    done = _finish(_start(), Reason.SUCCEEDED)
    body = _runtime(done, available=False)
    assert body is not None
    assert set(body) == {"conditions"}
    assert _state(body, Type.DEGRADED) == ("True", "RuntimeUnavailable")
    assert _state(body, Type.READY) == ("True", "Succeeded")  # the last run's result stays


def test_runtime_condition_is_written_once_per_change() -> None:
    down = _runtime({}, available=False)
    assert down is not None
    assert _runtime(down, available=False) is None  # already marked
    up = _runtime(down, available=True)
    assert up is not None
    assert _state(up, Type.DEGRADED) == ("False", "RuntimeAvailable")
    assert _runtime(up, available=True) is None


def test_runtime_back_does_not_clear_a_run_failure() -> None:
    failed = _finish(_start(), Reason.REMOVALS_FAILED)
    assert _runtime(failed, available=True) is None


def _task(
    spec_run: object, status_run: str | None = None, completed: bool = False
) -> dict[str, object]:
    current: dict[str, object] = {}
    if status_run:
        current["runId"] = status_run
    if completed:
        current["completionTime"] = "2026-11-29T18:01:00Z"
    return {"spec": {"runId": spec_run}, "status": current}


@pytest.mark.parametrize(
    ("task", "done", "wanted"),
    [
        (_task("r1"), None, "r1"),  # a new task
        (_task("r2", "r1", completed=True), "r1", "r2"),  # a new run id
        (_task("r1", "r1", completed=True), None, None),  # completed per the status
        (_task("r1", "r1"), None, "r1"),  # started, never completed: a crash; again
        (_task("r1", "r1"), "r1", None),  # ... unless this process completed it
        (_task("r1", "disk-20261129T180000Z", completed=True), "r1", None),  # after a disk run
        (_task("r2", "disk-20261129T180000Z", completed=True), "r1", "r2"),
        (_task(""), None, None),
        (_task(None), None, None),
        ({"spec": None, "status": None}, None, None),
    ],
)
def test_which_run_a_task_wants(
    task: dict[str, object], done: str | None, wanted: str | None
) -> None:
    assert status.wanted_run(task, done=done) == wanted
