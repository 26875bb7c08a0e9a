from __future__ import annotations

import datetime
import json
import os
import stat
import threading
from pathlib import Path

import pytest

from imageprune.node import usage
from imageprune.node.usage import UsageRecord, UsageStore
from imageprune_cri.types import Container, ContainerState
from testkit import builders

pytestmark = pytest.mark.unit

NOW = builders.NOW
EARLIER = NOW - 3 * builders.DAY
ID_A, ID_B, ID_C = (builders.image_id(n) for n in (1, 2, 3))
A, B = builders.image(1), builders.image(2)

RECORDS = {
    ID_A: builders.record(3 * builders.DAY),
    ID_B: builders.record(3 * builders.DAY, last_used=3 * builders.DAY - 5 * builders.HOUR),
}


def _exited(image: str, image_ref: str = "") -> Container:
    return builders.container("web", image=image, image_ref=image_ref, state=ContainerState.EXITED)


def _load_in_a_thread(store: UsageStore) -> dict[str, UsageRecord]:
    """store.load(), failing the test instead of hanging if the read blocks."""
    outcome: list[dict[str, UsageRecord]] = []
    thread = threading.Thread(target=lambda: outcome.append(store.load()), daemon=True)
    thread.start()
    thread.join(timeout=60)
    assert outcome, f"reading {store.path} blocked"
    return outcome[0]


class TestStore:
    def test_round_trip(self, tmp_path: Path) -> None:
        store = UsageStore(tmp_path / "usage.json")
        store.save(RECORDS)
        assert store.load() == RECORDS

    def test_file_is_versioned_json_with_utc_times(self, tmp_path: Path) -> None:
        path = tmp_path / "usage.json"
        moscow = datetime.timezone(datetime.timedelta(hours=3))
        UsageStore(path).save({ID_A: UsageRecord(NOW.astimezone(moscow), None)})
        document = json.loads(path.read_text())
        assert document == {
            "version": 1,
            "images": {ID_A: {"firstSeen": "2025-06-01T12:00:00+00:00", "lastUsed": None}},
        }

    def test_loaded_times_are_aware_utc(self, tmp_path: Path) -> None:
        path = tmp_path / "usage.json"
        path.write_text(
            json.dumps(
                {
                    "version": 1,
                    "images": {ID_A: {"firstSeen": "2025-06-01T15:00:00+03:00", "lastUsed": None}},
                }
            )
        )
        record = UsageStore(path).load()[ID_A]
        assert record.first_seen == NOW
        assert record.first_seen.tzinfo is datetime.UTC

    def test_missing_file_is_empty_without_warning(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        assert UsageStore(tmp_path / "none" / "usage.json").load() == {}
        assert not caplog.records

    @pytest.mark.parametrize(
        "content",
        [
            b"{not json",
            b"\xff\xfe\x00garbage",
            b"[]",
            b'{"version": 2, "images": {}}',
            b'{"images": {}}',
            b'{"version": 1}',
            b'{"version": 1, "images": []}',
            b"[" * 100_000,
            b'{"version": 1, "images": {}, "x": ' + b"9" * 5000 + b"}",  # int() digit limit
            "{}".encode("utf-16"),
        ],
    )
    def test_corrupt_file_is_empty_with_a_warning(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture, content: bytes
    ) -> None:
        path = tmp_path / "usage.json"
        path.write_bytes(content)
        assert UsageStore(path).load() == {}
        [warning] = caplog.records
        assert warning.name == "imageprune.usage"
        assert warning.levelname == "WARNING"
        assert str(path) in warning.getMessage()

    def test_unreadable_file_is_empty_with_a_warning(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        (tmp_path / "usage.json").mkdir()
        assert UsageStore(tmp_path / "usage.json").load() == {}
        assert "cannot read" in caplog.text
        assert "not a regular file (a directory)" in caplog.text

    @pytest.mark.parametrize("kind", ["fifo", "link to fifo", "link to /dev/zero"])
    def test_only_a_regular_file_is_read_and_nothing_blocks(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture, kind: str
    ) -> None:
        path = tmp_path / "usage.json"
        if kind == "link to /dev/zero":
            path.symlink_to("/dev/zero")
        else:
            os.mkfifo(tmp_path / "fifo")
            if kind == "fifo":
                os.replace(tmp_path / "fifo", path)
            else:
                path.symlink_to(tmp_path / "fifo")
        records = _load_in_a_thread(UsageStore(path))
        assert records == {}
        [warning] = caplog.records
        assert "cannot read usage records" in warning.getMessage()
        assert "not a regular file" in warning.getMessage()

    def test_an_oversized_file_is_not_read(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        store = UsageStore(tmp_path / "usage.json")
        store.save(RECORDS)
        size = store.path.stat().st_size
        monkeypatch.setattr(usage, "MAX_FILE_BYTES", size)
        assert store.load() == RECORDS
        monkeypatch.setattr(usage, "MAX_FILE_BYTES", size - 1)
        assert store.load() == {}
        assert f"larger than {size - 1} bytes" in caplog.text

    def test_the_bound_holds_thousands_of_images(self) -> None:
        assert usage.MAX_FILE_BYTES == 64 * 2**20

    @pytest.mark.parametrize(
        ("entry", "problem"),
        [
            ({"firstSeen": "0001-01-01T00:00:00+14:00", "lastUsed": None}, "is out of range"),
            ({"firstSeen": "9999-12-31T23:59:59-14:00", "lastUsed": None}, "is out of range"),
            ({"firstSeen": "yesterday", "lastUsed": None}, "'yesterday' is not a timestamp"),
            ({"firstSeen": "0001-01-01T00:00:00+00:00", "lastUsed": None}, "before 2010"),
            (
                {"firstSeen": "2025-06-01T12:00:00+00:00", "lastUsed": "2000-01-01T00:00:00Z"},
                "before",
            ),
            (
                {"firstSeen": "2025-06-01T12:00:00+00:00", "lastUsed": "2025-05-01T00:00:00Z"},
                "lastUsed is before firstSeen",
            ),
            ({"firstSeen": "2025-06-01T12:00:00"}, "has no timezone"),
            ({"firstSeen": 5, "lastUsed": None}, "firstSeen must be a string"),
            ({"lastUsed": None}, "firstSeen must be a string, not NoneType"),
            ("2025-06-01T12:00:00+00:00", "not an object"),
            ({"firstSeen": "2" * 5000, "lastUsed": None}, "2222'... is not a timestamp"),
        ],
    )
    def test_a_corrupt_entry_is_dropped_with_one_warning(
        self,
        tmp_path: Path,
        caplog: pytest.LogCaptureFixture,
        entry: object,
        problem: str,
    ) -> None:
        path = tmp_path / "usage.json"
        good = {"firstSeen": "2025-05-29T12:00:00+00:00", "lastUsed": None}
        images = {ID_A: good, ID_B: entry, ID_C: entry}
        path.write_text(json.dumps({"version": 1, "images": images}))
        assert UsageStore(path).load() == {ID_A: builders.record(3 * builders.DAY)}
        [warning] = caplog.records
        message = warning.getMessage()
        assert "ignoring 2 corrupt entries" in message
        assert problem in message
        assert len(message) < 500

    def test_creates_parent_directories_755(self, tmp_path: Path) -> None:
        previous_umask = os.umask(0o022)
        try:
            UsageStore(tmp_path / "a" / "b" / "usage.json").save(RECORDS)
        finally:
            os.umask(previous_umask)
        for directory in (tmp_path / "a", tmp_path / "a" / "b"):
            assert stat.S_IMODE(directory.stat().st_mode) == 0o755
        assert (tmp_path / "a" / "b" / "usage.json").exists()

    def test_save_replaces_and_leaves_no_temporary_files(self, tmp_path: Path) -> None:
        store = UsageStore(tmp_path / "usage.json")
        store.save(RECORDS)
        store.save({ID_C: UsageRecord(NOW, NOW)})
        assert store.load() == {ID_C: UsageRecord(NOW, NOW)}
        assert [p.name for p in tmp_path.iterdir()] == ["usage.json"]

    @pytest.mark.parametrize("failing", ["fsync", "replace"])
    def test_failed_save_keeps_the_old_file_whole(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
    ) -> None:
        store = UsageStore(tmp_path / "usage.json")
        store.save(RECORDS)
        before = store.path.read_bytes()

        def fail(*_args: object) -> None:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(os, failing, fail)
        with pytest.raises(OSError, match="No space left"):
            store.save({ID_C: UsageRecord(NOW, None)})
        monkeypatch.undo()
        assert store.path.read_bytes() == before
        assert [p.name for p in tmp_path.iterdir()] == ["usage.json"]

    def test_replace_only_ever_sees_complete_synced_content(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        events: list[str] = []
        real_fsync, real_replace = os.fsync, os.replace

        def fsync(fd: int) -> None:
            events.append("fsync")
            real_fsync(fd)

        def replace(source: str, target: Path) -> None:
            # At the moment of the rename the temporary file already holds everything.
            events.append("replace")
            assert json.loads(Path(source).read_text())["images"].keys() == RECORDS.keys()
            assert Path(source).parent == target.parent
            real_replace(source, target)

        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(os, "replace", replace)
        UsageStore(tmp_path / "usage.json").save(RECORDS)
        assert events == ["fsync", "replace", "fsync"]  # file, rename, directory


class TestObserve:
    def test_first_look_sees_everything_now(self) -> None:
        images = [A, B]
        records = usage.observe({}, images=images, containers=[], now=NOW)
        assert records == {ID_A: UsageRecord(NOW, None), ID_B: UsageRecord(NOW, None)}

    def test_keeps_first_seen_and_last_used_of_unused_images(self) -> None:
        images = [A, B]
        assert usage.observe(RECORDS, images=images, containers=[], now=NOW) == RECORDS

    def test_drops_images_no_longer_listed(self) -> None:
        records = usage.observe(RECORDS, images=[A], containers=[], now=NOW)
        assert records.keys() == {ID_A}

    @pytest.mark.parametrize("state", list(ContainerState))
    def test_a_container_in_any_state_uses_its_image(self, state: ContainerState) -> None:
        images = [A, B]
        containers = [builders.container("web", image=ID_A, image_ref=ID_A, state=state)]
        records = usage.observe(RECORDS, images=images, containers=containers, now=NOW)
        assert records[ID_A] == UsageRecord(first_seen=EARLIER, last_used=NOW)
        assert records[ID_B] == RECORDS[ID_B]

    @pytest.mark.parametrize(
        ("image", "image_ref"),
        [
            ("nginx", ""),  # a familiar tag, resolved through the image's tags
            ("docker.io/library/nginx:latest", "sha256:" + "f" * 64),
            ("", ID_A),
            ("", ID_A.removeprefix("sha256:")),  # CRI-O: the ID without its algorithm
            ("sha256:" + "f" * 64, ID_A),
        ],
    )
    def test_matches_by_tag_or_id(self, image: str, image_ref: str) -> None:
        images = [builders.image(1, "docker.io/library/nginx:latest", "quay.io/x/y:1")]
        containers = [_exited(image=image, image_ref=image_ref)]
        records = usage.observe({}, images=images, containers=containers, now=NOW)
        assert records[ID_A].last_used == NOW

    def test_unrelated_containers_use_nothing(self) -> None:
        images = [builders.image(1, "docker.io/library/nginx:latest")]
        containers = [_exited(image="nginx:1", image_ref=ID_B)]
        records = usage.observe({}, images=images, containers=containers, now=NOW)
        assert records[ID_A].last_used is None

    def test_times_after_now_count_as_now(self) -> None:
        # The clock was set back: such a record must not keep an image "new" for
        # years, nor make it look unused for longer.
        future = NOW + datetime.timedelta(days=3650)
        records = {ID_A: UsageRecord(future, None), ID_B: UsageRecord(future, future)}
        images = [A, B]
        observed = usage.observe(records, images=images, containers=[], now=NOW)
        assert observed == {ID_A: UsageRecord(NOW, None), ID_B: UsageRecord(NOW, NOW)}

    def test_converts_now_to_utc_and_refuses_naive_times(self) -> None:
        tokyo = datetime.timezone(datetime.timedelta(hours=9))
        records = usage.observe({}, images=[A], containers=[], now=NOW.astimezone(tokyo))
        assert records[ID_A].first_seen.tzinfo is datetime.UTC
        with pytest.raises(ValueError, match="timezone-aware"):
            usage.observe({}, images=[], containers=[], now=NOW.replace(tzinfo=None))
