"""Install imageprune's own CRDs, exactly the files the chart ships, on a test control plane."""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from testkit import binaries
from testkit.kube import ControlPlane

CRD_DIR = binaries.REPO_ROOT / "charts" / "imageprune" / "crds"


def crd_files() -> list[Path]:
    return sorted(CRD_DIR.glob("*.yaml"))


@contextlib.contextmanager
def installed(plane: ControlPlane) -> Iterator[list[str]]:
    """Apply every CRD file, wait until each is served, and delete them on the way out:
    the control plane is shared by the session, and other tests install CRDs of these names."""
    names: list[str] = []
    try:
        for path in crd_files():
            names += plane.apply_crd(path)
        for name in names:
            plane.wait_established(name)
        yield names
    finally:
        if names:
            plane.kubectl("delete", "customresourcedefinition", *names, "--wait=true")


def apply(
    plane: ControlPlane, manifest: Mapping[str, Any] | str
) -> subprocess.CompletedProcess[str]:
    """`kubectl apply -f -` as a user runs it (client-side, strict field validation by
    default); does not raise, so tests can check a refusal's message."""
    text = manifest if isinstance(manifest, str) else json.dumps(manifest)
    return plane.kubectl("apply", "-f", "-", stdin=text, check=False)
