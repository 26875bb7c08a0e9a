"""Least privilege, as the real apiserver enforces it for the chart's two service accounts:
an RBAC matrix (`kubectl auth can-i --as`), and the two admission policies with tokens
from the TokenRequest API (an agent's bound to a Node, as a pod's names its node)."""

from __future__ import annotations

import datetime
import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from imageprune.api import task as api_task
from imageprune.api.policy import Mode, Trigger
from testkit import agent as agent_kit
from testkit import chart, cluster, kube
from testkit.containerd import Factory
from testkit.kube import ControlPlane

pytestmark = pytest.mark.k8s

NAMESPACE = "imageprune-system"
RELEASE = "imageprune"
OPERATOR = f"system:serviceaccount:{NAMESPACE}:imageprune-operator"
AGENT = f"system:serviceaccount:{NAMESPACE}:imageprune-agent"
NODES = ("node-a", "node-b")

# (verb, resource, namespace or "" for cluster scope); resource may name a subresource.
OPERATOR_MAY = [
    ("create", "imageprunetasks", ""),
    ("patch", "imageprunetasks", ""),
    ("delete", "imageprunetasks", ""),
    ("deletecollection", "imageprunetasks", ""),
    ("list", "imageprunetasks", ""),
    ("watch", "imageprunetasks", ""),
    ("get", "imageprunepolicies", ""),
    ("list", "imageprunepolicies", ""),
    ("watch", "imageprunepolicies", ""),
    ("patch", "imageprunepolicies", ""),
    ("patch", "imageprunepolicies/status", ""),
    ("list", "nodes", ""),
    ("watch", "nodes", ""),
    ("create", "events", "default"),
    ("create", "events", NAMESPACE),
    ("list", "pods", NAMESPACE),
    ("watch", "pods", NAMESPACE),
    ("get", "leases", NAMESPACE),
    ("create", "leases", NAMESPACE),
    ("patch", "leases", NAMESPACE),
]
OPERATOR_MAY_NOT = [
    ("patch", "imageprunetasks/status", ""),
    ("update", "imageprunetasks/status", ""),
    ("update", "imageprunetasks", ""),
    ("create", "imageprunepolicies", ""),
    ("delete", "imageprunepolicies", ""),
    ("update", "imageprunepolicies", ""),
    ("patch", "nodes", ""),
    ("delete", "nodes", ""),
    ("get", "secrets", NAMESPACE),
    ("list", "secrets", ""),
    ("create", "pods", NAMESPACE),
    ("delete", "pods", NAMESPACE),
    ("get", "pods", NAMESPACE),
    ("list", "pods", ""),
    ("list", "pods", "default"),
    ("create", "clusterrolebindings", ""),
    ("create", "rolebindings", NAMESPACE),
    ("patch", "clusterroles", ""),
    ("create", "customresourcedefinitions", ""),
    ("patch", "customresourcedefinitions", ""),
    ("create", "events", "kube-system"),
    ("create", "serviceaccounts/token", NAMESPACE),
    ("delete", "leases", NAMESPACE),
    ("get", "leases", "kube-system"),  # kube-controller-manager's, the scheduler's
    ("patch", "leases", "kube-node-lease"),  # the nodes' heartbeats
]
AGENT_MAY = [
    ("get", "imageprunetasks", ""),
    ("list", "imageprunetasks", ""),
    ("watch", "imageprunetasks", ""),
    ("get", "imageprunetasks/status", ""),
    ("patch", "imageprunetasks/status", ""),
    ("create", "events", "default"),
]
AGENT_MAY_NOT = [
    ("create", "imageprunetasks", ""),
    ("patch", "imageprunetasks", ""),
    ("delete", "imageprunetasks", ""),
    ("update", "imageprunetasks/status", ""),
    ("get", "imageprunepolicies", ""),
    ("patch", "imageprunepolicies/status", ""),
    ("list", "nodes", ""),
    ("patch", "nodes", ""),
    ("get", "secrets", NAMESPACE),
    ("list", "secrets", ""),
    ("create", "pods", NAMESPACE),
    ("create", "pods/eviction", NAMESPACE),
    ("create", "clusterrolebindings", ""),
    ("create", "events", NAMESPACE),
    ("list", "customresourcedefinitions", ""),
    ("get", "leases", NAMESPACE),
]


@pytest.fixture(scope="module")
def release(kube_control_plane: ControlPlane, cluster_helm: chart.Helm) -> Iterator[str]:
    plane = kube_control_plane
    chart.delete_crds(plane)  # installed by helm from crds/, as for a user
    try:
        with cluster_helm.installed(RELEASE, NAMESPACE):
            for node in NODES:
                cluster.create_node(plane, node, {})
            yield RELEASE
            plane.kubectl("delete", "imageprunetasks", "--all", "--wait")
    finally:
        plane.kubectl("delete", "nodes", "-l", "=".join(cluster.NODE_MARK), "--wait")
        chart.delete_crds(plane)


def can_i(plane: ControlPlane, user: str, verb: str, resource: str, namespace: str) -> bool:
    kind, _, sub = resource.partition("/")
    args = ["auth", "can-i", verb, kind, f"--as={user}"]
    args += [f"--subresource={sub}"] if sub else []
    args += [f"--namespace={namespace}"] if namespace else ["--all-namespaces"]
    result = plane.kubectl(*args, check=False)
    assert result.stdout.strip() in ("yes", "no"), result
    return result.stdout.strip() == "yes"


@pytest.mark.usefixtures("release")
@pytest.mark.parametrize(
    ("user", "verb", "resource", "namespace", "allowed"),
    [(OPERATOR, *case, True) for case in OPERATOR_MAY]
    + [(OPERATOR, *case, False) for case in OPERATOR_MAY_NOT]
    + [(AGENT, *case, True) for case in AGENT_MAY]
    + [(AGENT, *case, False) for case in AGENT_MAY_NOT],
    ids=lambda v: str(v).rsplit(":", 1)[-1] if isinstance(v, str) else str(v),
)
def test_rbac(
    kube_control_plane: ControlPlane,
    *,
    user: str,
    verb: str,
    resource: str,
    namespace: str,
    allowed: bool,
) -> None:
    assert can_i(kube_control_plane, user, verb, resource, namespace) is allowed


def test_notes_first_policy_is_accepted(
    kube_control_plane: ControlPlane, cluster_helm: chart.Helm, release: str
) -> None:
    """The DryRun policy NOTES.txt tells people to apply is valid as printed."""
    notes = cluster_helm.run("get", "notes", release, f"--namespace={NAMESPACE}").stdout
    lines = notes.splitlines()
    start = lines.index("  cat <<'YAML' | kubectl apply -f -") + 1
    end = lines.index("  YAML", start)
    manifest = textwrap.dedent("\n".join(lines[start:end]))
    assert "mode: DryRun" in manifest
    kube_control_plane.kubectl("apply", "--dry-run=server", "-f", "-", stdin=manifest)
    name = yaml.safe_load(manifest)["metadata"]["name"]
    assert f"kubectl get ipp {name}" in notes
    assert f"kubectl label namespace {NAMESPACE} pod-security.kubernetes.io/enforce=privileged" in (
        notes
    )


# ---- admission ----------------------------------------------------------------------


def kubeconfig_of(plane: ControlPlane, account: str, node: str | None = None) -> Path:
    token = chart.service_account_token(plane, NAMESPACE, account, node=node)
    return chart.token_kubeconfig(plane, f"{account}-{node or 'nodeless'}", token)


def task_manifest(node: str, policy: str = "access") -> dict[str, object]:
    spec = api_task.TaskSpec(
        node_name=node,
        policy_name=policy,
        policy_generation=1,
        run_id="r1",
        trigger=Trigger.CREATE,
        mode=Mode.DRY_RUN,
        selection={},
        requested_at=datetime.datetime.now(datetime.UTC),
    )
    return api_task.manifest(spec, policy_uid="00000000-0000-0000-0000-000000000001")


@pytest.fixture(scope="module")
def tasks(kube_control_plane: ControlPlane, release: str) -> dict[str, str]:
    """One task per node, created by the operator's service account (which alone may)."""
    operator = kubeconfig_of(kube_control_plane, "imageprune-operator")
    names = {}
    for node in NODES:
        manifest = task_manifest(node)
        kube_control_plane.kubectl(
            "create", "-f", "-", kubeconfig=operator, stdin=json.dumps(manifest)
        )
        names[node] = str(manifest["metadata"]["name"])  # type: ignore[index]
    return names


def patch_status(plane: ControlPlane, kubeconfig: Path, task: str, run_id: str) -> str:
    """The agent's status write; '' when accepted, else kubectl's error."""
    result = plane.kubectl(
        "patch",
        "imageprunetasks",
        task,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": {"runId": run_id}}),
        kubeconfig=kubeconfig,
        check=False,
    )
    return "" if result.returncode == 0 else result.stderr


def test_agent_writes_its_own_nodes_task(
    kube_control_plane: ControlPlane, tasks: dict[str, str]
) -> None:
    agent = kubeconfig_of(kube_control_plane, "imageprune-agent", node="node-a")
    assert patch_status(kube_control_plane, agent, tasks["node-a"], "r1") == ""
    stored = kube_control_plane.get("imageprunetasks", tasks["node-a"])
    assert stored["status"]["runId"] == "r1"


def test_agent_may_not_write_another_nodes_task(
    kube_control_plane: ControlPlane, tasks: dict[str, str]
) -> None:
    agent = kubeconfig_of(kube_control_plane, "imageprune-agent", node="node-a")
    error = patch_status(kube_control_plane, agent, tasks["node-b"], "stolen")
    assert "the imageprune agent of node node-a may write only its own node's" in error
    assert "not one of node node-b" in error
    assert "status" not in kube_control_plane.get("imageprunetasks", tasks["node-b"])


def test_agent_token_without_node_is_refused(
    kube_control_plane: ControlPlane, tasks: dict[str, str]
) -> None:
    agent = kubeconfig_of(kube_control_plane, "imageprune-agent")
    error = patch_status(kube_control_plane, agent, tasks["node-a"], "nodeless")
    assert "the imageprune agent's token names no node" in error


@pytest.fixture(scope="module")
def task_editor(kube_control_plane: ControlPlane, release: str) -> Iterator[Path]:
    """A person whom RBAC lets edit tasks (every verb) but not policies."""
    plane = kube_control_plane
    rules = [{"apiGroups": ["imageprune.io"], "resources": ["imageprunetasks"], "verbs": ["*"]}]
    with plane.user_with_rules("task-editor", rules) as kubeconfig:
        yield kubeconfig


def test_only_the_operator_creates_tasks(
    kube_control_plane: ControlPlane, task_editor: Path, tasks: dict[str, str]
) -> None:
    manifest = task_manifest("node-a", policy="forged")
    result = kube_control_plane.kubectl(
        "create", "-f", "-", kubeconfig=task_editor, stdin=json.dumps(manifest), check=False
    )
    assert result.returncode != 0
    assert "only the imageprune operator creates ImagePruneTasks" in result.stderr
    assert f"({OPERATOR}); task-editor may not" in result.stderr


def test_only_the_operator_changes_a_tasks_spec(
    kube_control_plane: ControlPlane, task_editor: Path, tasks: dict[str, str]
) -> None:
    plane = kube_control_plane
    name = tasks["node-a"]

    def patch(body: dict[str, object], kubeconfig: Path | None) -> str:
        result = plane.kubectl(
            "patch",
            "imageprunetasks",
            name,
            "--type=merge",
            "-p",
            json.dumps(body),
            kubeconfig=kubeconfig,
            check=False,
        )
        return "" if result.returncode == 0 else result.stderr

    # Even an admin, whom RBAC allows everything, may not drive the agent.
    for who in (task_editor, None):
        error = patch({"spec": {"runId": "forged"}}, who)
        assert "only the imageprune operator changes the spec of an ImagePruneTask" in error
    assert plane.get("imageprunetasks", name)["spec"]["runId"] == "r1"
    # What leaves the spec alone stays open (labels, finalizers, owner references).
    assert patch({"metadata": {"labels": {"checked": "yes"}}}, task_editor) == ""
    operator = kubeconfig_of(plane, "imageprune-operator")
    assert patch({"spec": {"runId": "r2"}}, operator) == ""
    assert plane.get("imageprunetasks", name)["spec"]["runId"] == "r2"


# ---- the real programs with these identities -------------------------------------


def test_operator_and_agent_work_as_the_charts_service_accounts(
    kube_control_plane: ControlPlane,
    release: str,
    containerd_factory: Factory,
    tmp_path: Path,
) -> None:
    """The operator and one agent (with a real containerd) authenticate with TokenRequest
    tokens of the chart's service accounts, the agent's bound to its node: a DryRun policy
    runs to completion, and neither logs a refusal."""
    plane = kube_control_plane
    cluster.label_node(plane, "node-a", **{"imageprune-test/identity": "yes"})
    operator_login = kubeconfig_of(plane, "imageprune-operator")
    agent_login = kubeconfig_of(plane, "imageprune-agent", node="node-a")
    operator = kube._Process(
        "operator-as-sa",
        [
            "env",
            f"PYTHONPATH={agent_kit.import_path()}",
            sys.executable,
            "-m",
            "imageprune.cluster.main",
            f"--kubeconfig={operator_login}",
            f"--lease-namespace={NAMESPACE}",  # out of a pod it would default to default
            "--interval=1",
            "--log-format=json",
        ],
        tmp_path / "operator.log",
    )
    agent = agent_kit.AgentProcess(
        plane,
        containerd_factory("2.x"),
        node_name="node-a",
        workdir=tmp_path / "agent",
        kubeconfig=agent_login,
    ).start()
    try:
        selector = {"matchLabels": {"imageprune-test/identity": "yes"}}
        cluster.apply(plane, cluster.policy("identity", unusedFor="0s", nodeSelector=selector))
        finished = cluster.wait_for(
            "the run on node-a",
            lambda: cluster.status(plane, "identity").get("run", {}).get("completionTime"),
        )
        assert finished
        assert cluster.status(plane, "identity")["run"]["nodes"]["succeeded"] == 1
        # Deleting the policy: the operator's finalizer deletes its task.
        plane.kubectl("delete", "imageprunepolicy", "identity", "--wait", "--timeout=60s")
        assert cluster.tasks(plane, "identity") == {}
    finally:
        agent.stop()
        operator.stop()
    logs = operator.log.read_text() + agent.log_text()
    for refusal in ("Forbidden", "forbidden", "Not enough permissions", " 403"):
        assert refusal not in logs, operator.log_tail(40) + agent.log_text()[-4000:]
