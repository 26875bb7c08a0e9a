"""Which containers use an image: every lookup key a container's reference is
indexed under, each shown to be the only one that finds its image. Dropping any
of them would let an image a container uses be judged unused."""

from __future__ import annotations

import pytest

from imageprune.node import users
from imageprune.policy import references
from imageprune_cri.types import ContainerState, Image
from testkit.builders import container, digest, image, image_id

pytestmark = pytest.mark.unit

DIGEST = digest(1)
OTHER_DIGEST = digest(2)
# A pod spec may pin a tag and a digest at once; kubelet passes it on as is.
PINNED_REFERENCE = f"nginx:1.25@{DIGEST}"


def _users_of(reference: str, target: Image, *, field: str = "image") -> list[str]:
    """Names of the containers found using `target` when one container was created
    with `reference` in `field` ("image" or "image_ref")."""
    made = (
        container("web", image=reference)
        if field == "image"
        else container("web", image_ref=reference)
    )
    return [c.name for c in users.of_image(target, users.index([made]))]


class TestEachKeyAlone:
    """Each image below carries exactly one name a key of PINNED_REFERENCE meets."""

    def test_repository_and_tag(self) -> None:
        target = image(1, "docker.io/library/nginx:1.25")
        assert _users_of(PINNED_REFERENCE, target) == ["web"]

    def test_repository_and_digest(self) -> None:
        # image_names adds the bare digest too, so the index is asked this one name.
        index = references.ReferenceIndex.of([(PINNED_REFERENCE, "web")])
        assert index.referrers([f"docker.io/library/nginx@{DIGEST}"]) == ("web",)

    def test_bare_digest_under_another_repository(self) -> None:
        target = image(1, digests=(f"mirror.example.com/nginx@{DIGEST}",))
        assert _users_of(PINNED_REFERENCE, target) == ["web"]

    def test_digest_equal_to_the_image_id(self) -> None:
        target = Image(id=DIGEST)
        assert _users_of(PINNED_REFERENCE, target) == ["web"]

    def test_whole_normalised_reference(self) -> None:
        index = references.ReferenceIndex.of([(PINNED_REFERENCE, "web")])
        assert index.referrers([f"docker.io/library/nginx:1.25@{DIGEST}"]) == ("web",)

    def test_default_tag_is_added(self) -> None:
        assert _users_of("nginx", image(1, "docker.io/library/nginx:latest")) == ["web"]

    def test_text_as_given_when_it_does_not_parse(self) -> None:
        # A runtime may report a name no reference grammar accepts; the same text
        # in a container still names that image.
        target = image(1, digests=("registry.example.com/app@notadigest",))
        assert _users_of("registry.example.com/app@notadigest", target) == ["web"]

    def test_bare_image_id(self) -> None:
        bare = image_id(1).removeprefix("sha256:")
        assert _users_of(bare, image(1), field="image_ref") == ["web"]

    def test_image_id_of_an_image_reported_without_algorithm(self) -> None:
        target = Image(id=image_id(1).removeprefix("sha256:"))
        assert _users_of(image_id(1), target, field="image_ref") == ["web"]


def test_a_reference_meeting_several_names_is_one_user() -> None:
    # Tag, repo digest and bare digest all meet keys of the one reference.
    target = image(
        1, "docker.io/library/nginx:1.25", digests=(f"docker.io/library/nginx@{DIGEST}",)
    )
    assert _users_of(PINNED_REFERENCE, target) == ["web"]


class TestNeighboursAreNotUsers:
    @pytest.mark.parametrize(
        "target",
        [
            image(1, "docker.io/library/nginx:1.24"),
            image(1, "quay.io/library/nginx:1.25"),
            image(1, digests=(f"docker.io/library/nginx@{OTHER_DIGEST}",)),
            image(1, "docker.io/library/nginx:latest"),
        ],
        ids=["other tag", "other registry", "other digest", "default tag"],
    )
    def test_pinned_reference(self, target: Image) -> None:
        assert _users_of(PINNED_REFERENCE, target) == []

    def test_empty_references_name_nothing(self) -> None:
        assert _users_of("", Image(id="")) == []


@pytest.mark.parametrize("field", ["image", "image_ref"])
def test_either_field_alone_makes_a_user(field: str) -> None:
    assert _users_of("nginx:1.25", image(1, "docker.io/library/nginx:1.25"), field=field) == ["web"]
    assert _users_of(image_id(1), image(1), field=field) == ["web"]


def test_users_are_ordered_by_state_then_name_whatever_the_listing_order() -> None:
    states = {
        "a-exited": ContainerState.EXITED,
        "b-unknown": ContainerState.UNKNOWN,
        "c-created": ContainerState.CREATED,
        "d-running": ContainerState.RUNNING,
        "e-running": ContainerState.RUNNING,
    }
    listed = [container(name, image_ref=image_id(1), state=s) for name, s in states.items()]
    found = users.of_image(image(1), users.index(reversed(listed)))
    assert [c.name for c in found] == [
        "d-running",
        "e-running",
        "c-created",
        "b-unknown",
        "a-exited",
    ]


def test_same_name_falls_back_to_the_container_id() -> None:
    listed = [
        container("web", image_ref=image_id(1), container_id="b"),
        container("web", image_ref=image_id(1), container_id="a"),
    ]
    found = users.of_image(image(1), users.index(listed))
    assert [c.id for c in found] == ["a", "b"]


class TestDescribe:
    @pytest.mark.parametrize(
        ("count", "expected"),
        [
            (1, "used by 1 container: c0 (running)"),
            (2, "used by 2 containers: c0 (running), c1 (running)"),
            (3, "used by 3 containers: c0 (running), c1 (running), c2 (running)"),
            (4, "used by 4 containers: c0 (running), c1 (running), c2 (running) and 1 more"),
            (5, "used by 5 containers: c0 (running), c1 (running), c2 (running) and 2 more"),
        ],
    )
    def test_shows_three_and_counts_the_rest(self, count: int, expected: str) -> None:
        assert users.describe([container(f"c{n}") for n in range(count)]) == expected

    def test_unnamed_containers_go_by_id(self) -> None:
        unnamed = container("", state=ContainerState.EXITED, container_id="abc123")
        assert users.label(unnamed) == "abc123"
        assert users.describe([unnamed]) == "used by 1 container: abc123 (exited)"
