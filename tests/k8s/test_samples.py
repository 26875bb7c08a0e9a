"""Every sample in deploy/samples/, and every ImagePrunePolicy the README and the docs
show, is accepted by the real apiserver as written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from imageprune.api import names
from testkit import binaries, docblocks
from testkit.kube import ControlPlane

pytestmark = [pytest.mark.k8s, pytest.mark.usefixtures("imageprune_crds")]

SAMPLES = sorted((binaries.REPO_ROOT / "deploy" / "samples").glob("*.yaml"))
SHOWN = [
    block
    for block in docblocks.blocks()
    if block.lang == "yaml" and "kind: " + names.POLICY_KIND in block.text
]


@pytest.mark.parametrize("path", SAMPLES, ids=lambda path: path.name)
def test_sample_applies(kube_control_plane: ControlPlane, path: Path) -> None:
    written = yaml.safe_load(path.read_text())
    name = written["metadata"]["name"]
    kube_control_plane.kubectl("apply", "-f", str(path))
    try:
        stored = kube_control_plane.get(names.POLICY_PLURAL, name)["spec"]
        # As written, plus the schema's defaults (a sample without a mode is a dry run).
        assert _within(written["spec"], stored), stored
        assert stored["mode"] == written["spec"].get("mode", "DryRun")
    finally:
        kube_control_plane.kubectl("delete", "-f", str(path))


def test_the_docs_show_policies() -> None:
    assert {block.where.split(":")[0] for block in SHOWN} >= {"README.md", "policy.md"}


@pytest.mark.parametrize("block", SHOWN, ids=lambda block: block.where)
def test_policy_shown_in_the_docs_applies(
    kube_control_plane: ControlPlane, block: docblocks.Block
) -> None:
    written = yaml.safe_load(block.text)
    kube_control_plane.kubectl("apply", "-f", "-", stdin=block.text)
    try:
        stored = kube_control_plane.get(names.POLICY_PLURAL, written["metadata"]["name"])
        assert _within(written["spec"], stored["spec"]), stored
    finally:
        kube_control_plane.kubectl("delete", "-f", "-", stdin=block.text)


def _within(written: Any, stored: Any) -> bool:
    """Everything written is stored unchanged (stored may add defaults, at any depth)."""
    if isinstance(written, dict):
        return isinstance(stored, dict) and all(
            key in stored and _within(value, stored[key]) for key, value in written.items()
        )
    return bool(written == stored)
