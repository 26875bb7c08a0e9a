"""The README's "apply a policy and watch it" commands, run as a user runs them: through
bash, with the real kubectl, against a real apiserver with the chart's CRDs."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from imageprune.api import names
from testkit import binaries, docblocks
from testkit.kube import ControlPlane

pytestmark = [pytest.mark.k8s, pytest.mark.usefixtures("imageprune_crds")]

README = binaries.REPO_ROOT / "README.md"


def _policy_block() -> list[str]:
    """The lines of the README's block that applies a sample policy."""
    for block in docblocks.blocks([README]):
        if block.lang == "sh" and "kubectl apply -f deploy/samples/" in block.text:
            return block.text.splitlines()
    raise AssertionError("the README shows no block applying a sample policy")


def test_the_readmes_policy_commands_work(kube_control_plane: ControlPlane, tmp_path: Path) -> None:
    lines = _policy_block()
    assert len(lines) >= 3
    env = os.environ | {
        "KUBECONFIG": str(kube_control_plane.kubeconfig_path),
        "PATH": f"{kube_control_plane.kubectl_bin.parent}:{os.environ['PATH']}",
        "HOME": str(tmp_path),  # kubectl's discovery cache
    }
    outputs = []
    try:
        for line in lines:
            done = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", line],
                cwd=binaries.REPO_ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert done.returncode == 0, f"{line}: {done.stderr}"
            outputs.append(done.stdout)
        policy = kube_control_plane.get(names.POLICY_PLURAL, "dry-run-audit")
        assert any("dry-run-audit" in out for out in outputs)  # `kubectl get ipp` lists it
        assert names.RUN_NOW_ANNOTATION in policy["metadata"]["annotations"]
    finally:
        kube_control_plane.kubectl(
            "delete", names.POLICY_PLURAL, "dry-run-audit", "--ignore-not-found"
        )
