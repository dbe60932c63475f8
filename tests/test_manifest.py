import pytest

from emovid.manifest import COLUMNS, MANIFEST_NAME, ManifestWriter, read_manifest
from emovid.pipeline import VideoResult


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
