"""Benchmark: idle memory (VmRSS) of `imageprune agent` on a node with 1,000 images,
next to peers measured in the same run: a bare `import kopf` process, and a minimal
kopf operator watching the same ImagePruneTasks (what the agent would cost if it were
built on kopf). Goal: the agent under 64 MiB idle.

The agent runs against a real kube-apiserver and a real containerd holding N unused
images. It first completes one dry run over all of them (so everything it keeps after
a run is in memory), then idles with usage records every --usage-interval; RSS is
sampled during that idle time. Needs root and the binaries from hack/testbin.sh.

    python bench/agent_memory.py [--images 1000] [--flavour 2.x] [--seconds 20] [--smoke]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from imageprune.api.policy import Mode
from testkit import agent as agent_kit
from testkit import binaries, crds, oci
from testkit import containerd as containerd_kit
from testkit.kube import ControlPlane

MIB = 1024 * 1024

KOPF_WATCHER = textwrap.dedent(
    """
    import kopf
    {imports}

    @kopf.on.event("imageprune.io", "v1alpha1", "imageprunetasks")
    def seen(**_):
        pass
    """
)


def rss(pid: int) -> int:
    """Resident set size in bytes, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def sample(pid: int, seconds: float) -> tuple[float, float]:
    """(median, max) RSS in MiB over `seconds`, sampled twice a second."""
    values = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        values.append(rss(pid) / MIB)
        time.sleep(0.5)
    return statistics.median(values), max(values)


def peer(
    argv: list[str], *, settle: float, seconds: float, env: dict[str, str], log: Path
) -> tuple[float, float]:
    with log.open("wb") as out:
        process = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **env}
        )
        try:
            time.sleep(settle)
            if process.poll() is not None:
                raise RuntimeError(f"exited with {process.returncode}: see {log}")
            return sample(process.pid, seconds)
        finally:
            process.terminate()
            process.wait(timeout=30)


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="ipb-agent-"))
    try:
        measure(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def measure(work: Path) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--flavour", choices=containerd_kit.FLAVOURS, default="2.x")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument(
        "--smoke", action="store_true", help="10 images, 1 s samples, one peer: does it run"
    )
    args = parser.parse_args()
    if args.smoke:
        args.images, args.seconds = 10, 1.0
    apiserver = binaries.require_binary("kube-apiserver")
    plane = ControlPlane(
        work / "kube",
        etcd=binaries.require_binary("etcd"),
        apiserver=apiserver,
        kubectl=binaries.require_binary("kubectl", dirs=[apiserver.parent]),
    )
    (work / "kube").mkdir()
    with plane, containerd_kit.running(args.flavour) as node, crds.installed(plane):
        started = time.monotonic()
        node.add_images(
            *(
                oci.ImageSpec(repo_tags=(f"docker.io/bench/app{i}:1",), payload_size=256)
                for i in range(args.images)
            )
        )
        print(f"{args.images} images imported in {time.monotonic() - started:.0f}s", flush=True)
        with agent_kit.AgentProcess(
            plane, node, node_name="bench-node", workdir=work / "agent", usage_interval="5s"
        ) as agent:
            name = agent_kit.create_task(
                plane,
                policy="bench",
                node="bench-node",
                run_id="r1",
                selection={"unusedFor": "0s"},
                mode=Mode.DRY_RUN,
            )
            task = agent_kit.wait_for_run(plane, agent, name, "r1", timeout=300)
            seen = task["status"]["report"]["imagesSeen"]
            assert agent.process is not None
            pid = agent.process.popen.pid
            time.sleep(1 if args.smoke else 6)  # a usage record (every 5 s) after the run
            ours = sample(pid, args.seconds)
        env = {"KUBECONFIG": str(plane.kubeconfig_path), "PYTHONPATH": agent_kit.import_path()}
        kopf_run = [sys.executable, "-m", "kopf", "run", "--standalone", "--all-namespaces"]
        peers: dict[str, list[str]] = {
            "python -c 'import kopf'": [sys.executable, "-c", "import kopf, time; time.sleep(3600)"]
        }
        # The kopf operators take seconds each to settle: a smoke run skips them.
        for label, imports in (
            ()
            if args.smoke
            else (
                ("kopf operator, same watch", ""),
                # What an agent built on kopf would weigh at least: the same watch, and the
                # same engine, CRI client and metrics loaded.
                (
                    "kopf operator + agent's imports",
                    "import imageprune.node.service, imageprune.node.report, prometheus_client",
                ),
            )
        ):
            script = work / f"kopf_{len(peers)}.py"
            script.write_text(KOPF_WATCHER.format(imports=imports))
            peers[label] = [*kopf_run, str(script)]
        measured = {"imageprune agent": ours}
        for label, argv in peers.items():
            try:
                measured[label] = peer(
                    argv,
                    settle=2 if args.smoke else 8,
                    seconds=args.seconds,
                    env=env,
                    log=work / f"{len(measured)}.log",
                )
            except RuntimeError as err:
                print(f"peer {label!r} did not run: {err}")
    print(f"idle RSS, containerd {args.flavour}, {seen} images seen by the agent's dry run")
    for label, (median, peak) in measured.items():
        print(f"{label:<34} median {median:6.1f} MiB  max {peak:6.1f} MiB")
    print(f"goal: agent under 64 MiB ({'met' if ours[1] < 64 else 'NOT met'})")


if __name__ == "__main__":
    main()
