"""The install path as users run it: `helm install` of the chart into a real single-node
cluster (tests/testkit/realnode.py), with the image hack/build-image.sh builds imported
into the node's containerd 2.x. The operator Deployment and the agent DaemonSet run as
pods on the real kubelet, next to real workloads the kubelet started.

The tests run in file order and share the node: the release first, then an Enforce run
over the workloads, what the run left in the agent's log, a kubelet restart and an agent
pod deletion, `helm upgrade` to another image tag, a diskUsage policy, and last kubelet's
own image GC removing images next to imageprune's (on containerd 2.x)."""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

import imageprune
from imageprune.api import names
from testkit import binaries, chart, oci, realnode
from testkit import cluster as cluster_kit
from testkit import image as image_kit
from testkit.containerd import SANDBOX_IMAGE

pytestmark = pytest.mark.e2e
_T = TypeVar("_T")

NAMESPACE = "imageprune-system"
RELEASE = "imageprune"
POLICY = "real-node"
REGISTRY = "registry.imageprune.test"
# What the kubelet runs, and what nothing uses.
WORKLOADS = {
    "web": f"{REGISTRY}/real/web:1",
    "job": f"{REGISTRY}/real/job:1",
    "crash": f"{REGISTRY}/real/crash:1",
}
UNUSED = (f"{REGISTRY}/real/old:1", f"{REGISTRY}/real/old:2")
DISK_POLICY = "real-node-disk"


@pytest.fixture(scope="module", params=["2.x", "1.6"])
def node(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[realnode.RealNode]:
    """The node on each containerd flavour in turn (1.6 never reports pinned images)."""
    archive = image_kit.build()
    workdir = tmp_path_factory.mktemp("real-node")
    with realnode.running(workdir, flavour=request.param) as started:
        started.runtime.import_image(archive)
        yield started


def values(node: realnode.RealNode) -> dict[str, Any]:
    """The chart's defaults, except where this node differs from a stock one: its
    runtime's socket and root, a state dir of its own, and no registry to pull from."""
    return {
        "image": {"pullPolicy": "Never"},
        # The CRD upgrade hook's kubectl image cannot be pulled here; install needs none.
        "crds": {"upgrade": False},
        "operator": {"interval": 1},
        "agent": {
            "runtime": {"socketPath": str(node.runtime.socket)},
            "imageFilesystem": str(node.runtime.dir / "root"),
            "stateDir": str(node.workdir / "imageprune-state"),
            "usageInterval": "2s",
            "diskCheckInterval": "2s",
        },
    }


@pytest.fixture(scope="module")
def release(node: realnode.RealNode) -> Iterator[chart.Helm]:
    plane = node.plane
    helm = chart.Helm(
        binaries.require_binary("helm"),
        node.workdir,
        plane.kubeconfig_path,
    )
    # As docs/install.md says: the agent's hostPath volumes need the privileged level.
    plane.kubectl("create", "namespace", NAMESPACE)
    plane.kubectl("label", "namespace", NAMESPACE, "pod-security.kubernetes.io/enforce=privileged")
    helm.run(
        "install",
        RELEASE,
        str(chart.CHART),
        f"--namespace={NAMESPACE}",
        helm.values_file(values(node)),
        "--wait",
        "--timeout=180s",
        timeout=240,
    )
    # helm's --wait counts a DaemonSet done with maxUnavailable pods not ready yet.
    for component in ("operator", "agent"):
        cluster_kit.wait_for(
            f"the {component} pod Ready",
            lambda c=component: [p for p in pods(node, c) if ready(p)],  # type: ignore[misc]
            timeout=180,
        )
    yield helm
    plane.kubectl("delete", "ipp", "--all", "--wait", "--timeout=60s", check=False)
    helm.run("uninstall", RELEASE, f"--namespace={NAMESPACE}", "--wait", check=False)


@pytest.fixture(autouse=True)
def settled(node: realnode.RealNode, release: chart.Helm) -> None:
    """Each test starts on a settled node: Ready, and the chart's rollouts done (an
    upgrade rolls the operator too, and its leader changes). A run that finds the node
    NotReady or its agent pod not Ready skips it: once, in CI, the diskUsage run after
    the mid-run upgrade completed at once, with no task."""
    node.wait_ready()
    for workload in (f"deployment/{RELEASE}-operator", f"daemonset/{RELEASE}-agent"):
        node.plane.kubectl(
            "rollout",
            "status",
            workload,
            f"--namespace={NAMESPACE}",
            "--timeout=180s",
            timeout=200,
        )


def pods(node: realnode.RealNode, component: str) -> list[dict[str, Any]]:
    selector = f"app.kubernetes.io/component={component}"
    items: list[dict[str, Any]] = node.plane.get("pods", "-n", NAMESPACE, "-l", selector)["items"]
    return items


def ready(pod: dict[str, Any]) -> bool:
    conditions = pod.get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def test_chart_pods_run_ready_on_the_real_kubelet(
    node: realnode.RealNode, release: chart.Helm
) -> None:
    operators = pods(node, "operator")
    (agent,) = pods(node, "agent")
    assert len(operators) == 2, operators  # the chart's default: a leader and a standby
    # The standby is Ready too (its /healthz answers), and exactly one of them leads.
    lease = node.plane.get("lease", "imageprune-operator", "-n", NAMESPACE)
    holder = lease["spec"]["holderIdentity"]
    leaders = [p for p in operators if holder.startswith(f"{p['metadata']['name']}_")]
    assert len(leaders) == 1, (holder, [p["metadata"]["name"] for p in operators])
    accounts = [(pod, "imageprune-operator") for pod in operators]
    for pod, account in (*accounts, (agent, "imageprune-agent")):
        assert ready(pod), pod["status"]
        assert pod["spec"]["nodeName"] == realnode.NODE_NAME
        assert pod["spec"]["serviceAccountName"] == account
        assert not pod["spec"].get("hostNetwork")
        for container in [*pod["spec"]["containers"], *pod["spec"].get("initContainers", [])]:
            assert not container["securityContext"].get("privileged"), container["name"]
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
    # The admission policies are in force (the agent's writes pass them below).
    bindings = node.plane.get("validatingadmissionpolicybindings")["items"]
    assert len(bindings) == 2, bindings


def _agent_pid(node: realnode.RealNode) -> int:
    """The host pid of the process the kubelet started for the agent container."""
    (agent,) = pods(node, "agent")
    (status,) = agent["status"]["containerStatuses"]
    container_id = status["containerID"].removeprefix("containerd://")
    info = node.runtime.ctr("tasks", "ls").stdout.splitlines()
    return int(next(line.split()[1] for line in info if line.startswith(container_id)))


def _process_status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return dict(line.split(":\t", 1) for line in lines if ":\t" in line)


def _agent_process_status(node: realnode.RealNode) -> dict[str, str]:
    return _process_status(_agent_pid(node))


def test_agent_runs_unprivileged(node: realnode.RealNode, release: chart.Helm) -> None:
    status = _agent_process_status(node)
    assert status["Uid"].split()[0] == str(image_kit.USER)
    assert status["CapEff"] == "0000000000000000"
    assert status["NoNewPrivs"] == "1"
    assert status["Seccomp"] == "2"  # filter mode: RuntimeDefault


def _apply(node: realnode.RealNode, manifest: dict[str, Any]) -> None:
    node.plane.kubectl("apply", "-f", "-", stdin=json.dumps(manifest))


def _workloads(node: realnode.RealNode) -> None:
    """A Deployment, a Job that completes and a pod in CrashLoopBackOff, all on images
    only the node has (imagePullPolicy Never)."""

    def container(name: str, command: list[str]) -> dict[str, Any]:
        return {
            "name": name,
            "image": WORKLOADS[name],
            "imagePullPolicy": "Never",
            "command": command,
        }

    labels = {"app": "web"}
    _apply(
        node,
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "containers": [container("web", ["/bin/busybox", "sleep", "3600"])],
                        "terminationGracePeriodSeconds": 0,
                    },
                },
            },
        },
    )
    _apply(
        node,
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "job", "namespace": "default"},
            "spec": {
                "template": {
                    "spec": {
                        "containers": [container("job", ["/bin/busybox", "true"])],
                        "restartPolicy": "Never",
                    }
                }
            },
        },
    )
    _apply(
        node,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "crash", "namespace": "default"},
            "spec": {"containers": [container("crash", ["/bin/busybox", "false"])]},
        },
    )


def _crash_looping(node: realnode.RealNode) -> bool:
    """The kubelet keeps restarting it, with back-off: the status says CrashLoopBackOff
    while it waits, but may still show the last exit until the next update, so a second
    restart counts as well."""
    pod = node.plane.get("pod", "crash", "-n", "default")
    for status in pod.get("status", {}).get("containerStatuses", []):
        waiting = status.get("state", {}).get("waiting", {})
        if waiting.get("reason") == "CrashLoopBackOff" or status.get("restartCount", 0) >= 2:
            return True
    return False


def _diagnostics(node: realnode.RealNode) -> str:
    """What a failed wait shows: the pods, the tasks and the chart's logs."""
    plane = node.plane
    parts = [plane.kubectl("get", "pods", "-A", "-o", "wide", check=False).stdout]
    parts.append(plane.kubectl("describe", "pods", "-n", "default", check=False).stdout[-4000:])
    parts.append(plane.kubectl("get", "ipp,ipt", "-o", "yaml", check=False).stdout[-3000:])
    for component in ("operator", "agent"):
        logs = plane.kubectl(
            "logs",
            "-n",
            NAMESPACE,
            "-l",
            f"app.kubernetes.io/component={component}",
            "--tail=30",
            check=False,
        )
        parts.append(f"{component} log:\n{logs.stdout}{logs.stderr}")
    return "\n".join(parts)


def _wait(node: realnode.RealNode, what: str, probe: Callable[[], _T | None]) -> _T:
    """cluster_kit.wait_for, with the cluster's state in the error."""
    try:
        return cluster_kit.wait_for(what, probe, timeout=180)
    except AssertionError as e:
        raise AssertionError(f"{e}\n{_diagnostics(node)}") from None


def test_enforce_run_keeps_the_workloads_images(
    node: realnode.RealNode, release: chart.Helm
) -> None:
    runtime = node.runtime
    runtime.add_images(*(oci.ImageSpec(repo_tags=(ref,)) for ref in (*WORKLOADS.values(), *UNUSED)))
    _workloads(node)
    plane = node.plane
    plane.kubectl("rollout", "status", "deployment/web", "--timeout=120s", timeout=150)
    plane.kubectl("wait", "--for=condition=Complete", "job/job", "--timeout=120s", timeout=150)
    _wait(node, "the crash pod in CrashLoopBackOff", lambda: _crash_looping(node))
    unused_ids = {runtime.image_id_of(ref) for ref in UNUSED}

    _apply(node, cluster_kit.policy(POLICY, mode="Enforce", unusedFor="0s"))
    run = _wait(
        node,
        "the enforced run",
        lambda: (
            (r := cluster_kit.status(plane, POLICY).get("run") or {}).get("completionTime") and r
        ),
    )

    assert run["nodes"]["succeeded"] == 1, run
    assert run["imagesRemoved"] == len(UNUSED), run
    for image_id in unused_ids:
        runtime.wait_image(image_id, present=False)
    for ref in (*WORKLOADS.values(), SANDBOX_IMAGE, image_kit.REF):
        assert runtime.image_id_of(ref), ref
    (task,) = cluster_kit.tasks(plane, POLICY).values()
    report = task["status"]["report"]
    assert report["dryRun"] is False
    assert report["removedImages"] == len(UNUSED)
    table = plane.kubectl("get", "ipp", POLICY).stdout
    assert "Enforce" in table, table


def test_agent_log_has_the_runs_structured_log(
    node: realnode.RealNode, release: chart.Helm
) -> None:
    run_id = cluster_kit.status(node.plane, POLICY)["run"]["id"]
    (agent,) = pods(node, "agent")
    logs = node.plane.kubectl(
        "logs", "-n", NAMESPACE, agent["metadata"]["name"], "-c", "agent"
    ).stdout
    records = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    about_run = [r for r in records if run_id in json.dumps(r)]
    assert about_run, logs[-4000:]


def _state(node: realnode.RealNode, name: str) -> Any:
    """A file of the agent's state dir (a hostPath), as the node's disk has it."""
    return json.loads((node.workdir / "imageprune-state" / name).read_text())


def _agent_log(node: realnode.RealNode, pod: str) -> str:
    return node.plane.kubectl("logs", "-n", NAMESPACE, pod, "-c", "agent", check=False).stdout


def test_kubelet_restart_and_agent_pod_deletion_keep_records_and_run_once(
    node: realnode.RealNode, release: chart.Helm
) -> None:
    plane = node.plane
    usage_before = _state(node, "usage.json")["images"]
    ledger_before = _state(node, "agent-runs.json")
    run_before = cluster_kit.status(plane, POLICY)["run"]
    (task_before,) = cluster_kit.tasks(plane, POLICY).values()
    assert usage_before
    assert ledger_before

    node.restart_kubelet()
    (old,) = pods(node, "agent")
    plane.kubectl("delete", "pod", "-n", NAMESPACE, old["metadata"]["name"], "--wait")
    (new,) = _wait(
        node,
        "the DaemonSet's new agent pod Ready",
        lambda: [p for p in pods(node, "agent") if ready(p) and p["metadata"] != old["metadata"]],
    )
    usage_file = node.workdir / "imageprune-state" / "usage.json"
    written = usage_file.stat().st_mtime_ns
    # The new agent has listed the tasks and recorded usage since it started.
    _wait(
        node,
        "the new agent to list the tasks",
        lambda: "imageprunetasks: 1 objects" in _agent_log(node, new["metadata"]["name"]),
    )
    _wait(node, "a usage pass of the new agent", lambda: usage_file.stat().st_mtime_ns != written)

    usage_after = _state(node, "usage.json")["images"]
    present = node.runtime.image_ids()
    kept = [i for i in usage_before if i in present]
    assert kept
    for image_id in kept:
        assert usage_after[image_id]["firstSeen"] == usage_before[image_id]["firstSeen"]
    assert _state(node, "agent-runs.json") == ledger_before
    assert cluster_kit.status(plane, POLICY)["run"]["id"] == run_before["id"]
    (task_after,) = cluster_kit.tasks(plane, POLICY).values()
    assert task_after["status"]["runId"] == task_before["status"]["runId"]
    assert task_after["status"]["completionTime"] == task_before["status"]["completionTime"]


def _tag_image(node: realnode.RealNode, suffix: str) -> str:
    """Another tag of our image on the node, for `helm upgrade` to change to."""
    tag = f"{imageprune.__version__}-{suffix}"
    node.runtime.ctr("images", "tag", image_kit.REF, image_kit.REF.rsplit(":", 1)[0] + f":{tag}")
    return tag


def _upgrade(release: chart.Helm, tag: str, *flags: str) -> None:
    release.run(
        "upgrade",
        RELEASE,
        str(chart.CHART),
        f"--namespace={NAMESPACE}",
        "--reuse-values",
        f"--set=image.tag={tag}",
        *flags,
        timeout=240,
    )


def _agent_of_tag(node: realnode.RealNode, tag: str) -> dict[str, Any]:
    (new,) = _wait(
        node,
        f"the agent pod of tag {tag} Ready",
        lambda: [
            p
            for p in pods(node, "agent")
            if ready(p) and p["spec"]["containers"][0]["image"].endswith(f":{tag}")
        ],
    )
    return new


def test_helm_upgrade_to_a_new_tag_rolls_the_agent_and_the_next_run_works(
    node: realnode.RealNode, release: chart.Helm
) -> None:
    plane = node.plane
    tag = _tag_image(node, "upgrade")
    (old,) = pods(node, "agent")
    usage_before = _state(node, "usage.json")["images"]
    run_before = cluster_kit.status(plane, POLICY)["run"]["id"]

    _upgrade(release, tag, "--wait", "--timeout=180s")
    new = _agent_of_tag(node, tag)
    assert new["metadata"]["uid"] != old["metadata"]["uid"]

    plane.kubectl("annotate", "ipp", POLICY, "--overwrite", f"{names.RUN_NOW_ANNOTATION}=upgraded")
    run = _wait(
        node,
        "a run after the upgrade",
        lambda: (
            (r := cluster_kit.status(plane, POLICY).get("run") or {}).get("completionTime")
            and r["id"] != run_before
            and r
        ),
    )
    assert run["nodes"]["succeeded"] == 1, run
    usage_after = _state(node, "usage.json")["images"]
    present = node.runtime.image_ids()
    for image_id in (i for i in usage_before if i in present):
        assert usage_after[image_id]["firstSeen"] == usage_before[image_id]["firstSeen"]


def _task_status(node: realnode.RealNode, policy: str) -> dict[str, Any]:
    (task,) = cluster_kit.tasks(node.plane, policy).values()
    found: dict[str, Any] = task.get("status") or {}
    return found


def _sigterm_pending(pid: int) -> bool:
    """SIGTERM sent and not yet taken (the process is stopped), or the process gone."""
    try:
        status = _process_status(pid)
    except FileNotFoundError:
        return True
    mask = 1 << (signal.SIGTERM - 1)
    return any(int(status[field], 16) & mask for field in ("SigPnd", "ShdPnd"))


def test_helm_upgrade_mid_run_loses_no_run(node: realnode.RealNode, release: chart.Helm) -> None:
    """The agent has started a run and waits on the runtime when `helm upgrade` changes
    the image tag: the DaemonSet deletes the agent pod, and the kubelet's SIGTERM reaches
    the agent in the middle of the run. The old agent leaves the run unfinished (as after
    a crash), and the new one runs it again: the run completes on the node all the same."""
    plane = node.plane
    tag = _tag_image(node, "midrun")
    unused = _images("midrun/old:1", "midrun/old:2")
    node.runtime.add_images(*(oci.ImageSpec(repo_tags=(ref,)) for ref in unused))
    ids = {node.runtime.image_id_of(ref) for ref in unused}
    run_before = cluster_kit.status(plane, POLICY)["run"]["id"]
    pid = _agent_pid(node)

    node.runtime.freeze()
    try:
        now = f"{names.RUN_NOW_ANNOTATION}=midrun"
        plane.kubectl("annotate", "ipp", POLICY, "--overwrite", now)
        started = _wait(
            node,
            "the agent to start the run",
            lambda: (
                (s := _task_status(node, POLICY)).get("runId") not in (None, run_before)
                and s.get("startTime")
                and s
            ),
        )
        assert not started.get("completionTime"), started
        # Held where it waits on the runtime, so that the kubelet's SIGTERM (which
        # needs the runtime) lands before the answer does.
        os.kill(pid, signal.SIGSTOP)
    finally:
        node.runtime.freeze(frozen=False)
    try:
        _upgrade(release, tag)
        _wait(node, "the kubelet's SIGTERM to the old agent", lambda: _sigterm_pending(pid))
    finally:
        os.kill(pid, signal.SIGCONT)

    _agent_of_tag(node, tag)
    run = _run_of(node, POLICY, run_id=started["runId"])
    status = _task_status(node, POLICY)
    seen = f"{run}\n{status}\n{_diagnostics(node)}"
    assert run["nodes"]["succeeded"] == 1, seen
    assert status["runId"] == started["runId"], seen
    for image_id in ids:
        node.runtime.wait_image(image_id, present=False)


def _images(*refs: str) -> tuple[str, ...]:
    return tuple(f"{REGISTRY}/{ref}" for ref in refs)


def _run_of(node: realnode.RealNode, policy: str, run_id: str | None = None) -> dict[str, Any]:
    """The policy's completed run (`run_id`'s, if given)."""
    return _wait(
        node,
        f"a completed run {run_id or ''} of {policy}",
        lambda: (
            (r := cluster_kit.status(node.plane, policy).get("run") or {}).get("completionTime")
            and (run_id is None or r["id"] == run_id)
            and r
        ),
    )


@contextlib.contextmanager
def _policy(node: realnode.RealNode, manifest: dict[str, Any]) -> Iterator[None]:
    """Applied for the block, deleted after it: a diskUsage policy left behind keeps
    running on every disk check, and the tests after it count runs."""
    _apply(node, manifest)
    try:
        yield
    finally:
        node.plane.kubectl(
            "delete", "ipp", manifest["metadata"]["name"], "--wait", "--timeout=60s", check=False
        )


def _report(node: realnode.RealNode, policy: str) -> dict[str, Any] | None:
    """The report of the policy's one task, once a run has ended. A diskUsage policy
    whose highPercent the disk stays above (this machine writes on) starts a disk run
    at each disk check that finds the disk fuller than the last one left it, and a run's
    status has no report until it ends."""
    (task,) = cluster_kit.tasks(node.plane, policy).values()
    found: dict[str, Any] | None = (task.get("status") or {}).get("report")
    return found


def test_disk_usage_policy_removes_with_the_default_non_root_agent(
    node: realnode.RealNode, release: chart.Helm
) -> None:
    """containerd makes its root dir 0700: the agent (uid 65532) measures the chart's
    read-only mount of it instead of the snapshotter's dir the CRI names. Without the
    figures a diskUsage policy removes nothing."""
    unused = _images("disk/old:1", "disk/old:2")
    node.runtime.add_images(*(oci.ImageSpec(repo_tags=(ref,)) for ref in unused))
    ids = {node.runtime.image_id_of(ref) for ref in unused}
    # highPercent under any real disk's fill: the run must remove, and cannot reach low.
    manifest = cluster_kit.policy(
        DISK_POLICY,
        mode="Enforce",
        unusedFor="0s",
        include=[f"{REGISTRY}/disk/*"],
        diskUsage={"highPercent": 1, "lowPercent": 0.5},
    )
    with _policy(node, manifest):
        run = _run_of(node, DISK_POLICY)
        tasks = cluster_kit.tasks(node.plane, DISK_POLICY)
        seen = f"{cluster_kit.status(node.plane, DISK_POLICY)}\n{tasks}\n{_diagnostics(node)}"
        assert run["nodes"]["succeeded"] == 1, seen
        # Any run's report has the figures.
        report = _wait(node, "the task's report", lambda: _report(node, DISK_POLICY))
    image_fs = report["imageFs"]
    # Removed by the policy's run or by a disk check of the agent before it (kubelet's
    # GC is out of the way): neither acts without the figures.
    for image_id in ids:
        node.runtime.wait_image(image_id, present=False)
    assert image_fs["capacityBytes"] > 0, image_fs
    assert image_fs["usedBytesAfter"] is not None, image_fs
    (agent,) = pods(node, "agent")
    assert "cannot stat image filesystem" not in _agent_log(node, agent["metadata"]["name"])


# On containerd 2.x only: kubelet's GC cannot act before its pass 5 minutes after a
# restart (see the wait below), and 1.6 adds nothing of imageprune's own there. Its runs
# on 1.6 are the Enforce and diskUsage tests above; an image kubelet removed between
# imageprune's plan and removal is tests/cri/test_removed_by_another.py, on both.
@pytest.mark.parametrize("node", ["2.x"], indirect=True)
def test_kubelet_image_gc_and_imageprune_remove_together(
    node: realnode.RealNode, release: chart.Helm
) -> None:
    """kubelet's thresholds just under the disk's fill, imageprune's diskUsage under
    kubelet's, as docs/install.md recommends: both remove at once. kubelet alone may
    take the images the policy excludes; either may take the others, and imageprune
    finds some gone when it removes them. Nothing fails, and the workloads run on."""
    for_kubelet = _images("gc/kubelet-only:1", "gc/kubelet-only:2")
    for_both = _images("gc/either:1", "gc/either:2", "gc/either:3")
    built = node.runtime.add_images(
        *(oci.ImageSpec(repo_tags=(ref,)) for ref in (*for_kubelet, *for_both))
    )
    kubelet_high = math.floor(node.runtime.image_filesystem_used_percent()) - 1
    assert kubelet_high >= 5, "the disk is too empty for thresholds under its fill"
    manifest = cluster_kit.policy(
        DISK_POLICY,
        mode="Enforce",
        unusedFor="0s",
        include=[f"{REGISTRY}/gc/*"],
        exclude=[f"{REGISTRY}/gc/kubelet-only:*"],
        diskUsage={"highPercent": kubelet_high - 3, "lowPercent": kubelet_high - 4},
    )
    with _policy(node, manifest):
        previous = node.reconfigure_kubelet(
            imageGCHighThresholdPercent=kubelet_high,
            imageGCLowThresholdPercent=kubelet_high - 1,
            imageMaximumGCAge="1h",
        )
        try:
            # kubelet 1.36 runs its GC at start, then every 5 minutes. It dates each image
            # from the pass that first lists it, in memory, so after the restart the pass
            # at start finds every image 0 s old, under imageMinimumGCAge (0 there means
            # the default, 2 minutes): the pass 5 minutes later is the first to remove.
            for image in built:
                node.runtime.wait_image(image.id, present=False, timeout=420)
            run = _run_of(node, DISK_POLICY)
            report = _wait(node, "the task's report", lambda: _report(node, DISK_POLICY))
        finally:
            node.reconfigure_kubelet(**previous)

    assert run["nodes"]["succeeded"] == 1, run
    assert run["nodes"]["failed"] == 0, run
    assert set(report["outcomes"]) <= {"Removed"}, report
    for pod in ("operator", "agent"):
        assert all(ready(p) for p in pods(node, pod)), pod
    node.plane.kubectl("rollout", "status", "deployment/web", "--timeout=60s", timeout=90)
    # Pinned by containerd 2.x. 1.6 does not pin it, and kubelet's GC keeps only what
    # containers (not sandboxes) use and what is pinned: there it removes the pause
    # image under running pods (seen with kubelet 1.36; imageprune never removes it).
    for ref in (*WORKLOADS.values(), SANDBOX_IMAGE, image_kit.REF):
        assert node.runtime.image_id_of(ref), ref
