"""The few API calls the operator makes besides kopf's own watching: writing tasks, and
the policy status at the moments it must land before anything else happens, and Events.
They go through imageprune.kube (lightkube), with the operator's credentials."""

from __future__ import annotations

import datetime
import logging
from collections.abc import Mapping
from typing import Any

from imageprune.api import names, times
from imageprune.kube import resources
from imageprune.kube.client import Client as KubeClient
from imageprune.kube.errors import ApiError, KubeError

# What kopf hands its handlers (a LoggerAdapter that names the object).
Logger = logging.Logger | logging.LoggerAdapter[Any]

COMPONENT = "imageprune-operator"
# Where Events about cluster-scoped objects live (as the kubelet files Node events).
EVENT_NAMESPACE = "default"
_MAX_EVENT_MESSAGE = 1024


class Client:
    def __init__(self, kube: KubeClient, logger: Logger) -> None:
        self._kube = kube
        self._logger = logger

    async def create_task(self, manifest: Mapping[str, object]) -> bool:
        """False when it exists already (a stale index); the next pass sees it."""
        try:
            await self._kube.create(resources.Task.from_dict(dict(manifest)))
        except ApiError as error:
            if error.status == 409:
                return False
            raise
        return True

    async def patch_task_spec(self, name: str, spec: Mapping[str, object]) -> None:
        await self._kube.merge_patch(resources.Task, name, {"spec": dict(spec)})

    async def delete_task(self, name: str) -> None:
        try:
            await self._kube.delete(resources.Task, name)
        except ApiError as error:
            if error.status != 404:
                raise

    async def delete_tasks(self, *, policy_label: str) -> bool:
        """Every task with this policy label, in one DeleteCollection; False when RBAC
        refuses it (a chart older than this operator), and the caller deletes one by one."""
        try:
            await self._kube.delete_collection(
                resources.Task, labels={names.POLICY_LABEL: policy_label}
            )
        except ApiError as error:
            if error.status == 403:
                return False
            raise
        return True

    async def list_tasks(self, *, policy_label: str) -> list[Mapping[str, object]]:
        items, _ = await self._kube.list(resources.Task, labels={names.POLICY_LABEL: policy_label})
        return list(items)

    async def patch_policy_status(self, name: str, patch: Mapping[str, object]) -> None:
        await self._kube.merge_patch(resources.Policy.Status, name, {"status": dict(patch)})

    async def annotate_policy(self, name: str, annotations: Mapping[str, str]) -> None:
        patch = {"metadata": {"annotations": dict(annotations)}}
        await self._kube.merge_patch(resources.Policy, name, patch)

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
            await self._kube.create(resources.Event.from_dict(event))
        except KubeError as error:
            self._logger.warning("could not post Event %s: %s", reason, error)
