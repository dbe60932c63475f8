import numpy as np
import pyarrow.parquet as pq
import pytest

from emovid.faces import FaceDetections
from emovid.tracker import FaceTracker, iou_matrix
from tests.helpers import moving_faces_video


def dets(*boxes):
    b = np.array(boxes, np.float32).reshape(-1, 4)
    return FaceDetections(b, np.full(len(b), 0.9, np.float32), np.zeros((len(b), 5, 2), np.float32))


def test_iou_matrix():
    iou = iou_matrix(np.array([[0, 0, 10, 10]], float), np.array([[0, 0, 10, 10], [5, 0, 10, 10], [50, 50, 5, 5]], float))
    np.testing.assert_allclose(iou, [[1.0, 50 / 150, 0.0]])
    assert iou_matrix(np.zeros((0, 4)), np.zeros((3, 4))).shape == (0, 3)


def test_ids_follow_moving_faces_and_are_never_reused():
    tracker = FaceTracker(max_gap_s=0.5)
    a, b = tracker.update(dets([0, 0, 50, 50], [200, 0, 50, 50]), 0.0)
    assert (a, b) == (0, 1)
    # listed in the other order and moved: ids follow the boxes, not the order
    assert tracker.update(dets([210, 5, 50, 50], [10, 2, 50, 50]), 0.1).tolist() == [1, 0]
    # face 0 missing briefly: survives
    assert tracker.update(dets([220, 8, 50, 50]), 0.3).tolist() == [1]
    assert tracker.update(dets([30, 5, 50, 50], [230, 10, 50, 50]), 0.5).tolist() == [0, 1]
    # gone longer than max_gap_s: a new face there gets a fresh id
    assert tracker.update(dets([30, 5, 50, 50]), 1.5).tolist() == [2]
    assert tracker.update(dets(), 1.6).tolist() == []


def test_large_jumps_between_sampled_frames_use_velocity():
    tracker = FaceTracker()
    for i in range(6):  # 45 px per sample: IoU with the last box is ~0.05, the predicted box overlaps
        assert tracker.update(dets([45 * i, 100, 50, 50]), i * 0.5).tolist() == [0]
    other = FaceTracker()
    other.update(dets([0, 100, 50, 50]), 0.0)
    assert other.update(dets([200, 100, 50, 50]), 0.5).tolist() == [1]  # 4 face widths away: someone else


def test_timestamps_must_not_go_backwards():
    tracker = FaceTracker()
    tracker.update(dets(), 1.0)
    with pytest.raises(ValueError, match="timestamp_s"):
        tracker.update(dets(), 0.5)


@pytest.mark.parametrize("kwargs", [{"max_gap_s": -1}, {"min_iou": 2}, {"velocity_smoothing": 1.5}])
def test_bad_settings(kwargs):
    with pytest.raises(ValueError):
        FaceTracker(**kwargs)


def crossing_scene(n=60):
    """Face 0 walks left->right along the top, face 1 right->left below it; they pass each other
    mid-video. Face 1 is hidden for 3 frames (0.3 s), later leaves for 2 s and comes back."""
    positions, truth = [], []
    for i in range(n):
        placed = {0: (20 + 8 * i, 20)}
        if not (20 <= i < 23) and not (35 <= i < 55):
            placed[1] = (500 - 7 * i, 170)
        positions.append(placed)
        truth.append(placed)
    return positions, truth


def track_ids_by_face(df, truth):
    """For each frame, map ground-truth face -> track id (nearest pasted face centre)."""
    from tests.helpers import multi_face_crops

    sizes = [c.shape[:2] for c in multi_face_crops()]
    result = []
    for frame_index, rows in df.dropna(subset=["track_id"]).groupby("frame_index"):
        placed = truth[frame_index]
        centres = {k: (x + sizes[k][1] / 2, y + sizes[k][0] / 2) for k, (x, y) in placed.items()}
        mapping = {}
        for row in rows.itertuples():
            cx, cy = row.x + row.w / 2, row.y + row.h / 2
            k = min(centres, key=lambda k: (centres[k][0] - cx) ** 2 + (centres[k][1] - cy) ** 2)
            mapping[k] = int(row.track_id)
        result.append((frame_index, mapping))
    return result


@pytest.mark.parametrize("sample_fps", [None, 3.0])
def test_generated_crossing_video_keeps_ids(analyzer, tmp_path, sample_fps):
    from emovid.config import AnalyzeConfig
    from emovid.pipeline import VideoAnalyzer, VideoTask

    positions, truth = crossing_scene()
    path = moving_faces_video(tmp_path / "crossing.mp4", positions, fps=10)
    local = VideoAnalyzer(AnalyzeConfig(fps=sample_fps), num_threads=2)
    out = tmp_path / "crossing.parquet"
    assert local(VideoTask(str(path), "crossing.mp4", str(out))).status == "ok"
    df = pq.read_table(out).to_pandas()
    per_frame = track_ids_by_face(df, truth)
    ids_0 = {m[0] for _, m in per_frame if 0 in m}
    assert len(ids_0) == 1  # face 0: one id all along, including while passing face 1
    before_exit = {m[1] for f, m in per_frame if 1 in m and f < 35}
    after_return = {m[1] for f, m in per_frame if 1 in m and f >= 55}
    assert len(before_exit) == 1  # survives the 0.3 s occlusion
    assert len(after_return) == 1 and not (after_return & before_exit)  # 2 s away: a new, unused id
    assert not (ids_0 & (before_exit | after_return))  # no swaps
    assert df["track_id"].nunique() == 3


def test_faceless_video_has_no_tracks(analyzer, tmp_path):
    from emovid.pipeline import VideoTask
    from tests.helpers import shared_video

    out = tmp_path / "n.parquet"
    analyzer(VideoTask(str(shared_video("no_face.mp4")), "n", str(out)))
    assert pq.read_table(out).to_pandas()["track_id"].isna().all()
