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

from imageprune.api import names as api_names
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
    own = [yaml.safe_load(path.read_text())["metadata"]["name"] for path in crd_files()]
    release_finalizers(plane, own)
    _wait_gone(plane, own)
    names: list[str] = []
    try:
        for path in crd_files():
            names += plane.apply_crd(path)
        for name in names:
            plane.wait_established(name)
            _wait_served(plane, name)
        yield names
    finally:
        if names:
            delete(plane, names)


def _wait_served(plane: ControlPlane, name: str) -> None:
    """Established is not yet served: for a moment the apiserver answers 429 "storage is
    (re)initializing", and a process started then (the operator) spends its start retrying."""
    plural, group = name.split(".", 1)
    path = f"/apis/{group}/v1alpha1/{plural}?limit=1"
    deadline = time.monotonic() + 60
    while plane.kubectl("get", "--raw", path, check=False).returncode != 0:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} is established but not served after 60s")
        time.sleep(0.2)


def delete(plane: ControlPlane, names: Sequence[str]) -> None:
    """Delete CRDs (and so their objects) and wait until they are gone."""
    release_finalizers(plane, names)
    plane.kubectl("delete", "crd", *names, "--ignore-not-found", "--wait=false")
    _wait_gone(plane, names)


def release_finalizers(plane: ControlPlane, names: Sequence[str]) -> None:
    """Take the operator's finalizer off the objects of these CRDs: a test that failed
    with its operator stopped leaves them, and the CRD's deletion would wait on them
    for good. Other finalizers stay."""
    for crd in names:
        listed = plane.kubectl("get", crd, "-A", "--ignore-not-found", "-o", "json", check=False)
        if listed.returncode != 0 or not listed.stdout.strip():
            continue  # no such CRD, or not served any more
        for item in json.loads(listed.stdout).get("items", []):
            meta = item["metadata"]
            finalizers = meta.get("finalizers", [])
            if api_names.FINALIZER not in finalizers:
                continue
            kept = [f for f in finalizers if f != api_names.FINALIZER]
            where = ["--namespace", meta["namespace"]] if "namespace" in meta else []
            patch = json.dumps({"metadata": {"finalizers": kept or None}})
            patched = plane.kubectl(
                "patch", crd, meta["name"], *where, "--type=merge", "-p", patch, check=False
            )
            if patched.returncode != 0 and "NotFound" not in patched.stderr:
                raise AssertionError(f"cannot release {crd} {meta['name']}: {patched.stderr}")


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
