"""Every relative link in the README and the docs leads to a file of the repository, and
every `#anchor` to a heading of that file (as GitHub makes anchors of headings)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from testkit import docblocks

pytestmark = pytest.mark.unit

_LINK = re.compile(r"\]\(([^)\s]+)\)")
_FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)


def anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation but - and _ dropped, spaces -."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = _FENCE.sub("", path.read_text())
    return {anchor(h) for h in re.findall(r"^#+ (.+)$", text, re.MULTILINE)}


def links() -> list[tuple[Path, str]]:
    found = []
    for doc in docblocks.DOCS:
        for target in _LINK.findall(_FENCE.sub("", doc.read_text())):
            if not re.match(r"[a-z]+:", target):  # not http:, mailto:
                found.append((doc, target))
    return found


def test_anchors_are_made_like_githubs() -> None:
    assert anchor("How the CRDs are upgraded, and why this way") == (
        "how-the-crds-are-upgraded-and-why-this-way"
    )
    assert anchor("Next to kubelet's image GC") == "next-to-kubelets-image-gc"
    assert anchor("The report (`-o json`)") == "the-report--o-json"


@pytest.mark.parametrize(
    ("doc", "target"), links(), ids=lambda v: v if isinstance(v, str) else v.name
)
def test_link_resolves(doc: Path, target: str) -> None:
    path, _, fragment = target.partition("#")
    file = (doc.parent / path).resolve() if path else doc
    if not file.exists():
        # Pages other branches write (the plugin's, the demo's) may land after this one.
        assert file.name in docblocks.NOT_CHECKED_HERE, f"{doc.name}: {target}: no such file"
        return
    if fragment:
        assert fragment in anchors(file), f"{doc.name}: {target}: no such heading"
