from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from pathlib import Path

import pytest
import yaml

from imageprune.kube import config
from imageprune.kube.errors import ConfigError

pytestmark = pytest.mark.unit

HERE = Path("/etc/kube/config")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _doc(
    *,
    server: str = "https://10.0.0.1:6443",
    cluster: Mapping[str, object] | None = None,
    user: Mapping[str, object] | None = None,
    current: str | None = "ctx",
) -> dict[str, object]:
    document: dict[str, object] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": server, **(cluster or {})}}],
        "users": [{"name": "u", "user": dict(user or {"token": "secret"})}],
        "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}],
    }
    if current:
        document["current-context"] = current
    return document


def _parse(document: Mapping[str, object], path: Path = HERE) -> config.Credentials:
    return config.from_kubeconfig(config.merge([(path, document)]))


def test_token_and_inline_ca() -> None:
    creds = _parse(_doc(cluster={"certificate-authority-data": _b64(b"CA PEM")}))
    assert (creds.host, creds.port, creds.tls) == ("10.0.0.1", 6443, True)
    assert creds.token == "secret"
    assert creds.ca_data == b"CA PEM"
    assert creds.ca_file is None


def test_relative_files_are_relative_to_their_kubeconfig() -> None:
    creds = _parse(
        _doc(
            cluster={"certificate-authority": "pki/ca.crt"},
            user={"client-certificate": "pki/me.crt", "client-key": "/abs/me.key"},
        )
    )
    assert creds.ca_file == Path("/etc/kube/pki/ca.crt")
    assert creds.cert_file == Path("/etc/kube/pki/me.crt")
    assert creds.key_file == Path("/abs/me.key")
    assert creds.token is None


def test_default_port_follows_the_scheme() -> None:
    assert _parse(_doc(server="https://api.example")).port == 443
    assert _parse(_doc(server="http://127.0.0.1")).port == 80


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (_doc(current=None), "no current-context"),
        (_doc(current="other"), "no context named 'other'"),
        (_doc(server="ftp://x"), "must be an https:// (or http://) URL"),
        (_doc(server="https://x:99999"), "invalid port"),
        (_doc(server="https://x/prefix"), "path prefix is not supported"),
        (_doc(user={"exec": {"command": "aws"}}), "users[u].user.exec: exec credential plugins"),
        (_doc(user={"auth-provider": {"name": "gcp"}}), "auth providers are not supported"),
        (_doc(user={"username": "a", "password": "b"}), "basic authentication"),
        (_doc(user={"client-certificate-data": _b64(b"x")}), "needs its key"),
        (_doc(cluster={"certificate-authority-data": "not base64!"}), "not valid base64"),
        ({"clusters": "oops"}, "clusters must be a list"),
        ({"clusters": [{"cluster": {}}]}, "every entry of clusters needs a name"),
    ],
)
def test_bad_kubeconfigs_say_what_is_wrong(document: Mapping[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _parse(document)
    assert message in str(caught.value)


def test_context_naming_an_undefined_cluster() -> None:
    document = _doc()
    document["contexts"] = [{"name": "ctx", "context": {"cluster": "nope", "user": "u"}}]
    with pytest.raises(ConfigError, match="names cluster 'nope', which is not defined"):
        _parse(document)


def test_merge_first_file_wins() -> None:
    first = _doc(server="https://first:1")
    second = _doc(server="https://second:2", current="ctx")
    second["current-context"] = "ignored"
    merged = config.merge([(Path("/a/config"), first), (Path("/b/config"), second)])
    assert merged.current_context == "ctx"
    assert config.from_kubeconfig(merged).host == "first"


def test_in_cluster_uses_the_service_account(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("t")
    env = {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"}
    creds = config.load(None, environ=env, service_account_dir=tmp_path)
    assert creds.server == "https://[fd00::1]:443"
    assert (creds.host, creds.port) == ("fd00::1", 443)
    assert creds.token_file == tmp_path / "token"
    assert creds.ca_file == tmp_path / "ca.crt"


def test_explicit_kubeconfig_beats_in_cluster(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("t")
    kubeconfig = tmp_path / "kc"
    kubeconfig.write_text(yaml.safe_dump(_doc(server="https://explicit:1")))
    env = {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    creds = config.load(str(kubeconfig), environ=env, service_account_dir=tmp_path)
    assert creds.host == "explicit"


def test_kubeconfig_env_skips_missing_files_of_a_list(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kc"
    kubeconfig.write_text(yaml.safe_dump(_doc(server="https://from-env:1")))
    env = {"KUBECONFIG": f"{tmp_path / 'missing'}:{kubeconfig}"}
    creds = config.load(None, environ=env, service_account_dir=tmp_path / "no-sa")
    assert creds.host == "from-env"


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing", "does not exist"),
        ("yaml", "not valid YAML"),
        ("scalar", "must be a YAML mapping"),
        ("fifo", "not a regular file (a FIFO)"),  # reading it would wait for a writer
        ("directory", "not a regular file (a directory)"),
        ("huge", "larger than"),
    ],
)
def test_unusable_kubeconfig_files(tmp_path: Path, setup: str, message: str) -> None:
    path = tmp_path / "kc"
    if setup == "fifo":
        os.mkfifo(path)
    elif setup == "directory":
        path.mkdir()
    elif setup == "huge":
        path.write_text("# padding\n" * 500_000)
    elif setup == "yaml":
        path.write_text("clusters: [\n")
    elif setup == "scalar":
        path.write_text("just a string\n")
    with pytest.raises(ConfigError) as caught:
        config.load(str(path), environ={})
    assert message in str(caught.value)
    assert str(path) in str(caught.value)


def test_no_credentials_anywhere(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="set --kubeconfig or \\$KUBECONFIG"):
        config.load(None, environ={}, service_account_dir=tmp_path)
