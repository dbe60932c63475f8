"""`emovid render`: annotated copies of analysed videos and photos, from the results alone."""

import cv2
import numpy as np
import pandas as pd
import pytest

import emovid
from emovid.cli import main
from emovid.report.render import FacePlan
from tests.helpers import face_video, shared_video, write_video


def _frames(path):
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    root = tmp_path_factory.mktemp("in")
    face_video(root / "face.mp4", n_frames=24, fps=12.0)
    write_video(root / "blank.mp4", 6)
    cv2.imwrite(str(root / "group.jpg"), cv2.imread(str(shared_video("multi_face.jpg"))))
    out = tmp_path_factory.mktemp("out")
    emovid.analyze(root, out, in_process=True, progress=False, fps=4)  # every third frame sampled
    return root, out


def test_render_draws_faces_on_a_same_size_copy_of_each_video(results):
    root, out = results
    assert main(["render", str(out), "--no-progress"]) == 0
    source, rendered = _frames(root / "face.mp4"), _frames(out / "_render" / "face.mp4")
    assert len(rendered) == len(source) == 24 and rendered[0].shape == source[0].shape
    rows = pd.read_parquet(out / "face.mp4.parquet").dropna(subset=["x"])
    x, y, w, h = rows.iloc[0][["x", "y", "w", "h"]].astype(int)
    for i in range(24):  # boxes are drawn on sampled frames and held/interpolated between them
        inside = np.abs(rendered[i].astype(int) - source[i].astype(int)).max(axis=2)
        assert inside[max(y - 30, 0):y + h + 10, max(x - 30, 0):x + w + 90].max() > 100, i
    blank_src, blank = _frames(root / "blank.mp4"), _frames(out / "_render" / "blank.mp4")
    assert len(blank) == 6 and np.abs(blank[0].astype(int) - blank_src[0].astype(int)).mean() < 3  # no face drawn
    photo = cv2.imread(str(out / "_render" / "group.jpg"))
    assert photo.shape == cv2.imread(str(root / "group.jpg")).shape


def test_render_one_video_into_another_folder_and_unknown_ids_fail(results, tmp_path):
    _, out = results
    done = emovid.render(out, videos=["blank.mp4"], out=tmp_path / "r", progress=False)
    assert [r.video_id for r in done] == ["blank.mp4"] and (tmp_path / "r" / "blank.mp4").is_file()
    with pytest.raises(ValueError, match="no results for 'nope.mp4'"):
        emovid.render(out, videos=["nope.mp4"])


def test_render_to_webm_plays_back_with_every_frame(results, tmp_path):
    root, out = results
    assert main(["render", str(out), "--video", "face.mp4", "--format", "webm", "--out", str(tmp_path),
                 "--no-progress"]) == 0
    rendered, source = _frames(tmp_path / "face.mp4.webm"), _frames(root / "face.mp4")  # the id, then the format
    assert len(rendered) == 24 and rendered[0].shape == source[0].shape
    cap = cv2.VideoCapture(str(tmp_path / "face.mp4.webm"))
    codec = int(cap.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little").decode(errors="replace")
    cap.release()
    assert codec.upper().startswith("VP")  # VP8 (or VP9): what browsers play
    with pytest.raises(ValueError, match="container"):
        emovid.render(out, container="avi")


def test_render_reports_a_moved_source_and_goes_on(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    face_video(src / "a.mp4", n_frames=6)
    face_video(src / "b.mp4", n_frames=6)
    emovid.analyze(src, tmp_path / "out", in_process=True, progress=False)
    (src / "a.mp4").unlink()
    assert main(["render", str(tmp_path / "out"), "--no-progress"]) == 1
    assert not (tmp_path / "out" / "_render" / "a.mp4").exists()
    assert len(_frames(tmp_path / "out" / "_render" / "b.mp4")) == 6
    assert not [p for p in (tmp_path / "out" / "_render").iterdir() if p.name.startswith(".")]  # no temp files


def test_face_plan_interpolates_a_track_between_samples_and_holds_a_lone_face():
    row = dict(video_id="v", timestamp_s=0.0, shot=0, face_index=0, person_id=0, det_score=0.9, emotion="joy",
               confidence=0.8, **{f"prob_{c}": 1 / 7 for c in emovid.EMOTIONS})
    df = pd.DataFrame([
        {**row, "frame_index": 0, "track_id": 0, "x": 0, "y": 0, "w": 10, "h": 10},
        {**row, "frame_index": 0, "track_id": 1, "x": 100, "y": 0, "w": 10, "h": 10},
        {**row, "frame_index": 4, "track_id": 0, "x": 40, "y": 0, "w": 10, "h": 10},
    ])
    plan = FacePlan(df, emovid.EMOTIONS)
    assert [m.box[0] for m in plan.at(2)] == [20.0, 100.0]  # track 0 moves; track 1 is held
    assert [m.box[0] for m in plan.at(4)] == [40.0]
    assert [m.box[0] for m in plan.at(8)] == [40.0] and plan.at(9) == []  # held one interval, then gone
