"""The fenced code blocks of the README and the docs, for the tests that check what the
docs show. docs/benchmarks.md, docs/plugin.md and docs/demo.md are left to their owners'
suites, which test the tools those pages show."""

from __future__ import annotations

import dataclasses
import re
import textwrap
from collections.abc import Iterator
from pathlib import Path

from testkit.binaries import REPO_ROOT

NOT_CHECKED_HERE = {"benchmarks.md", "plugin.md", "demo.md"}
DOCS = [
    REPO_ROOT / "README.md",
    *(p for p in sorted((REPO_ROOT / "docs").glob("*.md")) if p.name not in NOT_CHECKED_HERE),
]
# Fences may be indented (a block inside a list item); the block's text is dedented.
_FENCE = re.compile(r"^( *)```(\w*)\n(.*?)^\1```", re.MULTILINE | re.DOTALL)


@dataclasses.dataclass(frozen=True)
class Block:
    where: str  # file:line of the opening fence
    lang: str
    text: str


def blocks(docs: list[Path] = DOCS) -> Iterator[Block]:
    for doc in docs:
        text = doc.read_text()
        for match in _FENCE.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            yield Block(f"{doc.name}:{line}", match.group(2), textwrap.dedent(match.group(3)))
