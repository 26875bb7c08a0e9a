"""Exec credential plugins, run for real: small shell scripts play the plugin (a
script is a real plugin to us), for both API versions, the cache until the expiry,
client certificates, and every way a plugin can fail."""

from __future__ import annotations

import datetime
import json
import stat
from pathlib import Path
from typing import Any

import pytest
from lightkube.config.models import NameValue, UserExec

from imageprune.kube import execplugin
from imageprune.kube.auth import Identity
from imageprune.kube.errors import ConfigError

pytestmark = pytest.mark.unit

V1, V1BETA1 = execplugin.API_VERSIONS
T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


def _script(tmp_path: Path, body: str, name: str = "plugin") -> Path:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def _credential(version: str, status: dict[str, object]) -> str:
    """A shell line printing an ExecCredential."""
    document = {"apiVersion": version, "kind": "ExecCredential", "status": status}
    return f"cat <<'EOF'\n{json.dumps(document)}\nEOF\n"


def _plugin(
    command: Path | str,
    version: str = V1,
    *,
    clock: list[datetime.datetime] | None = None,
    cluster: dict[str, object] | None = None,
    timeout: float = 10,
    **kw: Any,
) -> execplugin.ExecPlugin:
    config = UserExec(apiVersion=version, command=str(command), **kw)
    times = clock if clock is not None else [T0]
    return execplugin.ExecPlugin(config, cluster=cluster, timeout=timeout, now=lambda: times[0])


@pytest.mark.parametrize("version", [V1, V1BETA1])
async def test_a_token_and_what_the_plugin_is_given(tmp_path: Path, version: str) -> None:
    seen = tmp_path / "seen"
    body = f'echo "$KUBERNETES_EXEC_INFO" > {seen}\necho "$1 $FROM_KUBECONFIG" >> {seen}\n'
    script = _script(tmp_path, body + _credential(version, {"token": "tok"}))
    plugin = _plugin(
        script,
        version,
        args=["an-arg"],
        env=[NameValue(name="FROM_KUBECONFIG", value="set")],
        cluster={"server": "https://k:6443"},
    )

    assert await plugin.identity() == Identity(token="tok")
    info, argv = seen.read_text().splitlines()
    assert json.loads(info) == {
        "apiVersion": version,
        "kind": "ExecCredential",
        "spec": {"interactive": False, "cluster": {"server": "https://k:6443"}},
    }
    assert argv == "an-arg set"


async def test_the_credential_is_kept_until_it_expires(tmp_path: Path) -> None:
    count = tmp_path / "count"
    expiry = (T0 + datetime.timedelta(minutes=15)).isoformat().replace("+00:00", "Z")
    document = {
        "apiVersion": V1,
        "kind": "ExecCredential",
        "status": {"token": "tok-RUN", "expirationTimestamp": expiry},
    }
    body = (
        f"echo x >> {count}\nrun=$(wc -l < {count})\n"
        f"echo '{json.dumps(document)}' | sed \"s/RUN/$run/\"\n"
    )
    clock = [T0]
    plugin = _plugin(_script(tmp_path, body), clock=clock)

    first = await plugin.identity()
    assert first.token == "tok-1"
    assert first.expires == T0 + datetime.timedelta(minutes=15)
    clock[0] = T0 + datetime.timedelta(minutes=14)
    assert await plugin.identity() is first  # still valid: the plugin does not run again
    assert plugin.runs == 1
    clock[0] = T0 + datetime.timedelta(minutes=15)  # expired (within the margin)
    second = await plugin.identity()
    assert second.token == "tok-2"
    # A credential the apiserver refused is renewed even before its expiry.
    assert (await plugin.identity(rejected=second)).token == "tok-3"
    assert plugin.runs == 3


async def test_without_an_expiry_it_is_kept_until_refused(tmp_path: Path) -> None:
    plugin = _plugin(_script(tmp_path, _credential(V1, {"token": "tok"})))
    first = await plugin.identity()
    assert await plugin.identity(rejected=Identity(token="someone else's")) is first
    assert plugin.runs == 1
    await plugin.identity(rejected=first)
    assert plugin.runs == 2


async def test_a_client_certificate_from_the_plugin(tmp_path: Path) -> None:
    status = {"clientCertificateData": "CERT PEM\n", "clientKeyData": "KEY PEM\n"}
    plugin = _plugin(_script(tmp_path, _credential(V1BETA1, status)), V1BETA1)
    identity = await plugin.identity()
    assert (identity.token, identity.cert_pem, identity.key_pem) == (
        None,
        b"CERT PEM\n",
        b"KEY PEM\n",
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("echo 'token service down' >&2\nexit 3\n", "failed with exit code 3: token service down"),
        ("exit 4\n", "failed with exit code 4: (no output)"),
        ("echo hello\n", "did not print a usable ExecCredential: JSON is malformed"),
        ("echo '[]'\n", "Expected `object`, got `array`: b'[]\\n'"),
        (
            _credential(V1BETA1, {"token": "t"}),
            f"{V1BETA1} ExecCredential, expected {V1} ExecCredential",
        ),
        (_credential(V1, {}), "neither status.token nor status.clientCertificateData"),
        (_credential(V1, {"token": 7}), "got `int` - at `$.status.token`"),
        (_credential(V1, {"clientCertificateData": "C"}), "needs its key"),
        (
            _credential(V1, {"token": "t", "expirationTimestamp": "soon"}),
            "Invalid RFC3339 encoded datetime - at `$.status.expirationTimestamp`",
        ),
        ("head -c 2000000 /dev/zero\n", "printed more than 1024 KiB"),
    ],
)
async def test_a_failing_plugin_is_named_in_a_clear_error(
    tmp_path: Path, body: str, message: str
) -> None:
    script = _script(tmp_path, body)
    with pytest.raises(ConfigError) as caught:
        await _plugin(script).identity()
    assert f"exec credential plugin '{script}'" in str(caught.value)
    assert message in str(caught.value)


async def test_a_failure_is_shared_for_a_while_then_the_plugin_runs_again(
    tmp_path: Path,
) -> None:
    count = tmp_path / "count"
    script = _script(tmp_path, f"echo x >> {count}\necho 'token service gone' >&2\nexit 1\n")
    clock = [T0]
    plugin = _plugin(script, clock=clock)
    for _ in range(3):  # the watches and kopf's login, one after the other
        with pytest.raises(ConfigError, match="token service gone"):
            await plugin.identity()
    assert plugin.runs == 1
    clock[0] = T0 + datetime.timedelta(seconds=30)
    with pytest.raises(ConfigError):
        await plugin.identity()
    assert plugin.runs == 2
    assert count.read_text().count("x") == 2


async def test_a_missing_plugin_says_how_to_install_it(tmp_path: Path) -> None:
    hint = "install it with\n        gcloud components\n"  # multi-line, as GKE's is
    plugin = _plugin(tmp_path / "gke-auth", installHint=hint)
    with pytest.raises(ConfigError) as caught:
        await plugin.identity()
    assert f"'{tmp_path / 'gke-auth'}' cannot be run: No such file or directory" in str(
        caught.value
    )
    assert "(install it with gcloud components)" in str(caught.value)


async def test_a_hanging_plugin_is_stopped_showing_what_it_said(tmp_path: Path) -> None:
    """As a plugin waiting for a device-code login does: the instructions are in the
    error, on one line."""
    body = "echo 'To sign in, open https://login.example/device' >&2\necho 'code ABCD' >&2\n"
    script = _script(tmp_path, body + "exec sleep 600\n")
    with pytest.raises(ConfigError) as caught:
        # Long enough for sh to print two lines on a loaded machine.
        await _plugin(script, timeout=3).identity()
    assert str(caught.value).endswith(
        "did not finish within 3s: To sign in, open https://login.example/device; code ABCD"
    )


def test_only_v1_and_v1beta1_are_spoken() -> None:
    with pytest.raises(
        ConfigError, match=r"apiVersion 'client\.authentication\.k8s\.io/v1alpha1' is not"
    ):
        _plugin("aws", "client.authentication.k8s.io/v1alpha1")
