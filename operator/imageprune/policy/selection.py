"""Which images a policy allows to be removed: the `spec` of an ImagePrunePolicy,
parsed into a `Selection`. The node CLI's flags and `--policy FILE` go through the
same parser, so a flag and a policy field always mean the same thing."""

from __future__ import annotations

import dataclasses
import datetime
import difflib
import enum
from collections.abc import Mapping, Sequence

from imageprune.policy import durations, quantities, references

API_VERSION = "imageprune.io/v1alpha1"
KIND = "ImagePrunePolicy"


# kubelet's ImageMinimumGCAge: an image pulled for a pod whose container has not
# started yet is unused, and a policy must not remove it in that gap.
DEFAULT_UNUSED_FOR = datetime.timedelta(minutes=2)

# Pod sandbox (pause) images under the names Kubernetes and the big distributions
# use, every tag and digest. The runtime names its own sandbox image too (and the
# planner protects that one whatever this list says), but not always: containerd
# 2.x does not report it, and a node may hold the pause image of an older setup.
DEFAULT_SANDBOX_IMAGES: tuple[str, ...] = tuple(
    f"{repository}{suffix}"
    for repository in (
        "registry.k8s.io/pause",
        "k8s.gcr.io/pause",
        "k8s.gcr.io/pause-amd64",
        "gcr.io/google_containers/pause",
        "gcr.io/google_containers/pause-amd64",
        "gke.gcr.io/pause",
        "mcr.microsoft.com/oss/kubernetes/pause",
        "public.ecr.aws/eks-distro/kubernetes/pause",
        "*.dkr.ecr.*.amazonaws.com/eks/pause",
        "docker.io/rancher/mirrored-pause",
        "docker.io/rancher/pause",
        "registry.aliyuncs.com/google_containers/pause",
        "registry.cn-hangzhou.aliyuncs.com/google_containers/pause",
    )
    for suffix in (":*", "@*")
)
_DEFAULT_SANDBOX_PATTERNS = tuple(map(references.Pattern, DEFAULT_SANDBOX_IMAGES))


class Scope(enum.StrEnum):
    UNUSED = "Unused"  # every image no container uses, like `docker image prune -a`
    DANGLING = "Dangling"  # untagged images only, like `docker image prune`


class PolicyError(ValueError):
    """A spec or manifest that cannot be used; the message starts with the field."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}")
        self.where = where
        self.problem = problem


@dataclasses.dataclass(frozen=True, slots=True)
class DiskTarget:
    """Act only when the image filesystem is at least `high_percent` full, then
    remove until it would be at most `low_percent` full (kubelet's GC thresholds)."""

    high_percent: float
    low_percent: float

    def __post_init__(self) -> None:
        if not 0 < self.low_percent < self.high_percent <= 100:
            raise ValueError(
                f"disk target needs 0 < low ({self.low_percent:g}) < high "
                f"({self.high_percent:g}) <= 100"
            )


@dataclasses.dataclass(frozen=True, slots=True)
class Selection:
    scope: Scope = Scope.UNUSED
    include: tuple[references.Pattern, ...] = ()  # empty: every image
    exclude: tuple[references.Pattern, ...] = ()
    unused_for: datetime.timedelta | None = None
    older_than: datetime.timedelta | None = None
    keep_latest_per_repository: int = 0  # 0: keep none for being newest
    disk: DiskTarget | None = None
    max_images: int | None = None  # per run
    max_bytes: int | None = None  # per run
    # Protected as pod sandbox images, besides the one the runtime names.
    sandbox_images: tuple[references.Pattern, ...] = dataclasses.field(
        default_factory=lambda: _DEFAULT_SANDBOX_PATTERNS
    )

    def __post_init__(self) -> None:
        for name in ("unused_for", "older_than"):
            value = getattr(self, name)
            if value is not None and value < datetime.timedelta(0):
                raise ValueError(f"{name} must not be negative")
        if self.keep_latest_per_repository < 0:
            raise ValueError("keep_latest_per_repository must not be negative")
        for name in ("max_images", "max_bytes"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1 (None means no limit)")

    @property
    def needs_created_at(self) -> bool:
        """Whether planning needs image creation times (one runtime call per image)."""
        return self.older_than is not None or self.keep_latest_per_repository > 0


_DISK_FIELDS = frozenset({"highPercent", "lowPercent"})
_LIMIT_FIELDS = frozenset({"maxImagesPerRun", "maxBytesPerRun"})
# The spec fields this parser reads...
SELECTION_FIELDS = frozenset(
    {
        "scope",
        "include",
        "exclude",
        "unusedFor",
        "olderThan",
        "keepLatestPerRepository",
        "diskUsage",
        "limits",
        "sandboxImages",
    }
)
# ...and those the cluster's operator reads: known here, so that a typo in any
# field is an error, and ignored, because they say when and where to run, not what.
CLUSTER_FIELDS = frozenset({"mode", "suspend", "nodeSelector", "schedule", "timeZone", "rollout"})
# Per pattern list: a policy names dozens; each pattern costs time on every image.
MAX_PATTERNS = 256
# Counts and byte sizes stop here: larger is a mistake, and Kubernetes' own limit.
_MAX_INTEGER = 2**63 - 1


def selection_from_spec(
    spec: Mapping[str, object],
    *,
    unused_for_default: datetime.timedelta | None = DEFAULT_UNUSED_FOR,
) -> Selection:
    """Parse an ImagePrunePolicy `spec`. Raises PolicyError naming the field, e.g.
    "spec.diskUsage.lowPercent: must be less than highPercent (85)"; an unknown
    field is an error too. A null field counts as absent, as Kubernetes treats it.
    Without `unusedFor`, images must have been unused for `unused_for_default`
    (None: no age limit, which the CLI's flags mean, like crictl)."""
    _known_fields(spec, "spec", SELECTION_FIELDS | CLUSTER_FIELDS)
    max_images, max_bytes = _limits(spec.get("limits"), "spec.limits")
    unused_for = _duration(spec.get("unusedFor"), "spec.unusedFor")
    sandbox = spec.get("sandboxImages")
    return Selection(
        scope=_scope(spec.get("scope"), "spec.scope"),
        include=_patterns(spec.get("include"), "spec.include"),
        exclude=_patterns(spec.get("exclude"), "spec.exclude"),
        unused_for=unused_for_default if unused_for is None else unused_for,
        older_than=_duration(spec.get("olderThan"), "spec.olderThan"),
        keep_latest_per_repository=_keep_latest(spec.get("keepLatestPerRepository")),
        disk=_disk(spec.get("diskUsage"), "spec.diskUsage"),
        max_images=max_images,
        max_bytes=max_bytes,
        sandbox_images=(
            _DEFAULT_SANDBOX_PATTERNS
            if sandbox is None
            else _patterns(sandbox, "spec.sandboxImages")
        ),
    )


def manifest_spec(text: str) -> Mapping[str, object]:
    """The spec of the one ImagePrunePolicy in a YAML manifest (which may hold other
    documents too, as `kubectl apply -f` files do), unparsed: a node reads its
    selection with selection_from_spec, and the cluster fields with the API's parser."""
    # Only a policy file needs YAML: a CLI prune from flags starts without PyYAML.
    from imageprune.policy import manifest_yaml  # noqa: PLC0415

    try:
        documents = manifest_yaml.load_documents(text)
    except manifest_yaml.YAMLProblem as problem:
        raise PolicyError(problem.where, problem.problem) from None
    policy = _the_policy(documents)
    if policy.get("apiVersion") != API_VERSION:
        got = _shown(policy.get("apiVersion"))
        raise PolicyError("apiVersion", f"must be {API_VERSION} (got {got})")
    spec = policy.get("spec")
    if spec is None:
        raise PolicyError("spec", "required")
    return _mapping(spec, "spec")


def _the_policy(documents: Sequence[object]) -> Mapping[str, object]:
    kinds = []
    policies = []
    for number, document in enumerate(documents, start=1):
        if document is None:  # an empty document, e.g. after a trailing "---"
            continue
        if not isinstance(document, Mapping):
            raise PolicyError(f"document {number}", "must be a Kubernetes object (a mapping)")
        kinds.append(_shown(document.get("kind"), quoted=False))
        if document.get("kind") == KIND:
            policies.append(document)
    if not policies:
        found = f"found kinds: {', '.join(kinds)}" if kinds else "the manifest is empty"
        if "null" in kinds:  # most often a bare spec (unusedFor: 7d, ...)
            found += f"; the file must hold the whole manifest: apiVersion, kind: {KIND}, spec"
        raise PolicyError("kind", f"no {KIND} in the manifest ({found})")
    if len(policies) > 1:
        raise PolicyError("kind", f"{len(policies)} {KIND} documents; expected exactly one")
    return policies[0]


def _mapping(value: object, path: str) -> Mapping[str, object]:
    if not isinstance(value, Mapping):
        raise PolicyError(path, f"must be a mapping (got {_type_name(value)})")
    return value


def _known_fields(value: object, path: str, known: frozenset[str]) -> Mapping[str, object]:
    # A misspelt field is an error, never ignored: a dropped unusedFor or limit
    # would remove more than intended.
    mapping = _mapping(value, path)
    unknown = sorted(str(key) for key in mapping if key not in known)
    if not unknown:
        return mapping
    key = next(key for key in mapping if str(key) == unknown[0])
    where = f"{path}.{_shown(key, quoted=False)}"
    if not isinstance(key, str):
        raise PolicyError(where, f"unknown field: a field name is a string, not {_type_name(key)}")
    nested = _NESTED_FIELDS if path == "spec" else {}
    raise PolicyError(where, f"unknown field; {_suggestion(key, known, nested)}")


# Fields a user may put one level too high, e.g. spec.maxImagesPerRun.
_NESTED_FIELDS = {
    **{field: f"diskUsage.{field}" for field in _DISK_FIELDS},
    **{field: f"limits.{field}" for field in _LIMIT_FIELDS},
}


def _suggestion(key: str, known: frozenset[str], nested: Mapping[str, str]) -> str:
    # Case-blind, so "unusedfor" finds unusedFor.
    candidates = {name.lower(): name for name in known}
    candidates.update((name.lower(), path) for name, path in nested.items())
    close = difflib.get_close_matches(key.lower(), candidates, n=1)
    if close:
        return f"did you mean {candidates[close[0]]}?"
    return f"expected one of {', '.join(sorted(known))}"


def _shown(value: object, *, quoted: bool = True) -> str:
    """A value as an error message shows it: short, and only scalars in full (the
    text may hold anything, up to a megabyte)."""
    if isinstance(value, str):
        text = repr(value) if quoted else value
    elif isinstance(value, int) and value.bit_length() > 128:
        return "a huge integer"  # str() of thousands of digits raises
    elif value is None:
        text = "null"
    elif isinstance(value, bool | int | float):
        text = str(value)
    else:
        return _type_name(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _type_name(value: object) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}
    if value is None:
        return "null"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return names.get(type(value), type(value).__name__)


def _string(value: object, path: str) -> str:
    if not isinstance(value, str):
        raise PolicyError(path, f"must be a string (got {_type_name(value)})")
    return value


def _integer(value: object, path: str, *, minimum: int) -> int:
    # bool is an int subclass; "true" is never a count.
    if isinstance(value, bool) or not isinstance(value, int):
        raise PolicyError(path, f"must be an integer (got {_type_name(value)})")
    if value < minimum:
        raise PolicyError(path, f"must be at least {minimum} (got {_shown(value)})")
    if value > _MAX_INTEGER:
        raise PolicyError(path, f"must be at most {_MAX_INTEGER} (got {_shown(value)})")
    return value


def _scope(value: object, path: str) -> Scope:
    if value is None:
        return Scope.UNUSED
    text = _string(value, path)
    for scope in Scope:
        if scope.value.lower() == text.lower():
            return scope
    choices = ", ".join(scope.value for scope in Scope)
    raise PolicyError(path, f"must be one of {choices} (got {_shown(text)})")


def _patterns(value: object, path: str) -> tuple[references.Pattern, ...]:
    if value is None:
        return ()
    if not isinstance(value, list | tuple):
        raise PolicyError(path, f"must be a list of image patterns (got {_type_name(value)})")
    if len(value) > MAX_PATTERNS:
        raise PolicyError(path, f"{len(value):,} patterns; at most {MAX_PATTERNS} allowed")
    patterns = []
    for index, item in enumerate(value):
        item_path = f"{path}[{index}]"
        text = _string(item, item_path)
        try:
            patterns.append(references.Pattern(text))
        except ValueError as error:
            raise PolicyError(item_path, str(error)) from None
    return tuple(patterns)


def _duration(value: object, path: str) -> datetime.timedelta | None:
    if value is None:
        return None
    text = _string(value, path)
    try:
        return durations.parse_duration(text)
    except ValueError as error:
        raise PolicyError(path, str(error)) from None


def _keep_latest(value: object) -> int:
    if value is None:
        return 0
    return _integer(value, "spec.keepLatestPerRepository", minimum=0)


def _percent(value: object, path: str) -> float:
    if value is None:
        raise PolicyError(path, "required")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PolicyError(path, f"must be a number (got {_type_name(value)})")
    if not 0 < value <= 100:
        raise PolicyError(path, f"must be more than 0 and at most 100 (got {_shown(value)})")
    return float(value)


def _disk(value: object, path: str) -> DiskTarget | None:
    if value is None:
        return None
    fields = _known_fields(value, path, _DISK_FIELDS)
    high = _percent(fields.get("highPercent"), f"{path}.highPercent")
    low = _percent(fields.get("lowPercent"), f"{path}.lowPercent")
    if low >= high:
        raise PolicyError(f"{path}.lowPercent", f"must be less than highPercent ({high:g})")
    return DiskTarget(high_percent=high, low_percent=low)


def _limits(value: object, path: str) -> tuple[int | None, int | None]:
    """(maxImagesPerRun, maxBytesPerRun); the byte limit may be a quantity string."""
    if value is None:
        return None, None
    fields = _known_fields(value, path, _LIMIT_FIELDS)
    count = fields.get("maxImagesPerRun")
    max_images = None if count is None else _integer(count, f"{path}.maxImagesPerRun", minimum=1)
    size = fields.get("maxBytesPerRun")
    size_path = f"{path}.maxBytesPerRun"
    if isinstance(size, str):
        try:
            size = quantities.parse_bytes(size)
        except ValueError as error:
            raise PolicyError(size_path, str(error)) from None
    max_bytes = None if size is None else _integer(size, size_path, minimum=1)
    return max_images, max_bytes
