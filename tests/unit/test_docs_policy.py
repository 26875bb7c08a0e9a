"""The policy reference (docs/policy.md, "Every field") names every field of the
ImagePrunePolicy CRD's spec, no field the CRD lacks, and the CRD's own default where the
schema sets one."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
CRD = ROOT / "charts" / "imageprune" / "crds" / "imageprunepolicies.yaml"
DOC = ROOT / "docs" / "policy.md"


def _fields(
    schema: Mapping[str, object], prefix: str = ""
) -> Iterator[tuple[str, Mapping[str, object]]]:
    """(dotted path, schema) of every property, objects' properties included."""
    properties = schema.get("properties")
    if not isinstance(properties, Mapping):
        return
    for name, sub in properties.items():
        assert isinstance(sub, Mapping), name
        yield prefix + name, sub
        yield from _fields(sub, f"{prefix}{name}.")


def crd_fields() -> dict[str, Mapping[str, object]]:
    crd = yaml.safe_load(CRD.read_text())
    found: dict[str, Mapping[str, object]] = {}
    for version in crd["spec"]["versions"]:
        spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
        found.update(_fields(spec))
    return found


def reference_rows() -> dict[str, list[str]]:
    """The table under "## Every field": field -> its cells."""
    section = DOC.read_text().split("## Every field\n", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("| `") and (name := re.fullmatch(r"`([A-Za-z.]+)`", cells[0])):
            rows[name.group(1)] = cells[1:]
    return rows


def test_the_crd_and_the_table_are_read() -> None:
    assert {"unusedFor", "rollout.nodeTimeout", "diskUsage.lowPercent"} <= crd_fields().keys()
    assert {"mode", "limits.maxBytesPerRun"} <= reference_rows().keys()


def test_every_crd_field_is_in_the_reference() -> None:
    missing = crd_fields().keys() - reference_rows().keys()
    assert not missing, f"docs/policy.md's field table lacks {sorted(missing)}"


def test_the_reference_names_no_field_the_crd_lacks() -> None:
    unknown = reference_rows().keys() - crd_fields().keys()
    assert not unknown, f"docs/policy.md's field table names {sorted(unknown)}, not in the CRD"


def test_the_reference_gives_the_crds_defaults() -> None:
    rows = reference_rows()
    checked = 0
    for name, schema in crd_fields().items():
        default = schema.get("default")
        if isinstance(default, bool | int | float | str):
            shown = str(default).lower() if isinstance(default, bool) else str(default)
            assert f"`{shown}`" in rows[name][1], f"{name}: the CRD's default is {shown!r}"
            checked += 1
    assert checked >= 5  # mode, suspend, scope, unusedFor, rollout.*
