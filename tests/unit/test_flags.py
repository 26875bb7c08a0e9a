"""Selection flags mean what the spec fields mean, and their errors name the flag."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from imageprune.cli import flags
from imageprune.policy.selection import DEFAULT_UNUSED_FOR, Scope

pytestmark = pytest.mark.unit


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(exit_on_error=False)
    flags.add_selection(parser)
    return parser.parse_args(argv)


@pytest.mark.parametrize(
    ("text", "scope"),
    [("unused", Scope.UNUSED), ("DANGLING", Scope.DANGLING), ("Dangling", Scope.DANGLING)],
)
def test_scope_takes_any_case(text: str, scope: Scope) -> None:
    assert flags.request_from_args(_parse("--scope", text)).selection.scope is scope


def test_an_unknown_scope_is_still_refused() -> None:
    with pytest.raises(argparse.ArgumentError, match="invalid choice: 'Everything'"):
        _parse("--scope", "everything")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--exclude", "nginx:"], "--exclude[0]: invalid image pattern 'nginx:'"),
        (["--exclude", "ok", "--exclude", "nginx@"], "--exclude[1]: invalid image pattern"),
        (["--exclude", "RT/BASE:*"], "--exclude[0]: invalid image pattern 'RT/BASE:*'"),
        (["--include", "Nginx"], "--include[0]: invalid image pattern 'Nginx'"),
    ],
)
def test_unmatchable_patterns_name_the_flag(argv: list[str], message: str) -> None:
    with pytest.raises(flags.UsageError) as caught:
        flags.request_from_args(_parse(*argv))
    assert str(caught.value).startswith(message)


def test_flags_set_no_age_limit_but_a_policy_file_does(tmp_path: Path) -> None:
    assert flags.request_from_args(_parse()).selection.unused_for is None
    path = tmp_path / "policy.yaml"
    path.write_text("apiVersion: imageprune.io/v1alpha1\nkind: ImagePrunePolicy\nspec: {}\n")
    assert flags.request_from_args(_parse("--policy", str(path))).selection.unused_for == (
        DEFAULT_UNUSED_FOR
    )


def test_policy_file_errors_name_the_flag_and_the_file(tmp_path: Path) -> None:
    with pytest.raises(flags.UsageError) as caught:
        flags.request_from_args(_parse("--policy", str(tmp_path)))
    assert str(caught.value) == f"--policy {tmp_path}: not a regular file (a directory)"


HEAD = "apiVersion: imageprune.io/v1alpha1\nkind: ImagePrunePolicy\nmetadata: {name: p}\nspec:\n"


@pytest.mark.parametrize(
    ("spec", "removes_nothing", "cluster_only"),
    [
        ("  mode: Enforce\n", None, None),
        (
            "  unusedFor: 1d\n",
            "policy mode DryRun (the default): nothing removed; set mode: Enforce to remove",
            None,
        ),
        (
            "  mode: DryRun\n",
            "policy mode DryRun: nothing removed; set mode: Enforce to remove",
            None,
        ),
        (
            "  mode: Enforce\n  suspend: true\n",
            "policy suspended: nothing removed; set suspend: false to remove",
            None,
        ),
        (
            "  mode: Enforce\n  suspend: false\n  schedule: '@daily'\n  rollout: {}\n",
            None,
            "spec.schedule, spec.rollout: used in the cluster only; ignored on this node",
        ),
        ("  mode: Enforce\n  nodeSelector: null\n", None, None),  # null counts as absent
    ],
)
def test_a_policy_files_mode_and_suspend_decide_as_in_the_cluster(
    tmp_path: Path, spec: str, removes_nothing: str | None, cluster_only: str | None
) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(HEAD + spec)
    request = flags.request_from_args(_parse("--policy", str(path)))
    assert request.removes_nothing == removes_nothing
    assert request.cluster_only == cluster_only


def test_flags_alone_leave_removal_to_dry_run() -> None:
    request = flags.request_from_args(_parse("--unused-for", "1d"))
    assert (request.removes_nothing, request.cluster_only) == (None, None)


def test_an_empty_path_is_refused_not_read_as_the_current_directory() -> None:
    with pytest.raises(argparse.ArgumentError, match="the path is empty"):
        _parse("--policy", "")
