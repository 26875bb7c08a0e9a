"""What the executor reports when the runtime dies, freezes or we are stopped: never
"not removed" for an image that may be gone, and no removal sent once the runtime
stopped answering. (The real kill -9 is in tests/cri/test_runtime_killed.py.)"""

from __future__ import annotations

import asyncio

import pytest

from imageprune.node import executor
from imageprune_cri import CriCallFailed, types
from testkit import builders
from testkit.fakes import FakeRuntime

pytestmark = pytest.mark.unit

Outcome = executor.Outcome


def _images(count: int) -> list[types.Image]:
    return [builders.image(n, f"docker.io/library/i{n}:1", size=n) for n in range(1, count + 1)]


def _by_outcome(report: executor.Report) -> dict[Outcome, set[str]]:
    found: dict[Outcome, set[str]] = {}
    for r in report.results:
        found.setdefault(r.outcome, set()).add(r.image.id)
    return found


async def test_a_removal_without_answer_is_unknown_and_nothing_more_is_sent() -> None:
    images = _images(50)
    runtime = FakeRuntime(images, dies_after=3)
    report = await executor.execute(runtime, images, dry_run=False, concurrency=1)
    outcomes = _by_outcome(report)
    assert outcomes[Outcome.REMOVED] == {i.id for i in images[:3]}
    assert outcomes[Outcome.UNKNOWN] == {images[3].id}
    assert outcomes[Outcome.NOT_ATTEMPTED] == {i.id for i in images[4:]}
    assert len(runtime.removal_calls) == 4  # not one call per image against a dead runtime
    assert {
        (r.detail, r.error_kind) for r in report.results if r.outcome is Outcome.NOT_ATTEMPTED
    } == {("not sent: the runtime had stopped answering", "RuntimeGone")}
    assert len(report.failed) == 47
    [unknown] = report.with_outcome(Outcome.UNKNOWN)
    assert (unknown.detail, unknown.error_kind) == ("no CRI runtime answers", "RuntimeUnavailable")
    # It was sent: when, and when its check began, bound what a container could slip by.
    assert unknown.checked_at is not None
    assert unknown.removed_at is not None
    assert unknown.checked_at <= unknown.removed_at


async def test_in_flight_removals_all_become_unknown_never_failed() -> None:
    images = _images(40)
    runtime = FakeRuntime(images, dies_after=0)
    report = await executor.execute(runtime, images, dry_run=False, concurrency=8)
    outcomes = _by_outcome(report)
    assert Outcome.FAILED not in outcomes
    assert Outcome.REMOVED not in outcomes
    # every call sent got an unknown outcome; nothing else was sent
    assert outcomes[Outcome.UNKNOWN] == set(runtime.removal_calls)
    assert outcomes[Outcome.NOT_ATTEMPTED] == {i.id for i in images} - set(runtime.removal_calls)


async def test_confirmation_turns_unknown_into_the_truth_when_the_runtime_answers() -> None:
    images = _images(6)
    gone = FakeRuntime(images, dies_after=0, removed_before_dying=True)
    kept = FakeRuntime(images, dies_after=0, removed_before_dying=False)
    for runtime, expected in ((gone, Outcome.REMOVED), (kept, Outcome.FAILED)):
        report = await executor.execute(runtime, images, dry_run=False, concurrency=2)
        runtime.revive()
        confirmed = await executor.confirm_unknown(runtime, report)
        outcomes = _by_outcome(confirmed)
        assert outcomes[expected] == set(runtime.removal_calls)
        assert Outcome.UNKNOWN not in outcomes
        assert [r.image for r in confirmed.results] == images
    assert gone.images.keys().isdisjoint(gone.removal_calls)
    assert set(kept.removal_calls) <= kept.images.keys()


async def test_confirmation_says_what_it_found_and_keeps_asking_past_known_outcomes() -> None:
    images = _images(4)
    runtime = FakeRuntime(images, dies_after=1)  # image 1 removed, 2 unanswered, 3-4 not sent
    report = await executor.execute(runtime, images, dry_run=False, concurrency=1)
    runtime.revive()
    confirmed = await executor.confirm_unknown(runtime, report)
    gone = "removed (confirmed after the runtime stopped answering)"
    assert [(r.outcome, r.detail, r.error_kind) for r in confirmed.results] == [
        (Outcome.REMOVED, "", ""),
        (Outcome.REMOVED, gone, ""),
        *[(Outcome.NOT_ATTEMPTED, "not sent: the runtime had stopped answering", "RuntimeGone")]
        * 2,
    ]
    # Still there: failed, with what the lost call said, and still counted as failed.
    kept = FakeRuntime(images[1:2], dies_after=0, removed_before_dying=False)
    report = await executor.execute(kept, images[1:2], dry_run=False)
    kept.revive()
    [result] = (await executor.confirm_unknown(kept, report)).results
    assert (result.outcome, result.detail, result.error_kind) == (
        Outcome.FAILED,
        "not removed (confirmed after the runtime stopped answering): no CRI runtime answers",
        "RuntimeUnavailable",
    )


async def test_unknown_stays_unknown_while_the_runtime_is_silent() -> None:
    images = _images(3)
    runtime = FakeRuntime(images, dies_after=0)
    report = await executor.execute(runtime, images, dry_run=False, concurrency=3)
    confirmed = await executor.confirm_unknown(runtime, report)
    assert confirmed == report
    assert {r.outcome for r in confirmed.results} == {Outcome.UNKNOWN}


async def test_a_lost_re_check_sends_nothing_and_stops_the_run() -> None:
    images = _images(5)
    runtime = FakeRuntime(images, dies_after=-1)  # dead from the start
    report = await executor.execute(runtime, images, dry_run=False, concurrency=2)
    assert runtime.removal_calls == []
    assert [r.image for r in report.results] == images
    assert {r.outcome for r in report.results} == {Outcome.NOT_ATTEMPTED}
    # Those that asked for the lost listing say so; the rest were never checked.
    lost = [r for r in report.results if r.error_kind == "RecheckLost"]
    assert lost
    for result in lost:
        assert result.detail == "not sent: could not re-check users: no CRI runtime answers"
        assert result.checked_at is not None
        assert result.removed_at is None
    assert {(r.detail, r.error_kind, r.checked_at) for r in report.results if r not in lost} == {
        ("not sent: the runtime had stopped answering", "RuntimeGone", None)
    }


async def test_an_answered_error_is_failed_and_the_run_goes_on() -> None:
    images = _images(4)

    runtime = FakeRuntime(images)
    runtime.fail_removal(
        images[0], CriCallFailed("RemoveImage failed: in use", code="FAILED_PRECONDITION")
    )
    report = await executor.execute(runtime, images, dry_run=False, concurrency=1)
    outcomes = _by_outcome(report)
    assert outcomes[Outcome.FAILED] == {images[0].id}
    assert outcomes[Outcome.REMOVED] == {i.id for i in images[1:]}
    [failed] = report.failed
    assert (failed.detail, failed.error_kind) == (
        "RemoveImage failed: in use",
        "FAILED_PRECONDITION",
    )


async def test_stop_sends_no_more_removals_and_lets_those_in_flight_finish() -> None:
    images = _images(30)
    runtime = FakeRuntime(images)
    stop = asyncio.Event()

    def on_result(result: executor.Result) -> None:
        if len(runtime.removal_calls) >= 5:
            stop.set()

    report = await executor.execute(
        runtime, images, dry_run=False, concurrency=2, on_result=on_result, stop=stop
    )
    outcomes = _by_outcome(report)
    assert outcomes[Outcome.REMOVED] == set(runtime.removal_calls)
    assert runtime.images.keys().isdisjoint(runtime.removal_calls)
    assert outcomes[Outcome.NOT_ATTEMPTED] == {i.id for i in images} - set(runtime.removal_calls)
    assert 5 <= len(runtime.removal_calls) < 30
    assert {(r.detail, r.error_kind) for r in report.failed} == {
        ("not sent: the run was stopped", "Stopped")
    }
