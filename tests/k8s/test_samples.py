"""Every sample in deploy/samples/ is accepted by the real apiserver as written."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from imageprune.api import names
from testkit import binaries
from testkit.kube import ControlPlane

pytestmark = [pytest.mark.k8s, pytest.mark.usefixtures("imageprune_crds")]

SAMPLES = sorted((binaries.REPO_ROOT / "deploy" / "samples").glob("*.yaml"))


@pytest.mark.parametrize("path", SAMPLES, ids=lambda path: path.name)
def test_sample_applies(kube_control_plane: ControlPlane, path: Path) -> None:
    written = yaml.safe_load(path.read_text())
    name = written["metadata"]["name"]
    kube_control_plane.kubectl("apply", "-f", str(path))
    try:
        stored = kube_control_plane.get(names.POLICY_PLURAL, name)["spec"]
        # As written, plus the schema's defaults (a sample without a mode is a dry run).
        assert {field: stored[field] for field in written["spec"]} == written["spec"]
        assert stored["mode"] == written["spec"].get("mode", "DryRun")
    finally:
        kube_control_plane.kubectl("delete", "-f", str(path))
