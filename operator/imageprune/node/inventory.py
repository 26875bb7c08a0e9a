"""One consistent look at a node: images, containers, the sandbox image and the
image filesystem's fill level, read from the runtime and the local filesystem."""

from __future__ import annotations

import asyncio
import dataclasses

from imageprune.node.disk import DiskUsage, of_image_filesystems
from imageprune_cri import CriClient, types


@dataclasses.dataclass(frozen=True)
class Snapshot:
    images: tuple[types.Image, ...]
    containers: tuple[types.Container, ...]
    sandbox_images: frozenset[str]
    disk: DiskUsage | None


async def take(cri: CriClient, *, with_created_at: bool) -> Snapshot:
    """Read everything the planner needs. Creation times cost one ImageStatus call
    per image, so they are read only when the selection needs them."""
    sandbox_images, images, containers, filesystems = await asyncio.gather(
        cri.sandbox_images(),
        cri.list_images(),
        cri.list_containers(),
        cri.image_fs_info(),
    )
    if with_created_at:
        images = await cri.with_created_at(images)
    return Snapshot(
        images=tuple(images),
        containers=tuple(containers),
        sandbox_images=sandbox_images,
        disk=of_image_filesystems(filesystems),
    )
