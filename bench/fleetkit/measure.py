"""What the bench reads besides the load generator: the apiserver's request counter and a
process's memory."""

from __future__ import annotations

import collections
import re
from pathlib import Path

from testkit.kube import ControlPlane

Key = tuple[str, str, str, str]  # verb, resource, subresource, code
_SAMPLE = re.compile(r"^apiserver_request_total\{([^}]*)\} ([0-9.e+]+)$")
_LABEL = re.compile(r'(\w+)="([^"]*)"')


def requests(plane: ControlPlane) -> collections.Counter[Key]:
    """apiserver_request_total for API objects (not /metrics, /healthz and the like)."""
    counts: collections.Counter[Key] = collections.Counter()
    for line in plane.kubectl("get", "--raw", "/metrics").stdout.splitlines():
        sample = _SAMPLE.match(line)
        if sample is None:
            continue
        labels = dict(_LABEL.findall(sample.group(1)))
        if not labels.get("resource"):
            continue
        key = (labels["verb"], labels["resource"], labels.get("subresource", ""), labels["code"])
        counts[key] += int(float(sample.group(2)))
    return counts


def delta(
    after: collections.Counter[Key], before: collections.Counter[Key]
) -> collections.Counter[Key]:
    return collections.Counter({k: v - before[k] for k, v in after.items() if v > before[k]})


def throttled(counts: collections.Counter[Key]) -> int:
    """Requests the apiserver refused as too many (429)."""
    return sum(v for (_, _, _, code), v in counts.items() if code == "429")


def memory_mib(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM): the resident set now and its peak, in MiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields.get("VmRSS", 0.0), fields.get("VmHWM", 0.0)
