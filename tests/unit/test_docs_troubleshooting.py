"""docs/troubleshooting.md explains every condition, failure, skip and Event reason that
the operator and the agent write, and names none they do not: the reasons are read from
the code itself, so a new one without a line in the doc fails here."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = [ROOT / "operator" / "imageprune" / name for name in ("agent", "cluster", "api")]
DOC = ROOT / "docs" / "troubleshooting.md"
# Enums whose values are reasons (agent/status.py, cluster/standing.py).
REASON_ENUMS = {"Reason", "Unable"}
# The condition statuses aggregate.py pairs with a reason: (status, reason, message).
STATUS_NAMES = {"_True", "_False", "_Unknown"}


def _constant(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _reasons(tree: ast.AST) -> Iterator[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name in REASON_ENUMS:
            for item in node.body:
                if isinstance(item, ast.Assign) and (value := _constant(item.value)):
                    yield value
        elif isinstance(node, ast.Call):
            yield from _call_reasons(node)
        elif isinstance(node, ast.For):
            yield from _unpacked_reasons(node)
        elif value := _fallback_reason(node) or _condition_reason(node):
            yield value


def _call_reasons(call: ast.Call) -> Iterator[str]:
    """`f(..., reason="X")` and `Event(warning, "X", message)`."""
    for keyword in call.keywords:
        if keyword.arg == "reason" and (value := _constant(keyword.value)):
            yield value
    callee = call.func
    name = callee.attr if isinstance(callee, ast.Attribute) else getattr(callee, "id", "")
    if name == "Event" and len(call.args) >= 2 and (value := _constant(call.args[1])):
        yield value


def _fallback_reason(node: ast.AST) -> str | None:
    """`view.reason or "Failed"`."""
    if not isinstance(node, ast.BoolOp) or not isinstance(node.values[0], ast.Attribute):
        return None
    return _constant(node.values[-1]) if node.values[0].attr == "reason" else None


def _condition_reason(node: ast.AST) -> str | None:
    """`(_False, "NodesFailed", message)`."""
    if not isinstance(node, ast.Tuple) or len(node.elts) != 3:
        return None
    status = node.elts[0]
    return _constant(node.elts[1]) if getattr(status, "id", None) in STATUS_NAMES else None


def _unpacked_reasons(loop: ast.For) -> Iterator[str]:
    """`for field, reason, verb in (("failedNodes", "NodeFailed", "failed"), ...)`."""
    if not isinstance(loop.target, ast.Tuple) or not isinstance(loop.iter, ast.Tuple | ast.List):
        return
    names = [getattr(element, "id", None) for element in loop.target.elts]
    if "reason" not in names:
        return
    at = names.index("reason")
    rows = [row.elts for row in loop.iter.elts if isinstance(row, ast.Tuple)]
    yield from (value for row in rows if len(row) == len(names) if (value := _constant(row[at])))


def code_reasons() -> set[str]:
    found: set[str] = set()
    for package in PACKAGES:
        for path in package.glob("*.py"):
            found.update(_reasons(ast.parse(path.read_text(), filename=str(path))))
    return found


def documented_reasons() -> set[str]:
    """The first cell of every table row under a heading, when it is one `Reason`."""
    cell = re.compile(r"^\| `([A-Z][A-Za-z]+)` \|", re.MULTILINE)
    return set(cell.findall(DOC.read_text()))


def test_the_harvest_finds_reasons_of_every_kind() -> None:
    # One of each source: a status enum, a skip enum, a keyword, an Event, a condition
    # tuple, a loop over Event reasons, a fallback.
    assert code_reasons() >= {
        "NodeSkipped",
        "Failed",
        "NodeBusy",
        "AgentNotRunning",
        "NodeTimeout",
        "RunNowIgnored",
        "RolloutPaused",
        "NoMatchingNodes",
        "DiskPressureRun",
    }


def test_every_reason_in_the_code_is_explained() -> None:
    missing = code_reasons() - documented_reasons()
    assert not missing, f"reasons missing from docs/troubleshooting.md: {sorted(missing)}"


def test_every_explained_reason_exists_in_the_code() -> None:
    stale = documented_reasons() - code_reasons()
    assert not stale, f"docs/troubleshooting.md explains reasons the code lacks: {sorted(stale)}"
