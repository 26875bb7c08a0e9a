"""imageprune.kube.config: which kubeconfig, which context, kubectl's merge of several
files, relative paths, in-cluster, and files that must not be read."""

from __future__ import annotations

import base64
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from imageprune.kube import auth, config, execplugin
from imageprune.kube.errors import ConfigError

pytestmark = pytest.mark.unit

HERE = Path("/etc/kube/config")
# The checks see only the PEM armour; ssl reads the rest when it connects.
PEM = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
V1 = execplugin.API_VERSIONS[0]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _doc(
    *,
    server: str = "https://10.0.0.1:6443",
    cluster: Mapping[str, object] | None = None,
    user: Mapping[str, object] | None = None,
    current: str | None = "ctx",
    name: str = "ctx",
) -> dict[str, Any]:
    document: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": f"c-{name}", "cluster": {"server": server, **(cluster or {})}}],
        "users": [{"name": f"u-{name}", "user": dict(user or {"token": "secret"})}],
        "contexts": [{"name": name, "context": {"cluster": f"c-{name}", "user": f"u-{name}"}}],
    }
    if current:
        document["current-context"] = current
    return document


def _parse(document: Mapping[str, Any], context: str | None = None) -> config.Target:
    return config.from_kubeconfig(config.merge([(HERE, document)]), context=context)


async def test_token_and_inline_ca() -> None:
    target = _parse(_doc(cluster={"certificate-authority-data": _b64(PEM)}))
    assert target.server == "https://10.0.0.1:6443"
    assert target.cluster.certificate_auth_data == _b64(PEM)
    assert await target.credential.identity() == auth.Identity(token="secret")


def test_relative_files_are_relative_to_their_kubeconfig(tmp_path: Path) -> None:
    (tmp_path / "pki").mkdir()
    for name in ("pki/ca.crt", "pki/me.crt", "me.key"):
        (tmp_path / name).write_bytes(PEM)
    document = _doc(
        cluster={"certificate-authority": "pki/ca.crt"},
        user={
            "client-certificate": "pki/me.crt",
            "client-key": str(tmp_path / "me.key"),
            "tokenFile": "tok",
        },
    )
    target = config.from_kubeconfig(config.merge([(tmp_path / "config", document)]))
    assert target.cluster.certificate_auth == str(tmp_path / "pki/ca.crt")
    assert target.user.client_cert == str(tmp_path / "pki/me.crt")
    assert target.user.client_key == str(tmp_path / "me.key")
    assert target.credential == auth.TokenFile(tmp_path / "tok")


def test_a_tilde_is_a_folder_name_as_for_kubectl() -> None:
    merged = config.merge([(HERE, _doc(cluster={"certificate-authority": "~/ca.crt"}))])
    assert merged["clusters"]["c-ctx"]["certificate-authority"] == "/etc/kube/~/ca.crt"


def test_exec_plugin_user() -> None:
    target = _parse(
        _doc(
            user={
                "exec": {
                    "apiVersion": "client.authentication.k8s.io/v1",
                    "command": "bin/get-token",
                    "args": ["--x"],
                    "env": [{"name": "A", "value": "1"}],
                    "interactiveMode": "Never",
                    "provideClusterInfo": True,
                }
            },
            cluster={"insecure-skip-tls-verify": True, "tls-server-name": "kube.internal"},
        )
    )
    assert isinstance(target.credential, execplugin.ExecPlugin)
    plugin = target.credential.config
    assert plugin.command == "/etc/kube/bin/get-token"  # relative to the kubeconfig
    assert plugin.args == ["--x"]
    assert [(e.name, e.value) for e in plugin.env or ()] == [("A", "1")]
    # client-go's form of spec.cluster: the kubeconfig's own field names.
    assert target.credential.cluster == {
        "server": "https://10.0.0.1:6443",
        "insecure-skip-tls-verify": True,
        "tls-server-name": "kube.internal",
        "config": None,
    }


def test_cluster_info_carries_the_ca_and_the_exec_extension() -> None:
    cluster = {
        "server": "https://k:6443",
        "certificate-authority": "/ignored/ca.crt",  # the PEM is passed in, read once
        "disable-compression": True,
        "extensions": [
            {"name": "other", "extension": {"x": 1}},
            {"name": "client.authentication.k8s.io/exec", "extension": {"audience": "aud"}},
        ],
    }
    assert execplugin.cluster_info(cluster, ca=PEM) == {
        "server": "https://k:6443",
        "certificate-authority-data": _b64(PEM),
        "disable-compression": True,
        "config": {"audience": "aud"},
    }


def test_a_bare_plugin_command_is_looked_up_in_path() -> None:
    exec_ = {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": "aws"}
    target = _parse(_doc(user={"exec": exec_}))
    assert isinstance(target.credential, execplugin.ExecPlugin)
    assert target.credential.config.command == "aws"


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (_doc(current=None), "current-context is not set: choose one with --context (ctx)"),
        (_doc(current="other"), "Context 'other' not found"),
        (_doc(server="ftp://x"), "must be an https:// (or http://) URL"),
        (_doc(user={"auth-provider": {"name": "gcp"}}), "auth providers are not supported"),
        (_doc(user={"username": "a", "password": "b"}), "basic authentication"),
        (_doc(user={"client-certificate-data": _b64(b"x")}), "needs its key"),
        (
            _doc(user={"exec": {"command": "x"}}),
            "missing required field `apiVersion` - at `$.exec`",
        ),
        (
            _doc(
                user={
                    "exec": {"apiVersion": "client.authentication.k8s.io/v1alpha1", "command": "x"}
                }
            ),
            "is not supported, only client.authentication.k8s.io/v1 and",
        ),
        (
            _doc(
                user={
                    "exec": {"apiVersion": execplugin.API_VERSIONS[0], "command": "x", "env": [1]}
                }
            ),
            "at `$.exec.env[0]`",
        ),
        (
            _doc(cluster={"proxy-url": "socks5://localhost:1080"}),
            "cluster 'c-ctx': proxy-url: proxy 'socks5://localhost:1080' must be an http://",
        ),
        (
            _doc(
                cluster={"insecure-skip-tls-verify": True, "certificate-authority-data": _b64(PEM)}
            ),
            "cluster 'c-ctx': insecure-skip-tls-verify and a certificate-authority exclude",
        ),
        (
            _doc(cluster={"certificate-authority-data": "not base64!"}),
            "cluster 'c-ctx': certificate-authority-data is not valid base64",
        ),
        (
            _doc(cluster={"certificate-authority-data": _b64(b"hello")}),
            "cluster 'c-ctx': certificate-authority-data holds no PEM block",
        ),
        (
            _doc(cluster={"certificate-authority": "x.crt", "certificate-authority-data": "eA=="}),
            "cluster 'c-ctx': certificate-authority and certificate-authority-data are both set",
        ),
        (
            _doc(
                user={
                    "client-key": "k",
                    "client-key-data": "eA==",
                    "client-certificate-data": _b64(PEM),
                }
            ),
            "user 'u-ctx': client-key and client-key-data are both set: keep one",
        ),
        (
            _doc(cluster={"certificate-authority": "missing.crt"}),
            "cluster 'c-ctx': cannot read certificate-authority /etc/kube/missing.crt: No such",
        ),
        (
            _doc(user={"client-certificate-data": _b64(PEM), "client-key": "/nope/me.key"}),
            "user 'u-ctx': cannot read client-key /nope/me.key: No such file or directory",
        ),
        (
            _doc(user={"exec": {"apiVersion": V1, "command": "x"}}),
            "user 'u-ctx': exec.interactiveMode must be set for client.authentication.k8s.io/v1",
        ),
        (
            _doc(user={"exec": {"apiVersion": V1, "command": "x", "interactiveMode": "Always"}}),
            "exec.interactiveMode Always needs a terminal",
        ),
        (
            _doc(user={"exec": {"apiVersion": V1, "command": "x", "interactiveMode": "Often"}}),
            "exec.interactiveMode 'Often' is not one of Never, IfAvailable, Always",
        ),
        ({"clusters": "oops"}, "clusters must be a list"),
        ({"clusters": [{"cluster": {}}]}, "every entry of clusters needs a name"),
    ],
)
def test_bad_kubeconfigs_say_what_is_wrong(document: Mapping[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _parse(document)
    assert message in str(caught.value)


def test_context_naming_an_undefined_cluster() -> None:
    document = _doc()
    document["contexts"] = [{"name": "ctx", "context": {"cluster": "nope", "user": "u-ctx"}}]
    with pytest.raises(ConfigError, match="context 'ctx' names 'nope', which is not defined"):
        _parse(document)


def test_several_contexts_pick_the_current_one_or_the_chosen_one() -> None:
    document = _doc(server="https://one:1", name="one", current="two")
    other = _doc(server="https://two:2", name="two")
    for key in ("clusters", "users", "contexts"):
        document[key] += other[key]
    assert _parse(document).server == "https://two:2"
    assert _parse(document, context="one").server == "https://one:1"


def test_merge_first_file_wins_per_entry_and_for_current_context() -> None:
    first = _doc(server="https://first:1", current=None)
    second = _doc(server="https://second:2", current="ctx")
    third = _doc(server="https://third:3", name="extra", current="extra")
    merged = config.merge(
        [(Path("/a/config"), first), (Path("/b/config"), second), (Path("/c/config"), third)]
    )
    assert merged["current-context"] == "ctx"  # the first file that sets one
    assert config.from_kubeconfig(merged).server == "https://first:1"
    assert config.from_kubeconfig(merged, context="extra").server == "https://third:3"


def test_in_cluster_uses_the_service_account(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("t")
    env = {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"}
    target = config.load(None, environ=env, service_account_dir=tmp_path)
    assert target.server == "https://[fd00::1]:443"
    assert target.credential == auth.TokenFile(tmp_path / "token")
    assert target.cluster.certificate_auth == str(tmp_path / "ca.crt")


async def test_a_token_file_is_read_again_for_every_request(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("old\n")
    credential = auth.TokenFile(token)
    assert (await credential.identity()).token == "old"
    token.write_text("new\n")  # the kubelet rotated it
    assert (await credential.identity()).token == "new"
    token.unlink()
    with pytest.raises(ConfigError, match="cannot read the token file"):
        await credential.identity()


async def test_a_token_file_beats_a_token_which_stands_in_while_it_cannot_be_read(
    tmp_path: Path,
) -> None:
    """client-go's order, checked with kubectl against a real apiserver."""
    document = _doc(user={"token": "static", "tokenFile": str(tmp_path / "token")})
    credential = _parse(document).credential
    assert credential == auth.TokenFile(tmp_path / "token", fallback="static")
    assert (await credential.identity()).token == "static"  # no file yet
    (tmp_path / "token").write_text("from-file\n")
    assert (await credential.identity()).token == "from-file"


def test_explicit_kubeconfig_and_context_beat_in_cluster(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("t")
    kubeconfig = tmp_path / "kc"
    kubeconfig.write_text(yaml.safe_dump(_doc(server="https://explicit:1")))
    env = {
        "KUBERNETES_SERVICE_HOST": "10.0.0.1",
        "KUBERNETES_SERVICE_PORT": "443",
        "KUBECONFIG": str(kubeconfig),
    }
    explicit = config.load(str(kubeconfig), environ=env, service_account_dir=tmp_path)
    assert explicit.server == "https://explicit:1"
    # A context exists only in a kubeconfig: asking for one skips the service account.
    chosen = config.load(None, context="ctx", environ=env, service_account_dir=tmp_path)
    assert chosen.server == "https://explicit:1"


def test_kubeconfig_env_merges_its_files_and_skips_missing_ones(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    first.write_text(yaml.safe_dump(_doc(server="https://first:1", name="a", current=None)))
    second.write_text(yaml.safe_dump(_doc(server="https://second:2", name="b", current="a")))
    env = {"KUBECONFIG": os.pathsep.join([str(tmp_path / "missing"), str(first), str(second)])}
    target = config.load(None, environ=env, service_account_dir=tmp_path / "no-sa")
    assert target.server == "https://first:1"  # current-context from the second file
    assert str(first) in target.source
    other = config.load(None, context="b", environ=env, service_account_dir=tmp_path / "no-sa")
    assert other.server == "https://second:2"


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda path: None, "does not exist"),
        (lambda path: path.write_text("clusters: [\n"), "not valid YAML"),
        (lambda path: path.write_text("just a string\n"), "must be a YAML mapping"),
        (
            lambda path: path.write_text("kind: Pod\napiVersion: v1\n"),
            "is a v1 Pod, not a v1 Config",
        ),
        (
            lambda path: path.write_text(yaml.safe_dump({**_doc(), "apiVersion": "v2"})),
            "is a v2 Config, not a v1 Config",
        ),
        (
            lambda path: path.write_text(yaml.safe_dump({**_doc(), "users": _doc()["users"] * 2})),
            "two users are named 'u-ctx'",
        ),
        (lambda path: path.write_bytes(b"# caf\xe9\n"), "not valid YAML: unacceptable character"),
        (os.mkfifo, "not a regular file (a FIFO)"),  # reading it would wait for a writer
        (Path.mkdir, "not a regular file (a directory)"),
        (lambda path: path.write_text("# padding\n" * 500_000), "larger than"),
    ],
)
def test_unusable_kubeconfig_files(
    tmp_path: Path, setup: Callable[[Path], object], message: str
) -> None:
    path = tmp_path / "kc"
    setup(path)
    with pytest.raises(ConfigError) as caught:
        config.load(str(path), environ={})
    assert message in str(caught.value)
    assert str(path) in str(caught.value)


def _pod_and_home(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """An environment that is both in a pod (a service account at tmp_path/sa) and has
    a ~/.kube/config (under a fake HOME); and that service account's directory."""
    account = tmp_path / "sa"
    account.mkdir()
    (account / "token").write_text("t")
    (tmp_path / ".kube").mkdir()
    (tmp_path / ".kube" / "config").write_text(yaml.safe_dump(_doc(server="https://home:1")))
    env = {"HOME": str(tmp_path), "KUBERNETES_SERVICE_HOST": "10.0.0.1"}
    return env, account


def test_without_kubeconfig_or_env_the_home_kubeconfig_is_read(tmp_path: Path) -> None:
    env, _ = _pod_and_home(tmp_path)
    del env["KUBERNETES_SERVICE_HOST"]
    target = config.load(None, environ=env, service_account_dir=tmp_path / "no-sa")
    assert target.server == "https://home:1"
    assert str(tmp_path / ".kube" / "config") in target.source
    # $KUBECONFIG, even one naming a missing file beside a present one, comes first.
    (tmp_path / "env").write_text(yaml.safe_dump(_doc(server="https://env:1")))
    env[config.KUBECONFIG_ENV] = f"{tmp_path / 'missing'}{os.pathsep}{tmp_path / 'env'}"
    assert config.load(None, environ=env).server == "https://env:1"


def test_in_a_pod_the_agent_takes_the_service_account_and_the_plugin_the_kubeconfig(
    tmp_path: Path,
) -> None:
    env, account = _pod_and_home(tmp_path)
    agent = config.load(None, environ=env, service_account_dir=account)
    assert agent.server == "https://10.0.0.1:443"
    plugin = config.load(None, environ=env, service_account_dir=account, in_cluster_first=False)
    assert plugin.server == "https://home:1"
    # kubectl falls back to the service account only when it finds no kubeconfig.
    (tmp_path / ".kube" / "config").unlink()
    alone = config.load(None, environ=env, service_account_dir=account, in_cluster_first=False)
    assert alone.server == "https://10.0.0.1:443"


def test_a_kubeconfig_env_of_empty_entries_names_no_file(tmp_path: Path) -> None:
    env = {config.KUBECONFIG_ENV: os.pathsep * 2, "HOME": str(tmp_path)}
    with pytest.raises(ConfigError, match=r"^\$KUBECONFIG \('::'\) names no file$"):
        config.load(None, environ=env, service_account_dir=tmp_path)


def test_no_credentials_anywhere_lists_every_place_tried(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path)}
    with pytest.raises(ConfigError) as caught:
        config.load(None, environ=env, service_account_dir=tmp_path / "sa")
    assert str(caught.value) == (
        f"no Kubernetes credentials: no --kubeconfig, $KUBECONFIG unset, no "
        f"{tmp_path}/.kube/config, and not in a pod (KUBERNETES_SERVICE_HOST is unset or "
        f"{tmp_path}/sa/token is missing)"
    )
    with pytest.raises(ConfigError, match=r"no ~/\.kube/config \(\$HOME is unset\)"):
        config.load(None, environ={}, service_account_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"^--context x: no kubeconfig"):
        config.load(None, context="x", environ=env, service_account_dir=tmp_path)
