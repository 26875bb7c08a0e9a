"""`imageprune operator` flags: bad input is a clear one-line error and exit 2, before
kopf starts (no traceback, no retry loop against a kubeconfig that cannot work)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from imageprune.cluster import main

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("path", ["/dev/zero", "fifo", "."])
def test_a_kubeconfig_that_is_no_regular_file_is_refused_without_reading_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], path: str
) -> None:
    if path == "fifo":
        os.mkfifo(tmp_path / path)  # kopf alone would wait for a writer forever
    target = path if path.startswith("/") else str(tmp_path / path)
    assert main.main(["--kubeconfig", target]) == 2
    err = capsys.readouterr().err
    assert "not a regular file" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "does not exist"),
        ("{[", "is not valid YAML"),
        ("apiVersion: v1\nkind: Config\n", "current-context is not set and no context is defined"),
        (
            "current-context: x\ncontexts: [{name: x, context: {cluster: c, user: u}}]\n"
            "clusters: [{name: c, cluster: {}}]\nusers: [{name: u, user: {}}]\n",
            "cluster 'c' names no server",
        ),
    ],
)
def test_a_bad_kubeconfig_exits_2_with_the_reason(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    content: str | None,
    message: str,
) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    path = tmp_path / "kubeconfig"
    if content is not None:
        path.write_text(content)
    assert main.main(["--kubeconfig", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("imageprune operator: error: ")
    assert str(path) in err
    assert message in err
    assert "Traceback" not in err
    assert err.count("\n") == 1


def test_an_unknown_context_exits_2_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text(
        "current-context: x\ncontexts: [{name: x, context: {cluster: c}}]\n"
        "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n"
    )
    assert main.main(["--kubeconfig", str(path), "--context", "nope"]) == 2
    assert "Context 'nope' not found" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--metrics-port", "70000", "must be a port"),
        ("--health-port", "x", "must be a port"),
        ("--log-format", "yaml", "invalid choice"),
        ("--interval", "0", "must be 0.1 to 3600 seconds"),
        ("--agent-selector", "app", "'app' is not KEY=VALUE"),
        ("--agent-selector", "=agent", "'=agent' is not KEY=VALUE"),
        # Names the apiserver cannot have: refused, not retried for ever (or put in a path).
        ("--lease-name", "../../api/v1/namespaces/kube-system/secrets/x", "not an object name"),
        ("--lease-name", "Operator", "not an object name"),
        ("--lease-name", "", "not an object name"),
        ("--lease-namespace", "kube_system", "not a namespace"),
        ("--lease-namespace", "", "not a namespace"),
        ("--agent-namespace", "a.b", "not a namespace"),
        ("--agent-selector", "app name=agent", "'app name' is not a label key"),
        ("--agent-selector", "Bad_Prefix/app=agent", "not a label key"),
        ("--agent-selector", "app=an agent", "'an agent' is not a label value"),
    ],
)
def test_bad_flags_exit_2_naming_the_flag(
    capsys: pytest.CaptureFixture[str], flag: str, value: str, message: str
) -> None:
    assert main.main([flag, value]) == 2
    err = capsys.readouterr().err
    assert flag in err
    assert message in err


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "--kubeconfig" in out
    assert "--no-leader-election" in out
    assert "Lease" in out


def test_a_lease_that_outlives_no_renew_deadline_is_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A leader must give up before its lease can expire, or two would write."""
    assert main.main(["--lease-duration=10", "--renew-deadline=10"]) == 2
    assert "--lease-duration must exceed --renew-deadline" in capsys.readouterr().err


@pytest.mark.parametrize(
    "given", [["--agent-namespace", "imageprune"], ["--agent-selector", "a=b"]]
)
def test_the_agent_namespace_and_selector_go_together(
    capsys: pytest.CaptureFixture[str], given: list[str]
) -> None:
    assert main.main(given) == 2
    assert "--agent-namespace and --agent-selector go together" in capsys.readouterr().err
