"""Which containers use which image: one answer for the planner, the usage records
and the executor's last-moment re-check.

A container names its image two ways: `image_ref` (containerd: the image ID; CRI-O:
often a repo digest) and `image` (whatever it was created with: a tag, digest
reference or ID). Either counts, matched against every name an image has, so an
image with several tags, one of them in use, is in use.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from imageprune.policy import references
from imageprune_cri.types import Container, ContainerState, Image

Index = references.ReferenceIndex[Container]

# Running ones first, as the likeliest to matter to a reader.
_STATE_ORDER = {
    ContainerState.RUNNING: 0,
    ContainerState.CREATED: 1,
    ContainerState.UNKNOWN: 2,
    ContainerState.EXITED: 3,
}
_SHOWN = 3


def index(containers: Iterable[Container]) -> Index:
    """Containers (any state) by every reference they make to an image. Sorted by
    state then name, so descriptions read the same whatever order the runtime lists."""
    ordered = sorted(containers, key=lambda c: (_STATE_ORDER[c.state], c.name, c.id))
    return references.ReferenceIndex.of(
        (reference, container)
        for container in ordered
        for reference in (container.image_ref, container.image)
    )


def of_image(image: Image, in_use: Index) -> tuple[Container, ...]:
    return in_use.referrers(references.image_names(image))


def label(container: Container) -> str:
    return container.name or container.id


def describe(containers: Sequence[Container]) -> str:
    """'used by 2 containers: web (running), job (exited)'."""
    shown = ", ".join(f"{label(c)} ({c.state.value})" for c in containers[:_SHOWN])
    if (more := len(containers) - _SHOWN) > 0:
        shown += f" and {more} more"
    noun = "container" if len(containers) == 1 else "containers"
    return f"used by {len(containers)} {noun}: {shown}"
