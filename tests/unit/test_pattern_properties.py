"""Properties of patterns that protect or select images, over generated names:
Docker Hub names outside library/, whole-registry globs, tagless patterns that
start with a wildcard, and several include patterns at once."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imageprune.node import planner
from imageprune.node.planner import Reason
from imageprune.policy import references
from imageprune.policy.references import Pattern
from imageprune.policy.selection import Selection
from testkit import builders

pytestmark = [
    pytest.mark.unit,
    pytest.mark.filterwarnings("ignore:mypy_extensions.TypedDict:DeprecationWarning"),
]

# Path components as Docker allows them, without "." (a first component with one
# is a registry host) and never "library" (Docker Hub's official namespace, which
# normalisation treats specially).
_COMPONENT = st.from_regex(r"[a-z0-9]{1,8}(?:[_-][a-z0-9]{1,4})?", fullmatch=True).filter(
    lambda c: c != "library"
)
_TAG = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,10}", fullmatch=True)
_OTHER_REGISTRIES = st.sampled_from(["quay.io", "ghcr.io", "localhost:5000", "registry.k8s.io"])


@settings(max_examples=100, deadline=None)
@given(org=_COMPONENT, app=_COMPONENT, tag=_TAG, cut=st.integers(0, 8), familiar=st.booleans())
def test_short_org_globs_match_docker_hub_images_outside_library(
    org: str, app: str, tag: str, cut: int, familiar: bool
) -> None:
    # "myorg*" is what a user types for docker.io/myorg/...; runtimes report the
    # name normalised (containerd) or familiar (cri-dockerd).
    name = f"{org}/{app}:{tag}" if familiar else f"docker.io/{org}/{app}:{tag}"
    pattern = Pattern(org[: max(cut, 1)] + "*")
    assert pattern.matches(builders.image(1, name))
    # The same repository on another registry is not Docker Hub's.
    assert not Pattern(f"{org}/*").matches(builders.image(1, f"quay.io/{org}/{app}:{tag}"))


@settings(max_examples=100, deadline=None)
@given(org=_COMPONENT, app=_COMPONENT, tag=_TAG, official=st.booleans(), other=_OTHER_REGISTRIES)
def test_a_docker_hub_glob_matches_all_of_docker_hub_and_nothing_else(
    org: str, app: str, tag: str, official: bool, other: str
) -> None:
    path = app if official else f"{org}/{app}"
    hub = Pattern("docker.io/*")
    assert hub.matches(builders.image(1, f"docker.io/{path}:{tag}"))
    assert hub.matches(builders.image(1, f"{path}:{tag}"))  # the familiar form of the same
    assert not hub.matches(builders.image(1, f"{other}/{org}/{app}:{tag}"))


@settings(max_examples=100, deadline=None)
@given(first=_COMPONENT, app=_COMPONENT, tag=_TAG, registry=st.none() | _OTHER_REGISTRIES)
def test_a_tagless_pattern_starting_with_a_wildcard_means_latest(
    first: str, app: str, tag: str, registry: str | None
) -> None:
    # "*/app" has no tag, so like "nginx" it means ":latest", on any registry.
    prefix = "" if registry is None else f"{registry}/"
    pattern = Pattern(f"*/{app}")
    assert pattern.matches(builders.image(1, f"{prefix}{first}/{app}:latest"))
    assert pattern.matches(builders.image(1, f"{prefix}{first}/{app}"))  # no tag: latest, too
    if tag != "latest":
        assert not pattern.matches(builders.image(1, f"{prefix}{first}/{app}:{tag}"))
    assert not pattern.matches(builders.image(1, f"{prefix}{first}/{app}x:latest"))


_NAMES = (
    "docker.io/library/nginx:1",
    "nginx:latest",
    "docker.io/myorg/app:1",
    "myorg/tool:2",
    "quay.io/a/b:1",
    "registry.example.com/team/app:3",
    "localhost:5000/x:1",
)
_INCLUDES = tuple(
    map(Pattern, ["nginx:*", "myorg*", "quay.io/*", "*/app:*", "*:2", "localhost:5000/*", "redis"])
)


@settings(max_examples=300, deadline=None)
@given(
    tags=st.lists(st.lists(st.sampled_from(_NAMES), max_size=2, unique=True), max_size=6),
    includes=st.lists(st.sampled_from(_INCLUDES), min_size=2, max_size=4),
)
def test_several_includes_select_exactly_the_images_matching_any(
    tags: list[list[str]], includes: list[Pattern]
) -> None:
    images = [builders.image(n, *names) for n, names in enumerate(tags)]
    plan = planner.plan(
        images=images,
        containers=(),
        sandbox_images=(),
        usage={},
        disk=None,
        selection=Selection(include=tuple(includes), sandbox_images=()),
        now=builders.NOW,
    )
    for verdict in plan.verdicts:
        wanted = any(p.matches(verdict.image) for p in includes)
        # Both ways: every image some include matches may go, and no other.
        assert (verdict.reason is Reason.REMOVABLE) is wanted
        assert (verdict.reason is Reason.NOT_INCLUDED) is not wanted


_POOL = tuple(
    map(
        Pattern,
        [
            "nginx*",
            "myorg*",
            "*pause*",
            "*/app:*",
            "docker.io/*",
            "quay.io/a/b:1",
            "registry.k8s.io/pause:*",
            "registry.k8s.io/pause@*",
            "sha256:0000*",
            "*",
            "localhost:5000/*",
        ],
    )
)
_POOL_NAMES = (
    *_NAMES,
    "registry.k8s.io/pause:3.9",
    "quay.io/x/pause:1",
    f"registry.k8s.io/pause@sha256:{'d' * 64}",
    f"docker.io/library/nginx@sha256:{'e' * 64}",
)


@settings(max_examples=300, deadline=None)
@given(
    names=st.lists(st.sampled_from(_POOL_NAMES), max_size=3, unique=True),
    number=st.integers(0, 3),
    patterns=st.lists(st.sampled_from(_POOL), max_size=5),
)
def test_a_pattern_set_finds_what_the_patterns_find_one_by_one(
    names: list[str], number: int, patterns: list[Pattern]
) -> None:
    image_names = references.image_names(builders.image(number, *names))
    expected = next((p for p in patterns if p.matches_names(image_names)), None)
    assert references.PatternSet(tuple(patterns)).first_match(image_names) == expected
