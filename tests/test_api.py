"""emovid.analyze end to end in-process (Ray itself is covered in test_distributed.py)."""

import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

import emovid
from emovid.errors import OutputError
from emovid.store.manifest import read_manifest
from emovid.store.outdir import LOCK_NAME, OutputLock
from tests.helpers import face_video, shared_video, write_video


@pytest.fixture()
def videos(tmp_path):
    """A folder with two same-named clips in subfolders, a faceless clip and bad inputs."""
    root = tmp_path / "in"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    face_video(root / "a" / "clip.mp4", n_frames=8)
    face_video(root / "b" / "clip.mp4", n_frames=6)
    write_video(root / "plain.avi", 10, fps=10)
    (root / "empty.mp4").write_bytes(b"")
    (root / "notes.mp4").write_text("not a video")
    return root


def run(videos, out, **kw):
    return emovid.analyze(videos, out, in_process=True, progress=False, **kw)


def test_folder_run_writes_one_file_per_video_and_a_manifest(videos, tmp_path):
    out = tmp_path / "out"
    manifest = run(videos, out)
    status = dict(zip(manifest["video_id"], manifest["status"]))
    assert status == {"a/clip.mp4": "ok", "b/clip.mp4": "ok", "empty.mp4": "failed", "notes.mp4": "failed", "plain.avi": "ok"}
    errors = dict(zip(manifest["video_id"], manifest["error"]))
    assert "empty file" in errors["empty.mp4"] and "not a video" in errors["notes.mp4"]
    assert (out / "a" / "clip.mp4.parquet").is_file() and (out / "b" / "clip.mp4.parquet").is_file()
    assert not (out / "empty.mp4.parquet").exists()
    # pandas reads the folder, skipping the manifest and lock
    df = pd.read_parquet(out)
    assert set(df["video_id"]) == {"a/clip.mp4", "b/clip.mp4", "plain.avi"}
    assert not (out / LOCK_NAME).exists()  # the run let go of its lock
    on_disk = read_manifest(out)
    pd.testing.assert_frame_equal(on_disk, manifest)


def test_read_results_types_and_order(videos, tmp_path):
    out = tmp_path / "out"
    run(videos, out)
    df = emovid.read_results(out)
    assert isinstance(df["emotion"].dtype, pd.CategoricalDtype)
    assert list(df["emotion"].cat.categories) == list(emovid.EMOTIONS)
    assert df["video_id"].dtype == "string"
    for _, group in df.groupby("video_id"):
        assert group["timestamp_s"].is_monotonic_increasing
    assert df.loc[df["video_id"] == "plain.avi", "emotion"].isna().all()
    assert df.loc[df["video_id"] == "a/clip.mp4", "track_id"].nunique() == 1  # one face, one track
    smoothed = emovid.read_results(out, smooth=1.0)
    assert smoothed["smooth_prob_joy"].notna().sum() == df["track_id"].notna().sum()


def test_read_results_on_empty_folder(tmp_path):
    df = emovid.read_results(tmp_path)
    assert df.empty and "prob_joy" in df.columns and isinstance(df["emotion"].dtype, pd.CategoricalDtype)


def test_rerun_skips_done_videos_and_finishes_the_rest(videos, tmp_path):
    out = tmp_path / "out"
    first = run(videos, out)
    before = (out / "a" / "clip.mp4.parquet").stat().st_mtime_ns
    (out / "b" / "clip.mp4.parquet").unlink()
    second = run(videos, out)
    status = dict(zip(second["video_id"], second["status"]))
    reused = dict(zip(second["video_id"], second["reused"]))
    assert status["a/clip.mp4"] == "ok" and reused["a/clip.mp4"] and reused["plain.avi"]
    assert status["b/clip.mp4"] == "ok" and not reused["b/clip.mp4"] and status["empty.mp4"] == "failed"
    # a reused video keeps the counts of the run that made it
    same = lambda frame: frame.set_index("video_id").loc["a/clip.mp4", ["faces", "frames_sampled", "worker"]].tolist()
    assert same(second) == same(first)
    assert (out / "a" / "clip.mp4.parquet").stat().st_mtime_ns == before
    third = run(videos, out, overwrite=True)
    assert not third["reused"].any()
    assert (out / "a" / "clip.mp4.parquet").stat().st_mtime_ns != before
    assert len(first) == len(third)


def test_rerun_keeps_a_partial_video_partial(tmp_path):
    videos = tmp_path / "in"
    videos.mkdir()
    data = shared_video("WolfgangLanger_Pexels.mp4").read_bytes()
    (videos / "cut.mp4").write_bytes(data[: len(data) // 2])
    face_video(videos / "ok.mp4", n_frames=6)
    out = tmp_path / "out"
    first = run(videos, out, fps=2).set_index("video_id")
    assert first.loc["cut.mp4", "status"] == "partial"
    again = run(videos, out, fps=2).set_index("video_id")
    assert again.loc["cut.mp4", "reused"] and again.loc["cut.mp4", "status"] == "partial"
    for column in ("error", "frames_decoded", "faces", "wall_s"):
        assert again.loc["cut.mp4", column] == first.loc["cut.mp4", column]
    on_disk = read_manifest(out).set_index("video_id")  # the file agrees, one row per video
    assert len(on_disk) == 2 and on_disk.loc["cut.mp4", "status"] == "partial"
    assert emovid.api.summarize(again.reset_index()) == "1 ok, 1 partial, 0 failed (2 reused from an earlier run)"


def test_manifest_keeps_videos_of_earlier_runs(tmp_path):
    videos = tmp_path / "in"
    videos.mkdir()
    face_video(videos / "one.mp4", n_frames=6)
    out = tmp_path / "out"
    run(videos / "one.mp4", out)
    face_video(tmp_path / "two.mp4", n_frames=6)
    run(tmp_path / "two.mp4", out)
    assert sorted(read_manifest(out)["video_id"]) == ["one.mp4", "two.mp4"]


def test_another_model_under_the_same_name_is_not_taken_for_it(small_model_file, tmp_path):
    """A retrained model that kept another's name and version (what `emovid train` wrote before
    --name) must not count as done over that model's results; the refusal names the difference."""
    import keras
    import numpy as np

    from emovid.classify.model_file import read_model_info, write_model

    info = read_model_info(small_model_file)
    net = keras.saving.load_model(small_model_file, compile=False)
    last = net.layers[-1]
    last.set_weights([w + np.float32(0.05) for w in last.get_weights()])
    mine = tmp_path / "mine.keras"
    write_model(net, info, mine, onnx=False)
    assert read_model_info(mine).tag == info.tag
    videos = tmp_path / "in"
    videos.mkdir()
    face_video(videos / "a.mp4", n_frames=6)
    out = tmp_path / "out"
    run(videos, out, model=small_model_file)
    with pytest.raises(OutputError, match="model_sha256.*--overwrite"):
        run(videos, out, model=mine)
    assert not run(videos, out, model=small_model_file)["reused"].eq(False).any()  # the same file: done
    with pytest.raises(OutputError, match="model: 'emovid-small:1' -> 'emovid-fer7:7'.*pass the model they were"):
        run(videos, out)  # the shipped model on a folder made with another


def test_changed_settings_are_refused(videos, tmp_path):
    out = tmp_path / "out"
    run(videos, out, fps=4)
    with pytest.raises(OutputError, match="other settings.*sampling_fps"):
        run(videos, out, fps=2)
    assert set(run(videos, out, fps=2, overwrite=True)["status"]) == {"ok", "failed"}


def test_precision_is_a_setting_and_auto_keeps_the_folders_own(videos, tmp_path):
    """int8 and fp32 results never mix in a folder; "auto" resumes a folder with the precision
    its results were made with (another host may measure another), and a fresh folder records
    what auto chose here."""
    import pyarrow.parquet as pq

    from emovid.classify.emotions import resolve_precision
    from emovid.store.schema import read_metadata

    def precisions(out):
        return {read_metadata(pq.read_schema(f))["settings"]["precision"] for f in out.glob("*.parquet")}

    out = tmp_path / "out"
    first = run(videos, out, precision="fp32")
    assert precisions(out) == {"fp32"}
    again = run(videos, out)  # auto
    assert again.loc[again["status"] == "ok", "reused"].all() and precisions(out) == {"fp32"}
    with pytest.raises(OutputError, match="precision: 'fp32' -> 'int8'"):
        run(videos, out, precision="int8")
    fresh = tmp_path / "fresh"
    run(videos, fresh)
    assert precisions(fresh) == {resolve_precision(None)}
    assert len(first) == len(again)


def test_batch_size_does_not_count_as_a_setting(videos, tmp_path):
    out = tmp_path / "out"
    first = run(videos, out, batch_size=2)
    again = run(videos, out, batch_size=64)
    ok = again["status"] == "ok"
    assert again.loc[ok, "reused"].all() and not again.loc[~ok, "reused"].any()  # failed ones are redone
    assert set(again.loc[ok, "video_id"]) == set(first.loc[first["status"] == "ok", "video_id"])


def test_locked_output_is_refused(videos, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    with OutputLock(out), pytest.raises(OutputError, match="in use"):
        run(videos, out)


def test_stale_lock_and_temp_files_are_cleaned(videos, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / LOCK_NAME).write_text('{"pid": 999999999, "host": "%s"}' % os.uname().nodename)
    (out / ".x.mp4.parquet.tmp-123").write_bytes(b"half")
    assert set(run(videos, out)["status"]) == {"ok", "failed"}
    assert not (out / ".x.mp4.parquet.tmp-123").exists()


@pytest.mark.parametrize("kwargs, message", [
    ({"fps": -1}, "fps"), ({"batch_size": 0}, "batch_size"), ({"workers": 0}, "workers"),
    ({"gpus_per_worker": -0.5}, "gpus_per_worker"), ({"score_threshold": 2}, "score_threshold"),
    ({"model": "/nonexistent.keras"}, "model"), ({"prior": "uniform"}, "prior"), ({"prior": 2.5}, "prior"),
    ({"shot_threshold": 0}, "shot_threshold"),
])
def test_invalid_arguments_fail_before_any_work(videos, tmp_path, kwargs, message):
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=message):
        run(videos, out, **kwargs)
    assert not out.exists()


def test_out_that_is_a_file_is_refused(videos, tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(ValueError, match="not a folder"):
        run(videos, target)


def test_real_sample_folder(tmp_path):
    out = tmp_path / "out"
    manifest = run([shared_video("WolfgangLanger_Pexels.mp4"), shared_video("no_face.mp4")], out)
    assert list(manifest["status"]) == ["ok", "ok"]
    df = emovid.read_results(out)
    sizes = {Path(video_id).name: n for video_id, n in df.groupby("video_id").size().items()}
    assert sizes == {"sample.mp4": 79, "no_face.mp4": 16}
    shutil.rmtree(out)


def test_unicode_names_and_4k_frames(tmp_path):
    import cv2
    import numpy as np

    root = tmp_path / "in put"
    (root / "séance 1").mkdir(parents=True)
    photo = cv2.imread(str(shared_video("single_face.jpg")))
    frame = np.full((2160, 3840, 3), 80, np.uint8)
    frame[800:800 + photo.shape[0], 1500:1500 + photo.shape[1]] = photo
    write_video(root / "séance 1" / "clip ü 4k.mp4", [frame] * 3, fps=3)
    out = tmp_path / "out"
    manifest = run(root, out)
    assert manifest["video_id"].tolist() == ["séance 1/clip ü 4k.mp4"] and manifest["status"].tolist() == ["ok"]
    df = emovid.read_results(out)
    assert df["video_id"].unique().tolist() == ["séance 1/clip ü 4k.mp4"]
    assert (df["x"] > 1400).all() and df["emotion"].notna().all()  # boxes in 4K pixels


def test_model_with_wrong_classes_stops_before_any_video(videos, tmp_path):
    from emovid.assets import DEFAULT_MODEL_NAME, bundled
    from emovid.errors import ModelError
    from emovid.classify.model_file import ModelInfo, read_model_info, write_model_info

    model = tmp_path / "wrong.keras"
    shutil.copy(bundled(DEFAULT_MODEL_NAME), model)
    info = read_model_info(model)
    write_model_info(model, ModelInfo(info.name, "bad", ("a", "b"), info.input_size, info.crop_margin))
    with pytest.raises(ModelError, match="2 classes"):
        run(videos, tmp_path / "out", model=model)
    assert not list((tmp_path / "out").rglob("*.parquet"))


def test_pipes_devices_and_broken_links_named_like_media_fail_with_a_plain_reason_and_never_block(tmp_path):
    # a named pipe with no writer blocks whoever opens it, in C: the run must never open one
    import subprocess
    import sys

    root = tmp_path / "in"
    root.mkdir()
    write_video(root / "good.mp4", 6)
    os.mkfifo(root / "pipe.mp4")
    os.symlink("/dev/zero", root / "zero.mp4")
    os.symlink(root / "gone.mp4", root / "dangling.mp4")
    (root / "folder.mp4").mkdir()
    # videos only, with the progress bars on: sizing the frame bar once opened every video on the driver
    subprocess.run([sys.executable, "-m", "emovid", "analyze", str(root), "--out", str(tmp_path / "out"),
                    "--in-process"], timeout=120, capture_output=True)
    manifest = read_manifest(tmp_path / "out")
    errors = dict(zip(manifest["video_id"], manifest["error"]))
    assert dict(zip(manifest["video_id"], manifest["status"]))["good.mp4"] == "ok"
    assert errors["pipe.mp4"] == "not a regular file: named pipe"
    assert errors["zero.mp4"] == "not a regular file: character device"
    assert errors["dangling.mp4"].startswith("broken symbolic link")
    assert errors["folder.mp4"] == "not a regular file: directory"


def test_a_photo_that_is_a_pipe_fails_without_opening_it(tmp_path):
    from emovid.errors import ImageError
    from emovid.media.images import read_image

    os.mkfifo(tmp_path / "pipe.jpg")
    with pytest.raises(ImageError, match="not a regular file: named pipe"):
        read_image(str(tmp_path / "pipe.jpg"))
