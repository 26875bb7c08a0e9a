"""One consistent look at a node: images, containers, the sandbox image and the
image filesystem's fill level, read from the runtime and the local filesystem."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os

from imageprune_cri import CriClient, types

log = logging.getLogger("imageprune.inventory")


@dataclasses.dataclass(frozen=True)
class DiskFigures:
    """The image filesystem's capacity and use, from statvfs on the mountpoint the
    runtime names (the CRI reports no capacity, and disk targets, like kubelet's,
    are about the whole filesystem)."""

    mountpoint: str
    capacity_bytes: int
    fs_used_bytes: int


@dataclasses.dataclass(frozen=True)
class Snapshot:
    images: tuple[types.Image, ...]
    containers: tuple[types.Container, ...]
    sandbox_images: frozenset[str]
    disk: DiskFigures | None
    runtime: types.RuntimeVersion


def statvfs_used(mountpoint: str) -> tuple[int, int]:
    """(capacity, used) bytes of the filesystem holding `mountpoint`."""
    st = os.statvfs(mountpoint)
    capacity = st.f_blocks * st.f_frsize
    return capacity, capacity - st.f_bfree * st.f_frsize


def disk_figures(filesystems: list[types.FilesystemUsage]) -> DiskFigures | None:
    for fs in filesystems:
        try:
            capacity, used = statvfs_used(fs.mountpoint)
        except OSError as err:
            # The agent runs in a pod: the mountpoint must be mounted in to be seen.
            log.warning("cannot stat image filesystem %s: %s", fs.mountpoint, err)
            continue
        return DiskFigures(fs.mountpoint, capacity, used)
    return None


async def take(cri: CriClient, *, with_created_at: bool) -> Snapshot:
    """Read everything the planner needs. Creation times cost one ImageStatus call
    per image, so they are read only when the selection needs them."""
    version, sandbox_images, images, containers, filesystems = await asyncio.gather(
        cri.version(),
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
        disk=disk_figures(filesystems),
        runtime=version,
    )
