"""Can a glob match any image name at all?

An exclude pattern that can match nothing protects nothing, so patterns are
checked against the language of valid image names: the glob and an automaton of
that language read the pattern together, and it is refused when no name gets
through both. The check is exact, so `*` and `?` may stand anywhere, spanning "/",
":" and "@" as they do when matching.

The language (Docker's distribution/reference, which runtimes use for names):
    reference := [domain "/"] path ("/" path)* [":" tag] ["@" digest]
    domain    := host [":" port], where a host holds a "." or upper case, or is
                 followed by a port, or is "localhost"; hosts are letters, digits and
                 inner "-", in components joined by "."
    path      := [a-z0-9]+, joined by one of "." "_" "__" or a run of "-"
    tag       := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
    digest    := sha256:<64 hex> | sha384:<96 hex> | sha512:<128 hex>, hex lower case
An image ID or bare manifest digest is "sha256:<64 hex>".
"""

from __future__ import annotations

import functools
import itertools
import string
from collections.abc import Callable, Iterable

_LOWER = string.ascii_lowercase
_UPPER = string.ascii_uppercase
_DIGITS = string.digits
_HEX = "0123456789abcdef"
_ANY_STRING = "*"
_ANY_CHARACTER = "?"
# go-digest's registered algorithms and their hex lengths.
_DIGESTS = (("sha256", 64), ("sha384", 96), ("sha512", 128))


class _Automaton:
    """Nondeterministic: per state, edges (characters, next state) and empty moves."""

    def __init__(self) -> None:
        self.edges: list[list[tuple[frozenset[str], int]]] = []
        self.empty_moves: list[list[int]] = []

    def state(self) -> int:
        self.edges.append([])
        self.empty_moves.append([])
        return len(self.edges) - 1


# A builder adds a piece of the language to an automaton: (entry, exit) states.
_Builder = Callable[[_Automaton], tuple[int, int]]


def _chars(characters: str, *, least: int = 1, most: int | None = 1) -> _Builder:
    """From `least` to `most` (None: any number) characters of `characters`."""

    def build(automaton: _Automaton) -> tuple[int, int]:
        allowed = frozenset(characters)
        chain = [automaton.state() for _ in range((least if most is None else most) + 1)]
        for here, there in itertools.pairwise(chain):
            automaton.edges[here].append((allowed, there))
        if most is None:
            automaton.edges[chain[-1]].append((allowed, chain[-1]))
        exit_ = automaton.state()
        for count in range(least, len(chain)):
            automaton.empty_moves[chain[count]].append(exit_)
        return chain[0], exit_

    return build


def _sequence(*parts: _Builder) -> _Builder:
    def build(automaton: _Automaton) -> tuple[int, int]:
        pieces = [part(automaton) for part in parts]
        for (_, exit_), (entry, _) in itertools.pairwise(pieces):
            automaton.empty_moves[exit_].append(entry)
        return pieces[0][0], pieces[-1][1]

    return build


def _text(literal: str) -> _Builder:
    return _sequence(*(_chars(c) for c in literal))


def _either(*parts: _Builder) -> _Builder:
    def build(automaton: _Automaton) -> tuple[int, int]:
        entry, exit_ = automaton.state(), automaton.state()
        for part in parts:
            start, end = part(automaton)
            automaton.empty_moves[entry].append(start)
            automaton.empty_moves[end].append(exit_)
        return entry, exit_

    return build


def _optional(part: _Builder) -> _Builder:
    return _either(part, _chars("", least=0, most=0))


def _any_number(part: _Builder, *, least: int = 0) -> _Builder:
    """`part` repeated, at least `least` (0 or 1) times."""

    def build(automaton: _Automaton) -> tuple[int, int]:
        entry, exit_ = automaton.state(), automaton.state()
        start, end = part(automaton)
        automaton.empty_moves[entry].append(start)
        automaton.empty_moves[end].extend((start, exit_))
        if least == 0:
            automaton.empty_moves[entry].append(exit_)
        return entry, exit_

    return build


def _reference() -> _Builder:
    alnum = _LOWER + _UPPER + _DIGITS

    def host_component(*, upper: bool) -> _Builder:
        """Letters, digits and inner "-"; with `upper`, only those holding upper case."""
        inner = _chars(alnum + "-", least=0, most=None)
        if not upper:
            return _either(_chars(alnum), _sequence(_chars(alnum), inner, _chars(alnum)))
        return _either(
            _sequence(_chars(_UPPER), _optional(_sequence(inner, _chars(alnum)))),
            _sequence(_chars(alnum), inner, _chars(_UPPER)),
            _sequence(_chars(alnum), inner, _chars(_UPPER), inner, _chars(alnum)),
        )

    def port() -> _Builder:
        return _sequence(_text(":"), _chars(_DIGITS, most=None))

    domain = _either(
        _sequence(
            host_component(upper=False),
            _any_number(_sequence(_text("."), host_component(upper=False)), least=1),
            _optional(port()),
        ),
        _sequence(host_component(upper=False), port()),
        _sequence(host_component(upper=True), _optional(port())),
        _sequence(_text("localhost"), _optional(port())),
    )

    def path() -> _Builder:
        def run() -> _Builder:
            return _chars(_LOWER + _DIGITS, most=None)

        separator = _either(_text("."), _text("_"), _text("__"), _chars("-", most=None))
        return _sequence(run(), _any_number(_sequence(separator, run())))

    name = _sequence(
        _optional(_sequence(domain, _text("/"))),
        path(),
        _any_number(_sequence(_text("/"), path())),
    )
    word = alnum + "_"
    tag = _sequence(_chars(word), _chars(word + ".-", least=0, most=127))
    digest = _either(*(_digest(algorithm, length) for algorithm, length in _DIGESTS))
    return _sequence(
        name, _optional(_sequence(_text(":"), tag)), _optional(_sequence(_text("@"), digest))
    )


def _digest(algorithm: str, length: int) -> _Builder:
    return _sequence(_text(f"{algorithm}:"), _chars(_HEX, least=length, most=length))


class Language:
    """A compiled automaton and its state sets, cached: patterns repeat."""

    def __init__(self, builder: _Builder) -> None:
        automaton = _Automaton()
        entry, self._exit = builder(automaton)
        self._edges = automaton.edges
        self._closures = [self._close(automaton, {s}) for s in range(len(automaton.edges))]
        self._start = self._closures[entry]

    @staticmethod
    def _close(automaton: _Automaton, states: Iterable[int]) -> frozenset[int]:
        seen = set(states)
        todo = list(seen)
        while todo:
            for following in automaton.empty_moves[todo.pop()]:
                if following not in seen:
                    seen.add(following)
                    todo.append(following)
        return frozenset(seen)

    def first_impossible(self, glob: str) -> int | None:
        """None when some string in the language matches `glob`; else the position
        in `glob` where every way failed (len(glob): it cannot end there)."""
        states = self._start
        for position, token in enumerate(glob):
            states = self._step(states, token)
            if not states:
                return position
        return None if self._exit in states else len(glob)

    @functools.lru_cache(maxsize=4096)  # noqa: B019 (two module-level instances)
    def _step(self, states: frozenset[int], token: str) -> frozenset[int]:
        if token == _ANY_STRING:
            reached = set(states)
            todo = list(states)
            while todo:
                for _, following in self._edges[todo.pop()]:
                    for state in self._closures[following]:
                        if state not in reached:
                            reached.add(state)
                            todo.append(state)
            return frozenset(reached)
        moved: set[int] = set()
        for state in states:
            for allowed, following in self._edges[state]:
                if token == _ANY_CHARACTER or token in allowed:
                    moved |= self._closures[following]
        return frozenset(moved)


REFERENCES = Language(_reference())
IDS = Language(_digest("sha256", 64))
