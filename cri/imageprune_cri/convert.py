"""Protobuf messages -> our value types. Kept apart from the client so the mapping
can be unit-tested without a runtime."""

from __future__ import annotations

import datetime
import json

from imageprune_cri import types
from imageprune_cri._pb import api_pb2

_CONTAINER_STATES = {
    api_pb2.CONTAINER_CREATED: types.ContainerState.CREATED,
    api_pb2.CONTAINER_RUNNING: types.ContainerState.RUNNING,
    api_pb2.CONTAINER_EXITED: types.ContainerState.EXITED,
    api_pb2.CONTAINER_UNKNOWN: types.ContainerState.UNKNOWN,
}


def from_nanos(nanos: int) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(nanos / 1e9, tz=datetime.UTC)


def image(msg: api_pb2.Image, *, created_at: datetime.datetime | None = None) -> types.Image:
    return types.Image(
        id=msg.id,
        repo_tags=tuple(msg.repo_tags),
        repo_digests=tuple(msg.repo_digests),
        size=msg.size,
        pinned=msg.pinned,
        created_at=created_at,
    )


def container(msg: api_pb2.Container) -> types.Container:
    return types.Container(
        id=msg.id,
        name=msg.metadata.name,
        pod_sandbox_id=msg.pod_sandbox_id,
        image=msg.image.image,
        image_ref=msg.image_ref,
        # An unknown enum value from a newer runtime is still a container: keep its image.
        state=_CONTAINER_STATES.get(msg.state, types.ContainerState.UNKNOWN),
        created_at=from_nanos(msg.created_at),
    )


def sandbox_image(info: dict[str, str]) -> str | None:
    """The sandbox image from a verbose Status' info. containerd reports its CRI
    config as JSON under "config" with the key "sandboxImage" (1.x and 2.x);
    other runtimes may not say, which callers must treat as unknown."""
    try:
        config = json.loads(info.get("config", "{}"))
    except ValueError:
        return None
    value = config.get("sandboxImage") if isinstance(config, dict) else None
    return value if isinstance(value, str) and value else None


def sandbox_status_image(info: dict[str, str]) -> str | None:
    """The image a pod sandbox runs, from a verbose PodSandboxStatus' info:
    containerd (1.x and 2.x) reports it as JSON under "info" -> "image"."""
    try:
        value = json.loads(info.get("info", "{}")).get("image")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) and value else None


def created_at(info: dict[str, str]) -> datetime.datetime | None:
    """The image's creation time from a verbose ImageStatus' info: containerd puts
    the image config under "info" -> "imageSpec" -> "created". None when absent."""
    try:
        doc = json.loads(info.get("info", "{}"))
        created = doc["imageSpec"]["created"]
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(created, str):
        return None
    try:
        parsed = datetime.datetime.fromisoformat(created)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.UTC)
    # The zero time ("0001-01-01T00:00:00Z") means "not recorded".
    return None if parsed.year <= 1 else parsed


def filesystem(msg: api_pb2.FilesystemUsage) -> types.FilesystemUsage:
    return types.FilesystemUsage(
        mountpoint=msg.fs_id.mountpoint,
        used_bytes=msg.used_bytes.value,
        inodes_used=msg.inodes_used.value,
        timestamp=from_nanos(msg.timestamp),
    )
