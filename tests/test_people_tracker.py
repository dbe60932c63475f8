import numpy as np
import pyarrow.parquet as pq
import pytest

from emovid.detect.faces import FaceDetections
from emovid.people.tracker import FaceTracker, iou_matrix
from tests.helpers import crossing_scene, moving_faces_video


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
    from emovid.run.pipeline import VideoAnalyzer, VideoTask

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
    from emovid.run.pipeline import VideoTask
    from tests.helpers import shared_video

    out = tmp_path / "n.parquet"
    analyzer(VideoTask(str(shared_video("no_face.mp4")), "n", str(out)))
    assert pq.read_table(out).to_pandas()["track_id"].isna().all()


def test_assignment_is_optimal_not_greedy():
    # greedy best-first would give track A the middle face (its best score) and leave B unmatched;
    # the optimal assignment matches both
    tracker = FaceTracker(max_centre_shift=1.5)
    tracker.update(FaceDetections(np.array([[0, 0, 40, 40], [50, 0, 40, 40]], np.float32),
                                  np.ones(2, np.float32), np.zeros((2, 5, 2), np.float32)), 0.0)
    ids = tracker.update(FaceDetections(np.array([[30, 0, 40, 40], [-30, 0, 40, 40]], np.float32),
                                        np.ones(2, np.float32), np.zeros((2, 5, 2), np.float32)), 0.1)
    assert sorted(ids.tolist()) == [0, 1]


def test_appearance_gate_refuses_a_stranger_in_a_lost_face_place():
    tracker = FaceTracker()
    box = FaceDetections(np.array([[100, 100, 50, 50]], np.float32), np.ones(1, np.float32),
                         np.zeros((1, 5, 2), np.float32))
    me, stranger = np.eye(4)[:1], np.eye(4)[1:2]
    assert tracker.update(box, 0.0, me).tolist() == [0]
    assert tracker.update(box, 0.2, me).tolist() == [0]
    assert tracker.update(box, 0.4, stranger).tolist() == [1]  # same place, another look: new track


def ground_truth_person(df, truth, positions, shot_len):
    """Each face row's true person: the head pasted nearest its box in that shot."""
    out = []
    for row in df.itertuples():
        placed = truth[int(row.frame_index) // shot_len]
        k = int(np.argmin([abs(row.x - (x + 40)) for x, _ in positions[:len(placed)]]))
        out.append(placed[k])
    return np.array(out)


@pytest.mark.parametrize("fps", [None, 2.0])
def test_no_track_holds_two_people_when_new_people_take_old_places(analyzer_at, tmp_path, fps):
    from emovid.run.pipeline import VideoTask
    from tests.helpers import people_heads, shots_video

    heads = people_heads()
    positions = [(60, 100), (250, 100), (440, 100)]
    rng = np.random.default_rng(3)
    truth = [list(rng.choice(10, size=2 + k % 2, replace=False)) for k in range(8)]
    shots = [[(heads[p], positions[j]) for j, p in enumerate(who)] for who in truth]
    video = shots_video(tmp_path / "cuts.mp4", shots, frames_per_shot=12, fps=12)
    out = tmp_path / "cuts.parquet"
    result = analyzer_at(fps)(VideoTask(str(video), "cuts.mp4", str(out)))
    df = pq.read_table(out).to_pandas().dropna(subset=["track_id"])
    df["person"] = ground_truth_person(df, truth, positions, 12)
    assert result.shots == 8 and (df["shot"] == df["frame_index"] // 12).all()  # every cut, at its frame
    assert (df.groupby("track_id")["person"].nunique() == 1).all()  # a track is one person
    assert df["track_id"].nunique() == sum(len(t) for t in truth)  # one track per person per shot
    assert (df.groupby("track_id")["shot"].nunique() == 1).all()
    assert (df.groupby("person_id")["person"].nunique() == 1).all()  # a person id never merges people


@pytest.mark.parametrize("sample_fps", [None, 4.0, 2.0])  # 2 fps: 75 px between samples, faces 75 px wide
def test_faces_that_swap_places_keep_their_ids(analyzer_at, tmp_path, sample_fps):
    from emovid.run.pipeline import VideoTask
    from tests.helpers import paste, people_heads, shot_background, write_video

    a, b = people_heads()[1], people_heads()[3]
    frames, truth = [], []
    for i in range(30):  # a walks right, b walks left, on one line: they meet, overlap and swap sides
        canvas = shot_background(0)
        xa, xb = 60 + 15 * i, 480 - 15 * i
        paste(canvas, b, xb, 110)
        paste(canvas, a, xa, 100)  # a passes in front
        frames.append(canvas)
        truth.append((xa, xb))
    video = write_video(tmp_path / "swap.mp4", frames, fps=10)
    out = tmp_path / "swap.parquet"
    analyzer_at(sample_fps)(VideoTask(str(video), "swap.mp4", str(out)))
    df = pq.read_table(out).to_pandas().dropna(subset=["track_id"])
    half = a.shape[1] / 2
    who = ["a" if abs(r.x + r.w / 2 - (truth[r.frame_index][0] + half)) < abs(r.x + r.w / 2 - (truth[r.frame_index][1] + half))
           else "b" for r in df.itertuples()]
    df["who"] = who
    apart = df[[abs(truth[f][0] - truth[f][1]) > 150 for f in df["frame_index"]]]
    assert (apart.groupby("track_id")["who"].nunique() == 1).all()  # no id ever moves to the other person
    assert apart[apart["who"] == "a"]["track_id"].nunique() == 1  # a, in front, keeps one id throughout


def _look(*values):
    v = np.array(values, np.float32)
    return (v / np.linalg.norm(v))[None]


def test_a_jump_in_look_is_flagged_and_a_split_starts_a_new_track_that_continues():
    tracker = FaceTracker()
    a, b = _look(1, 0, 0), _look(1, 0.5, 0)  # similarity 0.89: passes the gate, but a jump
    assert tracker.update(dets([100, 100, 60, 60]), 0.0, a).tolist() == [0]
    assert tracker.update(dets([102, 100, 60, 60]), 0.1, a).tolist() == [0] and not tracker.jumped.any()
    assert tracker.update(dets([104, 100, 60, 60]), 0.2, b).tolist() == [0] and tracker.jumped.tolist() == [True]
    assert tracker.split(0, 0) == 1  # another person: track 0 ends there
    assert tracker.update(dets([106, 100, 60, 60]), 0.3, b).tolist() == [1] and not tracker.jumped.any()
    assert 0 not in tracker.live_ids


def test_a_jump_found_to_be_the_same_person_is_a_known_look_of_its_track():
    tracker = FaceTracker()
    a, b = _look(1, 0, 0), _look(1, 0.5, 0)
    tracker.update(dets([100, 100, 60, 60]), 0.0, a)
    tracker.update(dets([100, 100, 60, 60]), 0.1, b)
    assert tracker.jumped.tolist() == [True]  # not split: the same person, seen another way
    tracker.update(dets([100, 100, 60, 60]), 0.2, a)
    assert not tracker.jumped.any()  # back to a known look
    assert tracker.update(dets([100, 100, 60, 60]), 0.3, b).tolist() == [0] and not tracker.jumped.any()


def test_split_rejects_what_the_last_update_did_not_have():
    tracker = FaceTracker()
    tracker.update(dets([100, 100, 60, 60]), 0.0, _look(1, 0, 0))
    with pytest.raises(ValueError, match="track_id"):
        tracker.split(5, 0)
    with pytest.raises(ValueError, match="face_index"):
        tracker.split(0, 1)
