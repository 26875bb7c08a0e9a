"""crictl, the runtime's reference client, works against our containerd fixtures:
proof that they are ordinary CRI endpoints."""

from __future__ import annotations

import subprocess

import pytest

from testkit import binaries
from testkit.containerd import ContainerdNode

pytestmark = pytest.mark.cri


def test_crictl_lists_images(containerd: ContainerdNode) -> None:
    crictl = binaries.require_binary("crictl", search_path=False)
    built = containerd.add_image(repo_tags=["docker.io/library/seen-by-crictl:1"])
    result = subprocess.run(
        [str(crictl), "--runtime-endpoint", containerd.endpoint, "images", "--no-trunc"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "docker.io/library/seen-by-crictl" in result.stdout
    assert built.id in result.stdout
