from __future__ import annotations

import datetime
import json
import os
import stat
from pathlib import Path

import pytest

from imageprune.node import usage
from imageprune.node.usage import UsageRecord, UsageStore
from imageprune_cri.types import Container, ContainerState, Image

pytestmark = pytest.mark.unit

NOW = datetime.datetime(2025, 6, 1, 12, 0, tzinfo=datetime.UTC)
EARLIER = NOW - datetime.timedelta(days=3)
ID_A = "sha256:" + "a" * 64
ID_B = "sha256:" + "b" * 64
ID_C = "sha256:" + "c" * 64


def _container(
    image: str, image_ref: str = "", state: ContainerState = ContainerState.EXITED
) -> Container:
    return Container(
        id="c1",
        name="web",
        pod_sandbox_id="p1",
        image=image,
        image_ref=image_ref,
        state=state,
        created_at=EARLIER,
    )


RECORDS = {
    ID_A: UsageRecord(first_seen=EARLIER, last_used=None),
    ID_B: UsageRecord(first_seen=EARLIER, last_used=EARLIER + datetime.timedelta(hours=5)),
}


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
            b'{"version": 1, "images": {"x": {"firstSeen": "yesterday", "lastUsed": null}}}',
            b'{"version": 1, "images": {"x": {"firstSeen": "2025-06-01T12:00:00"}}}',
            b'{"version": 1, "images": {"x": {"firstSeen": 5, "lastUsed": null}}}',
            b'{"version": 1, "images": {"x": "2025-06-01T12:00:00+00:00"}}',
            b"[" * 100_000,
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
        (tmp_path / "usage.json").mkdir()  # reading a directory fails with an OSError
        assert UsageStore(tmp_path / "usage.json").load() == {}
        assert "cannot read" in caplog.text

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
        images = [Image(id=ID_A), Image(id=ID_B)]
        records = usage.observe({}, images=images, containers=[], now=NOW)
        assert records == {ID_A: UsageRecord(NOW, None), ID_B: UsageRecord(NOW, None)}

    def test_keeps_first_seen_and_last_used_of_unused_images(self) -> None:
        images = [Image(id=ID_A), Image(id=ID_B)]
        assert usage.observe(RECORDS, images=images, containers=[], now=NOW) == RECORDS

    def test_drops_images_no_longer_listed(self) -> None:
        records = usage.observe(RECORDS, images=[Image(id=ID_A)], containers=[], now=NOW)
        assert records.keys() == {ID_A}

    @pytest.mark.parametrize("state", list(ContainerState))
    def test_a_container_in_any_state_uses_its_image(self, state: ContainerState) -> None:
        images = [Image(id=ID_A), Image(id=ID_B)]
        containers = [_container(image=ID_A, image_ref=ID_A, state=state)]
        records = usage.observe(RECORDS, images=images, containers=containers, now=NOW)
        assert records[ID_A] == UsageRecord(first_seen=EARLIER, last_used=NOW)
        assert records[ID_B] == RECORDS[ID_B]

    @pytest.mark.parametrize(
        ("image", "image_ref"),
        [
            ("nginx", ""),  # a familiar tag, resolved through the image's tags
            ("docker.io/library/nginx:latest", "sha256:" + "f" * 64),
            ("", ID_A),
            ("", "a" * 64),  # CRI-O: the ID without its algorithm
            ("sha256:" + "f" * 64, ID_A),
        ],
    )
    def test_matches_by_tag_or_id(self, image: str, image_ref: str) -> None:
        images = [Image(id=ID_A, repo_tags=("docker.io/library/nginx:latest", "quay.io/x/y:1"))]
        containers = [_container(image=image, image_ref=image_ref)]
        records = usage.observe({}, images=images, containers=containers, now=NOW)
        assert records[ID_A].last_used == NOW

    def test_unrelated_containers_use_nothing(self) -> None:
        images = [Image(id=ID_A, repo_tags=("docker.io/library/nginx:latest",))]
        containers = [_container(image="nginx:1", image_ref=ID_B)]
        records = usage.observe({}, images=images, containers=containers, now=NOW)
        assert records[ID_A].last_used is None

    def test_converts_now_to_utc_and_refuses_naive_times(self) -> None:
        tokyo = datetime.timezone(datetime.timedelta(hours=9))
        records = usage.observe(
            {}, images=[Image(id=ID_A)], containers=[], now=NOW.astimezone(tokyo)
        )
        assert records[ID_A].first_seen.tzinfo is datetime.UTC
        with pytest.raises(ValueError, match="timezone-aware"):
            usage.observe({}, images=[], containers=[], now=NOW.replace(tzinfo=None))
