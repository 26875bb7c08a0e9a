"""Where the apiserver is and how to prove who we are: --kubeconfig, else $KUBECONFIG,
else ~/.kube/config, else the pod's service account, as kubectl looks (the agent and
the operator, deployed in a cluster, try the service account first); --context picks a
context other than the current one.

Files are read only when regular and small (imageprune.files), and several $KUBECONFIG
files are merged as kubectl merges them: the first file that names an entry, or sets
current-context, wins. lightkube's models parse the merged result; the user's
credential (token, token file, exec plugin) becomes an auth.Credential."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx2
import lightkube
import msgspec
import yaml
from lightkube.config.models import Cluster, User

from imageprune import files
from imageprune.kube import auth, execplugin, proxy
from imageprune.kube.errors import ConfigError

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
KUBECONFIG_ENV = "KUBECONFIG"
# Kubeconfigs with a few dozen clusters stay far below this; /dev/zero does not.
_KUBECONFIG_LIMIT = 4 * 1024 * 1024
_PEM_LIMIT = 1024 * 1024  # a CA bundle of a few hundred certificates
# The file-valued fields of each kind of entry, relative to the file that holds it.
_PATHS = {
    "clusters": ("certificate-authority",),
    "users": ("client-certificate", "client-key", "tokenFile"),
    "contexts": (),
}


@dataclasses.dataclass(frozen=True)
class Target:
    """One apiserver and our credentials for it."""

    server: str  # https://host:port
    source: str  # where these came from, for messages
    cluster: Cluster  # CA and insecure-skip-tls-verify, paths made absolute
    user: User  # the static client certificate, if any, paths made absolute
    credential: auth.Credential
    tls_server_name: str | None = None
    proxy: str | None = None  # the HTTP proxy to connect through (kube.proxy)


def load(
    explicit: str | None = None,
    *,
    context: str | None = None,
    environ: Mapping[str, str] | None = None,
    service_account_dir: Path = SERVICE_ACCOUNT_DIR,
    in_cluster_first: bool = True,
) -> Target:
    """--kubeconfig when given; else $KUBECONFIG; else ~/.kube/config; else the pod's
    service account (kubectl's order, in_cluster_first=False). A component deployed in
    a cluster (the agent, the operator) tries the service account first, unless a
    --context asks for a kubeconfig. Raises ConfigError saying what was tried. Without
    a proxy-url, the environment's proxy settings apply (kube.proxy)."""
    env = os.environ if environ is None else environ
    target = _located(explicit, context, env, service_account_dir, in_cluster_first)
    if target.proxy is None:
        target = dataclasses.replace(target, proxy=proxy.from_environment(target.server, env))
    return target


def _located(
    explicit: str | None,
    context: str | None,
    env: Mapping[str, str],
    service_account_dir: Path,
    in_cluster_first: bool,
) -> Target:
    if explicit:
        return _from_files([Path(explicit)], what="--kubeconfig", context=context)
    in_pod = bool(env.get("KUBERNETES_SERVICE_HOST")) and (service_account_dir / "token").exists()
    if in_pod and context is None and in_cluster_first:
        return in_cluster(env, service_account_dir)
    if env.get(KUBECONFIG_ENV):
        # Empty entries ("a::b", "::") are skipped, as kubectl skips them.
        paths = [Path(p) for p in env[KUBECONFIG_ENV].split(os.pathsep) if p]
        if not paths:
            raise ConfigError(f"${KUBECONFIG_ENV} ({env[KUBECONFIG_ENV]!r}) names no file")
        return _from_files(paths, what=f"${KUBECONFIG_ENV}", context=context)
    default = default_kubeconfig(env)
    if default is not None and default.exists():
        return _from_files([default], what="the default kubeconfig", context=context)
    if in_pod and context is None:
        return in_cluster(env, service_account_dir)
    home = str(default) if default is not None else "~/.kube/config ($HOME is unset)"
    if context is not None:
        raise ConfigError(
            f"--context {context}: no kubeconfig (no --kubeconfig, ${KUBECONFIG_ENV} unset, "
            f"no {home})"
        )
    raise ConfigError(
        f"no Kubernetes credentials: no --kubeconfig, ${KUBECONFIG_ENV} unset, no {home}, "
        "and not in a pod (KUBERNETES_SERVICE_HOST is unset or "
        f"{service_account_dir / 'token'} is missing)"
    )


def default_kubeconfig(env: Mapping[str, str]) -> Path | None:
    """kubectl's default, ~/.kube/config, from $HOME as client-go finds it (not from
    the password database: a test or a pod may set HOME to keep us out of the real one)."""
    home = env.get("HOME")
    return Path(home) / ".kube" / "config" if home else None


def in_cluster(env: Mapping[str, str], directory: Path = SERVICE_ACCOUNT_DIR) -> Target:
    host = env.get("KUBERNETES_SERVICE_HOST", "")
    port = env.get("KUBERNETES_SERVICE_PORT", "443")
    if not host or not port.isdigit():
        raise ConfigError(
            "in-cluster config needs KUBERNETES_SERVICE_HOST and a numeric "
            f"KUBERNETES_SERVICE_PORT (got {host!r}, {port!r})"
        )
    # An IPv6 service address needs brackets in a URL.
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    server = f"https://{authority}"
    return Target(
        server=server,
        source=f"in-cluster service account ({directory})",
        cluster=Cluster(server=server, certificate_auth=str(directory / "ca.crt")),
        user=User(),
        # The kubelet rotates the projected token in place.
        credential=auth.TokenFile(directory / "token"),
    )


def _from_files(paths: Sequence[Path], *, what: str, context: str | None) -> Target:
    documents = []
    for path in paths:
        try:
            content = files.read_regular_file(path, limit=_KUBECONFIG_LIMIT)
        except FileNotFoundError:
            # kubectl skips missing entries of a $KUBECONFIG list; a lone file must exist.
            if len(paths) == 1:
                raise ConfigError(f"kubeconfig {path} (from {what}) does not exist") from None
            continue
        except (OSError, files.FileRejected) as err:
            raise ConfigError(f"cannot read kubeconfig {path} (from {what}): {err}") from None
        try:
            # Bytes: YAML's reader takes UTF-8, or UTF-16 after its byte order mark (as
            # Windows PowerShell writes `kubectl config view --raw > config`), as kubectl does.
            document = yaml.safe_load(content)
        except yaml.YAMLError as err:
            reason = " ".join(str(err).split())  # YAML errors span lines
            raise ConfigError(f"kubeconfig {path} is not valid YAML: {reason}") from None
        if not isinstance(document, Mapping):
            raise ConfigError(f"kubeconfig {path} must be a YAML mapping (a kind: Config)")
        # kubectl accepts a file without kind and apiVersion, but no other kind or version.
        kind = (document.get("apiVersion", "v1"), document.get("kind", "Config"))
        if kind != ("v1", "Config"):
            raise ConfigError(f"kubeconfig {path} is a {kind[0]} {kind[1]}, not a v1 Config")
        documents.append((path, document))
    if not documents:
        raise ConfigError(
            f"none of the kubeconfig files in {what} exists: {', '.join(map(str, paths))}"
        )
    source = "kubeconfig " + ", ".join(str(path) for path, _ in documents)
    return from_kubeconfig(merge(documents), context=context, source=source)


def merge(documents: Sequence[tuple[Path, Mapping[str, Any]]]) -> dict[str, Any]:
    """One kubeconfig from several, by kubectl's rule: the first file that names an
    entry (or sets current-context) wins. Entries are kept by name ({"clusters": {name:
    body}, ...}), with relative paths made absolute against the file they came from."""
    merged: dict[str, Any] = {"current-context": None} | {key: {} for key in _PATHS}
    for path, document in documents:
        if merged["current-context"] is None and document.get("current-context"):
            merged["current-context"] = str(document["current-context"])
        for key, path_fields in _PATHS.items():
            entries = document.get(key) or []
            if not isinstance(entries, list):
                raise ConfigError(f"kubeconfig {path}: {key} must be a list")
            table = merged[key]
            inner = key.removesuffix("s")  # clusters[].cluster, users[].user, ...
            names = set()
            for entry in entries:
                if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str):
                    raise ConfigError(f"kubeconfig {path}: every entry of {key} needs a name")
                # Across files the first entry of a name wins; within one, kubectl refuses.
                if entry["name"] in names:
                    raise ConfigError(f"kubeconfig {path}: two {key} are named {entry['name']!r}")
                names.add(entry["name"])
                body = entry.get(inner) or {}
                if not isinstance(body, Mapping):
                    raise ConfigError(
                        f"kubeconfig {path}: {key}[{entry['name']}].{inner} must be a mapping"
                    )
                if entry["name"] not in table:
                    table[entry["name"]] = _absolute(body, path_fields, path)
    return merged


def _absolute(body: Mapping[str, Any], keys: Sequence[str], path: Path) -> dict[str, Any]:
    fixed = dict(body)
    for key in keys:
        if isinstance(fixed.get(key), str) and fixed[key]:
            # kubectl does not expand "~" either: it is a folder name like any other.
            fixed[key] = str(path.parent / fixed[key])
    # An exec plugin's command given as a relative path is relative to the kubeconfig
    # too (as kubectl resolves it); a bare name is looked up in PATH.
    plugin = fixed.get("exec")
    command = plugin.get("command") if isinstance(plugin, Mapping) else None
    if isinstance(command, str) and os.sep in command and not os.path.isabs(command):
        fixed["exec"] = {**fixed["exec"], "command": str(path.parent / command)}
    return fixed


def from_kubeconfig(
    merged: Mapping[str, Any], *, context: str | None = None, source: str = "kubeconfig"
) -> Target:
    """The target of `context` (default: current-context) of a merged kubeconfig."""
    if context is None and not merged.get("current-context"):
        # kubectl would fall back to http://localhost:8080 and fail to connect there.
        contexts = ", ".join(merged["contexts"])
        hint = (
            f": choose one with --context ({contexts})"
            if contexts
            else " and no context is defined"
        )
        raise ConfigError(f"{source}: current-context is not set{hint}")
    # lightkube parses entries in the kubeconfig's own form: lists of named entries.
    listed = {
        key: [{"name": name, key.removesuffix("s"): body} for name, body in merged[key].items()]
        for key in _PATHS
    }
    try:
        chosen = lightkube.KubeConfig.from_dict({**merged, **listed}).get(context)
    except (lightkube.ConfigError, msgspec.ValidationError) as err:
        raise ConfigError(f"{source}: {err}") from None
    except KeyError as err:
        name = context or merged.get("current-context")
        raise ConfigError(f"{source}: context {name!r} names {err}, which is not defined") from None
    assert chosen is not None  # get() without a default raises instead
    source = f"{source} (context {chosen.context_name})"
    cluster, user = chosen.cluster, chosen.user or User()
    # The raw entries, for the fields lightkube's models leave out.
    raw_cluster = merged["clusters"][chosen.context.cluster]
    where = f"{source}: cluster {chosen.context.cluster!r}"
    if not raw_cluster.get("server"):  # lightkube would default to http://localhost:8080
        raise ConfigError(f"{where} names no server")
    url = httpx2.URL(cluster.server)
    if url.scheme not in ("https", "http") or not url.host:
        raise ConfigError(
            f"{where}: server {cluster.server!r} must be an https:// (or http://) URL"
        )
    proxy_url = raw_cluster.get("proxy-url")
    if proxy_url is not None and not isinstance(proxy_url, str):
        raise ConfigError(f"{where}: proxy-url must be a string")
    through = proxy.checked(proxy_url, where=f"{where}: proxy-url") if proxy_url else None
    ca = _pem(raw_cluster, "certificate-authority", where=where)
    if ca is not None and cluster.insecure:
        raise ConfigError(  # kubectl refuses it as well
            f"{where}: insecure-skip-tls-verify and a certificate-authority exclude each other"
        )
    raw_user = merged["users"].get(chosen.context.user, {})
    where = f"{source}: user {chosen.context.user!r}"
    credential = _credential(user, raw_user, cluster=raw_cluster, ca=ca, where=where)
    return Target(
        server=cluster.server,
        source=source,
        cluster=cluster,
        user=user,
        credential=credential,
        tls_server_name=raw_cluster.get("tls-server-name") or None,
        proxy=through,
    )


def _pem(body: Mapping[str, Any], field: str, *, where: str) -> bytes | None:
    """The PEM of `field` (a file) or of `field`-data (inline base64), checked here so that
    a bad one is named (ssl's errors name neither field nor file)."""
    path, data = body.get(field), body.get(f"{field}-data")
    if path and data:  # kubectl refuses the pair as well
        raise ConfigError(f"{where}: {field} and {field}-data are both set: keep one")
    if path:
        try:
            pem = files.read_regular_file(path, limit=_PEM_LIMIT)
        except (OSError, files.FileRejected) as err:
            reason = err.strerror if isinstance(err, OSError) and err.strerror else err
            raise ConfigError(f"{where}: cannot read {field} {path}: {reason}") from None
    elif data:
        try:  # Go's decoder skips line breaks, as some tools wrap the data
            pem = base64.b64decode("".join(str(data).split()), validate=True)
        except binascii.Error:
            raise ConfigError(f"{where}: {field}-data is not valid base64") from None
    else:
        return None
    if b"-----BEGIN " not in pem:
        what = f"{field} {path}" if path else f"{field}-data"
        raise ConfigError(f"{where}: {what} holds no PEM block")
    return pem


def _credential(
    user: User,
    raw: Mapping[str, Any],
    *,
    cluster: Mapping[str, Any],
    ca: bytes | None,
    where: str,
) -> auth.Credential:
    if user.auth_provider is not None:
        raise ConfigError(f"{where}: auth providers are not supported; use an exec plugin")
    if user.username or user.password:
        raise ConfigError(f"{where}: basic authentication is not supported")
    if bool(user.client_cert or user.client_cert_data) != bool(
        user.client_key or user.client_key_data
    ):
        raise ConfigError(f"{where}: a client certificate needs its key and a key its certificate")
    for field in ("client-certificate", "client-key"):
        _pem(raw, field, where=where)
    # client-go's precedence: a token file (read for every request) beats a token,
    # which stands in while the file cannot be read; either beats an exec plugin.
    if user.token_file:
        return auth.TokenFile(Path(user.token_file), fallback=user.token or None)
    if user.token:
        return auth.Fixed(auth.Identity(token=user.token))
    if user.exec is not None:
        raw_exec = raw.get("exec") or {}
        _check_interactive_mode(raw_exec, where=where)
        info = (
            execplugin.cluster_info(cluster, ca=ca) if raw_exec.get("provideClusterInfo") else None
        )
        return execplugin.ExecPlugin(user.exec, cluster=info)
    return auth.Fixed(auth.Identity())


def _check_interactive_mode(raw_exec: Mapping[str, Any], *, where: str) -> None:
    """kubectl's rules for exec.interactiveMode, where imageprune never has a terminal to
    give the plugin (it runs in pods, and the kubectl plugin reads the plugin's output)."""
    mode = raw_exec.get("interactiveMode")
    if mode is None:
        if raw_exec.get("apiVersion") == execplugin.API_VERSIONS[0]:  # v1 has no default
            raise ConfigError(
                f"{where}: exec.interactiveMode must be set for {execplugin.API_VERSIONS[0]}"
                " (Never or IfAvailable)"
            )
        return
    if mode == "Always":
        raise ConfigError(
            f"{where}: exec.interactiveMode Always needs a terminal, which imageprune does not "
            "give credential plugins: use IfAvailable or Never"
        )
    if mode not in ("Never", "IfAvailable"):
        raise ConfigError(
            f"{where}: exec.interactiveMode {mode!r} is not one of Never, IfAvailable, Always"
        )
