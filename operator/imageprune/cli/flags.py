"""Selection flags of the node CLI. They mean exactly what an ImagePrunePolicy's
spec means: flags are turned into a spec and parsed by the same code as policies."""

from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Callable, Mapping
from pathlib import Path

from imageprune.policy import manifest_file
from imageprune.policy import selection as policy_selection

SELECTION_EPILOG = """\
selection (same meaning as an ImagePrunePolicy spec; see docs/policy.md):
  patterns are globs over every tag, digest and ID, normalised like Docker:
  'nginx' means docker.io/library/nginx:latest, 'registry.k8s.io/*' a whole registry.
  durations: 90s, 30m, 36h, 7d, 2w.  sizes: 500Mi, 20Gi, 1T.
"""

# flag dest -> the spec field it fills, so errors can name the flag the user typed.
_SPEC_FIELDS: dict[str, tuple[str, str]] = {
    "scope": ("scope", "--scope"),
    "include": ("include", "--include"),
    "exclude": ("exclude", "--exclude"),
    "unused_for": ("unusedFor", "--unused-for"),
    "older_than": ("olderThan", "--older-than"),
    "keep_latest": ("keepLatestPerRepository", "--keep-latest"),
    "disk_high": ("diskUsage.highPercent", "--disk-high"),
    "disk_low": ("diskUsage.lowPercent", "--disk-low"),
    "max_images": ("limits.maxImagesPerRun", "--max-images"),
    "max_bytes": ("limits.maxBytesPerRun", "--max-bytes"),
}


# The cluster fields that say where and when to run; a node has no use for them.
_WHERE_AND_WHEN = ("nodeSelector", "schedule", "timeZone", "rollout")


@dataclasses.dataclass(frozen=True, slots=True)
class Request:
    """What the flags, or a policy file, ask a command to do."""

    selection: policy_selection.Selection
    # Why nothing may be removed: a policy's mode is DryRun (its default) or it is
    # suspended, which means the same on a node as in the cluster. Flags leave it to
    # --dry-run.
    removes_nothing: str | None = None
    # A note on the policy's fields that only the cluster acts on.
    cluster_only: str | None = None


class UsageError(Exception):
    """Bad flags or policy file: reported with exit code 2, before any removal."""


# Longer deadlines are typos, and gRPC turns absurd ones (1e300) into an instant
# DEADLINE_EXCEEDED.
MAX_SECONDS = 86400.0


def _finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):  # float() takes 'nan' and 'inf'; a deadline cannot
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number of seconds")
    if value > MAX_SECONDS:
        raise argparse.ArgumentTypeError(f"{text!r} is more than a day ({MAX_SECONDS:g})")
    return value


def positive_float(text: str) -> float:
    value = _finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be greater than 0")
    return value


def non_negative_float(text: str) -> float:
    value = _finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must not be negative")
    return value


def int_in_range(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is not between {low} and {high}")
        return value

    return parse


def path(text: str) -> Path:
    # Path("") is ".": an empty value would quietly mean the current directory.
    if not text:
        raise argparse.ArgumentTypeError("the path is empty")
    return Path(text)


def add_selection(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("selection")
    group.add_argument(
        "--scope",
        type=str.capitalize,  # the spec takes any case: unused, UNUSED
        choices=[s.value for s in policy_selection.Scope],
        help="Unused: every image no container uses (default); Dangling: untagged only",
    )
    group.add_argument(
        "--include", action="append", metavar="PATTERN", help="only images matching (repeatable)"
    )
    group.add_argument(
        "--exclude", action="append", metavar="PATTERN", help="never images matching (repeatable)"
    )
    group.add_argument(
        "--unused-for",
        metavar="DURATION",
        help="only images no container has used for this long (from this node's usage "
        "records; an image never seen in use counts from when it was first seen)",
    )
    group.add_argument(
        "--older-than",
        metavar="DURATION",
        help="only images created longer ago than this (unknown creation time: kept)",
    )
    group.add_argument(
        "--keep-latest",
        type=int,
        metavar="N",
        help="keep the N newest images of every repository",
    )
    group.add_argument(
        "--disk-high",
        type=float,
        metavar="PERCENT",
        help="act only when the image filesystem is at least this full (needs --disk-low)",
    )
    group.add_argument(
        "--disk-low",
        type=float,
        metavar="PERCENT",
        help="then remove least recently used images until it is this full",
    )
    group.add_argument("--max-images", type=int, metavar="N", help="remove at most N images")
    group.add_argument("--max-bytes", metavar="SIZE", help="remove at most this many bytes")
    group.add_argument(
        "--policy",
        type=path,
        metavar="FILE",
        help="read the selection from an ImagePrunePolicy manifest (YAML) instead of flags; "
        "its spec.mode decides, as in the cluster: only Enforce removes (absent or "
        "DryRun: a dry run), and suspend: true removes nothing",
    )


def _spec_from_args(args: argparse.Namespace) -> dict[str, object]:
    spec: dict[str, object] = {}
    for dest, (field, _flag) in _SPEC_FIELDS.items():
        value = getattr(args, dest)
        if value is None:
            continue
        target = spec
        *parents, leaf = field.split(".")
        for parent in parents:
            target = target.setdefault(parent, {})  # type: ignore[assignment]
        target[leaf] = value
    return spec


def _flag_names(message: str) -> str:
    """Rewrite 'spec.unusedFor: ...' into '--unused-for: ...' for CLI users."""
    for field, flag in sorted(_SPEC_FIELDS.values(), key=lambda f: -len(f[0])):
        message = message.replace(f"spec.{field}", flag)
    return message


def request_from_args(args: argparse.Namespace) -> Request:
    spec = _spec_from_args(args)
    if args.policy is not None:
        if spec:
            raise UsageError("--policy cannot be combined with other selection flags")
        try:
            return manifest_file.load_policy_file(args.policy, _policy_request)
        except policy_selection.PolicyError as err:
            raise UsageError(f"--policy {err}") from None
    try:
        # No --unused-for means no age limit, as with crictl.
        return Request(policy_selection.selection_from_spec(spec, unused_for_default=None))
    except policy_selection.PolicyError as err:
        raise UsageError(_flag_names(str(err))) from None


def _policy_request(spec: Mapping[str, object]) -> Request:
    # The operator's own parser: a policy the cluster would refuse, the node refuses.
    # Imported here: only --policy needs it (with zoneinfo, label selectors...), and
    # every other prune would pay for it at start-up.
    from imageprune.api import policy as api_policy  # noqa: PLC0415

    policy = api_policy.parse_spec(spec)
    removes_nothing = None
    if policy.suspend:
        removes_nothing = "policy suspended: nothing removed; set suspend: false to remove"
    elif policy.mode is api_policy.Mode.DRY_RUN:
        default = "" if spec.get("mode") is not None else " (the default)"
        removes_nothing = (
            f"policy mode DryRun{default}: nothing removed; set mode: Enforce to remove"
        )
    ignored = [field for field in _WHERE_AND_WHEN if spec.get(field) is not None]
    return Request(
        policy_selection.selection_from_spec(policy.selection),
        removes_nothing=removes_nothing,
        cluster_only=", ".join(f"spec.{field}" for field in ignored)
        + ": used in the cluster only; ignored on this node"
        if ignored
        else None,
    )
