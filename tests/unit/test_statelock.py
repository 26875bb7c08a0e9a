"""The node's prune lock on a real file: one holder at a time, a bounded wait, the
holder named, and release however the holder ends."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from imageprune.node import statelock

pytestmark = pytest.mark.unit


async def test_a_second_taker_gives_up_after_the_timeout_naming_the_holder(
    tmp_path: Path,
) -> None:
    async with statelock.StateLock(tmp_path / "state", timeout=0):
        with pytest.raises(statelock.LockHeld, match=rf"\(pid {os.getpid()}\) holds .*/lock"):
            async with statelock.StateLock(tmp_path / "state", timeout=0.3):
                pytest.fail("two holders at once")


async def test_a_waiter_gets_the_lock_once_it_is_released(tmp_path: Path) -> None:
    order: list[str] = []
    first = statelock.StateLock(tmp_path, timeout=0)
    await first.__aenter__()

    async def second() -> None:
        async with statelock.StateLock(tmp_path, timeout=30):
            order.append("second")

    waiter = asyncio.create_task(second())
    await asyncio.sleep(0.3)
    order.append("first done")
    await first.__aexit__(None, None, None)
    await waiter
    assert order == ["first done", "second"]


async def test_an_unwritable_state_dir_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(statelock.LockError, match=r"cannot create the lock file .*--state-dir"):
        async with statelock.StateLock(blocker / "state"):
            pytest.fail("locked under a regular file")


@pytest.mark.parametrize("kind", ["symlink", "fifo", "directory"])
async def test_a_lock_path_that_is_not_a_regular_file_is_refused_untouched(
    tmp_path: Path, kind: str
) -> None:
    target = tmp_path / "precious"
    target.write_text("keep me")
    lock = tmp_path / "state" / statelock.LOCK_FILE
    lock.parent.mkdir()
    if kind == "symlink":
        lock.symlink_to(target)
    elif kind == "fifo":
        os.mkfifo(lock)
    else:
        lock.mkdir()
    with pytest.raises(statelock.LockError, match=str(lock)):
        async with statelock.StateLock(lock.parent, timeout=0):
            pytest.fail("locked through something that is not a regular file")
    assert target.read_text() == "keep me"


async def test_prunes_of_one_runtime_exclude_each_other_whatever_their_state_dirs(
    tmp_path: Path,
) -> None:
    socket = tmp_path / "runtime.sock"
    socket.touch()
    (tmp_path / "alias.sock").symlink_to(socket)
    runs = tmp_path / "run"
    async with statelock.StateLock(
        tmp_path / "a", runtime_socket=str(socket), runtime_lock_dir=runs
    ):
        # The same runtime spelt through a symlink: its lock, though the state dir differs.
        with pytest.raises(statelock.LockHeld, match=r"of the runtime at .*alias.sock \(pid \d+\)"):
            async with statelock.StateLock(
                tmp_path / "b",
                timeout=0.2,
                runtime_socket=str(tmp_path / "alias.sock"),
                runtime_lock_dir=runs,
            ):
                pytest.fail("two prunes of one runtime at once")
        # Another runtime, another state dir: no wait.
        other = tmp_path / "other.sock"
        async with statelock.StateLock(
            tmp_path / "c", timeout=0, runtime_socket=str(other), runtime_lock_dir=runs
        ):
            pass
    assert statelock.runtime_lock_path(str(socket), runs) == statelock.runtime_lock_path(
        str(tmp_path / "alias.sock"), runs
    )


async def test_a_failed_second_lock_releases_the_first(tmp_path: Path) -> None:
    socket = str(tmp_path / "runtime.sock")
    runs = tmp_path / "run"
    async with statelock.StateLock(tmp_path / "state", timeout=0):
        with pytest.raises(statelock.LockHeld, match=r"another prune \(pid \d+\) holds .*/lock"):
            async with statelock.StateLock(
                tmp_path / "state", timeout=0, runtime_socket=socket, runtime_lock_dir=runs
            ):
                pytest.fail("two holders of one state dir")
    # The runtime's lock, taken first, was given back.
    async with statelock.StateLock(
        tmp_path / "other", timeout=0, runtime_socket=socket, runtime_lock_dir=runs
    ):
        pass


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda p: p.write_text(""), "state: not a directory (a regular file)"),
        (lambda p: p.symlink_to(p), "state: a symlink loop"),
        (lambda p: p.symlink_to(p.parent / "missing"), "state: a symlink to nothing"),
    ],
    ids=["file", "loop", "dangling"],
)
async def test_whatever_stands_where_the_state_dir_should_be_is_named(
    tmp_path: Path, make: Callable[[Path], object], says: str
) -> None:
    make(tmp_path / "state")
    with pytest.raises(statelock.LockError, match=re.escape(f"{says}; set --state-dir")):
        async with statelock.StateLock(tmp_path / "state" / "sub", timeout=0):
            pytest.fail("locked under something that is not a directory")
