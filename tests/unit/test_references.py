from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imageprune.policy import references
from imageprune_cri.types import Image

pytestmark = pytest.mark.unit

DIGEST = "sha256:" + "d" * 64
ID = "sha256:" + "1" * 64


@pytest.mark.parametrize(
    ("reference", "normalized"),
    [
        ("nginx", "docker.io/library/nginx:latest"),
        ("nginx:1.25", "docker.io/library/nginx:1.25"),
        ("myorg/app:1", "docker.io/myorg/app:1"),
        ("docker.io/nginx", "docker.io/library/nginx:latest"),
        ("index.docker.io/myorg/app", "docker.io/myorg/app:latest"),
        ("quay.io/a/b", "quay.io/a/b:latest"),
        ("localhost:5000/x", "localhost:5000/x:latest"),
        ("localhost/x:2", "localhost/x:2"),
        ("registry.k8s.io/pause:3.9", "registry.k8s.io/pause:3.9"),
        (f"nginx@{DIGEST}", f"docker.io/library/nginx@{DIGEST}"),
        (f"nginx:1@{DIGEST}", f"docker.io/library/nginx:1@{DIGEST}"),
        ("docker.io/library/nginx:latest", "docker.io/library/nginx:latest"),
        ("Registry/x:1", "Registry/x:1"),  # upper case: a host, as Docker reads it
    ],
)
def test_normalizes_like_docker(reference: str, normalized: str) -> None:
    assert references.normalize_reference(reference) == normalized
    assert references.normalize_reference(normalized) == normalized


@pytest.mark.parametrize(
    ("reference", "repository"),
    [
        ("nginx", "docker.io/library/nginx"),
        ("myorg/app:1", "docker.io/myorg/app"),
        (f"quay.io/a/b@{DIGEST}", "quay.io/a/b"),
        ("localhost:5000/x", "localhost:5000/x"),
    ],
)
def test_repository_drops_tag_and_digest(reference: str, repository: str) -> None:
    assert references.repository_of(reference) == repository


@pytest.mark.parametrize("bad", ["", " nginx", "ngi nx", "a//b", "/a", "nginx:", "nginx@", "x@md5"])
def test_rejects_what_is_not_a_reference(bad: str) -> None:
    with pytest.raises(ValueError, match="invalid image reference"):
        references.normalize_reference(bad)


def _image(*tags: str, digests: tuple[str, ...] = (), image_id: str = ID) -> Image:
    return Image(id=image_id, repo_tags=tags, repo_digests=digests)


# Names and patterns that meet each other: prefixes, needles, familiar names, IDs.
LISTING_NAMES = (
    "registry.k8s.io/pause:3.9",
    "nginx:1",
    "quay.io/x/pause:1",
    "123.dkr.ecr.us-east-1.amazonaws.com/eks/pause:3",
    "bad\nregistry.k8s.io/pause:1",
    "bad tag",
)
LISTING_PATTERNS = (
    "registry.k8s.io/*",
    "*pause*",
    "nginx*",
    "*.dkr.ecr.*.amazonaws.com/eks/pause:*",
    "sha256:0*",
    "*",
    "quay.io/x/*",
)


@pytest.mark.parametrize(
    ("pattern", "name", "matches"),
    [
        ("nginx", "docker.io/library/nginx:latest", True),
        ("nginx", "nginx:latest", True),  # cri-dockerd reports familiar names
        ("nginx", "docker.io/library/nginx:1.25", False),
        ("nginx:*", "docker.io/library/nginx:1.25", True),
        ("docker.io/library/nginx:*", "docker.io/library/nginx:1.25", True),
        ("docker.io/library/nginx:*", "docker.io/library/nginx-extra:1", False),
        ("myorg/*", "docker.io/myorg/app:1", True),
        ("myorg/*", "docker.io/myorg/team/app:1", True),
        ("myorg/*", "docker.io/other/app:1", False),
        ("registry.k8s.io/*", "registry.k8s.io/pause:3.9", True),
        ("registry.k8s.io/*", "registry.k8s.io/sig/x:1", True),
        ("registry.k8s.io/*", "docker.io/library/registry:2", False),
        ("*pause*", "registry.k8s.io/pause:3.9", True),
        ("*pause*", "docker.io/library/nginx:1", False),
        ("nginx*", "docker.io/library/nginx:1", True),  # familiar form, as users mean it
        ("nginx*", "quay.io/nginx/nginx:1", False),
        ("*/app:*", "quay.io/org/app:7", True),
        ("docker.io/*", "docker.io/library/nginx:1", True),
        ("localhost:5000/*", "localhost:5000/x:1", True),
        ("quay.io/a/b", "quay.io/a/b:latest", True),
        ("quay.io/a/b", "quay.io/a/b:2", False),
        ("quay.io/a/b:?", "quay.io/a/b:2", True),
        ("quay.io/a/b:?", "quay.io/a/b:22", False),
        ("nginx:Latest", "docker.io/library/nginx:latest", False),  # case-sensitive
        # IDs and digests only: not Docker Hub's repository "sha256", familiar as "sha256:1234"
        ("sha256:12*", "docker.io/library/sha256:1234", False),
        ("*Beta", "quay.io/a/b:Beta", True),  # upper case may stand in a tag
        ("Quay.io/a/*", "Quay.io/a/b:1", True),  # and in a registry host
    ],
)
def test_pattern_matches_names_as_users_expect(pattern: str, name: str, matches: bool) -> None:
    assert references.Pattern(pattern).matches(_image(name)) is matches


def test_pattern_matches_any_tag_of_an_image() -> None:
    image = _image("quay.io/x/y:1", "docker.io/library/nginx:latest")
    assert references.Pattern("nginx").matches(image)


def test_pattern_matches_repo_digests() -> None:
    image = _image(digests=(f"docker.io/library/nginx@{DIGEST}",))
    assert references.Pattern(f"nginx@{DIGEST}").matches(image)
    assert references.Pattern("nginx@sha256:dd*").matches(image)
    assert not references.Pattern("nginx").matches(image)


def test_sha256_patterns_match_ids_and_manifest_digests() -> None:
    image = _image("nginx:1", digests=(f"docker.io/library/nginx@{DIGEST}",))
    assert references.Pattern(ID).matches(image)
    assert references.Pattern("sha256:111*").matches(image)
    assert references.Pattern("sha256:DDD*").matches(image)  # hex in any case
    assert references.Pattern(DIGEST).matches(image)
    assert references.Pattern("sha256:ddd*").matches(image)
    assert not references.Pattern("sha256:222*").matches(image)


def test_sha256_patterns_match_ids_reported_without_prefix() -> None:
    # CRI-O lists image IDs as bare hex.
    assert references.Pattern(ID).matches(_image(image_id="1" * 64))


def test_star_matches_untagged_images_too() -> None:
    assert references.Pattern("*").matches(_image())


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        (" ", "must not contain whitespace"),
        ("nginx ", "must not contain whitespace"),
        ("a\tb", "must not contain whitespace"),
        ("nginx:[12]", "only image reference characters and the wildcards * and ? are allowed"),
        ("sha256:xyz", "after 'sha256:' only hex digits and the wildcards * and ? may follow"),
        ("a//b", "empty name component"),
        ("myorg/", "empty name component"),
    ],
)
def test_invalid_patterns_say_why(text: str, complaint: str) -> None:
    whole = f"invalid image pattern {text!r}: {complaint}"
    with pytest.raises(ValueError, match=f"^{re.escape(whole)}$"):
        references.Pattern(text)


def test_an_empty_pattern_is_refused() -> None:
    with pytest.raises(ValueError, match=r"^image pattern must not be empty$"):
        references.Pattern("")


def test_a_long_pattern_is_named_by_its_start() -> None:
    whole = f"invalid image pattern {'x' * 40!r}...: 513 characters, at most 512 allowed"
    with pytest.raises(ValueError, match=f"^{re.escape(whole)}$"):
        references.Pattern("x" * 40 + "y" * 473)


D64 = "d" * 64


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        # The three: an exclude that can match nothing protects nothing.
        ("nginx:", "nothing follows ':'"),
        ("nginx@", "nothing follows '@'"),
        ("RT/BASE:*", "upper case in 'RT/B': repository paths are lower case"),
        ("Nginx", "upper case: repository paths are lower case"),
        ("nginX", "upper case: repository paths are lower case"),
        ("docker.io/MyOrg/*", "upper case in 'docker.io/M'"),
        ("-nginx", "no name starts with '-'"),
        ("nginx-", "a name cannot end after 'nginx-'"),
        ("a___b", "'_' cannot follow 'a__'"),
        ("nginx:-1", "'-' cannot follow 'nginx:'"),
        ("nginx:1:2", "':' cannot follow 'nginx:1'"),
        ("nginx@sha256", "a sha256 digest has 64 hex digits"),
        ("nginx@sha256:abc", "a sha256 digest has 64 hex digits; end with \\* to match"),
        ("Quay.io/a@sha256:abc", "a sha256 digest has 64 hex digits"),  # not "upper case"
        (f"nginx@sha256:{D64.upper()}", "upper case"),
        (f"nginx@sha256:{D64}0", "'0' cannot follow"),
        (f"nginx@md5:{D64}", "'m' cannot follow 'nginx@'"),
        ("nginx@*@*", "'@' cannot follow"),
        ("nginx:" + "a" * 129, "'a' cannot follow '...aaaa"),
        # What came before is shown whole up to 40 characters, else as its last 37.
        ("a" * 38 + "___", f"'_' cannot follow '{'a' * 38}__'\\)"),
        ("a" * 39 + "___", f"'_' cannot follow '\\.\\.\\.{'a' * 35}__'\\)"),
        ("*:*:*:*:*", "':' cannot follow '\\*:\\*:\\*:\\*'"),  # port, tag, digest
        ("host:port/x", "'/' cannot follow 'host:port'"),  # a port is digits
        ("nginx:1@sha256:", "nothing follows ':'"),
        ("sha256:abc", "a sha256 digest has 64 hex digits"),  # Docker's short IDs
        ("sha256:" + D64 + "0", "'0' cannot follow"),
        ("sha256:" + "?" * 65, "'\\?' cannot follow"),
    ],
)
def test_patterns_that_can_never_match_are_refused(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=f"no image name can match it \\({reason}") as caught:
        references.Pattern(text)
    assert str(caught.value).startswith(f"invalid image pattern {text!r}")


@pytest.mark.parametrize(
    "text",
    [
        "nginx",
        "nginx:1.25",
        "a__b",
        "a--b",
        "a.b_c-d",
        "localhost",
        "localhost:5000/x",
        "127.0.0.1:5000/x",
        "MYHOST/x:1",
        "Quay.io/x",
        "*Beta",
        "nginx:Latest",
        "*",
        "?",
        "*:*:*",  # a port, a tag and a digest
        "*@*",
        "nginx:" + "a" * 128,
        "nginx:" + "a" * 127 + "*",
        f"nginx@sha256:{D64}",
        f"nginx@sha256:{'?' * 64}",
        f"quay.io/a/b:1@sha512:{'f' * 128}",
        "sha256:" + "?" * 64,
        "sha256:*",
        "sha256:ABC*",
        "*.dkr.ecr.*.amazonaws.com/eks/pause:*",
    ],
)
def test_patterns_that_can_match_are_accepted(text: str) -> None:
    assert references.Pattern(text).source == text


def test_longest_allowed_pattern_is_accepted() -> None:
    assert references.Pattern("x" * 512).source == "x" * 512


def test_pattern_shows_what_the_user_wrote() -> None:
    pattern = references.Pattern("myorg/*")
    assert str(pattern) == "myorg/*"
    assert pattern.glob == "docker.io/myorg/*"


def test_image_names_are_normalized_and_include_bare_digests() -> None:
    image = _image("nginx", digests=(f"nginx@{DIGEST}",), image_id="1" * 64)
    assert references.image_names(image) == (
        ID,
        "docker.io/library/nginx:latest",
        f"docker.io/library/nginx@{DIGEST}",
        DIGEST,
    )


def test_image_names_keep_unparsable_names_as_reported() -> None:
    assert references.image_names(_image("bad tag!")) == (ID, "bad tag!")
    # The bare digest is what follows the last "@", as in a reference.
    assert references.image_names(_image(digests=(f"a@b@{DIGEST}",))) == (
        ID,
        f"a@b@{DIGEST}",
        DIGEST,
    )


def test_repositories_of_an_image_come_from_tags_and_digests() -> None:
    image = _image(
        "nginx:1", "quay.io/a/b:2", "bad tag!", digests=(f"docker.io/library/nginx@{DIGEST}",)
    )
    assert references.repositories_of(image) == {"docker.io/library/nginx", "quay.io/a/b"}


class TestPatternSet:
    PATTERNS = tuple(
        map(references.Pattern, ["registry.k8s.io/pause:*", "*pause*", "nginx*", "sha256:1*"])
    )

    @pytest.mark.parametrize(
        ("name", "first"),
        [
            ("registry.k8s.io/pause:3.9", "registry.k8s.io/pause:*"),
            ("quay.io/x/pause:1", "*pause*"),
            ("docker.io/library/nginx:1", "nginx*"),  # familiar name, as Pattern matches
            ("docker.io/library/pause:3", "*pause*"),
            ("docker.io/myorg/pause-ish:3", "*pause*"),
            ("quay.io/x/y:1", "sha256:1*"),  # by the image ID
        ],
    )
    def test_first_match_is_the_first_pattern_that_matches(self, name: str, first: str) -> None:
        image_id = ID if first.startswith("sha256:") else "sha256:" + "2" * 64
        names = references.image_names(_image(name, image_id=image_id))
        assert str(references.PatternSet(self.PATTERNS).first_match(names)) == first
        # Each pattern alone finds it, too: no pattern is shadowed by another.
        alone = references.PatternSet((references.Pattern(first),))
        assert str(alone.first_match(names)) == first

    @pytest.mark.parametrize(
        "name", ["registry.k8s.io/etcd:3", "quay.io/nginx/nginx:1", "docker.io/library/redis:7"]
    )
    def test_agrees_with_the_patterns_one_by_one(self, name: str) -> None:
        patterns = (*self.PATTERNS[:3], references.Pattern("sha256:2*"))
        names = references.image_names(_image(name))
        assert references.PatternSet(self.PATTERNS).first_match(names) is not None  # by ID
        assert references.PatternSet(patterns).first_match(names) is None
        assert not any(p.matches_names(names) for p in patterns)

    @pytest.mark.parametrize(
        ("pattern", "name"),
        [
            ("quay.io/a/b", "quay.io/a/b:latest-rc"),
            ("registry.k8s.io/pause:3.?", "registry.k8s.io/pause:3.10"),
        ],
    )
    def test_a_name_that_only_starts_like_a_pattern_matches_nothing(
        self, pattern: str, name: str
    ) -> None:
        names = references.image_names(_image(name))
        assert not references.Pattern(pattern).matches_names(names)
        assert references.PatternSet((references.Pattern(pattern),)).first_match(names) is None

    def test_a_pattern_whose_text_is_in_every_name_is_still_judged(self) -> None:
        # "a" is in the ID ("sha256:...") as in the tag: only the regex can tell.
        names = references.image_names(_image("quay.io/a/b:1"))
        assert all("a" in name for name in names)
        match_a = references.Pattern("*a/b*")
        assert references.PatternSet((match_a,)).first_match(names) is match_a
        assert references.PatternSet((references.Pattern("*a/c*"),)).first_match(names) is None

    def test_empty_set_matches_nothing(self) -> None:
        assert references.PatternSet(()).first_match(references.image_names(_image("x"))) is None

    @settings(max_examples=300)
    @given(
        tags=st.lists(st.lists(st.sampled_from(LISTING_NAMES), max_size=3), min_size=0, max_size=6),
        patterns=st.lists(st.sampled_from(LISTING_PATTERNS), max_size=4),
    )
    def test_first_matches_agrees_with_first_match_image_by_image(
        self, tags: list[list[str]], patterns: list[str]
    ) -> None:
        images = [_image(*t, image_id=f"sha256:{n:064x}") for n, t in enumerate(tags)]
        listing = references.ListingNames([references.image_names(i) for i in images])
        pattern_set = references.PatternSet(tuple(map(references.Pattern, patterns)))
        expected = {
            position: pattern
            for position, names in enumerate(listing.names)
            if (pattern := pattern_set.first_match(names)) is not None
        }
        assert pattern_set.first_matches(listing) == expected

    def test_a_name_holding_a_newline_does_not_shift_the_matches_of_later_images(self) -> None:
        # A runtime's unparsable name is kept as reported, newline included.
        names = [references.image_names(_image(t)) for t in ("x\ny", "registry.k8s.io/pause:1")]
        listing = references.ListingNames(names)
        assert not listing.scannable
        pause = references.Pattern("registry.k8s.io/*")
        assert references.PatternSet((pause,)).first_matches(listing) == {1: pause}


class TestReferenceIndex:
    IMAGE = _image(
        "docker.io/library/nginx:1.25",
        "docker.io/library/nginx:latest",
        digests=(f"docker.io/library/nginx@{DIGEST}",),
    )

    def _referrers(self, reference: str, image: Image = IMAGE) -> tuple[str, ...]:
        index = references.ReferenceIndex.of([(reference, "who")])
        return index.referrers(references.image_names(image))

    @pytest.mark.parametrize(
        "reference",
        [
            ID,
            "1" * 64,  # CRI-O: IDs without the algorithm
            "nginx",
            "nginx:1.25",
            "docker.io/library/nginx:latest",
            f"nginx@{DIGEST}",
            f"nginx:1.25@{DIGEST}",
            f"mirror.example.com/nginx@{DIGEST}",  # same content under another name
            DIGEST,
        ],
    )
    def test_any_form_of_any_name_finds_the_image(self, reference: str) -> None:
        assert self._referrers(reference) == ("who",)

    @pytest.mark.parametrize(
        "reference", ["nginx:1.24", "quay.io/library/nginx:1.25", "sha256:" + "2" * 64, "", "a b"]
    )
    def test_other_references_do_not(self, reference: str) -> None:
        assert self._referrers(reference) == ()

    def test_bare_image_ids_are_found_by_prefixed_references(self) -> None:
        assert self._referrers(ID, _image(image_id="1" * 64)) == ("who",)

    def test_each_referrer_is_reported_once_in_indexed_order(self) -> None:
        index = references.ReferenceIndex.of(
            [(ID, "a"), ("nginx:1.25", "b"), ("nginx", "a"), ("other", "c")]
        )
        assert index.referrers(references.image_names(self.IMAGE)) == ("a", "b")

    def test_a_reference_found_under_several_names_is_reported_once(self) -> None:
        # Its tag, repo digest and bare digest are all names of the image; the
        # referrer need not be orderable (containers are not).
        who = object()
        index = references.ReferenceIndex.of([(f"nginx:1.25@{DIGEST}", who)])
        assert index.referrers(references.image_names(self.IMAGE)) == (who,)
