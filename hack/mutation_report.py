"""Summarise a mutmut run (called by hack/mutate.sh from its staging directory):
killed and survived per module, the score, and each survivor's change."""

from __future__ import annotations

import collections
import re
import subprocess
import sys

# "imageprune.node.planner.x__within_caps__mutmut_3" or a method "...xǁClassǁm__mutmut_1"
_NAME = re.compile(r"^(?P<module>[\w.]+?)\.x[_ǁ].*__mutmut_\d+$")
# Outcomes that count as caught; "no tests" and "survived" count against the score;
# "not checked" (an interrupted run) is left out of it.
_CAUGHT = {"killed", "timeout", "caught by type check", "segfault"}
_UNCHECKED = "not checked"


def _mutmut(*args: str) -> str:
    return subprocess.run(["mutmut", *args], check=True, capture_output=True, text=True).stdout


def main() -> int:
    by_module: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    survivors: list[str] = []
    for line in _mutmut("results", "--all", "true").splitlines():
        name, _, status = line.strip().partition(": ")
        found = _NAME.match(name)
        if not found:
            continue
        by_module[found["module"]][status] += 1
        if status not in _CAUGHT and status != _UNCHECKED:
            survivors.append(name)

    print(f"{'module':32} {'mutants':>8} {'unchecked':>9} {'caught':>7} {'left':>5} {'score':>7}")
    for module, counts in sorted(by_module.items()):
        unchecked = counts[_UNCHECKED]
        checked = sum(counts.values()) - unchecked
        caught = sum(n for status, n in counts.items() if status in _CAUGHT)
        score = f"{caught / checked:7.1%}" if checked else "      -"
        print(
            f"{module:32} {checked + unchecked:8} {unchecked:9} {caught:7} "
            f"{checked - caught:5} {score}"
        )
    for name in survivors:
        print()
        print(_mutmut("show", name).rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
