from __future__ import annotations

import datetime
import json

import pytest

from imageprune_cri import convert, types
from imageprune_cri._pb import api_pb2

pytestmark = pytest.mark.unit


def test_container_state_mapping_keeps_unknown_values() -> None:
    msg = api_pb2.Container(id="c", image_ref="sha256:x", created_at=1_700_000_000_000_000_000)
    msg.state = 7  # a state a newer runtime might add
    container = convert.container(msg)
    assert container.state is types.ContainerState.UNKNOWN
    assert container.created_at == datetime.datetime(2023, 11, 14, 22, 13, 20, tzinfo=datetime.UTC)


def test_sandbox_image_from_containerd_status_info() -> None:
    info = {"config": json.dumps({"sandboxImage": "registry.k8s.io/pause:3.9"})}
    assert convert.sandbox_image(info) == "registry.k8s.io/pause:3.9"
    assert convert.sandbox_image({}) is None
    assert convert.sandbox_image({"config": "not json"}) is None
    assert convert.sandbox_image({"config": json.dumps({"sandboxImage": ""})}) is None


@pytest.mark.parametrize(
    ("info", "expected"),
    [
        (
            {"info": json.dumps({"imageSpec": {"created": "2024-02-03T04:05:06.123456789Z"}})},
            datetime.datetime(2024, 2, 3, 4, 5, 6, 123456, tzinfo=datetime.UTC),
        ),
        ({"info": json.dumps({"imageSpec": {"created": "0001-01-01T00:00:00Z"}})}, None),
        ({"info": json.dumps({"imageSpec": {}})}, None),
        ({"info": "{"}, None),
        ({}, None),
    ],
)
def test_created_at_from_image_status_info(
    info: dict[str, str], expected: datetime.datetime | None
) -> None:
    assert convert.created_at(info) == expected
