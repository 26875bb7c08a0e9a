"""Every bad input a hostile or careless user can give the node CLI: flags, endpoints,
environment, policy files and usage-record files. Each case runs the real CLI as a
process against a real containerd holding unused images, and checks the exit code,
a message that names the flag, field or file, no traceback, no gRPC log line, no
hang, and that every image survived.

One containerd per flavour serves the whole table: the cases change nothing on it
(that is what they check)."""

from __future__ import annotations

import dataclasses
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from testkit import cliproc, oci
from testkit import containerd as containerd_kit

pytestmark = pytest.mark.cri

MANIFEST = "apiVersion: imageprune.io/v1alpha1\nkind: ImagePrunePolicy\nmetadata: {name: p}\n"
# A path from argv or the environment with a byte that is not UTF-8, as Python sees it.
NOT_UTF8 = b"/run/\xff\xfe.sock".decode("utf-8", "surrogateescape")
TOO_LONG = "/run/" + "s" * 110 + ".sock"


@dataclasses.dataclass(frozen=True)
class Case:
    id: str
    argv: tuple[str, ...]  # {files} is the prepared files' dir; {endpoint} the node's
    code: int
    says: str  # a piece of the message on stderr: the flag, field, variable or file
    env: tuple[tuple[str, str], ...] = ()
    # Give --runtime-endpoint before the command (False: the case chooses).
    endpoint: bool = True
    records: str = ""  # a RECORDS entry to put in the state dir as usage.json


def _c(id: str, *argv: str, code: int = 2, says: str, **kw: object) -> Case:
    return Case(id, argv, code, says, **kw)  # type: ignore[arg-type]


# Corrupt usage records, each read by a fresh prune (the prune then replaces them).
RECORDS = {
    "garbage": "{not json",
    "year-one": '{"version": 1, "images": {"sha256:' + "a" * 64 + '": {"firstSeen": '
    '"0001-01-01T00:00:00+14:00", "lastUsed": null}}}',
    "huge-number": '{"version": 1, "images": {"x": {"firstSeen": ' + "9" * 5000 + "}}}",
    "wrong-types": '{"version": "one", "images": [1, 2, 3]}',
    "fifo": "",
    "dev-zero": "",
    "directory": "",
}


def _write_records(state: Path, name: str) -> None:
    state.mkdir()
    path = state / "usage.json"
    if name == "fifo":
        os.mkfifo(path)
    elif name == "dev-zero":
        path.symlink_to("/dev/zero")
    elif name == "directory":
        path.mkdir()
    else:
        path.write_text(RECORDS[name])


POLICY = "--policy"
CASES = [
    # ---- selection flags --------------------------------------------------------
    _c("unused-for-word", "prune", "--unused-for", "soon", says="--unused-for"),
    _c("unused-for-negative", "prune", "--unused-for", "-1d", says="--unused-for"),
    _c("unused-for-empty", "prune", "--unused-for", "", says="--unused-for"),
    _c("older-than-unit", "prune", "--older-than", "5x", says="--older-than"),
    _c("older-than-huge", "prune", "--older-than", "9" * 40 + "d", says="--older-than"),
    _c("keep-latest-negative", "prune", "--keep-latest", "-1", says="--keep-latest"),
    _c("keep-latest-word", "prune", "--keep-latest", "two", says="--keep-latest"),
    _c("disk-low-above-high", "prune", "--disk-high", "50", "--disk-low", "70", says="--disk-"),
    _c("disk-high-over-100", "prune", "--disk-high", "150", "--disk-low", "10", says="--disk-high"),
    _c("disk-high-nan", "prune", "--disk-high", "nan", "--disk-low", "10", says="--disk-high"),
    _c("disk-low-alone", "prune", "--disk-low", "10", says="--disk-"),
    _c("max-images-negative", "prune", "--max-images", "-5", says="--max-images"),
    _c("max-bytes-word", "prune", "--max-bytes", "lots", says="--max-bytes"),
    _c("max-bytes-negative", "prune", "--max-bytes", "-1Gi", says="--max-bytes"),
    _c("scope-unknown", "prune", "--scope", "Everything", says="--scope"),
    _c("include-empty", "prune", "--include", "", says="--include"),
    _c("exclude-empty", "prune", "--exclude", "", says="--exclude"),
    _c("exclude-tag-missing", "prune", "--exclude", "nginx:", says="--exclude[0]"),
    _c("exclude-digest-missing", "prune", "--exclude", "nginx@", says="--exclude[0]"),
    _c("exclude-upper-case", "prune", "--exclude", "RT/BASE:*", says="--exclude[0]"),
    _c("exclude-second", "prune", "--exclude", "a", "--exclude", "b:", says="--exclude[1]"),
    _c("policy-and-flags", "prune", POLICY, "{files}/ok.yaml", "--unused-for", "1d", says=POLICY),
    # ---- run flags ----------------------------------------------------------------
    _c("concurrency-zero", "prune", "--concurrency", "0", says="--concurrency"),
    _c("concurrency-huge", "prune", "--concurrency", "5000", says="--concurrency"),
    _c("concurrency-word", "prune", "--concurrency", "many", says="--concurrency"),
    _c("timeout-nan", "--timeout", "nan", "prune", says="--timeout"),
    _c("timeout-inf", "--timeout", "inf", "prune", says="--timeout"),
    _c("timeout-negative", "--timeout", "-1", "prune", says="--timeout"),
    _c("timeout-zero", "--timeout", "0", "prune", says="--timeout"),
    _c("timeout-absurd", "--timeout", "1e300", "prune", says="--timeout"),
    _c("timeout-word", "--timeout", "soon", "prune", says="--timeout"),
    _c("timeout-after-command", "prune", "--timeout", "nan", says="--timeout"),
    _c("lock-timeout-negative", "prune", "--lock-timeout", "-1", says="--lock-timeout"),
    _c("lock-timeout-nan", "prune", "--lock-timeout", "nan", says="--lock-timeout"),
    _c("output-yaml", "prune", "-o", "yaml", says="--output"),
    _c("unknown-flag", "prune", "--unused_for", "1d", says="--unused_for"),
    _c("flag-of-other-command", "images", "--dry-run", says="--dry-run"),
    _c("dry-run-with-value", "prune", "--dry-run=yes", says="--dry-run"),
    _c("unknown-command", "purge", says="purge"),
    _c(
        "state-dir-is-a-file",
        *("--state-dir", "{files}/ok.yaml", "prune"),
        says="ok.yaml: not a directory (a regular file); set --state-dir",
    ),
    _c("state-dir-empty", "--state-dir", "", "prune", says="--state-dir: the path is empty"),
    _c("state-dir-symlink-loop", "--state-dir", "{files}/loop", "prune", says="a symlink loop"),
    _c(
        "state-dir-under-a-dangling-symlink",
        *("--state-dir", "{files}/nowhere/state", "prune"),
        says="nowhere: a symlink to nothing",
    ),
    _c("policy-empty-path", "prune", POLICY, "", says="--policy: the path is empty"),
    # ---- endpoints ------------------------------------------------------------------
    *(
        _c(
            f"endpoint-{name}",
            "--runtime-endpoint",
            value,
            "prune",
            says="--runtime-endpoint",
            endpoint=False,
        )
        for name, value in [
            ("tcp", "tcp://127.0.0.1:10010"),
            ("http", "http://localhost:10010"),
            ("npipe", "npipe:////./pipe/containerd-containerd"),
            ("garbage", "garbage"),
            ("empty", ""),
            ("relative", "unix://containerd.sock"),
            ("too-long", TOO_LONG),
            ("not-utf8", NOT_UTF8),
        ]
    ),
    _c(
        "endpoint-after-command",
        "prune",
        "--runtime-endpoint",
        "tcp://x:1",
        says="--runtime-endpoint",
        endpoint=False,
    ),
    _c(
        "endpoint-missing",
        "--runtime-endpoint",
        "/nonexistent/c.sock",
        "prune",
        code=3,
        says="from --runtime-endpoint",
        endpoint=False,
    ),
    _c(
        "endpoint-regular-file",
        "--runtime-endpoint",
        "{files}/ok.yaml",
        "prune",
        code=3,
        says="from --runtime-endpoint",
        endpoint=False,
    ),
    _c(
        "endpoint-directory",
        "--runtime-endpoint",
        "{files}",
        "prune",
        code=3,
        says="from --runtime-endpoint",
        endpoint=False,
    ),
    # ---- environment ---------------------------------------------------------------
    *(
        _c(
            f"env-{name}",
            "prune",
            code=code,
            says="$CONTAINER_RUNTIME_ENDPOINT",
            env=(("CONTAINER_RUNTIME_ENDPOINT", value),),
            endpoint=False,
        )
        for name, value, code in [
            ("tcp", "tcp://127.0.0.1:10010", 2),
            ("garbage", "containerd", 2),
            ("too-long", TOO_LONG, 2),
            ("not-utf8", NOT_UTF8, 2),
            ("missing", "unix:///nonexistent/c.sock", 3),
        ]
    ),
    # ---- policy files (read as the API server would: bounded, regular, UTF-8) --------
    _c("policy-missing", "prune", POLICY, "{files}/missing.yaml", says="missing.yaml"),
    _c("policy-directory", "prune", POLICY, "{files}", says="--policy"),
    _c("policy-dev-zero", "prune", POLICY, "/dev/zero", says="/dev/zero"),
    _c("policy-fifo", "prune", POLICY, "{files}/fifo", says="fifo"),
    _c("policy-symlink-dev-zero", "prune", POLICY, "{files}/zero.yaml", says="zero.yaml"),
    _c("policy-latin1", "prune", POLICY, "{files}/latin1.yaml", says="UTF-8"),
    _c("policy-utf16", "prune", POLICY, "{files}/utf16.yaml", says="UTF-16"),
    _c("policy-deep", "prune", POLICY, "{files}/deep.yaml", says="deep.yaml"),
    _c("policy-digits", "prune", POLICY, "{files}/digits.yaml", says="number too long"),
    _c("policy-huge", "prune", POLICY, "{files}/huge.yaml", says="1 MiB"),
    _c("policy-aliases", "prune", POLICY, "{files}/aliases.yaml", says="aliases.yaml"),
    _c("policy-configmap", "prune", POLICY, "{files}/configmap.yaml", says="ImagePrunePolicy"),
    _c("policy-unusedfor", "prune", POLICY, "{files}/unusedfor.yaml", says="spec.unusedfor"),
    _c("policy-dry-run-key", "prune", POLICY, "{files}/dryrun.yaml", says="spec.dryRun"),
    _c("policy-numeric-key", "prune", POLICY, "{files}/numkey.yaml", says="spec.1"),
    _c("policy-exclude", "prune", POLICY, "{files}/exclude.yaml", says="spec.exclude[0]"),
    _c("policy-bad-duration", "prune", POLICY, "{files}/duration.yaml", says="spec.unusedFor"),
    _c("policy-syntax", "prune", POLICY, "{files}/syntax.yaml", says="syntax.yaml"),
    _c("policy-empty", "prune", POLICY, "{files}/empty.yaml", says="empty.yaml"),
    _c("policy-list", "prune", POLICY, "{files}/list.yaml", says="list.yaml"),
    _c("policy-two-documents", "prune", POLICY, "{files}/two.yaml", says="two.yaml"),
    # ---- usage records: one warning, the conservative fallback (every image first
    # seen now, so --unused-for keeps it), exit 0 -----------------------------------
    *(
        _c(f"records-{name}", "prune", "--unused-for", "1d", code=0, says="usage", records=name)
        for name in RECORDS
    ),
]


def _write_files(d: Path) -> None:
    (d / "ok.yaml").write_text(MANIFEST + "spec: {unusedFor: 7d}\n")
    os.mkfifo(d / "fifo")
    (d / "zero.yaml").symlink_to("/dev/zero")
    (d / "latin1.yaml").write_bytes((MANIFEST + "spec: {exclude: ['caf\xe9']}\n").encode("latin-1"))
    (d / "utf16.yaml").write_bytes((MANIFEST + "spec: {}\n").encode("utf-16"))
    (d / "deep.yaml").write_text(MANIFEST + "spec: {exclude: " + "[" * 5000 + "]" * 5000 + "}\n")
    (d / "digits.yaml").write_text(
        MANIFEST + "spec: {limits: {maxImagesPerRun: " + "9" * 5000 + "}}\n"
    )
    (d / "huge.yaml").write_text(MANIFEST + "# " + "x" * (1 << 20) + "\nspec: {}\n")
    (d / "aliases.yaml").write_text(
        MANIFEST
        + "a: &a [x, x, x, x, x, x, x, x, x]\n"
        + "".join(
            f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n"
            for p, c in zip("abcdefgh", "bcdefghi", strict=True)
        )
        + "spec: {exclude: *i}\n"
    )
    (d / "configmap.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
    (d / "unusedfor.yaml").write_text(MANIFEST + "spec: {unusedfor: 7d}\n")
    (d / "dryrun.yaml").write_text(MANIFEST + "spec: {unusedFor: 7d, dryRun: true}\n")
    (d / "numkey.yaml").write_text(MANIFEST + "spec: {unusedFor: 7d, 1: x}\n")
    (d / "exclude.yaml").write_text(MANIFEST + "spec: {unusedFor: 7d, exclude: ['nginx:']}\n")
    (d / "duration.yaml").write_text(MANIFEST + "spec: {unusedFor: a week}\n")
    (d / "syntax.yaml").write_text(MANIFEST + "spec: [\n")
    (d / "empty.yaml").write_text("")
    (d / "list.yaml").write_text("- a\n- b\n")
    (d / "two.yaml").write_text(MANIFEST + "spec: {}\n---\n" + MANIFEST + "spec: {}\n")
    (d / "loop").symlink_to(d / "loop")
    (d / "nowhere").symlink_to(d / "missing")


@pytest.fixture(scope="module", params=containerd_kit.FLAVOURS)
def node(request: pytest.FixtureRequest) -> Iterator[containerd_kit.ContainerdNode]:
    with containerd_kit.running(request.param) as started:
        started.add_images(
            oci.ImageSpec(repo_tags=("docker.io/library/unused:1",)),
            oci.ImageSpec(repo_tags=("quay.io/org/unused:2", "quay.io/org/unused:latest")),
            oci.ImageSpec(dangling=True, seed="dangling"),
        )
        yield started


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("bad-inputs")
    _write_files(d)
    return d


def test_the_table_is_big_enough() -> None:
    assert len(CASES) >= 60
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(
    case: Case, node: containerd_kit.ContainerdNode, files: Path, tmp_path: Path
) -> None:
    before = node.image_ids()
    if case.records:
        _write_records(tmp_path / "state", case.records)
    argv = [a.replace("{files}", str(files)) for a in case.argv]
    state = ["--state-dir", str(tmp_path / "state")] if "--state-dir" not in argv else []
    endpoint = ["--runtime-endpoint", node.endpoint] if case.endpoint else []
    try:
        result = cliproc.run([*endpoint, *state, *argv], extra_env=dict(case.env), timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{case.id}: hung")

    assert result.returncode == case.code, result.stderr
    assert case.says in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert not cliproc.GRPC_LOG_LINE.search(result.stderr), result.stderr
    assert node.image_ids() == before
