"""List, then watch, for ever: what an informer does, for one collection.

The watch resumes from the last resourceVersion it saw (bookmarks keep it fresh while
nothing changes), so reconnects cost no re-list; only a 410 Gone, meaning that version
has been compacted away, lists again. Every failure is logged with its retry delay:
the loop never hangs silently."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from imageprune.kube.backoff import Backoff
from imageprune.kube.client import Client, Resource
from imageprune.kube.errors import ApiError, Gone, KubeError

log = logging.getLogger("imageprune.kube.watch")

# client-go's choice: watches last 5 to 10 minutes, spread so that many clients do not
# reconnect together.
MIN_WATCH_SECONDS = 300
# A listing of thousands of objects arrives, and is reduced, a page at a time. Half
# client-go's 500: a page of 500 Nodes is about 3 MB of JSON, held twice (bytes, then
# parsed) until reduced, and the operator lists Nodes and agent pods at once; 10,000
# objects then cost 40 requests instead of 20.
LIST_CHUNK = 250
Keep = Callable[[Mapping[str, Any]], dict[str, Any]]


@dataclasses.dataclass(frozen=True)
class Listed:
    """A complete listing: whatever the consumer knew before is replaced."""

    items: tuple[Mapping[str, Any], ...]


@dataclasses.dataclass(frozen=True)
class Changed:
    type: str  # ADDED, MODIFIED or DELETED
    object: Mapping[str, Any]


class Watcher:
    def __init__(
        self,
        client: Client,
        res: Resource,
        *,
        namespace: str | None = None,
        labels: Mapping[str, str] | None = None,
        field_selector: str | None = None,
        backoff: Backoff | None = None,
        min_watch_seconds: int = MIN_WATCH_SECONDS,
        keep: Keep | None = None,
    ) -> None:
        """`keep` reduces each object to what the consumer reads, as it arrives."""
        self.client = client
        self.res = res
        self.path = f"/apis/{res._api_info.resource.api_version}/{res._api_info.plural}"
        self.namespace = namespace
        self.labels = labels
        self.field_selector = field_selector
        self.backoff = backoff or Backoff()
        self.min_watch_seconds = min_watch_seconds
        self.keep = keep
        self.resource_version: str | None = None
        # time.monotonic() of the last answer from the apiserver; None before the first.
        self.last_contact: float | None = None

    async def events(self) -> AsyncIterator[Listed | Changed]:
        while True:
            try:
                if self.resource_version is None:
                    yield await self._list()
                # The client renews the watch from its last version whenever the
                # server ends it (after about timeoutSeconds).
                async for kind, obj in self.client.watch(
                    self.res,
                    resource_version=self.resource_version or "",
                    timeout_seconds=self._watch_seconds(),
                    namespace=self.namespace,
                    labels=self.labels,
                    fields=self.field_selector,
                ):
                    self._contact()
                    self.resource_version = (obj.get("metadata") or {}).get(
                        "resourceVersion", self.resource_version
                    )
                    if kind in ("ADDED", "MODIFIED", "DELETED"):
                        yield Changed(kind, self.keep(obj) if self.keep else obj)
            except Gone:
                log.info(
                    "watch of %s: resourceVersion %s is gone (410), listing again",
                    self.path,
                    self.resource_version,
                )
                self.resource_version = None
            except KubeError as err:
                await self._wait_after(err)

    async def _list(self) -> Listed:
        items, self.resource_version = await self.client.list(
            self.res,
            namespace=self.namespace,
            labels=self.labels,
            fields=self.field_selector,
            chunk_size=LIST_CHUNK,
            keep=self.keep,
        )
        self._contact()
        log.info(
            "listed %s: %d objects at resourceVersion %s",
            self.path,
            len(items),
            self.resource_version,
        )
        return Listed(tuple(items))

    def _contact(self) -> None:
        self.last_contact = time.monotonic()
        self.backoff.reset()

    def _watch_seconds(self) -> int:
        return int(self.min_watch_seconds * (1 + random.random()))  # noqa: S311 (spread only)

    async def _wait_after(self, err: KubeError) -> None:
        delay = self.backoff.next_delay()
        # A client error (403: RBAC, 404: CRD missing) needs a person; say so louder.
        level = (
            logging.ERROR if isinstance(err, ApiError) and not err.retryable else logging.WARNING
        )
        log.log(
            level,
            "watch of %s failed (attempt %d): %s; retrying in %.1fs",
            self.path,
            self.backoff.attempts,
            err,
            delay,
        )
        await asyncio.sleep(delay)
