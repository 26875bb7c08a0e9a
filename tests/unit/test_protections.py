"""Planner protections at the boundaries mutation testing found unpinned: disk
marks that fall between whole percents, and which images keepLatestPerRepository
keeps."""

from __future__ import annotations

import pytest

from imageprune.node import planner
from imageprune.node.disk import DiskUsage
from imageprune.node.planner import Reason
from imageprune.policy.selection import DiskTarget
from testkit.builders import (
    DAY,
    NOW,
    image,
    image_id,
    make_plan,
    reasons,
    record,
    removed,
    selection,
    verdict,
)

pytestmark = pytest.mark.unit

KIB_DISK = 1_000  # bytes: one byte is a tenth of a percent


def _disk_plan(
    used: int, *, high: float, low: float, sizes: tuple[int, ...] = (10, 10, 10)
) -> planner.Plan:
    """Images 1, 2, 3... of `sizes` bytes, least recently used first, on a
    1,000-byte filesystem with `used` bytes used."""
    images = [image(n, f"app:{n}", size=size) for n, size in enumerate(sizes, start=1)]
    usage = {image_id(n): record(60 * DAY, (50 - n) * DAY) for n in range(1, len(sizes) + 1)}
    return make_plan(
        images,
        usage=usage,
        disk=DiskUsage(KIB_DISK, used),
        selection=selection(disk=DiskTarget(high_percent=high, low_percent=low)),
    )


class TestHighMark:
    def test_just_below_a_whole_percent_does_not_act(self) -> None:
        # 84.5% full, high 85%: nothing to do.
        plan = _disk_plan(845, high=85, low=80)
        assert removed(plan) == []
        assert set(reasons(plan).values()) == {Reason.DISK_BELOW_TARGET}
        assert verdict(plan, 1).detail == "image filesystem at 84% < high 85%"

    def test_one_byte_below_does_not_act(self) -> None:
        assert removed(_disk_plan(849, high=85, low=80)) == []

    def test_exactly_at_the_mark_acts(self) -> None:
        assert removed(_disk_plan(850, high=85, low=80)) != []

    @pytest.mark.parametrize(("used", "acts"), [(844, False), (845, True), (846, True)])
    def test_fractional_mark(self, used: int, acts: bool) -> None:
        assert (removed(_disk_plan(used, high=84.5, low=80)) != []) is acts


def test_any_known_capacity_counts_however_small() -> None:
    # Only a zero capacity means "unknown"; a full one-byte filesystem is full.
    plan = make_plan(
        [image(1, "app:1", size=1)],
        disk=DiskUsage(1, 1),
        selection=selection(disk=DiskTarget(high_percent=85, low_percent=80)),
    )
    assert removed(plan) == [1]


class TestLowMark:
    def test_half_a_percent_above_low_removes_one_more(self) -> None:
        # 86% -> 80.5% after the first removal: still above 80%, so one more.
        plan = _disk_plan(860, high=85, low=80, sizes=(55, 10, 10))
        assert removed(plan) == [1, 2]
        assert verdict(plan, 3).reason is Reason.DISK_BELOW_TARGET
        assert verdict(plan, 3).detail == (
            "image filesystem at 79% <= low 80% once 2 less recently used images are removed"
        )

    def test_exactly_at_low_stops(self) -> None:
        plan = _disk_plan(860, high=85, low=80, sizes=(60, 10, 10))
        assert removed(plan) == [1]

    @pytest.mark.parametrize(("first", "expected"), [(55, [1]), (54, [1, 2])])
    def test_fractional_low(self, first: int, expected: list[int]) -> None:
        # 860 - 55 = 805: at 80.5% exactly; 860 - 54 = 806: above it.
        assert removed(_disk_plan(860, high=85, low=80.5, sizes=(first, 10, 10))) == expected

    def test_never_more_than_needed_or_less(self) -> None:
        # 900 -> 890 -> 880 ... -> 800 needs exactly ten 10-byte removals.
        plan = _disk_plan(900, high=85, low=80, sizes=(10,) * 12)
        assert removed(plan) == list(range(1, 11))


class TestKeepLatestPerRepository:
    """Which images are kept: the newest N of each repository by creation time,
    ties by image ID, unknown creation counting as newest."""

    def _kept(self, *images_: tuple[int, int | None], keep: int) -> list[int]:
        """Images (number, age in days or None for unknown), all tagged app:<n>."""
        images = [
            image(n, f"app:{n}", created=None if age is None else NOW - age * DAY)
            for n, age in images_
        ]
        plan = make_plan(images, selection=selection(keep_latest_per_repository=keep))
        return sorted(
            int(v.image.id.removeprefix("sha256:"), 16)
            for v in plan.verdicts
            if v.reason is Reason.KEPT_LATEST
        )

    def test_newest_by_creation_not_by_listing_order_or_id(self) -> None:
        assert self._kept((1, 1), (2, 5), (3, 2), (4, 9), keep=2) == [1, 3]

    def test_ties_go_to_the_lower_id(self) -> None:
        assert self._kept((3, 2), (2, 2), (1, 2), keep=2) == [1, 2]

    def test_unknown_creation_counts_as_newest(self) -> None:
        assert self._kept((1, 1), (2, None), (3, 0), keep=1) == [2]

    def test_keep_one_keeps_one(self) -> None:
        assert self._kept((1, 3), (2, 2), (3, 1), keep=1) == [3]

    def test_keep_more_than_there_are_keeps_all(self) -> None:
        assert self._kept((1, 3), (2, 2), keep=5) == [1, 2]

    def test_repositories_count_separately(self) -> None:
        images = [
            image(1, "app:1", created=NOW - 1 * DAY),
            image(2, "app:2", created=NOW - 2 * DAY),
            image(3, "web:1", created=NOW - 3 * DAY),
            image(4, "web:2", created=NOW - 4 * DAY),
        ]
        plan = make_plan(images, selection=selection(keep_latest_per_repository=1))
        assert removed(plan) == [2, 4]
        assert reasons(plan)[image_id(1)] is reasons(plan)[image_id(3)] is Reason.KEPT_LATEST

    def test_a_name_that_does_not_parse_hides_no_other_name(self) -> None:
        images = [
            image(1, "app@notadigest", "app:1", created=NOW - 1 * DAY),
            image(2, "app:2", created=NOW - 2 * DAY),
        ]
        plan = make_plan(images, selection=selection(keep_latest_per_repository=1))
        assert reasons(plan)[image_id(1)] is Reason.KEPT_LATEST
        assert removed(plan) == [2]


def test_localhost_is_a_registry_not_a_docker_hub_namespace() -> None:
    # Were "localhost" read as a Docker Hub namespace, include docker.io/* would
    # select locally built images.
    images = [image(1, "localhost/app:1"), image(2, "myorg/app:1")]
    plan = make_plan(images, selection=selection(include=["docker.io/*"]))
    assert removed(plan) == [2]
    assert reasons(plan)[image_id(1)] is Reason.NOT_INCLUDED


def test_a_tagless_pattern_means_latest_whatever_its_wildcards() -> None:
    # "myorg*/app" names no tag, so like "nginx" it means ":latest".
    images = [image(1, "myorg1/app:latest"), image(2, "myorg1/app:2")]
    plan = make_plan(images, selection=selection(include=["myorg*/app"]))
    assert removed(plan) == [1]
    assert reasons(plan)[image_id(2)] is Reason.NOT_INCLUDED
