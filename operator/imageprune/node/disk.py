"""The image filesystem's size and fill level.

The CRI reports used bytes but no capacity, and its used bytes are the snapshots'
sum (containerd 1.6 and 2.x alike), while disk targets, like kubelet's, are about the
whole filesystem. So both figures come from statvfs on the mountpoint the runtime
names, or on the mount that holds it when the agent may not reach it (below)."""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from collections.abc import Iterable
from pathlib import PurePosixPath

from imageprune_cri import types

log = logging.getLogger("imageprune.disk")

MOUNTINFO = "/proc/self/mountinfo"
_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")


@dataclasses.dataclass(frozen=True, slots=True)
class DiskUsage:
    capacity_bytes: int
    used_bytes: int
    mountpoint: str | None = None  # None when the figures did not come from a mount


def measure(mountpoint: str, mountinfo: str = MOUNTINFO) -> DiskUsage:
    """Raises OSError when neither the mountpoint nor the mount holding it can be stat'ed."""
    try:
        st = os.statvfs(mountpoint)
    except PermissionError:
        # containerd makes its root dir 0700, so a non-root agent may not walk down to
        # the snapshotter's dir. Every path on one mount has the same statvfs figures,
        # and the mount holding the dir (the chart's read-only hostPath) is reachable.
        holder = holding_mount(mountpoint, mountinfo)
        if holder is None or holder == mountpoint:
            raise
        st = os.statvfs(holder)
    capacity = st.f_blocks * st.f_frsize
    return DiskUsage(capacity, capacity - st.f_bfree * st.f_frsize, mountpoint)


def holding_mount(path: str, mountinfo: str = MOUNTINFO) -> str | None:
    """The deepest mount point at or above `path` (None when mountinfo cannot be read)."""
    target = PurePosixPath(os.path.normpath(path))
    try:
        with open(mountinfo, encoding="utf-8", errors="surrogateescape") as f:
            points = [_mount_point(line) for line in f]
    except OSError:
        return None
    above = [p for p in points if p is not None and (p == target or p in target.parents)]
    return str(max(above, key=lambda p: len(p.parts))) if above else None


def _mount_point(line: str) -> PurePosixPath | None:
    """Field 5 of a mountinfo line, with the kernel's octal escapes (space, tab, newline,
    backslash) decoded."""
    fields = line.split()
    if len(fields) < 5:
        return None
    return PurePosixPath(_OCTAL_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), fields[4]))


def of_image_filesystems(filesystems: Iterable[types.FilesystemUsage]) -> DiskUsage | None:
    """The first image filesystem that can be measured; None when none can."""
    for fs in filesystems:
        try:
            return measure(fs.mountpoint)
        except OSError as err:
            # The agent runs in a pod: the mountpoint must be mounted in to be seen.
            log.warning("cannot stat image filesystem %s: %s", fs.mountpoint, err)
    return None
