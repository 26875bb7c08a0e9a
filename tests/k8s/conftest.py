"""Fixtures for tests against a real kube-apiserver (tests/testkit/kube.py)."""

from collections.abc import Iterator

import pytest

from testkit import crds
from testkit.kube import ControlPlane, kube_control_plane

__all__ = ["imageprune_crds", "kube_control_plane"]


@pytest.fixture(scope="module")
def imageprune_crds(kube_control_plane: ControlPlane) -> Iterator[list[str]]:
    """The chart's CRDs (charts/imageprune/crds), installed for one test module."""
    with crds.installed(kube_control_plane) as names:
        yield names
