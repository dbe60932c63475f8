from pathlib import Path

import pytest

from emovid.media.discover import find_inputs, output_path


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_folder_ids_are_relative_paths_and_duplicate_names_do_not_collide(tmp_path):
    touch(tmp_path / "a" / "clip.mp4")
    touch(tmp_path / "b" / "clip.MP4")
    touch(tmp_path / "b" / "notes.txt")
    touch(tmp_path / "top.webm")
    ids = [v.video_id for v in find_inputs([tmp_path])]
    assert ids == ["a/clip.mp4", "b/clip.MP4", "top.webm"]
    outputs = {output_path(tmp_path / "out", i) for i in ids}
    assert len(outputs) == 3


def test_explicit_files_and_several_roots(tmp_path):
    a = touch(tmp_path / "x" / "clip.mp4")
    b = touch(tmp_path / "y" / "clip.mp4")
    assert [v.video_id for v in find_inputs([a])] == ["clip.mp4"]
    assert [v.video_id for v in find_inputs([a, b])] == ["x/clip.mp4", "y/clip.mp4"]
    assert [v.video_id for v in find_inputs([tmp_path / "x", tmp_path / "y"])] == ["x/clip.mp4", "y/clip.mp4"]


def test_ids_are_stable_across_calls_and_working_directories(tmp_path, monkeypatch):
    touch(tmp_path / "v" / "s" / "c.mov")
    first = find_inputs([tmp_path / "v"])
    monkeypatch.chdir(tmp_path)
    assert [x.video_id for x in find_inputs(["v"])] == [x.video_id for x in first] == ["s/c.mov"]


def test_directories_named_like_videos_are_inputs(tmp_path):
    (tmp_path / "fake.mp4").mkdir()
    assert [v.video_id for v in find_inputs([tmp_path])] == ["fake.mp4"]


@pytest.mark.parametrize("paths, message", [([], "at least one"), (["/nonexistent/x"], "does not exist")])
def test_bad_inputs(paths, message):
    with pytest.raises(ValueError, match=message):
        find_inputs(paths)


def test_folder_without_videos(tmp_path):
    touch(tmp_path / "a.txt")
    with pytest.raises(ValueError, match="no video files"):
        find_inputs([tmp_path])


@pytest.mark.parametrize("video_id", ["../x.mp4", "/etc/x.mp4", "a/../../x.mp4", "", "a\\..\\x.mp4"])
def test_output_paths_never_escape(tmp_path, video_id):
    with pytest.raises(ValueError):
        output_path(tmp_path, video_id)


@pytest.mark.parametrize("video_id, expected", [
    ("a/clip.mp4", "a/clip.mp4.parquet"),
    ("_private/x.mp4", "%5Fprivate/x.mp4.parquet"),
    (".hidden.mp4", "%2Ehidden.mp4.parquet"),
    ("day=1/x.mp4", "day%3D1/x.mp4.parquet"),
    ("naïve clip 1.mp4", "naïve clip 1.mp4.parquet"),
])
def test_output_names_stay_visible_to_parquet_readers(tmp_path, video_id, expected):
    assert output_path(tmp_path, video_id) == tmp_path / expected
