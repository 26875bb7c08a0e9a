"""Install imageprune's own CRDs, exactly the files the chart ships, on a test control plane."""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from testkit import binaries
from testkit.kube import ControlPlane

CRD_DIR = binaries.REPO_ROOT / "charts" / "imageprune" / "crds"


def crd_files() -> list[Path]:
    return sorted(CRD_DIR.glob("*.yaml"))


@contextlib.contextmanager
def installed(plane: ControlPlane) -> Iterator[list[str]]:
    """Apply every CRD file, wait until each is served, and delete them on the way out:
    the control plane is shared by the session, and other tests install CRDs of these names."""
    # A CRD still terminating from the last module refuses every new object.
    _wait_gone(
        plane, [yaml.safe_load(path.read_text())["metadata"]["name"] for path in crd_files()]
    )
    names: list[str] = []
    try:
        for path in crd_files():
            names += plane.apply_crd(path)
        for name in names:
            plane.wait_established(name)
        yield names
    finally:
        if names:
            delete(plane, names)


def delete(plane: ControlPlane, names: Sequence[str]) -> None:
    """Delete CRDs (and so their objects) and wait until they are gone."""
    plane.kubectl("delete", "crd", *names, "--ignore-not-found", "--wait=false")
    _wait_gone(plane, names)


# Deleting a CRD deletes its objects first; on a loaded machine, or just after an
# apiserver restart ("storage is (re)initializing"), that takes well over a minute.
_DELETION_DEADLINE = 600.0


def _wait_gone(plane: ControlPlane, names: Sequence[str]) -> None:
    deadline = time.monotonic() + _DELETION_DEADLINE
    while True:
        found = plane.kubectl(
            "get", "customresourcedefinition", *names, "--ignore-not-found", "-o", "name"
        )
        if not found.stdout.strip():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"CRDs still there after {_DELETION_DEADLINE:g}s: {found.stdout}")
        time.sleep(0.5)


def apply(
    plane: ControlPlane, manifest: Mapping[str, Any] | str
) -> subprocess.CompletedProcess[str]:
    """`kubectl apply -f -` as a user runs it (client-side, strict field validation by
    default); does not raise, so tests can check a refusal's message."""
    text = manifest if isinstance(manifest, str) else json.dumps(manifest)
    return plane.kubectl("apply", "-f", "-", stdin=text, check=False)
