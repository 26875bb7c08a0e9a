"""`kubectl imageprune` when it cannot do its work: each failure is one line that says
what to fix, exit code 3 (2 for bad arguments), no traceback. Against the real
kube-apiserver, without the imageprune CRDs (this module installs none)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from testkit import chart, cliproc
from testkit.kube import ControlPlane, free_ports
from testkit.plugin import command, failed
from testkit.plugin import run as plugin

pytestmark = pytest.mark.k8s


def test_no_crds_installed(kube_control_plane: ControlPlane) -> None:
    # Modules remove the CRDs they install; this makes sure, whatever ran before.
    chart.delete_crds(kube_control_plane)
    for args in (("status", "web"), ("run", "web"), ("explain", "web", "node-1", "nginx")):
        assert failed(plugin(kube_control_plane, *args)) == (
            "error: the imageprune CRDs are not installed in this cluster (no resource "
            "imageprunepolicies.imageprune.io): install the chart (docs/install.md)"
        )


def test_no_permission_names_the_user_the_verb_and_the_resource(
    kube_control_plane: ControlPlane,
) -> None:
    config = kube_control_plane.user_kubeconfig("plugin-stranger")
    assert failed(plugin(kube_control_plane, "status", "web", kubeconfig=config)) == (
        'error: no permission: imageprunepolicies.imageprune.io "web" is forbidden: User '
        '"plugin-stranger" cannot get resource "imageprunepolicies" in API group '
        '"imageprune.io" at the cluster scope'
    )


def test_an_unreachable_apiserver(kube_control_plane: ControlPlane, tmp_path: Path) -> None:
    config = yaml.safe_load(kube_control_plane.kubeconfig_path.read_text())
    (port,) = free_ports(1)
    config["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{port}"
    path = tmp_path / "nowhere.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    error = failed(plugin(kube_control_plane, "status", "web", kubeconfig=path))
    assert error.startswith(f"error: cannot reach the apiserver at https://127.0.0.1:{port}")


def test_bad_kubeconfigs_and_contexts(kube_control_plane: ControlPlane, tmp_path: Path) -> None:
    missing = tmp_path / "missing.kubeconfig"
    assert failed(plugin(kube_control_plane, "status", "web", kubeconfig=missing)) == (
        f"error: cannot use the kubeconfig: kubeconfig {missing} (from --kubeconfig) does not exist"
    )
    garbage = tmp_path / "garbage.kubeconfig"
    garbage.write_text("clusters: [\n")
    error = failed(plugin(kube_control_plane, "status", "web", kubeconfig=garbage))
    assert error.startswith(f"error: cannot use the kubeconfig: kubeconfig {garbage} is not valid")
    error = failed(plugin(kube_control_plane, "status", "web", "--context=nope"))
    assert error.startswith("error: cannot use the kubeconfig: ")
    assert "'nope'" in error


@pytest.mark.parametrize(
    "args",
    [
        ("status",),
        ("status", "web", "-o", "xml"),
        ("explain", "web", "node-1"),
        ("run", "web", "--timeout", "soon"),
        ("status", "web", "--request-timeout", "0s"),
        ("frobnicate",),
        ("status", "../imageprunetasks"),
        ("status", "Web"),
        ("explain", "web", "node/1", "nginx"),
    ],
)
def test_bad_arguments(kube_control_plane: ControlPlane, args: tuple[str, ...]) -> None:
    result = plugin(kube_control_plane, *args)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "error:" in result.stderr.splitlines()[-1]


def test_help_to_a_closed_stdout_is_one_line_on_stderr() -> None:
    """Python's own flush at exit would say "Exception ignored ..." and exit 120."""
    result = cliproc.run_redirected(command("status", "--help"), ">&-", timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr == "error: cannot write the output: stdout is closed\n"
