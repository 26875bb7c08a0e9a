"""An asyncio client for the CRI v1 ImageService and RuntimeService.

Every call has a deadline, so an unreachable or wedged runtime surfaces as an
error instead of a hang, and gRPC failures become our own exceptions with a
message that says what to do.
"""

from __future__ import annotations

import asyncio
import dataclasses
from types import TracebackType
from typing import TypeVar

import grpc
import grpc.aio

from imageprune_cri import convert, endpoint, errors, types
from imageprune_cri._pb import api_pb2, api_pb2_grpc

DEFAULT_TIMEOUT = 30.0
# A node with thousands of images answers ListImages with several MiB; gRPC's 4 MiB
# default would cut it off.
MAX_MESSAGE_BYTES = 128 * 1024 * 1024

_Request = TypeVar("_Request")
_Response = TypeVar("_Response")


class CriClient:
    """Use `async with CriClient.connect(...) as cri:`."""

    def __init__(
        self, target: str, *, timeout: float = DEFAULT_TIMEOUT, origin: str | None = None
    ) -> None:
        self.endpoint = target
        # Where the endpoint came from (a flag, $CONTAINER_RUNTIME_ENDPOINT), so an
        # error about it tells the user what to change.
        self._where = f"{target} (from {origin})" if origin else target
        self.timeout = timeout
        self._channel = grpc.aio.insecure_channel(
            target,
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ],
        )
        self._runtime = api_pb2_grpc.RuntimeServiceStub(self._channel)
        self._images = api_pb2_grpc.ImageServiceStub(self._channel)

    @classmethod
    def connect(
        cls, explicit_endpoint: str | None = None, *, timeout: float = DEFAULT_TIMEOUT
    ) -> CriClient:
        """A client for the endpoint resolved like crictl does (see endpoint.resolve)."""
        found = endpoint.resolve(explicit_endpoint)
        return cls(found.target, timeout=timeout, origin=found.origin)

    @property
    def socket_path(self) -> str:
        return endpoint.socket_path(self.endpoint)

    async def close(self) -> None:
        await self._channel.close(grace=None)

    async def __aenter__(self) -> CriClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _call(
        self,
        what: str,
        method: grpc.aio.UnaryUnaryMultiCallable[_Request, _Response],
        request: _Request,
    ) -> _Response:
        try:
            return await method(request, timeout=self.timeout)
        except grpc.aio.AioRpcError as err:
            raise self._translate(what, err) from err

    def _translate(self, what: str, err: grpc.aio.AioRpcError) -> errors.CriError:
        code = err.code()
        if code == grpc.StatusCode.UNAVAILABLE:
            return errors.RuntimeUnavailable(
                f"no CRI runtime answers at {self._where}: is containerd (or CRI-O) "
                f"running, and is this the right socket? Set --runtime-endpoint. "
                f"({err.details()})"
            )
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return errors.RuntimeUnavailable(
                f"the CRI runtime at {self._where} did not answer {what} within "
                f"{self.timeout:g}s: it may be overloaded; try a larger --timeout"
            )
        if code == grpc.StatusCode.UNIMPLEMENTED:
            return errors.CriCallFailed(
                f"the runtime at {self.endpoint} does not implement CRI v1 {what}: "
                "it needs to speak CRI v1 (containerd >= 1.6, CRI-O >= 1.23)",
                code=code.name,
            )
        return errors.CriCallFailed(
            f"{what} failed at {self.endpoint}: {code.name}: {err.details()}", code=code.name
        )

    # ---- RuntimeService -------------------------------------------------------

    async def version(self) -> types.RuntimeVersion:
        resp = await self._call("Version", self._runtime.Version, api_pb2.VersionRequest())
        return types.RuntimeVersion(
            runtime_name=resp.runtime_name,
            runtime_version=resp.runtime_version,
            runtime_api_version=resp.runtime_api_version,
        )

    async def status(self) -> types.RuntimeStatus:
        resp = await self._call("Status", self._runtime.Status, api_pb2.StatusRequest(verbose=True))
        return types.RuntimeStatus(sandbox_image=convert.sandbox_image(dict(resp.info)))

    async def list_containers(self) -> list[types.Container]:
        """Every container in every state: no filter, on purpose (exited containers
        still hold their image)."""
        resp = await self._call(
            "ListContainers", self._runtime.ListContainers, api_pb2.ListContainersRequest()
        )
        return [convert.container(c) for c in resp.containers]

    async def list_pod_sandboxes(self) -> list[types.PodSandbox]:
        resp = await self._call(
            "ListPodSandbox", self._runtime.ListPodSandbox, api_pb2.ListPodSandboxRequest()
        )
        return [types.PodSandbox(s.id) for s in resp.items]

    async def sandbox_images(self, *, concurrency: int = 8) -> frozenset[str]:
        """Every pod sandbox (pause) image the runtime uses or is configured with.

        No container lists it, so it would look unused. containerd 1.x names its
        configured one in Status; 2.x does not, so the images of the existing
        sandboxes are read too (which also covers per-runtime-handler pause images)."""
        status, sandboxes = await asyncio.gather(self.status(), self.list_pod_sandboxes())
        gate = asyncio.Semaphore(concurrency)

        async def image_of(sandbox_id: str) -> str | None:
            async with gate:
                try:
                    resp = await self._call(
                        "PodSandboxStatus",
                        self._runtime.PodSandboxStatus,
                        api_pb2.PodSandboxStatusRequest(pod_sandbox_id=sandbox_id, verbose=True),
                    )
                except errors.CriCallFailed as err:
                    if err.code == "NOT_FOUND":
                        return None  # removed since it was listed
                    raise
            return convert.sandbox_status_image(dict(resp.info))

        found = await asyncio.gather(*(image_of(s.id) for s in sandboxes))
        configured = [status.sandbox_image] if status.sandbox_image else []
        return frozenset(image for image in [*configured, *found] if image)

    # ---- ImageService -----------------------------------------------------------

    async def list_images(self) -> list[types.Image]:
        resp = await self._call("ListImages", self._images.ListImages, api_pb2.ListImagesRequest())
        return [convert.image(i) for i in resp.images]

    async def image_status(self, ref: str) -> types.Image | None:
        """One image with its creation time when the runtime reports it; None when
        the runtime does not know `ref` (a tag, digest reference or ID)."""
        resp = await self._call(
            "ImageStatus",
            self._images.ImageStatus,
            api_pb2.ImageStatusRequest(image=api_pb2.ImageSpec(image=ref), verbose=True),
        )
        if not resp.HasField("image"):
            return None
        return convert.image(resp.image, created_at=convert.created_at(dict(resp.info)))

    async def with_created_at(
        self, images: list[types.Image], *, concurrency: int = 8
    ) -> list[types.Image]:
        """`images` with `created_at` filled from ImageStatus, one call per image with
        bounded parallelism. An image that vanished meanwhile keeps created_at=None."""
        gate = asyncio.Semaphore(concurrency)

        async def one(img: types.Image) -> types.Image:
            async with gate:
                status = await self.image_status(img.id)
            return img if status is None else dataclasses.replace(img, created_at=status.created_at)

        return list(await asyncio.gather(*(one(i) for i in images)))

    async def remove_image(self, ref: str) -> None:
        """Remove the image `ref` names, with every tag it has (the CRI's semantics).
        An image that is already gone is not an error. The runtime does NOT check
        whether a container uses the image: callers must."""
        try:
            await self._call(
                f"RemoveImage {ref}",
                self._images.RemoveImage,
                api_pb2.RemoveImageRequest(image=api_pb2.ImageSpec(image=ref)),
            )
        except errors.CriCallFailed as err:
            if err.code != "NOT_FOUND":  # already gone
                raise

    async def image_fs_info(self) -> list[types.FilesystemUsage]:
        resp = await self._call(
            "ImageFsInfo", self._images.ImageFsInfo, api_pb2.ImageFsInfoRequest()
        )
        return [convert.filesystem(f) for f in resp.image_filesystems]
