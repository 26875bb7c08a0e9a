"""`imageprune prune` against real containerd: what must stay, stays; the rest goes."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import io
import json
from pathlib import Path

import pytest

from imageprune.cli import main as cli
from imageprune.node import usage
from testkit import oci
from testkit.containerd import SANDBOX_IMAGE, ContainerdNode

pytestmark = pytest.mark.cri

DAY = datetime.timedelta(days=1)
HOUR = datetime.timedelta(hours=1)
T0 = datetime.datetime(2024, 6, 1, tzinfo=datetime.UTC)


def _prune(node: ContainerdNode, state: Path, *flags: str) -> tuple[int, dict[str, object]]:
    """Run the real CLI in-process; returns (exit code, its JSON report)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(
            [
                "--runtime-endpoint",
                node.endpoint,
                "--state-dir",
                str(state),
                "prune",
                "-o",
                "json",
                *flags,
            ]
        )
    return code, json.loads(out.getvalue())


def _ids(report: dict[str, object], outcome: str) -> set[str]:
    results = report["results"]
    assert isinstance(results, list)
    return {r["id"] for r in results if r["outcome"] == outcome}


def test_keeps_what_is_used_pinned_sandbox_or_excluded(
    containerd: ContainerdNode, tmp_path: Path
) -> None:
    spec = oci.ImageSpec
    (running, created, exited, multi, pinned, excluded, unused_a, unused_b) = containerd.add_images(
        spec(repo_tags=("docker.io/library/running:1",)),
        spec(repo_tags=("docker.io/library/created:1",)),
        spec(repo_tags=("docker.io/library/exited:1",)),
        spec(repo_tags=("docker.io/library/multi:1", "docker.io/library/multi:2")),
        spec(repo_tags=("docker.io/library/pinned:1",)),
        spec(repo_tags=("registry.k8s.io/kept:1",)),
        spec(repo_tags=("docker.io/library/unused:1", "docker.io/library/unused:2")),
        spec(repo_tags=("quay.io/org/unused:1",)),
    )
    sandbox = containerd.run_sandbox("pod")
    containerd.create_container(sandbox, "pod", name="r", image="docker.io/library/running:1")
    containerd.create_container(sandbox, "pod", name="c", image=created.id, start=False)
    gone = containerd.create_container(sandbox, "pod", name="e", image="docker.io/library/exited:1")
    containerd.stop_container(gone)
    # one tag of a multi-tag image in use keeps the whole image (RemoveImage drops all tags)
    containerd.create_container(sandbox, "pod", name="m", image="docker.io/library/multi:2")
    containerd.pin("docker.io/library/pinned:1")
    is_v1 = containerd.flavour.name == "1.6"

    code, report = _prune(containerd, tmp_path, "--exclude", "registry.k8s.io/*")

    assert code == 0
    left = containerd.image_ids()
    for image in (running, created, exited, multi, excluded):
        assert image.id in left
    assert {unused_a.id, unused_b.id}.isdisjoint(left)
    assert _ids(report, "Removed") >= {unused_a.id, unused_b.id}
    kept = report["verdicts"]
    assert isinstance(kept, dict)
    assert kept["InUse"] == 4
    assert kept["Excluded"] == 1
    # The pause image: no container lists it, yet it is found through the sandbox.
    assert kept["SandboxImage"] == 1
    assert containerd.image_id_of(SANDBOX_IMAGE) in left
    # containerd 1.6 never reports `pinned`: there, a pinned label cannot protect.
    if is_v1:
        assert pinned.id not in left
    else:
        assert pinned.id in left
        assert kept["Pinned"] == 1


def test_keeps_images_containers_name_by_digest_short_id_or_a_tag_since_removed(
    containerd: ContainerdNode, tmp_path: Path
) -> None:
    """A container's image as a user may give it: `repo@sha256:<manifest>` (the runtime
    lists the image's tags and that digest, not the container's text), a 12-digit ID
    prefix, or a tag removed since (the image is then listed without it)."""
    spec = oci.ImageSpec
    by_digest, by_short_id, by_old_tag, unused = containerd.add_images(
        spec(repo_tags=("docker.io/library/bydigest:1", "quay.io/x/other:2")),
        spec(repo_tags=("docker.io/library/byshort:1",)),
        spec(repo_tags=("docker.io/library/retagged:1", "docker.io/library/retagged:2")),
        spec(repo_tags=("docker.io/library/unused:1",)),
    )
    listing = containerd.ctr("images", "ls").stdout.splitlines()
    manifest = next(
        line.split()[2] for line in listing if line.startswith("docker.io/library/bydigest:1 ")
    )
    digest_ref = f"docker.io/library/bydigest@{manifest}"
    containerd.tag("docker.io/library/bydigest:1", digest_ref)
    sandbox = containerd.run_sandbox("pod")
    containerd.create_container(sandbox, "pod", name="d", image=digest_ref, start=False)
    short_id = by_short_id.id.removeprefix("sha256:")[:12]
    containerd.create_container(sandbox, "pod", name="s", image=short_id, start=False)
    containerd.create_container(
        sandbox, "pod", name="t", image="docker.io/library/retagged:1", start=False
    )
    containerd.ctr("images", "rm", "docker.io/library/retagged:1")

    code, report = _prune(containerd, tmp_path)

    assert code == 0
    left = containerd.image_ids()
    assert {by_digest.id, by_short_id.id, by_old_tag.id} <= left
    assert unused.id not in left
    assert _ids(report, "Removed") == {unused.id}


def test_dry_run_removes_nothing(containerd: ContainerdNode, tmp_path: Path) -> None:
    image = containerd.add_image(repo_tags=["docker.io/library/victim:1"], payload_size=50_000)
    before = containerd.image_ids()
    code, report = _prune(containerd, tmp_path, "--dry-run")
    assert code == 0
    assert report["dryRun"] is True
    assert image.id in _ids(report, "WouldRemove")
    assert int(report["removedBytes"]) >= 50_000  # type: ignore[call-overload]
    assert containerd.image_ids() == before


def test_dangling_scope_removes_only_untagged(containerd: ContainerdNode, tmp_path: Path) -> None:
    tagged, untagged = containerd.add_images(
        oci.ImageSpec(repo_tags=("docker.io/library/tagged:1",)),
        oci.ImageSpec(seed="orphan", dangling=True),
    )
    code, _ = _prune(containerd, tmp_path, "--scope", "Dangling")
    assert code == 0
    left = containerd.image_ids()
    assert tagged.id in left
    assert untagged.id not in left


def test_keep_latest_per_repository(containerd: ContainerdNode, tmp_path: Path) -> None:
    old, mid, new = containerd.add_images(
        *(
            oci.ImageSpec(repo_tags=(f"docker.io/library/rel:{n}",), created=T0 + n * DAY)
            for n in (1, 2, 3)
        )
    )
    code, report = _prune(containerd, tmp_path, "--keep-latest", "2", "--include", "rel:*")
    assert code == 0
    left = containerd.image_ids()
    assert {mid.id, new.id} <= left
    assert old.id not in left
    assert report["verdicts"]["KeptLatest"] == 2  # type: ignore[index]


def test_older_than_uses_image_creation_time(containerd: ContainerdNode, tmp_path: Path) -> None:
    now = datetime.datetime.now(datetime.UTC)
    ancient, fresh = containerd.add_images(
        oci.ImageSpec(repo_tags=("docker.io/library/ancient:1",), created=now - 90 * DAY),
        oci.ImageSpec(repo_tags=("docker.io/library/fresh:1",), created=now - DAY),
    )
    code, _ = _prune(containerd, tmp_path, "--older-than", "30d", "--include", "docker.io/*")
    assert code == 0
    left = containerd.image_ids()
    assert fresh.id in left
    assert ancient.id not in left


def test_unused_for_counts_from_records_that_survive_restarts(
    containerd: ContainerdNode, tmp_path: Path
) -> None:
    image = containerd.add_image(repo_tags=["docker.io/library/idle:1"])
    # First run: the image is first seen now, so it is "recently used" and kept.
    code, report = _prune(containerd, tmp_path, "--unused-for", "1h")
    assert code == 0
    assert image.id in containerd.image_ids()
    assert report["verdicts"]["RecentlyUsed"] >= 1  # type: ignore[index]
    # Age the persisted record, as if this node had watched the image for two hours.
    store = usage.UsageStore(tmp_path / "usage.json")
    records = store.load()
    seen = records[image.id]
    assert seen.last_used is None
    records[image.id] = dataclasses.replace(seen, first_seen=seen.first_seen - 2 * HOUR)
    store.save(records)
    code, report = _prune(containerd, tmp_path, "--unused-for", "1h")
    assert code == 0
    assert image.id not in containerd.image_ids()
    assert image.id in _ids(report, "Removed")


def test_corrupt_usage_records_warn_and_keep_more(
    containerd: ContainerdNode, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    image = containerd.add_image(repo_tags=["docker.io/library/idle:1"])
    (tmp_path / "usage.json").write_text("{not json")
    code, report = _prune(containerd, tmp_path, "--unused-for", "1h")
    assert code == 0
    assert any("corrupt usage records" in r.getMessage() for r in caplog.records)
    # Starting afresh means "first seen now": nothing is old enough to go.
    assert image.id in containerd.image_ids()
    assert report["verdicts"]["RecentlyUsed"] >= 1  # type: ignore[index]


def test_disk_target_reads_the_real_image_filesystem(
    containerd: ContainerdNode, tmp_path: Path
) -> None:
    image = containerd.add_image(repo_tags=["docker.io/library/big:1"], payload_size=100_000)
    used = containerd.image_filesystem_used_percent()
    # Below a high mark above the current fill: nothing to do.
    high = f"{min(used + 1, 100):.2f}"
    code, report = _prune(containerd, tmp_path, "--disk-high", high, "--disk-low", "0.01")
    assert code == 0
    assert report["verdicts"]["DiskBelowTarget"] == 1  # type: ignore[index]
    assert image.id in containerd.image_ids()
    # At or above the high mark: remove until the projection reaches the low mark.
    high = f"{max(used - 1, 0.02):.2f}"
    code, report = _prune(containerd, tmp_path, "--disk-high", high, "--disk-low", "0.01")
    assert code == 0
    assert image.id not in containerd.image_ids()
