"""pytest plugin for hack/mutate.sh.

- Example tests run before property tests: mutmut hands pytest a mutant's tests
  in no set order and stops at the first failure (-x), and most mutants die in a
  fast example test, so this makes a run several times shorter.
- Memoised functions start empty in every test: mutmut maps each test to the
  functions it calls, and a cache hit would hide a call (references._parse), so
  the test that would kill a mutant there would never be run against it."""

from __future__ import annotations

import functools
import sys

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: "_properties" in item.nodeid)  # stable: order kept otherwise


def pytest_runtest_setup(item: pytest.Item) -> None:
    for name, module in list(sys.modules.items()):
        if not name.startswith("imageprune"):
            continue
        for value in list(vars(module).values()):
            if isinstance(value, functools._lru_cache_wrapper):
                value.cache_clear()
