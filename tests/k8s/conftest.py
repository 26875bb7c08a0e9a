"""Fixtures for tests against a real kube-apiserver (tests/testkit/kube.py)."""

from testkit.kube import kube_control_plane

__all__ = ["kube_control_plane"]
