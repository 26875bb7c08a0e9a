"""pytest plugin for hack/mutate.sh: run example tests before property tests.

mutmut hands pytest a mutant's tests in no set order and stops at the first
failure (-x). Most mutants die in a fast example test, so running the slow
Hypothesis tests last makes a run several times shorter without dropping any."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: "_properties" in item.nodeid)  # stable: order kept otherwise
