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

from imageprune import files
from imageprune.node import users
from imageprune.policy import references
from imageprune_cri.types import Container, Image

log = logging.getLogger("imageprune.usage")

FORMAT_VERSION = 1
# About 150 bytes a record: hundreds of thousands of images; a file larger than
# this is not ours.
MAX_FILE_BYTES = 64 << 20
# Go's zero time (0001-01-01) means "unset", and no container runtime predates
# this; an earlier record would only make an image look long unused.
_EARLIEST = datetime.datetime(2010, 1, 1, tzinfo=datetime.UTC)
DIRECTORY_MODE = 0o755
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
        """The saved records. Never raises: planning must go on, and a missing
        record is the conservative answer (the image counts as first seen now). So
        a missing file gives none; an unreadable, oversized, corrupt or other-version
        file gives none with one warning; corrupt entries are dropped, with one
        warning for all of them."""
        try:
            content = files.read_regular_file(self.path, limit=MAX_FILE_BYTES)
        except FileNotFoundError:
            return {}
        except (OSError, files.FileRejected) as error:
            log.warning("cannot read usage records %s, starting afresh: %s", self.path, error)
            return {}
        try:
            images = _images(json.loads(content.decode("utf-8")))
        except (ValueError, RecursionError) as error:  # UnicodeDecodeError is a ValueError
            log.warning("ignoring corrupt usage records %s: %s", self.path, error)
            return {}
        records, problems = {}, []
        for image_id, entry in images.items():
            try:
                records[image_id] = _record(entry)
            except ValueError as error:
                problems.append(f"{image_id[:80]}: {error}")
        if problems:
            log.warning(
                "ignoring %d corrupt entries in usage records %s (those images count as "
                "first seen now), e.g. %s",
                len(problems),
                self.path,
                problems[0],
            )
        return records

    def save(self, records: Mapping[str, UsageRecord]) -> None:
        """Write all records: to a temporary file next to the target, fsynced, then
        renamed over it, so readers and crashes see the old or the new file, never a
        partial one. Raises OSError when that fails (the old file is left as is)."""
        files.make_directory(self.path.parent, mode=DIRECTORY_MODE)
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
        last_used = previous.last_used if previous else None
        # A time after now (the clock was set back) counts as now: it must never
        # make an image look unused for longer, nor stay in the future for good.
        updated[image.id] = UsageRecord(
            first_seen=min(previous.first_seen, now) if previous else now,
            last_used=now if used or (last_used is not None and last_used > now) else last_used,
        )
    return updated


def _fsync_directory(directory: pathlib.Path) -> None:
    """Make the rename itself durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _timestamp(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).isoformat()


def _moment(text: object, field: str) -> datetime.datetime:
    if not isinstance(text, str):
        raise ValueError(f"{field} must be a string, not {type(text).__name__}")
    shown = repr(text[:40]) + ("..." if len(text) > 40 else "")
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{field} {shown} is not a timestamp") from None
    if moment.tzinfo is None:
        raise ValueError(f"{field} {shown} has no timezone")
    try:
        moment = moment.astimezone(datetime.UTC)
    except OverflowError:  # far-off offsets near year 1 or 9999
        raise ValueError(f"{field} {shown} is out of range") from None
    if moment < _EARLIEST:
        raise ValueError(f"{field} {text!r} is before {_EARLIEST.year}")
    return moment


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


def _images(document: object) -> dict[str, object]:
    """The per-image entries of a records file, each still to be checked."""
    if not isinstance(document, dict):
        raise ValueError("not a JSON object")
    if document.get("version") != FORMAT_VERSION:
        version = repr(document.get("version"))[:40]
        raise ValueError(f"version {version}, expected {FORMAT_VERSION}")
    images = document.get("images")
    if not isinstance(images, dict):
        raise ValueError("images must be an object")
    return images


def _record(entry: object) -> UsageRecord:
    if not isinstance(entry, dict):
        raise ValueError("not an object")
    first_seen = _moment(entry.get("firstSeen"), "firstSeen")
    last_used_text = entry.get("lastUsed")
    last_used = None if last_used_text is None else _moment(last_used_text, "lastUsed")
    if last_used is not None and last_used < first_seen:
        # observe() never writes this; taken as is, the image would look unused
        # for longer than it has been here.
        raise ValueError("lastUsed is before firstSeen")
    return UsageRecord(first_seen=first_seen, last_used=last_used)
