"""Two prunes on one node at once (later: the agent and a person's CLI) never both
remove and count the same images: the state-directory lock lets one plan and remove
at a time, and a prune that cannot get it in time exits 4 naming the holder."""

from __future__ import annotations

import fcntl
from pathlib import Path

import pytest

from testkit import cliproc, oci
from testkit.containerd import ContainerdNode

pytestmark = pytest.mark.cri

IMAGES = 60


@pytest.mark.parametrize("state_dirs", ["shared", "one-each"])
def test_three_prunes_at_once_count_each_image_once(
    containerd: ContainerdNode, tmp_path: Path, state_dirs: str
) -> None:
    """With one state directory they share its lock; with one each, the lock named
    after the runtime's socket keeps them apart."""
    built = containerd.add_images(
        *(oci.ImageSpec(repo_tags=(f"docker.io/library/twice{n}:1",)) for n in range(IMAGES))
    )
    ids = {image.id for image in built}
    prunes = [
        cliproc.start(
            containerd,
            tmp_path if state_dirs == "shared" else tmp_path / str(n),
            *("--lock-timeout", "300", "-o", "json"),
        )
        for n in range(3)
    ]
    reports = []
    for prune in prunes:
        out, err = prune.communicate(timeout=300)
        assert prune.returncode == 0, err
        reports.append(cliproc.parse(out))

    removed = [cliproc.ids_with_outcome(report, "Removed") for report in reports]
    assert sum(len(each) for each in removed) == IMAGES  # no image counted twice
    assert set().union(*removed) == ids
    assert sum(int(r["removedImages"]) for r in reports) == IMAGES  # type: ignore[call-overload]
    assert ids.isdisjoint(containerd.image_ids())


def test_a_prune_that_cannot_get_the_lock_exits_4_and_removes_nothing(
    containerd: ContainerdNode, tmp_path: Path
) -> None:
    image = containerd.add_image(repo_tags=["docker.io/library/waits:1"])
    state = tmp_path / "state"
    state.mkdir()
    with (state / "lock").open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        held.write("4242\n")
        held.flush()
        args = ["--runtime-endpoint", containerd.endpoint, "--state-dir", str(state), "prune"]
        blocked = cliproc.run([*args, "--lock-timeout", "0.5"])
        # A dry run takes no lock: it removes nothing, so racing a prune is harmless.
        dry = cliproc.run([*args, "--dry-run", "-o", "json"])

    assert blocked.returncode == 4, blocked.stderr
    assert "another prune (pid 4242) holds" in blocked.stderr
    assert "--lock-timeout" in blocked.stderr
    assert "Traceback" not in blocked.stderr
    assert dry.returncode == 0, dry.stderr
    assert image.id in cliproc.ids_with_outcome(cliproc.parse(dry.stdout), "WouldRemove")
    assert image.id in containerd.image_ids()
    # The lock dies with its holder: now the prune goes ahead.
    done = cliproc.run([*args, "--lock-timeout", "0"])
    assert done.returncode == 0, done.stderr
    assert image.id not in containerd.image_ids()
