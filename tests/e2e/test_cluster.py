"""The whole cluster half, end to end: a real kube-apiserver with the chart installed by
`helm install` (CRDs, RBAC, admission policies), three Node objects each backed by its own
real containerd and its own `imageprune agent` process, and `imageprune operator` as a
process. The operator and the agents log in as the chart's service accounts, with
TokenRequest tokens (each agent's bound to its Node, as a pod's is), not as admin.
Policies go in with `kubectl apply -f`, as a user applies them.

The tests run in file order and share the cluster: each one builds on what the previous
left (dry run, then enforce, then a relabelled node, then a failing one, then delete)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from imageprune.api import names
from testkit import chart, oci
from testkit import cluster as cluster_kit
from testkit.agent import AgentProcess
from testkit.containerd import SANDBOX_IMAGE, ContainerdNode, running
from testkit.kube import ControlPlane

pytestmark = pytest.mark.e2e

POLICY = "e2e-web"
REGISTRY = "registry.imageprune.test"
APPS = tuple(f"{REGISTRY}/e2e/app:{n}" for n in (1, 2, 3))  # unused: removable
IN_USE = {
    "running": f"{REGISTRY}/e2e/web:1",
    "created": f"{REGISTRY}/e2e/worker:1",
    "exited": f"{REGISTRY}/e2e/job:1",
}
EXCLUDED = f"{REGISTRY}/keep/tool:1"
PINNED = f"{REGISTRY}/e2e/pinned:1"  # pinned on 2.x only: containerd 1.6 never reports it

# name -> (containerd flavour, labels)
NODES = {
    "e2e-a": ("2.x", {"pool": "web"}),
    "e2e-b": ("1.6", {"pool": "web"}),
    "e2e-c": ("2.x", {"pool": "batch"}),
}


@dataclasses.dataclass
class Node:
    name: str
    runtime: ContainerdNode
    agent: AgentProcess
    ids: dict[str, str]  # reference -> image ID

    def present(self, ref: str) -> bool:
        return self.ids[ref] in self.runtime.image_ids()


@dataclasses.dataclass
class Cluster:
    plane: ControlPlane
    nodes: dict[str, Node]
    operator: cluster_kit.OperatorProcess
    workdir: Path
    most_running: int = 0

    def _running(self, run_id: str) -> int:
        statuses = [t.get("status") or {} for t in cluster_kit.tasks(self.plane, POLICY).values()]
        return sum(1 for s in statuses if s.get("runId") == run_id and not s.get("completionTime"))

    def apply_policy(self, **spec: Any) -> None:
        """`kubectl apply -f FILE`, from a YAML file as a user writes one."""
        manifest = cluster_kit.policy(POLICY, **spec)
        path = self.workdir / f"{POLICY}.yaml"
        path.write_text(yaml.safe_dump(manifest))
        self.plane.kubectl("apply", "-f", str(path))

    def run(self) -> dict[str, Any]:
        return dict(cluster_kit.status(self.plane, POLICY).get("run") or {})

    def wait_run_done(self, *, after: str | None, what: str) -> dict[str, Any]:
        """The policy's run once a run other than `after` has completed or paused. On the
        way, the most nodes seen running it at once go into `self.most_running` (a
        sample: a wave too wide can only be missed, never invented)."""
        self.most_running = 0

        def done() -> dict[str, Any] | None:
            run = self.run()
            if run.get("id") and run["id"] != after:
                self.most_running = max(self.most_running, self._running(run["id"]))
            if (
                run.get("id")
                and run["id"] != after
                and (run.get("completionTime") or run.get("paused"))
            ):
                return run
            return None

        try:
            return cluster_kit.wait_for(what, done, timeout=180)
        except AssertionError as err:
            logs = "\n".join(
                f"--- agent {n.name}:\n{n.agent.log_text()[-3000:]}" for n in self.nodes.values()
            )
            raise AssertionError(
                f"{err}\n--- operator:\n{self.operator.log_tail()}\n{logs}"
            ) from None


def _populate(runtime: ContainerdNode) -> dict[str, str]:
    """Unused app images, images used by a running, a created and an exited container,
    an excluded one, a pinned one (2.x), and the sandbox image; returns their IDs."""
    specs = [oci.ImageSpec(repo_tags=(ref,)) for ref in (*APPS, *IN_USE.values(), EXCLUDED)]
    if runtime.flavour.name != "1.6":
        specs.append(oci.ImageSpec(repo_tags=(PINNED,)))
    built = runtime.add_images(*specs)
    ids = {image.repo_tags[0]: image.id for image in built}
    if PINNED in ids:
        runtime.pin(PINNED)
    sandbox = runtime.run_sandbox("web")
    ids[SANDBOX_IMAGE] = runtime.image_id_of(SANDBOX_IMAGE)
    runtime.create_container(sandbox, "web", name="web", image=IN_USE["running"])
    runtime.create_container(sandbox, "web", name="worker", image=IN_USE["created"], start=False)
    job = runtime.create_container(sandbox, "web", name="job", image=IN_USE["exited"])
    runtime.stop_container(job)
    return ids


RELEASE = NAMESPACE = "imageprune"


def _login(plane: ControlPlane, account: str, *, node: str | None = None) -> Path:
    """A kubeconfig with a TokenRequest token of the chart's service account `account`."""
    token = chart.service_account_token(plane, NAMESPACE, account, node=node)
    return chart.token_kubeconfig(plane, f"e2e-{account}-{node or 'cluster'}", token)


@pytest.fixture(scope="module")
def cluster(
    kube_control_plane: ControlPlane,
    cluster_helm: chart.Helm,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Cluster]:
    plane = kube_control_plane
    workdir = tmp_path_factory.mktemp("e2e")
    with contextlib.ExitStack() as stack:
        # Last out: the CRDs, which helm keeps on uninstall as it does for users.
        stack.callback(chart.delete_crds, plane)
        stack.enter_context(cluster_helm.installed(RELEASE, NAMESPACE))
        nodes = {}
        for name, (flavour, labels) in NODES.items():
            runtime = stack.enter_context(running(flavour))
            ids = _populate(runtime)
            cluster_kit.create_node(plane, name, labels)
            stack.callback(plane.kubectl, "delete", "node", name, "--ignore-not-found")
            agent = stack.enter_context(
                AgentProcess(
                    plane,
                    runtime,
                    node_name=name,
                    workdir=workdir / name,
                    kubeconfig=_login(plane, "imageprune-agent", node=name),
                )
            )
            nodes[name] = Node(name, runtime, agent, ids)
        operator = stack.enter_context(
            cluster_kit.operator(
                plane,
                workdir,
                interval=1.0,
                kubeconfig=_login(plane, "imageprune-operator"),
                extra_args=[f"--lease-namespace={NAMESPACE}"],  # the chart's Role allows it
            )
        )
        yield Cluster(plane, nodes, operator, workdir)


WEB_POLICY: dict[str, Any] = {
    "nodeSelector": {"matchLabels": {"pool": "web"}},
    "exclude": [f"{REGISTRY}/keep/*"],
    "unusedFor": "0s",  # the images were imported a moment ago
    "rollout": {"maxConcurrentNodes": 1},
}


def _protected(node: Node) -> list[str]:
    refs = [*IN_USE.values(), EXCLUDED, SANDBOX_IMAGE]
    return [*refs, PINNED] if PINNED in node.ids else refs


def test_dry_run_reports_candidates_and_removes_nothing(cluster: Cluster) -> None:
    cluster.apply_policy(**WEB_POLICY)  # no mode: DryRun, the safe default
    run = cluster.wait_run_done(after=None, what="the dry run")

    assert run["mode"] == "DryRun"
    assert run["nodes"]["matched"] == 2
    assert run["nodes"]["succeeded"] == 2
    assert run["candidates"] == 2 * len(APPS)
    assert run["imagesRemoved"] == 0
    for node in cluster.nodes.values():
        assert all(node.present(ref) for ref in node.ids), node.name
    assert set(cluster_kit.tasks(cluster.plane, POLICY)) == {"e2e-a", "e2e-b"}

    table = cluster.plane.kubectl("get", "ipp", POLICY).stdout
    header = table.splitlines()[0].split()
    for column in ("MODE", "NODES", "SUCCEEDED", "FAILED", "RECLAIMED", "LAST", "READY", "AGE"):
        assert column in header, table
    assert "DryRun" in table


def test_enforce_prunes_only_matching_nodes_and_keeps_every_protected_image(
    cluster: Cluster,
) -> None:
    before = cluster.run()["id"]
    cluster.apply_policy(**WEB_POLICY, mode="Enforce")  # a spec change starts a run
    run = cluster.wait_run_done(after=before, what="the enforced run")

    assert run["trigger"] == "SpecChange"
    assert run["nodes"]["succeeded"] == 2, run
    assert cluster.most_running <= 1  # rollout.maxConcurrentNodes
    assert run["imagesRemoved"] == 2 * len(APPS)
    assert run["bytesReclaimed"] > 0
    for name in ("e2e-a", "e2e-b"):
        node = cluster.nodes[name]
        assert not any(node.present(ref) for ref in APPS), name
        assert all(node.present(ref) for ref in _protected(node)), name
    untouched = cluster.nodes["e2e-c"]
    assert all(untouched.present(ref) for ref in untouched.ids)

    task = cluster_kit.tasks(cluster.plane, POLICY)["e2e-a"]
    report = task["status"]["report"]
    assert report["dryRun"] is False
    assert report["removedImages"] == len(APPS)
    assert report["verdicts"]["InUse"] == len(IN_USE)
    assert report["verdicts"]["Excluded"] == 1

    described = cluster.plane.kubectl("describe", "ipp", POLICY).stdout
    assert "Conditions:" in described
    assert "RunCompleted" in described or "RunSucceeded" in described
    assert "Events:" in described
    assert "RunStarted" in described


def test_relabelled_node_moves_in_and_run_now_prunes_it(cluster: Cluster) -> None:
    before = cluster.run()["id"]
    cluster_kit.label_node(cluster.plane, "e2e-c", pool="web")
    cluster.plane.kubectl("annotate", "ipp", POLICY, f"{names.RUN_NOW_ANNOTATION}=first")
    run = cluster.wait_run_done(after=before, what="the run-now run")

    assert run["trigger"] == "RunNow"
    assert run["nodes"]["matched"] == 3
    assert run["nodes"]["succeeded"] == 3, run
    node = cluster.nodes["e2e-c"]
    assert not any(node.present(ref) for ref in APPS)
    assert all(node.present(ref) for ref in _protected(node))

    cluster_kit.label_node(cluster.plane, "e2e-c", pool=None)
    cluster_kit.wait_for(
        "the task of the node that left the selector to go",
        lambda: "e2e-c" not in cluster_kit.tasks(cluster.plane, POLICY),
    )


def test_a_failing_node_spends_the_budget_and_pauses_the_rollout(cluster: Cluster) -> None:
    failing = cluster.nodes["e2e-a"]
    for node in cluster.nodes.values():  # something to remove again
        node.runtime.add_images(oci.ImageSpec(repo_tags=(f"{REGISTRY}/e2e/app:4",)))
    before = cluster.run()["id"]
    failing.runtime.freeze()  # the runtime stops answering: the agent's run fails
    try:
        cluster.plane.kubectl(
            "annotate", "ipp", POLICY, "--overwrite", f"{names.RUN_NOW_ANNOTATION}=second"
        )
        run = cluster.wait_run_done(after=before, what="the rollout to pause or finish")
    finally:
        failing.runtime.freeze(frozen=False)

    assert run["paused"] is True, run
    assert run["nodes"]["failed"] == 1
    failed = cluster_kit.status(cluster.plane, POLICY)["failedNodes"]
    assert [f["node"] for f in failed] == ["e2e-a"]
    conditions = {c["type"]: c for c in cluster_kit.status(cluster.plane, POLICY)["conditions"]}
    assert conditions["Degraded"]["status"] == "True"
    assert conditions["Ready"]["status"] == "False"
    events = cluster.plane.get("events", "-n", "default")["items"]
    assert any(
        e["reason"] == "RolloutPaused" and e["involvedObject"]["name"] == POLICY for e in events
    ), json.dumps([e["reason"] for e in events])


def test_suspend_holds_run_now_and_the_schedule_runs_once_resumed(cluster: Cluster) -> None:
    before = cluster.run()["id"]
    cluster.apply_policy(**WEB_POLICY, mode="Enforce", suspend=True, schedule="* * * * *")
    cluster.plane.kubectl(
        "annotate", "ipp", POLICY, "--overwrite", f"{names.RUN_NOW_ANNOTATION}=third"
    )

    def ignored() -> bool:
        events = cluster.plane.get("events", "-n", "default")["items"]
        return any(
            e["reason"] == "RunNowIgnored" and e["involvedObject"]["name"] == POLICY for e in events
        )

    cluster_kit.wait_for("the run-now request to be ignored while suspended", ignored)
    assert cluster.run()["id"] == before

    cluster.apply_policy(**WEB_POLICY, mode="Enforce", schedule="* * * * *")
    run = cluster.wait_run_done(after=before, what="a scheduled run")
    assert run["trigger"] == "Schedule"
    assert "nextRunTime" in cluster_kit.status(cluster.plane, POLICY)
    assert run["nodes"]["succeeded"] == 2, run  # e2e-a answers again
    for name in ("e2e-a", "e2e-b"):
        node = cluster.nodes[name]
        assert all(node.present(ref) for ref in _protected(node)), name


def test_deleting_the_policy_deletes_its_tasks(cluster: Cluster) -> None:
    assert cluster_kit.tasks(cluster.plane, POLICY)
    cluster.plane.kubectl("delete", "ipp", POLICY, "--wait=true", "--timeout=120s")
    assert cluster_kit.tasks(cluster.plane, POLICY) == {}


def test_no_component_was_refused_as_the_charts_service_accounts(cluster: Cluster) -> None:
    """Every test above ran with the chart's least privilege: nothing was refused."""
    logs = "\n".join(cluster.operator.log_lines())
    logs += "".join(node.agent.log_text() for node in cluster.nodes.values())
    for refusal in ("Forbidden", "forbidden", "Not enough permissions", " 403", " 401"):
        assert refusal not in logs
