from __future__ import annotations

from pathlib import Path

import pytest

from imageprune_cri import EndpointInvalid, EndpointNotFound, endpoint

pytestmark = pytest.mark.unit


def test_explicit_wins_over_env_and_defaults(tmp_path: Path) -> None:
    sock = tmp_path / "a.sock"
    sock.touch()
    env = {endpoint.ENV_VAR: "unix:///env.sock"}
    assert endpoint.resolve("/x.sock", environ=env, candidates=[str(sock)]) == endpoint.Endpoint(
        "unix:///x.sock", "--runtime-endpoint"
    )
    assert endpoint.resolve(None, environ=env, candidates=[str(sock)]) == endpoint.Endpoint(
        "unix:///env.sock", "$CONTAINER_RUNTIME_ENDPOINT"
    )
    found = endpoint.resolve(None, environ={}, candidates=[str(sock)])
    assert found.target == f"unix://{sock}"


def test_first_existing_default_socket(tmp_path: Path) -> None:
    missing, present = tmp_path / "containerd.sock", tmp_path / "crio.sock"
    present.touch()
    found = endpoint.resolve(None, environ={}, candidates=[str(missing), str(present)])
    assert found.target == f"unix://{present}"


def test_nothing_found_names_what_was_tried(tmp_path: Path) -> None:
    with pytest.raises(EndpointNotFound, match=r"tried .*nope\.sock.*--runtime-endpoint"):
        endpoint.resolve(None, environ={}, candidates=[str(tmp_path / "nope.sock")])


@pytest.mark.parametrize(
    "bad",
    ["tcp://1.2.3.4:10010", "unix://relative.sock", "npipe:////./pipe/x", "http://x", "", "x"],
)
def test_only_unix_sockets(bad: str) -> None:
    with pytest.raises(EndpointInvalid, match=r"--runtime-endpoint: .* is not a unix socket"):
        endpoint.normalize(bad)


def test_a_path_that_is_not_utf8_is_named_not_dialled() -> None:
    undecodable = b"/run/\xff.sock".decode("utf-8", "surrogateescape")  # as argv gives it
    with pytest.raises(EndpointInvalid, match=r"'/run/\\xff.sock' is not valid UTF-8"):
        endpoint.normalize(undecodable)


def test_socket_paths_longer_than_the_kernel_allows() -> None:
    longest = "/" + "a" * (endpoint.MAX_SOCKET_PATH_BYTES - 1)
    assert endpoint.normalize(longest) == "unix://" + longest
    with pytest.raises(EndpointInvalid, match=r"108 bytes long; .* at most 107"):
        endpoint.normalize(longest + "a")
    # bytes, not characters: 54 two-byte characters are 108 bytes
    with pytest.raises(EndpointInvalid, match="bytes long"):
        endpoint.normalize("/" + "é" * 54)


def test_errors_from_the_environment_name_the_variable() -> None:
    env = {endpoint.ENV_VAR: "tcp://node:10010"}
    with pytest.raises(EndpointInvalid, match=r"^\$CONTAINER_RUNTIME_ENDPOINT: "):
        endpoint.resolve(None, environ=env, candidates=[])
