"""Which mount holds a path, from a mountinfo file (the non-root agent's fallback when
the runtime's own dir cannot be stat'ed; tests/cri/test_disk_non_root.py runs it for real)."""

from __future__ import annotations

from pathlib import Path

import pytest

from imageprune.node import disk

pytestmark = pytest.mark.unit

MOUNTINFO = """\
22 1 0:21 / / rw,relatime - overlay overlay rw
30 22 8:1 /var/lib/containerd /var/lib/containerd ro,relatime - ext4 /dev/sda1 rw
31 30 8:2 / /var/lib/containerd/io.containerd.snapshotter.v1.btrfs rw - btrfs /dev/sdb rw
32 22 8:1 /data /mnt/with\\040space ro - ext4 /dev/sda1 rw
33 22 8:1 /x /var/lib/containerd-old rw - ext4 /dev/sda1 rw
broken line
"""


@pytest.fixture
def mountinfo(tmp_path: Path) -> str:
    path = tmp_path / "mountinfo"
    path.write_text(MOUNTINFO)
    return str(path)


@pytest.mark.parametrize(
    ("path", "holder"),
    [
        ("/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs", "/var/lib/containerd"),
        ("/var/lib/containerd", "/var/lib/containerd"),
        ("/var/lib/containerd/./io.containerd.snapshotter.v1.overlayfs/", "/var/lib/containerd"),
        # A mount below the root is the image filesystem itself, not the root's.
        (
            "/var/lib/containerd/io.containerd.snapshotter.v1.btrfs/x",
            "/var/lib/containerd/io.containerd.snapshotter.v1.btrfs",
        ),
        # A sibling whose name starts alike is not below it.
        ("/var/lib/containerd-old/root", "/var/lib/containerd-old"),
        ("/mnt/with space/containerd", "/mnt/with space"),
        ("/elsewhere", "/"),
    ],
)
def test_the_deepest_mount_at_or_above_the_path(mountinfo: str, path: str, holder: str) -> None:
    assert disk.holding_mount(path, mountinfo) == holder


def test_no_mountinfo_no_holder(tmp_path: Path) -> None:
    assert disk.holding_mount("/var/lib/containerd", str(tmp_path / "absent")) is None
