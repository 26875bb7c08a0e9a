"""Output that cannot be written, as standard Unix tools treat it: a reader that left
(`| head`) ends the output quietly, any other failure (`>/dev/full`, `>&-`) is one line
on stderr, and in every case the exit code says what the prune did, its removals are
done and its usage records are saved. A full state directory stops a prune before it
removes anything, with a clear error."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from testkit import cliproc, oci
from testkit.containerd import ContainerdNode

pytestmark = pytest.mark.cri

IMAGES = 30  # more than the progress bar's threshold


def _add_unused(node: ContainerdNode, name: str) -> set[str]:
    built = node.add_images(
        *(oci.ImageSpec(repo_tags=(f"docker.io/library/{name}{n}:1",)) for n in range(IMAGES))
    )
    return {image.id for image in built}


def _run(argv: Sequence[str], **streams: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cliproc.command(*argv),
        check=False,
        text=True,
        env=cliproc.env(),
        timeout=120,
        **streams,  # type: ignore[call-overload]
    )


@contextlib.contextmanager
def _pipe_nobody_reads() -> Iterator[int]:
    """The write end of a pipe whose reader has already gone, as `| head -c 0`."""
    read, write = os.pipe()
    os.close(read)
    try:
        yield write
    finally:
        os.close(write)


def _records(state: Path) -> set[str]:
    document = json.loads((state / "usage.json").read_text())
    return set(document["images"])


def _args(node: ContainerdNode, state: Path, *rest: str) -> list[str]:
    return ["--runtime-endpoint", node.endpoint, "--state-dir", str(state), *rest]


@pytest.mark.parametrize("output", ["json", "text"])
def test_a_reader_that_left_ends_the_output_quietly(
    containerd: ContainerdNode, tmp_path: Path, output: str
) -> None:
    ids = _add_unused(containerd, "gone")
    with _pipe_nobody_reads() as stdout:
        result = _run(_args(containerd, tmp_path, "prune", "-o", output), stdout=stdout, stderr=-1)

    assert result.returncode == 0, result.stderr
    # Nothing on stderr but the progress of a text prune.
    assert all(line.startswith("Removing [") for line in result.stderr.splitlines())
    assert ids.isdisjoint(containerd.image_ids())
    assert ids <= _records(tmp_path)  # saved when the node was observed
    with _pipe_nobody_reads() as stdout:
        listing = _run(_args(containerd, tmp_path, "images"), stdout=stdout, stderr=-1)
    assert (listing.returncode, listing.stderr) == (0, "")


def test_a_full_stdout_is_one_line_on_stderr(containerd: ContainerdNode, tmp_path: Path) -> None:
    ids = _add_unused(containerd, "full")
    with open("/dev/full", "w") as full:
        result = _run(_args(containerd, tmp_path, "prune", "-o", "json"), stdout=full, stderr=-1)

    assert result.returncode == 0, result.stderr
    assert result.stderr == "imageprune: error: cannot write the output: No space left on device\n"
    assert ids.isdisjoint(containerd.image_ids())
    assert ids <= _records(tmp_path)


def test_a_closed_stdout_is_one_line_on_stderr_and_no_file_gets_the_output(
    containerd: ContainerdNode, tmp_path: Path
) -> None:
    ids = _add_unused(containerd, "closed")
    argv = cliproc.command(*_args(containerd, tmp_path, "prune", "-o", "json"))
    result = cliproc.run_redirected(argv, ">&-")

    assert result.returncode == 0, result.stderr
    assert result.stderr == "imageprune: error: cannot write the output: stdout is closed\n"
    assert ids.isdisjoint(containerd.image_ids())
    # The lock file, opened where stdout was, holds only the pid: no report landed there.
    assert (tmp_path / "lock").read_text().strip().isdigit()
    assert ids <= _records(tmp_path)


def test_a_progress_bar_that_cannot_be_drawn_stops_nothing(
    containerd: ContainerdNode, tmp_path: Path
) -> None:
    ids = _add_unused(containerd, "bar")
    with _pipe_nobody_reads() as stderr:
        result = _run(_args(containerd, tmp_path, "prune", "-o", "text"), stdout=-1, stderr=stderr)
    assert result.returncode == 0
    assert f"Removed {IMAGES} images" in result.stdout
    assert ids.isdisjoint(containerd.image_ids())


@pytest.fixture
def full_state_dir(tmp_path: Path) -> Iterator[Path]:
    """A tiny tmpfs, filled to the last byte: a node whose disk is full."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "full"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], check=True)
    try:
        (mount / "state").mkdir()
        with contextlib.suppress(OSError), (mount / "filler").open("wb") as filler:
            while True:
                filler.write(b"\0" * 4096)
                filler.flush()
        yield mount / "state"
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_a_full_state_dir_stops_a_prune_before_any_removal(
    containerd: ContainerdNode, full_state_dir: Path
) -> None:
    ids = _add_unused(containerd, "nospace")
    result = _run(_args(containerd, full_state_dir, "prune", "-o", "json"), capture_output=True)

    assert result.returncode == 2, result.stderr
    assert f"cannot write the lock file {full_state_dir}/lock: No space left" in result.stderr
    assert "Traceback" not in result.stderr
    assert ids <= containerd.image_ids()
    # A dry run still works, with a warning that its records cannot be saved.
    dry = _run(
        _args(containerd, full_state_dir, "prune", "--dry-run", "-o", "json"), capture_output=True
    )
    assert dry.returncode == 0, dry.stderr
    assert "cannot save usage records" in dry.stderr
    assert ids <= containerd.image_ids()


@pytest.mark.parametrize("argv", [("--help",), ("prune", "--help")])
def test_help_to_a_closed_stdout_is_one_line_on_stderr(argv: tuple[str, ...]) -> None:
    """Python's own flush at exit would say "Exception ignored ..." and exit 120."""
    result = cliproc.run_redirected(cliproc.command(*argv), ">&-")
    assert result.returncode == 0, result.stderr
    assert result.stderr == "imageprune: error: cannot write the output: stdout is closed\n"
