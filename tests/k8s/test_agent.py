"""`imageprune agent` as a process, against the real kube-apiserver (with the chart's
CRDs) and real containerd nodes: tasks are created directly, as the operator would."""

from __future__ import annotations

import json
import signal
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from imageprune.api.policy import Mode
from testkit import oci
from testkit.agent import (
    AgentProcess,
    admin_token,
    bind_cluster_role,
    condition,
    create_task,
    exec_plugin_kubeconfig,
    get_task,
    kubeconfig,
    request_run,
    restart_apiserver,
    service_account_kubeconfig,
    wait_for_run,
)
from testkit.containerd import SANDBOX_IMAGE, ContainerdNode, Factory
from testkit.kube import ControlPlane

pytestmark = pytest.mark.k8s  # and a real containerd per test, as the cri tests

NOW = {"unusedFor": "0s"}  # images first seen a moment ago count as unused

StartAgent = Callable[..., AgentProcess]


def _unique(prefix: str) -> str:
    # One control plane serves the whole session: names must not collide across tests.
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def plane(kube_control_plane: ControlPlane, imageprune_crds: list[str]) -> ControlPlane:
    return kube_control_plane


@pytest.fixture
def start_agent(plane: ControlPlane, tmp_path: Path) -> Iterator[StartAgent]:
    started: list[AgentProcess] = []

    def start(node: ContainerdNode, node_name: str, **options: object) -> AgentProcess:
        agent = AgentProcess(
            plane,
            node,
            node_name=node_name,
            workdir=tmp_path / node_name,
            **options,  # type: ignore[arg-type]
        )
        started.append(agent.start())
        return agent

    yield start
    for agent in started:
        agent.stop()


def _unused(node: ContainerdNode, *names: str) -> list[oci.BuiltImage]:
    return node.add_images(*(oci.ImageSpec(repo_tags=(f"docker.io/test/{n}:1",)) for n in names))


def test_enforce_removes_only_what_is_removable(
    plane: ControlPlane, containerd: ContainerdNode, start_agent: StartAgent
) -> None:
    spec = oci.ImageSpec
    running, created, exited, excluded, unused_a, unused_b = containerd.add_images(
        spec(repo_tags=("docker.io/test/running:1",)),
        spec(repo_tags=("docker.io/test/created:1",)),
        spec(repo_tags=("docker.io/test/exited:1",)),
        spec(repo_tags=("registry.k8s.io/kept:1",)),
        spec(repo_tags=("docker.io/test/unused:1", "docker.io/test/unused:2")),
        spec(repo_tags=("quay.io/org/unused:1",)),
    )
    sandbox = containerd.run_sandbox("pod")
    containerd.create_container(sandbox, "pod", name="r", image="docker.io/test/running:1")
    containerd.create_container(sandbox, "pod", name="c", image=created.id, start=False)
    gone = containerd.create_container(sandbox, "pod", name="e", image="docker.io/test/exited:1")
    containerd.stop_container(gone)
    node = _unique("node")
    agent = start_agent(containerd, node)

    name = create_task(
        plane,
        policy=_unique("enforce"),
        node=node,
        run_id="r1",
        selection={**NOW, "exclude": ["registry.k8s.io/*"]},
    )
    task = wait_for_run(plane, agent, name, "r1")

    left = containerd.image_ids()
    for image in (running, created, exited, excluded):
        assert image.id in left
    assert containerd.image_id_of(SANDBOX_IMAGE) in left
    assert {unused_a.id, unused_b.id}.isdisjoint(left)
    status = task["status"]
    assert condition(task, "Ready") == ("True", "Succeeded")
    assert condition(task, "Progressing") == ("False", "Succeeded")
    assert condition(task, "Degraded") == ("False", "Succeeded")
    assert status["trigger"] == "Create"
    assert status["startTime"] <= status["completionTime"]
    report = status["report"]
    assert report["dryRun"] is False
    assert report["removedImages"] == 2
    assert report["verdicts"]["InUse"] == 3
    assert report["verdicts"]["Excluded"] == 1
    assert report["verdicts"]["SandboxImage"] == 1
    assert {r["id"] for r in report["results"]} == {unused_a.id, unused_b.id}
    assert {r["outcome"] for r in report["results"]} == {"Removed"}

    code, body = agent.get("/healthz")
    assert code == 200, body
    code, body = agent.get("/metrics")
    assert code == 200
    assert b"imageprune_agent_images_removed_total 2.0" in body
    assert agent.stop() == 0  # SIGTERM: a clean stop


def test_dry_run_removes_nothing_and_reports_candidates(
    plane: ControlPlane, containerd_factory: Factory, start_agent: StartAgent
) -> None:
    containerd = containerd_factory("1.6")
    images = _unused(containerd, "a", "b")
    node = _unique("node")
    agent = start_agent(containerd, node)

    name = create_task(
        plane, policy=_unique("audit"), node=node, run_id="r1", selection=NOW, mode=Mode.DRY_RUN
    )
    task = wait_for_run(plane, agent, name, "r1")

    assert {i.id for i in images} <= containerd.image_ids()
    report = task["status"]["report"]
    assert report["dryRun"] is True
    assert report["outcomes"] == {"WouldRemove": 2}
    assert {r["id"] for r in report["results"]} == {i.id for i in images}
    assert condition(task, "Ready") == ("True", "Succeeded")
    assert "would remove 2" in task["status"]["message"]


def test_a_bad_selection_fails_the_run_and_removes_nothing(
    plane: ControlPlane, containerd_factory: Factory, start_agent: StartAgent
) -> None:
    containerd = containerd_factory("1.6")
    (image,) = _unused(containerd, "a")
    node = _unique("node")
    agent = start_agent(containerd, node)

    # The CRD admits the characters; only the node parser sees the pattern is empty.
    name = create_task(
        plane, policy=_unique("bad"), node=node, run_id="r1", selection={**NOW, "include": ["@@"]}
    )
    task = wait_for_run(plane, agent, name, "r1")

    assert condition(task, "Ready") == ("False", "InvalidSelection")
    assert condition(task, "Degraded") == ("True", "InvalidSelection")
    assert "spec.include[0]" in task["status"]["message"]
    assert image.id in containerd.image_ids()


def test_each_agent_acts_only_on_its_own_tasks(
    plane: ControlPlane, containerd_factory: Factory, start_agent: StartAgent
) -> None:
    first, second = containerd_factory("1.6"), containerd_factory("1.6")
    (on_first,) = _unused(first, "a")
    (on_second,) = _unused(second, "a")
    first_node, second_node = _unique("node"), _unique("node")
    first_agent = start_agent(first, first_node)
    second_agent = start_agent(second, second_node)
    policy = _unique("both")

    first_task = create_task(plane, policy=policy, node=first_node, run_id="r1", selection=NOW)
    wait_for_run(plane, first_agent, first_task, "r1")

    assert on_first.id not in first.image_ids()
    assert on_second.id in second.image_ids()
    second_task = create_task(plane, policy=policy, node=second_node, run_id="r1", selection=NOW)
    wait_for_run(plane, second_agent, second_task, "r1")
    assert on_second.id not in second.image_ids()
    assert second_task not in first_agent.log_text()
    assert first_task not in second_agent.log_text()


def test_usage_is_recorded_between_runs(
    containerd_factory: Factory, start_agent: StartAgent
) -> None:
    containerd = containerd_factory("1.6")
    (used,) = _unused(containerd, "used")
    sandbox = containerd.run_sandbox("pod")
    containerd.create_container(sandbox, "pod", name="r", image="docker.io/test/used:1")
    agent = start_agent(containerd, _unique("node"))
    records = agent.state_dir / "usage.json"

    def recorded() -> bool:
        if not records.exists():
            return False
        entry = json.loads(records.read_text())["images"].get(used.id)
        return entry is not None and entry["lastUsed"] is not None

    agent.wait_until("a usage record of the running container's image", recorded)


def test_runtime_outage_is_reported_and_recovers(
    plane: ControlPlane, containerd_factory: Factory, start_agent: StartAgent
) -> None:
    containerd = containerd_factory("1.6")
    (image,) = _unused(containerd, "a")
    node = _unique("node")
    agent = start_agent(containerd, node, timeout=2.0)
    name = create_task(plane, policy=_unique("outage"), node=node, run_id="r1", selection=NOW)
    wait_for_run(plane, agent, name, "r1")
    (later,) = _unused(containerd, "later")

    assert agent.get("/healthz")[0] == 200
    containerd.freeze()
    try:
        agent.wait_until(
            "Degraded RuntimeUnavailable",
            lambda: condition(get_task(plane, name), "Degraded") == ("True", "RuntimeUnavailable"),
        )
        agent.wait_until("/healthz failing", lambda: agent.get("/healthz")[0] == 503)
        # The last run's result stays as it was.
        assert condition(get_task(plane, name), "Ready") == ("True", "Succeeded")
        request_run(plane, name, "r2")
        task = wait_for_run(plane, agent, name, "r2")
        assert condition(task, "Ready") == ("False", "RuntimeUnavailable")
        assert "nothing removed" in task["status"]["message"]
    finally:
        containerd.freeze(frozen=False)
    assert later.id in containerd.image_ids()
    agent.wait_until(
        "Degraded cleared",
        lambda: condition(get_task(plane, name), "Degraded") == ("False", "RuntimeAvailable"),
    )
    agent.wait_until("/healthz passing again", lambda: agent.get("/healthz")[0] == 200)
    request_run(plane, name, "r3")
    task = wait_for_run(plane, agent, name, "r3")
    assert condition(task, "Ready") == ("True", "Succeeded")
    assert later.id not in containerd.image_ids()
    assert image.id not in containerd.image_ids()
    assert "cannot record image usage (attempt 1)" in agent.log_text()


def test_disk_pressure_runs_the_policy_locally(
    plane: ControlPlane, containerd_factory: Factory, start_agent: StartAgent
) -> None:
    containerd = containerd_factory("1.6")
    images = _unused(containerd, "a")
    # A threshold every real filesystem is over: the check must trigger.
    assert containerd.image_filesystem_used_percent() >= 1
    node = _unique("node")
    agent = start_agent(containerd, node)
    selection = {**NOW, "diskUsage": {"highPercent": 1, "lowPercent": 0.5}}
    name = create_task(
        plane,
        policy=_unique("disk"),
        node=node,
        run_id="r1",
        selection=selection,
        mode=Mode.DRY_RUN,
    )

    def disk_run_done() -> bool:
        status = get_task(plane, name).get("status") or {}
        return (
            status.get("trigger") == "DiskPressure"
            # Under the operator's run id once the node has done that run, else its own.
            and (status.get("runId") == "r1" or str(status.get("runId")).startswith("disk-"))
            and bool(status.get("completionTime"))
        )

    agent.wait_until("a DiskPressure run", disk_run_done)
    report = get_task(plane, name)["status"]["report"]
    assert report["dryRun"] is True  # the policy is DryRun, so the local run is too
    assert report["imageFs"]["capacityBytes"] > 0
    assert {i.id for i in images} <= containerd.image_ids()


def test_the_agent_resumes_after_an_apiserver_restart(
    plane: ControlPlane, containerd_factory: Factory, start_agent: StartAgent
) -> None:
    containerd = containerd_factory("1.6")
    node = _unique("node")
    agent = start_agent(containerd, node)
    name = create_task(plane, policy=_unique("restart"), node=node, run_id="r1", selection=NOW)
    wait_for_run(plane, agent, name, "r1")

    restart_apiserver(plane)
    (image,) = _unused(containerd, "after")
    request_run(plane, name, "r2")

    task = wait_for_run(plane, agent, name, "r2")
    assert condition(task, "Ready") == ("True", "Succeeded")
    assert image.id not in containerd.image_ids()
    log = agent.log_text()
    assert "failed (attempt 1)" in log
    assert "retrying in" in log
    # Reconnects resume the watch; only a 410 (the new apiserver's cache may not reach
    # back far enough) lists again: at most once more than at start.
    assert sum("listed /apis" in line for line in log.splitlines()) <= 2


def test_a_service_account_token_with_the_agents_role_is_enough(
    plane: ControlPlane, containerd_factory: Factory, start_agent: StartAgent
) -> None:
    containerd = containerd_factory("1.6")
    (image,) = _unused(containerd, "a")
    node = _unique("node")
    account = _unique("agent")
    kubeconfig = service_account_kubeconfig(plane, account, bind=False)
    agent = start_agent(containerd, node, kubeconfig=kubeconfig)
    name = create_task(plane, policy=_unique("rbac"), node=node, run_id="r1", selection=NOW)

    # Without its role the agent says why, and keeps trying.
    agent.wait_until("a 403 in the log", lambda: "HTTP 403 Forbidden" in agent.log_text())
    assert image.id in containerd.image_ids()
    bind_cluster_role(plane, account)

    task = wait_for_run(plane, agent, name, "r1")
    assert condition(task, "Ready") == ("True", "Succeeded")
    assert image.id not in containerd.image_ids()


def test_the_agent_follows_its_rotated_token_file(
    plane: ControlPlane, containerd_factory: Factory, start_agent: StartAgent
) -> None:
    """As the kubelet rotates a pod's projected token: the file is replaced with a new
    token and the old one is revoked (here: deleting the Secret it is bound to)."""
    containerd = containerd_factory("1.6")
    node, account = _unique("node"), _unique("agent")
    plane.kubectl("create", "serviceaccount", account, "-n", "default")
    bind_cluster_role(plane, account)

    def bound_token(secret: str) -> str:
        plane.kubectl("create", "secret", "generic", secret, "-n", "default")
        return plane.kubectl(
            "create",
            "token",
            account,
            "-n",
            "default",
            "--bound-object-kind=Secret",
            f"--bound-object-name={secret}",
        ).stdout.strip()

    old = bound_token(f"{account}-1")
    token_file = plane.workdir / f"{account}.token"
    token_file.write_text(old)
    agent = start_agent(
        containerd, node, kubeconfig=kubeconfig(plane, account, {"tokenFile": str(token_file)})
    )
    name = create_task(plane, policy=_unique("rotate"), node=node, run_id="r1", selection=NOW)
    wait_for_run(plane, agent, name, "r1")

    swap = token_file.with_suffix(".new")
    swap.write_text(bound_token(f"{account}-2"))
    swap.replace(token_file)
    plane.kubectl("delete", "secret", f"{account}-1", "-n", "default")
    with_old = kubeconfig(plane, f"{account}-old", {"token": old})
    agent.wait_until(
        "the old token refused",
        lambda: (
            "Unauthorized"
            in plane.kubectl("get", "imageprunetasks", kubeconfig=with_old, check=False).stderr
        ),
    )
    (image,) = _unused(containerd, "after")
    request_run(plane, name, "r2")

    task = wait_for_run(plane, agent, name, "r2")
    assert condition(task, "Ready") == ("True", "Succeeded")
    assert image.id not in containerd.image_ids()


@pytest.mark.parametrize(
    "version", ["client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1"]
)
def test_an_exec_credential_plugin_logs_the_agent_in(
    plane: ControlPlane, containerd_factory: Factory, start_agent: StartAgent, version: str
) -> None:
    containerd = containerd_factory("1.6")
    (image,) = _unused(containerd, "a")
    node, account = _unique("node"), _unique("exec")
    plugin = exec_plugin_kubeconfig(
        plane, account, api_version=version, token=admin_token(plane, account)
    )
    agent = start_agent(containerd, node, kubeconfig=plugin)
    name = create_task(plane, policy=_unique("exec"), node=node, run_id="r1", selection=NOW)

    task = wait_for_run(plane, agent, name, "r1")
    assert condition(task, "Ready") == ("True", "Succeeded")
    assert image.id not in containerd.image_ids()


def test_a_failing_exec_plugin_stops_the_agent_naming_it(
    plane: ControlPlane, containerd_factory: Factory, start_agent: StartAgent
) -> None:
    plugin = exec_plugin_kubeconfig(
        plane, "broken-agent", api_version="client.authentication.k8s.io/v1", token=None
    )
    agent = start_agent(containerd_factory("1.6"), _unique("node"), kubeconfig=plugin)
    assert agent.wait_exit() == 2
    log = agent.log_text()
    assert "broken-agent-credential-plugin' failed with exit code 1" in log
    assert "cannot reach the token service" in log
    assert "Traceback" not in log


def test_sigterm_mid_run_leaves_it_for_the_next_agent_and_exits_cleanly(
    plane: ControlPlane, containerd_factory: Factory, start_agent: StartAgent
) -> None:
    containerd = containerd_factory("1.6")
    node = _unique("node")
    # Long runtime deadlines and idle loops: the run below can only end by the shutdown.
    agent = start_agent(
        containerd,
        node,
        timeout=120.0,
        usage_interval="1h",
        disk_check_interval="1h",
        extra=["--shutdown-grace=2s"],
    )
    name = create_task(plane, policy=_unique("sigterm"), node=node, run_id="r1", selection=NOW)
    wait_for_run(plane, agent, name, "r1")

    containerd.freeze()  # the next run hangs observing the node
    try:
        request_run(plane, name, "r2")
        agent.wait_until(
            "run r2 under way",
            lambda: condition(get_task(plane, name), "Progressing") == ("True", "Running"),
        )
        agent.signal(signal.SIGTERM)
        assert agent.wait_exit(timeout=60) == 0
    finally:
        containerd.freeze(frozen=False)
    # Left unfinished, as after a crash: the operator still counts the node as running,
    # not failed, and the DaemonSet's next agent runs it again.
    task = get_task(plane, name)
    assert task["status"]["runId"] == "r2"
    assert not task["status"].get("completionTime")
    assert condition(task, "Progressing") == ("True", "Interrupted")
    assert condition(task, "Ready")[0] == "Unknown"
    assert "interrupted by shutdown: 0 images" in task["status"]["message"]
    assert "the agent's next start runs r2 again" in task["status"]["message"]
    agent.start()  # the same node and state directory, as a recreated pod
    task = wait_for_run(plane, agent, name, "r2")
    assert condition(task, "Ready") == ("True", "Succeeded")
