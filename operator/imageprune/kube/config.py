"""Where the apiserver is and how to authenticate: the pod's service account when
running in a cluster, else a kubeconfig file (--kubeconfig or $KUBECONFIG).

Parsing is pure (`from_kubeconfig` takes the parsed document), so every rule is
unit-tested without files; `load` only finds and reads them. Supported: client
certificates and bearer tokens, inline (`*-data`) or as files. Exec plugins,
auth providers and basic auth are refused with a clear message instead of being
half-supported."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import os
import urllib.parse
from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml

from imageprune import files
from imageprune.kube.errors import ConfigError

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
KUBECONFIG_ENV = "KUBECONFIG"
# Kubeconfigs with a few dozen clusters stay far below this; /dev/zero does not.
_KUBECONFIG_LIMIT = 4 * 1024 * 1024


@dataclasses.dataclass(frozen=True)
class Credentials:
    """Everything needed to reach and authenticate to one apiserver."""

    server: str  # https://host:port
    source: str  # where these came from, for error messages
    ca_file: Path | None = None
    ca_data: bytes | None = None
    cert_file: Path | None = None
    cert_data: bytes | None = None
    key_file: Path | None = None
    key_data: bytes | None = None
    token: str | None = None
    # Re-read on every request: projected service account tokens are rotated on disk.
    token_file: Path | None = None
    insecure: bool = False  # insecure-skip-tls-verify
    tls_server_name: str | None = None

    @property
    def host(self) -> str:
        return _split_server(self.server, self.source)[1]

    @property
    def port(self) -> int:
        return _split_server(self.server, self.source)[2]

    @property
    def tls(self) -> bool:
        return _split_server(self.server, self.source)[0] == "https"


def load(
    explicit: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    service_account_dir: Path = SERVICE_ACCOUNT_DIR,
) -> Credentials:
    """--kubeconfig when given; else the pod's service account when running in a
    cluster; else $KUBECONFIG. Raises ConfigError saying what was tried."""
    env = os.environ if environ is None else environ
    if explicit:
        return _from_files([Path(explicit)], what="--kubeconfig")
    if env.get("KUBERNETES_SERVICE_HOST") and (service_account_dir / "token").exists():
        return in_cluster(env, service_account_dir)
    if env.get(KUBECONFIG_ENV):
        paths = [Path(p) for p in env[KUBECONFIG_ENV].split(os.pathsep) if p]
        return _from_files(paths, what=f"${KUBECONFIG_ENV}")
    raise ConfigError(
        "no Kubernetes credentials: not running in a pod (KUBERNETES_SERVICE_HOST is unset "
        f"or {service_account_dir / 'token'} is missing) and no kubeconfig given: "
        f"set --kubeconfig or ${KUBECONFIG_ENV}"
    )


def in_cluster(env: Mapping[str, str], directory: Path = SERVICE_ACCOUNT_DIR) -> Credentials:
    host = env.get("KUBERNETES_SERVICE_HOST", "")
    port = env.get("KUBERNETES_SERVICE_PORT", "443")
    if not host or not port.isdigit():
        raise ConfigError(
            "in-cluster config needs KUBERNETES_SERVICE_HOST and a numeric "
            f"KUBERNETES_SERVICE_PORT (got {host!r}, {port!r})"
        )
    # An IPv6 service address needs brackets in a URL.
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return Credentials(
        server=f"https://{authority}",
        source=f"in-cluster service account ({directory})",
        ca_file=directory / "ca.crt",
        token_file=directory / "token",
    )


def _from_files(paths: Sequence[Path], *, what: str) -> Credentials:
    documents = []
    for path in paths:
        try:
            text = files.read_regular_file(path, limit=_KUBECONFIG_LIMIT).decode("utf-8")
        except FileNotFoundError:
            # kubectl skips missing entries of a $KUBECONFIG list; a lone file must exist.
            if len(paths) == 1:
                raise ConfigError(f"kubeconfig {path} (from {what}) does not exist") from None
            continue
        except (OSError, UnicodeDecodeError, files.FileRejected) as err:
            raise ConfigError(f"cannot read kubeconfig {path} (from {what}): {err}") from None
        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise ConfigError(f"kubeconfig {path} is not valid YAML: {err}") from None
        if not isinstance(document, Mapping):
            raise ConfigError(f"kubeconfig {path} must be a YAML mapping (a kind: Config)")
        documents.append((path, document))
    if not documents:
        raise ConfigError(
            f"none of the kubeconfig files in {what} exists: {', '.join(map(str, paths))}"
        )
    return from_kubeconfig(merge(documents))


@dataclasses.dataclass(frozen=True)
class Kubeconfig:
    """Merged kubeconfig files: named entries with the file each came from (relative
    paths in an entry are relative to its own file)."""

    current_context: str | None
    contexts: Mapping[str, tuple[Path, Mapping[str, object]]]
    clusters: Mapping[str, tuple[Path, Mapping[str, object]]]
    users: Mapping[str, tuple[Path, Mapping[str, object]]]


def merge(documents: Sequence[tuple[Path, Mapping[str, object]]]) -> Kubeconfig:
    """kubectl's merge rule: the first file that names an entry (or sets
    current-context) wins."""
    current: str | None = None
    tables: dict[str, dict[str, tuple[Path, Mapping[str, object]]]] = {
        "contexts": {},
        "clusters": {},
        "users": {},
    }
    for path, document in documents:
        if current is None and document.get("current-context"):
            current = str(document["current-context"])
        for key, table in tables.items():
            entries = document.get(key) or []
            if not isinstance(entries, list):
                raise ConfigError(f"kubeconfig {path}: {key} must be a list")
            inner = key.removesuffix("s")  # clusters[].cluster, users[].user, ...
            for entry in entries:
                if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str):
                    raise ConfigError(f"kubeconfig {path}: every entry of {key} needs a name")
                body = entry.get(inner) or {}
                if not isinstance(body, Mapping):
                    raise ConfigError(
                        f"kubeconfig {path}: {key}[{entry['name']}].{inner} must be a mapping"
                    )
                table.setdefault(entry["name"], (path, body))
    return Kubeconfig(current, tables["contexts"], tables["clusters"], tables["users"])


def from_kubeconfig(config: Kubeconfig, *, context: str | None = None) -> Credentials:
    """The credentials of `context` (default: current-context)."""
    name = context or config.current_context
    if not name:
        raise ConfigError("kubeconfig has no current-context (and no context was chosen)")
    if name not in config.contexts:
        raise ConfigError(f"kubeconfig has no context named {name!r}")
    context_path, ctx = config.contexts[name]
    cluster_name, user_name = ctx.get("cluster"), ctx.get("user")
    if not isinstance(cluster_name, str) or cluster_name not in config.clusters:
        raise ConfigError(
            f"kubeconfig {context_path}: context {name!r} names cluster {cluster_name!r}, "
            "which is not defined"
        )
    cluster_path, cluster = config.clusters[cluster_name]
    where = f"kubeconfig {cluster_path}: clusters[{cluster_name}].cluster"
    server = cluster.get("server")
    if not isinstance(server, str) or not server:
        raise ConfigError(f"{where}.server: required")
    _split_server(server, where)  # fail now, not at the first request
    fields: dict[str, object] = {
        "server": server,
        "source": f"kubeconfig {context_path} (context {name})",
        "insecure": bool(cluster.get("insecure-skip-tls-verify", False)),
        "tls_server_name": _optional_str(cluster, "tls-server-name", where),
        "ca_data": _data(cluster, "certificate-authority-data", where),
        "ca_file": _file(cluster, "certificate-authority", cluster_path, where),
    }
    if user_name is not None:
        if not isinstance(user_name, str) or user_name not in config.users:
            raise ConfigError(
                f"kubeconfig {context_path}: context {name!r} names user {user_name!r}, "
                "which is not defined"
            )
        user_path, user = config.users[user_name]
        fields.update(_user(user, user_path, f"kubeconfig {user_path}: users[{user_name}].user"))
    return Credentials(**fields)  # type: ignore[arg-type]


_UNSUPPORTED = {
    "exec": "exec credential plugins are not supported",
    "auth-provider": "auth providers are not supported",
    "username": "basic authentication is not supported",
}


def _user(user: Mapping[str, object], path: Path, where: str) -> dict[str, object]:
    for key, problem in _UNSUPPORTED.items():
        if key in user:
            raise ConfigError(
                f"{where}.{key}: {problem}; use a bearer token or a client certificate "
                "(e.g. a service account token)"
            )
    fields: dict[str, object] = {
        "cert_data": _data(user, "client-certificate-data", where),
        "cert_file": _file(user, "client-certificate", path, where),
        "key_data": _data(user, "client-key-data", where),
        "key_file": _file(user, "client-key", path, where),
        "token": _optional_str(user, "token", where),
        "token_file": _file(user, "tokenFile", path, where),
    }
    has_cert = fields["cert_data"] is not None or fields["cert_file"] is not None
    has_key = fields["key_data"] is not None or fields["key_file"] is not None
    if has_cert != has_key:
        raise ConfigError(f"{where}: a client certificate needs its key and a key its certificate")
    return fields


def _optional_str(section: Mapping[str, object], key: str, where: str) -> str | None:
    value = section.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{where}.{key}: must be a string")
    return value


def _data(section: Mapping[str, object], key: str, where: str) -> bytes | None:
    value = _optional_str(section, key, where)
    if value is None:
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"{where}.{key}: not valid base64") from None


def _file(section: Mapping[str, object], key: str, base: Path, where: str) -> Path | None:
    value = _optional_str(section, key, where)
    if value is None:
        return None
    path = Path(value).expanduser()
    return path if path.is_absolute() else base.parent / path


def _split_server(server: str, where: str) -> tuple[str, str, int]:
    parsed = urllib.parse.urlsplit(server)
    if parsed.scheme not in ("https", "http") or not parsed.hostname:
        raise ConfigError(f"{where}: server {server!r} must be an https:// (or http://) URL")
    if parsed.path not in ("", "/"):
        raise ConfigError(f"{where}: server {server!r}: a path prefix is not supported")
    try:
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
    except ValueError:
        raise ConfigError(f"{where}: server {server!r} has an invalid port") from None
    return parsed.scheme, parsed.hostname, port
