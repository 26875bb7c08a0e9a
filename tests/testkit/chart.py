"""The Helm chart (charts/imageprune) on a test control plane: the real helm, with its
caches and config under the plane's workdir; releases installed for a block; kubeconfigs
holding service-account tokens, as pods get them."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from testkit import agent, binaries, crds
from testkit.kube import ControlPlane, KubectlError

CHART = binaries.REPO_ROOT / "charts" / "imageprune"
RENDER_SCRIPT = binaries.REPO_ROOT / "hack" / "render-manifests.sh"
PLAIN_MANIFESTS = binaries.REPO_ROOT / "deploy" / "imageprune.yaml"
# What `helm template` renders for (Chart.yaml wants >= 1.32; the test apiserver is 1.36).
KUBE_VERSION = "1.36.0"

_files = itertools.count()

# Every optional part on, and the non-defaults people set most.
EVERYTHING: dict[str, Any] = {
    "metrics": {
        "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
        "prometheusRule": {"enabled": True, "diskHighPercent": 90},
        "grafanaDashboard": {"enabled": True},
    },
    "policies": [{"name": "weekly-audit", "spec": {"mode": "DryRun", "schedule": "@weekly"}}],
    "agent": {
        "runtime": {"socketPath": "/var/run/crio/crio.sock", "socketGroup": 1234},
        "imageFilesystem": "/var/lib/containers/storage",
        "priorityClassName": "system-node-critical",
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {"key": "pool", "operator": "NotIn", "values": ["gpu"]}
                            ]
                        }
                    ]
                }
            }
        },
        "resources": {"requests": {"cpu": "10m", "memory": "64Mi"}, "limits": {"memory": "1Gi"}},
    },
    "operator": {"interval": 30, "priorityClassName": "system-cluster-critical"},
    "image": {"repository": "registry.example/imageprune", "tag": "9.9.9"},
    "imagePullSecrets": [{"name": "pull"}],
}
# The agent as root (sockets whose group cannot be set), no image filesystem mount, no
# admission policies, no CRD upgrade hook, another name.
MINIMAL: dict[str, Any] = {
    "agent": {"runAsUser": 0, "runAsGroup": 0, "imageFilesystem": "", "tolerations": []},
    "admission": {"enabled": False},
    "crds": {"upgrade": False},
    "fullnameOverride": "prune",
}
MATRIX: dict[str, dict[str, Any]] = {"defaults": {}, "everything": EVERYTHING, "minimal": MINIMAL}


class Helm:
    """The real helm; against `kubeconfig` when given, else only for what needs no
    cluster (template, lint)."""

    def __init__(self, binary: Path, workdir: Path, kubeconfig: Path | None = None) -> None:
        self.binary = binary
        self.home = workdir / "helm"
        self.home.mkdir(exist_ok=True)
        # Nothing read from or written into the user's own helm setup.
        self.env = {
            **os.environ,
            "HELM_CACHE_HOME": str(self.home / "cache"),
            "HELM_CONFIG_HOME": str(self.home / "config"),
            "HELM_DATA_HOME": str(self.home / "data"),
            "KUBECONFIG": str(kubeconfig or self.home / "no-cluster.kubeconfig"),
        }

    def run(
        self, *args: str, check: bool = True, timeout: float = 180.0
    ) -> subprocess.CompletedProcess[str]:
        argv = [str(self.binary), *args]
        result = subprocess.run(
            argv, capture_output=True, text=True, env=self.env, timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            raise KubectlError(result.returncode, argv, result.stdout, result.stderr)
        return result

    def values_file(self, values: Mapping[str, Any]) -> str:
        """--values=FILE for a dict (JSON is YAML; --set cannot say lists of objects)."""
        path = self.home / f"values-{next(_files)}.json"
        path.write_text(json.dumps(values))
        return f"--values={path}"

    def template(
        self,
        values: Mapping[str, Any] | None = None,
        *extra: str,
        chart: Path = CHART,
        namespace: str = "imageprune",
    ) -> list[dict[str, Any]]:
        """Every object `helm template` renders (hooks included), parsed."""
        out = self.run(
            "template",
            "imageprune",
            str(chart),
            f"--namespace={namespace}",
            f"--kube-version={KUBE_VERSION}",
            self.values_file(values or {}),
            *extra,
        ).stdout
        return [doc for doc in yaml.safe_load_all(out) if doc]

    @contextlib.contextmanager
    def installed(
        self,
        release: str,
        namespace: str,
        values: Mapping[str, Any] | None = None,
        *,
        chart: Path = CHART,
    ) -> Iterator[str]:
        """`helm install` for the block, `helm uninstall` after. The CRDs stay, as they do
        for users; delete_crds removes them (other modules install their own)."""
        self.run(
            "install",
            release,
            str(chart),
            f"--namespace={namespace}",
            "--create-namespace",
            self.values_file(values or {}),
        )
        try:
            yield release
        finally:
            self.run("uninstall", release, f"--namespace={namespace}", "--wait")


def delete_crds(plane: ControlPlane) -> None:
    """The chart's CRDs and whatever objects of theirs are left."""
    crds.delete(plane, ["imageprunepolicies.imageprune.io", "imageprunetasks.imageprune.io"])


def token_kubeconfig(plane: ControlPlane, name: str, token: str) -> Path:
    """A kubeconfig that authenticates with `token`, as a pod's service account does."""
    return agent.kubeconfig(plane, f"token-{name}", {"token": token})


def service_account_token(
    plane: ControlPlane,
    namespace: str,
    account: str,
    *,
    node: str | None = None,
    duration: str = "1h",
) -> str:
    """A TokenRequest token of `account` valid for `duration`; bound to Node `node` (which
    must exist) when given, so that it names the node as a pod's token does."""
    bound = ["--bound-object-kind=Node", f"--bound-object-name={node}"] if node else []
    argv = ["create", "token", account, "-n", namespace, f"--duration={duration}", *bound]
    return plane.kubectl(*argv).stdout.strip()
