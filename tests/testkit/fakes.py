"""An in-memory container runtime for unit tests of the executor's logic (the real
runtime is in tests/cri). It holds images and containers, records every call, and
can be told to fail, to answer listings from a script, to hold listings until
released, or to die after some removals."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Iterable
from typing import TYPE_CHECKING

from imageprune_cri import CriCallFailed, CriError, RuntimeUnavailable, types
from testkit import builders

if TYPE_CHECKING:
    from imageprune.node import executor


class FakeRuntime:
    def __init__(
        self,
        images: Iterable[types.Image] = (),
        *,
        containers: Iterable[types.Container] = (),
        dies_after: int | None = None,
        removed_before_dying: bool = True,
    ) -> None:
        self.images = {i.id: i for i in images}  # what is still there
        self.containers = list(containers)  # what a listing answers, unless scripted
        # Listing answers consumed one per call before `containers` is used: a
        # list of containers, or an error the call raises.
        self.listings: collections.deque[list[types.Container] | CriError] = collections.deque()
        # While set and not released, listings wait (after taking their answer).
        self.listing_gate: asyncio.Event | None = None
        self.removal_errors: dict[str, CriError] = {}  # image ID -> what its removal raises
        self.calls: list[tuple[str, str]] = []  # ("list_containers", "") or ("remove_image", ref)
        self.in_flight = 0
        self.max_in_flight = 0
        # Once more than `dies_after` removals were sent, every call fails as a dead
        # runtime's would; `removed_before_dying` says whether the removal that found
        # it dead took effect anyway. `revive` lets it answer again.
        self.dies_after = dies_after
        self.removed_before_dying = removed_before_dying

    @property
    def dead(self) -> bool:
        return self.dies_after is not None and len(self.removal_calls) > self.dies_after

    def revive(self) -> None:
        self.dies_after = None

    async def list_containers(self) -> list[types.Container]:
        self.calls.append(("list_containers", ""))
        if self.dead:
            raise RuntimeUnavailable("no CRI runtime answers")
        answer = self.listings.popleft() if self.listings else list(self.containers)
        if self.listing_gate is not None:
            await self.listing_gate.wait()
        if isinstance(answer, CriError):
            raise answer
        return answer

    async def remove_image(self, ref: str) -> None:
        self.calls.append(("remove_image", ref))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0)  # let other removals start, as a real call would
            if self.dead:
                if self.removed_before_dying:
                    self.images.pop(ref, None)
                raise RuntimeUnavailable("no CRI runtime answers")
            if ref in self.removal_errors:
                raise self.removal_errors[ref]
            self.images.pop(ref, None)
        finally:
            self.in_flight -= 1

    async def image_status(self, ref: str) -> types.Image | None:
        if self.dead:
            raise RuntimeUnavailable("no CRI runtime answers")
        return self.images.get(ref)

    def fail_removal(self, image: types.Image, error: CriError | None = None) -> None:
        self.removal_errors[image.id] = error or CriCallFailed(
            f"RemoveImage {image.id} failed", code="INTERNAL"
        )

    def use(
        self,
        image: types.Image,
        *,
        name: str = "late",
        state: types.ContainerState = types.ContainerState.CREATED,
    ) -> types.Container:
        """Start a container on `image`, named by its first tag as a pod spec would."""
        started = builders.container(name, image=image.repo_tags[0], state=state)
        self.containers.append(started)
        return started

    @property
    def listing_calls(self) -> int:
        return sum(1 for call, _ in self.calls if call == "list_containers")

    @property
    def removal_calls(self) -> list[str]:
        return [ref for call, ref in self.calls if call == "remove_image"]


if TYPE_CHECKING:
    # mypy holds the fake to the protocol the executor declares.
    _runtime: type[executor.Runtime] = FakeRuntime
    _status_reader: type[executor.StatusReader] = FakeRuntime
