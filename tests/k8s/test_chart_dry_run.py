"""Every object the chart renders, for a matrix of values, is accepted by the real
apiserver (`kubectl apply --dry-run=server`: schema, CEL of the admission policies, RBAC
objects, the policies written in values against the real CRDs)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from testkit import chart
from testkit.kube import ControlPlane

pytestmark = [pytest.mark.k8s, pytest.mark.usefixtures("imageprune_crds")]

NAMESPACE = "imageprune-dry-run"


def _stand_in_crd(kind: str, plural: str) -> dict[str, Any]:
    """The Prometheus Operator's kinds, so the apiserver knows them. Their real schemas are
    not ours to copy: this checks that the objects are well-formed Kubernetes objects of
    those kinds, not every field of them."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.monitoring.coreos.com"},
        "spec": {
            "group": "monitoring.coreos.com",
            "scope": "Namespaced",
            "names": {"kind": kind, "plural": plural},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                }
            ],
        },
    }


@pytest.fixture(scope="module")
def prepared(kube_control_plane: ControlPlane) -> Iterator[None]:
    plane = kube_control_plane
    stand_ins = [
        _stand_in_crd("ServiceMonitor", "servicemonitors"),
        _stand_in_crd("PrometheusRule", "prometheusrules"),
    ]
    names = [name for crd in stand_ins for name in plane.apply_crd(crd)]
    for name in names:
        plane.wait_established(name)
    plane.kubectl("create", "namespace", NAMESPACE)
    try:
        yield
    finally:
        plane.kubectl("delete", "customresourcedefinition", *names, "--wait")


@pytest.mark.usefixtures("prepared")
@pytest.mark.parametrize("case", sorted(chart.MATRIX))
def test_every_object_passes_server_dry_run(
    kube_control_plane: ControlPlane, helm: chart.Helm, case: str
) -> None:
    objects = helm.template(chart.MATRIX[case], namespace=NAMESPACE)
    listing = {"apiVersion": "v1", "kind": "List", "items": objects}
    result = kube_control_plane.kubectl(
        "apply", "--dry-run=server", "-o", "name", "-f", "-", stdin=json.dumps(listing)
    )
    applied = result.stdout.split()
    assert len(applied) == len(objects), result.stdout


@pytest.fixture(scope="module")
def pod_security_namespaces(kube_control_plane: ControlPlane) -> str:
    """A namespace per Pod Security level, enforced (names: pss-<level>)."""
    for level in ("restricted", "baseline", "privileged"):
        kube_control_plane.kubectl("create", "namespace", f"pss-{level}")
        kube_control_plane.kubectl(
            "label", "namespace", f"pss-{level}", f"pod-security.kubernetes.io/enforce={level}"
        )
    return "pss-"


@pytest.mark.parametrize(
    ("kind", "level", "admitted"),
    [
        ("Deployment", "restricted", True),  # the operator
        ("Job", "restricted", True),  # the CRD upgrade hook
        ("DaemonSet", "baseline", False),  # the agent: hostPath volumes
        ("DaemonSet", "privileged", True),
    ],
)
def test_pod_security_level(
    kube_control_plane: ControlPlane,
    helm: chart.Helm,
    pod_security_namespaces: str,
    *,
    kind: str,
    level: str,
    admitted: bool,
) -> None:
    """The level each workload's pods need, as Pod Security admission judges their pods
    (no controller creates the pods here, so the test submits the template as a Pod)."""
    namespace = pod_security_namespaces + level
    (workload,) = [o for o in helm.template(namespace=namespace) if o["kind"] == kind]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "pss-check", "namespace": namespace},
        "spec": workload["spec"]["template"]["spec"],
    }
    result = kube_control_plane.kubectl(
        "create", "--dry-run=server", "-f", "-", stdin=json.dumps(pod), check=False
    )
    if admitted:
        assert result.returncode == 0, result.stderr
    else:
        assert 'violates PodSecurity "baseline:latest": hostPath volumes' in result.stderr
