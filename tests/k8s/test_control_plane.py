"""The test control plane and tools behave like a real cluster where our operator relies
on it: CRDs with a status subresource, RBAC, version stamping (kubectl, helm)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from testkit import binaries
from testkit.kube import ControlPlane

pytestmark = pytest.mark.k8s

GROUP = "imageprune.io"
PLURAL = "imageprunepolicies"
CRD_NAME = f"{PLURAL}.{GROUP}"
API_VERSION = f"{GROUP}/v1alpha1"
PRESERVE = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": CRD_NAME},
    "spec": {
        "group": GROUP,
        "scope": "Cluster",
        "names": {
            "kind": "ImagePrunePolicy",
            "listKind": "ImagePrunePolicyList",
            "plural": PLURAL,
            "singular": "imageprunepolicy",
        },
        "versions": [
            {
                "name": "v1alpha1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {"spec": PRESERVE, "status": PRESERVE},
                    }
                },
            }
        ],
    },
}


def _pinned_version(variable: str) -> str:
    """A version pinned in hack/testbin.sh, the single source of the test binaries."""
    script = binaries.TESTBIN_SCRIPT.read_text()
    match = re.search(rf"^\s*local {variable}=(v[\d.]+)", script, re.MULTILINE)
    assert match, f"{variable} not found in {binaries.TESTBIN_SCRIPT}"
    return match.group(1)


def _eventually(check: Callable[[], bool], timeout: float = 30.0) -> None:
    """Poll `check` until it holds: RBAC changes reach the authorizer's cache asynchronously."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"condition did not hold within {timeout}s"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def policy_crd(kube_control_plane: ControlPlane) -> Iterator[str]:
    (name,) = kube_control_plane.apply_crd(CRD)
    kube_control_plane.wait_established(name)
    yield name
    # The control plane is shared by the session; the real CRD may later take this name.
    kube_control_plane.kubectl("delete", "customresourcedefinition", name, "--wait=true")


def _create_policy(plane: ControlPlane, name: str) -> dict[str, Any]:
    policy = {
        "apiVersion": API_VERSION,
        "kind": "ImagePrunePolicy",
        "metadata": {"name": name},
        "spec": {"schedule": "@daily", "keep": 3},
    }
    plane.kubectl("create", "-f", "-", stdin=json.dumps(policy))
    created: dict[str, Any] = plane.get(PLURAL, name)
    return created


def test_crd_is_established(kube_control_plane: ControlPlane, policy_crd: str) -> None:
    crd = kube_control_plane.get("customresourcedefinition", policy_crd)
    conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
    assert conditions["NamesAccepted"] == "True"
    assert conditions["Established"] == "True"
    assert crd["spec"]["scope"] == "Cluster"


def test_status_subresource_writes_status_only(
    kube_control_plane: ControlPlane, policy_crd: str
) -> None:
    before = _create_policy(kube_control_plane, "status-via-subresource")
    assert "status" not in before

    patch = {"spec": {"keep": 99}, "status": {"observedGeneration": 1, "pruned": 5}}
    kube_control_plane.kubectl(
        "patch",
        PLURAL,
        "status-via-subresource",
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps(patch),
    )

    after = kube_control_plane.get(PLURAL, "status-via-subresource")
    assert after["status"] == {"observedGeneration": 1, "pruned": 5}
    assert after["spec"] == before["spec"]
    assert after["metadata"]["generation"] == before["metadata"]["generation"]


def test_main_resource_ignores_status(kube_control_plane: ControlPlane, policy_crd: str) -> None:
    _create_policy(kube_control_plane, "status-via-main")
    kube_control_plane.kubectl(
        "patch",
        PLURAL,
        "status-via-main",
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": {"pruned": 1}}),
    )
    before = kube_control_plane.get(PLURAL, "status-via-main")

    patch = {"spec": {"keep": 7}, "status": {"pruned": 1000}}
    kube_control_plane.kubectl(
        "patch", PLURAL, "status-via-main", "--type=merge", "-p", json.dumps(patch)
    )

    after = kube_control_plane.get(PLURAL, "status-via-main")
    assert after["status"] == {"pruned": 1}
    assert after["spec"]["keep"] == 7
    assert after["metadata"]["generation"] == before["metadata"]["generation"] + 1


def test_rbac_denies_user_without_role(kube_control_plane: ControlPlane, policy_crd: str) -> None:
    plane = kube_control_plane
    alice = plane.user_kubeconfig("alice", groups=["imageprune-testers"])

    def can_list() -> str:
        result = plane.kubectl("auth", "can-i", "list", PLURAL, kubeconfig=alice, check=False)
        return result.stdout.strip()

    assert can_list() == "no"
    denied = plane.kubectl("get", PLURAL, kubeconfig=alice, check=False)
    assert denied.returncode != 0
    # Authenticated as alice (so the cert works) yet not authorized.
    assert "Forbidden" in denied.stderr
    assert 'User "alice" cannot list resource "imageprunepolicies"' in denied.stderr

    # Control: a role bound to her group grants exactly that.
    plane.kubectl(
        "create", "clusterrole", "policy-reader", "--verb=get,list", f"--resource={PLURAL}"
    )
    plane.kubectl(
        "create",
        "clusterrolebinding",
        "policy-reader",
        "--clusterrole=policy-reader",
        "--group=imageprune-testers",
    )
    try:
        _eventually(lambda: can_list() == "yes")
        plane.kubectl("get", PLURAL, kubeconfig=alice)
    finally:
        plane.kubectl("delete", "clusterrolebinding,clusterrole", "policy-reader")


def test_kubectl_and_server_report_pinned_version(kube_control_plane: ControlPlane) -> None:
    versions = json.loads(kube_control_plane.kubectl("version", "-o", "json").stdout)
    expected = _pinned_version("K8S_VERSION")
    # An unstamped build reports v0.0.0-master, which breaks helm's kubeVersion checks.
    assert versions["serverVersion"]["gitVersion"] == expected
    assert versions["clientVersion"]["gitVersion"] == expected


def _helm(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # The testbin helm specifically: the test checks how hack/testbin.sh stamps it.
    helm = binaries.require_binary("helm", search_path=False)
    home = {  # keep helm's config and caches out of $HOME
        f"HELM_{kind}_HOME": str(tmp_path / "helm" / kind.lower())
        for kind in ("CONFIG", "CACHE", "DATA")
    }
    result = subprocess.run(
        [str(helm), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **home},
    )
    assert result.returncode == 0, result.stderr
    return result


def test_helm_template_stamps_a_recent_kube_version(tmp_path: Path) -> None:
    assert _helm(tmp_path, "version", "--short").stdout.startswith(_pinned_version("HELM_VERSION"))

    chart = tmp_path / "chart"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text(
        yaml.safe_dump(
            {"apiVersion": "v2", "name": "tiny", "version": "0.1.0", "kubeVersion": ">=1.30.0-0"}
        )
    )
    (chart / "templates" / "configmap.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: tiny\n"
        "data:\n  kubeVersion: {{ .Capabilities.KubeVersion.Version | quote }}\n"
    )

    # Unstamped helm v3 assumes Kubernetes v1.20 and refuses the chart's kubeVersion.
    rendered = yaml.safe_load(_helm(tmp_path, "template", "tiny", str(chart)).stdout)
    major, minor = re.findall(r"\d+", rendered["data"]["kubeVersion"])[:2]
    assert (int(major), int(minor)) >= (1, 30)
