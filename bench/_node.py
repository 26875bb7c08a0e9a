"""What the node benchmarks share: a fresh containerd holding N unused images, a
timed `crictl rmi --prune` on it, and a prune run the way the agent runs one (in a
long-lived process, so no interpreter start-up), with every safety check on.

Not a benchmark itself (bench-smoke.sh skips files starting with `_`)."""

from __future__ import annotations

import argparse
import datetime
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from imageprune.node import executor, service, statelock, usage
from imageprune.policy import selection as policy_selection
from imageprune_cri import CriClient
from testkit import binaries, oci
from testkit import containerd as containerd_kit

FLAVOURS = containerd_kit.FLAVOURS
Node = containerd_kit.ContainerdNode


def fresh_node(flavour: str, count: int) -> Node:
    """A started containerd (own root and socket) holding `count` unused images."""
    node = containerd_kit.ContainerdNode(
        containerd_kit.flavour(flavour), Path(tempfile.mkdtemp(prefix="ipb-", dir="/tmp"))
    )
    node.start()
    try:
        # One archive per 1,000 images: ctr refuses one of more than 10,000 blobs.
        for first in range(0, count, 1000):
            node.add_images(
                *(
                    oci.ImageSpec(repo_tags=(f"docker.io/bench/app{i}:1",), payload_size=4096)
                    for i in range(first, min(first + 1000, count))
                )
            )
    except BaseException:
        node.stop()
        raise
    return node


def crictl() -> list[str]:
    """crictl with our deadline per call (30 s): its own, 2 s, gives up on a loaded
    machine, leaving images behind with exit status 0."""
    return [str(binaries.find_binary("crictl", search_path=False)), "--timeout", "30s"]


def time_command(cmd: list[str]) -> float:
    """Wall time of `cmd` from process start to exit."""
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def time_crictl(node: Node) -> float:
    return time_command([*crictl(), "--runtime-endpoint", node.endpoint, "rmi", "--prune"])


def parse_widths(text: str) -> list[int | None]:
    """--widths: comma-separated numbers, 0 for unbounded (all at once, as crictl
    does), `default` for the agent's own choice (executor.default_width)."""
    return [None if w.strip() == "default" else int(w) for w in text.split(",")]


def width_name(width: int | None, images: int) -> str:
    if width is None:
        return f"agent, default width ({executor.default_width(images)})"
    return f"agent, width {width or 'unbounded'}"


async def agent_prune(node: Node, width: int | None, images: int) -> float:
    """Seconds for one enforcing run over every unused image, `width` removals in
    flight (parse_widths), called as the agent's runner calls it
    (service.prune: observe, plan, re-check, remove). The client is connected before
    the clock starts, as the long-lived agent's is."""
    selection = policy_selection.selection_from_spec({}, unused_for_default=None)
    with tempfile.TemporaryDirectory(prefix="ipb-state-") as temporary:
        state = Path(temporary)
        async with CriClient(node.endpoint) as cri:
            await cri.version()  # the agent's channel is up long before a run
            start = time.perf_counter()
            run = await service.prune(
                cri,
                selection=selection,
                store=usage.UsageStore(state / "usage.json"),
                now=datetime.datetime.now(datetime.UTC),
                dry_run=False,
                concurrency=None if width is None else width or max(images, 1),
                lock=statelock.StateLock(state),
            )
            elapsed = time.perf_counter() - start
    if failed := run.report.failed:
        raise SystemExit(f"{len(failed)} removals failed: {failed[0].detail}")
    return elapsed


def check_empty(node: Node, who: str) -> None:
    """Nothing may remain (no sandbox ever ran, so not even a pause image): a tool
    that left images did less work, and the comparison would not be fair."""
    if left := len(node.image_ids()):
        raise SystemExit(f"{who} left {left} images: not a fair comparison")


def add_flags(parser: argparse.ArgumentParser, *, rounds: int, smoke: str) -> None:
    """--rounds, --flavour and --smoke (`smoke`: what a smoke run shrinks to)."""
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument("--flavour", choices=FLAVOURS, default="2.x")
    parser.add_argument("--smoke", action="store_true", help=f"{smoke}: does it run")


def alternating(contenders: Sequence[str], rounds: int) -> Iterator[tuple[int, str]]:
    """(round, contender), the order reversed every other round so that drift on the
    (shared) machine hits every contender alike."""
    for r in range(rounds):
        for name in contenders if r % 2 == 0 else reversed(contenders):
            yield r, name
