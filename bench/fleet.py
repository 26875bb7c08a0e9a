"""Benchmark: the operator on a fleet of 1,000 to 10,000 nodes, next to a bare client.

Against a real kube-apiserver (tests/testkit), with no runtime: bench/fleetkit/loadgen.py
writes the Node objects and plays the agents. At each size, on a fresh control plane:
- peer: one plain client writes N tasks, one after the other (what the operator's pass
  does), then one DeleteCollection removes them;
- cold: the operator starts with the N nodes present, a DryRun policy
  (maxConcurrentNodes 100%) is created 3 s later; time until every task exists, and until
  the policy status says the run completed; the operator's requests per node (the
  apiserver's apiserver_request_total, less the bench's own requests) and its peak RSS;
- delete: the policy with its N tasks is deleted (time, requests, 429s);
- warm: the same policy again, the operator up;
- start: the operator stopped, the policy created, the operator started: time until
  every task exists (its start-up plus a fan-out, next to the warm fan-out alone);
- start alone (in the cold and the start phases): from the operator's launch until it
  logs that every Node and task is listed and indexed.
At --extras-size (5,000) also: waves (maxConcurrentNodes 25%, 1% of nodes failing
within a 5% failure budget) until the run completes; relabelling 1,000 nodes out of the
selector; a restart mid-fan-out; two operators at once (the second should stand by behind
the leader's Lease: duplicates, 409s, requests, lease renewals included).
A share of nodes (--unable, 1%) is NotReady and as many have no agent pod (issue 13:
they are skipped; the operator watches the agent pods).

Prints a table, writes the figures as JSON (--save) and a plot (--plot, an SVG drawn
here, with a saved earlier run such as the pre-fix operator as --compare). Figures are
printed, never asserted. Needs root and the binaries from hack/testbin.sh.

    python bench/fleet.py [--sizes 1000,5000,10000] [--extras-size 5000]
    python bench/fleet.py --smoke      # tiny, seconds
    python bench/fleet.py --operator-path /work/main/operator   # another operator tree
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "bench")]

from fleetkit import loadgen, measure, plot

from imageprune.api import names
from imageprune.kube import config as kube_config
from imageprune.kube import resources
from imageprune.kube.client import Client
from imageprune.kube.errors import Unreachable
from testkit import binaries, crds
from testkit import cluster as cluster_kit
from testkit.kube import ControlPlane

# Raised so that the apiserver, not its admission limits, is what the bench measures.
APISERVER_FLAGS = {"max-requests-inflight": "1600", "max-mutating-requests-inflight": "800"}
AGENT_NAMESPACE, AGENT_LABELS = "imageprune", {"app.kubernetes.io/component": "agent"}
SELECTOR = {"imageprune-bench/fleet": "in"}
TIMEOUT = 900.0  # bounds a hang only


def policy(name: str, *, concurrent: str = "100%", failed: str | None = None) -> dict[str, Any]:
    rollout: dict[str, Any] = {"maxConcurrentNodes": concurrent}
    if failed is not None:
        rollout["maxFailedNodes"] = failed
    return cluster_kit.policy(
        name, mode="DryRun", nodeSelector={"matchLabels": SELECTOR}, rollout=rollout
    )


class Fleet:
    """One control plane with N nodes, the agents, and the operator process(es)."""

    def __init__(self, plane: ControlPlane, client: Client, size: int, args: Any) -> None:
        self.plane, self.client, self.size, self.args = plane, client, size, args
        self.bench_requests = loadgen.counted(client)
        self.nodes = [f"node-{i:05d}" for i in range(size)]
        share = max(1, round(size * args.unable)) if args.unable else 0
        self.not_ready = set(self.nodes[1 : 1 + share * 7 : 7])
        self.agentless = set(self.nodes[3 : 3 + share * 7 : 7])
        self.agents = loadgen.Agents(client, silent=self.not_ready | self.agentless)
        self.operators: list[cluster_kit.OperatorProcess] = []
        self.workdir = plane.workdir

    async def setup(self) -> None:
        await loadgen.create_nodes(
            self.client, self.nodes, labels=SELECTOR, not_ready=self.not_ready
        )
        self.plane.kubectl("create", "namespace", AGENT_NAMESPACE)
        working = [n for n in self.nodes if n not in self.agentless]
        await loadgen.create_agent_pods(
            self.client, working, namespace=AGENT_NAMESPACE, labels=AGENT_LABELS
        )
        self.watching = asyncio.create_task(self.agents.run())

    def start_operator(self) -> cluster_kit.OperatorProcess:
        selector = ",".join(f"{k}={v}" for k, v in AGENT_LABELS.items())
        extra = [f"--agent-namespace={AGENT_NAMESPACE}", f"--agent-selector={selector}"]
        process = cluster_kit.OperatorProcess(
            self.plane,
            self.workdir,
            interval=self.args.interval,
            extra_args=extra if self.args.unable else (),
        )
        self.operators.append(process)
        return process

    def stop_operators(self) -> None:
        while self.operators:
            self.operators.pop().stop()

    def tasks_of(self, name: str) -> int:
        return sum(1 for t in self.agents.tasks if t.startswith(f"{name}."))

    @property
    def matched(self) -> int:
        return self.size - len(self.not_ready) - len(self.agentless)

    async def until(self, what: str, done: Callable[[], bool | Awaitable[bool]]) -> float:
        """Seconds until `done()`; polls every 0.1 s."""
        started = time.monotonic()
        while True:
            answer = done()
            if not isinstance(answer, bool):
                answer = await answer
            if answer:
                return time.monotonic() - started
            if time.monotonic() - started > TIMEOUT:
                raise SystemExit(f"fleet bench: timed out waiting for {what}")
            await asyncio.sleep(0.1)

    async def completed(self, name: str) -> bool:
        """The policy status says its run completed."""
        body = await self.client.get(resources.Policy, name)
        run = (body.get("status") or {}).get("run") or {}
        return "completionTime" in run

    async def create_policy(self, body: Mapping[str, Any]) -> None:
        await self.client.create(resources.Policy.from_dict(dict(body)))

    async def delete_policy(self, name: str) -> float:
        await self.client.delete(resources.Policy, name)

        async def gone() -> bool:
            try:
                await self.client.get(resources.Policy, name)
            except Exception:  # 404: the finalizer ran
                return self.tasks_of(name) == 0
            return False

        return await self.until(f"policy {name} gone", gone)

    @contextlib.contextmanager
    def counting(self, into: dict[str, Any], operator: bool = True) -> Iterator[None]:
        """The operator's requests over the block (the apiserver's count less ours, the
        agents' included), their 429s, and the peak RSS of the operators."""
        before, ours = measure.requests(self.plane), sum(self.bench_requests.values())
        yield
        counts = measure.delta(measure.requests(self.plane), before)
        mine = sum(self.bench_requests.values()) - ours
        into["requests"] = sum(counts.values()) - mine
        into["per_node"] = round(into["requests"] / self.size, 3)
        into["throttled"] = measure.throttled(counts)
        into["conflicts"] = sum(v for k, v in counts.items() if k[0] == "POST" and k[3] == "409")
        if operator:
            into["peak_rss_mib"] = round(
                max(measure.memory_mib(p._process.popen.pid)[1] for p in self.operators), 1
            )


async def run_size(size: int, args: Any, workdir: Path) -> dict[str, Any]:
    plane = ControlPlane(
        workdir,
        etcd=binaries.require_binary("etcd"),
        apiserver=binaries.require_binary("kube-apiserver"),
        kubectl=binaries.require_binary("kubectl"),
        apiserver_flags=APISERVER_FLAGS,
    )
    with plane, crds.installed(plane):
        client = Client(kube_config.load(str(plane.kubeconfig_path)))
        fleet = Fleet(plane, client, size, args)
        try:
            return await measure_fleet(fleet, args, extras=size == args.extras_size)
        finally:
            fleet.stop_operators()
            fleet.watching.cancel()
            await client.close()


async def measure_peer(fleet: Fleet) -> dict[str, Any]:
    """The bare client writes the N tasks, then one DeleteCollection removes them."""
    peer: dict[str, Any] = {}
    started = time.monotonic()
    await loadgen.bare_client(fleet.client, fleet.size, policy="peer")
    peer["write_s"] = time.monotonic() - started
    started = time.monotonic()
    # At 10,000 tasks one DeleteCollection can outlast the client's 30 s deadline; the
    # next one takes what the first did not reach.
    while True:
        try:
            await fleet.client.delete_collection(
                resources.Task, labels={names.POLICY_LABEL: "peer"}
            )
            break
        except Unreachable:
            print("  DeleteCollection of the peer's tasks cut off at 30 s; again", flush=True)
    await fleet.until("the peer's tasks gone", lambda: fleet.tasks_of("peer") == 0)
    peer["delete_s"] = time.monotonic() - started
    return peer


async def measure_fleet(fleet: Fleet, args: Any, *, extras: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"nodes": fleet.size, "skipped": fleet.size - fleet.matched}
    await fleet.setup()
    await fleet.until("the agents' listing", lambda: fleet.agents.listed)

    out["peer"] = await measure_peer(fleet)

    cold: dict[str, Any] = {}
    with fleet.counting(cold):
        launched, launched_at = time.monotonic(), time.time()
        operator = fleet.start_operator()
        await asyncio.sleep(3)
        await fleet.create_policy(policy("fleet"))
        cold["tasks_s"] = await fleet.until(
            "tasks", lambda: fleet.tasks_of("fleet") >= fleet.matched
        )
        cold["done_s"] = cold["tasks_s"] + await fleet.until(
            "status", lambda: fleet.completed("fleet")
        )
        cold["from_start_s"] = time.monotonic() - launched
    cold["start_s"] = listed_after(operator, launched_at)
    out["cold"] = cold

    deleted: dict[str, Any] = {}
    with fleet.counting(deleted):
        deleted["s"] = await fleet.delete_policy("fleet")
    out["delete"] = deleted

    warm: dict[str, Any] = {}
    with fleet.counting(warm):
        await fleet.create_policy(policy("fleet"))
        warm["tasks_s"] = await fleet.until(
            "tasks", lambda: fleet.tasks_of("fleet") >= fleet.matched
        )
        warm["done_s"] = warm["tasks_s"] + await fleet.until(
            "status", lambda: fleet.completed("fleet")
        )
    out["warm"] = warm

    await fleet.delete_policy("fleet")
    fleet.stop_operators()
    restart: dict[str, Any] = {}
    await fleet.create_policy(policy("fleet"))
    with fleet.counting(restart):
        launched_at = time.time()
        operator = fleet.start_operator()
        restart["tasks_s"] = await fleet.until(
            "tasks", lambda: fleet.tasks_of("fleet") >= fleet.matched
        )
    restart["start_s"] = listed_after(operator, launched_at)
    out["start"] = restart
    await fleet.delete_policy("fleet")

    if extras:
        out |= await measure_extras(fleet, operator)
    return out


def listed_after(operator: cluster_kit.OperatorProcess, launched_at: float) -> float | None:
    """Seconds from the operator's launch until it logged the end of its start's
    listings (every Node and task indexed): the start alone."""
    for line in operator.log_lines():
        if " nodes and " in line and "listed " in line:
            stamp = json.loads(line)["timestamp"]
            return datetime.datetime.fromisoformat(stamp).timestamp() - launched_at
    return None


async def measure_extras(fleet: Fleet, operator: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    waves: dict[str, Any] = {}
    fleet.agents.failing = set(fleet.nodes[5::100])  # 1%
    with fleet.counting(waves):
        await fleet.create_policy(policy("waves", concurrent="25%", failed="5%"))
        waves["done_s"] = await fleet.until("the waves", lambda: fleet.completed("waves"))
    out["waves"] = waves

    relabel: dict[str, Any] = {"nodes": min(1000, fleet.size // 5)}
    moved = [n for n in fleet.nodes if n not in fleet.agents.silent][: relabel["nodes"]]
    before = fleet.tasks_of("waves")
    with fleet.counting(relabel):
        started = time.monotonic()
        await loadgen.relabel_nodes(fleet.client, moved, {next(iter(SELECTOR)): "out"})
        relabel["label_s"] = time.monotonic() - started
        relabel["s"] = await fleet.until(
            "the relabelled nodes' tasks gone",
            lambda: fleet.tasks_of("waves") <= before - relabel["nodes"],
        )
    out["relabel"] = relabel
    await loadgen.relabel_nodes(fleet.client, moved, SELECTOR)
    await fleet.delete_policy("waves")
    fleet.agents.failing = ()

    for case, twice in (("restart", False), ("two-operators", True)):
        out[case] = await duplicates(fleet, case, twice=twice)
        await fleet.delete_policy(case)
    return out


async def duplicates(fleet: Fleet, case: str, *, twice: bool) -> dict[str, Any]:
    """A fan-out with an operator restarted halfway, or with two operators at once."""
    result: dict[str, Any] = {}
    if twice:
        fleet.start_operator()
    created = fleet.agents.created
    with fleet.counting(result):
        await fleet.create_policy(policy(case))
        if not twice:
            await fleet.until("half the tasks", lambda: fleet.tasks_of(case) >= fleet.matched // 2)
            await asyncio.to_thread(fleet.operators[-1].restart)
        result["tasks_s"] = await fleet.until(
            "tasks", lambda: fleet.tasks_of(case) >= fleet.matched
        )
        result["done_s"] = result["tasks_s"] + await fleet.until(
            "status", lambda: fleet.completed(case)
        )
    result["tasks_created"] = fleet.agents.created - created
    if twice:  # the second stood by behind the Lease: it should have written nothing
        result["second_stood_by"] = any(
            "standby:" in line for line in fleet.operators[-1].log_lines()
        )
    return result


def table(results: list[dict[str, Any]]) -> str:
    rows = [
        "| nodes | bare client | cold: tasks / status | ratio | warm tasks | start alone"
        " | start + tasks | requests/node | peak RSS | delete policy (requests) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        peer, cold = r["peer"]["write_s"], r["cold"]
        rows.append(
            f"| {r['nodes']:,} | {peer:.1f} s | {cold['tasks_s']:.1f} / {cold['done_s']:.1f} s"
            f" | {cold['tasks_s'] / peer:.2f}x | {r['warm']['tasks_s']:.1f} s"
            f" | {_seconds(cold.get('start_s'))} / {_seconds(r['start'].get('start_s'))}"
            f" | {r['start']['tasks_s']:.1f} s | {cold['per_node']:.2f}"
            f" | {cold['peak_rss_mib']:.0f} MiB"
            f" | {r['delete']['s']:.1f} s ({r['delete']['requests']},"
            f" 429s: {r['delete']['throttled']}) |"
        )
    return "\n".join(rows)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sizes", default="1000,5000,10000")
    parser.add_argument("--extras-size", type=int, default=5000)
    parser.add_argument("--unable", type=float, default=0.01, help="share NotReady, and agent-less")
    parser.add_argument("--interval", type=float, default=10.0, help="the operator's --interval")
    parser.add_argument("--operator-path", help="run the operator from this source tree")
    parser.add_argument("--save", type=Path, help="write the figures here as JSON")
    parser.add_argument("--plot", type=Path, help="write an SVG plot here")
    parser.add_argument("--compare", type=Path, help="a --save of another run, for the plot")
    parser.add_argument("--label", default="operator", help="this run's name in the plot")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, seconds")
    args = parser.parse_args(argv)
    if args.smoke:
        args.sizes, args.extras_size = "20", 20
    try:
        sizes = [int(s) for s in args.sizes.split(",")]
    except ValueError:
        parser.error(f"--sizes: not a list of numbers: {args.sizes!r}")
    if any(size < 10 for size in sizes):
        parser.error("--sizes: at least 10 nodes each")
    if args.operator_path:
        os.environ["PYTHONPATH"] = os.pathsep.join(
            [args.operator_path, os.environ.get("PYTHONPATH", "")]
        )
    results = []
    with tempfile.TemporaryDirectory(prefix="fleet-bench-") as tmp:
        for size in sizes:
            print(f"--- {size:,} nodes", flush=True)
            result = asyncio.run(run_size(size, args, Path(tmp) / str(size)))
            print(json.dumps(result), flush=True)
            results.append(result)
    print(table(results))
    if args.save:
        args.save.write_text(json.dumps({"label": args.label, "results": results}, indent=1))
    if args.plot:
        runs = [{"label": args.label, "results": results}]
        if args.compare:
            runs.append(json.loads(args.compare.read_text()))
        args.plot.write_text(plot.svg(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
