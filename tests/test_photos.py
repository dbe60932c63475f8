"""Photos as inputs: alone, in folders, mixed with videos, broken ones, grouped into few Ray tasks."""

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

import emovid
from emovid.config import AnalyzeConfig, RunOptions
from emovid.media.discover import find_inputs
from emovid.store.manifest import read_manifest
from emovid.errors import ImageError
from emovid.run.tasks import IMAGES_PER_TASK
from emovid.media.images import read_image
from tests.helpers import LIVE_TEST, write_video

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "sample.mp4"


@pytest.fixture(scope="module")
def face_photo() -> np.ndarray:
    """A real face (the bundled sample video's first frame), 640x360 BGR."""
    cap = cv2.VideoCapture(str(SAMPLE))
    ok, frame = cap.read()
    cap.release()
    assert ok
    return frame


def _rows(out: Path, photo_id: str) -> pd.DataFrame:
    return pd.read_parquet(out / f"{photo_id}.parquet")


def test_photos_alone_give_one_row_per_face(tmp_path, face_photo):
    cv2.imwrite(str(tmp_path / "face.jpg"), face_photo)
    cv2.imwrite(str(tmp_path / "blank.png"), np.full((200, 300, 3), 128, np.uint8))
    manifest = emovid.analyze(tmp_path, tmp_path / "out", in_process=True, progress=False)
    assert set(manifest["kind"]) == {"image"} and set(manifest["status"]) == {"ok"}
    face = _rows(tmp_path / "out", "face.jpg")
    assert len(face) == 1 and face.loc[0, "frame_index"] == 0 and face.loc[0, "timestamp_s"] == 0.0
    assert face.loc[0, "emotion"] in emovid.EMOTIONS and face.loc[0, "track_id"] == 0
    assert 300 <= face.loc[0, "x"] <= 360  # the face is on the right of the frame
    blank = _rows(tmp_path / "out", "blank.png")
    assert len(blank) == 1 and blank["face_index"].isna().all() and blank["emotion"].isna().all()
    row = manifest.set_index("video_id").loc["face.jpg"]
    assert (row["faces"], row["width"], row["height"]) == (1, 640, 360)


def test_folder_mixing_photos_and_videos_then_rerun_reuses_both(tmp_path, face_photo):
    cv2.imwrite(str(tmp_path / "a.jpg"), face_photo)
    write_video(tmp_path / "clip.mp4", 6)
    (tmp_path / "notes.txt").write_text("not media: ignored")
    manifest = emovid.analyze(tmp_path, tmp_path / "out", in_process=True, progress=False)
    assert dict(zip(manifest["video_id"], manifest["kind"])) == {"clip.mp4": "video", "a.jpg": "image"}
    again = emovid.analyze(tmp_path, tmp_path / "out", in_process=True, progress=False)
    assert again["reused"].all() and set(again["status"]) == {"ok"}
    assert set(read_manifest(tmp_path / "out")["kind"]) == {"video", "image"}


def test_broken_photos_fail_alone_with_reasons(tmp_path, face_photo):
    good = tmp_path / "good.jpg"
    cv2.imwrite(str(good), face_photo)
    (tmp_path / "garbage.jpg").write_bytes(b"\xff\xd8\xff" + b"not really a jpeg" * 10)
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "cut.jpg").write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    manifest = emovid.analyze(tmp_path, tmp_path / "out", in_process=True, progress=False).set_index("video_id")
    assert manifest.loc["good.jpg", "status"] == "ok"
    assert manifest.loc["garbage.jpg", "status"] == "failed" and "decode" in manifest.loc["garbage.jpg", "error"]
    assert manifest.loc["empty.png", "status"] == "failed" and "empty" in manifest.loc["empty.png", "error"]
    assert manifest.loc["cut.jpg", "status"] == "partial" and "truncated" in manifest.loc["cut.jpg", "error"]
    assert sorted(p.name for p in (tmp_path / "out").glob("*.parquet")) == ["cut.jpg.parquet", "good.jpg.parquet"]


def test_png_with_alpha_is_composited_over_white(tmp_path, face_photo):
    rgba = cv2.cvtColor(face_photo, cv2.COLOR_BGR2BGRA)
    rgba[:, :200, 3] = 0  # the left part transparent
    cv2.imwrite(str(tmp_path / "alpha.png"), rgba)
    image = read_image(str(tmp_path / "alpha.png"))
    assert image.shape == (360, 640, 3) and (image[:, :200] == 255).all()
    assert (image[:, 300:] == face_photo[:, 300:]).all()
    emovid.analyze(tmp_path, tmp_path / "out", in_process=True, progress=False)
    rows = _rows(tmp_path / "out", "alpha.png")
    assert rows["face_index"].notna().sum() == 1


def test_sixteen_bit_and_grey_photos_are_read_as_8_bit_bgr(tmp_path, face_photo):
    grey16 = cv2.cvtColor(face_photo, cv2.COLOR_BGR2GRAY).astype(np.uint16) * 257
    cv2.imwrite(str(tmp_path / "deep.png"), grey16)
    image = read_image(str(tmp_path / "deep.png"))
    assert image.dtype == np.uint8 and image.shape == (360, 640, 3)
    assert np.abs(image[:, :, 0].astype(int) - cv2.cvtColor(face_photo, cv2.COLOR_BGR2GRAY)).max() <= 1


def test_huge_photo_finds_its_face_and_an_oversized_one_is_refused_unread(tmp_path, face_photo):
    big = np.full((4000, 6000, 3), 200, np.uint8)
    big[1000:1000 + 1080, 2000:2000 + 1920] = cv2.resize(face_photo, (1920, 1080))
    cv2.imwrite(str(tmp_path / "big.jpg"), big)
    cv2.imwrite(str(tmp_path / "giant.png"), np.zeros((10_500, 10_000), np.uint8))  # 105 MP, compresses to ~100 KB
    manifest = emovid.analyze(tmp_path, tmp_path / "out", in_process=True, progress=False).set_index("video_id")
    assert manifest.loc["big.jpg", "status"] == "ok" and manifest.loc["big.jpg", "faces"] == 1
    x = _rows(tmp_path / "out", "big.jpg").loc[0, "x"]
    assert 2000 + 3 * 300 <= x <= 2000 + 3 * 360  # the box is in the big photo's own pixels
    with pytest.raises(ImageError, match="10000x10500"):
        read_image(str(tmp_path / "giant.png"))
    assert manifest.loc["giant.png", "status"] == "failed"


def test_explicit_photo_with_another_suffix_is_taken_as_a_photo(tmp_path, face_photo):
    cv2.imwrite(str(tmp_path / "frame.jpg"), face_photo)
    (tmp_path / "frame.jpg").rename(tmp_path / "frame.dat")
    assert [(i.video_id, i.kind) for i in find_inputs([tmp_path / "frame.dat"])] == [("frame.dat", "image")]


@pytest.mark.skipif(not LIVE_TEST.is_dir(), reason="needs ../shared/data/seed/live-test (the seed project's photos)")
def test_seed_live_test_photos_give_sensible_rows(tmp_path):
    manifest = emovid.analyze(LIVE_TEST, tmp_path / "out", in_process=True, progress=False)
    assert len(manifest) == 6 and set(manifest["status"]) == {"ok"} and (manifest["faces"] == 1).all()
    rows = pd.concat([pd.read_parquet(p) for p in manifest["output"]])
    assert (rows["w"] > 400).all()  # one person, close up: the face fills most of the frame
    assert (rows.set_index("video_id").loc["joy/jo_joy.JPG", "emotion"]) == "joy"


def recording_analyzer_class(log: str):
    """A worker class that logs each call's task key (shipped to workers by value)."""
    from emovid.run.workers import RayVideoAnalyzer

    class Recording(RayVideoAnalyzer):
        def __call__(self, task, *args):
            with open(log, "a") as fh:
                fh.write(task.key + "\n")
            return super().__call__(task, *args)

    return Recording


def test_many_photos_travel_in_few_ray_tasks(ray_local, tmp_path, face_photo):
    from emovid.api import plan_tasks
    from emovid.run.distributed import run_tasks
    from emovid.run.tasks import GroupResult

    small = cv2.resize(face_photo, (320, 180))
    n = IMAGES_PER_TASK + 8
    (tmp_path / "in").mkdir()
    for i in range(n):
        cv2.imwrite(str(tmp_path / "in" / f"p{i:03d}.jpg"), small)
    write_video(tmp_path / "in" / "clip.mp4", 4)
    config = AnalyzeConfig()
    tasks, done = plan_tasks(find_inputs([tmp_path / "in"]), tmp_path / "out", config, overwrite=False)
    assert not done and len(tasks) == 3  # the video, then the photos in two groups
    log, results = tmp_path / "calls.log", []

    def on_result(task, result):
        results.extend(result.results if isinstance(result, GroupResult) else [result])
        return []

    run_tasks(tasks, config, RunOptions(workers=2), on_result, analyzer_cls=recording_analyzer_class(str(log)))
    assert len(log.read_text().split()) == 3
    assert len(results) == n + 1 and {r.status for r in results} == {"ok"}
    assert sum(r.faces for r in results if r.kind == "image") == n
    assert len(list((tmp_path / "out").glob("*.jpg.parquet"))) == n


def photo_crashing_analyzer_class():
    """A worker class whose process dies on any group holding a photo with a ``.crash`` file beside it."""
    import os

    from emovid.run.workers import RayVideoAnalyzer

    class PhotoCrasher(RayVideoAnalyzer):
        def __call__(self, task, *args):
            if any(os.path.exists(t.path + ".crash") for t in getattr(task, "images", ())):
                os._exit(1)
            return super().__call__(task, *args)

    return PhotoCrasher


def test_a_photo_that_kills_its_worker_fails_alone(ray_local, tmp_path, face_photo):
    from emovid.api import plan_tasks
    from emovid.run.distributed import run_tasks

    (tmp_path / "in").mkdir()
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        cv2.imwrite(str(tmp_path / "in" / name), cv2.resize(face_photo, (320, 180)))
    (tmp_path / "in" / "b.jpg.crash").write_text("always")
    config = AnalyzeConfig()
    tasks, _ = plan_tasks(find_inputs([tmp_path / "in"]), tmp_path / "out", config, overwrite=False)
    assert len(tasks) == 1  # one group of three
    results = {}

    def on_result(task, result):
        results.update({r.video_id: r for r in result.results})
        return []

    run_tasks(tasks, config, RunOptions(workers=1, retries=1), on_result, analyzer_cls=photo_crashing_analyzer_class())
    assert results["a.jpg"].status == results["c.jpg"].status == "ok"
    assert results["b.jpg"].status == "failed" and "died" in results["b.jpg"].error and results["b.jpg"].kind == "image"


def test_a_photo_gone_before_its_worker_reads_it_fails_with_the_shared_filesystem_hint(analyzer, tmp_path, face_photo):
    from emovid.run.tasks import ImageGroupTask, ImageTask

    cv2.imwrite(str(tmp_path / "here.jpg"), face_photo)
    group = ImageGroupTask((ImageTask(str(tmp_path / "gone.jpg"), "gone.jpg", str(tmp_path / "out" / "gone.jpg.parquet")),
                            ImageTask(str(tmp_path / "here.jpg"), "here.jpg", str(tmp_path / "out" / "here.jpg.parquet"))))
    gone, here = analyzer(group).results
    assert gone.status == "failed" and "does not exist on worker host" in gone.error and gone.kind == "image"
    assert here.status == "ok" and here.faces == 1 and here.worker
