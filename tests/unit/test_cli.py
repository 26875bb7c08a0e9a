"""The CLI's contract that needs no runtime: help, version, usage errors (exit 2,
clear message, nothing touched)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import imageprune
from imageprune.cli import flags
from imageprune.cli import main as cli
from imageprune.node import executor

pytestmark = pytest.mark.unit

# A socket that cannot exist: reaching the runtime would be a bug in these tests.
NOWHERE = ["--runtime-endpoint", "unix:///nonexistent/imageprune-test.sock"]


def test_console_script_version() -> None:
    script = shutil.which("imageprune", path=str(Path(sys.executable).parent))
    assert script, "the imageprune console script is not installed (pip install -e .)"
    result = subprocess.run(
        [script, "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == f"imageprune {imageprune.__version__}"


def test_help_explains_commands_and_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for words in ("images", "prune", "--runtime-endpoint", "exit codes", "pinned"):
        assert words in out


def test_prune_help_lists_selection_flags(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["prune", "--help"])
    out = capsys.readouterr().out
    for flag in ("--dry-run", "--unused-for", "--keep-latest", "--disk-high", "--policy"):
        assert flag in out


def test_no_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 2
    assert "usage: imageprune" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["prune", "--unused-for", "soon"], "--unused-for"),
        (["prune", "--disk-high", "50", "--disk-low", "70"], "--disk-low"),
        (["prune", "--keep-latest", "-1"], "--keep-latest"),
        (["prune", "--max-bytes", "lots"], "--max-bytes"),
        (["prune", "--concurrency", "0"], "--concurrency"),
        (["prune", "--scope", "Everything"], "--scope"),
        (["prune", "--include", ""], "--include"),
    ],
)
def test_bad_values_exit_2_with_the_flag_named(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*NOWHERE, *args])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_policy_file_problems_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "missing.yaml"
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*NOWHERE, "prune", "--policy", str(missing)])
    assert exit_info.value.code == 2
    assert "missing.yaml" in capsys.readouterr().err

    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*NOWHERE, "prune", "--policy", str(wrong)])
    assert exit_info.value.code == 2
    assert "ImagePrunePolicy" in capsys.readouterr().err


def test_policy_and_flags_do_not_mix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*NOWHERE, "prune", "--policy", "x.yaml", "--unused-for", "1d"])
    assert exit_info.value.code == 2
    assert "cannot be combined" in capsys.readouterr().err


def test_sample_policy_parses() -> None:
    parser = cli.build_parser()
    args = parser.parse_args(
        ["prune", "--policy", str(Path(__file__).parents[2] / "deploy/samples/policy.yaml")]
    )
    selection = flags.request_from_args(args).selection
    assert selection.keep_latest_per_repository == 2
    assert selection.disk is not None


def test_unreachable_runtime_exits_3(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code = cli.main([*NOWHERE, "--timeout", "2", "--state-dir", str(tmp_path), "images"])
    assert code == 3
    err = capsys.readouterr().err
    assert "no CRI runtime answers" in err
    assert "--runtime-endpoint" in err


def test_exit_codes_are_written_once_and_the_docs_agree() -> None:
    docs = (Path(__file__).parents[2] / "docs/policy.md").read_text()
    table = docs.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    rows = dict(re.findall(r"^\| (\d+) \| (.+) \|$", table, re.MULTILINE))
    assert rows == {str(int(code)): text for code, text in cli.EXIT_CODES.items()}


def test_help_describes_the_lock_the_limits_and_every_exit_code(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        cli.main(["prune", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for words in ("<state-dir>/lock", "--lock-timeout", "exits 4", "NotAttempted", "Unknown"):
        assert words in out
    for code, text in cli.EXIT_CODES.items():
        assert f"{int(code)} {' '.join(text.split())}" in out


def test_concurrency_defaults_to_the_executors_width_and_a_given_value_wins(
    capsys: pytest.CaptureFixture[str],
) -> None:
    parser = cli.build_parser()
    assert parser.parse_args(["prune"]).concurrency is None  # executor.default_width
    assert parser.parse_args(["prune", "--concurrency", "7"]).concurrency == 7
    with pytest.raises(SystemExit):
        cli.main(["prune", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    # The help states the rule in words; these are the constants it names.
    assert (executor.SMALL_WIDTH, executor.ALL_AT_ONCE_FROM) == (64, 2_000)
    assert "default: 64, and all at once from 2,000 images to remove" in out


@pytest.mark.parametrize("flag", ["--runtime-endpoint", "--timeout", "--state-dir"])
def test_global_flags_work_after_the_command_too(flag: str) -> None:
    parser = cli.build_parser()
    value = {"--runtime-endpoint": "/x.sock", "--timeout": "7", "--state-dir": "/st"}[flag]
    dest = flag.removeprefix("--").replace("-", "_")
    before = parser.parse_args([flag, value, "prune"])
    after = parser.parse_args(["prune", flag, value])
    assert (
        str(getattr(after, dest))
        == str(getattr(before, dest))
        == str(float(value) if flag == "--timeout" else value)
    )
    # given before the command and not after, the command's copy must not reset it
    assert getattr(parser.parse_args([flag, value, "images"]), dest) == getattr(before, dest)


def test_a_prune_without_a_policy_file_does_not_load_the_policy_api() -> None:
    # Start-up is most of a small prune's time (docs/benchmarks.md): what only
    # --policy needs (the operator's policy parser, zoneinfo, PyYAML) is imported on
    # demand.
    script = (
        "import sys; from imageprune.cli import main, commands; "
        "main.build_parser(); print(sorted(m for m in sys.modules "
        "if m in ('imageprune.api.policy', 'zoneinfo', 'yaml')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
