"""The planner: for every image, the reason it stays or goes, and the removal order.

Pure: it judges one listing of the node and touches nothing. The rules are checked
in a fixed order and the first that applies is the verdict, so every image has
exactly one answer to "why was this (not) removed?". Safety rules come first: an
image any container uses, in any state, is never a candidate, because the runtime's
RemoveImage does not check for users itself.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import operator
from collections.abc import Callable, Collection, Mapping, Sequence

from imageprune.node import users
from imageprune.node.disk import DiskUsage
from imageprune.node.usage import UsageRecord
from imageprune.policy import durations, quantities, references
from imageprune.policy.selection import DiskTarget, Scope, Selection
from imageprune_cri.types import Container, Image


class Reason(enum.StrEnum):
    """Why an image stays or goes; the first rule that applies, in this order."""

    IN_USE = "InUse"
    SANDBOX_IMAGE = "SandboxImage"
    PINNED = "Pinned"
    EXCLUDED = "Excluded"
    NOT_INCLUDED = "NotIncluded"
    TOO_NEW = "TooNew"
    RECENTLY_USED = "RecentlyUsed"
    KEPT_LATEST = "KeptLatest"
    DISK_BELOW_TARGET = "DiskBelowTarget"
    CAP_REACHED = "CapReached"
    REMOVABLE = "Removable"


@dataclasses.dataclass(frozen=True, slots=True)
class Verdict:
    image: Image
    reason: Reason
    detail: str  # a short sentence for people, e.g. "last used 3h ago; policy needs 7d unused"
    users: tuple[str, ...] = ()  # names (or IDs) of the containers using the image


@dataclasses.dataclass(frozen=True, slots=True)
class Plan:
    verdicts: tuple[Verdict, ...]  # one per image, in listing order
    removable: tuple[Image, ...]  # in removal order: least recently used first
    # Exclude patterns (as written) that match no image on the node, whatever its
    # verdict: often a typo, and then the protection the user meant is missing.
    unmatched_excludes: tuple[str, ...] = ()

    @property
    def removable_count(self) -> int:
        return len(self.removable)

    @property
    def removable_bytes(self) -> int:
        return sum(image.size for image in self.removable)


def plan(
    *,
    images: Sequence[Image],
    containers: Sequence[Container],
    sandbox_images: Collection[str],
    usage: Mapping[str, UsageRecord],
    disk: DiskUsage | None,
    selection: Selection,
    now: datetime.datetime,
) -> Plan:
    """Judge every image under `selection`. `sandbox_images` are the runtime's pod
    sandbox images (references or IDs); `usage` maps image IDs to their records;
    `disk` is None when the image filesystem's figures are unknown."""
    images = _one_per_id(images)
    names = list(map(references.image_names, images))
    sandboxed, excluded, unmatched = _pattern_matches(names, selection)
    facts = _Facts(
        users=users.index(containers),
        sandbox=references.ReferenceIndex.of((s, s) for s in sandbox_images),
        sandbox_patterns=sandboxed,
        excluded=excluded,
        kept_latest=_kept_latest(images, keep=selection.keep_latest_per_repository),
        usage=usage,
        selection=selection,
        now=now,
    )
    rules = _rules_that_can_apply(facts)
    verdicts: dict[str, Verdict] = {}
    candidates = []
    for image, image_names in zip(images, names, strict=True):
        for rule in rules:
            verdict = rule(image, image_names, facts)
            if verdict is not None:
                verdicts[image.id] = verdict
                break
        else:
            candidates.append(image)
    candidates.sort(key=facts.removal_order)
    chosen = _within_disk_target(candidates, disk=disk, target=selection.disk, into=verdicts)
    chosen = _within_caps(chosen, selection=selection, into=verdicts)
    for image in chosen:
        detail = f"no container uses it; {facts.usage_phrase(image)}"
        verdicts[image.id] = Verdict(image, Reason.REMOVABLE, detail)
    return Plan(
        verdicts=tuple(verdicts[image.id] for image in images),
        removable=tuple(chosen),
        unmatched_excludes=unmatched,
    )


def _one_per_id(images: Sequence[Image]) -> Sequence[Image]:
    """One entry per image ID, with the names of every entry the runtime listed for it.
    Judged apart, an entry without the tag a container uses would be removable, and
    removing it by ID removes the image that container uses."""
    by_id: dict[str, Image] = {}
    for image in images:
        seen = by_id.setdefault(image.id, image)
        if seen is not image:
            by_id[image.id] = dataclasses.replace(
                seen,
                repo_tags=tuple(dict.fromkeys(seen.repo_tags + image.repo_tags)),
                repo_digests=tuple(dict.fromkeys(seen.repo_digests + image.repo_digests)),
                pinned=seen.pinned or image.pinned,
            )
    return images if len(by_id) == len(images) else tuple(by_id.values())


# Image names -> the first pattern of a list they match; only images that match one.
_Matches = dict[Sequence[str], references.Pattern]


def _pattern_matches(
    names: Sequence[Sequence[str]], selection: Selection
) -> tuple[_Matches, _Matches, tuple[str, ...]]:
    """The matches of the sandboxImages and of the exclude patterns, and the exclude
    patterns, as written, that match no image. The listing's text, as big as all
    the names on the node, lives only as long as this call."""
    listing = references.ListingNames(names)
    excluded = _matches(listing, selection.exclude)
    unmatched = {str(p): p for p in selection.exclude}
    for image_names in excluded:
        if not unmatched:
            break
        unmatched = {text: p for text, p in unmatched.items() if not p.matches_names(image_names)}
    return _matches(listing, selection.sandbox_images), excluded, tuple(unmatched)


def _matches(
    listing: references.ListingNames, patterns: tuple[references.Pattern, ...]
) -> _Matches:
    # Most images match no pattern, which the set tells at a glance.
    found = references.PatternSet(patterns).first_matches(listing)
    return {listing.names[position]: pattern for position, pattern in found.items()}


@dataclasses.dataclass(frozen=True, slots=True)
class _Facts:
    """What the rules need, computed once per plan (no rule scans all images)."""

    users: users.Index
    sandbox: references.ReferenceIndex[str]
    sandbox_patterns: _Matches  # of the selection's sandboxImages
    excluded: _Matches
    kept_latest: Mapping[str, str]  # image ID -> the repository it is kept in
    usage: Mapping[str, UsageRecord]
    selection: Selection
    now: datetime.datetime

    def last_activity(self, image: Image) -> datetime.datetime:
        """Last used, else first seen; an image without a record was seen just now."""
        record = self.usage.get(image.id)
        if record is None:
            return self.now
        return record.last_used or record.first_seen

    def removal_order(self, image: Image) -> tuple[datetime.datetime, int, str]:
        # Least recently used first; then the biggest, to free most; the ID keeps
        # the order total, so the same node state always gives the same plan.
        return self.last_activity(image), -image.size, image.id

    def ago(self, moment: datetime.datetime) -> str:
        return durations.format_age(self.now - moment)

    def usage_phrase(self, image: Image) -> str:
        record = self.usage.get(image.id)
        if record is None:
            return "no usage record yet (counts as first seen now)"
        if record.last_used is None:
            return f"never seen in use, first seen {self.ago(record.first_seen)}"
        return f"last used {self.ago(record.last_used)}"


def _kept_latest(images: Sequence[Image], *, keep: int) -> dict[str, str]:
    """Image ID -> repository, for the `keep` newest images of every repository,
    counted among all its images (used ones too)."""
    if keep <= 0:
        return {}
    kept: dict[str, str] = {}
    counted: dict[str, int] = {}
    # Newest first; unknown creation counts as newest (keeping too much is the safe
    # error); the stable sort leaves ties in ID order. Then each repository keeps
    # the first `keep` images it meets.
    newest_first = sorted(images, key=operator.attrgetter("id"))
    newest_first.sort(key=_created_or_newest, reverse=True)
    for image in newest_first:
        for repository in references.sorted_repositories(image):
            count = counted.get(repository, 0)
            if count < keep:
                counted[repository] = count + 1
                kept.setdefault(image.id, repository)
    return kept


_NEWEST = datetime.datetime.max.replace(tzinfo=datetime.UTC)


def _created_or_newest(image: Image) -> datetime.datetime:
    return image.created_at or _NEWEST


def _in_use(image: Image, names: Sequence[str], facts: _Facts) -> Verdict | None:
    containers = facts.users.referrers(names)
    if not containers:
        return None
    labels = tuple(users.label(c) for c in containers)
    return Verdict(image, Reason.IN_USE, users.describe(containers), labels)


def _sandbox_image(image: Image, names: Sequence[str], facts: _Facts) -> Verdict | None:
    configured = facts.sandbox.referrers(names)
    if configured:
        detail = f"the runtime's pod sandbox image ({configured[0]})"
        return Verdict(image, Reason.SANDBOX_IMAGE, detail)
    pattern = facts.sandbox_patterns.get(names)
    if pattern is None:
        return None
    detail = f"a pod sandbox image: matches sandboxImages pattern {pattern}"
    return Verdict(image, Reason.SANDBOX_IMAGE, detail)


def _pinned(image: Image, _names: Sequence[str], _facts: _Facts) -> Verdict | None:
    if not image.pinned:
        return None
    return Verdict(image, Reason.PINNED, "pinned by the container runtime")


def _excluded(image: Image, names: Sequence[str], facts: _Facts) -> Verdict | None:
    pattern = facts.excluded.get(names)
    if pattern is None:
        return None
    return Verdict(image, Reason.EXCLUDED, f"matches exclude pattern {pattern}")


def _not_included(image: Image, names: Sequence[str], facts: _Facts) -> Verdict | None:
    selection = facts.selection
    if selection.scope is Scope.DANGLING and not image.dangling:
        detail = "tagged; scope Dangling removes untagged images only"
        return Verdict(image, Reason.NOT_INCLUDED, detail)
    if selection.include and not any(p.matches_names(names) for p in selection.include):
        return Verdict(image, Reason.NOT_INCLUDED, "matches no include pattern")
    return None


def _too_new(image: Image, _names: Sequence[str], facts: _Facts) -> Verdict | None:
    older_than = facts.selection.older_than
    if older_than is None:
        return None
    if image.created_at is not None and facts.now - image.created_at >= older_than:
        return None  # the common case on a large node: no text to format
    policy = f"policy removes images older than {durations.format_duration(older_than)}"
    if image.created_at is None:
        return Verdict(image, Reason.TOO_NEW, f"creation time unknown; {policy}")
    return Verdict(image, Reason.TOO_NEW, f"created {facts.ago(image.created_at)}; {policy}")


def _recently_used(image: Image, _names: Sequence[str], facts: _Facts) -> Verdict | None:
    # Never-used images count from first seen, unlike kubelet's max-age GC, which
    # deletes them at once (kubernetes #132403).
    unused_for = facts.selection.unused_for
    if unused_for is None or facts.now - facts.last_activity(image) >= unused_for:
        return None
    needs = durations.format_duration(unused_for)
    detail = f"{facts.usage_phrase(image)}; policy needs {needs} unused"
    return Verdict(image, Reason.RECENTLY_USED, detail)


def _kept_as_latest(image: Image, _names: Sequence[str], facts: _Facts) -> Verdict | None:
    repository = facts.kept_latest.get(image.id)
    if repository is None:
        return None
    keep = facts.selection.keep_latest_per_repository
    return Verdict(image, Reason.KEPT_LATEST, f"newest {keep} of {repository} kept")


# Each rule sees the image, its normalised names (computed once) and the facts.
_Rule = Callable[[Image, Sequence[str], _Facts], Verdict | None]
_RULES: tuple[_Rule, ...] = (
    _in_use,
    _sandbox_image,
    _pinned,
    _excluded,
    _not_included,
    _too_new,
    _recently_used,
    _kept_as_latest,
)


def _rules_that_can_apply(facts: _Facts) -> tuple[_Rule, ...]:
    """The rules, in order, less those that apply to no image under this selection
    and node: on a large node, even asking them costs."""
    selection = facts.selection
    can_apply: dict[_Rule, bool] = {
        _in_use: bool(facts.users),
        _sandbox_image: bool(facts.sandbox) or bool(facts.sandbox_patterns),
        _pinned: True,
        _excluded: bool(facts.excluded),
        _not_included: selection.scope is Scope.DANGLING or bool(selection.include),
        _too_new: selection.older_than is not None,
        _recently_used: selection.unused_for is not None,
        _kept_as_latest: bool(facts.kept_latest),
    }
    return tuple(rule for rule in _RULES if can_apply[rule])


def _within_disk_target(
    ordered: Sequence[Image],
    *,
    disk: DiskUsage | None,
    target: DiskTarget | None,
    into: dict[str, Verdict],
) -> list[Image]:
    """The leading candidates whose removal brings the image filesystem down to the
    low target, if it is above the high one; the rest get DiskBelowTarget in `into`."""
    if target is None:
        return list(ordered)
    if disk is None or disk.capacity_bytes <= 0:
        # Unknown fill level: a disk-driven policy then removes nothing.
        _judge_all(ordered, Reason.DISK_BELOW_TARGET, "disk usage unknown", into=into)
        return []
    capacity = disk.capacity_bytes
    if disk.used_bytes * 100 < target.high_percent * capacity:
        at = disk.used_bytes * 100 // capacity
        detail = f"image filesystem at {at}% < high {target.high_percent:g}%"
        _judge_all(ordered, Reason.DISK_BELOW_TARGET, detail, into=into)
        return []
    projected = disk.used_bytes
    for position, image in enumerate(ordered):
        if projected * 100 <= target.low_percent * capacity:
            at = projected * 100 // capacity
            detail = (
                f"image filesystem at {at}% <= low {target.low_percent:g}% "
                f"once {position} less recently used images are removed"
            )
            _judge_all(ordered[position:], Reason.DISK_BELOW_TARGET, detail, into=into)
            return list(ordered[:position])
        projected -= image.size
    return list(ordered)


def _within_caps(
    ordered: Sequence[Image], *, selection: Selection, into: dict[str, Verdict]
) -> list[Image]:
    """The leading images within the per-run caps; from the first that would exceed
    one, the rest get CapReached in `into` (no skipping ahead to smaller ones, so the
    removal order stays least recently used first)."""
    total = 0
    for position, image in enumerate(ordered):
        total += image.size
        detail = None
        if selection.max_images is not None and position + 1 > selection.max_images:
            detail = f"per-run cap of {selection.max_images} images reached"
        elif selection.max_bytes is not None and total > selection.max_bytes:
            cap = quantities.format_bytes(selection.max_bytes)
            detail = f"would exceed the per-run cap of {cap}"
        if detail is not None:
            _judge_all(ordered[position:], Reason.CAP_REACHED, detail, into=into)
            return list(ordered[:position])
    return list(ordered)


def _judge_all(
    images: Sequence[Image], reason: Reason, detail: str, *, into: dict[str, Verdict]
) -> None:
    for image in images:
        into[image.id] = Verdict(image, reason, detail)
