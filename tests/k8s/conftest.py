"""Fixtures of the chart's tests: the real helm, without and with the test control plane."""

from __future__ import annotations

from pathlib import Path

import pytest

from testkit import binaries, chart
from testkit.kube import ControlPlane


@pytest.fixture(scope="session")
def helm_binary() -> Path:
    return binaries.require_binary("helm")


@pytest.fixture(scope="session")
def helm(helm_binary: Path, tmp_path_factory: pytest.TempPathFactory) -> chart.Helm:
    """helm for what needs no cluster: template, lint."""
    return chart.Helm(helm_binary, tmp_path_factory.mktemp("helm"))


@pytest.fixture(scope="session")
def cluster_helm(helm_binary: Path, kube_control_plane: ControlPlane) -> chart.Helm:
    """helm against the test control plane, as its admin."""
    return chart.Helm(helm_binary, kube_control_plane.workdir, kube_control_plane.kubeconfig_path)
