"""Executor logic with an in-memory runtime (the real thing is in tests/cri)."""

from __future__ import annotations

import asyncio
import datetime

import pytest

from imageprune.node import executor, users
from imageprune_cri import CriCallFailed, types

pytestmark = pytest.mark.unit

NOW = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)


def _image(n: int) -> types.Image:
    return types.Image(id=f"sha256:{n:064x}", repo_tags=(f"docker.io/library/i{n}:1",), size=n)


class MemoryRuntime:
    def __init__(self, images: list[types.Image], *, fail: set[str] = frozenset()) -> None:
        self.images = {i.id: i for i in images}
        self.containers: list[types.Container] = []
        self.fail = fail
        self.in_flight = 0
        self.max_in_flight = 0
        self.lists = 0

    async def list_containers(self) -> list[types.Container]:
        self.lists += 1
        return list(self.containers)

    async def remove_image(self, ref: str) -> None:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        await asyncio.sleep(0.001)
        self.in_flight -= 1
        if ref in self.fail:
            raise CriCallFailed(f"RemoveImage {ref} failed", code="INTERNAL")
        self.images.pop(ref, None)

    def use(self, image: types.Image) -> None:
        self.containers.append(
            types.Container(
                id="c1",
                name="late",
                pod_sandbox_id="p",
                image=image.repo_tags[0],
                image_ref="",
                state=types.ContainerState.CREATED,
                created_at=NOW,
            )
        )


async def test_dry_run_touches_nothing() -> None:
    images = [_image(n) for n in range(1, 4)]
    runtime = MemoryRuntime(images)
    report = await executor.execute(runtime, images, dry_run=True)
    assert [r.outcome for r in report.results] == [executor.Outcome.WOULD_REMOVE] * 3
    assert report.removed_bytes == 6
    assert len(runtime.images) == 3
    assert runtime.lists == 0


async def test_rechecks_users_before_each_removal() -> None:
    images = [_image(n) for n in range(1, 4)]
    runtime = MemoryRuntime(images)
    runtime.use(images[1])  # a container appeared after planning
    report = await executor.execute(runtime, images, dry_run=False)
    outcomes = {r.image.id: r.outcome for r in report.results}
    assert outcomes[images[1].id] is executor.Outcome.NOW_IN_USE
    assert set(runtime.images) == {images[1].id}
    assert 1 <= runtime.lists <= 3  # concurrent checks may share a listing
    kept = report.with_outcome(executor.Outcome.NOW_IN_USE)[0]
    assert "late (created)" in kept.detail


async def test_errors_are_collected_and_the_rest_continues() -> None:
    images = [_image(n) for n in range(1, 6)]
    runtime = MemoryRuntime(images, fail={images[0].id})
    report = await executor.execute(runtime, images, dry_run=False, concurrency=2)
    assert [r.image.id for r in report.failed] == [images[0].id]
    assert "RemoveImage" in report.failed[0].detail
    assert set(runtime.images) == {images[0].id}
    assert report.removed_bytes == 2 + 3 + 4 + 5


@pytest.mark.parametrize("limit", [1, 3])
async def test_concurrency_is_bounded(limit: int) -> None:
    images = [_image(n) for n in range(1, 20)]
    runtime = MemoryRuntime(images)
    await executor.execute(runtime, images, dry_run=False, concurrency=limit)
    assert runtime.max_in_flight == limit


async def test_progress_sees_every_result() -> None:
    images = [_image(n) for n in range(1, 5)]
    seen: list[executor.Result] = []
    await executor.execute(MemoryRuntime(images), images, dry_run=False, on_result=seen.append)
    assert sorted(r.image.id for r in seen) == sorted(i.id for i in images)


async def test_concurrency_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        await executor.execute(MemoryRuntime([]), [], dry_run=False, concurrency=0)


LISTED = _image(99)


def _listing(in_use: users.Index) -> list[str]:
    """Which listing an index was built from (its container's name)."""
    return [c.name for c in users.of_image(LISTED, in_use)]


class GatedLister:
    """list_containers blocks until released; each call returns its own number."""

    def __init__(self) -> None:
        self.calls = 0
        self.release = asyncio.Event()

    async def list_containers(self) -> list[types.Container]:
        self.calls += 1
        number = self.calls
        await self.release.wait()
        return [
            types.Container(
                id=str(number),
                name=f"listing-{number}",
                pod_sandbox_id="p",
                image=LISTED.repo_tags[0],
                image_ref="",
                state=types.ContainerState.RUNNING,
                created_at=NOW,
            )
        ]

    async def remove_image(self, ref: str) -> None:
        raise AssertionError("not used here")


async def test_callers_asking_together_share_one_listing() -> None:
    lister = GatedLister()
    listings = executor.FreshListings(lister)
    lister.release.set()
    results = await asyncio.gather(*(listings.fresh() for _ in range(10)))
    assert lister.calls == 1
    assert [_listing(r) for r in results] == [["listing-1"]] * 10


async def test_a_caller_never_gets_a_listing_that_began_before_it_asked() -> None:
    lister = GatedLister()
    listings = executor.FreshListings(lister)
    first = asyncio.create_task(listings.fresh())
    await asyncio.sleep(0)  # let listing 1 start (and block)
    await asyncio.sleep(0)
    assert lister.calls == 1
    second = asyncio.create_task(listings.fresh())  # asks while listing 1 is in flight
    await asyncio.sleep(0)
    lister.release.set()
    assert _listing(await first) == ["listing-1"]
    assert _listing(await second) == ["listing-2"]
    assert lister.calls == 2
