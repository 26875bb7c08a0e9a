"""Shared fixtures. The machinery that starts real components is in tests/testkit."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from testkit import binaries, chart, crds
from testkit import containerd as containerd_kit
from testkit.kube import ControlPlane, kube_control_plane

__all__ = ["imageprune_crds", "kube_control_plane"]


@pytest.fixture(params=containerd_kit.FLAVOURS)
def containerd(request: pytest.FixtureRequest) -> Iterator[containerd_kit.ContainerdNode]:
    """A fresh real containerd per test, once per flavour (1.6 and 2.x)."""
    with containerd_kit.running(request.param) as node:
        yield node


@pytest.fixture
def containerd_factory() -> Iterator[containerd_kit.Factory]:
    """Start as many nodes as a test needs; all are stopped at teardown."""
    with contextlib.ExitStack() as stack:
        yield lambda flavour: stack.enter_context(containerd_kit.running(flavour))


@pytest.fixture(scope="module")
def imageprune_crds(kube_control_plane: ControlPlane) -> Iterator[list[str]]:
    """The chart's CRDs (charts/imageprune/crds), installed for one test module."""
    with crds.installed(kube_control_plane) as names:
        yield names


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


_KINDS = frozenset({"unit", "cri", "k8s", "e2e"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test says what it needs (a kind marker), so `-m unit` and friends select
    exactly what they claim to."""
    unmarked = [i.nodeid for i in items if not _KINDS & {m.name for m in i.iter_markers()}]
    if unmarked:
        raise pytest.UsageError(f"tests without a unit/cri/k8s/e2e marker: {unmarked}")
