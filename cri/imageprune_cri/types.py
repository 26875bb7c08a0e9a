"""Plain values the CRI client returns: our own types, never protobuf messages."""

from __future__ import annotations

import dataclasses
import datetime
import enum


@dataclasses.dataclass(frozen=True, slots=True)
class Image:
    """One image as the runtime lists it. `id` is the image (config) digest."""

    id: str
    repo_tags: tuple[str, ...] = ()
    repo_digests: tuple[str, ...] = ()
    size: int = 0
    pinned: bool = False
    # The CRI Image message has no creation time; it is filled from the image
    # config (ImageStatus verbose) when the caller asks for it, else None.
    created_at: datetime.datetime | None = None

    @property
    def dangling(self) -> bool:
        """Untagged: no name points at this image any more."""
        return not self.repo_tags


class ContainerState(enum.Enum):
    CREATED = "created"
    RUNNING = "running"
    EXITED = "exited"
    UNKNOWN = "unknown"


@dataclasses.dataclass(frozen=True, slots=True)
class Container:
    """A container in any state. `image_ref` is the image ID the runtime resolved;
    `image` is the reference the container was created with (a tag or an ID)."""

    id: str
    name: str
    pod_sandbox_id: str
    image: str
    image_ref: str
    state: ContainerState
    created_at: datetime.datetime


@dataclasses.dataclass(frozen=True, slots=True)
class PodSandbox:
    id: str


@dataclasses.dataclass(frozen=True, slots=True)
class RuntimeVersion:
    runtime_name: str
    runtime_version: str
    runtime_api_version: str


@dataclasses.dataclass(frozen=True, slots=True)
class RuntimeStatus:
    # The pod sandbox (pause) image the runtime is configured with, when it says
    # (containerd: Status verbose info "config" -> "sandboxImage"); else None.
    sandbox_image: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class FilesystemUsage:
    """Usage of one image filesystem. The CRI reports no capacity: callers get
    it from statvfs on `mountpoint`."""

    mountpoint: str
    used_bytes: int
    inodes_used: int
    timestamp: datetime.datetime
