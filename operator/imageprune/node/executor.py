"""Carrying out a plan: remove images with bounded parallelism, re-checking right
before each removal that no container has started to use the image.

The runtime's RemoveImage does not check for users (containerd untags an image a
running container uses without complaint), so this re-check is the last line of
defence against a container created after the plan was made.

The report tells the truth when the runtime dies: a removal whose call got no answer
may or may not have happened (`Unknown`, confirmed with ImageStatus afterwards when
the runtime answers again), and once the runtime stops answering no further removal
is sent (`NotAttempted`), so a frozen runtime costs one deadline, not one per image.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from imageprune.node import users
from imageprune_cri import CriCallFailed, CriError, RuntimeUnavailable, types


class Runtime(Protocol):
    """What the executor needs of a CRI client."""

    async def list_containers(self) -> list[types.Container]: ...

    async def remove_image(self, ref: str) -> None: ...


class StatusReader(Protocol):
    """What confirming unknown outcomes needs of a CRI client."""

    async def image_status(self, ref: str) -> types.Image | None: ...


class Outcome(enum.StrEnum):
    REMOVED = "Removed"
    WOULD_REMOVE = "WouldRemove"  # dry run
    NOW_IN_USE = "NowInUse"  # a container started using it after planning
    FAILED = "Failed"  # the runtime answered with an error: the image is still there
    UNKNOWN = "Unknown"  # the removal was sent and got no answer: it may be gone
    NOT_ATTEMPTED = "NotAttempted"  # never sent: the runtime was gone, or we were stopped

    @property
    def takes_image(self) -> bool:
        """The image is (or, in a dry run, would be) gone."""
        return self in (Outcome.REMOVED, Outcome.WOULD_REMOVE)


@dataclasses.dataclass(frozen=True)
class Result:
    image: types.Image
    outcome: Outcome
    detail: str = ""
    # What went wrong, as one word for grouping (e.g. "RuntimeUnavailable",
    # "FAILED_PRECONDITION", "Interrupted"); empty when nothing did.
    error_kind: str = ""
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
        """Every image the run meant to remove and may not have: failed, unknown or
        not attempted."""
        return [r for r in self.results if r.error_kind]


Progress = Callable[[Result], None]

# The default width, from bench/node_width.py (docs/benchmarks.md, "the default
# width"). containerd removes an image's last reference with a synchronous garbage
# collection that concurrent removals share and kubelet's container creation waits
# for. On 500 images a window of 64 kept kubelet's CreateContainer p99 5x below
# crictl's (which removes all at once) and widths 125 to 256 were slower than 64 on
# both counts; on 2,000 images all at once was the fastest and the kindest to kubelet,
# while 64 took 2x crictl's time and 250 or 500 made kubelet wait longer.
SMALL_WIDTH = 64
ALL_AT_ONCE_FROM = 2_000


def default_width(candidates: int) -> int:
    """Removals in flight when the user chose no width, for `candidates` images."""
    return candidates if candidates >= ALL_AT_ONCE_FROM else SMALL_WIDTH


async def execute(
    runtime: Runtime,
    images: Sequence[types.Image],
    *,
    dry_run: bool,
    concurrency: int | None = None,
    on_result: Progress | None = None,
    stop: asyncio.Event | None = None,
) -> Report:
    """Remove `images` (already judged removable), in order, at most `concurrency`
    at a time (None: default_width of them). Errors are collected, never raised: one
    bad image must not stop the rest, but a runtime that stops answering stops the
    run. Setting `stop` (e.g. on Ctrl-C) sends no further removal; those in flight
    finish. A dry run removes nothing and lists nothing."""
    if concurrency is None:
        concurrency = default_width(len(images))
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
    runtime_gone = False  # no more removals are sent once the runtime stopped answering

    async def one(image: types.Image) -> Result:
        nonlocal runtime_gone
        async with gate:
            if runtime_gone:
                result = Result(
                    image,
                    Outcome.NOT_ATTEMPTED,
                    "not sent: the runtime had stopped answering",
                    error_kind="RuntimeGone",
                )
            elif stop is not None and stop.is_set():
                result = Result(
                    image,
                    Outcome.NOT_ATTEMPTED,
                    "not sent: the run was stopped",
                    error_kind="Stopped",
                )
            else:
                result = await _remove_if_unused(runtime, listings, image)
            if result.outcome is Outcome.UNKNOWN or result.error_kind == _RECHECK_LOST:
                runtime_gone = True
        if on_result:
            on_result(result)
        return result

    results = await asyncio.gather(*(one(image) for image in images))
    return Report(dry_run=False, results=tuple(results))


_RECHECK_LOST = "RecheckLost"  # the re-check listing got no answer: nothing was sent


async def confirm_unknown(runtime: StatusReader, report: Report) -> Report:
    """Ask the runtime, if it answers again, whether each image whose removal got no
    answer is gone. The first unanswered question ends the asking: the rest stay
    Unknown, never "not removed"."""
    confirmed = list(report.results)
    for i, result in enumerate(confirmed):
        if result.outcome is not Outcome.UNKNOWN:
            continue
        try:
            still_there = await runtime.image_status(result.image.id) is not None
        except CriError:
            break
        confirmed[i] = (
            dataclasses.replace(
                result,
                outcome=Outcome.FAILED,
                detail="not removed (confirmed after the runtime stopped answering): "
                + result.detail,
            )
            if still_there
            else dataclasses.replace(
                result,
                outcome=Outcome.REMOVED,
                detail="removed (confirmed after the runtime stopped answering)",
                error_kind="",
            )
        )
    return dataclasses.replace(report, results=tuple(confirmed))


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
    except RuntimeUnavailable as err:
        return Result(
            image,
            Outcome.NOT_ATTEMPTED,
            f"not sent: could not re-check users: {err}",
            _RECHECK_LOST,
            checked_at,
        )
    except CriError as err:
        return Result(
            image, Outcome.FAILED, f"could not re-check users: {err}", _kind(err), checked_at
        )
    now_using = users.of_image(image, in_use)
    if now_using:
        return Result(
            image,
            Outcome.NOW_IN_USE,
            "kept: " + users.describe(now_using),
            checked_at=checked_at,
        )
    removed_at = time.monotonic()
    try:
        await runtime.remove_image(image.id)
    except RuntimeUnavailable as err:
        # Sent, unanswered: the runtime may have removed it before it went away.
        return Result(image, Outcome.UNKNOWN, str(err), _kind(err), checked_at, removed_at)
    except CriError as err:
        return Result(image, Outcome.FAILED, str(err), _kind(err), checked_at, removed_at)
    return Result(image, Outcome.REMOVED, "", "", checked_at, removed_at)


def _kind(err: CriError) -> str:
    return err.code if isinstance(err, CriCallFailed) else type(err).__name__
