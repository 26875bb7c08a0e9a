"""Executor logic with an in-memory runtime (the real thing is in tests/cri)."""

from __future__ import annotations

import asyncio

import pytest

from imageprune.node import executor, users
from imageprune_cri import CriCallFailed, types
from testkit import builders
from testkit.fakes import FakeRuntime

pytestmark = pytest.mark.unit


def _images(*numbers: int) -> list[types.Image]:
    """Image n is n bytes, so sums of removed bytes name the images."""
    return [builders.image(n, f"i{n}:1", size=n) for n in numbers]


async def test_dry_run_touches_nothing() -> None:
    images = _images(1, 2, 3)
    runtime = FakeRuntime(images)
    seen: list[executor.Result] = []
    report = await executor.execute(runtime, images, dry_run=True, on_result=seen.append)
    assert report.dry_run is True
    assert [r.outcome for r in report.results] == [executor.Outcome.WOULD_REMOVE] * 3
    assert seen == list(report.results)
    assert report.removed_bytes == 6
    assert runtime.calls == []


async def test_rechecks_users_before_each_removal() -> None:
    images = _images(1, 2, 3)
    runtime = FakeRuntime(images)
    runtime.use(images[1])  # a container appeared after planning
    report = await executor.execute(runtime, images, dry_run=False)
    assert report.dry_run is False
    outcomes = {r.image.id: r.outcome for r in report.results}
    assert outcomes[images[1].id] is executor.Outcome.NOW_IN_USE
    assert set(runtime.images) == {images[1].id}
    assert images[1].id not in runtime.removal_calls
    assert 1 <= runtime.listing_calls <= 3  # concurrent checks may share a listing
    [kept] = report.with_outcome(executor.Outcome.NOW_IN_USE)
    assert kept.detail == "kept: " + users.describe(runtime.containers)
    assert "late (created)" in kept.detail
    # Checked, never sent: no removal time, and nothing went wrong.
    assert (kept.error_kind, kept.removed_at) == ("", None)
    assert kept.checked_at is not None


async def test_a_container_created_between_listings_is_seen() -> None:
    images = _images(1, 2)
    runtime = FakeRuntime(images)
    # The first listing is empty; by the second, a container uses image 2.
    runtime.listings.extend([[], [builders.container("late", image_ref=images[1].id)]])
    report = await executor.execute(runtime, images, dry_run=False, concurrency=1)
    assert [r.outcome for r in report.results] == [
        executor.Outcome.REMOVED,
        executor.Outcome.NOW_IN_USE,
    ]
    assert runtime.removal_calls == [images[0].id]


async def test_errors_are_collected_and_the_rest_continues() -> None:
    images = _images(1, 2, 3, 4, 5)
    runtime = FakeRuntime(images)
    runtime.fail_removal(images[0])
    report = await executor.execute(runtime, images, dry_run=False, concurrency=2)
    [failed] = report.failed
    assert failed.image == images[0]
    assert (failed.outcome, failed.detail, failed.error_kind) == (
        executor.Outcome.FAILED,
        f"RemoveImage {images[0].id} failed",
        "INTERNAL",
    )
    assert set(runtime.images) == {images[0].id}
    assert report.removed_bytes == 2 + 3 + 4 + 5
    removed = report.with_outcome(executor.Outcome.REMOVED)
    assert [r.image for r in removed] == images[1:]
    assert {(r.detail, r.error_kind) for r in removed} == {("", "")}
    # The check comes before the removal it guards, for failures as for removals.
    for result in report.results:
        assert result.checked_at is not None
        assert result.removed_at is not None
        assert result.checked_at <= result.removed_at


async def test_a_failed_listing_fails_the_removal_and_removes_nothing() -> None:
    images = _images(1)
    runtime = FakeRuntime(images)
    runtime.listings.append(CriCallFailed("ListContainers: unavailable", code="UNAVAILABLE"))
    report = await executor.execute(runtime, images, dry_run=False)
    [result] = report.results
    assert result.image == images[0]
    assert result.outcome is executor.Outcome.FAILED
    assert result.detail == "could not re-check users: ListContainers: unavailable"
    assert result.error_kind == "UNAVAILABLE"
    assert result.checked_at is not None
    assert result.removed_at is None
    assert runtime.removal_calls == []
    assert report.removed_bytes == 0


@pytest.mark.parametrize("limit", [1, 3])
async def test_concurrency_is_bounded(limit: int) -> None:
    images = _images(*range(1, 20))
    runtime = FakeRuntime(images)
    await executor.execute(runtime, images, dry_run=False, concurrency=limit)
    assert runtime.max_in_flight == limit
    assert sorted(runtime.removal_calls) == sorted(i.id for i in images)


async def test_progress_sees_every_result() -> None:
    images = _images(1, 2, 3, 4)
    seen: list[executor.Result] = []
    await executor.execute(FakeRuntime(images), images, dry_run=False, on_result=seen.append)
    assert sorted(r.image.id for r in seen) == sorted(i.id for i in images)


@pytest.mark.parametrize(
    ("candidates", "width"),
    [(0, 64), (1, 64), (500, 64), (1_999, 64), (2_000, 2_000), (5_000, 5_000)],
)
def test_default_width_is_64_and_all_at_once_on_a_large_node(candidates: int, width: int) -> None:
    assert executor.default_width(candidates) == width


@pytest.mark.parametrize(("count", "width"), [(100, 64), (2_000, 2_000)])
async def test_concurrency_is_the_default_width_unless_given(count: int, width: int) -> None:
    images = _images(*range(1, count + 1))
    runtime = FakeRuntime(images)
    await executor.execute(runtime, images, dry_run=False)
    assert runtime.max_in_flight == width


async def test_concurrency_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match=r"^concurrency must be at least 1$"):
        await executor.execute(FakeRuntime(), [], dry_run=False, concurrency=0)


LISTED = builders.image(99, "i99:1")


def _numbered_listings(runtime: FakeRuntime, count: int) -> None:
    """Script `count` listings, each naming LISTED with its own container."""
    for n in range(1, count + 1):
        runtime.listings.append([builders.container(f"listing-{n}", image=LISTED.repo_tags[0])])


def _listing(in_use: users.Index) -> list[str]:
    """Which listing an index was built from (its container's name)."""
    return [c.name for c in users.of_image(LISTED, in_use)]


async def test_callers_asking_together_share_one_listing() -> None:
    runtime = FakeRuntime()
    _numbered_listings(runtime, 2)
    listings = executor.FreshListings(runtime)
    results = await asyncio.gather(*(listings.fresh() for _ in range(10)))
    assert runtime.listing_calls == 1
    assert [_listing(r) for r in results] == [["listing-1"]] * 10


async def test_a_caller_never_gets_a_listing_that_began_before_it_asked() -> None:
    runtime = FakeRuntime()
    _numbered_listings(runtime, 2)
    runtime.listing_gate = asyncio.Event()
    listings = executor.FreshListings(runtime)
    first = asyncio.create_task(listings.fresh())
    await asyncio.sleep(0)  # let listing 1 start (and block)
    await asyncio.sleep(0)
    assert runtime.listing_calls == 1
    second = asyncio.create_task(listings.fresh())  # asks while listing 1 is in flight
    await asyncio.sleep(0)
    runtime.listing_gate.set()
    assert _listing(await first) == ["listing-1"]
    assert _listing(await second) == ["listing-2"]
    assert runtime.listing_calls == 2
