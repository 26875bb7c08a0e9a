"""Benchmark: `imageprune prune` against `crictl rmi --prune` on identical states,
and the planner on a large synthetic node.

Each round starts a fresh containerd, imports the same N unused images, and times
one tool's whole command (process start to exit). Rounds alternate the tools so
drift on the machine hits both. Prints the medians and their ratio (goal: <= 1.0),
then the planner's median time for 10,000 images and 2,000 containers (goal:
under 100 ms). Needs root and the binaries from hack/testbin.sh.

    python bench/prune_vs_crictl.py [--images 500] [--rounds 3] [--flavour 2.x]
"""

from __future__ import annotations

import argparse
import datetime
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from imageprune.node import planner
from imageprune.policy import selection as policy_selection
from imageprune_cri import types
from testkit import binaries, oci
from testkit import containerd as containerd_kit


def _fresh_node(flavour: str, count: int) -> containerd_kit.ContainerdNode:
    node = containerd_kit.ContainerdNode(
        containerd_kit.flavour(flavour), Path(tempfile.mkdtemp(prefix="ipb-", dir="/tmp"))
    )
    node.start()
    node.add_images(
        *(
            oci.ImageSpec(repo_tags=(f"docker.io/bench/app{i}:1",), payload_size=4096)
            for i in range(count)
        )
    )
    return node


def _time(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def bench_prune(flavour: str, count: int, rounds: int) -> tuple[float, float]:
    crictl = str(binaries.find_binary("crictl", search_path=False))
    imageprune = shutil.which("imageprune")
    if imageprune is None:
        raise SystemExit("imageprune is not installed: pip install -e .")
    ours: list[float] = []
    theirs: list[float] = []
    for r in range(rounds):
        for tool in ("imageprune", "crictl") if r % 2 == 0 else ("crictl", "imageprune"):
            node = _fresh_node(flavour, count)
            try:
                if tool == "imageprune":
                    state = tempfile.mkdtemp(prefix="ipb-state-")
                    cmd = [
                        imageprune,
                        "--runtime-endpoint",
                        node.endpoint,
                        "--state-dir",
                        state,
                        "prune",
                        "-o",
                        "json",
                    ]
                    ours.append(_time(cmd))
                else:
                    cmd = [crictl, "--runtime-endpoint", node.endpoint, "rmi", "--prune"]
                    theirs.append(_time(cmd))
                left = len(node.image_ids())
                # Only the pause image may remain (neither tool removes it: 2.x pins it,
                # and with no sandbox ever run it was never imported at all).
                if left > 1:
                    raise SystemExit(f"{tool} left {left} images: not a fair comparison")
            finally:
                node.stop()
            print(
                f"  round {r + 1} {tool}: {(ours if tool == 'imageprune' else theirs)[-1]:.2f}s",
                flush=True,
            )
    return statistics.median(ours), statistics.median(theirs)


def bench_planner(images: int, containers: int, runs: int = 15) -> float:
    now = datetime.datetime.now(datetime.UTC)
    imgs = [
        types.Image(
            id=f"sha256:{i:064x}",
            repo_tags=(f"docker.io/org/app{i % 700}:{i}",),
            size=1_000_000 + i,
            created_at=now - datetime.timedelta(hours=i),
        )
        for i in range(images)
    ]
    ctrs = [
        types.Container(
            id=f"{c:064x}",
            name=f"c{c}",
            pod_sandbox_id="p",
            image=imgs[c * 3 % images].repo_tags[0],
            image_ref=imgs[c * 3 % images].id,
            state=types.ContainerState.RUNNING,
            created_at=now,
        )
        for c in range(containers)
    ]
    selection = policy_selection.selection_from_spec(
        {"exclude": ["registry.k8s.io/*"], "keepLatestPerRepository": 2, "olderThan": "1h"}
    )
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        planner.plan(
            images=imgs,
            containers=ctrs,
            sandbox_images=(),
            usage={},
            disk=None,
            selection=selection,
            now=now,
        )
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--flavour", choices=containerd_kit.FLAVOURS, default="2.x")
    args = parser.parse_args()
    print(f"prune {args.images} unused images, containerd {args.flavour}, {args.rounds} rounds")
    ours, theirs = bench_prune(args.flavour, args.images, args.rounds)
    print(f"imageprune prune     median {ours:.2f}s")
    print(f"crictl rmi --prune   median {theirs:.2f}s")
    print(f"ratio imageprune/crictl: {ours / theirs:.2f} (goal <= 1.0)")
    planned = bench_planner(10_000, 2_000)
    print(
        f"planner, 10000 images / 2000 containers: median {planned * 1000:.1f} ms (goal < 100 ms)"
    )


if __name__ == "__main__":
    main()
