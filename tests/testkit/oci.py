"""A small, deterministic builder of OCI image archives for tests and benchmarks.

Each image has two uncompressed layers: a shared one with a static busybox (so
containers really run) and a payload of chosen size that makes the image unique.
Same inputs give byte-identical archives, hence the same image ID. The archive is
an OCI image layout tarball that `ctr images import` understands; names come from
the `io.containerd.image.name` annotation, one index entry per tag.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import hashlib
import io
import json
import random
import tarfile
from collections.abc import Mapping, Sequence
from pathlib import Path

BUSYBOX = Path("/bin/busybox")
_EPOCH = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
_MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
_MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
_MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar"


@dataclasses.dataclass(frozen=True)
class BuiltImage:
    path: Path
    id: str  # the config digest, which is what CRI reports as the image ID
    repo_tags: tuple[str, ...]
    size: int  # bytes of all blobs, roughly what the runtime will report


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _tar(files: Sequence[tuple[str, bytes, int]]) -> bytes:
    """A reproducible tar: fixed owner and mtime, entries in the given order."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data, mode in files:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, int(_EPOCH.timestamp())
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@functools.cache
def _busybox_layer() -> bytes:
    return _tar([("bin/busybox", BUSYBOX.read_bytes(), 0o755)])


def _payload_layer(seed: str, size: int) -> bytes:
    data = random.Random(seed).randbytes(size)
    return _tar([(f"payload/{hashlib.sha256(seed.encode()).hexdigest()[:16]}", data, 0o644)])


@dataclasses.dataclass(frozen=True)
class ImageSpec:
    """What to build. `repo_tags` must be fully qualified (docker.io/library/app:1).
    The content depends on `seed` (default: the first tag), so two specs with the
    same seed share an image ID whatever their tags. `dangling` names the image by
    its ID only, which the CRI lists as an image with no tags."""

    repo_tags: tuple[str, ...] = ()
    payload_size: int = 1024
    seed: str | None = None
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    created: datetime.datetime = _EPOCH
    entrypoint: tuple[str, ...] = ("/bin/busybox", "sleep", "3600")
    dangling: bool = False


def _blobs(spec: ImageSpec) -> tuple[bytes, bytes, list[bytes], dict[str, object]]:
    """(config, manifest, layers, manifest descriptor) of one image."""
    seed = spec.seed if spec.seed is not None else (spec.repo_tags or ("untagged",))[0]
    layers = [_busybox_layer(), _payload_layer(seed, spec.payload_size)]
    config = {
        "created": spec.created.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "architecture": "amd64",
        "os": "linux",
        "config": {"Entrypoint": list(spec.entrypoint), "Labels": dict(spec.labels)},
        "rootfs": {"type": "layers", "diff_ids": [_digest(layer) for layer in layers]},
        "history": [{"created_by": f"imageprune test image {seed}"}],
    }
    config_bytes = json.dumps(config, sort_keys=True).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": _MEDIA_MANIFEST,
        "config": {
            "mediaType": _MEDIA_CONFIG,
            "digest": _digest(config_bytes),
            "size": len(config_bytes),
        },
        "layers": [
            {"mediaType": _MEDIA_LAYER, "digest": _digest(layer), "size": len(layer)}
            for layer in layers
        ],
    }
    manifest_bytes = json.dumps(manifest, sort_keys=True).encode()
    descriptor = {
        "mediaType": _MEDIA_MANIFEST,
        "digest": _digest(manifest_bytes),
        "size": len(manifest_bytes),
        "platform": {"architecture": "amd64", "os": "linux"},
    }
    return config_bytes, manifest_bytes, layers, descriptor


def build_archive(path: Path, specs: Sequence[ImageSpec]) -> list[BuiltImage]:
    """Write one OCI archive holding every image in `specs` (one `ctr images
    import` brings them all in), and describe what was built."""
    entries: list[dict[str, object]] = []
    blobs: list[bytes] = []
    built: list[BuiltImage] = []
    for spec in specs:
        config, manifest, layers, descriptor = _blobs(spec)
        image_id = _digest(config)
        names = [image_id] if spec.dangling else list(spec.repo_tags)
        if not names:
            raise ValueError("an image needs repo_tags or dangling=True to be importable")
        entries += [{**descriptor, "annotations": {"io.containerd.image.name": n}} for n in names]
        blobs += [config, manifest, *layers]
        built.append(
            BuiltImage(
                path=path,
                id=image_id,
                repo_tags=() if spec.dangling else spec.repo_tags,
                size=len(config) + len(manifest) + sum(len(layer) for layer in layers),
            )
        )
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": entries,
    }
    files: list[tuple[str, bytes, int]] = [
        ("oci-layout", b'{"imageLayoutVersion":"1.0.0"}', 0o644),
        ("index.json", json.dumps(index, sort_keys=True).encode(), 0o644),
    ]
    seen: set[str] = set()
    for blob in blobs:
        name = "blobs/sha256/" + _digest(blob).removeprefix("sha256:")
        if name not in seen:
            seen.add(name)
            files.append((name, blob, 0o644))
    path.write_bytes(_tar(files))
    return built
