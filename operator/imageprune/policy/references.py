"""Image references the way Docker reads them, and the glob patterns policies use.

"nginx" means docker.io/library/nginx:latest; "myorg/app:1" means
docker.io/myorg/app:1. A first path component is a registry domain when it holds
".", ":" or upper case, or is "localhost". Runtimes report names in either form (containerd:
normalised; cri-dockerd: familiar), so everything is compared normalised.
"""

from __future__ import annotations

import bisect
import dataclasses
import fnmatch
import functools
import itertools
import operator
import re
from collections.abc import Hashable, Iterable, Iterator, Mapping, Sequence
from typing import Generic, Protocol, TypeVar

from imageprune.policy import reference_syntax

DEFAULT_DOMAIN = "docker.io"
DEFAULT_TAG = "latest"
MAX_PATTERN_LENGTH = 512

_LEGACY_DEFAULT_DOMAIN = "index.docker.io"
_OFFICIAL_NAMESPACE = "library"
_GLOB = re.compile(r"[*?]")
_WHITESPACE = re.compile(r"\s")  # what str.isspace calls whitespace
_ID_ALGORITHM = "sha256:"
_BARE_ID = re.compile(r"[0-9a-f]{64}")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_DIGEST = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[A-Za-z0-9=_-]+")
# Characters of references, plus the two wildcards; fnmatch's "[...]" sets are
# refused so that a pattern means the same here and in the docs.
_PATTERN_CHARS = re.compile(r"[A-Za-z0-9._/:@+=*?-]+")
_DIGEST_PATTERN = re.compile(r"sha256:[0-9a-fA-F*?]+")

_Referrer = TypeVar("_Referrer", bound=Hashable)


class NamedImage(Protocol):
    """The names of an image: what patterns and references are matched against."""

    @property
    def id(self) -> str: ...
    @property
    def repo_tags(self) -> tuple[str, ...]: ...
    @property
    def repo_digests(self) -> tuple[str, ...]: ...


@dataclasses.dataclass(frozen=True, slots=True)
class _Reference:
    repository: str  # normalised: domain/path
    tag: str | None
    digest: str | None
    text: str = dataclasses.field(init=False)  # the whole normalised reference

    def __post_init__(self) -> None:
        tag = f":{self.tag}" if self.tag is not None else ""
        digest = f"@{self.digest}" if self.digest is not None else ""
        object.__setattr__(self, "text", self.repository + tag + digest)


def normalize_reference(reference: str) -> str:
    """Normalise like Docker: "nginx" -> "docker.io/library/nginx:latest"; digests
    and explicit tags are kept. Raises ValueError for text that is not a reference."""
    return _parse(reference).text


def repository_of(reference: str) -> str:
    """The normalised repository, without tag or digest: "nginx:1" ->
    "docker.io/library/nginx"."""
    return _parse(reference).repository


def image_names(image: NamedImage) -> tuple[str, ...]:
    """Everything an image is known by, normalised: its ID (with "sha256:"), its
    tags, its repo digests and their bare manifest digests ("sha256:..."). Names a
    runtime reports that do not parse are kept as reported."""
    image_id = image.id
    # containerd's IDs have their "sha256:" (no call to check for hex digits).
    qualified = image_id if image_id.startswith(_ID_ALGORITHM) else _qualified_id(image_id)
    names = (qualified, *map(_normalized_or_raw, image.repo_tags))
    if not image.repo_digests:
        return names  # most images: no digest part to build
    return (
        *names,
        *map(_normalized_or_raw, image.repo_digests),
        *(name.rpartition("@")[2] for name in image.repo_digests),
    )


def repositories_of(image: NamedImage) -> frozenset[str]:
    """Every repository an image has a tag or a digest in; unparsable names are
    skipped."""
    repositories = map(_repository_or_none, (*image.repo_tags, *image.repo_digests))
    return frozenset(filter(None, repositories))


def sorted_repositories(image: NamedImage) -> Sequence[str]:
    """`repositories_of`, sorted."""
    names = image.repo_tags + image.repo_digests
    if len(names) == 1:  # most images: nothing to sort, no set to build
        repository = _repository_or_none(names[0])
        return () if repository is None else (repository,)
    return sorted(repositories_of(image))


def _is_domain(component: str) -> bool:
    # As Docker reads it: paths are lower case, so upper case means a host too.
    return (
        "." in component
        or ":" in component
        or component == "localhost"
        or component != component.lower()
    )


def _has_glob(text: str) -> bool:
    return _GLOB.search(text) is not None


def _split(text: str, *, kind: str) -> tuple[str, str | None, str | None]:
    """(name, tag, digest) of a reference or pattern; only the name is checked."""
    name, at, digest = text.partition("@")
    tag = None
    colon = name.rfind(":")
    if colon > name.rfind("/"):
        name, tag = name[:colon], name[colon + 1 :]
    if not name or "" in name.split("/"):
        raise ValueError(f"invalid {kind} {text!r}: empty name component")
    return name, tag, digest if at else None


def _qualify(name: str) -> str:
    """Add the default domain (and "library/" for official images) to a name."""
    first, slash, rest = name.partition("/")
    domain, path = (first, rest) if slash and _is_domain(first) else (DEFAULT_DOMAIN, name)
    if domain == _LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    # A leading "*" already spans "library/": "docker.io/*" means all of Docker Hub.
    if domain == DEFAULT_DOMAIN and "/" not in path and not path.startswith("*"):
        path = f"{_OFFICIAL_NAMESPACE}/{path}"
    return f"{domain}/{path}"


# Runtimes list the same few thousand names on every run; parsing each once keeps
# planning 10,000 images well inside its time budget.
@functools.lru_cache(maxsize=65_536)
def _parse(reference: str) -> _Reference:
    if not reference or _WHITESPACE.search(reference):
        raise ValueError(f"invalid image reference {reference!r}: empty or contains whitespace")
    name, tag, digest = _split(reference, kind="image reference")
    if tag is not None and not _TAG.fullmatch(tag):
        raise ValueError(f"invalid image reference {reference!r}: bad tag {tag!r}")
    if digest is not None and not _DIGEST.fullmatch(digest):
        raise ValueError(f"invalid image reference {reference!r}: bad digest {digest!r}")
    if tag is None and digest is None:
        tag = DEFAULT_TAG
    return _Reference(_qualify(name), tag, digest)


def _familiar(normalized: str) -> str:
    """What `docker images` shows: Docker Hub names without domain and "library/"."""
    for prefix in (f"{DEFAULT_DOMAIN}/{_OFFICIAL_NAMESPACE}/", f"{DEFAULT_DOMAIN}/"):
        if normalized.startswith(prefix):
            return normalized.removeprefix(prefix)
    return normalized


# A runtime's names that do not parse are met on every run too: unlike _parse, this
# caches them (as None).
@functools.lru_cache(maxsize=65_536)
def _parsed_or_none(name: str) -> _Reference | None:
    try:
        return _parse(name)
    except ValueError:
        return None


@functools.lru_cache(maxsize=65_536)
def _normalized_or_raw(name: str) -> str:
    reference = _parsed_or_none(name)
    return name if reference is None else reference.text


@functools.lru_cache(maxsize=65_536)
def _repository_or_none(name: str) -> str | None:
    reference = _parsed_or_none(name)
    return None if reference is None else reference.repository


def _qualified_id(image_id: str) -> str:
    """CRI-O reports image IDs without the "sha256:" prefix containerd uses."""
    return _ID_ALGORITHM + image_id if _BARE_ID.fullmatch(image_id) else image_id


@dataclasses.dataclass(frozen=True, slots=True)
class Pattern:
    """A glob over image names, normalised like a reference.

    "nginx" matches docker.io/library/nginx:latest only; "myorg/*" every tag of
    every docker.io/myorg repository; "registry.k8s.io/*" a whole registry;
    "docker.io/library/nginx:*" every nginx tag; "*pause*" any name containing
    "pause"; "sha256:ab12*" image IDs and manifest digests. `*` also spans "/".
    """

    source: str
    glob: str = dataclasses.field(init=False)
    # fnmatchcase's own translation, compiled once: patterns meet every name of
    # every image on each run.
    _regex: re.Pattern[str] = dataclasses.field(init=False, repr=False, compare=False)
    # No domain was added ("*pause*", "ngin*"): also tried against familiar names,
    # so "nginx*" matches docker.io/library/nginx:1 as a user would expect.
    _domainless: bool = dataclasses.field(init=False, repr=False)

    def __post_init__(self) -> None:
        _check_pattern_text(self.source)
        # "sha256:..." names IDs and manifest digests: nothing to normalise.
        if self.source.startswith(_ID_ALGORITHM):
            if not _DIGEST_PATTERN.fullmatch(self.source):
                raise ValueError(
                    f"invalid image pattern {self.source!r}: after 'sha256:' only hex "
                    "digits and the wildcards * and ? may follow"
                )
            glob, domainless = self.source.lower(), False
            _check_can_match(glob, reference_syntax.IDS)
        else:
            glob, domainless = _normalize_pattern(self.source)
            _check_can_match(self.source, reference_syntax.REFERENCES)
        object.__setattr__(self, "glob", glob)
        object.__setattr__(self, "_regex", re.compile(fnmatch.translate(glob)))
        object.__setattr__(self, "_domainless", domainless)

    def __str__(self) -> str:
        return self.source

    def matches(self, image: NamedImage) -> bool:
        """True when the pattern matches any tag, repo digest or the ID of `image`."""
        return self.matches_names(image_names(image))

    def matches_names(self, names: Sequence[str]) -> bool:
        """Like `matches`, given `image_names(image)`, which callers judging many
        patterns compute once per image."""
        match = self._regex.match
        if any(map(match, names)):
            return True
        return self._domainless and any(match(_familiar(name)) for name in names)


@dataclasses.dataclass(frozen=True, slots=True)
class PatternSet:
    """Several patterns judged together, fast for an image that matches none (the
    common case): most patterns start with a registry, matched literally, so one
    regular expression of those literal prefixes rules them all out; the domainless
    rest are joined into one regular expression, which also tries familiar names."""

    patterns: tuple[Pattern, ...]
    # The literal text before each prefixed pattern's first wildcard, as one
    # alternation (a regex tells a name's first character from all of them at once).
    _prefixes: re.Pattern[str] | None = dataclasses.field(init=False, repr=False, compare=False)
    # For the domainless patterns (None if there are none): the text each must
    # contain (its longest run without a glob), as one alternation, since a
    # substring search is far cheaper than the patterns' backtracking over "*";
    # then the patterns themselves, joined.
    _unprefixed: tuple[re.Pattern[str], re.Pattern[str]] | None = dataclasses.field(
        init=False, repr=False, compare=False
    )
    # The same literals, to find in a ListingNames' text: a prefix after a newline,
    # a needle anywhere. None when one is empty (then every image is a candidate).
    _scans: tuple[re.Pattern[str], ...] | None = dataclasses.field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        prefixes = [_GLOB.split(p.glob)[0] for p in self.patterns if not p._domainless]
        unprefixed = [p for p in self.patterns if p._domainless]
        # fnmatch's translations are anchored groups ("(?s:...)\Z"), so joined
        # they still match whole names only.
        union = "|".join(p._regex.pattern for p in unprefixed)
        both = None
        needles = [max(_GLOB.split(p.glob), key=len) for p in unprefixed]
        if union:
            # Domainless patterns also meet familiar names, which differ from the
            # normalised ones only on Docker Hub: what follows "docker.io/library/",
            # else "docker.io/".
            hub, library = re.escape(f"{DEFAULT_DOMAIN}/"), re.escape(f"{_OFFICIAL_NAMESPACE}/")
            regex = re.compile(f"{union}|{hub}(?:{library}(?:{union})|(?!{library})(?:{union}))")
            # An empty needle ("*") is in every name: then only the regex can tell.
            both = (_literals(needles), regex)
        scans = None
        if "" not in prefixes and "" not in needles:
            scans = tuple(
                _literals(literals, after=after)
                for literals, after in ((prefixes, _NAME_SEPARATOR), (needles, ""))
                if literals
            )
        object.__setattr__(self, "_prefixes", _literals(prefixes) if prefixes else None)
        object.__setattr__(self, "_unprefixed", both)
        object.__setattr__(self, "_scans", scans)

    def first_match(self, names: Sequence[str]) -> Pattern | None:
        """The first pattern that matches `names` (from `image_names`), if any."""
        prefixes, unprefixed = self._prefixes, self._unprefixed
        maybe = prefixes is not None and any(map(prefixes.match, names))
        # A familiar name is the end of a normalised one, so a needle missing from
        # every name rules the domainless patterns out.
        if not maybe and unprefixed is not None and any(map(unprefixed[0].search, names)):
            maybe = any(map(unprefixed[1].match, names))
        if not maybe:
            return None
        return next((p for p in self.patterns if p.matches_names(names)), None)

    def first_matches(self, listing: ListingNames) -> dict[int, Pattern]:
        """`first_match` for every image of a listing: position -> first pattern,
        for the images that match one. One scan of the listing's text for each
        kind of literal rules most images out, instead of a test per name."""
        if not self.patterns:
            return {}
        candidates: Iterable[int] = range(len(listing.names))
        if self._scans is not None and listing.scannable:
            candidates = sorted(
                {
                    image
                    for scan in self._scans
                    for image in listing.images_at(m.start() for m in scan.finditer(listing.text))
                }
            )
        found = {}
        for position in candidates:
            pattern = self.first_match(listing.names[position])
            if pattern is not None:
                found[position] = pattern
        return found


def _literals(texts: Sequence[str], *, after: str = "") -> re.Pattern[str]:
    """One regular expression for any of `texts`, each after `after`."""
    return re.compile(re.escape(after) + "(?:" + "|".join(map(re.escape, texts)) + ")")


_NAME_SEPARATOR = "\n"


@dataclasses.dataclass(frozen=True, slots=True)
class ListingNames:
    """The names of every image of a listing (each from `image_names`), also as one
    text, each name after a newline: a regular expression scans that text in C, a
    test per name costs an interpreter step."""

    names: Sequence[Sequence[str]]
    text: str = dataclasses.field(init=False)
    # False when a name holds a newline itself (a runtime's unparsable name): the
    # count of newlines would no longer tell which name an offset is in.
    scannable: bool = dataclasses.field(init=False)
    _ends: list[int] = dataclasses.field(init=False, repr=False)  # names up to each image

    def __post_init__(self) -> None:
        ends = list(itertools.accumulate(map(len, self.names), initial=0))
        # A separator before every name, "" joined first.
        text = _NAME_SEPARATOR.join(itertools.chain(("",), *self.names))
        object.__setattr__(self, "text", text)
        object.__setattr__(self, "scannable", text.count(_NAME_SEPARATOR) == ends[-1])
        object.__setattr__(self, "_ends", ends[1:])

    def images_at(self, offsets: Iterable[int]) -> Iterator[int]:
        """The position of the image whose name holds each offset of `text` (a name's
        leading newline counts as its own); offsets ascending."""
        name, counted = -1, 0
        for offset in offsets:
            name += self.text.count(_NAME_SEPARATOR, counted, offset + 1)
            counted = offset + 1
            yield bisect.bisect_right(self._ends, name)


def _check_pattern_text(text: str) -> None:
    if not text:
        raise ValueError("image pattern must not be empty")
    if any(c.isspace() for c in text):
        raise ValueError(f"invalid image pattern {text!r}: must not contain whitespace")
    if len(text) > MAX_PATTERN_LENGTH:
        raise ValueError(
            f"invalid image pattern {text[:40]!r}...: {len(text)} characters, "
            f"at most {MAX_PATTERN_LENGTH} allowed"
        )
    if not _PATTERN_CHARS.fullmatch(text):
        raise ValueError(
            f"invalid image pattern {text!r}: only image reference characters and the "
            "wildcards * and ? are allowed"
        )


def _check_can_match(text: str, language: reference_syntax.Language) -> None:
    """Refuse a pattern no image name can match: as an exclude it would protect
    nothing, silently."""
    position = language.first_impossible(text)
    if position is None:
        return
    ids = language is reference_syntax.IDS
    if position < len(text):
        character = text[position]
        if character.isupper() and not ids:
            reason = f"upper case in {text[: position + 1]!r}: repository paths are lower case"
        elif position == 0:
            reason = f"no name starts with {character!r}"
        else:
            reason = f"{character!r} cannot follow {_tail(text[:position])!r}"
    elif text[-1] in ":@/":
        reason = f"nothing follows {text[-1]!r}"
    elif not ids and text != text.lower() and "@" not in text:
        # e.g. "Nginx": upper case would make it a registry host, with no path.
        reason = "upper case: repository paths are lower case"
    elif ids or "@" in text:
        reason = "a sha256 digest has 64 hex digits; end with * to match a prefix"
    else:
        reason = f"a name cannot end after {text!r}"
    raise ValueError(f"invalid image pattern {text!r}: no image name can match it ({reason})")


def _tail(text: str) -> str:
    return text if len(text) <= 40 else "..." + text[-37:]


def _normalize_pattern(text: str) -> tuple[str, bool]:
    """(glob, domainless): the pattern normalised like a reference, with no domain
    added when its first component is a glob and no ":latest" when its last is."""
    name, tag, digest = _split(text, kind="image pattern")
    domainless = _has_glob(name.partition("/")[0])
    repository = name if domainless else _qualify(name)
    if tag is None and digest is None and not _has_glob(name.rpartition("/")[2]):
        tag = DEFAULT_TAG
    return _Reference(repository, tag, digest).text, domainless


@dataclasses.dataclass(frozen=True, slots=True)
class ReferenceIndex(Generic[_Referrer]):
    """Who names which image: references (a container's image and image ID, the
    runtime's sandbox image) indexed under every form they can take. Built once per
    listing; each image is then judged with a few dictionary reads.

    A reference names an image when they share a key: the image ID (with or without
    "sha256:"), a normalised tag or digest reference, or a bare manifest digest. The
    last also matches an image that carries the same digest under another repository
    name: the content is the same, and over-matching here can only make an image
    count as used, never as unused.
    """

    # key -> (position in the input, referrer), in input order
    _referrers: Mapping[str, Sequence[tuple[int, _Referrer]]]

    @classmethod
    def of(cls, references: Iterable[tuple[str, _Referrer]]) -> ReferenceIndex[_Referrer]:
        """From (reference, referrer) pairs, e.g. (container.image, container)."""
        referrers: dict[str, list[tuple[int, _Referrer]]] = {}
        for position, (text, referrer) in enumerate(references):
            for key in _keys_of_reference(text):
                referrers.setdefault(key, []).append((position, referrer))
        return cls(referrers)

    def __bool__(self) -> bool:
        """Whether any reference was indexed."""
        return bool(self._referrers)

    def referrers(self, names: Sequence[str]) -> tuple[_Referrer, ...]:
        """Referrers of the image with `names` (from `image_names`), each once, in
        the order they were indexed."""
        if self._referrers.keys().isdisjoint(names):
            return ()  # the common case, decided in C
        get = self._referrers.get
        found = [entry for name in names for entry in get(name, ())]
        # Told apart by identity first: most images have one referrer, and hashing
        # one (a container: all its fields) costs more than the rest of the lookup.
        if len({id(referrer) for _, referrer in found}) == 1:
            return (found[0][1],)
        found.sort(key=_POSITION)
        return tuple(dict.fromkeys([referrer for _, referrer in found]))


_POSITION = operator.itemgetter(0)  # of an entry: only positions are ordered


# Containers name the same few references on every run, and an image ID (most
# containers' image_ref) does not parse: _parse caches no failure, so cache here.
@functools.lru_cache(maxsize=65_536)
def _keys_of_reference(text: str) -> frozenset[str]:
    if not text:
        return frozenset()
    keys = {text, _qualified_id(text)}
    try:
        reference = _parse(text)
    except ValueError:
        return frozenset(keys)
    keys.add(reference.text)
    if reference.digest is not None:
        keys.add(reference.digest)
        keys.add(f"{reference.repository}@{reference.digest}")
    if reference.tag is not None:
        keys.add(f"{reference.repository}:{reference.tag}")
    return frozenset(keys)
