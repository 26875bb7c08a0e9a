from __future__ import annotations

from pathlib import Path

import pytest

from imageprune_cri import EndpointNotFound, endpoint

pytestmark = pytest.mark.unit


def test_explicit_wins_over_env_and_defaults(tmp_path: Path) -> None:
    sock = tmp_path / "a.sock"
    sock.touch()
    env = {endpoint.ENV_VAR: "unix:///env.sock"}
    assert endpoint.resolve("/x.sock", environ=env, candidates=[str(sock)]) == "unix:///x.sock"
    assert endpoint.resolve(None, environ=env, candidates=[str(sock)]) == "unix:///env.sock"
    assert endpoint.resolve(None, environ={}, candidates=[str(sock)]) == f"unix://{sock}"


def test_first_existing_default_socket(tmp_path: Path) -> None:
    missing, present = tmp_path / "containerd.sock", tmp_path / "crio.sock"
    present.touch()
    found = endpoint.resolve(None, environ={}, candidates=[str(missing), str(present)])
    assert found == f"unix://{present}"


def test_nothing_found_names_what_was_tried(tmp_path: Path) -> None:
    with pytest.raises(EndpointNotFound, match=r"tried .*nope\.sock.*--runtime-endpoint"):
        endpoint.resolve(None, environ={}, candidates=[str(tmp_path / "nope.sock")])


@pytest.mark.parametrize(
    "bad", ["tcp://1.2.3.4:10010", "unix://relative.sock", "npipe:////./pipe/x"]
)
def test_only_unix_sockets(bad: str) -> None:
    with pytest.raises(EndpointNotFound, match="not a unix socket"):
        endpoint.normalize(bad)
