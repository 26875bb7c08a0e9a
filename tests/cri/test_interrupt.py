"""Ctrl-C (SIGINT), SIGTERM or SIGHUP in the middle of a real prune: no traceback,
the partial report (exactly the images that are gone), then exit 130, 143 or 129."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from testkit import cliproc, oci
from testkit.containerd import ContainerdNode

pytestmark = pytest.mark.cri

BATCH = 60
# SIGHUP: the terminal went away mid-prune.
CASES = [
    (signal.SIGINT, "json"),
    (signal.SIGINT, "text"),
    (signal.SIGTERM, "json"),
    (signal.SIGHUP, "json"),
]


def test_a_signal_mid_prune_reports_what_was_removed(
    containerd: ContainerdNode, tmp_path: Path
) -> None:
    # One import for every case; each prune takes only its own batch (--include).
    built = containerd.add_images(
        *(
            oci.ImageSpec(repo_tags=(f"docker.io/library/case{case}-{n}:1",))
            for case in range(len(CASES))
            for n in range(BATCH)
        )
    )
    for case, (signum, output) in enumerate(CASES):
        ids = {image.id for image in built[case * BATCH : (case + 1) * BATCH]}
        assert ids <= containerd.image_ids()  # earlier cases took only their own batch
        prune = cliproc.start(
            containerd,
            tmp_path,
            "--include",
            f"case{case}-*",
            "--concurrency",
            "2",
            "-o",
            output,
        )
        cliproc.wait_until_gone(containerd, ids, at_least=1, proc=prune)
        prune.send_signal(signum)
        out, err = prune.communicate(timeout=120)
        gone = ids - containerd.image_ids()

        assert prune.returncode == 128 + signum, err
        assert "Traceback" not in err
        assert f"{signal.Signals(signum).name}: sending no more removals" in err
        assert 0 < len(gone) < BATCH  # it stopped: the rest is still there
        if output == "json":
            report = cliproc.parse(out)
            assert cliproc.ids_with_outcome(report, "Removed") == gone
            assert cliproc.ids_with_outcome(report, "NotAttempted") == ids - gone
        else:
            reported = {i for i in ids if f"removed: {i.removeprefix('sha256:')[:12]} " in out}
            assert reported == gone
            assert f"Removed {len(gone)} images" in out
