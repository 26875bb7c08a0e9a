"""`kubectl imageprune` against a real kube-apiserver, the real operator and two real
agents, each on its own real containerd: status, run and explain read what they wrote.
The plugin runs as a process, as kubectl runs it; the last test runs it through kubectl.

The tests share the cluster and run in file order: the policy's first run (on create)
is done before the first test; `run` then starts another."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from testkit import cliproc, oci
from testkit import cluster as cluster_kit
from testkit.agent import (
    AgentProcess,
    admin_token,
    bind_cluster_role,
    exec_plugin_kubeconfig,
    service_account_kubeconfig,
)
from testkit.containerd import SANDBOX_IMAGE, ContainerdNode, running
from testkit.kube import ControlPlane
from testkit.plugin import command, failed, ok
from testkit.plugin import run as plugin

pytestmark = pytest.mark.k8s

POLICY = "plugin-web"
IDLE = "plugin-idle"  # matches a node without an agent: its runs never finish
REGISTRY = "registry.imageprune.test"
APPS = tuple(f"{REGISTRY}/plugin/app:{n}" for n in (1, 2))
KEPT = f"{REGISTRY}/plugin/keep:1"  # excluded by the policy
LATE = f"{REGISTRY}/plugin/late:1"  # added before `run`
USED = f"{REGISTRY}/plugin/used:1"  # a container uses it on the first node
PINNED = f"{REGISTRY}/plugin/pinned:1"  # pinned on the first node
NODES = ("plugin-a", "plugin-b")
GHOST = "plugin-ghost"


@dataclasses.dataclass
class Cluster:
    plane: ControlPlane
    runtimes: dict[str, ContainerdNode]
    ids: dict[str, dict[str, str]]  # node -> reference -> image ID


@pytest.fixture(scope="module")
def cluster(
    kube_control_plane: ControlPlane,
    imageprune_crds: list[str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Cluster]:
    plane = kube_control_plane
    workdir = tmp_path_factory.mktemp("plugin")
    with contextlib.ExitStack() as stack:
        stack.callback(cluster_kit.delete_nodes, plane)
        runtimes, ids = {}, {}
        for name in NODES:
            runtime = stack.enter_context(running("2.x"))
            built = runtime.add_images(*(oci.ImageSpec(repo_tags=(r,)) for r in (*APPS, KEPT)))
            ids[name] = {image.repo_tags[0]: image.id for image in built}
            if name == NODES[0]:
                _keep_by_rules(runtime)
            cluster_kit.create_node(plane, name, {"pool": "plugin"})
            stack.enter_context(
                AgentProcess(plane, runtime, node_name=name, workdir=workdir / name)
            )
            runtimes[name] = runtime
        cluster_kit.create_node(plane, GHOST, {"pool": "plugin-ghost"})
        stack.enter_context(cluster_kit.operator(plane, workdir, interval=1.0))
        cluster_kit.apply(
            plane,
            cluster_kit.policy(
                POLICY,
                mode="Enforce",
                nodeSelector={"matchLabels": {"pool": "plugin"}},
                include=[f"{REGISTRY}/plugin/*"],
                exclude=[KEPT],
                unusedFor="0s",
            ),
        )
        cluster_kit.apply(
            plane,
            cluster_kit.policy(IDLE, nodeSelector={"matchLabels": {"pool": "plugin-ghost"}}),
        )

        def first_run_done() -> dict[str, Any] | None:
            run = cluster_kit.status(plane, POLICY).get("run") or {}
            return run if run.get("completionTime") else None

        cluster_kit.wait_for("the policy's first run", first_run_done, timeout=180)
        yield Cluster(plane, runtimes, ids)


def _keep_by_rules(runtime: ContainerdNode) -> None:
    """Images the policy's include pattern matches that rules keep: one a container
    uses, one the runtime pins; the pod's sandbox image comes with it."""
    runtime.add_images(*(oci.ImageSpec(repo_tags=(r,)) for r in (USED, PINNED)))
    runtime.pin(PINNED)
    sandbox = runtime.run_sandbox("pod")
    runtime.create_container(sandbox, "pod", name="user", image=USED)


def test_status_shows_each_node_and_the_totals(cluster: Cluster) -> None:
    table = ok(plugin(cluster.plane, "status", POLICY))
    print(table)
    lines = table.splitlines()
    assert lines[0] == f"Policy {POLICY} (Enforce)"
    header = next(line for line in lines if line.startswith("NODE"))
    for column in ("LAST RUN", "TRIGGER", "STATE", "REMOVED", "RECLAIMED", "ERRORS"):
        assert column in header
    for node in NODES:
        row = next(line for line in lines if line.startswith(node)).split()
        # NODE, LAST RUN (2 words), TRIGGER, STATE, REMOVED, RECLAIMED (2 words), ERRORS
        assert row[3:6] == ["Create", "Succeeded", str(len(APPS))], row
        assert row[-1] == "0"
    total = next(line for line in lines if line.startswith("TOTAL"))
    assert f"TOTAL ({len(NODES)} nodes)" in total
    assert str(len(APPS) * len(NODES)) in total.split()


@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_status_as_a_document_matches_the_tasks(cluster: Cluster, fmt: str) -> None:
    text = ok(plugin(cluster.plane, "status", POLICY, "-o", fmt))
    document = json.loads(text) if fmt == "json" else yaml.safe_load(text)
    tasks = cluster_kit.tasks(cluster.plane, POLICY)
    assert [n["node"] for n in document["nodes"]] == sorted(NODES)
    for node in document["nodes"]:
        report = tasks[node["node"]]["status"]["report"]
        assert node["removedImages"] == report["removedImages"] == len(APPS)
        assert node["removedBytes"] == report["removedBytes"]
        assert node["runId"] == tasks[node["node"]]["status"]["runId"]
        assert node["state"] == "Succeeded"
    assert document["totals"]["removedImages"] == len(APPS) * len(NODES)
    assert document["totals"]["removedBytes"] == sum(n["removedBytes"] for n in document["nodes"])
    assert document["run"] == cluster_kit.status(cluster.plane, POLICY)["run"]


def test_explain_a_removed_image_and_a_kept_one(cluster: Cluster) -> None:
    node = NODES[0]
    removed = ok(plugin(cluster.plane, "explain", POLICY, node, APPS[0]))
    print(removed)
    assert "verdict: Removed" in removed
    run_id = cluster_kit.tasks(cluster.plane, POLICY)[node]["status"]["runId"]
    assert run_id in removed
    assert cluster.ids[node][APPS[0]] in removed

    # By ID prefix, as a document.
    short = cluster.ids[node][APPS[1]].removeprefix("sha256:")[:12]
    doc = json.loads(ok(plugin(cluster.plane, "explain", POLICY, node, short, "-o", "json")))
    assert doc["verdict"] == "Removed"
    assert doc["result"]["repoTags"] == [APPS[1]]
    assert doc["runId"] == run_id

    kept = yaml.safe_load(ok(plugin(cluster.plane, "explain", POLICY, node, KEPT, "-o", "yaml")))
    assert kept["verdict"] == "Excluded"
    assert kept["reason"] == f"kept: excluded by the policy (matches exclude pattern {KEPT})"
    assert kept["result"]["id"] == cluster.ids[node][KEPT]
    assert cluster.ids[node][KEPT] in cluster.runtimes[node].image_ids()


@pytest.mark.parametrize(
    ("image", "verdict", "why"),
    [
        (USED, "InUse", "kept: a container uses it (used by 1 container: user (running))"),
        (PINNED, "Pinned", "kept: pinned by the container runtime"),
        (SANDBOX_IMAGE, "SandboxImage", "kept: a pod sandbox image ("),
        (KEPT, "Excluded", f"kept: excluded by the policy (matches exclude pattern {KEPT})"),
    ],
)
def test_explain_names_the_rule_that_kept_an_image(
    cluster: Cluster, image: str, verdict: str, why: str
) -> None:
    node = NODES[0]
    text = ok(plugin(cluster.plane, "explain", POLICY, node, image))
    print(text)
    assert f"  verdict: {verdict}\n" in text
    assert f"  why:     {why}" in text
    assert cluster.runtimes[node].image_id_of(image) in text


def test_explain_of_an_image_the_node_never_had(cluster: Cluster) -> None:
    absent = f"{REGISTRY}/plugin/never:1"
    answer = json.loads(
        ok(plugin(cluster.plane, "explain", POLICY, NODES[0], absent, "-o", "json"))
    )
    assert answer["verdict"] == "NotOnNode"
    assert answer["keptTruncated"] == 0


def test_a_reader_that_leaves_early_ends_it_quietly(cluster: Cluster) -> None:
    """`kubectl imageprune status web -o yaml | head -1`: the pipe closes at once."""
    config = f"--kubeconfig={cluster.plane.kubeconfig_path}"
    process = subprocess.Popen(
        command("status", POLICY, "-o", "yaml", config),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cliproc.env(),
    )
    assert process.stdout is not None
    process.stdout.close()
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert stderr == ""


@pytest.mark.parametrize(
    ("redirect", "reason"),
    [(">&-", "stdout is closed"), (">/dev/full", "No space left on device")],
)
@pytest.mark.parametrize("args", [("status", POLICY), ("explain", POLICY, NODES[0], APPS[0])])
def test_an_unwritable_stdout_is_one_line_on_stderr(
    cluster: Cluster, args: tuple[str, ...], redirect: str, reason: str
) -> None:
    """As the node CLI: the answer was read, only printing it failed; exit code 0."""
    argv = command(*args, "-o", "json", f"--kubeconfig={cluster.plane.kubeconfig_path}")
    result = cliproc.run_redirected(argv, redirect, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr == f"error: cannot write the output: {reason}\n"


def test_explain_names_the_nodes_when_the_node_has_no_task(cluster: Cluster) -> None:
    result = plugin(cluster.plane, "explain", POLICY, "nowhere", APPS[0])
    assert failed(result) == (
        f"error: policy {POLICY} has no task on node 'nowhere' (nodes: {', '.join(NODES)})"
    )


def test_run_starts_a_run_and_follows_it_to_the_end(cluster: Cluster) -> None:
    node = NODES[1]
    late = cluster.runtimes[node].add_images(oci.ImageSpec(repo_tags=(LATE,)))[0]
    before = cluster_kit.status(cluster.plane, POLICY)["run"]["id"]

    out = ok(plugin(cluster.plane, "run", POLICY))
    print(out)

    run = cluster_kit.status(cluster.plane, POLICY)["run"]
    assert run["id"] != before
    assert run["trigger"] == "RunNow"
    assert run["completionTime"]
    assert f"run {run['id']}: {len(NODES)} of {len(NODES)} nodes done" in out
    assert f"  {node}: Succeeded, removed 1 image (" in out
    assert f"  {NODES[0]}: Succeeded, removed 0 images (0 B)" in out
    assert late.id not in cluster.runtimes[node].image_ids()
    explained = ok(plugin(cluster.plane, "explain", POLICY, node, LATE))
    assert "verdict: Removed" in explained
    assert run["id"] in explained


def test_run_as_json_prints_one_document(cluster: Cluster) -> None:
    result = plugin(cluster.plane, "run", POLICY, "-o", "json")
    document = json.loads(ok(result))
    assert document["phase"] == "Succeeded"
    assert document["run"]["trigger"] == "RunNow"
    assert document["run"] == cluster_kit.status(cluster.plane, POLICY)["run"]
    assert "nodes done" in result.stderr  # the progress, kept off stdout


def test_run_on_a_suspended_policy_says_it_was_ignored(cluster: Cluster) -> None:
    before = cluster_kit.status(cluster.plane, POLICY)["run"]["id"]
    patch = json.dumps({"spec": {"suspend": True}})
    cluster.plane.kubectl("patch", "ipp", POLICY, "--type=merge", "-p", patch)
    try:
        result = plugin(cluster.plane, "run", POLICY)
        assert cluster_kit.status(cluster.plane, POLICY)["run"]["id"] == before
    finally:
        # Resuming is a spec change: a policy without a schedule runs again.
        patch = json.dumps({"spec": {"suspend": False}})
        cluster.plane.kubectl("patch", "ipp", POLICY, "--type=merge", "-p", patch)
    assert result.returncode == 1, result.stderr + result.stdout
    assert "ignored the request (RunNowIgnored): the policy is suspended" in result.stdout


# The CRD accepts these schedules' shape; the operator's cron parser does not. February
# 31st is valid cron to croniter, which then raised in every pass of the operator.
@pytest.mark.parametrize("schedule", ["99 * * * *", "0 3 31 2 *"])
def test_run_on_an_invalid_policy_says_why(cluster: Cluster, schedule: str) -> None:
    cluster_kit.apply(cluster.plane, cluster_kit.policy("plugin-bad", schedule=schedule))
    try:
        result = plugin(cluster.plane, "run", "plugin-bad")
    finally:
        cluster.plane.kubectl("delete", "ipp", "plugin-bad", "--wait=true", timeout=120)
    assert result.returncode == 1, result.stderr + result.stdout
    assert "the operator starts no run: the policy's spec is invalid: spec.schedule" in (
        result.stdout
    )


# SIGTERM and SIGHUP (a terminal that went away) killed it without a word.
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_ctrl_c_stops_following_and_the_run_goes_on(
    cluster: Cluster, signum: signal.Signals
) -> None:
    process = subprocess.Popen(
        command("run", IDLE, f"--kubeconfig={cluster.plane.kubeconfig_path}"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cliproc.env(),
    )
    try:
        assert process.stdout is not None
        # Once the operator started the run, which waits for an agent that never comes.
        for line in process.stdout:
            if line.startswith("run ") and "0 of 1 nodes done" in line:
                break
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 128 + signum, stderr
    assert "Traceback" not in stderr
    assert stderr.endswith("\nstopped; anything started goes on in the cluster\n")
    run = cluster_kit.status(cluster.plane, IDLE)["run"]
    assert run["trigger"] == "RunNow"
    assert "completionTime" not in run


def test_run_gives_up_after_its_timeout(cluster: Cluster) -> None:
    result = plugin(cluster.plane, "run", IDLE, "--timeout=2s")
    assert failed(result).startswith("error: gave up following after 2s;")


@pytest.mark.parametrize(
    "api_version", ["client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1"]
)
def test_an_exec_credential_plugin_logs_in(cluster: Cluster, api_version: str) -> None:
    name = f"plugin-exec-{api_version.rsplit('/', 1)[1]}"
    token = admin_token(cluster.plane, name)
    config = exec_plugin_kubeconfig(cluster.plane, name, api_version=api_version, token=token)
    document = json.loads(
        ok(plugin(cluster.plane, "status", POLICY, "-o", "json", kubeconfig=config))
    )
    assert [n["node"] for n in document["nodes"]] == sorted(NODES)


def test_a_failing_exec_plugin_is_named(cluster: Cluster) -> None:
    config = exec_plugin_kubeconfig(
        cluster.plane,
        "plugin-exec-broken",
        api_version="client.authentication.k8s.io/v1",
        token=None,
    )
    result = plugin(cluster.plane, "status", POLICY, kubeconfig=config)
    error = failed(result)
    assert "plugin-exec-broken-credential-plugin" in error
    assert "cannot reach the token service" in error


def _two_contexts(plane: ControlPlane) -> Path:
    """The admin's kubeconfig plus a current context whose user has no rights."""
    admin = yaml.safe_load(plane.kubeconfig_path.read_text())
    nobody = yaml.safe_load(plane.user_kubeconfig("plugin-nobody").read_text())
    admin["users"] += nobody["users"]
    admin["contexts"] += [
        {
            "name": "nobody",
            "context": {"cluster": admin["clusters"][0]["name"], "user": "plugin-nobody"},
        }
    ]
    admin["current-context"] = "nobody"
    path = plane.workdir / "plugin-two-contexts.kubeconfig"
    path.write_text(yaml.safe_dump(admin))
    return path


def test_context_picks_another_context(cluster: Cluster) -> None:
    config = _two_contexts(cluster.plane)
    admin = yaml.safe_load(cluster.plane.kubeconfig_path.read_text())["current-context"]
    refused = plugin(cluster.plane, "status", POLICY, kubeconfig=config)
    error = failed(refused)
    assert error.startswith("error: no permission: ")
    assert 'User "plugin-nobody" cannot get resource "imageprunepolicies"' in error
    assert "Succeeded" in ok(
        plugin(cluster.plane, "status", POLICY, f"--context={admin}", kubeconfig=config)
    )


def test_missing_permissions_name_the_verb_and_the_resource(cluster: Cluster) -> None:
    """A user who may read policies but not tasks, and may not annotate."""
    name = "plugin-reader"
    config = service_account_kubeconfig(cluster.plane, name, bind=False)
    rules = [
        {"apiGroups": ["imageprune.io"], "resources": ["imageprunepolicies"], "verbs": ["get"]}
    ]
    bind_cluster_role(cluster.plane, name, rules)
    account = f"system:serviceaccount:default:{name}"

    status = plugin(cluster.plane, "status", POLICY, kubeconfig=config)
    error = failed(status)
    assert error.startswith("error: no permission: ")
    assert f'User "{account}" cannot list resource "imageprunetasks"' in error

    # Without the right to list, a missing policy is only that.
    missing = plugin(cluster.plane, "status", "nope", kubeconfig=config)
    assert failed(missing) == "error: no ImagePrunePolicy named 'nope'"

    run = plugin(cluster.plane, "run", POLICY, kubeconfig=config)
    assert f'User "{account}" cannot patch resource "imageprunepolicies"' in failed(run)


def test_kubeconfig_holding_two_files_is_merged(cluster: Cluster, tmp_path: Path) -> None:
    """The context and current-context in one file, the cluster and user in the other:
    only a merge of the two can log in."""
    admin = yaml.safe_load(cluster.plane.kubeconfig_path.read_text())
    first, second = tmp_path / "contexts.yaml", tmp_path / "credentials.yaml"
    first.write_text(yaml.safe_dump({k: admin[k] for k in ("contexts", "current-context")}))
    second.write_text(yaml.safe_dump({k: admin[k] for k in ("clusters", "users")}))
    env = {"KUBECONFIG": f"{first}{os.pathsep}{second}"}
    result = plugin(cluster.plane, "status", POLICY, "-o", "json", admin=False, env=env)
    assert json.loads(ok(result))["policy"] == POLICY


def test_without_a_kubeconfig_it_reads_kubectls_default(cluster: Cluster, tmp_path: Path) -> None:
    (tmp_path / ".kube").mkdir()
    (tmp_path / ".kube" / "config").write_text(cluster.plane.kubeconfig_path.read_text())
    env = {"HOME": str(tmp_path), "KUBECONFIG": ""}
    result = plugin(cluster.plane, "status", POLICY, "-o", "json", admin=False, env=env)
    assert json.loads(ok(result))["policy"] == POLICY


def test_no_such_policy_names_those_that_exist(cluster: Cluster) -> None:
    for args in (("status", "nope"), ("run", "nope"), ("explain", "nope", NODES[0], APPS[0])):
        result = plugin(cluster.plane, *args)
        assert failed(result) == (
            f"error: no ImagePrunePolicy named 'nope' (existing: {IDLE}, {POLICY})"
        )


def test_kubectl_runs_it_as_a_plugin(cluster: Cluster, tmp_path: Path) -> None:
    """kubectl finds `kubectl-imageprune` on $PATH, as pip installs the console script."""
    script = tmp_path / "kubectl-imageprune"
    script.write_text(f'#!/bin/sh\nexec {sys.executable} -m imageprune.plugin.main "$@"\n')
    script.chmod(0o755)
    path = f"{tmp_path}{os.pathsep}{os.environ.get('PATH', '')}"
    result = subprocess.run(
        [
            str(cluster.plane.kubectl_bin),
            "imageprune",
            "status",
            POLICY,
            "-o",
            "json",
            f"--kubeconfig={cluster.plane.kubeconfig_path}",
        ],
        capture_output=True,
        text=True,
        env=cliproc.env({"PATH": path}),
        timeout=120,
        check=False,
    )
    assert json.loads(ok(result))["policy"] == POLICY


def test_a_run_with_a_failed_node_exits_1(cluster: Cluster) -> None:
    """Last: it leaves the policy's last run failed. plugin-a's runtime is down, so its
    agent fails the run (RuntimeUnavailable); with rollout.maxFailedNodes 0 the rollout
    may pause before plugin-b, or plugin-b may have run first: a failure either way."""
    node = NODES[0]
    runtime = cluster.runtimes[node]
    runtime.kill()
    try:
        result = plugin(cluster.plane, "run", POLICY)
    finally:
        runtime.start()
    print(result.stdout)
    assert result.returncode == 1, result.stderr + result.stdout
    assert f"  {node}: RuntimeUnavailable, removed 0 images (0 B): " in result.stdout
    run = cluster_kit.status(cluster.plane, POLICY)["run"]
    assert run["nodes"]["failed"] == 1
    assert ("; paused: " in result.stdout) == bool(run.get("paused"))
