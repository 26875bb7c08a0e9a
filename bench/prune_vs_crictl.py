"""Benchmark: `imageprune prune` against `crictl rmi --prune` on identical states,
and the planner on a large synthetic node.

Each round starts a fresh containerd, imports the same N unused images, and times
one tool's whole command (process start to exit). Rounds alternate the tools so
drift on the machine hits both. Prints the medians and their ratio (goal: <= 1.2),
then the planner's median time for 10,000 images and 2,000 containers (goal:
under 100 ms) and its peak allocation. Needs root and the binaries from hack/testbin.sh.

    python bench/prune_vs_crictl.py [--images 500] [--rounds 3] [--flavour 2.x] [--smoke]
    python bench/prune_vs_crictl.py --planner-only
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import _node

from imageprune.node import planner
from imageprune.policy import selection as policy_selection
from imageprune_cri import types


def bench_prune(
    flavour: str, count: int, rounds: int, contenders: dict[str, list[str]]
) -> dict[str, float]:
    """Median wall time of each contender's command over `rounds` fresh nodes."""
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for r, name in _node.alternating(list(contenders), rounds):
        node = _node.fresh_node(flavour, count)
        try:
            with tempfile.TemporaryDirectory(prefix="ipb-state-") as state:
                cmd = [
                    part.replace("{endpoint}", node.endpoint).replace("{state}", state)
                    for part in contenders[name]
                ]
                times[name].append(_node.time_command(cmd))
            _node.check_empty(node, name)
        finally:
            node.stop()
        print(f"  round {r + 1} {name}: {times[name][-1]:.2f}s", flush=True)
    return {name: statistics.median(t) for name, t in times.items()}


@dataclasses.dataclass(frozen=True)
class PlannerFigures:
    # CPU seconds (the planner does no I/O, so on a quiet machine they are its wall
    # time; on a loaded one they leave out the waits for a core) per plan, and for
    # the reference work measured in between: medians and best runs.
    median: float
    best: float
    reference_median: float
    reference_best: float
    # The first plan of the process, whose image names are not yet in the parse
    # caches: what the CLI pays, as it plans once.
    first: float
    peak: int  # bytes allocated during one plan (tracemalloc)


def bench_planner(images: int, containers: int, runs: int = 15) -> PlannerFigures:
    """The planner's median over `runs` after a first plan, next to a reference
    timed alternately with it (index the images by ID and sort them by the planner's
    removal key: the least any plan must do), so that a figure from a loaded machine
    can be judged; and its peak allocation during one plan, from tracemalloc, in a
    run of its own (tracing slows the planner down)."""
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
        {"exclude": ["registry.k8s.io/*"], "keepLatestPerRepository": 2, "olderThan": "1h"},
        unused_for_default=None,
    )

    def plan() -> None:
        planner.plan(
            images=imgs,
            containers=ctrs,
            sandbox_images=(),
            usage={},
            disk=None,
            selection=selection,
            now=now,
        )

    def reference() -> None:
        by_id = {image.id: image for image in imgs}
        sorted(by_id.values(), key=lambda image: (image.created_at, -image.size, image.id))

    start = time.process_time()
    plan()
    first = time.process_time() - start
    times: dict[Callable[[], None], list[float]] = {plan: [], reference: []}
    for _ in range(runs):
        for work, took in times.items():
            start = time.process_time()
            work()
            took.append(time.process_time() - start)
    tracemalloc.start()
    try:
        plan()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return PlannerFigures(
        statistics.median(times[plan]),
        min(times[plan]),
        statistics.median(times[reference]),
        min(times[reference]),
        first,
        peak,
    )


def print_planner(images: int, containers: int) -> None:
    f = bench_planner(images, containers)
    print(
        f"planner, {images} images / {containers} containers (goal < 100 ms), CPU time: "
        f"median {f.median * 1000:.1f} ms, best {f.best * 1000:.1f} ms; "
        f"reference (index and sort the images) median {f.reference_median * 1000:.1f} ms, "
        f"best {f.reference_best * 1000:.1f} ms; planner / reference, best runs: "
        f"{f.best / f.reference_best:.1f}x; "
        f"first plan (cold parse caches) {f.first * 1000:.1f} ms; "
        f"peak allocation {f.peak / 1024 / 1024:.1f} MiB (tracemalloc)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument(
        "--planner-only", action="store_true", help="time the planner only (no runtime)"
    )
    _node.add_flags(parser, rounds=3, smoke="5 images, 1 round, a small planner")
    args = parser.parse_args()
    if args.smoke:
        args.images, args.rounds = 5, 1
    planner_size = (1_000, 200) if args.smoke else (10_000, 2_000)
    if args.planner_only:
        print_planner(*planner_size)
        return
    # The installed script itself, not a version manager's shim in front of it.
    imageprune = Path(sys.executable).parent / "imageprune"
    if not imageprune.exists():
        raise SystemExit(f"{imageprune} not found: pip install -e .")
    ours = [
        str(imageprune),
        "--runtime-endpoint",
        "{endpoint}",
        "--state-dir",
        "{state}",
        "prune",
        "-o",
        "json",
    ]
    contenders = {
        "imageprune prune": ours,
        # crictl removes every candidate at once; this is imageprune at the same width.
        f"imageprune prune --concurrency {args.images}": [*ours, "--concurrency", str(args.images)],
        "crictl rmi --prune": [
            *_node.crictl(),
            "--runtime-endpoint",
            "{endpoint}",
            "rmi",
            "--prune",
        ],
    }
    print(f"prune {args.images} unused images, containerd {args.flavour}, {args.rounds} rounds")
    medians = bench_prune(args.flavour, args.images, args.rounds, contenders)
    peer = medians["crictl rmi --prune"]
    for name, median in medians.items():
        ratio = "" if name.startswith("crictl") else f"  ratio to crictl {median / peer:.2f}"
        print(f"{name:<40} median {median:.2f}s{ratio}")
    print("goal: ratio <= 1.2 (start-up included; the agent alone: bench/node_prune.py)")
    print_planner(*planner_size)


if __name__ == "__main__":
    main()
