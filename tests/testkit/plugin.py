"""`kubectl-imageprune` (imageprune.plugin) as a process, as kubectl runs it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from testkit import cliproc
from testkit.kube import ControlPlane


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "imageprune.plugin.main", *args]


def run(
    plane: ControlPlane,
    *args: str,
    kubeconfig: Path | None = None,
    env: Mapping[str, str] | None = None,
    admin: bool = True,
) -> subprocess.CompletedProcess[str]:
    """`kubectl-imageprune ARGS --kubeconfig=K`: K is `kubeconfig`, else the admin's
    unless `admin` is False (then none: $KUBECONFIG decides)."""
    config = kubeconfig or (plane.kubeconfig_path if admin else None)
    flags = [f"--kubeconfig={config}"] if config else []
    return subprocess.run(
        command(*args, *flags),
        capture_output=True,
        text=True,
        env=cliproc.env(env),
        timeout=300,
        check=False,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    """The output of a run that must have succeeded."""
    assert result.returncode == 0, result.stderr + result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    return result.stdout


def failed(result: subprocess.CompletedProcess[str], code: int = 3) -> str:
    """The one-line error of a run that must have failed with `code`."""
    assert result.returncode == code, result.stderr + result.stdout
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]
