"""Errors of the CRI client. Each message says what happened and what to do."""

from __future__ import annotations


class CriError(Exception):
    """Base of every error the CRI client raises."""


class EndpointNotFound(CriError):
    """No runtime endpoint was given and none of the default sockets exists."""


class EndpointInvalid(CriError):
    """The endpoint given cannot be a CRI socket (wrong scheme, unusable path): a
    usage error, unlike an endpoint where nothing answers."""


class RuntimeUnavailable(CriError):
    """Nothing answers at the endpoint (daemon down, wrong socket, no permission)."""


class CriCallFailed(CriError):
    """The runtime answered a call with an error."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code
