"""Invariants of the planner over generated nodes and selections. The oracles below
restate the rules independently of the planner's indexes."""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import datetime
import random
from collections.abc import Mapping
from typing import TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imageprune.node import planner
from imageprune.node.disk import DiskUsage
from imageprune.node.planner import Plan, Reason
from imageprune.node.usage import UsageRecord
from imageprune.policy import references
from imageprune.policy.references import Pattern
from imageprune.policy.selection import DiskTarget, Scope, Selection
from imageprune_cri.types import Container, ContainerState, Image
from testkit import builders
from testkit.builders import HOUR, NOW, image_id

pytestmark = [
    pytest.mark.unit,
    # Hypothesis touches the deprecated mypy_extensions.TypedDict while it prints a
    # failing example; with warnings as errors that would hide the example.
    pytest.mark.filterwarnings("ignore:mypy_extensions.TypedDict:DeprecationWarning"),
]

_T = TypeVar("_T")

# Few names, so images, containers and patterns collide often.
REPOSITORIES = (
    "docker.io/library/nginx",
    "docker.io/myorg/app",
    "quay.io/a/b",
    "registry.k8s.io/pause",
    "localhost:5000/x",
)
TAGS = ("1", "2", "latest")
AGES = st.integers(-5, 2000)  # hours before NOW an image was created
PATTERNS = tuple(
    Pattern(text)
    for text in (
        "nginx",
        "nginx:*",
        "myorg/*",
        "quay.io/a/b:1",
        "registry.k8s.io/*",
        "*pause*",
        "localhost:5000/*",
        "*:2",
        "sha256:0000*",
        "*",
    )
)


def _familiar(normalized: str) -> str:
    for prefix in ("docker.io/library/", "docker.io/"):
        if normalized.startswith(prefix):
            return normalized.removeprefix(prefix)
    return normalized


@st.composite
def _tag(draw: st.DrawFn) -> str:
    """A tag in any of the forms runtimes and users write it."""
    normalized = f"{draw(st.sampled_from(REPOSITORIES))}:{draw(st.sampled_from(TAGS))}"
    forms = [normalized, _familiar(normalized), _familiar(normalized).removesuffix(":latest")]
    return draw(st.sampled_from(forms))


@st.composite
def _images(
    draw: st.DrawFn, *, min_size: int = 0, hours: st.SearchStrategy[int] = AGES
) -> list[Image]:
    """Images created `hours` before NOW (or at an unknown time)."""
    numbers = draw(st.lists(st.integers(0, 30), unique=True, min_size=min_size, max_size=12))
    images: list[Image] = []
    taken: set[str] = set()
    for n in numbers:
        # A tag points at one image at a time, as in a real runtime.
        tags = tuple(
            t
            for t in dict.fromkeys(draw(st.lists(_tag(), max_size=3)))
            if references.normalize_reference(t) not in taken
        )
        taken.update(references.normalize_reference(t) for t in tags)
        digests = tuple(
            f"{repository}@{image_id(1000 + n)}"
            for repository in draw(st.lists(st.sampled_from(REPOSITORIES), max_size=2, unique=True))
        )
        created = draw(st.none() | hours.map(lambda h: NOW - h * HOUR))
        images.append(
            builders.image(
                n,
                *tags,
                digests=digests,
                size=draw(st.integers(0, 20)),
                pinned=draw(st.integers(0, 7)) == 7,
                created=created,
            )
        )
    return images


def _references_to(images: list[Image]) -> st.SearchStrategy[str]:
    """How a container or the runtime config may name an image, or something else."""
    known = [
        form
        for image in images
        for form in (
            image.id,
            image.id.removeprefix("sha256:"),
            *image.repo_tags,
            *image.repo_digests,
        )
    ]
    unknown = st.sampled_from(["", "busybox:1", image_id(999), "quay.io/a/b:9"])
    return (st.sampled_from(known) | unknown) if known else unknown


@st.composite
def _containers(draw: st.DrawFn, images: list[Image]) -> list[Container]:
    count = draw(st.integers(0, 4))
    return [
        builders.container(
            draw(st.sampled_from(["web", "job", "db", ""])),
            image=draw(_references_to(images)),
            image_ref=draw(_references_to(images)),
            state=draw(st.sampled_from(list(ContainerState))),
            container_id=f"c{n}",
        )
        for n in range(count)
    ]


@st.composite
def _usage(draw: st.DrawFn, images: list[Image]) -> dict[str, UsageRecord]:
    records = {}
    for image in images:
        if draw(st.booleans()):
            first_seen = NOW - draw(st.integers(0, 500)) * HOUR
            last_used = draw(st.none() | st.integers(0, 500).map(lambda h: NOW - h * HOUR))
            records[image.id] = UsageRecord(first_seen, last_used)
    return records


def _sometimes(draw: st.DrawFn, strategy: st.SearchStrategy[_T]) -> _T | None:
    """A policy feature switched on about one time in four, so that all of them
    together still leave images to remove."""
    # Hypothesis favours 0, so the rarer outcome sits at the other end.
    return draw(strategy) if draw(st.integers(0, 3)) == 3 else None


@st.composite
def _disk_targets(draw: st.DrawFn) -> DiskTarget:
    low = draw(st.integers(1, 98))
    return DiskTarget(high_percent=draw(st.integers(low + 1, 100)), low_percent=low)


@st.composite
def _selections(draw: st.DrawFn, *, filters: bool) -> Selection:
    """With `filters` off, only the disk target and caps."""
    limits = Selection(
        disk=_sometimes(draw, _disk_targets()),
        max_images=_sometimes(draw, st.integers(1, 6)),
        max_bytes=_sometimes(draw, st.integers(1, 60)),
    )
    if not filters:
        return limits
    hours = st.integers(0, 600).map(lambda h: h * HOUR)
    patterns = st.lists(st.sampled_from(PATTERNS), min_size=1, max_size=2).map(tuple)
    return dataclasses.replace(
        limits,
        scope=_sometimes(draw, st.just(Scope.DANGLING)) or Scope.UNUSED,
        include=_sometimes(draw, patterns) or (),
        exclude=_sometimes(draw, patterns) or (),
        unused_for=_sometimes(draw, hours),
        older_than=_sometimes(draw, hours),
        keep_latest_per_repository=_sometimes(draw, st.integers(1, 3)) or 0,
    )


@dataclasses.dataclass(frozen=True)
class Scenario:
    images: list[Image]
    containers: list[Container]
    sandbox_image: str | None
    usage: Mapping[str, UsageRecord]
    disk: DiskUsage | None
    selection: Selection

    def plan(self) -> Plan:
        return builders.make_plan(
            self.images,
            containers=self.containers,
            sandbox_images=() if self.sandbox_image is None else (self.sandbox_image,),
            usage=self.usage,
            disk=self.disk,
            selection=self.selection,
        )


@st.composite
def scenarios(draw: st.DrawFn, *, hours: st.SearchStrategy[int] = AGES) -> Scenario:
    images = draw(_images(hours=hours))
    return Scenario(
        images=images,
        containers=draw(_containers(images)),
        sandbox_image=draw(st.none() | _references_to(images)),
        usage=draw(_usage(images)),
        disk=draw(_disk_usage()),
        selection=draw(_selections(filters=True)),
    )


@st.composite
def limit_scenarios(draw: st.DrawFn) -> Scenario:
    """Every image a candidate, judged by the disk target and caps alone: their
    arithmetic meets many images and its boundaries."""
    images = [dataclasses.replace(i, pinned=False) for i in draw(_images(min_size=2))]
    selection = draw(_selections(filters=False))
    disk = draw(_disk_usage(known=True) | _disk_usage())
    if selection.disk is not None and draw(st.booleans()):
        # From exactly the high mark up, in percent-sized bytes: removals then
        # often land exactly on the low mark.
        used = draw(st.integers(int(selection.disk.high_percent), 100))
        disk = DiskUsage(capacity_bytes=100, used_bytes=used)
    return Scenario(
        images=images,
        containers=[],
        sandbox_image=None,
        usage=draw(_usage(images)),
        disk=disk,
        selection=selection,
    )


def _disk_usage(*, known: bool = False) -> st.SearchStrategy[DiskUsage | None]:
    # A capacity of 100 makes percentages bytes, so the boundaries get hit.
    capacities = st.sampled_from([100, 1000]) | st.integers(1, 1000)
    usages = capacities.flatmap(
        lambda capacity: st.builds(
            DiskUsage, capacity_bytes=st.just(capacity), used_bytes=st.integers(0, capacity)
        )
    )
    return usages if known else st.none() | usages


def _forms(text: str) -> set[str]:
    """Every spelling under which a reference or ID could equal an image name."""
    forms = {text, text.removeprefix("sha256:")}
    with contextlib.suppress(ValueError):
        forms.add(references.normalize_reference(text))
    return forms - {""}


def _names(image: Image) -> set[str]:
    names = _forms(image.id)
    for name in (*image.repo_tags, *image.repo_digests):
        names |= _forms(name)
    return names


def _names_image(reference: str | None, image: Image) -> bool:
    return reference is not None and not _forms(reference).isdisjoint(_names(image))


def _last_activity(scenario: Scenario, image: Image) -> datetime.datetime:
    record = scenario.usage.get(image.id)
    return (record.last_used or record.first_seen) if record else NOW


@settings(deadline=None, max_examples=300)
@given(scenarios())
def test_safety_and_policy_invariants(scenario: Scenario) -> None:
    plan = scenario.plan()
    selection = scenario.selection

    # A verdict for every image exactly once, in listing order.
    assert [v.image for v in plan.verdicts] == scenario.images
    removable = [v.image for v in plan.verdicts if v.reason is Reason.REMOVABLE]
    assert sorted(i.id for i in plan.removable) == sorted(i.id for i in removable)

    for image in plan.removable:
        # Never anything a container in any state uses, by ID or by any tag.
        assert not any(
            _names_image(c.image, image) or _names_image(c.image_ref, image)
            for c in scenario.containers
        )
        assert not image.pinned
        assert not _names_image(scenario.sandbox_image, image)
        assert not any(p.matches(image) for p in selection.exclude)
        assert not selection.include or any(p.matches(image) for p in selection.include)
        if selection.scope is Scope.DANGLING:
            assert image.dangling
        if selection.older_than is not None:
            assert image.created_at is not None
            assert NOW - image.created_at >= selection.older_than
        if selection.unused_for is not None:
            assert NOW - _last_activity(scenario, image) >= selection.unused_for

    # Least recently used first.
    activity = [_last_activity(scenario, image) for image in plan.removable]
    assert activity == sorted(activity)


def _kept_latest(images: list[Image], keep: int) -> dict[str, list[str]]:
    """Image ID -> the repositories among whose `keep` newest images it is: newest
    by creation time, unknown creation first, ties by ID."""
    members: dict[str, dict[str, Image]] = collections.defaultdict(dict)
    for image in images:
        for name in (*image.repo_tags, *image.repo_digests):
            members[references.repository_of(name)][image.id] = image
    kept: dict[str, list[str]] = collections.defaultdict(list)
    for repository, by_id in sorted(members.items()):
        for image in sorted(by_id.values(), key=_newest_first)[:keep]:
            kept[image.id].append(repository)
    return kept


def _newest_first(image: Image) -> tuple[int, float, str]:
    if image.created_at is None:
        return (0, 0.0, image.id)
    return (1, -image.created_at.timestamp(), image.id)


# Rules checked before keepLatestPerRepository: their verdicts hide it.
_EARLIER_RULES = frozenset(Reason) - {
    Reason.KEPT_LATEST,
    Reason.DISK_BELOW_TARGET,
    Reason.CAP_REACHED,
    Reason.REMOVABLE,
}


@settings(deadline=None, max_examples=300)
# Few distinct creation times, so ties (broken by ID) are common.
@given(scenarios(hours=st.integers(0, 6)) | scenarios(), st.integers(1, 3))
def test_keeps_exactly_the_newest_of_every_repository(scenario: Scenario, keep: int) -> None:
    selection = dataclasses.replace(scenario.selection, keep_latest_per_repository=keep)
    plan = dataclasses.replace(scenario, selection=selection).plan()
    kept = _kept_latest(scenario.images, keep)
    for verdict in plan.verdicts:
        if verdict.reason in _EARLIER_RULES:
            continue
        if verdict.image.id in kept:
            assert verdict.reason is Reason.KEPT_LATEST
            assert verdict.detail == f"newest {keep} of {kept[verdict.image.id][0]} kept"
        else:
            assert verdict.reason is not Reason.KEPT_LATEST


@settings(deadline=None, max_examples=300)
@given(scenarios() | limit_scenarios())
def test_disk_target(scenario: Scenario) -> None:
    target, disk = scenario.selection.disk, scenario.disk
    plan = scenario.plan()
    if target is None:
        assert all(v.reason is not Reason.DISK_BELOW_TARGET for v in plan.verdicts)
        return
    if disk is None or disk.used_bytes * 100 < target.high_percent * disk.capacity_bytes:
        assert plan.removable == ()  # nothing removed below high (or not knowing)
        return
    # Each removal happens while the projected usage is still above low...
    projected = disk.used_bytes
    for image in plan.removable:
        assert projected * 100 > target.low_percent * disk.capacity_bytes
        projected -= image.size
    # ...and candidates are left for the disk only once the projection reached low.
    taken = [v.image for v in plan.verdicts if v.reason in (Reason.REMOVABLE, Reason.CAP_REACHED)]
    if any(v.reason is Reason.DISK_BELOW_TARGET for v in plan.verdicts):
        left = disk.used_bytes - sum(image.size for image in taken)
        assert left * 100 <= target.low_percent * disk.capacity_bytes


@settings(deadline=None, max_examples=300)
@given(scenarios() | limit_scenarios())
def test_caps(scenario: Scenario) -> None:
    selection = scenario.selection
    plan = scenario.plan()
    if selection.max_images is not None:
        assert len(plan.removable) <= selection.max_images
    if selection.max_bytes is not None:
        assert plan.removable_bytes <= selection.max_bytes
    # Caps cut only where the next image in removal order would exceed one.
    capped = [v.image for v in plan.verdicts if v.reason is Reason.CAP_REACHED]
    if capped:
        following = min(capped, key=lambda i: (_last_activity(scenario, i), -i.size, i.id))
        assert len(plan.removable) == selection.max_images or (
            selection.max_bytes is not None
            and plan.removable_bytes + following.size > selection.max_bytes
        )


@settings(deadline=None, max_examples=100)
@given(scenarios(), st.randoms(use_true_random=False))
def test_deterministic_whatever_the_listing_order(scenario: Scenario, rng: random.Random) -> None:
    plan = scenario.plan()
    assert scenario.plan() == plan
    images, containers = list(scenario.images), list(scenario.containers)
    rng.shuffle(images)
    rng.shuffle(containers)
    shuffled = dataclasses.replace(scenario, images=images, containers=containers).plan()
    assert shuffled.removable == plan.removable
    assert sorted(shuffled.verdicts, key=_by_id) == sorted(plan.verdicts, key=_by_id)


def _by_id(verdict: planner.Verdict) -> str:
    return verdict.image.id
