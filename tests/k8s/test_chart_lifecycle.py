"""`helm install`, `helm upgrade` and `helm uninstall` against the real apiserver: every
object is created; an upgrade with changed values lands, and brings the CRDs up to date
through the pre-upgrade hook; uninstall keeps the CRDs and the users' policies.

No controller-manager or kubelet runs here, so nothing runs the hook's Job: the test
plays the Job's pod (the same kubectl arguments, the ConfigMap's files, a token of the
Job's own service account, so its RBAC is what is tested) and then reports the Job
complete, which is what helm waits for."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from testkit import chart, cluster
from testkit.kube import ControlPlane

pytestmark = pytest.mark.k8s

NAMESPACE = "imageprune-life"
RELEASE = "life"
TASK_CRD = "imageprunetasks.imageprune.io"
USER_POLICY = chart.binaries.REPO_ROOT / "deploy" / "samples" / "dry-run-audit.yaml"


@pytest.fixture
def clean(kube_control_plane: ControlPlane, cluster_helm: chart.Helm) -> Iterator[None]:
    """No CRDs before (helm installs them); nothing of the release or its CRDs after."""
    plane = kube_control_plane
    chart.delete_crds(plane)
    try:
        yield
    finally:
        cluster_helm.run("uninstall", RELEASE, f"--namespace={NAMESPACE}", check=False)
        plane.kubectl("delete", "imageprunepolicies", "--all", check=False)
        chart.delete_crds(plane)


def older_chart(tmp_path: Path) -> Path:
    """The chart as an older release had it: a task printer column missing."""
    copy = tmp_path / "imageprune-old"
    shutil.copytree(chart.CHART, copy)
    path = copy / "crds" / "imageprunetasks.yaml"
    crd = yaml.safe_load(path.read_text())
    crd["spec"]["versions"][0]["additionalPrinterColumns"].pop()
    path.write_text(yaml.safe_dump(crd))
    meta = yaml.safe_load((copy / "Chart.yaml").read_text())
    (copy / "Chart.yaml").write_text(yaml.safe_dump({**meta, "version": "0.0.1"}))
    return copy


def printer_columns(plane: ControlPlane) -> list[dict[str, Any]]:
    crd = plane.get("customresourcedefinition", TASK_CRD)
    columns: list[dict[str, Any]] = crd["spec"]["versions"][0]["additionalPrinterColumns"]
    return columns


def release_manifest(helm: chart.Helm) -> str:
    return helm.run("get", "manifest", RELEASE, f"--namespace={NAMESPACE}").stdout


def existing(plane: ControlPlane, manifest: str) -> list[str]:
    """The objects of `manifest` that the apiserver has."""
    found = plane.kubectl("get", "-f", "-", "--ignore-not-found", "-o", "name", stdin=manifest)
    return found.stdout.split()


def play_the_hook_job(plane: ControlPlane, workdir: Path, upgrade: subprocess.Popen[str]) -> None:
    """Do what the Job's pod would, with its own identity, then mark the Job complete."""
    name = f"{RELEASE}-imageprune-crd-upgrade"

    def created() -> str | None:
        if upgrade.poll() is not None:
            _, err = upgrade.communicate()
            raise AssertionError(f"helm upgrade ended before its hook ran: {err}")
        job = plane.kubectl("get", "job", name, "-n", NAMESPACE, "-o", "json", check=False)
        return job.stdout if job.returncode == 0 else None

    pod = json.loads(cluster.wait_for("the CRD upgrade Job", created))["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert "command" not in container  # the image's entrypoint: kubectl
    (volume,) = [v for v in pod["volumes"] if "configMap" in v]
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == volume["name"]]
    files = plane.get("configmap", volume["configMap"]["name"], "-n", NAMESPACE)["data"]
    crd_dir = workdir / "hook-crds"
    crd_dir.mkdir()
    for file, text in files.items():
        (crd_dir / file).write_text(text)
    # The pod's paths, here: the ConfigMap's mount and the emptyDir at /tmp.
    local = {f"={mount['mountPath']}/": f"={crd_dir}/", "=/tmp/": f"={workdir}/"}
    args = [
        next((arg.replace(a, b) for a, b in local.items() if a in arg), arg)
        for arg in container["args"]
    ]
    token = chart.service_account_token(plane, NAMESPACE, pod["serviceAccountName"])
    identity = chart.token_kubeconfig(plane, "crd-upgrade", token)
    plane.kubectl(*args, kubeconfig=identity)
    now = cluster.now_rfc3339()
    conditions = [
        {"type": kind, "status": "True", "lastProbeTime": now, "lastTransitionTime": now}
        for kind in ("SuccessCriteriaMet", "Complete")
    ]
    status = {
        "startTime": now,
        "completionTime": now,
        "succeeded": 1,
        "ready": 0,
        "terminating": 0,
        "uncountedTerminatedPods": {},
        "conditions": conditions,
    }
    plane.kubectl(
        "patch",
        "job",
        name,
        "-n",
        NAMESPACE,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": status}),
    )


@pytest.mark.usefixtures("clean")
def test_install_upgrade_uninstall(
    kube_control_plane: ControlPlane, cluster_helm: chart.Helm, tmp_path: Path
) -> None:
    plane, helm = kube_control_plane, cluster_helm
    old = older_chart(tmp_path)
    helm.run("install", RELEASE, str(old), f"--namespace={NAMESPACE}", "--create-namespace")
    installed = existing(plane, release_manifest(helm))
    assert len(installed) == len(helm.template(None, "--no-hooks", chart=old, namespace=NAMESPACE))
    assert _names(printer_columns(plane)) == _names(_source_columns())[:-1]
    plane.kubectl("apply", "-f", str(USER_POLICY))

    values = {
        "operator": {"interval": 30},
        "policies": [{"name": "from-values", "spec": {"mode": "DryRun"}}],
    }
    upgrade = subprocess.Popen(
        [
            str(helm.binary),
            "upgrade",
            RELEASE,
            str(chart.CHART),
            f"--namespace={NAMESPACE}",
            helm.values_file(values),
            "--timeout=3m",
        ],
        env=helm.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        play_the_hook_job(plane, tmp_path, upgrade)
        _, err = upgrade.communicate(timeout=240)
    finally:
        if upgrade.poll() is None:
            upgrade.kill()
            upgrade.communicate()
    assert upgrade.returncode == 0, err

    assert _names(printer_columns(plane)) == _names(_source_columns())
    deployment = plane.get("deployment", f"{RELEASE}-imageprune-operator", "-n", NAMESPACE)
    assert "--interval=30" in deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert plane.get("imageprunepolicies", "from-values")["spec"]["mode"] == "DryRun"
    manifest = release_manifest(helm)
    upgraded = existing(plane, manifest)
    assert set(upgraded) - set(installed) == {"imageprunepolicy.imageprune.io/from-values"}
    hook_left = plane.kubectl(
        "get",
        "job,configmap,serviceaccount",
        "-n",
        NAMESPACE,
        "-o",
        "name",
        "-l",
        "app.kubernetes.io/component=crd-upgrade",
    )
    assert hook_left.stdout.strip() == ""  # deleted once it succeeded

    helm.run("uninstall", RELEASE, f"--namespace={NAMESPACE}", "--wait")
    # Kept: the policy from values (resource-policy keep), besides what is not the
    # release's at all: the CRDs and the user's own policy.
    assert existing(plane, manifest) == ["imageprunepolicy.imageprune.io/from-values"]
    plane.kubectl("get", "customresourcedefinition", TASK_CRD, "imageprunepolicies.imageprune.io")
    plane.kubectl("get", "imageprunepolicies", "dry-run-audit")


def _names(columns: list[dict[str, Any]]) -> list[str]:
    return [c["name"] for c in columns]


def _source_columns() -> list[dict[str, Any]]:
    crd = yaml.safe_load((chart.CHART / "crds" / "imageprunetasks.yaml").read_text())
    columns: list[dict[str, Any]] = crd["spec"]["versions"][0]["additionalPrinterColumns"]
    return columns


@pytest.mark.usefixtures("clean")
def test_plain_manifests_install(kube_control_plane: ControlPlane) -> None:
    """deploy/imageprune.yaml, applied as docs/install.md says, creates every object it
    holds: the namespace first, the CRDs, then the rest."""
    plane = kube_control_plane
    path = str(chart.PLAIN_MANIFESTS)
    plane.kubectl("apply", "--server-side", "-f", path)
    objects = [d for d in yaml.safe_load_all(chart.PLAIN_MANIFESTS.read_text()) if d]
    text = chart.PLAIN_MANIFESTS.read_text()
    assert len(existing(plane, text)) == len(objects)
    namespace = plane.get("namespace", "imageprune")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"
    # Everything but the namespace goes again (without a controller-manager, a deleted
    # namespace would stay Terminating for the rest of the session).
    others = {"apiVersion": "v1", "kind": "List", "items": objects[1:]}
    assert objects[0]["kind"] == "Namespace"
    plane.kubectl("delete", "-f", "-", "--wait", stdin=json.dumps(others))
