"""Benchmark: a prune run inside the long-lived agent (no interpreter start-up, every
safety check on) against `crictl rmi --prune`, at several node sizes.

For each size, each round starts a fresh containerd per contender, imports the same N
unused images and times one prune. Rounds alternate the contenders' order so drift on
the (shared) machine hits all of them. Prints the median per contender and its ratio
to crictl (goal: <= 1.0 at 500 images). Needs root and the binaries from
hack/testbin.sh.

    python bench/node_prune.py [--images 100,500,2000,5000] [--widths default,64,0]
        [--rounds 3] [--flavour 2.x]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
from collections.abc import Callable

import _node


def contenders(
    widths: list[int | None], count: int
) -> dict[str, Callable[[_node.Node, int], float]]:
    """name -> (fresh node, image count) -> seconds."""
    timed: dict[str, Callable[[_node.Node, int], float]] = {
        "crictl rmi --prune": lambda node, _count: _node.time_crictl(node)
    }
    for width in widths:
        timed[_node.width_name(width, count)] = lambda node, count, w=width: asyncio.run(
            _node.agent_prune(node, w, count)
        )
    return timed


def bench_size(flavour: str, count: int, rounds: int, widths: list[int | None]) -> dict[str, float]:
    timed = contenders(widths, count)
    times: dict[str, list[float]] = {name: [] for name in timed}
    for r, name in _node.alternating(list(timed), rounds):
        node = _node.fresh_node(flavour, count)
        try:
            times[name].append(timed[name](node, count))
            _node.check_empty(node, name)
        finally:
            node.stop()
        print(f"  {count} images, round {r + 1}, {name}: {times[name][-1]:.2f}s", flush=True)
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", default="500", help="comma-separated sizes")
    parser.add_argument(
        "--widths",
        default="default,64,0",
        help="comma-separated removal widths for the agent (0: unbounded, like crictl; "
        "default: the agent's own choice for the node's size)",
    )
    _node.add_flags(parser, rounds=3, smoke="5 images, 1 round")
    args = parser.parse_args()
    sizes = [5] if args.smoke else [int(s) for s in args.images.split(",")]
    rounds = 1 if args.smoke else args.rounds
    widths = _node.parse_widths(args.widths)
    print(f"agent prune vs crictl, containerd {args.flavour}, median of {rounds} rounds")
    table = {count: bench_size(args.flavour, count, rounds, widths) for count in sizes}
    for count, medians in table.items():
        peer = medians["crictl rmi --prune"]
        for name, median in medians.items():
            ratio = "" if name.startswith("crictl") else f"  ratio to crictl {median / peer:.2f}"
            print(f"{count:>6} images  {name:<34} median {median:.2f}s{ratio}")
    print("goal: agent ratio <= 1.0 at 500 images")


if __name__ == "__main__":
    main()
