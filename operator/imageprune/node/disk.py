"""The image filesystem's size and fill level.

The CRI reports used bytes but no capacity, and disk targets, like kubelet's, are
about the whole filesystem, so both figures come from statvfs on the mountpoint
the runtime names."""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Iterable

from imageprune_cri import types

log = logging.getLogger("imageprune.disk")


@dataclasses.dataclass(frozen=True, slots=True)
class DiskUsage:
    capacity_bytes: int
    used_bytes: int
    mountpoint: str | None = None  # None when the figures did not come from a mount


def measure(mountpoint: str) -> DiskUsage:
    """Raises OSError when the mountpoint cannot be stat'ed."""
    st = os.statvfs(mountpoint)
    capacity = st.f_blocks * st.f_frsize
    return DiskUsage(capacity, capacity - st.f_bfree * st.f_frsize, mountpoint)


def of_image_filesystems(filesystems: Iterable[types.FilesystemUsage]) -> DiskUsage | None:
    """The first image filesystem that can be measured; None when none can."""
    for fs in filesystems:
        try:
            return measure(fs.mountpoint)
        except OSError as err:
            # The agent runs in a pod: the mountpoint must be mounted in to be seen.
            log.warning("cannot stat image filesystem %s: %s", fs.mountpoint, err)
    return None
