"""`--policy FILE` and the bounded reader under it: whatever is at the path, the
answer is a Selection or a PolicyError naming the file or the field, at once."""

from __future__ import annotations

import contextlib
import datetime
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from imageprune import files
from imageprune.policy import manifest_file, manifest_yaml
from imageprune.policy.selection import (
    DEFAULT_UNUSED_FOR,
    PolicyError,
    Selection,
    selection_from_spec,
)
from testkit import builders

pytestmark = pytest.mark.unit

POLICY = builders.POLICY_MANIFEST
HEAD = "apiVersion: imageprune.io/v1alpha1\nkind: ImagePrunePolicy\nspec:\n"


def _load(path: Path) -> Selection:
    """load_policy_file, failing the test instead of hanging if a read blocks."""
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(manifest_file.load_policy_file(path, selection_from_spec))
        except BaseException as error:
            outcome.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout=60)
    assert outcome, f"reading {path} blocked"
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    assert isinstance(outcome[0], Selection)
    return outcome[0]


def _error(path: Path) -> PolicyError:
    with pytest.raises(PolicyError) as caught:
        _load(path)
    assert caught.value.where.startswith(str(path))
    assert "Traceback" not in str(caught.value)
    return caught.value


def test_reads_a_policy_file(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    assert _load(path).unused_for == datetime.timedelta(days=7)


def test_without_unused_for_a_policy_waits_two_minutes(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY.replace("  unusedFor: 7d\n", ""))
    assert _load(path).unused_for == DEFAULT_UNUSED_FOR


def test_a_symlink_to_a_regular_file_is_read(tmp_path: Path) -> None:
    (tmp_path / "policy.yaml").write_text(POLICY)
    (tmp_path / "link.yaml").symlink_to(tmp_path / "policy.yaml")
    assert _load(tmp_path / "link.yaml") == _load(tmp_path / "policy.yaml")


def test_utf8_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + POLICY.encode())
    assert _load(path).unused_for == datetime.timedelta(days=7)


def test_exactly_one_mebibyte_is_read(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    padding = 2**20 - len(POLICY) - 1
    path.write_text(POLICY + "#" * padding + "\n")
    assert path.stat().st_size == 2**20
    assert _load(path).unused_for == datetime.timedelta(days=7)


class TestFileProblems:
    def test_missing(self, tmp_path: Path) -> None:
        error = _error(tmp_path / "missing.yaml")
        assert error.problem == "No such file or directory"

    def test_fifo_is_refused_without_waiting_for_a_writer(self, tmp_path: Path) -> None:
        os.mkfifo(tmp_path / "fifo")
        assert _error(tmp_path / "fifo").problem == "not a regular file (a FIFO)"

    def test_symlink_to_a_fifo(self, tmp_path: Path) -> None:
        os.mkfifo(tmp_path / "fifo")
        (tmp_path / "link").symlink_to(tmp_path / "fifo")
        assert _error(tmp_path / "link").problem == "not a regular file (a FIFO)"

    def test_directory(self, tmp_path: Path) -> None:
        assert _error(tmp_path).problem == "not a regular file (a directory)"

    def test_dev_zero(self) -> None:
        error = _error(Path("/dev/zero"))
        assert error.problem == "not a regular file (a character device)"

    def test_symlink_to_dev_zero(self, tmp_path: Path) -> None:
        (tmp_path / "zero.yaml").symlink_to("/dev/zero")
        assert _error(tmp_path / "zero.yaml").problem == "not a regular file (a character device)"

    def test_one_byte_over_a_mebibyte(self, tmp_path: Path) -> None:
        path = tmp_path / "big.yaml"
        path.write_text(POLICY + "#" * (2**20 - len(POLICY)) + "\n")
        assert path.stat().st_size == 2**20 + 1
        assert _error(path).problem == "larger than 1 MiB"

    def test_unreadable(self) -> None:
        # Root reads any file, so as root the read is made as nobody, in a folder nobody
        # may enter (pytest's own temp folders are root's alone), of a file root alone
        # may read.
        folder = Path(tempfile.mkdtemp(prefix="ipn-perm-"))
        try:
            folder.chmod(0o755)
            path = folder / "policy.yaml"
            path.write_text(POLICY)
            path.chmod(0o600 if os.geteuid() == 0 else 0)
            with _as_nobody():
                error = _error(path)
        finally:
            shutil.rmtree(folder)
        assert error.problem == "Permission denied"


@contextlib.contextmanager
def _as_nobody() -> Iterator[None]:
    """Root's file permissions do not apply to root: take nobody's for the block."""
    if os.geteuid() != 0:
        yield
        return
    os.seteuid(65534)
    try:
        yield
    finally:
        os.seteuid(0)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (POLICY.encode("utf-16"), "UTF-16 text; save the file as UTF-8"),
        (POLICY.encode("utf-16-be"), "holds NUL bytes (UTF-16 text, or not text at all)"),
        (POLICY.encode("utf-16-le"), "holds NUL bytes (UTF-16 text, or not text at all)"),
        (POLICY.encode("utf-32"), "UTF-32 text; save the file as UTF-8"),
        (
            POLICY.replace("weekly", "café").encode("latin-1"),
            "not UTF-8 text (byte 0xe9 at offset 79)",
        ),
        (b"\x00" * 100, "holds NUL bytes"),
    ],
)
def test_text_that_is_not_utf8_is_refused(tmp_path: Path, content: bytes, problem: str) -> None:
    path = tmp_path / "policy.yaml"
    path.write_bytes(content)
    assert _error(path).problem.startswith(problem)


def _billion_laughs() -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, 10):
        lines.append(f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * 9) + "]")
    return HEAD + "\n".join("  " + line for line in lines) + "\n  exclude: *a9\n"


@pytest.mark.parametrize(
    ("text", "where", "problem"),
    [
        (
            HEAD + "  exclude: " + "[" * 5000 + "]" * 5000 + "\n",
            "line 4, column 110",  # the root and spec mappings are two levels
            "invalid YAML: nested more than 100 levels deep",
        ),
        (
            HEAD + "".join(" " * (2 + n) + "- \n" for n in range(200)),
            "line 103, column 102",
            "invalid YAML: nested more than 100 levels deep",
        ),
        (
            HEAD + "  keepLatestPerRepository: " + "9" * 5000 + "\n",
            "line 4, column 28",
            "invalid YAML: number too long (5,000 characters)",
        ),
        (
            HEAD + "  keepLatestPerRepository: 0x" + "f" * 5000 + "\n",
            "line 4, column 28",
            "invalid YAML: number too long (5,002 characters)",
        ),
        (
            HEAD + "  limits: {maxBytesPerRun: 0x" + "f" * 60 + "}\n",
            "spec.limits.maxBytesPerRun",
            "must be at most 9223372036854775807 (got a huge integer)",
        ),
        (
            HEAD + "  unusedFor: " + "9" * 5000 + "s\n",
            "spec.unusedFor",
            "invalid duration '99999999999999999999'...: longer than 64 characters",
        ),
        (
            _billion_laughs(),
            "line 9, column 12",
            "invalid YAML: more than 100,000 values once aliases are expanded",
        ),
        (HEAD + "  include: &x [*x]\n", "line 4, column 16", "invalid YAML: an alias refers"),
        (HEAD + "  include: *x\n", "line 4, column 12", "invalid YAML: found undefined alias 'x'"),
        (
            HEAD + "  unusedFor: 0000-01-01\n",  # datetime refuses year 0
            "spec.unusedFor",
            "invalid duration '0000-01-01'",
        ),
        (HEAD + "  unusedfor: 7d\n", "spec.unusedfor", "unknown field; did you mean unusedFor?"),
        (HEAD + "  1: 7d\n", "spec.1", "unknown field: a field name is a string"),
        (HEAD + "  exclude: ['nginx:']\n", "spec.exclude[0]", "invalid image pattern 'nginx:'"),
        (
            HEAD + "  diskUsage: {highPercent: 1" + "0" * 5000 + ".0, lowPercent: 1}\n",
            "spec.diskUsage.highPercent",
            "must be more than 0 and at most 100 (got inf)",
        ),
        (HEAD + "  include: !!python/object:os.system x\n", "line 4, column 12", "invalid YAML"),
        (
            HEAD + "  exclude: [nginx]\n  unusedFor: 1h\n  exclude: []\n",
            "line 6, column 3",
            "invalid YAML: duplicate key 'exclude'",
        ),
        (HEAD + '  "a": 1\n  a: 2\n', "line 5, column 3", "invalid YAML: duplicate key 'a'"),
    ],
)
def test_hostile_yaml_gets_an_error_naming_the_place(
    tmp_path: Path, text: str, where: str, problem: str
) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    error = _error(path)
    assert error.where == f"{path}: {where}"
    assert error.problem.startswith(problem)
    assert "set_int_max_str_digits" not in str(error)


def test_aliases_within_the_bound_are_fine(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(
        "x-common: &protect [registry.k8s.io/*, quay.io/org/*]\n"
        + HEAD
        + "  exclude: *protect\n  include: *protect\n"
    )
    assert [str(p) for p in _load(path).exclude] == ["registry.k8s.io/*", "quay.io/org/*"]


def test_node_bound_counts_every_document(tmp_path: Path) -> None:
    many = "[" + ",".join(["1"] * (manifest_yaml.MAX_NODES // 2)) + "]\n"
    text = f"a: {many}---\nb: {many}---\n{POLICY}"
    with pytest.raises(manifest_yaml.YAMLProblem, match="more than 100,000 values"):
        manifest_yaml.load_documents(text)


def test_equal_looking_keys_of_other_types_are_not_duplicates() -> None:
    assert manifest_yaml.load_documents("1: a\n'1': b\n") == [{1: "a", "1": "b"}]


def test_timestamps_stay_text() -> None:
    assert manifest_yaml.load_documents("when: 2025-01-01\n") == [{"when": "2025-01-01"}]


class TestReader:
    def test_reads_up_to_the_limit(self, tmp_path: Path) -> None:
        path = tmp_path / "f"
        path.write_bytes(b"x" * 10)
        assert files.read_regular_file(path, limit=10) == b"x" * 10
        with pytest.raises(files.FileRejected, match="larger than 9 bytes"):
            files.read_regular_file(path, limit=9)

    def test_empty_file(self, tmp_path: Path) -> None:
        (tmp_path / "f").touch()
        assert files.read_regular_file(tmp_path / "f", limit=10) == b""

    def test_a_socket_is_refused(self, tmp_path: Path) -> None:
        import socket  # noqa: PLC0415

        with socket.socket(socket.AF_UNIX) as server:
            server.bind(str(tmp_path / "s"))
            with pytest.raises(files.FileRejected, match=r"not a regular file \(a socket\)"):
                files.read_regular_file(tmp_path / "s", limit=10)

    def test_a_file_swapped_for_a_fifo_after_the_check_is_refused(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # The path is checked, then opened; what was opened is checked again.
        path = tmp_path / "f"
        path.write_text("x")
        real_open = os.open

        def swap_then_open(name: str, flags: int) -> int:
            os.unlink(name)
            os.mkfifo(name)
            return real_open(name, flags)

        monkeypatch.setattr(os, "open", swap_then_open)
        with pytest.raises(files.FileRejected, match="a FIFO"):
            files.read_regular_file(path, limit=10)
