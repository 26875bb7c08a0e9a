"""Test teardown (tests/testkit/crds.py) takes the operator's finalizer off the policies a
failed test left behind: without it deleting the CRDs waits for an operator that is gone."""

from __future__ import annotations

from typing import Any

import pytest

from imageprune.api import names
from testkit import cluster, crds
from testkit.kube import ControlPlane

pytestmark = pytest.mark.k8s

OTHER = "example.com/keep"


def _with_finalizers(name: str, *finalizers: str) -> dict[str, Any]:
    manifest = cluster.policy(name, mode="DryRun")
    manifest["metadata"]["finalizers"] = list(finalizers)
    return manifest


def finalizers_of(plane: ControlPlane, name: str) -> list[str]:
    found: list[str] = plane.get(names.POLICY_PLURAL, name)["metadata"].get("finalizers", [])
    return found


def test_release_takes_off_only_the_operators_finalizer(kube_control_plane: ControlPlane) -> None:
    plane = kube_control_plane
    with crds.installed(plane) as installed:
        applied = crds.apply(plane, _with_finalizers("shared", names.FINALIZER, OTHER))
        assert applied.returncode == 0, applied.stderr
        crds.release_finalizers(plane, installed)
        assert finalizers_of(plane, "shared") == [OTHER]
        # Not ours to release: the test does it, or the CRDs' deletion would wait on it.
        plane.kubectl(
            "patch",
            names.POLICY_PLURAL,
            "shared",
            "--type=json",
            "-p",
            '[{"op": "remove", "path": "/metadata/finalizers"}]',
        )


def test_deleting_the_crds_does_not_wait_on_a_left_policy(kube_control_plane: ControlPlane) -> None:
    """No operator runs here: were the finalizer left on, the deletion would wait its full
    deadline and fail."""
    plane = kube_control_plane
    with crds.installed(plane) as installed:
        applied = crds.apply(plane, _with_finalizers("left-behind", names.FINALIZER))
        assert applied.returncode == 0, applied.stderr
    found = plane.kubectl("get", "crd", *installed, "--ignore-not-found", "-o", "name")
    assert found.stdout.strip() == ""
