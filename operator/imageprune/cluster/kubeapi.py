"""The few raw API calls the operator makes besides kopf's own: writing tasks, and the
policy status at the moments it must land before anything else happens.

kopf has no public client for arbitrary objects, so this one module uses its internal
`api.request`: it carries kopf's login (in-cluster, kubeconfig), re-authenticates on 401
and retries 5xx with kopf's backoffs. Everything else in the operator goes through here,
so a kopf upgrade that moves it touches this file only (pyproject pins kopf's minor)."""

from __future__ import annotations

import contextlib
import datetime
import logging
import urllib.parse
from collections.abc import Mapping
from typing import Any

import kopf
from kopf._cogs.clients import api as kopf_api
from kopf._cogs.clients import errors as kopf_errors

from imageprune.api import names, times

# What kopf hands its handlers (a LoggerAdapter that names the object).
Logger = logging.Logger | logging.LoggerAdapter[Any]

COMPONENT = "imageprune-operator"
# Where Events about cluster-scoped objects live (as the kubelet files Node events).
EVENT_NAMESPACE = "default"
_MAX_EVENT_MESSAGE = 1024

_MERGE = {"Content-Type": "application/merge-patch+json"}
_BASE = f"/apis/{names.GROUP}/{names.VERSION}"

NotFound = kopf_errors.APINotFoundError
Conflict = kopf_errors.APIConflictError
APIError = kopf_errors.APIError


class Client:
    def __init__(self, settings: kopf.OperatorSettings, logger: Logger) -> None:
        self._settings = settings
        self._logger = logger

    async def _call(
        self, method: str, url: str, payload: object = None, headers: dict[str, str] | None = None
    ) -> Any:
        response = await kopf_api.request(
            method,
            url,
            payload=payload,
            headers=headers,
            settings=self._settings,
            logger=self._logger,
        )
        async with response:
            return await response.json()

    async def create_task(self, manifest: Mapping[str, object]) -> bool:
        """False when it exists already (a stale index); the next pass sees it."""
        try:
            await self._call("post", f"{_BASE}/{names.TASK_PLURAL}", dict(manifest))
        except Conflict:
            return False
        return True

    async def patch_task_spec(self, name: str, spec: Mapping[str, object]) -> None:
        url = f"{_BASE}/{names.TASK_PLURAL}/{_quote(name)}"
        await self._call("patch", url, {"spec": dict(spec)}, _MERGE)

    async def delete_task(self, name: str) -> None:
        with contextlib.suppress(NotFound):
            await self._call("delete", f"{_BASE}/{names.TASK_PLURAL}/{_quote(name)}")

    async def list_tasks(self, *, policy_label: str) -> list[Mapping[str, object]]:
        selector = urllib.parse.quote(f"{names.POLICY_LABEL}={policy_label}")
        listing = await self._call("get", f"{_BASE}/{names.TASK_PLURAL}?labelSelector={selector}")
        items = listing.get("items") if isinstance(listing, Mapping) else None
        return [item for item in items or [] if isinstance(item, Mapping)]

    async def patch_policy_status(self, name: str, patch: Mapping[str, object]) -> None:
        url = f"{_BASE}/{names.POLICY_PLURAL}/{_quote(name)}/status"
        await self._call("patch", url, {"status": dict(patch)}, _MERGE)

    async def annotate_policy(self, name: str, annotations: Mapping[str, str]) -> None:
        url = f"{_BASE}/{names.POLICY_PLURAL}/{_quote(name)}"
        await self._call("patch", url, {"metadata": {"annotations": dict(annotations)}}, _MERGE)

    async def post_event(
        self, *, involved: Mapping[str, str], warning: bool, reason: str, message: str
    ) -> None:
        """A core/v1 Event about a cluster-scoped object. Not kopf.event: kopf files the
        object under namespace "default", and `kubectl describe` (which looks for
        involvedObject.namespace "") then shows none. Best effort, as Events are."""
        stamp = times.to_rfc3339(datetime.datetime.now(datetime.UTC))
        event = {
            "metadata": {"generateName": f"{involved['name']}.", "namespace": EVENT_NAMESPACE},
            "involvedObject": dict(involved),
            "type": "Warning" if warning else "Normal",
            "reason": reason,
            "message": message[:_MAX_EVENT_MESSAGE],
            "source": {"component": COMPONENT},
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        try:
            await self._call("post", f"/api/v1/namespaces/{EVENT_NAMESPACE}/events", event)
        except APIError as error:
            self._logger.warning("could not post Event %s: %s", reason, error)


def _quote(name: str) -> str:
    return urllib.parse.quote(name, safe="")
