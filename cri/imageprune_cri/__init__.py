"""imageprune_cri: a typed asyncio client for the CRI v1 image and runtime services.

This package stands alone: it imports nothing of the operator (an import-linter
contract enforces that), so the node agent is its only user.
"""

from imageprune_cri.client import CriClient
from imageprune_cri.errors import (
    CriCallFailed,
    CriError,
    EndpointInvalid,
    EndpointNotFound,
    RuntimeUnavailable,
)
from imageprune_cri.types import (
    Container,
    ContainerState,
    FilesystemUsage,
    Image,
    PodSandbox,
    RuntimeStatus,
    RuntimeVersion,
)

__all__ = [
    "Container",
    "ContainerState",
    "CriCallFailed",
    "CriClient",
    "CriError",
    "EndpointInvalid",
    "EndpointNotFound",
    "FilesystemUsage",
    "Image",
    "PodSandbox",
    "RuntimeStatus",
    "RuntimeUnavailable",
    "RuntimeVersion",
]
