"""Shared fixtures. The machinery that starts real components is in tests/testkit."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from testkit import containerd as containerd_kit


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
