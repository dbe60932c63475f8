import pytest

from emovid.store.manifest import COLUMNS, MANIFEST_NAME, ManifestWriter, read_manifest
from emovid.run.tasks import VideoResult


def test_rows_are_on_disk_as_soon_as_written(tmp_path):
    with ManifestWriter(tmp_path) as manifest:
        manifest.write(VideoResult("a.mp4", "/in/a.mp4", "ok", frames_decoded=10, fps=25.0, width=64, height=48))
        lines = (tmp_path / MANIFEST_NAME).read_text().splitlines()
        assert len(lines) == 2 and lines[0].split(",") == list(COLUMNS)  # flushed mid-run
        manifest.write(VideoResult("b.mp4", "/in/b.mp4", "failed", error="empty file (0 bytes)"))
    df = read_manifest(tmp_path)
    assert df["status"].tolist() == ["ok", "failed"]
    assert df["frames_decoded"].dtype == "Int64" and df["frames_decoded"].tolist() == [10, 0]
    assert df["fps"].isna().tolist() == [False, True]
    assert df.loc[1, "error"] == "empty file (0 bytes)" and df["error"].isna().tolist() == [True, False]


def test_unknown_status_is_rejected(tmp_path):
    with ManifestWriter(tmp_path) as manifest:
        with pytest.raises(ValueError, match="status"):
            manifest.write(VideoResult("a", "a", "done"))


def test_missing_manifest(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_manifest(tmp_path)


def test_a_rerun_leaves_exactly_one_row_per_input_on_disk(tmp_path):
    import emovid
    from tests.helpers import write_video

    root = tmp_path / "in"
    root.mkdir()
    write_video(root / "good.mp4", 6)
    (root / "junk.mp4").write_bytes(b"junk")
    for _ in range(2):  # the rerun retries the failed input and reuses the good one
        emovid.analyze(root, tmp_path / "out", in_process=True, progress=False)
        lines = (tmp_path / "out" / MANIFEST_NAME).read_text().splitlines()
        assert len(lines) == 3 and sorted(line.split(",")[0] for line in lines[1:]) == ["good.mp4", "junk.mp4"]
    df = read_manifest(tmp_path / "out")
    assert dict(zip(df["video_id"], df["status"])) == {"good.mp4": "ok", "junk.mp4": "failed"}
    assert dict(zip(df["video_id"], df["reused"])) == {"good.mp4": True, "junk.mp4": False}
