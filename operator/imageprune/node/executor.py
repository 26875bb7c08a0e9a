"""Carrying out a plan: remove images with bounded parallelism, re-checking right
before each removal that no container has started to use the image.

The runtime's RemoveImage does not check for users (containerd untags an image a
running container uses without complaint), so this re-check is the last line of
defence against a container created after the plan was made.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from imageprune.node import users
from imageprune_cri import CriError, types


class Runtime(Protocol):
    """What the executor needs of a CRI client."""

    async def list_containers(self) -> list[types.Container]: ...

    async def remove_image(self, ref: str) -> None: ...


class Outcome(enum.StrEnum):
    REMOVED = "Removed"
    WOULD_REMOVE = "WouldRemove"  # dry run
    NOW_IN_USE = "NowInUse"  # a container started using it after planning
    FAILED = "Failed"

    @property
    def takes_image(self) -> bool:
        """The image is (or, in a dry run, would be) gone."""
        return self in (Outcome.REMOVED, Outcome.WOULD_REMOVE)


@dataclasses.dataclass(frozen=True)
class Result:
    image: types.Image
    outcome: Outcome
    detail: str = ""
    # time.monotonic() when the last in-use check began and when removal was sent;
    # they bound the window in which a new container could still slip through.
    checked_at: float | None = None
    removed_at: float | None = None


@dataclasses.dataclass(frozen=True)
class Report:
    dry_run: bool
    results: tuple[Result, ...]

    def with_outcome(self, outcome: Outcome) -> list[Result]:
        return [r for r in self.results if r.outcome is outcome]

    @property
    def removed_bytes(self) -> int:
        return sum(r.image.size for r in self.results if r.outcome.takes_image)

    @property
    def failed(self) -> list[Result]:
        return self.with_outcome(Outcome.FAILED)


Progress = Callable[[Result], None]


async def execute(
    runtime: Runtime,
    images: Sequence[types.Image],
    *,
    dry_run: bool,
    concurrency: int = 64,
    on_result: Progress | None = None,
) -> Report:
    """Remove `images` (already judged removable), in order, at most `concurrency`
    at a time. Errors are collected, never raised: one bad image must not stop the
    rest. A dry run removes nothing and lists nothing."""
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    if dry_run:
        results = [Result(image, Outcome.WOULD_REMOVE) for image in images]
        for result in results:
            if on_result:
                on_result(result)
        return Report(dry_run=True, results=tuple(results))

    gate = asyncio.Semaphore(concurrency)
    listings = FreshListings(runtime)

    async def one(image: types.Image) -> Result:
        async with gate:
            result = await _remove_if_unused(runtime, listings, image)
        if on_result:
            on_result(result)
        return result

    results = await asyncio.gather(*(one(image) for image in images))
    return Report(dry_run=False, results=tuple(results))


class FreshListings:
    """Container listings that begin after the caller asks for one, each indexed
    once by image reference for all the checks that share it.

    Every removal needs a listing newer than its own check, but one listing per
    removal would cost as much as the removals. So callers that ask while a listing
    is in flight share the next one, which starts only after they asked: each still
    sees every container created before its check, at a fraction of the calls."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._waiting: asyncio.Future[users.Index] | None = None
        self._runner: asyncio.Task[None] | None = None

    async def fresh(self) -> users.Index:
        if self._waiting is None:
            self._waiting = asyncio.get_running_loop().create_future()
        waiting = self._waiting
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._run())
        return await asyncio.shield(waiting)

    async def _run(self) -> None:
        while self._waiting is not None:
            # Detach first: whoever asks from now on waits for the next listing,
            # because this one may already be under way.
            waiting, self._waiting = self._waiting, None
            try:
                waiting.set_result(users.index(await self._runtime.list_containers()))
            except Exception as err:  # every waiter must hear of it, or it waits forever
                waiting.set_exception(err)


async def _remove_if_unused(
    runtime: Runtime, listings: FreshListings, image: types.Image
) -> Result:
    checked_at = time.monotonic()
    try:
        in_use = await listings.fresh()
    except CriError as err:
        return Result(image, Outcome.FAILED, f"could not re-check users: {err}", checked_at)
    now_using = users.of_image(image, in_use)
    if now_using:
        return Result(
            image,
            Outcome.NOW_IN_USE,
            "kept: " + users.describe(now_using),
            checked_at,
        )
    removed_at = time.monotonic()
    try:
        await runtime.remove_image(image.id)
    except CriError as err:
        return Result(image, Outcome.FAILED, str(err), checked_at, removed_at)
    return Result(image, Outcome.REMOVED, "", checked_at, removed_at)
