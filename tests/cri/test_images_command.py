"""`imageprune images` against real containerd: every image, its users, its verdict."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

from imageprune.cli import main as cli
from testkit import oci
from testkit.containerd import ContainerdNode

pytestmark = pytest.mark.cri


def _images(node: ContainerdNode, state: Path, *args: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(
            ["--runtime-endpoint", node.endpoint, "--state-dir", str(state), "images", *args]
        )
    assert code == 0
    return out.getvalue()


def test_json_lists_users_and_reasons(containerd: ContainerdNode, tmp_path: Path) -> None:
    used, idle = containerd.add_images(
        oci.ImageSpec(repo_tags=("docker.io/library/used:1",)),
        oci.ImageSpec(repo_tags=("docker.io/library/idle:1",), payload_size=10_000),
    )
    sandbox = containerd.run_sandbox("pod")
    containerd.create_container(sandbox, "pod", name="web", image="docker.io/library/used:1")

    doc = json.loads(_images(containerd, tmp_path, "-o", "json"))

    by_id = {i["id"]: i for i in doc["images"]}
    assert by_id[used.id]["reason"] == "InUse"
    assert by_id[used.id]["usedBy"] == ["web"]
    assert "web (running)" in by_id[used.id]["detail"]
    assert by_id[idle.id]["reason"] == "Removable"
    assert by_id[idle.id]["repoTags"] == ["docker.io/library/idle:1"]
    assert by_id[idle.id]["firstSeen"] is not None
    assert by_id[used.id]["lastUsed"] is not None
    # Listing removes nothing.
    assert {used.id, idle.id} <= containerd.image_ids()


def test_table_shows_verdicts_under_the_selection(
    containerd: ContainerdNode, tmp_path: Path
) -> None:
    containerd.add_image(repo_tags=["docker.io/library/idle:1"])
    table = _images(containerd, tmp_path, "--exclude", "idle:*")
    header, *rows = table.splitlines()
    assert header.split()[:3] == ["IMAGE", "ID", "TAGS"]
    idle_row = next(r for r in rows if "docker.io/library/idle:1" in r)
    assert "Excluded" in idle_row
    assert "0 of" in table.splitlines()[-1]
