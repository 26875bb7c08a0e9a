"""The operator against a real kube-apiserver: it runs as a process, Node objects are
created through the API (no kubelet), policies are applied with kubectl, and the test
plays the agent by patching task /status as docs/protocol.md says.

Every wait polls for a condition with a generous deadline; nothing asserts durations."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from imageprune.api import names
from testkit import cliproc, cluster
from testkit.kube import ControlPlane

pytestmark = pytest.mark.k8s

Tasks = dict[str, dict[str, Any]]


@pytest.fixture(scope="module")
def operator(
    kube_control_plane: ControlPlane,
    imageprune_crds: list[str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[cluster.OperatorProcess]:
    """One operator process for the module, over the chart's CRDs."""
    workdir = tmp_path_factory.mktemp("operator")
    try:
        with cluster.operator(kube_control_plane, workdir, interval=1.0) as process:
            yield process
            assert process.alive(), process.log_tail()
    finally:
        cluster.delete_nodes(kube_control_plane)


@pytest.fixture
def plane(
    operator: cluster.OperatorProcess, kube_control_plane: ControlPlane
) -> Iterator[ControlPlane]:
    yield kube_control_plane
    print(operator.log_tail())  # pytest shows it when the test failed


def nodes(plane: ControlPlane, group: str, count: int, **labels: str) -> list[str]:
    created = [f"{group}-{i}" for i in range(count)]
    for name in created:
        cluster.create_node(plane, name, {"test": group, **labels})
    return created


def run_id(plane: ControlPlane, policy: str) -> str | None:
    return cluster.status(plane, policy).get("run", {}).get("id")


def released(tasks: Tasks, run: str) -> Tasks:
    """Tasks released into `run` whose agent has not finished it."""
    return {
        node: t
        for node, t in tasks.items()
        if t["spec"]["runId"] == run
        and not (t.get("status", {}).get("runId") == run and t["status"].get("completionTime"))
    }


def events(plane: ControlPlane, policy: str) -> list[dict[str, Any]]:
    found = plane.get(
        "events",
        "-A",
        "--field-selector",
        f"involvedObject.kind={names.POLICY_KIND},involvedObject.name={policy}",
    )
    return list(found["items"])


def event_reasons(plane: ControlPlane, policy: str) -> set[str]:
    return {e["reason"] for e in events(plane, policy)}


def condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions", []) if c["type"] == kind), {})


def test_tasks_follow_the_node_selector_and_relabelling(plane: ControlPlane) -> None:
    a, b = nodes(plane, "sel", 2, role="worker")
    (c,) = nodes(plane, "sel-x", 1, role="infra")
    cluster.apply(
        plane,
        cluster.policy(
            "sel",
            nodeSelector={"matchLabels": {"role": "worker"}},
            rollout={"maxConcurrentNodes": "100%"},
        ),
    )
    run = cluster.wait_for("a run", lambda: run_id(plane, "sel"))
    found = cluster.wait_for(
        "tasks for the two workers",
        lambda: (t := cluster.tasks(plane, "sel")) and len(t) == 2 and t,
    )
    assert sorted(found) == [a, b]
    task = found[a]
    assert task["metadata"]["name"] == f"sel.{a}"
    assert task["metadata"]["labels"][names.NODE_LABEL] == a
    assert task["metadata"]["ownerReferences"][0]["name"] == "sel"
    assert task["spec"]["runId"] == run
    assert task["spec"]["trigger"] == "Create"
    assert task["spec"]["mode"] == "DryRun"
    assert task["spec"]["selection"]["unusedFor"] == "2m"  # the CRD default, carried over

    cluster.label_node(plane, c, role="worker")
    cluster.wait_for("a task for the relabelled node", lambda: c in cluster.tasks(plane, "sel"))
    cluster.label_node(plane, a, role="infra")
    cluster.wait_for(
        "the task of the node moved out to go", lambda: a not in cluster.tasks(plane, "sel")
    )
    cluster.wait_for(
        "matched to count the move",
        lambda: cluster.status(plane, "sel")["run"]["nodes"]["matched"] == 2,
    )


def test_waves_stay_within_max_concurrent_nodes_until_the_run_completes(
    plane: ControlPlane,
) -> None:
    group = nodes(plane, "wave", 5)
    cluster.apply(
        plane,
        cluster.policy(
            "wave",
            mode="Enforce",
            nodeSelector={"matchLabels": {"test": "wave"}},
            rollout={"maxConcurrentNodes": 2},
        ),
    )
    run = cluster.wait_for("a run", lambda: run_id(plane, "wave"))
    finished: set[str] = set()
    while len(finished) < len(group):
        flying = cluster.wait_for(
            "a released node",
            lambda: released(cluster.tasks(plane, "wave"), run),
        )
        assert len(flying) <= 2, sorted(flying)
        node, task = sorted(flying.items())[0]
        cluster.agent_starts(plane, task)
        cluster.agent_finishes(plane, task, removed=2, removed_bytes=1024**2)
        finished.add(node)
    status = cluster.wait_for(
        "the run to complete",
        lambda: (s := cluster.status(plane, "wave")).get("run", {}).get("completionTime") and s,
    )
    assert status["run"]["nodes"] == {
        "matched": 5,
        "pending": 0,
        "running": 0,
        "succeeded": 5,
        "failed": 0,
        "skipped": 0,
    }
    assert (status["run"]["imagesRemoved"], status["run"]["reclaimed"]) == (10, "5 MiB")
    assert condition(status, "Ready")["status"] == "True"
    assert condition(status, "Progressing")["status"] == "False"
    reasons = cluster.wait_for(
        "the completion Event",
        lambda: (r := event_reasons(plane, "wave")) >= {"RunCompleted"} and r,
    )
    assert "RunStarted" in reasons


def test_a_failed_node_spends_the_budget_and_pauses_the_rollout(plane: ControlPlane) -> None:
    nodes(plane, "fail", 4)
    cluster.apply(
        plane,
        cluster.policy(
            "fail",
            nodeSelector={"matchLabels": {"test": "fail"}},
            rollout={"maxConcurrentNodes": 1, "maxFailedNodes": 0},
        ),
    )
    run = cluster.wait_for("a run", lambda: run_id(plane, "fail"))
    flying = cluster.wait_for("the first wave", lambda: released(cluster.tasks(plane, "fail"), run))
    ((node, task),) = flying.items()
    cluster.agent_starts(plane, task)
    cluster.agent_finishes(plane, task, failure="RuntimeUnavailable")
    status = cluster.wait_for(
        "the pause", lambda: (s := cluster.status(plane, "fail"))["run"].get("paused") and s
    )
    assert "rollout.maxFailedNodes" in status["run"]["pausedReason"]
    assert status["failedNodes"] == [
        {"node": node, "reason": "RuntimeUnavailable", "message": "simulated failure"}
    ]
    assert condition(status, "Degraded")["reason"] == "RolloutPaused"
    assert condition(status, "Ready")["status"] == "False"
    # The pass that wrote the pause released nothing more, nor will any later one.
    tasks = cluster.tasks(plane, "fail")
    assert [n for n, t in tasks.items() if t["spec"]["runId"] == run] == [node]
    cluster.wait_for(
        "the NodeFailed and RolloutPaused Events",
        lambda: event_reasons(plane, "fail") >= {"NodeFailed", "RolloutPaused"},
    )


def test_run_now_starts_one_run_per_value(plane: ControlPlane) -> None:
    nodes(plane, "now", 2)
    cluster.apply(
        plane,
        cluster.policy(
            "now",
            schedule="0 0 1 1 *",  # far away: only run-now starts runs here
            nodeSelector={"matchLabels": {"test": "now"}},
            rollout={"maxConcurrentNodes": "100%"},
        ),
    )
    status = cluster.wait_for(
        "the next run time", lambda: (s := cluster.status(plane, "now")).get("nextRunTime") and s
    )
    assert "run" not in status
    assert cluster.tasks(plane, "now") == {}

    plane.kubectl("annotate", "ipp", "now", f"{names.RUN_NOW_ANNOTATION}=first")
    first = cluster.wait_for("a run-now run", lambda: run_id(plane, "now"))
    assert cluster.status(plane, "now")["run"]["trigger"] == "RunNow"
    cluster.wait_for(
        "the value recorded as handled",
        lambda: (
            plane.get("ipp", "now")["metadata"]["annotations"].get("imageprune.io/run-now-handled")
            == "first"
        ),
    )
    for task in cluster.wait_for(
        "both tasks", lambda: (t := cluster.tasks(plane, "now")) and len(t) == 2 and t
    ).values():
        cluster.agent_starts(plane, task)
        cluster.agent_finishes(plane, task)
    cluster.wait_for(
        "the run to complete",
        lambda: cluster.status(plane, "now")["run"].get("completionTime"),
    )
    assert run_id(plane, "now") == first  # the same value did not start another run

    plane.kubectl("annotate", "ipp", "now", "--overwrite", f"{names.RUN_NOW_ANNOTATION}=second")
    second = cluster.wait_for("a second run", lambda: (r := run_id(plane, "now")) != first and r)
    assert second.endswith(tuple("0123456789abcdef"))
    assert sum(e["reason"] == "RunStarted" for e in events(plane, "now")) >= 2


def test_suspend_holds_runs_and_the_schedule_starts_them_when_resumed(
    plane: ControlPlane,
) -> None:
    nodes(plane, "cron", 1)
    cluster.apply(
        plane,
        cluster.policy(
            "cron",
            schedule="* * * * *",
            suspend=True,
            nodeSelector={"matchLabels": {"test": "cron"}},
        ),
    )
    status = cluster.wait_for(
        "the suspended status",
        lambda: (s := cluster.status(plane, "cron")).get("conditions") and s,
    )
    assert condition(status, "Ready")["reason"] == "NoRunYet"
    assert "suspended" in condition(status, "Ready")["message"]
    assert "nextRunTime" not in status
    plane.kubectl("annotate", "ipp", "cron", f"{names.RUN_NOW_ANNOTATION}=ignored")
    cluster.wait_for("RunNowIgnored", lambda: "RunNowIgnored" in event_reasons(plane, "cron"))
    assert "run" not in cluster.status(plane, "cron")
    assert cluster.tasks(plane, "cron") == {}

    plane.kubectl("patch", "ipp", "cron", "--type=merge", "-p", '{"spec":{"suspend":false}}')
    run = cluster.wait_for("a scheduled run", lambda: run_id(plane, "cron"), timeout=150)
    assert run.endswith("-schedule")
    status = cluster.status(plane, "cron")
    assert status["run"]["trigger"] == "Schedule"
    assert status["lastScheduleTime"].endswith(":00Z")
    cluster.wait_for("its task", lambda: cluster.tasks(plane, "cron"))


def test_a_restarted_operator_continues_the_same_run(
    plane: ControlPlane, operator: cluster.OperatorProcess
) -> None:
    group = nodes(plane, "restart", 3)
    cluster.apply(
        plane,
        cluster.policy(
            "restart",
            nodeSelector={"matchLabels": {"test": "restart"}},
            rollout={"maxConcurrentNodes": 1},
        ),
    )
    run = cluster.wait_for("a run", lambda: run_id(plane, "restart"))
    for step in range(len(group)):
        flying = cluster.wait_for(
            "the next wave", lambda: released(cluster.tasks(plane, "restart"), run)
        )
        ((_, task),) = flying.items()
        cluster.agent_starts(plane, task)
        if step == 1:
            operator.restart()  # a node is running: the new process must wait for it
        cluster.agent_finishes(plane, task)
    status = cluster.wait_for(
        "the run to complete",
        lambda: (s := cluster.status(plane, "restart"))["run"].get("completionTime") and s,
    )
    assert status["run"]["id"] == run
    assert status["run"]["nodes"]["succeeded"] == 3
    started = [e for e in events(plane, "restart") if e["reason"] == "RunStarted"]
    assert len(started) == 1


def test_a_nodes_own_disk_pressure_run_is_announced_on_its_policy(plane: ControlPlane) -> None:
    nodes(plane, "disk", 1)
    cluster.apply(plane, cluster.policy("disk", nodeSelector={"matchLabels": {"test": "disk"}}))
    ((_, task),) = cluster.wait_for("its task", lambda: cluster.tasks(plane, "disk")).items()
    cluster.patch_task_status(
        plane,
        task["metadata"]["name"],
        {
            "runId": "disk-20261129-120000",
            "trigger": "DiskPressure",
            "completionTime": cluster.now_rfc3339(),
            "report": {"dryRun": False, "removedImages": 4, "removedBytes": 4096},
        },
    )
    event = cluster.wait_for(
        "the DiskPressureRun Event",
        lambda: next((e for e in events(plane, "disk") if e["reason"] == "DiskPressureRun"), None),
    )
    assert "removed 4 images" in event["message"]


def test_the_log_is_json_lines(operator: cluster.OperatorProcess) -> None:
    lines = [line for line in operator.log_lines() if line.strip()]
    assert lines
    for line in lines:
        assert isinstance(json.loads(line), dict), line
    assert not any("succeeded." in line and "Timer 'timer'" in line for line in lines)
    assert not any("HTTP Request:" in line for line in lines)  # httpx's line per request
    messages = [json.loads(line).get("message", "") for line in lines]
    assert any(re.fullmatch(r"listed \d+ nodes and \d+ tasks", m) for m in messages)  # start-up


def test_deleting_a_policy_deletes_its_tasks(plane: ControlPlane) -> None:
    nodes(plane, "del", 2)
    cluster.apply(
        plane,
        cluster.policy(
            "del",
            nodeSelector={"matchLabels": {"test": "del"}},
            rollout={"maxConcurrentNodes": "100%"},
        ),
    )
    cluster.wait_for("two tasks", lambda: len(cluster.tasks(plane, "del")) == 2)
    policy = plane.get("ipp", "del")
    assert "imageprune.io/cleanup" in policy["metadata"]["finalizers"]
    plane.kubectl("delete", "ipp", "del", "--wait=true", "--timeout=90s", timeout=120)
    assert cluster.tasks(plane, "del") == {}


def test_kubectl_shows_the_columns_conditions_and_events(plane: ControlPlane) -> None:
    nodes(plane, "show", 1)
    cluster.apply(plane, cluster.policy("show", nodeSelector={"matchLabels": {"test": "show"}}))
    run = cluster.wait_for("a run", lambda: run_id(plane, "show"))
    task = cluster.wait_for("its task", lambda: released(cluster.tasks(plane, "show"), run))
    for t in task.values():
        cluster.agent_starts(plane, t)
        cluster.agent_finishes(plane, t, removed=1, removed_bytes=2048)
    cluster.wait_for(
        "completion", lambda: cluster.status(plane, "show")["run"].get("completionTime")
    )
    table = plane.kubectl("get", "ipp", "show").stdout.splitlines()
    header = table[0].split()
    assert header == [
        "NAME",
        "MODE",
        "NODES",
        "SUCCEEDED",
        "FAILED",
        "RECLAIMED",
        "LAST",
        "RUN",
        "READY",
        "AGE",
    ]
    row = table[1].split()
    assert row[:5] == ["show", "DryRun", "1", "1", "0"]
    assert "True" in row
    described = plane.kubectl("describe", "ipp", "show").stdout
    for expected in (
        "Conditions:",
        "Ready",
        "RunSucceeded",
        "Events:",
        "RunStarted",
        "RunCompleted",
    ):
        assert expected in described, described


def test_metrics_and_health_endpoints_answer(
    plane: ControlPlane, operator: cluster.OperatorProcess
) -> None:
    nodes(plane, "metrics", 2)
    cluster.apply(
        plane,
        cluster.policy(
            "metrics",
            mode="Enforce",
            nodeSelector={"matchLabels": {"test": "metrics"}},
            rollout={"maxConcurrentNodes": "100%"},
        ),
    )
    run = cluster.wait_for("a run", lambda: run_id(plane, "metrics"))
    found = cluster.wait_for(
        "both tasks",
        lambda: (t := released(cluster.tasks(plane, "metrics"), run)) and len(t) == 2 and t,
    )
    for task in found.values():
        cluster.agent_starts(plane, task)
        cluster.agent_finishes(plane, task, removed=3, removed_bytes=1000)
    cluster.wait_for(
        "completion", lambda: cluster.status(plane, "metrics")["run"].get("completionTime")
    )

    def scrape() -> str:
        url = f"http://127.0.0.1:{operator.metrics_port}/metrics"
        with urllib.request.urlopen(url) as response:
            return str(response.read().decode())

    expected = [
        'imageprune_runs_started_total{policy="metrics",trigger="Create"} 1.0',
        'imageprune_runs_completed_total{policy="metrics"} 1.0',
        'imageprune_nodes_succeeded_total{policy="metrics"} 2.0',
        'imageprune_images_removed_total{policy="metrics",trigger="Create"} 6.0',
        'imageprune_bytes_reclaimed_total{policy="metrics",trigger="Create"} 2000.0',
        'imageprune_policy_nodes{policy="metrics",state="succeeded"} 2.0',
    ]

    def missing() -> list[str]:
        text = scrape()
        return [line for line in expected if line not in text]

    with contextlib.suppress(AssertionError):  # the assert below says what is missing
        cluster.wait_for("the metrics", lambda: not missing(), timeout=30)
    assert missing() == []
    assert 'imageprune_nodes_failed_total{policy="metrics"} 0.0' in scrape()
    with urllib.request.urlopen(f"http://127.0.0.1:{operator.health_port}/healthz") as response:
        assert response.status == 200


@pytest.mark.parametrize("flag", ["--metrics-port", "--health-port"])
@pytest.mark.parametrize("election", ["--leader-election", "--no-leader-election"])
def test_a_port_already_taken_exits_2_naming_the_flag(
    kube_control_plane: ControlPlane, imageprune_crds: list[str], flag: str, election: str
) -> None:
    """Without an election, kopf itself binds /healthz: its OSError was a traceback."""
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))  # noqa: S104 - where the operator listens
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [
                *(sys.executable, "-m", "imageprune.cluster.main"),
                f"--kubeconfig={kube_control_plane.kubeconfig_path}",
                *(election, "--lease-name=port-taken", flag, str(port)),
            ],
            capture_output=True,
            text=True,
            env=cliproc.env(),
            timeout=120,
            check=False,
        )
    assert done.returncode == 2, done.stderr
    assert f"imageprune operator: error: {flag} {port}: " in done.stderr
    assert "Traceback" not in done.stderr
