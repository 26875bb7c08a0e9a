"""`imageprune prune --policy FILE` gives a policy the meaning it has in the cluster:
its `mode` decides whether anything is removed (only Enforce removes), `suspend: true`
removes nothing, and the fields that say where and when are named as cluster-only.
Every sample in deploy/samples/ runs through the real CLI on a real containerd holding
one node's worth of images, and removes exactly what the cluster would remove there."""

from __future__ import annotations

import dataclasses
import datetime
from pathlib import Path

import pytest

from imageprune.node import usage
from testkit import cliproc, oci
from testkit.containerd import ContainerdNode

pytestmark = pytest.mark.cri

SAMPLES = Path(__file__).resolve().parents[2] / "deploy" / "samples"
# The node: four builds of one app (oldest first), an add-on image, and one in use.
APPS = tuple(f"docker.io/library/app:{n}" for n in range(1, 5))
ADDON = "registry.k8s.io/coredns/coredns:v1.11.1"
USED = "docker.io/library/used:1"
DRY_RUN_NOTE = "policy mode DryRun: nothing removed; set mode: Enforce to remove"
DEFAULT_NOTE = "policy mode DryRun (the default): nothing removed; set mode: Enforce to remove"
SUSPENDED_NOTE = "policy suspended: nothing removed; set suspend: false to remove"


@dataclasses.dataclass(frozen=True)
class Case:
    manifest: str  # a file in deploy/samples/
    removed: tuple[str, ...]  # what the cluster removes on this node
    would_remove: tuple[str, ...] = ()  # what a dry run reports instead
    note: str | None = None  # the one line saying why nothing was removed
    edit: tuple[str, str] = ("", "")  # a change to the sample's text
    flags: tuple[str, ...] = ()


CASES = {
    # Enforce, keep the three newest of each repository, add-ons excluded.
    "ci-runners": Case(
        "ci-runners-keep-last-3.yaml",
        removed=APPS[:1],
    ),
    # Enforce, but only at 80% full: this disk is far below (checked in the test).
    "disk-guard": Case("disk-pressure-guard.yaml", removed=()),
    "dry-run-audit": Case(
        "dry-run-audit.yaml",
        removed=(),
        would_remove=(*APPS, ADDON),
        note=DRY_RUN_NOTE,
    ),
    # The same audit as Enforce removes exactly what the dry run reported.
    "audit-enforced": Case(
        "dry-run-audit.yaml", removed=(*APPS, ADDON), edit=("mode: DryRun", "mode: Enforce")
    ),
    "nightly": Case("nightly-enforce.yaml", removed=APPS[:3]),
    "nightly-suspended": Case(
        "nightly-enforce.yaml",
        removed=(),
        would_remove=APPS[:3],
        note=SUSPENDED_NOTE,
        edit=("mode: Enforce", "mode: Enforce\n  suspend: true"),
    ),
    "nightly-dry-run-flag": Case(
        "nightly-enforce.yaml", removed=(), would_remove=APPS[:3], flags=("--dry-run",)
    ),
    # No mode: DryRun, as in the cluster. Below its disk mark, it would remove nothing.
    "policy-no-mode": Case("policy.yaml", removed=(), note=DEFAULT_NOTE),
}

# The one note naming each sample's where-and-when fields.
CLUSTER_ONLY = {
    "ci-runners-keep-last-3.yaml": "spec.nodeSelector, spec.schedule, spec.rollout",
    "disk-pressure-guard.yaml": None,
    "dry-run-audit.yaml": "spec.schedule, spec.rollout",
    "nightly-enforce.yaml": "spec.nodeSelector, spec.schedule, spec.timeZone, spec.rollout",
    "policy.yaml": None,
}


def _populate(node: ContainerdNode, state: Path) -> dict[str, str]:
    """The node's images (tag -> ID), all unused for 60 days but USED's."""
    created = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
    built = node.add_images(
        *(
            oci.ImageSpec(repo_tags=(tag,), created=created + datetime.timedelta(days=n))
            for n, tag in enumerate((*APPS, ADDON, USED))
        )
    )
    ids = {image.repo_tags[0]: image.id for image in built}
    sandbox = node.run_sandbox("user")
    node.create_container(sandbox, "user", name="user", image=USED)
    # Record every image as first seen 60 days ago, as a node that watched them would.
    seen = cliproc.run(
        ["--runtime-endpoint", node.endpoint, "--state-dir", str(state), "images", "-o", "json"]
    )
    assert seen.returncode == 0, seen.stderr
    store = usage.UsageStore(state / "usage.json")
    long_ago = datetime.timedelta(days=60)
    store.save(
        {
            image_id: dataclasses.replace(record, first_seen=record.first_seen - long_ago)
            for image_id, record in store.load().items()
        }
    )
    return ids


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_sample_removes_on_a_node_what_the_cluster_would(
    containerd: ContainerdNode, tmp_path: Path, name: str
) -> None:
    case = CASES[name]
    assert containerd.image_filesystem_used_percent() < 60  # below every sample's disk marks
    state = tmp_path / "state"
    ids = _populate(containerd, state)
    text = (SAMPLES / case.manifest).read_text()
    old, new = case.edit
    assert old in text
    policy = tmp_path / case.manifest
    policy.write_text(text.replace(old, new, 1))
    before = containerd.image_ids()

    result = cliproc.run(
        [
            *("--runtime-endpoint", containerd.endpoint, "--state-dir", str(state)),
            *("prune", "--policy", str(policy), "-o", "json", *case.flags),
        ]
    )

    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    report = cliproc.parse(result.stdout)
    gone = before - containerd.image_ids()
    assert gone == {ids[tag] for tag in case.removed}
    assert cliproc.ids_with_outcome(report, "Removed") == gone
    assert cliproc.ids_with_outcome(report, "WouldRemove") == {ids[t] for t in case.would_remove}
    assert report["dryRun"] is bool(case.note or case.flags)
    notes = [line for line in result.stderr.splitlines() if "nothing removed" in line]
    assert notes == ([f"imageprune: note: {case.note}"] if case.note else [])
    fields = CLUSTER_ONLY[case.manifest]
    noted = [line for line in result.stderr.splitlines() if "cluster only" in line]
    expected = f"imageprune: note: {fields}: used in the cluster only; ignored on this node"
    assert noted == ([expected] if fields else [])


@pytest.mark.parametrize(
    ("edit", "says"),
    [
        (("mode: Enforce", "mode: enforce"), "spec.mode: must be one of DryRun, Enforce"),
        (("mode: Enforce", "mode: Enforce\n  suspend: yes please"), "spec.suspend"),
        (("timeZone: Europe/Paris", "timeZone: Mars/Olympus"), "spec.timeZone: unknown"),
        (('schedule: "0 3 * * *"', 'schedule: "0 3 * * * *"'), "spec.schedule: "),
        (('schedule: "0 3 * * *"', 'schedule: "0 3 31 2 *"'), "spec.schedule: "),
        (("operator: DoesNotExist", "operator: Maybe"), "spec.nodeSelector"),
    ],
)
def test_a_policy_the_cluster_refuses_is_refused_on_the_node(
    containerd: ContainerdNode, tmp_path: Path, edit: tuple[str, str], says: str
) -> None:
    image = containerd.add_image(repo_tags=["docker.io/library/app:1"])
    text = (SAMPLES / "nightly-enforce.yaml").read_text()
    assert edit[0] in text
    policy = tmp_path / "p.yaml"
    policy.write_text(text.replace(*edit))
    result = cliproc.run(
        [
            *("--runtime-endpoint", containerd.endpoint, "--state-dir", str(tmp_path)),
            *("prune", "--policy", str(policy)),
        ]
    )
    assert result.returncode == 2, result.stderr
    assert says in result.stderr
    assert "Traceback" not in result.stderr
    assert image.id in containerd.image_ids()
