"""Who we are to the apiserver, asked for before every request: a fixed identity (a
kubeconfig token, or none beside a client certificate), a token file re-read each time
(the kubelet rotates a pod's projected token in place), or an exec plugin
(execplugin.py)."""

from __future__ import annotations

import dataclasses
import datetime
from pathlib import Path
from typing import Protocol

from imageprune import files
from imageprune.kube.errors import ConfigError

_TOKEN_LIMIT = 64 * 1024


@dataclasses.dataclass(frozen=True)
class Identity:
    token: str | None = None
    # PEM, from an exec plugin (a kubeconfig's own certificate is part of its TLS setup).
    cert_pem: bytes | None = None
    key_pem: bytes | None = None
    expires: datetime.datetime | None = None


class Credential(Protocol):
    async def identity(self, *, rejected: Identity | None = None) -> Identity:
        """The identity to present; `rejected` is one the apiserver just refused (401),
        so a cached one must be renewed."""
        ...


@dataclasses.dataclass(frozen=True)
class Fixed:
    value: Identity

    async def identity(self, *, rejected: Identity | None = None) -> Identity:
        return self.value


@dataclasses.dataclass(frozen=True)
class TokenFile:
    path: Path
    # A kubeconfig's token beside its tokenFile: client-go presents it while the file
    # cannot be read.
    fallback: str | None = None

    async def identity(self, *, rejected: Identity | None = None) -> Identity:
        try:
            token = files.read_regular_file(self.path, limit=_TOKEN_LIMIT).decode().strip()
        except (OSError, UnicodeDecodeError, files.FileRejected) as err:
            if self.fallback is not None:
                return Identity(token=self.fallback)
            raise ConfigError(f"cannot read the token file {self.path}: {err}") from None
        return Identity(token=token)
