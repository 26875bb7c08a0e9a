"""The README's demo: the whole system on this machine, as a user runs it.

A control plane with one real node (kubelet, scheduler and controller-manager on a
containerd 2.x of ours) and simulated nodes (each its own containerd and `imageprune
agent`; see demo_simnode.py); imageprune installed with `helm install` of
charts/imageprune; images, running and exited containers on every node; then the
sample policy deploy/samples/ci-runners-keep-last-3.yaml in DryRun and in Enforce, and
what each run did. Everything is removed at the end, on Ctrl-C too, and the host is
left as it was. Run through hack/demo.sh, which installs what is missing first.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import demo_show
import demo_simnode
import pytest
import yaml

from testkit import binaries, chart, oci, realnode
from testkit import image as image_kit
from testkit.containerd import ContainerdNode
from testkit.kube import ControlPlane

STATE = Path("/run/imageprune-demo.json")  # pid and workdir of the running demo
READY = Path("/run/imageprune-demo.ready")  # hack/demo.sh --keep returns once it exists
SAMPLE = binaries.REPO_ROOT / "deploy" / "samples" / "ci-runners-keep-last-3.yaml"
NAMESPACE = RELEASE = "imageprune"
POOL = {"node-pool": "ci-runners"}  # the sample policy's nodeSelector
REGISTRY = "registry.imageprune.test/demo"
WEB_IMAGE = f"{REGISTRY}/web:1"  # the Deployment's: explained as kept, in use
DAY = datetime.timedelta(days=1)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="hack/demo.sh",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
        epilog="Needs root and Debian 12. The first run builds the test binaries "
        "(about 20 min) and the image; after that a run takes about 1.5 minutes "
        "(--short: 1.2).",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="leave everything running at the end and print the kubeconfig to use and "
        "the command that stops it",
    )
    parser.add_argument(
        "--short",
        action="store_true",
        help="one simulated node and fewer images (what CI runs)",
    )
    parser.add_argument(
        "--simulated-nodes",
        type=int,
        choices=range(4),
        metavar="0-3",
        help="how many simulated nodes next to the real one (default 2, --short 1)",
    )
    parser.add_argument(
        "--stop", action="store_true", help="stop a demo left running by --keep (hack/demo.sh)"
    )
    return parser.parse_args(argv)


# ---- output -----------------------------------------------------------------------

_started = time.monotonic()


def step(text: str) -> None:
    print(f"\n==> [{time.monotonic() - _started:5.1f}s] {text}", flush=True)


def wait(what: str, probe: Callable[[], Any], timeout: float = 180.0) -> Any:
    """Poll until `probe` returns something true; a clear error after `timeout`."""
    deadline = time.monotonic() + timeout
    while not (found := probe()):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not within {timeout:.0f}s")
        time.sleep(0.5)
    return found


# ---- the cluster ------------------------------------------------------------------


def install(node: realnode.RealNode, workdir: Path) -> None:
    """`helm install` as docs/install.md says, with what differs from a stock node: the
    runtime's socket and root, no registry to pull from, a quick operator pass."""
    plane = node.plane
    values = {
        "image": {"pullPolicy": "Never"},
        "crds": {"upgrade": False},  # its hook's kubectl image cannot be pulled here
        "operator": {"interval": 2},
        "agent": {
            "runtime": {"socketPath": str(node.runtime.socket)},
            "imageFilesystem": str(node.runtime.dir / "root"),
            "stateDir": str(workdir / "imageprune-state"),
            "usageInterval": "2s",
        },
    }
    values_file = workdir / "values.yaml"
    values_file.write_text(yaml.safe_dump(values))
    print(values_file.read_text().rstrip())
    demo_show.kubectl(plane, ["create", "namespace", NAMESPACE])
    demo_show.kubectl(
        plane, ["label", "namespace", NAMESPACE, "pod-security.kubernetes.io/enforce=privileged"]
    )
    helm = chart.Helm(binaries.require_binary("helm"), workdir, plane.kubeconfig_path)
    args = ["install", RELEASE, "charts/imageprune", f"--namespace={NAMESPACE}"]
    print(f"\n$ helm {' '.join(args)} --values values.yaml --wait", flush=True)
    args[2] = str(chart.CHART)
    out = helm.run(*args, f"--values={values_file}", "--wait", "--timeout=180s", timeout=240)
    print(out.stdout.split("NOTES:")[0].rstrip(), flush=True)


def agents_ready(plane: ControlPlane, nodes: list[str]) -> bool:
    pods = plane.get("pods", "-n", NAMESPACE, "-l", "app.kubernetes.io/component=agent")
    ready = {
        p["spec"].get("nodeName")
        for p in pods["items"]
        if any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in p["status"].get("conditions", [])
        )
    }
    return set(nodes) <= ready


def images(short: bool, *, pinned: bool) -> list[oci.ImageSpec]:
    """Five (four) builds of one app, newest last; an excluded image; a leftover layer;
    one pinned on containerd 2.x (1.6 never reports pins); the workloads' images."""
    now = datetime.datetime.now(datetime.UTC)
    builds = 4 if short else 5
    specs = [
        oci.ImageSpec(
            repo_tags=(f"{REGISTRY}/app:v{n}",),
            created=now - (builds - n + 1) * 10 * DAY,
            payload_size=2_000_000,
        )
        for n in range(1, builds + 1)
    ]
    specs += [
        oci.ImageSpec(repo_tags=("registry.k8s.io/kube-proxy:v1.36.3",)),
        oci.ImageSpec(seed="leftover-build-layer", dangling=True, payload_size=3_000_000),
        oci.ImageSpec(repo_tags=(f"{REGISTRY}/web:1",)),
        oci.ImageSpec(repo_tags=(f"{REGISTRY}/job:1",)),
    ]
    if pinned:
        specs.append(oci.ImageSpec(repo_tags=(f"{REGISTRY}/pinned:1",)))
    return specs


def load_real(node: realnode.RealNode, short: bool) -> None:
    """Images, and real pods: a Deployment (running) and a completed Job (exited)."""
    node.runtime.add_images(*images(short, pinned=True))
    node.runtime.pin(f"{REGISTRY}/pinned:1")
    workdir = node.workdir
    manifests = [
        _workload("Deployment", "web", ["/bin/busybox", "sleep", "3600"]),
        _workload("Job", "job", ["/bin/busybox", "true"]),
    ]
    path = workdir / "workloads.yaml"
    path.write_text(yaml.safe_dump_all(manifests))
    print(f"\n$ kubectl apply -f {path}", flush=True)
    print(node.plane.kubectl("apply", "-f", str(path)).stdout.rstrip(), flush=True)
    node.plane.kubectl("rollout", "status", "deployment/web", "--timeout=120s", timeout=150)
    node.plane.kubectl("wait", "--for=condition=Complete", "job/job", "--timeout=120s", timeout=150)


def _workload(kind: str, name: str, command: list[str]) -> dict[str, Any]:
    container = {
        "name": name,
        "image": f"{REGISTRY}/{name}:1",
        "imagePullPolicy": "Never",
        "command": command,
    }
    labels = {"app": name}
    template: dict[str, Any] = {
        "metadata": {"labels": labels},
        "spec": {"containers": [container], "terminationGracePeriodSeconds": 0},
    }
    spec: dict[str, Any] = {"template": template}
    if kind == "Job":
        template["spec"]["restartPolicy"] = "Never"
    else:
        spec["selector"] = {"matchLabels": labels}
    api = "batch/v1" if kind == "Job" else "apps/v1"
    return {
        "apiVersion": api,
        "kind": kind,
        "metadata": {"name": name, "namespace": "default"},
        "spec": spec,
    }


def load_simulated(runtime: ContainerdNode, short: bool) -> None:
    """Images, and CRI containers as a kubelet makes them: one running, one exited."""
    pinned = runtime.flavour.name != "1.6"
    runtime.add_images(*images(short, pinned=pinned))
    if pinned:
        runtime.pin(f"{REGISTRY}/pinned:1")
    sandbox = runtime.run_sandbox("web")
    runtime.create_container(sandbox, "web", name="web", image=f"{REGISTRY}/web:1")
    job = runtime.create_container(sandbox, "web", name="job", image=f"{REGISTRY}/job:1")
    runtime.stop_container(job)


# ---- the policy -------------------------------------------------------------------


def policy_file(workdir: Path) -> tuple[str, Path]:
    """The sample, in DryRun, and with images counting as unused at once (they were
    loaded a moment ago; the sample waits a day)."""
    manifest = yaml.safe_load(SAMPLE.read_text())
    manifest["spec"] |= {"mode": "DryRun", "unusedFor": "0s"}
    path = workdir / SAMPLE.name
    path.write_text(yaml.safe_dump(manifest, sort_keys=False))
    print(f"{SAMPLE.relative_to(binaries.REPO_ROOT)}, with mode: DryRun and unusedFor: 0s:")
    print(path.read_text().rstrip())
    return str(manifest["metadata"]["name"]), path


def run_now(plane: ControlPlane, policy: str) -> None:
    """A run now rather than at the schedule's next tick: the plugin asks for it and
    follows it until every node is done."""
    demo_show.kubectl(plane, ["imageprune", "run", policy])


def run_id(plane: ControlPlane, policy: str) -> str | None:
    result = plane.kubectl("get", "ipp", policy, "-o", "jsonpath={.status.run.id}", check=False)
    return result.stdout or None


def wait_run(plane: ControlPlane, policy: str, after: str | None) -> None:
    def done() -> bool:
        run = (plane.get("ipp", policy).get("status") or {}).get("run") or {}
        return bool(run.get("id") != after and (run.get("completionTime") or run.get("paused")))

    try:
        wait(f"a run of policy {policy}", done)
    except RuntimeError as e:
        status = plane.get("ipp", policy).get("status") or {}
        conditions = [
            f"{c['type']}={c['status']} {c.get('message', '')}"
            for c in status.get("conditions", [])
        ]
        raise RuntimeError(f"{e}; the policy says: {'; '.join(conditions) or 'nothing'}") from None


def show(plane: ControlPlane, policy: str) -> None:
    for args in demo_show.status_commands(policy):
        demo_show.kubectl(plane, args)
    demo_show.run_summary(plane, policy)


# ---- lifecycle --------------------------------------------------------------------


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


@contextlib.contextmanager
def state_file(workdir: Path) -> Iterator[None]:
    """One demo at a time: the pid of a running one, for --stop and for the next."""
    if STATE.exists():
        other = json.loads(STATE.read_text())
        if Path(f"/proc/{other['pid']}").exists():
            raise RuntimeError(
                f"a demo is already running (pid {other['pid']}): bash hack/demo.sh --stop"
            )
    READY.unlink(missing_ok=True)  # left by a demo that was killed
    STATE.write_text(json.dumps({"pid": os.getpid(), "workdir": str(workdir)}))
    try:
        yield
    finally:
        STATE.unlink(missing_ok=True)
        READY.unlink(missing_ok=True)


def leave_running(plane: ControlPlane, policy: str, workdir: Path) -> None:
    """--keep: say how to use and stop it, then wait for --stop (SIGTERM)."""
    path = f"{plane.kubectl_bin.parent}:{demo_show.plugin_dir()}"
    print(
        "\nLeft running. To look around:\n"
        f"  export KUBECONFIG={plane.kubeconfig_path} PATH={path}:$PATH\n"
        "  kubectl get nodes,ipp,ipt; kubectl get pods -A\n"
        f"  kubectl imageprune status {policy}\n"
        "To stop it and clean up everything:\n"
        "  bash hack/demo.sh --stop",
        flush=True,
    )
    # From here on nobody reads the terminal (hack/demo.sh has returned).
    log = os.open(workdir / "demo.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(log, 1)
    os.dup2(log, 2)
    READY.touch()
    while True:
        signal.pause()


def demo(args: argparse.Namespace) -> None:
    with contextlib.ExitStack() as stack:
        workdir = Path(tempfile.mkdtemp(prefix="imageprune-demo-", dir="/var/tmp"))
        stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        stack.enter_context(state_file(workdir))
        stack.callback(step, "Cleaning up: every process, mount, temp dir and host change")
        try:
            tour(args, stack, workdir)
        finally:  # a second Ctrl-C must not cut the cleanup short
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)


def tour(args: argparse.Namespace, stack: contextlib.ExitStack, workdir: Path) -> None:
    """Everything the demo shows; what it starts goes on `stack`."""
    simulated = args.simulated_nodes if args.simulated_nodes is not None else 1 if args.short else 2
    demo_show.plugin_dir()  # the demo shows `kubectl imageprune`: missing, it fails first
    step("Starting a control plane and a real node (kubelet, scheduler, controller-manager)")
    print(f"(one real node per machine: waits while a test's holds {realnode.LOCK_PATH})")
    asked = time.monotonic()
    stack.enter_context(realnode.node_lock(timeout=600))
    waited = time.monotonic() - asked
    realnode.preflight()
    archive = image_kit.build()
    node = realnode.RealNode(workdir / "real", "2.x")
    stack.callback(node.stop)
    node.start()
    node.runtime.import_image(archive)
    plane = node.plane
    plane.kubectl("label", "node", realnode.NODE_NAME, *(f"{k}={v}" for k, v in POOL.items()))

    step("Installing imageprune with Helm (the image, built by hack/build-image.sh)")
    install(node, workdir)

    step(f"Adding {simulated} simulated node(s): each its own containerd and agent")
    sims = stack.enter_context(
        demo_simnode.started(plane, simulated, labels=POOL, namespace=NAMESPACE, workdir=workdir)
    )
    names = [realnode.NODE_NAME, *(n.name for n in sims)]
    wait("an agent pod Ready on every node", lambda: agents_ready(plane, names))
    demo_show.kubectl(plane, ["get", "nodes", "-L", "node-pool"])
    demo_show.kubectl(plane, ["get", "pods", "-A", "-o", "wide"])

    step("Loading images, and running and exited containers, on every node")
    load_real(node, args.short)
    for sim in sims:
        load_simulated(sim.runtime, args.short)
    runtimes = {realnode.NODE_NAME: node.runtime, **{n.name: n.runtime for n in sims}}
    before = {name: len(r.image_ids()) for name, r in runtimes.items()}
    for name, count in before.items():
        print(f"  {name}: {count} images in containerd")

    step("Applying the sample policy in DryRun: it reports, it removes nothing")
    policy, path = policy_file(workdir)
    demo_show.kubectl(plane, ["apply", "-f", str(path)])
    run_now(plane, policy)
    wait_run(plane, policy, after=None)
    show(plane, policy)

    step("Switching the policy to Enforce, and running it now")
    dry = run_id(plane, policy)
    demo_show.kubectl(
        plane, ["patch", "ipp", policy, "--type=merge", "-p", '{"spec":{"mode":"Enforce"}}']
    )
    run_now(plane, policy)
    wait_run(plane, policy, after=dry)
    show(plane, policy)
    for name, runtime in runtimes.items():
        print(
            f"  {name}: {before[name]} images in containerd before, "
            f"{len(runtime.image_ids())} after"
        )
    print("\nWhy is an image still there? The plugin names the rule that kept it:")
    demo_show.kubectl(plane, ["imageprune", "explain", policy, realnode.NODE_NAME, WEB_IMAGE])

    took = time.monotonic() - _started - waited
    step(f"Demo done in {took:.0f}s (and {waited:.0f}s waiting for the real-node lock)")
    if args.keep:
        leave_running(plane, policy, workdir)


def main(argv: list[str]) -> int:
    args = parse(argv)
    if args.stop:  # hack/demo.sh handles it: it needs nothing of ours installed
        print("demo: --stop: run bash hack/demo.sh --stop", file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print(
            "demo: needs root (it starts containerd and a kubelet): sudo bash hack/demo.sh",
            file=sys.stderr,
        )
        return 2
    # SIGINT too: a shell starts background jobs with it ignored, and Python keeps that.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _interrupt)
    try:
        demo(args)
    except KeyboardInterrupt:
        print("demo: interrupted; everything it started is gone", file=sys.stderr)
        return 130
    except (Exception, pytest.skip.Exception, pytest.fail.Exception) as e:
        # One line that says what failed; below it, a process's log tail when there is one.
        lines = str(e).strip().splitlines() or [type(e).__name__]
        print(
            f"demo: {lines[0]}", *(f"  {line}" for line in lines[1:20]), sep="\n", file=sys.stderr
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
