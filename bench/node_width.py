"""Benchmark: how a prune's removal width slows the calls kubelet makes.

While a prune of N unused images runs, a separate process plays kubelet on the same
containerd: in a loop it calls ListContainers, ImageStatus (of an image in use) and
CreateContainer (in a running pod sandbox; each container is removed again), and
records each call's latency. Prints, per contender, the prune's time and the p50 and
p99 latency of each call made during it: the agent's engine at each width (0:
unbounded, every removal at once), `crictl rmi --prune`, and the same calls on an
idle node. Each contender gets a fresh containerd; contenders alternate order between
rounds. Needs root and the binaries from hack/testbin.sh.

    python bench/node_width.py [--images 500] [--widths 1,16,64,default,0] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import multiprocessing
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import _node

from imageprune_cri._pb import api_pb2
from testkit import containerd as containerd_kit

CALLS = ("ListContainers", "ImageStatus", "CreateContainer")
IN_USE = "docker.io/bench/kubelet:1"

Sample = tuple[float, str, float]  # (started, call, seconds)


def play_kubelet(flavour: str, workdir: str, sandbox: tuple[str, str], out: Path) -> None:
    """The kubelet stand-in (a process of its own, so it does not share the prune's
    interpreter): call in a loop, touching `<out>.ready` after the first round, until
    the file `<out>.stop` appears; then write the samples to `out`."""
    node = containerd_kit.ContainerdNode(containerd_kit.flavour(flavour), Path(workdir))
    samples: list[Sample] = []
    stop = out.with_suffix(".stop")

    def timed(call: str, do: Callable[[], object]) -> object:
        start = time.monotonic()
        result = do()
        samples.append((start, call, time.monotonic() - start))
        return result

    listing = api_pb2.ListContainersRequest()
    n = 0
    while not stop.exists():
        n += 1
        timed("ListContainers", lambda: node.runtime.ListContainers(listing, timeout=60))
        timed("ImageStatus", lambda: node.image_id_of(IN_USE))
        created = timed(
            "CreateContainer",
            functools.partial(
                node.create_container, *sandbox, name=f"k{n}", image=IN_USE, start=False
            ),
        )
        node.remove_container(str(created))
        out.with_suffix(".ready").touch()
    out.write_text("\n".join(f"{s} {c} {d}" for s, c, d in samples))


def _wait_for(ready: Path, child: multiprocessing.process.BaseProcess) -> None:
    deadline = time.monotonic() + 120
    while not ready.exists():
        if not child.is_alive() or time.monotonic() > deadline:
            raise SystemExit(f"the kubelet stand-in never got going (exit {child.exitcode})")
        time.sleep(0.05)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(
    flavour: str,
    count: int,
    prune: Callable[[_node.Node], object] | float,
    work: Path,
) -> tuple[float, dict[str, list[float]]]:
    """(prune seconds, call -> latencies of the calls started while it ran). A
    number instead of a prune: the node idles for that many seconds."""
    node = _node.fresh_node(flavour, count)
    try:
        node.add_image(repo_tags=[IN_USE], seed="kubelet")
        sandbox = node.run_sandbox("kubelet")
        node.create_container(sandbox, "kubelet", name="user", image=IN_USE, start=False)
        out = work / f"samples-{time.monotonic_ns()}.txt"
        child = multiprocessing.get_context("spawn").Process(
            target=play_kubelet, args=(flavour, str(node.dir), (sandbox, "kubelet"), out)
        )
        child.start()
        _wait_for(out.with_suffix(".ready"), child)  # its interpreter up and calling
        began = time.monotonic()
        if isinstance(prune, float):
            time.sleep(prune)
        else:
            prune(node)
        ended = time.monotonic()
        out.with_suffix(".stop").touch()
        child.join(timeout=120)
        if child.exitcode != 0:
            raise SystemExit(f"the kubelet stand-in failed (exit {child.exitcode})")
        # The sandbox image and the one in use stay.
        if not isinstance(prune, float) and (left := len(node.image_ids()) - 2):
            raise SystemExit(f"{left} unused images left: not a fair comparison")
    finally:
        node.stop()
    latencies: dict[str, list[float]] = {call: [] for call in CALLS}
    for line in out.read_text().splitlines():
        started, call, seconds = line.split()
        if began <= float(started) <= ended:
            latencies[call].append(float(seconds))
    return ended - began, latencies


def contenders(
    widths: list[int | None], count: int, idle: float
) -> dict[str, Callable[[_node.Node], object] | float]:
    timed: dict[str, Callable[[_node.Node], object] | float] = {
        "idle node (no prune)": idle,
        "crictl rmi --prune": _node.time_crictl,
    }
    for width in widths:
        timed[_node.width_name(width, count)] = lambda node, w=width: asyncio.run(
            _node.agent_prune(node, w, count)
        )
    return timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument(
        "--widths",
        default="1,16,64,default,0",
        help="comma-separated; 0: unbounded; default: the agent's own choice",
    )
    _node.add_flags(parser, rounds=2, smoke="5 images, 1 round, unbounded only")
    args = parser.parse_args()
    if args.smoke:
        args.images, args.rounds, args.widths = 5, 1, "0"
    timed = contenders(_node.parse_widths(args.widths), args.images, 0.5 if args.smoke else 2.0)
    count, rounds = args.images, args.rounds
    seconds: dict[str, list[float]] = {name: [] for name in timed}
    calls: dict[str, dict[str, list[float]]] = {name: {c: [] for c in CALLS} for name in timed}
    with tempfile.TemporaryDirectory(prefix="ipb-width-") as work:
        for r, name in _node.alternating(list(timed), rounds):
            took, latencies = measure(args.flavour, count, timed[name], Path(work))
            seconds[name].append(took)
            for call, values in latencies.items():
                calls[name][call].extend(values)
            print(f"  round {r + 1} {name}: {took:.2f}s", flush=True)
    print(f"kubelet's calls during a prune of {count} images, containerd {args.flavour}")
    print("(latency in ms, p50 / p99 over every call started during the prune, all rounds)")
    print(f"{'':<30} {'prune':>7}  " + "  ".join(f"{c:>21}" for c in CALLS))
    for name in timed:
        cells = []
        for call in CALLS:
            values = calls[name][call]
            cells.append(
                f"{percentile(values, 0.5) * 1000:6.1f} / {percentile(values, 0.99) * 1000:6.1f}"
                f" n={len(values):<3}"
                if values
                else f"{'no call':>21}"
            )
        print(f"{name:<30} {statistics.median(seconds[name]):6.2f}s  " + "  ".join(cells))


if __name__ == "__main__":
    main()
