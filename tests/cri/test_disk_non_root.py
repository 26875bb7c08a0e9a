"""The image filesystem's figures as the chart's non-root agent (uid 65532, group 0 as
the socket's) gets them, on real containerd 1.6 and 2.x: both make their root dir 0700,
so the snapshotter's dir the CRI names cannot be stat'ed, and the agent measures the
mount that holds it, as a pod has it (the chart's hostPath, mounted at the same path)."""

from __future__ import annotations

import asyncio
import ctypes
import json
import os
import subprocess
from pathlib import Path

import pytest

from imageprune.node import disk
from imageprune_cri import CriClient
from testkit.containerd import ContainerdNode

pytestmark = pytest.mark.cri

AGENT_UID = 65532
CLONE_NEWNS = 0x00020000


def _as_agent_in_a_pod(root: Path, mountpoint: str) -> dict[str, object]:
    """In a child with a mount namespace of its own (the host's mounts untouched): the
    runtime's root bind-mounted onto itself, as the kubelet mounts the hostPath; then,
    as the agent's uid, what plain statvfs and disk.measure make of the mountpoint."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        result: dict[str, object] = {}
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.unshare(CLONE_NEWNS) != 0:
                raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNS)")
            subprocess.run(["mount", "--make-rprivate", "/"], check=True)
            subprocess.run(["mount", "--bind", "-o", "ro", str(root), str(root)], check=True)
            os.setgroups([0])
            os.setgid(AGENT_UID)
            os.setuid(AGENT_UID)
            try:
                os.statvfs(mountpoint)
                result["plain"] = "ok"
            except OSError as e:
                result["plain"] = type(e).__name__
            usage = disk.measure(mountpoint)
            result["capacity"] = usage.capacity_bytes
            result["used"] = usage.used_bytes
        except Exception as e:  # the parent's assertion shows it
            result["error"] = f"{type(e).__name__}: {e}"
        os.write(write, json.dumps(result).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as f:
        out = f.read()
    os.waitpid(pid, 0)
    found: dict[str, object] = json.loads(out)
    return found


def test_non_root_agent_measures_the_mount_holding_the_image_filesystem(
    containerd: ContainerdNode,
) -> None:
    async def filesystems() -> list[str]:
        async with CriClient(containerd.endpoint) as cri:
            return [fs.mountpoint for fs in await cri.image_fs_info()]

    (mountpoint,) = asyncio.run(filesystems())
    root = containerd.dir / "root"
    assert Path(mountpoint).parent == root
    assert root.stat().st_mode & 0o777 == 0o700
    containerd.dir.chmod(0o755)  # as /var/lib is: the hostPath's mount point is reachable

    seen = _as_agent_in_a_pod(root, mountpoint)

    assert "error" not in seen, seen
    assert seen["plain"] == "PermissionError"
    as_root = disk.measure(mountpoint)
    assert seen["capacity"] == as_root.capacity_bytes
    # Others write to this disk meanwhile: the same filesystem, within 1%.
    assert abs(int(str(seen["used"])) - as_root.used_bytes) < as_root.capacity_bytes / 100
