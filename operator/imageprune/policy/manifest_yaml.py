"""YAML documents of a policy manifest, read with bounds: a hostile file gets an
error naming the line, never a traceback, a crash or a wait of minutes.

PyYAML alone lets through: nesting deep enough to overflow the stack, aliases that
repeat a node exponentially ("billion laughs": the file is small, but anything
that walks the result is not), an alias inside its own anchor (a cycle), integers
too long for int() (CPython's own error text would reach the user), dates that
datetime refuses, a key given twice (the first value silently lost), and enough
nodes to keep it busy for minutes (about 20 us a node with libyaml, ten times that
without). So the events are checked first, and only a document within the bounds
is built. Timestamps stay strings, as Kubernetes reads them.
"""

from __future__ import annotations

from typing import Any

# PyYAML is imported by the policy package here only: the rest is stdlib-only.
import yaml

try:
    from yaml import CSafeLoader as _SafeLoader
except ImportError:  # PyYAML built without libyaml: the same, slower
    from yaml import SafeLoader as _SafeLoader  # type: ignore[assignment]

MAX_DEPTH = 100  # Kubernetes objects nest a few dozen levels at most
# Nodes in all documents, each alias counted as everything it repeats. A policy
# has dozens; a kubectl file with a few large ConfigMaps some thousands.
MAX_NODES = 100_000
MAX_NUMBER_LENGTH = 64  # characters; the largest count a policy takes has 19 digits


class YAMLProblem(ValueError):
    """Text that is not usable YAML; `where` is a line and column when known."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}")
        self.where = where
        self.problem = problem


def load_documents(text: str) -> list[object]:
    """Every document in `text`, as plain Python values."""
    try:
        _check_bounds(yaml.parse(text, Loader=_BoundedLoader))
        return list(yaml.load_all(text, Loader=_BoundedLoader))
    except yaml.MarkedYAMLError as error:
        where = "manifest"
        mark = error.problem_mark or error.context_mark
        if mark is not None:
            where = f"line {mark.line + 1}, column {mark.column + 1}"
        raise YAMLProblem(where, f"invalid YAML: {error.problem or error.context}") from None
    except yaml.YAMLError as error:
        raise YAMLProblem("manifest", f"invalid YAML: {error}") from None
    except (ValueError, OverflowError, RecursionError):
        # From a constructor we did not bound; its text may be CPython's own.
        raise YAMLProblem("manifest", "invalid YAML: a value cannot be read") from None


def _check_bounds(events: Any) -> None:
    """Depth, size with aliases expanded, and cycles, from the event stream alone
    (iterative: no recursion, whatever the nesting)."""
    total = 0
    open_collections: list[list[Any]] = []  # [anchor, size so far]
    anchors: dict[str, int | None] = {}  # name -> size; None while still open
    for event in events:
        if isinstance(event, yaml.DocumentStartEvent):
            anchors.clear()
        if isinstance(event, yaml.CollectionStartEvent):
            if len(open_collections) >= MAX_DEPTH:
                raise _error(event, f"nested more than {MAX_DEPTH} levels deep")
            if event.anchor is not None:
                anchors[event.anchor] = None
            open_collections.append([event.anchor, 1])
            total += 1
            size = 0  # counted in its parent when it ends
        elif isinstance(event, yaml.CollectionEndEvent):
            anchor, size = open_collections.pop()
            if anchor is not None:
                anchors[anchor] = size
        else:
            size = _size(event, anchors)
            total += size
        if total > MAX_NODES:
            raise _error(event, f"more than {MAX_NODES:,} values once aliases are expanded")
        if open_collections:
            open_collections[-1][1] += size


def _size(event: Any, anchors: dict[str, int | None]) -> int:
    """How many nodes a scalar or alias event stands for (0 for other events)."""
    if isinstance(event, yaml.ScalarEvent):
        if event.anchor is not None:
            anchors[event.anchor] = 1
        return 1
    if not isinstance(event, yaml.AliasEvent):
        return 0
    if event.anchor not in anchors:
        raise _error(event, f"found undefined alias {event.anchor!r}")
    repeated = anchors[event.anchor]
    if repeated is None:
        raise _error(event, "an alias refers to a node that contains it")
    return repeated


class _BoundedLoader(_SafeLoader):
    def construct_yaml_int(self, node: Any) -> Any:
        if len(node.value) > MAX_NUMBER_LENGTH:
            raise _error(node, f"number too long ({len(node.value):,} characters)")
        return super().construct_yaml_int(node)

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        # PyYAML keeps the last of two equal keys; a second `exclude:` would then
        # silently drop the first list's protection.
        seen = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                key = (key_node.tag, key_node.value)
                if key in seen:
                    raise _error(key_node, f"duplicate key {_short(key_node.value)!r}")
                seen.add(key)
        return super().construct_mapping(node, deep)

    def construct_timestamp_as_text(self, node: Any) -> Any:
        return self.construct_yaml_str(node)


_BoundedLoader.add_constructor("tag:yaml.org,2002:int", _BoundedLoader.construct_yaml_int)
_BoundedLoader.add_constructor(
    "tag:yaml.org,2002:timestamp", _BoundedLoader.construct_timestamp_as_text
)


def _short(text: str) -> str:
    return text if len(text) <= 60 else text[:57] + "..."


def _error(at: Any, problem: str) -> yaml.MarkedYAMLError:
    return yaml.MarkedYAMLError(problem=problem, problem_mark=at.start_mark)
