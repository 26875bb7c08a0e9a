"""Locate the real binaries the integration tests run (kube-apiserver, etcd, kubectl, helm,
crictl, containerd, ...).

Default search order for a name:
  1. $KUBEBUILDER_ASSETS (only for kube-apiserver, etcd, kubectl: the envtest convention),
  2. $IMAGEPRUNE_TESTBIN_DIR (a complete prebuilt dir),
  3. the cache dir hack/testbin.sh builds into (asked with --print-dir, which builds nothing),
  4. $PATH.
Callers that need one specific build (Debian's containerd 1.6 vs the testbin 2.x) pass
their own `dirs` and `search_path=False`.

A missing binary skips the test locally (with how to get it) but fails it in CI (CI=true):
nothing in CI silently skips.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
TESTBIN_SCRIPT = REPO_ROOT / "hack" / "testbin.sh"
KUBEBUILDER_BINARIES = frozenset({"kube-apiserver", "etcd", "kubectl"})


class BinaryNotFoundError(LookupError):
    pass


def testbin_dir() -> Path | None:
    """The dir hack/testbin.sh builds into, or None if the script cannot say (e.g. no Go)."""
    # The script's answer depends on these variables, so they key the cache.
    return _ask_testbin_script(
        os.environ.get("KUBEBUILDER_ASSETS"),
        os.environ.get("IMAGEPRUNE_TESTBIN_DIR"),
        os.environ.get("IMAGEPRUNE_TESTBIN_CACHE"),
        os.environ.get("PATH"),
    )


@functools.cache
def _ask_testbin_script(*env_key: str | None) -> Path | None:
    try:
        result = subprocess.run(
            [str(TESTBIN_SCRIPT), "--print-dir"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        return None
    return Path(lines[-1])


def default_dirs(name: str) -> list[Path]:
    """The directories searched for `name` before $PATH, in order."""
    dirs: list[Path] = []
    if name in KUBEBUILDER_BINARIES and (assets := os.environ.get("KUBEBUILDER_ASSETS")):
        dirs.append(Path(assets))
    if prebuilt := os.environ.get("IMAGEPRUNE_TESTBIN_DIR"):
        dirs.append(Path(prebuilt))
    if (cache := testbin_dir()) is not None:
        dirs.append(cache)
    return dirs


def find_binary(name: str, *, dirs: Sequence[Path] | None = None, search_path: bool = True) -> Path:
    """First executable `name` in `dirs` (default: default_dirs(name)), then in $PATH."""
    searched = default_dirs(name) if dirs is None else list(dirs)
    for d in searched:
        candidate = d / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    if search_path and (found := shutil.which(name)):
        return Path(found)
    places = [str(d) for d in searched] + (["$PATH"] if search_path else [])
    raise BinaryNotFoundError(f"{name} not found in: {', '.join(places) or '(nowhere)'}")


def require_binary(
    name: str,
    *,
    dirs: Sequence[Path] | None = None,
    search_path: bool = True,
    hint: str | None = None,
) -> Path:
    """find_binary, or skip the test (pytest.fail when CI=true) saying how to get it."""
    try:
        return find_binary(name, dirs=dirs, search_path=search_path)
    except BinaryNotFoundError as e:
        message = f"{e}; " + (
            hint
            or "run hack/testbin.sh to build the test binaries, or point IMAGEPRUNE_TESTBIN_DIR"
            " (KUBEBUILDER_ASSETS for kube-apiserver/etcd/kubectl) at prebuilt ones"
        )
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI must run every test: {message}", pytrace=False)
    pytest.skip(message)
