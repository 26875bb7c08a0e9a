"""Kubeconfig variants read by the real kubectl (the oracle) and by imageprune.kube,
each against the real kube-apiserver with the same request (GET the namespace
"default"): both work, or both fail, ours with a ConfigError that names the field."""

from __future__ import annotations

import base64
import copy
import dataclasses
import json
import os
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from lightkube.generic_resource import create_global_resource

from imageprune.kube import config
from imageprune.kube.client import Client
from imageprune.kube.errors import ApiError, ConfigError, Unreachable
from testkit import proxy
from testkit.agent import admin_token
from testkit.kube import ControlPlane

pytestmark = pytest.mark.k8s
Namespace = create_global_resource("", "v1", "Namespace", "namespaces")
V1, V1BETA1 = "client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1"


@dataclasses.dataclass(frozen=True)
class Admin:
    plane: ControlPlane
    token: str  # a cluster-admin bearer token


@pytest.fixture(scope="module")
def admin(kube_control_plane: ControlPlane) -> Admin:
    return Admin(kube_control_plane, admin_token(kube_control_plane, "kubeconfig-compat"))


def _kubectl(plane: ControlPlane, kubeconfig: Path | None, env: Mapping[str, str]) -> str | None:
    """kubectl's error (its last line), or None when it got the namespace."""
    argv = [str(plane.kubectl_bin), f"--cache-dir={plane.workdir / 'kubectl-cache'}"]
    if kubeconfig is not None:
        argv.append(f"--kubeconfig={kubeconfig}")
    done = subprocess.run(
        [*argv, "get", "namespace", "default", "-o", "name", "--request-timeout=20s"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **env},
    )
    return done.stderr.strip().splitlines()[-1] if done.returncode else None


async def _ours(kubeconfig: Path | None, env: Mapping[str, str], workdir: Path) -> str | None:
    """Our error, or None when we got the namespace."""
    explicit = str(kubeconfig) if kubeconfig is not None else None
    try:
        target = config.load(explicit, environ=env, service_account_dir=workdir / "no-sa")
        client = Client(target, timeout=20)
        try:
            await client.check()
            await client.get(Namespace, "default")
        finally:
            await client.close()
    except (ConfigError, ApiError, Unreachable) as err:
        return f"{type(err).__name__}: {err}"
    return None


async def _both(
    plane: ControlPlane, kubeconfig: Path | None, env: Mapping[str, str] | None = None
) -> tuple[str | None, str | None]:
    """(kubectl's error, ours): None for success. Without a kubeconfig, env decides."""
    env = dict(env or {})
    return _kubectl(plane, kubeconfig, env), await _ours(kubeconfig, env, plane.workdir)


def _admin(plane: ControlPlane) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(plane.kubeconfig_path.read_text())
    return document


def _write(tmp_path: Path, document: Mapping[str, Any], name: str = "kubeconfig") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(dict(document)))
    return path


def _variant(
    plane: ControlPlane,
    *,
    cluster: Mapping[str, Any] | None = None,
    user: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The admin kubeconfig with its cluster and user fields replaced (None deletes)."""
    document = copy.deepcopy(_admin(plane))
    cluster_entry, user_entry = document["clusters"][0]["cluster"], document["users"][0]["user"]
    for entry, changes in ((cluster_entry, cluster), (user_entry, user)):
        for key, value in (changes or {}).items():
            if value is None:
                entry.pop(key, None)
            else:
                entry[key] = value
    return document


_NO_CA = {"certificate-authority-data": None}
_NO_CERT = {"client-certificate-data": None, "client-key-data": None}


@pytest.mark.parametrize(
    "cluster",
    [
        pytest.param({"certificate-authority": "pki/ca.crt", **_NO_CA}, id="ca-file-relative"),
        pytest.param({"insecure-skip-tls-verify": True, **_NO_CA}, id="insecure"),
        pytest.param({"tls-server-name": "kubernetes.default"}, id="tls-server-name"),
        pytest.param({"disable-compression": True}, id="disable-compression"),
        pytest.param(
            {"extensions": [{"name": "example.com/x", "extension": {"a": 1}}]}, id="extensions"
        ),
    ],
)
async def test_cluster_variants_both_work(
    kube_control_plane: ControlPlane, tmp_path: Path, cluster: Mapping[str, Any]
) -> None:
    (tmp_path / "pki").mkdir()
    (tmp_path / "pki" / "ca.crt").write_bytes(kube_control_plane.ca.cert_pem)
    kubeconfig = _write(tmp_path, _variant(kube_control_plane, cluster=cluster))
    assert await _both(kube_control_plane, kubeconfig) == (None, None)


async def test_a_server_path_is_kept(kube_control_plane: ControlPlane, tmp_path: Path) -> None:
    """Rancher serves each cluster under a path (/k8s/clusters/ID): requests go below it.
    This apiserver has nothing there, so both must get a 404 (not the namespace)."""
    for suffix, expected in (
        ("/", None),
        ("/k8s/clusters/c-m-1", "ApiError: GET default: HTTP 404"),
    ):
        cluster = {"server": kube_control_plane.server + suffix}
        kubeconfig = _write(tmp_path, _variant(kube_control_plane, cluster=cluster))
        theirs, ours = await _both(kube_control_plane, kubeconfig)
        assert (theirs is None, ours) == (expected is None, expected)


async def test_client_certificate_files_relative_to_the_kubeconfig(
    kube_control_plane: ControlPlane, tmp_path: Path
) -> None:
    user = {"client-certificate": "me.crt", "client-key": "me.key", **_NO_CERT}
    admin = kube_control_plane.pki
    (tmp_path / "me.crt").write_bytes((admin / "admin.crt").read_bytes())
    (tmp_path / "me.key").write_bytes((admin / "admin.key").read_bytes())
    kubeconfig = _write(tmp_path, _variant(kube_control_plane, user=user))
    assert await _both(kube_control_plane, kubeconfig) == (None, None)


@pytest.mark.parametrize(
    "encoded",
    [
        pytest.param(lambda doc: yaml.safe_dump(doc).replace("\n", "\r\n").encode(), id="crlf"),
        pytest.param(lambda doc: ("\ufeff" + yaml.safe_dump(doc)).encode(), id="utf8-bom"),
        # As Windows PowerShell's `kubectl config view --raw > config` writes it.
        pytest.param(lambda doc: yaml.safe_dump(doc).encode("utf-16"), id="utf16-bom"),
        pytest.param(lambda doc: json.dumps(doc).encode(), id="json"),
        pytest.param(
            lambda doc: yaml.safe_dump(
                {**doc, "preferences": {}, "extensions": [{"name": "x", "extension": {}}]}
            ).encode(),
            id="preferences-and-extensions",
        ),
    ],
)
async def test_file_forms_both_work(
    kube_control_plane: ControlPlane,
    tmp_path: Path,
    encoded: Callable[[dict[str, Any]], bytes],
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_bytes(encoded(_admin(kube_control_plane)))
    assert await _both(kube_control_plane, kubeconfig) == (None, None)


async def test_namespace_in_the_context_is_harmless(
    kube_control_plane: ControlPlane, tmp_path: Path
) -> None:
    document = _admin(kube_control_plane)
    document["contexts"][0]["context"]["namespace"] = "kube-system"
    assert await _both(kube_control_plane, _write(tmp_path, document)) == (None, None)


@pytest.mark.parametrize(
    ("cluster", "ours"),
    [
        pytest.param(
            {"tls-server-name": "wrong.example"},
            "Unreachable: cannot reach the apiserver",
            id="tls-server-name-not-in-the-certificate",
        ),
        pytest.param(
            {"insecure-skip-tls-verify": True},
            "insecure-skip-tls-verify and a certificate-authority exclude each other",
            id="insecure-with-a-ca",
        ),
        pytest.param(
            {"certificate-authority": "missing.crt", **_NO_CA},
            "cannot read certificate-authority",
            id="ca-file-missing",
        ),
        pytest.param(
            {"certificate-authority": str(Path(__file__))},
            "certificate-authority and certificate-authority-data are both set",
            id="ca-file-and-ca-data",
        ),
        pytest.param(
            {"certificate-authority-data": base64.b64encode(b"hello").decode()},
            "certificate-authority-data holds no PEM block",
            id="ca-data-not-pem",
        ),
        pytest.param(
            # Both go through the proxy, and nothing listens there.
            {"proxy-url": "http://127.0.0.1:1"},
            "Unreachable: cannot reach the apiserver",
            id="proxy-url-nobody-listens",
        ),
        pytest.param(
            {"proxy-url": "socks5://127.0.0.1:1"},
            "must be an http:// or https:// URL (socks5 is not supported)",
            id="proxy-url-socks5",
        ),
    ],
)
async def test_cluster_variants_both_fail(
    kube_control_plane: ControlPlane, tmp_path: Path, cluster: Mapping[str, Any], ours: str
) -> None:
    kubeconfig = _write(tmp_path, _variant(kube_control_plane, cluster=cluster))
    theirs, mine = await _both(kube_control_plane, kubeconfig)
    assert theirs is not None
    assert mine is not None
    assert ours in mine


@pytest.mark.parametrize(
    ("token_field", "file_content", "works"),
    [
        pytest.param("good", None, True, id="token"),
        pytest.param(None, "good", True, id="tokenFile"),
        # client-go reads the file for every request: it beats the token...
        pytest.param("bad", "good", True, id="tokenFile-beats-token"),
        pytest.param("good", "bad", False, id="bad-tokenFile-beats-token"),
        # ...which stands in while the file cannot be read.
        pytest.param("good", "missing", True, id="token-while-tokenFile-missing"),
    ],
)
async def test_token_and_token_file(
    admin: Admin,
    tmp_path: Path,
    token_field: str | None,
    file_content: str | None,
    works: bool,
) -> None:
    values = {"good": admin.token, "bad": "not-a-token"}
    user: dict[str, Any] = {**_NO_CERT}
    if token_field is not None:
        user["token"] = values[token_field]
    if file_content is not None:
        user["tokenFile"] = "token"
        if file_content != "missing":
            (tmp_path / "token").write_text(values[file_content] + "\n")
    kubeconfig = _write(tmp_path, _variant(admin.plane, user=user))
    theirs, ours = await _both(admin.plane, kubeconfig)
    if works:
        assert (theirs, ours) == (None, None)
    else:
        assert theirs is not None
        assert ours is not None
        assert "401" in ours


def _plugin(tmp_path: Path, dump: Path) -> Path:
    """A credential plugin that records what it was given (its KUBERNETES_EXEC_INFO, its
    argument and an env from the kubeconfig) in `dump`, then prints the token it finds in
    tmp_path/token for the apiVersion the kubeconfig names ($VERSION)."""
    script = tmp_path / "bin" / "plugin"
    script.parent.mkdir(exist_ok=True)
    script.write_text(
        "#!/bin/sh\n"
        f'printf "%s\\n%s %s\\n" "$KUBERNETES_EXEC_INFO" "$1" "$FROM_KUBECONFIG" > {dump}\n'
        'printf \'{"apiVersion":"%s","kind":"ExecCredential","status":{"token":"%s"}}\' '
        f'"$VERSION" "$(cat {tmp_path / "token"})"\n'
    )
    script.chmod(0o755)
    return script


def _exec_kubeconfig(
    plane: ControlPlane, tmp_path: Path, version: str, **fields: Any
) -> tuple[Path, Path]:
    """A kubeconfig whose user is _plugin (named relative to it), and its dump."""
    dump = tmp_path / "dump"
    _plugin(tmp_path, dump)
    env = [{"name": "FROM_KUBECONFIG", "value": "env"}, {"name": "VERSION", "value": version}]
    plugin = {"apiVersion": version, "command": "./bin/plugin", "args": ["arg"], "env": env}
    plugin.update(fields)
    return _write(tmp_path, _variant(plane, user={**_NO_CERT, "exec": plugin})), dump


@pytest.mark.parametrize(
    ("version", "mode", "ours"),
    [
        pytest.param(V1, None, "exec.interactiveMode must be set", id="v1-unset"),
        pytest.param(V1BETA1, None, None, id="v1beta1-unset"),
        pytest.param(V1, "Never", None, id="v1-Never"),
        pytest.param(V1, "IfAvailable", None, id="v1-IfAvailable"),
        pytest.param(V1BETA1, "Always", "Always needs a terminal", id="v1beta1-Always"),
        pytest.param(V1, "Sometimes", "'Sometimes' is not one of", id="v1-invalid"),
    ],
)
async def test_exec_plugin_interactive_mode(
    admin: Admin,
    tmp_path: Path,
    version: str,
    mode: str | None,
    ours: str | None,
) -> None:
    """Run without a terminal, as both are here (and we always are). Where both run the
    plugin, it is given the same: KUBERNETES_EXEC_INFO, the args and env."""
    (tmp_path / "token").write_text(admin.token)
    fields = {"interactiveMode": mode} if mode else {}
    kubeconfig, dump = _exec_kubeconfig(admin.plane, tmp_path, version, **fields)
    theirs = _kubectl(admin.plane, kubeconfig, {})
    given_by_kubectl = _given(dump)
    mine = await _ours(kubeconfig, {}, admin.plane.workdir)
    if ours is None:
        assert (theirs, mine) == (None, None)
        assert _given(dump) == given_by_kubectl
        assert given_by_kubectl[1] == "arg env"
    else:
        assert theirs is not None
        assert mine is not None
        assert ours in mine


def _given(dump: Path) -> tuple[Any, str]:
    """What _plugin recorded (and the record removed): KUBERNETES_EXEC_INFO, parsed, and
    its argument and env; (None, "") when it did not run."""
    if not dump.exists():
        return None, ""
    lines = [line for line in dump.read_text().splitlines() if line]
    dump.unlink()
    return json.loads(lines[0]), lines[-1]


async def test_exec_plugin_cluster_info_is_what_kubectl_gives(admin: Admin, tmp_path: Path) -> None:
    """provideClusterInfo: the same KUBERNETES_EXEC_INFO from kubectl and from us, with
    a CA read from a file, a tls-server-name and the exec extension (`config`)."""
    (tmp_path / "token").write_text(admin.token)
    (tmp_path / "ca.crt").write_bytes(admin.plane.ca.cert_pem)
    kubeconfig, dump = _exec_kubeconfig(
        admin.plane, tmp_path, V1, interactiveMode="Never", provideClusterInfo=True
    )
    document = yaml.safe_load(kubeconfig.read_text())
    cluster = document["clusters"][0]["cluster"]
    del cluster["certificate-authority-data"]
    extension = {"name": "client.authentication.k8s.io/exec", "extension": {"audience": "a"}}
    cluster.update(
        {
            "certificate-authority": "ca.crt",
            "tls-server-name": "kubernetes.default",
            "extensions": [extension],
        }
    )
    _write(tmp_path, document)

    assert _kubectl(admin.plane, kubeconfig, {}) is None
    theirs, _ = _given(dump)
    assert await _ours(kubeconfig, {}, admin.plane.workdir) is None
    mine, _ = _given(dump)
    assert mine == theirs
    given = mine["spec"]["cluster"]
    assert base64.b64decode(given["certificate-authority-data"]) == admin.plane.ca.cert_pem
    assert given["config"] == {"audience": "a"}


async def test_a_missing_exec_plugin_shows_its_install_hint(
    kube_control_plane: ControlPlane, tmp_path: Path
) -> None:
    hint = "install it: gcloud components install gke-gcloud-auth-plugin"
    plugin = {
        "apiVersion": V1,
        "command": "imageprune-no-such-plugin",
        "interactiveMode": "Never",
        "installHint": hint,
    }
    kubeconfig = _write(tmp_path, _variant(kube_control_plane, user={**_NO_CERT, "exec": plugin}))
    theirs, ours = await _both(kube_control_plane, kubeconfig)
    assert theirs == hint  # kubectl's last line
    assert ours is not None
    assert ours.endswith(
        f"'imageprune-no-such-plugin' cannot be run: No such file or directory ({hint})"
    )


@pytest.mark.parametrize(
    ("change", "ours"),
    [
        pytest.param(
            {"current-context": ""}, "current-context is not set", id="no-current-context"
        ),
        pytest.param({"users": []}, "which is not defined", id="context-names-a-missing-user"),
        pytest.param(
            {"clusters": []}, "which is not defined", id="context-names-a-missing-cluster"
        ),
    ],
)
async def test_contexts_that_cannot_work_fail_both(
    kube_control_plane: ControlPlane, tmp_path: Path, change: Mapping[str, Any], ours: str
) -> None:
    kubeconfig = _write(tmp_path, {**_admin(kube_control_plane), **change})
    theirs, mine = await _both(kube_control_plane, kubeconfig)
    assert theirs is not None
    assert mine is not None
    assert ours in mine


async def test_kubeconfig_lists(kube_control_plane: ControlPlane, tmp_path: Path) -> None:
    """$KUBECONFIG: empty entries are skipped, a directory is an error, and without it
    both read ~/.kube/config."""
    admin = str(kube_control_plane.kubeconfig_path)
    home = {"HOME": str(tmp_path)}
    skipped = {**home, "KUBECONFIG": f"{os.pathsep}{admin}{os.pathsep}"}
    assert await _both(kube_control_plane, None, skipped) == (None, None)

    for value in (os.pathsep * 2, f"{tmp_path}{os.pathsep}{admin}"):
        theirs, ours = await _both(kube_control_plane, None, {**home, "KUBECONFIG": value})
        assert theirs is not None
        assert ours is not None
        assert "ConfigError: " in ours

    (tmp_path / ".kube").mkdir()
    (tmp_path / ".kube" / "config").write_text(kube_control_plane.kubeconfig_path.read_text())
    assert await _both(kube_control_plane, None, home) == (None, None)


# In the apiserver's certificate, and resolved only by the proxy (as a corporate proxy
# resolves a managed cluster's private name): a client that skips the proxy fails.
PRIVATE_NAME = "kubernetes.default.svc"


def _private_server(plane: ControlPlane, **cluster: Any) -> dict[str, Any]:
    port = int(plane.server.rsplit(":", 1)[1])
    return _variant(plane, cluster={"server": f"https://{PRIVATE_NAME}:{port}", **cluster})


async def test_a_proxy_url_tunnels_to_a_name_only_the_proxy_resolves(
    kube_control_plane: ControlPlane, tmp_path: Path
) -> None:
    with proxy.running({PRIVATE_NAME: "127.0.0.1"}) as server:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        kubeconfig = _write(tmp_path, _private_server(kube_control_plane, **{"proxy-url": url}))
        assert await _both(kube_control_plane, kubeconfig) == (None, None)
    assert len(server.tunnels) >= 2, server.tunnels  # kubectl's, and ours
    assert {target.split(":")[0] for target in server.tunnels} == {PRIVATE_NAME}


@pytest.mark.parametrize(
    ("no_proxy", "through_the_proxy"),
    [
        pytest.param("", True, id="no-NO_PROXY"),
        pytest.param("example.com,10.0.0.0/8", True, id="NO_PROXY-names-others"),
        pytest.param("kubernetes.default.svc:1", True, id="NO_PROXY-other-port"),
        pytest.param(".svc", False, id="NO_PROXY-domain"),
        pytest.param("default.svc", False, id="NO_PROXY-parent-name"),
        pytest.param("*", False, id="NO_PROXY-star"),
    ],
)
async def test_https_proxy_from_the_environment_unless_no_proxy_names_the_server(
    kube_control_plane: ControlPlane, tmp_path: Path, no_proxy: str, through_the_proxy: bool
) -> None:
    """A server the NO_PROXY entry names is dialled directly, and its name does not
    resolve here: both fail alike."""
    kubeconfig = _write(tmp_path, _private_server(kube_control_plane))
    with proxy.running({PRIVATE_NAME: "127.0.0.1"}) as server:
        env = {"HTTPS_PROXY": f"127.0.0.1:{server.server_address[1]}", "NO_PROXY": no_proxy}
        theirs, ours = await _both(kube_control_plane, kubeconfig, env)
    assert (theirs is None, ours is None) == (through_the_proxy, through_the_proxy), (theirs, ours)
    assert bool(server.tunnels) == through_the_proxy, server.tunnels


async def test_a_loopback_server_never_goes_through_the_environments_proxy(
    kube_control_plane: ControlPlane, tmp_path: Path
) -> None:
    kubeconfig = _write(tmp_path, _admin(kube_control_plane))  # https://127.0.0.1:port
    env = {"HTTPS_PROXY": "http://127.0.0.1:1"}  # nothing listens there
    assert await _both(kube_control_plane, kubeconfig, env) == (None, None)
