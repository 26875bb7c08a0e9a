"""The real `imageprune` CLI as a child process, as a user or a DaemonSet runs it
(signals, exit codes and stderr are only real in a process of their own)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from testkit.containerd import ContainerdNode

_ROOT = Path(__file__).resolve().parents[2]  # the checkout
# gRPC C-core log lines look like "E1129 18:05:00.366259   18418 file.cc:69] ...".
GRPC_LOG_LINE = re.compile(r"^[DIWEF]\d{4} \d\d:\d\d:\d\d\.\d+ +\d+ \S+:\d+\]", re.MULTILINE)


def env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This checkout's code first, whatever is installed."""
    base = {k: v for k, v in os.environ.items() if k != "CONTAINER_RUNTIME_ENDPOINT"}
    base["PYTHONPATH"] = os.pathsep.join([str(_ROOT / "cri"), str(_ROOT / "operator")])
    return {**base, **(extra or {})}


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "imageprune.cli.main", *args]


def start(
    node: ContainerdNode, state: Path, *args: str, extra_env: Mapping[str, str] | None = None
) -> subprocess.Popen[str]:
    """`imageprune prune -o json` against `node`, running."""
    return subprocess.Popen(
        command("prune", "--runtime-endpoint", node.endpoint, "--state-dir", str(state), *args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env(extra_env),
    )


def run(
    argv: Sequence[str], *, extra_env: Mapping[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command(*argv),
        check=False,
        capture_output=True,
        text=True,
        env=env(extra_env),
        timeout=timeout,
    )


def run_redirected(
    argv: Sequence[str], redirect: str, *, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`argv` (a whole command line) with stdout redirected by a shell, as a user would:
    `>&-` (closed), `>/dev/full` (a full disk). stderr is captured."""
    return subprocess.run(
        ["/bin/sh", "-c", f'exec "$@" {redirect}', "sh", *argv],
        check=False,
        capture_output=True,
        text=True,
        env=env(),
        timeout=timeout,
    )


def wait_until_gone(
    node: ContainerdNode, ids: set[str], *, at_least: int, proc: subprocess.Popen[str]
) -> None:
    """Until `at_least` of `ids` are gone from the node; fails if `proc` ended first
    (then the test could not act in the middle of the prune)."""
    while len(ids - node.image_ids()) < at_least:
        if proc.poll() is not None:
            raise AssertionError(
                f"the prune ended (exit {proc.returncode}) before {at_least} removals: "
                f"{proc.stderr.read() if proc.stderr else ''}"
            )
        time.sleep(0.02)


def ids_with_outcome(report: dict[str, object], *outcomes: str) -> set[str]:
    results = report["results"]
    assert isinstance(results, list)
    return {r["id"] for r in results if r["outcome"] in outcomes}


def parse(stdout: str) -> dict[str, object]:
    doc = json.loads(stdout)
    assert isinstance(doc, dict)
    return doc
