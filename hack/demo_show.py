"""What the demo prints after each run: the commands a user would type, and per node
what was removed, how many bytes, and what was kept and why."""

from __future__ import annotations

import os
import shutil
import subprocess
import sysconfig
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from imageprune.api import names
from imageprune.policy.quantities import format_bytes
from testkit.kube import ControlPlane

# Why an image stays, in a user's words (the planner's reasons, docs/policy.md).
KEPT_BECAUSE = {
    "InUse": "a container uses it (running, created or exited)",
    "SandboxImage": "the runtime's pod sandbox (pause) image",
    "Pinned": "pinned by the runtime",
    "Excluded": "matches spec.exclude",
    "NotIncluded": "outside spec.include",
    "TooNew": "created too recently for the policy",
    "RecentlyUsed": "used within spec.unusedFor",
    "KeptLatest": "among the newest spec.keepLatestPerRepository of its repository",
    "DiskBelowTarget": "the image filesystem is below spec.diskUsage",
    "CapReached": "spec.limits.maxImagesPerRun reached",
}
TAKEN = ("Removed", "WouldRemove")


PLUGIN = "kubectl-imageprune"  # the plugin's console script (pyproject.toml)


def status_commands(policy: str) -> list[list[str]]:
    """The kubectl commands that show a policy's state: its row, then the plugin's
    table per node."""
    return [["get", "ipp", "-o", "wide"], ["imageprune", "status", policy]]


def plugin_dir() -> Path:
    """Where pip put `kubectl-imageprune`: next to this Python's own scripts, else on
    PATH. kubectl runs `kubectl imageprune` from the first one on its PATH."""
    scripts = Path(sysconfig.get_path("scripts"))
    if (scripts / PLUGIN).is_file():
        return scripts
    found = shutil.which(PLUGIN)
    if found is None:
        raise RuntimeError(f"{PLUGIN} is not installed: python3 -m pip install -e .")
    return Path(found).parent


def kubectl(plane: ControlPlane, args: Sequence[str]) -> None:
    """Print a kubectl command as a user types it, then run it and print its output.
    `kubectl imageprune ...` runs the plugin through kubectl, as a user's would run."""
    print(f"\n$ kubectl {' '.join(_quoted(a) for a in args)}", flush=True)
    if args[0] == "imageprune":
        path = f"{plugin_dir()}{os.pathsep}{os.environ.get('PATH', '')}"
        env = {**os.environ, "PATH": path, "KUBECONFIG": str(plane.kubeconfig_path)}
        argv = [str(plane.kubectl_bin), *args]
        result = subprocess.run(
            argv, capture_output=True, text=True, env=env, timeout=600, check=False
        )
    else:
        result = plane.kubectl(*args, check=False)
    print((result.stdout + result.stderr).rstrip(), flush=True)


def _quoted(arg: str) -> str:
    return f"'{arg}'" if any(c in arg for c in ' []?@"(),') else arg


def run_summary(plane: ControlPlane, policy: str) -> None:
    """The policy's Ready condition and run totals, then each node's task report."""
    body = plane.get(names.POLICY_PLURAL, policy)
    status = body.get("status") or {}
    run = status.get("run") or {}
    conditions = status.get("conditions", [])
    ready: dict[str, Any] = next((c for c in conditions if c["type"] == "Ready"), {})
    nodes = run.get("nodes") or {}
    verb = "would reclaim" if run.get("mode") == "DryRun" else "reclaimed"
    print(
        f"\npolicy {policy}: Ready={ready.get('status')} ({ready.get('reason')}); "
        f"run {run.get('id')} ({run.get('mode')}, trigger {run.get('trigger')}): "
        f"{nodes.get('succeeded', 0)}/{nodes.get('matched', 0)} nodes succeeded, "
        f"{run.get('candidates', 0)} candidates, {run.get('imagesRemoved', 0)} removed, "
        f"{verb} {format_bytes(_bytes(run))}",
        flush=True,
    )
    tasks = plane.get(names.TASK_PLURAL, "-l", f"{names.POLICY_LABEL}={policy}")["items"]
    for task in sorted(tasks, key=lambda t: str(t["spec"]["nodeName"])):
        node_report(task["spec"]["nodeName"], (task.get("status") or {}).get("report") or {})


def _bytes(run: Mapping[str, Any]) -> int:
    """The run's reclaimed bytes; a dry run's would-be figure is its candidates' size."""
    return int(run.get("bytesReclaimed") or run.get("candidateBytes") or 0)


def node_report(node: str, report: Mapping[str, Any]) -> None:
    taken = [r for r in report.get("results", []) if r.get("outcome") in TAKEN]
    verb = "would remove" if report.get("dryRun") else "removed"
    print(
        f"  {node}: {verb} {report.get('removedImages', 0)} of {report.get('imagesSeen', 0)} "
        f"images, {format_bytes(int(report.get('removedBytes') or 0))}"
    )
    for result in taken:
        name = ", ".join(result.get("repoTags") or []) or f"{result['id'][:19]} (untagged)"
        print(f"    {verb:<12} {name}  {format_bytes(int(result.get('size') or 0))}")
    for reason, count in sorted((report.get("verdicts") or {}).items()):
        if reason in KEPT_BECAUSE:
            print(f"    kept {count:>2}      {reason}: {KEPT_BECAUSE[reason]}")
    print(flush=True)
