"""What the chart renders, checked without a cluster: lint, the schema refusing misspelt
values, the workloads' security settings, RBAC, flags the real programs accept, alert
metrics that exist, and the plain manifests in deploy/ matching a fresh render."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Mapping
from typing import Any

import prometheus_client
import pytest
import yaml

from imageprune.agent import main as agent_main
from imageprune.agent import metrics as agent_metrics
from imageprune.cluster import main as operator_main
from imageprune.cluster import metrics as operator_metrics
from testkit import chart

pytestmark = pytest.mark.k8s

Manifest = dict[str, Any]

EVERYTHING, MINIMAL, MATRIX = chart.EVERYTHING, chart.MINIMAL, chart.MATRIX


def find(objects: list[Manifest], kind: str, suffix: str = "") -> Manifest:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"].endswith(suffix)]
    assert len(found) == 1, [o["metadata"]["name"] for o in found]
    return found[0]


def kinds(objects: list[Manifest]) -> set[str]:
    return {o["kind"] for o in objects}


def pod_spec(objects: list[Manifest], kind: str) -> Mapping[str, Any]:
    spec: Mapping[str, Any] = find(objects, kind)["spec"]["template"]["spec"]
    return spec


def test_lint_strict(helm: chart.Helm) -> None:
    for values in MATRIX.values():
        helm.run(
            "lint",
            "--strict",
            str(chart.CHART),
            f"--kube-version={chart.KUBE_VERSION}",
            helm.values_file(values),
        )


@pytest.mark.parametrize(
    ("values", "misspelt"),
    [
        ({"agnet": {}}, "agnet"),
        ({"agent": {"runtime": {"sockerPath": "/x.sock"}}}, "sockerPath"),
        ({"operator": {"resources": {"limits": {"memroy": "1Gi"}}}}, "memroy"),
        ({"metrics": {"serviceMonitor": {"enable": True}}}, "enable"),
        ({"agent": {"tolerations": [{"operater": "Exists"}]}}, "operater"),
        ({"policies": [{"name": "p", "spce": {}}]}, "spce"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_misspelt_value_fails_naming_it(
    helm: chart.Helm, values: Mapping[str, Any], misspelt: str
) -> None:
    result = helm.run(
        "template",
        str(chart.CHART),
        f"--kube-version={chart.KUBE_VERSION}",
        helm.values_file(values),
        check=False,
    )
    assert result.returncode != 0, result.stdout
    assert "values don't meet the specifications of the schema" in result.stderr
    assert re.search(rf"additional propert(y|ies) '{misspelt}' not allowed", result.stderr), (
        result.stderr
    )


def test_wrong_type_fails_naming_the_field(helm: chart.Helm) -> None:
    values = {"agent": {"runtime": {"socketGroup": "docker"}}}
    result = helm.run(
        "template",
        str(chart.CHART),
        f"--kube-version={chart.KUBE_VERSION}",
        helm.values_file(values),
        check=False,
    )
    assert result.returncode != 0
    assert "socketGroup" in result.stderr, result.stderr


def test_operator_deployment_defaults(helm: chart.Helm) -> None:
    objects = helm.template()
    deployment = find(objects, "Deployment")
    # Two replicas, one leading through the Lease: a rolling update's new pod stands by
    # until the old one releases it.
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    pod = pod_spec(objects, "Deployment")
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    _assert_locked_down(container["securityContext"])
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["port"] == "health"
    assert set(container["resources"]) == {"requests", "limits"}
    assert "--lease-namespace=imageprune" in container["args"]
    assert container["image"] == f"imageprune:{_app_version(helm)}"
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert container["args"][0] == "operator"
    # The flags are the real program's: its own parser takes them.
    operator_main.build_parser().parse_args(container["args"][1:])
    # The standby should not share the leader's node, and a drain evicts one at a time.
    selector = deployment["spec"]["selector"]["matchLabels"]
    (spread,) = pod["affinity"]["podAntiAffinity"][
        "preferredDuringSchedulingIgnoredDuringExecution"
    ]
    assert spread["podAffinityTerm"] == {
        "topologyKey": "kubernetes.io/hostname",
        "labelSelector": {"matchLabels": selector},
    }
    budget = find(objects, "PodDisruptionBudget")
    assert budget["spec"] == {"maxUnavailable": 1, "selector": {"matchLabels": selector}}


def test_one_operator_replica_gets_no_spread_and_no_budget(helm: chart.Helm) -> None:
    objects = helm.template({"operator": {"replicas": 1}})
    assert "affinity" not in pod_spec(objects, "Deployment")
    assert "PodDisruptionBudget" not in kinds(objects)


def test_the_users_operator_affinity_replaces_the_default_spread(helm: chart.Helm) -> None:
    mine = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "role", "operator": "In", "values": ["infra"]}]}
                ]
            }
        }
    }
    objects = helm.template(
        {"operator": {"affinity": mine, "podDisruptionBudget": {"enabled": False}}}
    )
    assert pod_spec(objects, "Deployment")["affinity"] == mine
    assert "PodDisruptionBudget" not in kinds(objects)


def test_agent_daemonset_defaults(helm: chart.Helm) -> None:
    objects = helm.template()
    daemonset = find(objects, "DaemonSet")
    assert daemonset["spec"]["updateStrategy"]["type"] == "RollingUpdate"
    pod = pod_spec(objects, "DaemonSet")
    assert pod["tolerations"] == [{"operator": "Exists"}]
    security = pod["securityContext"]
    assert security["runAsNonRoot"] is True
    assert (security["runAsUser"], security["supplementalGroups"]) == (65532, [0])
    (container,) = pod["containers"]
    _assert_locked_down(container["securityContext"])
    assert {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}} in (
        container["env"]
    )
    assert container["args"][0] == "agent"
    agent_main.build_parser().parse_args(container["args"][1:])
    # Host access: the socket, the state directory, the image filesystem read-only.
    host = {v["name"]: v["hostPath"] for v in pod["volumes"] if "hostPath" in v}
    assert host == {
        "cri-socket": {"path": "/run/containerd/containerd.sock", "type": "Socket"},
        "state": {"path": "/var/lib/imageprune", "type": "DirectoryOrCreate"},
        "image-fs": {"path": "/var/lib/containerd", "type": "Directory"},
    }
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert mounts["image-fs"] == {
        "name": "image-fs",
        "mountPath": "/var/lib/containerd",
        "readOnly": True,
    }
    assert "--runtime-endpoint=unix://" + mounts["cri-socket"]["mountPath"] in container["args"]
    # The state directory's owner is set by a root init container that may only chown.
    (init,) = pod["initContainers"]
    assert init["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": ["CHOWN"]}
    assert init["securityContext"]["allowPrivilegeEscalation"] is False
    assert init["command"][-1] == mounts["state"]["mountPath"]


def test_agent_variants(helm: chart.Helm) -> None:
    pod = pod_spec(helm.template(EVERYTHING), "DaemonSet")
    (container,) = pod["containers"]
    assert {
        "name": "cri-socket",
        "hostPath": {"path": "/var/run/crio/crio.sock", "type": "Socket"},
    } in pod["volumes"]
    assert pod["securityContext"]["supplementalGroups"] == [1234]
    assert pod["priorityClassName"] == "system-node-critical"
    assert pod["nodeSelector"] == EVERYTHING["agent"]["nodeSelector"]
    assert pod["affinity"] == EVERYTHING["agent"]["affinity"]
    assert container["resources"] == EVERYTHING["agent"]["resources"]
    assert container["image"] == "registry.example/imageprune:9.9.9"
    assert pod["imagePullSecrets"] == [{"name": "pull"}]

    root = pod_spec(helm.template(MINIMAL), "DaemonSet")
    assert root["securityContext"]["runAsNonRoot"] is False
    assert "initContainers" not in root  # root owns the directory the kubelet creates
    assert "tolerations" not in root
    assert {v["name"] for v in root["volumes"]} == {"cri-socket", "state", "tmp"}
    _assert_locked_down(root["containers"][0]["securityContext"])


def test_rbac_is_exactly_the_documented_rules(helm: chart.Helm) -> None:
    objects = helm.template(namespace="ops")
    rules = {o["metadata"]["name"]: o["rules"] for o in objects if o["kind"] == "ClusterRole"}
    assert rules["imageprune-operator"] == [
        _rule(
            "imageprune.io",
            "imageprunetasks",
            "get list watch create patch delete deletecollection",
        ),
        _rule("imageprune.io", "imageprunepolicies", "get list watch patch"),
        _rule("imageprune.io", "imageprunepolicies/status", "patch"),
        _rule("", "nodes", "list watch"),
        _rule("apiextensions.k8s.io", "customresourcedefinitions", "list watch"),
    ]
    assert rules["imageprune-agent"] == [
        _rule("imageprune.io", "imageprunetasks", "get list watch"),
        _rule("imageprune.io", "imageprunetasks/status", "get patch"),
    ]
    roles = {
        (o["metadata"]["namespace"], o["metadata"]["name"]): o["rules"]
        for o in objects
        if o["kind"] == "Role"
    }
    events = [_rule("", "events", "create")]
    assert roles == {
        ("default", "imageprune-operator-events"): events,
        ("ops", "imageprune-operator-events"): events,
        ("default", "imageprune-agent-events"): events,
        ("ops", "imageprune-operator-agent-pods"): [_rule("", "pods", "list watch")],
        ("ops", "imageprune-operator-leader"): [
            _rule("coordination.k8s.io", "leases", "get create patch")
        ],
    }


def test_optional_parts_are_off_by_default(helm: chart.Helm) -> None:
    default = helm.template()
    assert not kinds(default) & {"ServiceMonitor", "PrometheusRule", "ImagePrunePolicy"}
    assert not [o for o in default if o["metadata"]["name"].endswith("-dashboard")]
    everything = helm.template(EVERYTHING)
    assert {"ServiceMonitor", "PrometheusRule", "ImagePrunePolicy"} <= kinds(everything)
    policy = find(everything, "ImagePrunePolicy")
    assert policy["spec"] == {"mode": "DryRun", "schedule": "@weekly"}
    assert policy["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    dashboard = find(everything, "ConfigMap", "-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["imageprune.json"])["panels"]
    minimal = kinds(helm.template(MINIMAL))
    assert not minimal & {"ValidatingAdmissionPolicy", "Job"}


def test_alerts_and_dashboard_use_metrics_that_exist(helm: chart.Helm) -> None:
    exported = _metric_names(operator_metrics.REGISTRY) | _metric_names(
        agent_metrics.Metrics().registry
    )
    objects = helm.template(EVERYTHING)
    rules = find(objects, "PrometheusRule")["spec"]["groups"][0]["rules"]
    assert {r["alert"] for r in rules} == {
        "ImagePruneNodeRunFailing",
        "ImagePruneRolloutPaused",
        "ImagePruneDiskStillHigh",
    }
    queries = (
        " ".join(r["expr"] for r in rules)
        + find(objects, "ConfigMap", "-dashboard")["data"]["imageprune.json"]
    )
    used = set(re.findall(r"\bimageprune_[a-z_]+", queries))
    # What the three alerts are about: a node's runs, a rollout's nodes, the disk.
    assert {
        "imageprune_agent_runs_total",
        "imageprune_policy_nodes",
        "imageprune_agent_image_filesystem_used_bytes",
    } <= used
    assert used <= exported, used - exported
    assert "> 90" in next(r["expr"] for r in rules if r["alert"] == "ImagePruneDiskStillHigh")


def test_plain_manifests_match_a_fresh_render(helm: chart.Helm) -> None:
    fresh = subprocess.run(
        ["bash", str(chart.RENDER_SCRIPT), "-"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env={**helm.env, "HELM": str(helm.binary)},
    ).stdout
    assert chart.PLAIN_MANIFESTS.read_text() == fresh, (
        "deploy/imageprune.yaml differs from the chart: run hack/render-manifests.sh"
    )


def _assert_locked_down(security: Mapping[str, Any]) -> None:
    assert security["allowPrivilegeEscalation"] is False
    assert security["privileged"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}


def _rule(group: str, resource: str, verbs: str) -> dict[str, list[str]]:
    return {"apiGroups": [group], "resources": [resource], "verbs": verbs.split()}


def _app_version(helm: chart.Helm) -> str:
    return str(yaml.safe_load((chart.CHART / "Chart.yaml").read_text())["appVersion"])


def _metric_names(registry: prometheus_client.CollectorRegistry) -> set[str]:
    """Names as Prometheus sees them (counters get _total, histograms their series)."""
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}
    return {
        family.name + suffix
        for family in registry.collect()
        for suffix in suffixes.get(family.type, [""])
    }
