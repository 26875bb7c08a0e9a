"""The committed CRI stubs are exactly what hack/gen-proto.sh produces."""

from __future__ import annotations

import filecmp
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PB = ROOT / "cri" / "imageprune_cri" / "_pb"


def test_regeneration_changes_nothing(tmp_path: Path) -> None:
    subprocess.run([str(ROOT / "hack" / "gen-proto.sh"), str(tmp_path)], check=True)
    generated = sorted(p.name for p in (tmp_path / "imageprune_cri" / "_pb").iterdir())
    assert generated == ["api_pb2.py", "api_pb2.pyi", "api_pb2_grpc.py", "api_pb2_grpc.pyi"]
    for name in generated:
        assert filecmp.cmp(tmp_path / "imageprune_cri" / "_pb" / name, PB / name, shallow=False), (
            f"{name} is stale: run hack/gen-proto.sh and commit the result"
        )
