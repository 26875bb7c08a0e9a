"""When each image on this node was first seen and last used, kept across runs.

The runtime records neither, and kubelet keeps its own in memory only (a restart
resets every age clock: kubernetes #119642, #123343), so "unused for 7d" needs a
file of our own. Losing it is safe: every image then counts as first seen now.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import logging
import os
import pathlib
import tempfile
from collections.abc import Mapping, Sequence

from imageprune.node import users
from imageprune.policy import references
from imageprune_cri.types import Container, Image

log = logging.getLogger("imageprune.usage")

FORMAT_VERSION = 1
_DIRECTORY_MODE = 0o755
_FILE_MODE = 0o644


@dataclasses.dataclass(frozen=True, slots=True)
class UsageRecord:
    first_seen: datetime.datetime
    last_used: datetime.datetime | None  # None: never seen used by a container


@dataclasses.dataclass(frozen=True, slots=True)
class UsageStore:
    """A JSON file of usage records per image ID, replaced atomically on save."""

    path: pathlib.Path

    def load(self) -> dict[str, UsageRecord]:
        """The saved records; empty when the file is missing, unreadable, corrupt or
        of another version (logged). Never raises: planning must go on, and empty
        records are the conservative answer."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except (OSError, UnicodeDecodeError) as error:
            log.warning("cannot read usage records %s, starting afresh: %s", self.path, error)
            return {}
        try:
            return _decode(json.loads(text))
        except (ValueError, TypeError, KeyError, RecursionError) as error:
            log.warning("ignoring corrupt usage records %s: %s", self.path, error)
            return {}

    def save(self, records: Mapping[str, UsageRecord]) -> None:
        """Write all records: to a temporary file next to the target, fsynced, then
        renamed over it, so readers and crashes see the old or the new file, never a
        partial one. Raises OSError when that fails (the old file is left as is)."""
        _make_directories(self.path.parent)
        payload = json.dumps(_encode(records), indent=1, sort_keys=True).encode()
        fd, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        try:
            with os.fdopen(fd, "wb") as file:
                os.fchmod(file.fileno(), _FILE_MODE)
                file.write(payload)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise
        _fsync_directory(self.path.parent)


def observe(
    records: Mapping[str, UsageRecord],
    *,
    images: Sequence[Image],
    containers: Sequence[Container],
    now: datetime.datetime,
) -> dict[str, UsageRecord]:
    """Records updated with one look at the node: every listed image has been seen
    (first_seen kept, or now), every image a container in any state uses is used
    now, and images no longer listed are forgotten."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    now = now.astimezone(datetime.UTC)
    in_use = users.index(containers)
    updated = {}
    for image in images:
        previous = records.get(image.id)
        used = bool(in_use.referrers(references.image_names(image)))
        updated[image.id] = UsageRecord(
            first_seen=previous.first_seen if previous else now,
            last_used=now if used else (previous.last_used if previous else None),
        )
    return updated


def _make_directories(directory: pathlib.Path) -> None:
    # pathlib and os.makedirs give missing parents default permissions, not ours.
    missing = [d for d in (directory, *directory.parents) if not d.exists()]
    for each in reversed(missing):
        each.mkdir(mode=_DIRECTORY_MODE, exist_ok=True)


def _fsync_directory(directory: pathlib.Path) -> None:
    """Make the rename itself durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _timestamp(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).isoformat()


def _moment(text: object) -> datetime.datetime:
    if not isinstance(text, str):
        raise TypeError(f"timestamp must be a string, not {type(text).__name__}")
    moment = datetime.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no timezone")
    return moment.astimezone(datetime.UTC)


def _encode(records: Mapping[str, UsageRecord]) -> dict[str, object]:
    return {
        "version": FORMAT_VERSION,
        "images": {
            image_id: {
                "firstSeen": _timestamp(record.first_seen),
                "lastUsed": _timestamp(record.last_used) if record.last_used else None,
            }
            for image_id, record in records.items()
        },
    }


def _decode(document: object) -> dict[str, UsageRecord]:
    if not isinstance(document, dict):
        raise TypeError("not a JSON object")
    if document.get("version") != FORMAT_VERSION:
        raise ValueError(f"version {document.get('version')!r}, expected {FORMAT_VERSION}")
    images = document["images"]
    if not isinstance(images, dict):
        raise TypeError("images must be an object")
    records = {}
    for image_id, entry in images.items():
        last_used = entry["lastUsed"]
        records[image_id] = UsageRecord(
            first_seen=_moment(entry["firstSeen"]),
            last_used=None if last_used is None else _moment(last_used),
        )
    return records
