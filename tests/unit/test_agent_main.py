"""`imageprune agent` refuses bad usage before it starts anything: exit 2 and a message
naming the flag or file."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from imageprune.agent import main as agent_main

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    # main() installs its own handler on the root logger.
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def _run(argv: list[str]) -> int:
    try:
        return agent_main.main(argv)
    except SystemExit as exit_:
        code = exit_.code
    assert isinstance(code, int)
    return code


def test_the_node_name_is_required(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("NODE_NAME", raising=False)
    assert _run(["--kubeconfig", "/dev/null"]) == 2
    assert "--node-name (or $NODE_NAME) is required" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["Node-1", "node_1", "node/1", "a" * 254, "-node"])
def test_a_node_name_no_node_can_have_is_refused(
    name: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Else the agent would wait for that node's tasks for ever, saying nothing."""
    monkeypatch.setenv("NODE_NAME", name)
    assert _run(["--kubeconfig", "/dev/null"]) == 2
    assert "--node-name (or $NODE_NAME): " in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--usage-interval", "0s"], "under one second"),
        (["--disk-check-interval", "soon"], "--disk-check-interval"),
        (["--metrics-port", "70000"], "not a port number"),
        (["--metrics-port", "9000", "--health-port", "9000"], "must differ"),
        (["--timeout", "-1"], "between 0 and 3600"),
        (["--log-format", "xml"], "invalid choice"),
        (["--state-dir", ""], "--state-dir: the path is empty"),
    ],
)
def test_bad_flags(flags: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["--node-name", "n", *flags]) == 2
    assert message in capsys.readouterr().err


def test_a_state_dir_that_cannot_be_one_is_refused_at_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Else the agent would start, and every run fail on the lock (reported NodeBusy)."""
    (tmp_path / "file").write_text("")
    assert _run(["--node-name", "n", "--state-dir", str(tmp_path / "file" / "state")]) == 2
    assert f"{tmp_path}/file: not a directory (a regular file)" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--kubeconfig", "/nonexistent/kubeconfig"], "does not exist"),
        (["--context", "nope"], "Context 'nope' not found"),
        (["--runtime-endpoint", "tcp://10.0.0.1:1"], "not a unix socket"),
    ],
)
def test_unusable_kubeconfig_or_endpoint(
    flags: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kubeconfig = tmp_path / "kc"
    kubeconfig.write_text(
        "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: x, context: {cluster: c, user: u}}]\n"
        "current-context: x\n"
    )
    argv = ["--node-name", "n", "--kubeconfig", str(kubeconfig), *flags]
    assert _run(argv) == 2
    assert message in capsys.readouterr().err


def test_the_agent_does_not_load_the_schedule_parser() -> None:
    # The agent idles under 64 MiB (docs/benchmarks.md); it never reads a schedule, and
    # croniter with dateutil would add 0.8 MiB to it.
    script = (
        "import sys; import imageprune.agent.main; "
        "print(sorted(m for m in sys.modules if m in ('croniter', 'dateutil')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
