"""Two operators on the real apiserver elect a leader through a Lease: only the leader
writes; a standby takes over from a leader killed with SIGKILL once the lease expires,
and at once from one stopped with SIGTERM (it releases the lease); a leader whose lease
was taken from it exits rather than write beside the new holder.

Short lease timings keep the waits short; nothing asserts durations."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testkit import cluster, rbac
from testkit.kube import ControlPlane, KubectlError

pytestmark = pytest.mark.k8s

LEASE_NAMESPACE = "default"
FAST = ["--lease-duration=6", "--renew-deadline=4", "--retry-period=1"]
STARTING = "imageprune operator starting"  # logged once kopf is about to run


@pytest.fixture(scope="module")
def plane(kube_control_plane: ControlPlane, imageprune_crds: list[str]) -> Iterator[ControlPlane]:
    yield kube_control_plane
    kube_control_plane.kubectl("delete", "leases", "--all", f"--namespace={LEASE_NAMESPACE}")
    cluster.delete_nodes(kube_control_plane)


def start(plane: ControlPlane, workdir: Path, lease: str, *timing: str) -> cluster.OperatorProcess:
    workdir.mkdir()
    args = [f"--lease-namespace={LEASE_NAMESPACE}", f"--lease-name={lease}", *(timing or FAST)]
    return cluster.OperatorProcess(plane, workdir, interval=1.0, extra_args=args)


def spec(plane: ControlPlane, lease: str) -> dict[str, Any]:
    try:
        body = plane.get("lease", lease, f"--namespace={LEASE_NAMESPACE}")
    except KubectlError:
        return {}
    return dict(body.get("spec") or {})


def logged(process: cluster.OperatorProcess, text: str) -> bool:
    return any(text in line for line in process.log_lines())


def holder_of(process: cluster.OperatorProcess) -> str:
    """The identity a process logged when it took the lead."""
    for line in process.log_lines():
        if "leading (lease" in line:
            return str(json.loads(line)["message"]).rsplit("as ", 1)[1].rstrip(")")
    return ""


def leads(plane: ControlPlane, process: cluster.OperatorProcess, lease: str) -> bool:
    me = holder_of(process)
    return bool(me) and spec(plane, lease).get("holderIdentity") == me


def healthz(process: cluster.OperatorProcess) -> int:
    url = f"http://127.0.0.1:{process.health_port}/healthz"
    with urllib.request.urlopen(url, timeout=5) as answer:
        return int(answer.status)


def remove_policy(plane: ControlPlane, name: str) -> None:
    """While the leader runs it removes the finalizer; after a failure there may be none
    leading, and the finalizer goes by hand (else the CRDs' removal would hang)."""
    try:
        plane.kubectl("delete", "imageprunepolicies", name, "--wait=true", "--timeout=60s")
    except KubectlError:
        unfinalized = json.dumps({"metadata": {"finalizers": None}})
        plane.kubectl("patch", "imageprunepolicies", name, "--type=merge", "-p", unfinalized)


def finish_run(plane: ControlPlane, policy: str, count: int) -> dict[str, Any]:
    """Play the agents until the policy's run completes; its status."""
    run = cluster.wait_for("a run", lambda: cluster.status(plane, policy).get("run", {}).get("id"))
    tasks = cluster.wait_for(
        "a task per node",
        lambda: len(t := cluster.tasks(plane, policy)) == count and t,
    )
    for task in tasks.values():
        assert task["spec"]["runId"] == run
        cluster.agent_starts(plane, task)
        cluster.agent_finishes(plane, task)
    return dict(
        cluster.wait_for(
            "the run to complete",
            lambda: (s := cluster.status(plane, policy)).get("run", {}).get("completionTime") and s,
        )
    )


def test_only_the_leader_writes_and_a_standby_takes_over_from_a_killed_one(
    plane: ControlPlane, tmp_path: Path
) -> None:
    for i in range(4):
        cluster.create_node(plane, f"lead-{i}", {"test": "lead"})
    first = start(plane, tmp_path / "first", "kill")
    second: cluster.OperatorProcess | None = None
    try:
        cluster.wait_for("the first operator to lead", lambda: leads(plane, first, "kill"))
        second = start(plane, tmp_path / "second", "kill")
        cluster.wait_for("the second to stand by", lambda: logged(second, "standby:"))
        assert healthz(second) == 200  # the kubelet leaves a standby alone

        cluster.apply(
            plane,
            cluster.policy(
                "lead",
                nodeSelector={"matchLabels": {"test": "lead"}},
                rollout={"maxConcurrentNodes": "100%"},
            ),
        )
        cluster.wait_for("a task per node", lambda: len(cluster.tasks(plane, "lead")) == 4)
        # The standby never started kopf, so it wrote nothing: no task, no status, no 409.
        assert not logged(second, STARTING), second.log_tail()
        transitions = spec(plane, "kill")["leaseTransitions"]

        first.kill()
        cluster.wait_for("the standby to take over", lambda: leads(plane, second, "kill"))
        assert spec(plane, "kill")["leaseTransitions"] == transitions + 1
        status = finish_run(plane, "lead", 4)
        assert status["run"]["nodes"]["succeeded"] == 4
    finally:
        remove_policy(plane, "lead")
        first.stop()
        if second is not None:
            second.stop()


def test_sigterm_releases_the_lease_so_the_standby_need_not_wait_for_it_to_expire(
    plane: ControlPlane, tmp_path: Path
) -> None:
    # A lease far longer than the wait below: only a release lets the standby in.
    slow = ["--lease-duration=300", "--renew-deadline=10", "--retry-period=1"]
    first = start(plane, tmp_path / "first", "term", *slow)
    second = start(plane, tmp_path / "second", "term", *slow)
    try:
        leader, standby = cluster.wait_for(
            "one of two to lead",
            lambda: (
                (leads(plane, first, "term") and (first, second))
                or (leads(plane, second, "term") and (second, first))
            ),
        )
        cluster.wait_for("the other to stand by", lambda: logged(standby, "standby:"))
        # Stopped once its start is over: a SIGTERM in the middle of kopf's start can
        # outlast the 15 s grace (docs/development.md, Known gaps).
        cluster.apply(plane, cluster.policy("term", nodeSelector={"matchLabels": {"t": "no"}}))
        cluster.wait_for(
            "the leader to write the policy's status", lambda: cluster.status(plane, "term")
        )
        leader.stop()
        assert leader.exit_code() == 0, leader.log_tail()
        assert logged(leader, "released the lease"), leader.log_tail()
        cluster.wait_for(
            "the standby to take over", lambda: leads(plane, standby, "term"), timeout=60
        )
    finally:
        remove_policy(plane, "term")
        first.stop()
        second.stop()


def test_a_leader_whose_lease_is_taken_exits_instead_of_writing_beside_the_new_holder(
    plane: ControlPlane, tmp_path: Path
) -> None:
    leader = start(plane, tmp_path / "leader", "taken")
    try:
        cluster.wait_for("it to lead", lambda: leads(plane, leader, "taken"))
        # Another candidate's write, as after a partition that outlasted the lease.
        intruder = {"spec": {"holderIdentity": "intruder", "leaseDurationSeconds": 600}}
        plane.kubectl(
            "patch",
            "lease",
            "taken",
            f"--namespace={LEASE_NAMESPACE}",
            "--type=merge",
            "-p",
            json.dumps(intruder),
        )
        code = cluster.wait_for("it to exit", leader.exit_code)
        assert code == 1, leader.log_tail()
        assert logged(leader, "lost the lead"), leader.log_tail()
        assert spec(plane, "taken")["holderIdentity"] == "intruder"
    finally:
        leader.stop()


def test_an_operator_refused_the_lease_by_rbac_exits_naming_the_permission(
    plane: ControlPlane, tmp_path: Path
) -> None:
    (tmp_path / "op").mkdir()
    args = [f"--lease-namespace={LEASE_NAMESPACE}", "--lease-name=refused", *FAST]
    # Everything but the chart's leases Role.
    rules = rbac.OPERATOR_RULES
    with plane.user_with_rules("imageprune-operator-no-leases", rules) as kubeconfig:
        operator = cluster.OperatorProcess(
            plane, tmp_path / "op", interval=1.0, kubeconfig=kubeconfig, extra_args=args
        )
        try:
            code = cluster.wait_for("it to give up", operator.exit_code)
            log = operator.log_tail()
            assert code == 1, log
            assert "leases.coordination.k8s.io in namespace default" in log, log
            assert "Traceback" not in log, log
            assert not logged(operator, STARTING), log  # kopf never ran
            assert spec(plane, "refused") == {}
        finally:
            operator.stop()
