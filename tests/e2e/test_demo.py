"""The README's first command, in its short form: `bash hack/demo.sh --short` runs the
whole system (a real node and a simulated one, the chart installed by helm, the sample
policy in DryRun then Enforce) and its output says what happened on each node. The
output is checked against containerd's own count of images, and the machine is checked
for leftovers afterwards."""

from __future__ import annotations

import fcntl
import os
import re
import signal
import subprocess
from pathlib import Path

import pytest

from testkit import binaries, realnode

pytestmark = pytest.mark.e2e

DEMO = binaries.REPO_ROOT / "hack" / "demo.sh"
POLICY = "ci-runners-keep-last-3"
NODES = ("real-node", "sim-1")


def _env() -> dict[str, str]:
    """The test binaries the tests use (hack/demo.sh then builds nothing)."""
    try:
        found = binaries.find_binary("kubelet", search_path=False)
    except binaries.BinaryNotFoundError:
        return dict(os.environ)
    return {**os.environ, "IMAGEPRUNE_TESTBIN_DIR": str(found.parent)}


def demo(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(DEMO), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=_env(),
    )


def _demo_dirs() -> set[Path]:
    return set(Path("/var/tmp").glob("imageprune-demo-*"))


@pytest.fixture(scope="module")
def short_run() -> tuple[subprocess.CompletedProcess[str], set[Path]]:
    """One short demo for the module, and the demo dirs it left behind."""
    binaries.require_binary("kubelet", search_path=False)  # or skip (fail under CI)
    before = _demo_dirs()
    result = demo("--short")
    return result, _demo_dirs() - before


def _section(out: str, title: str) -> str:
    """The output from the step line containing `title` to the next step line."""
    start = out.index(title)
    end = out.find("\n==> ", start)
    return out[start : end if end != -1 else len(out)]


def test_short_demo_finishes(short_run: tuple[subprocess.CompletedProcess[str], set[Path]]) -> None:
    result, _ = short_run
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert "Demo done in" in result.stdout


def test_dry_run_removes_nothing_and_names_its_candidates(
    short_run: tuple[subprocess.CompletedProcess[str], set[Path]],
) -> None:
    out = _section(short_run[0].stdout, "in DryRun")
    assert re.search(rf"policy {POLICY}: Ready=True .*\(DryRun, trigger RunNow\)", out), out
    for node in NODES:
        found = re.search(rf"^  {node}: would remove (\d+) of (\d+) images", out, re.M)
        assert found, out
        assert int(found[1]) > 0
    assert "would remove" in out
    assert "registry.imageprune.test/demo/app:v1" in out  # the oldest build
    # The kubectl plugin, through kubectl: it started the run and followed it.
    assert f"$ kubectl imageprune run {POLICY}\n" in out
    assert re.search(r"^run \S+: 2 of 2 nodes done", out, re.M), out
    _plugin_status(out)


def test_enforce_removes_images_on_every_node_and_says_what_it_kept(
    short_run: tuple[subprocess.CompletedProcess[str], set[Path]],
) -> None:
    out = _section(short_run[0].stdout, "to Enforce")
    assert re.search(rf"policy {POLICY}: Ready=True .*\(Enforce, trigger RunNow\)", out), out
    assert re.search(r", [1-9]\d* removed, reclaimed [1-9]", out), out
    for node in NODES:
        found = re.search(rf"^  {node}: removed (\d+) of \d+ images", out, re.M)
        assert found, out
        removed = int(found[1])
        assert removed > 0
        # containerd's own count agrees with the report.
        counts = re.search(rf"^  {node}: (\d+) images in containerd before, (\d+) after", out, re.M)
        assert counts, out
        assert int(counts[1]) - int(counts[2]) == removed
    for reason in ("InUse", "Excluded", "KeptLatest", "SandboxImage", "Pinned"):
        assert re.search(rf"kept +\d+ +{reason}: ", out), reason
    _plugin_status(out)
    explained = out[out.index("$ kubectl imageprune explain") :]
    assert "  verdict: InUse\n" in explained, explained
    assert re.search(
        r"^  why: +kept: a container uses it \(used by 1 container: web", explained, re.M
    )


def _plugin_status(out: str) -> None:
    """`kubectl imageprune status`'s table: a row per node, and the totals."""
    table = out[out.index(f"$ kubectl imageprune status {POLICY}\n") :]
    assert re.search(r"^NODE +LAST RUN +TRIGGER", table, re.M), table
    for node in NODES:
        assert re.search(rf"^{node} .* RunNow +Succeeded ", table, re.M), table
    assert re.search(rf"^TOTAL \({len(NODES)} nodes\)", table, re.M), table


def test_the_demo_leaves_nothing_behind(
    short_run: tuple[subprocess.CompletedProcess[str], set[Path]],
) -> None:
    _, left = short_run
    assert left == set()
    assert not Path("/run/imageprune-demo.json").exists()
    assert not Path(f"/sys/class/net/{realnode.BRIDGE}").exists() or _another_real_node()


def _another_real_node() -> bool:
    """A test elsewhere holds the real node's lock now (and owns the bridge)."""
    with realnode.LOCK_PATH.open("a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
        return False


def test_help_and_stop_without_a_demo() -> None:
    helped = demo("--help", timeout=60)
    assert helped.returncode == 0
    assert "--keep" in helped.stdout
    assert "--short" in helped.stdout
    stopped = demo("--stop", timeout=60)
    assert stopped.returncode == 1
    assert stopped.stderr.strip() == "demo: none is running"


def test_ctrl_c_midway_stops_and_cleans_up() -> None:
    """SIGINT, as Ctrl-C sends it, once the cluster runs: the demo undoes everything."""
    binaries.require_binary("kubelet", search_path=False)
    before = _demo_dirs()
    with subprocess.Popen(
        ["bash", str(DEMO), "--short"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_env(),
    ) as proc:
        assert proc.stdout is not None
        seen = []
        for line in proc.stdout:  # the demo bounds every wait: no hang here
            seen.append(line)
            if "simulated node(s)" in line:
                proc.send_signal(signal.SIGINT)  # hack/demo.sh exec'd python: same pid
                break
        rest, _ = proc.communicate(timeout=300)
    out = "".join(seen) + rest
    assert proc.returncode == 130, out[-4000:]
    assert "demo: interrupted; everything it started is gone" in out
    assert _demo_dirs() - before == set()
    assert not Path("/run/imageprune-demo.json").exists()
