"""containerd killed with SIGKILL, or frozen with SIGSTOP, in the middle of a prune
of hundreds of images: the report must still be the truth. Every image reported
removed is gone; every image that is gone was reported removed or unknown (a removal
sent and never answered); nothing reported failed or not attempted is gone; and once
the runtime is gone the CLI stops sending removals and says so in one line per kind,
not one per image."""

from __future__ import annotations

from pathlib import Path

import pytest

from testkit import cliproc, oci
from testkit.containerd import ContainerdNode

pytestmark = [pytest.mark.cri, pytest.mark.slow]

IMAGES = 200
# Removals in flight at once: at most this many outcomes can be unknown.
CONCURRENCY = 8


@pytest.mark.parametrize(
    ("how", "output"), [("kill", "json"), ("kill", "text"), ("freeze", "json")]
)
def test_runtime_lost_mid_prune_then_the_report_matches_what_is_gone(
    containerd: ContainerdNode, tmp_path: Path, how: str, output: str
) -> None:
    built = containerd.add_images(
        *(oci.ImageSpec(repo_tags=(f"docker.io/library/bulk{n}:1",)) for n in range(IMAGES))
    )
    ids = {image.id for image in built}
    # A frozen runtime answers nothing: each unanswered call costs the whole --timeout.
    timeout = "10" if how == "kill" else "2"
    prune = cliproc.start(
        containerd, tmp_path, "--timeout", timeout, "--concurrency", str(CONCURRENCY), "-o", output
    )
    try:
        cliproc.wait_until_gone(containerd, ids, at_least=IMAGES // 10, proc=prune)
        if how == "kill":
            containerd.kill()
        else:
            containerd.freeze()
        out, err = prune.communicate(timeout=120)
    finally:
        if prune.poll() is None:
            prune.kill()
        if how == "kill":
            containerd.start()  # on the same root: what the crash left behind
        else:
            containerd.freeze(frozen=False)

    gone = ids - containerd.image_ids()
    assert prune.returncode == 1, err
    assert "Traceback" not in err
    assert not cliproc.GRPC_LOG_LINE.search(err), err
    assert IMAGES // 10 <= len(gone) < IMAGES
    if output == "text":
        errors = [line for line in out.splitlines() if line.startswith("error:")]
        assert 1 <= len(errors) <= 3, out  # one line per kind, not one per image
        assert any("not attempted" in line for line in errors), out
        reported = {
            image.id
            for image in built
            if f"removed: {image.id.removeprefix('sha256:')[:12]} " in out
        }
        assert reported <= gone
        assert len(gone - reported) <= CONCURRENCY  # at most the unknown ones
        return

    report = cliproc.parse(out)
    removed = cliproc.ids_with_outcome(report, "Removed")
    unknown = cliproc.ids_with_outcome(report, "Unknown")
    kept = cliproc.ids_with_outcome(report, "Failed", "NotAttempted")
    assert removed | unknown | kept == ids
    assert removed <= gone
    assert gone <= removed | unknown
    assert kept.isdisjoint(gone)
    assert len(unknown) <= CONCURRENCY
    assert report["removedImages"] == len(removed)
    # It stopped sending: most images were never attempted, under one error kind.
    outcomes = report["outcomes"]
    assert isinstance(outcomes, dict)
    assert outcomes.get("NotAttempted", 0) >= IMAGES // 2
    errors = report["errors"]
    assert isinstance(errors, list)
    assert 1 <= len(errors) <= 3
    assert sum(e["count"] for e in errors) == len(unknown | kept)
