"""Long videos split into time segments: exact boundaries, stitched tracks, merge and fallbacks."""

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import emovid
from emovid.run.pipeline import VideoResult, VideoTask
from emovid.store.schema import face_schema, read_metadata
from emovid.run.segments import SegmentedVideos, TrackStitcher, part_path
from emovid.media.time_segments import Segment, plan_segments
from emovid.media.video import VideoReader
from tests.helpers import crossing_scene, moving_faces_video, shared_video


def test_plan_segments_uses_whole_sampling_periods():
    segments = plan_segments(20.0, 3.0, sample_fps=4 / 3)  # period 0.75 s: 3 s is 4 periods
    assert [s.index for s in segments] == list(range(7)) and segments[0].count == 7
    assert [s.start_s for s in segments] == pytest.approx([i * 3.0 for i in range(7)])
    assert all(b.start_s == a.end_s for a, b in zip(segments, segments[1:]))
    assert segments[-1].end_s == math.inf  # frames past the declared duration are still read
    odd = plan_segments(10.0, 1.0, sample_fps=0.3)  # segment rounds up to one whole period
    assert odd[1].start_s == pytest.approx(1 / 0.3)
    assert len(plan_segments(14.0, 10.0, None)) == 1  # < 1.5 segments: not split
    assert len(plan_segments(16.0, 10.0, None)) == 2


def test_plan_segments_for_fewer_workers_makes_longer_segments():
    capped = plan_segments(1200.0, 300.0, sample_fps=4.0, max_count=2)  # 4 of 300 s, but 2 workers
    assert [(s.start_s, s.end_s) for s in capped] == [(0.0, 600.0), (600.0, math.inf)]
    assert plan_segments(1200.0, 300.0, 4.0, max_count=9) == plan_segments(1200.0, 300.0, 4.0)  # cap not reached
    odd = plan_segments(100.0, 10.0, sample_fps=3.0, max_count=3)  # 33.3 s: whole periods of 1/3 s
    assert len(odd) == 3 and odd[1].start_s * 3.0 == pytest.approx(round(odd[1].start_s * 3.0))
    with pytest.raises(ValueError, match="max_count"):
        plan_segments(100.0, 10.0, None, max_count=0)


@pytest.mark.parametrize("bad", [dict(index=2, count=2, start_s=0, end_s=1), dict(index=0, count=1, start_s=2, end_s=1)])
def test_segment_validates(bad):
    with pytest.raises(ValueError):
        Segment(**bad)


def read_split(path: Path, segment_s: float, sample_fps: float | None) -> tuple[list, list]:
    """(frames of an unsplit read, frames of a split read with indices shifted as the merge does)."""
    with VideoReader(path, sample_fps) as reader:
        whole = [(f.index, f.timestamp_s) for f in reader.frames()]
        duration = reader.info.duration_s
    split, offset = [], 0
    for segment in plan_segments(duration, segment_s, sample_fps):
        with VideoReader(path, sample_fps) as reader:
            split += [(f.index + offset, f.timestamp_s) for f in reader.frames(segment)]
            offset += reader.frames_decoded
    return whole, split


@pytest.mark.parametrize("name", ["WolfgangLanger_Pexels.mp4", "face_noface.mov"])  # H.264 CFR; HEVC, variable rate
@pytest.mark.parametrize("sample_fps", [None, 4.0, 3.3])
@pytest.mark.parametrize("segment_s", [1.7, 0.6])  # 0.6: segments start within the 1 s pre-roll (reopen, no seek)
def test_segment_reads_add_up_to_the_whole_video(name, sample_fps, segment_s):
    whole, split = read_split(shared_video(name), segment_s, sample_fps)
    assert len(whole) > 20
    assert split == whole  # same frames, indices and timestamps: nothing missing or doubled at boundaries


def run_pair(tmp_path, video, **kwargs):
    whole = emovid.analyze(video, tmp_path / "whole", segment_s=0, in_process=True, progress=False, **kwargs)
    split = emovid.analyze(video, tmp_path / "split", segment_s=1.5, in_process=True, progress=False, **kwargs)
    return whole, split


@pytest.mark.parametrize("every_frame", [True, False])
def test_split_run_equals_unsplit_run_with_tracks(tmp_path, every_frame):
    positions, _ = crossing_scene()  # 6 s: faces cross, one hides and leaves; boundaries every 1.5 s
    video = moving_faces_video(tmp_path / "crossing.mp4", positions, fps=10)
    whole, split = run_pair(tmp_path, video, every_frame=every_frame, fps=3.0)
    assert list(split["segments"]) == [4] and list(whole["segments"]) == [1]
    assert list(split["status"]) == ["ok"]
    for col in ("frames_decoded", "frames_sampled", "faces"):
        assert split[col].tolist() == whole[col].tolist()
    a, b = emovid.read_results(tmp_path / "whole"), emovid.read_results(tmp_path / "split")
    assert a["track_id"].nunique() == 3
    pd.testing.assert_frame_equal(a, b, check_exact=False, atol=1e-3)  # track ids included
    listed = sorted(p.name for p in (tmp_path / "split").iterdir())
    assert listed == ["_manifest.csv", "_persons.json", "crossing.mp4.parquet"]
    # the merge stores each person's identity as a whole run does: links across videos come out alike
    whole_ids = read_metadata(pq.read_schema(tmp_path / "whole" / "crossing.mp4.parquet"))["person_embeddings"]
    split_ids = read_metadata(pq.read_schema(tmp_path / "split" / "crossing.mp4.parquet"))["person_embeddings"]
    assert whole_ids.keys() == split_ids.keys() and len(whole_ids) == a["person_id"].nunique()
    for person, entry in whole_ids.items():
        assert np.linalg.norm(np.subtract(entry["mean"], split_ids[person]["mean"])) < 0.1
    meta = read_metadata(pq.read_schema(tmp_path / "split" / "crossing.mp4.parquet"))
    assert meta["segments"] == 4


def test_split_run_equals_unsplit_run_on_a_real_video(tmp_path):
    whole, split = run_pair(tmp_path, shared_video("face_noface.mov"))
    assert list(split["segments"]) == [4]
    pd.testing.assert_frame_equal(emovid.read_results(tmp_path / "whole"), emovid.read_results(tmp_path / "split"),
                                  check_exact=False, atol=1e-3)


def test_truncated_video_is_redone_in_one_piece(tmp_path):
    data = shared_video("WolfgangLanger_Pexels.mp4").read_bytes()
    video = tmp_path / "cut.mp4"
    video.write_bytes(data[: len(data) // 2])  # declares 19.7 s; about half of it decodes
    whole, split = run_pair(tmp_path, video)
    # a segment before the last one hit the end of the stream: its successors' frame indices would
    # be unknown, so the driver redid the video unsplit and got the unsplit run's rows
    assert list(split["status"]) == ["partial"] and list(split["segments"]) == [1]
    assert split["frames_decoded"].tolist() == whole["frames_decoded"].tolist()
    pd.testing.assert_frame_equal(emovid.read_results(tmp_path / "whole"), emovid.read_results(tmp_path / "split"),
                                  check_exact=False, atol=1e-3)
    assert not [p for p in (tmp_path / "split").iterdir() if p.name.startswith(".")]


def track_table(rows: list[tuple[float, int | None, tuple[int, int, int, int]]], shots: list[int] | None = None) -> pa.Table:
    """Face rows (timestamp, local track id, box) in the declared schema; all in shot 0 unless ``shots``."""
    schema = face_schema()
    n = len(rows)
    data = {f.name: pa.nulls(n, f.type) for f in schema}
    data.update(
        video_id=pa.array(["v"] * n), frame_index=pa.array(range(n), pa.int64()),
        timestamp_s=pa.array([r[0] for r in rows], pa.float64()),
        shot=pa.array(shots or [0] * n, pa.int32()),
        track_id=pa.array([r[1] for r in rows], pa.int32()),
        **{c: pa.array([r[2][i] for r in rows], pa.int32()) for i, c in enumerate("xywh")},
    )
    return pa.table([data[f.name] for f in schema], schema=schema)


def test_stitcher_predicts_moving_faces_across_the_boundary():
    stitcher = TrackStitcher(max_gap_s=1.0)
    # a face moving right at 400 px/s: without its velocity, the box 0.2 s later would not overlap
    stitcher.relabel(track_table([(2.7, 0, (100, 10, 40, 40)), (2.8, 0, (140, 10, 40, 40))]))
    after = track_table([(3.0, 0, (220, 10, 40, 40)), (3.0, 1, (100, 10, 40, 40))])
    assert stitcher.relabel(after)[0].to_pylist() == [0, 1]


def test_stitcher_never_joins_tracks_across_a_cut_at_the_boundary():
    stitcher = TrackStitcher(max_gap_s=1.0)
    stitcher.relabel(track_table([(2.8, 0, (100, 10, 40, 40)), (2.9, 0, (100, 10, 40, 40))]))
    # the same place 0.1 s later, but the next segment starts with a new shot
    ids, lookup = stitcher.relabel(track_table([(3.0, 0, (100, 10, 40, 40))], shots=[1]))
    assert ids.to_pylist() == [1] and lookup == {0: 1}


def test_stitcher_joins_tracks_across_a_boundary_and_numbers_new_ones_in_order():
    stitcher = TrackStitcher(max_gap_s=1.0)
    first = track_table([(0.0, 0, (10, 10, 50, 50)), (0.0, 1, (200, 10, 50, 50)), (2.9, 0, (14, 10, 50, 50)),
                         (1.0, 1, (200, 10, 50, 50))])
    assert stitcher.relabel(first)[0].to_pylist() == [0, 1, 0, 1]
    second = track_table([(3.0, 0, (300, 200, 50, 50)), (3.0, 1, (16, 10, 50, 50)), (3.1, None, (0, 0, 0, 0)),
                          (3.5, 2, (200, 12, 50, 50))])
    # local 1 continues track 0 (same place, 0.1 s later); local 0 is someone new; local 2 is where
    # track 1 was, but 2.5 s after it was last seen (> max gap): new as well.
    assert stitcher.relabel(second)[0].to_pylist() == [2, 0, None, 3]


def fake_result(task: VideoTask, status="ok", frames=10, **kw) -> VideoResult:
    return VideoResult(task.video_id, task.path, status, frames_decoded=frames, frames_sampled=frames, faces=0,
                       duration_s=30.0, fps=1.0, width=64, height=48, worker="w1", **kw)


def write_part(task: VideoTask) -> None:
    pq.write_table(track_table([(task.segment.start_s, None, (0, 0, 0, 0))]), task.output)


def test_driver_bookkeeping_merges_fails_or_falls_back(tmp_path):
    task = VideoTask("v.mp4", "v.mp4", str(tmp_path / "v.mp4.parquet"), split_s=10.0)
    for outcome in ("ok", "failed", "unsplittable"):
        videos = SegmentedVideos(segment_s=10.0, sample_fps=None, track_gap_s=1.0)
        segments, final = videos.handle(task, fake_result(task, "split", segments=3))
        assert final is None and [s.segment.index for s in segments] == [0, 1, 2]
        assert segments[1].output == part_path(task.output, 1) and Path(segments[1].output).name.startswith(".")
        for i, seg in enumerate(segments):
            write_part(seg)
            status = outcome if i == 1 else "ok"
            follow_up, final = videos.handle(seg, fake_result(seg, status, error="boom" if status != "ok" else None))
        assert not list(tmp_path.glob(".*"))  # part files are gone in every case
        if outcome == "ok":
            assert follow_up == [] and final.status == "ok" and final.frames_decoded == 30 and final.segments == 3
            assert pq.read_table(task.output)["frame_index"].to_pylist() == [0, 10, 20]  # shifted per segment
        elif outcome == "failed":
            assert follow_up == [] and final.status == "failed" and "boom" in final.error
        else:  # redo the whole video in one piece
            assert final is None and follow_up == [VideoTask(task.path, task.video_id, task.output, split_s=None)]
        Path(task.output).unlink(missing_ok=True)


def test_short_merged_stream_is_partial(tmp_path):
    task = VideoTask("v.mp4", "v.mp4", str(tmp_path / "v.mp4.parquet"))
    videos = SegmentedVideos(segment_s=10.0, sample_fps=None, track_gap_s=None)
    segments, _ = videos.handle(task, fake_result(task, "split", segments=3))
    for seg in segments:
        write_part(seg)
        _, final = videos.handle(seg, fake_result(seg, frames=5))  # 15 of 30 declared frames
    assert final.status == "partial" and "15 of 30 " in final.error


@pytest.mark.parametrize("every_frame", [True, False])
def test_split_run_keeps_the_shots_of_dissolves(tmp_path, every_frame):
    """0.6 s dissolves, one across a 1.5 s boundary: the shots (and each frame's shot) match an unsplit
    run. Tracks and persons may not: a boundary inside a blend can join or part a blended face's
    track differently (docs/people.md)."""
    from tests.helpers import people_heads, shots_video

    heads = people_heads()
    shots = [[(heads[k % 10], (80, 100)), (heads[(k + 5) % 10], (380, 100))] for k in range(4)]
    video = shots_video(tmp_path / "cuts.mp4", shots, frames_per_shot=20, fps=10, dissolve=6)  # 6.2 s
    whole, split = run_pair(tmp_path, video, every_frame=every_frame, fps=4.0)
    assert list(split["segments"]) == [4] and list(split["status"]) == ["ok"]
    assert whole["shots"].tolist() == split["shots"].tolist() == [4]
    a, b = emovid.read_results(tmp_path / "whole"), emovid.read_results(tmp_path / "split")
    assert a["frame_index"].tolist() == b["frame_index"].tolist() and a["shot"].tolist() == b["shot"].tolist()
    faces = a.dropna(subset=["track_id"])
    start = [0, 20, 34, 48, 62]  # where each shot's unblended frames begin (a dissolve overlaps 6 frames)
    for k in range(4):  # from its first unblended frame to its dissolve out
        own = faces[(faces["frame_index"] >= start[k]) & (faces["frame_index"] < start[k + 1] - 6)]
        assert len(own) and set(own["shot"]) == {k}
    # eight people, one per place per shot; faces seen only inside a blend belong to no person, in both runs
    assert whole["persons"].tolist() == split["persons"].tolist() == [8]
    for run in (a, b):
        faces = run.dropna(subset=["track_id"])
        in_blend = faces["frame_index"].isin([f for end in start[1:4] for f in range(end - 6, end)])
        assert faces.loc[~in_blend, "person_id"].notna().all() and faces.loc[~in_blend, "person_id"].nunique() == 8
        assert in_blend[faces["person_id"].isna()].all()


def test_split_run_gives_a_dissolve_s_blended_faces_no_person(tmp_path):
    """Dissolves between 1.5 s boundaries: a face seen only inside a blend is of no person in the
    merged file too, and the persons count leaves it out."""
    from tests.helpers import people_heads, shots_video

    heads = people_heads()
    shots = [[(heads[k], (80, 100)), (heads[k + 5], (380, 100))] for k in range(3)]
    video = shots_video(tmp_path / "cuts.mp4", shots, frames_per_shot=25, fps=10, dissolve=6)  # blends 1.9-2.4 s, 3.8-4.3 s
    whole, split = run_pair(tmp_path, video, fps=4.0)
    assert list(split["segments"]) == [4]
    assert whole["persons"].tolist() == split["persons"].tolist() == [6]
    for run in ("whole", "split"):
        faces = emovid.read_results(tmp_path / run).dropna(subset=["track_id"])
        in_blend = faces["frame_index"].isin([*range(19, 25), *range(38, 44)])
        assert faces.loc[~in_blend, "person_id"].notna().all() and faces.loc[~in_blend, "person_id"].nunique() == 6
        assert faces["person_id"].isna().any() and in_blend[faces["person_id"].isna()].all()


# the new picture's first frame 2 or 1 frames before the 1.5 s boundary (frame 15), or on it: the
# dissolve is seen only 2 frames into the new picture, past the first segment's end; or a 1 s
# blend across the 3 s boundary (frame 30): the third segment must read 1 s before its start
@pytest.mark.parametrize("new_shot_at, blended, every_frame",
                         [(13, 6, False), (13, 6, True), (14, 6, True), (15, 6, False), (31, 10, False)])
def test_split_run_sees_a_dissolve_that_ends_at_a_boundary(tmp_path, new_shot_at, blended, every_frame):
    import cv2

    from tests.helpers import paste, people_heads, shot_background, write_video

    heads = people_heads()
    pictures = []
    for k in range(2):  # two people framed alike in each shot
        picture = shot_background(k, (640, 360))
        paste(picture, heads[k], 80, 100)
        paste(picture, heads[k + 5], 380, 100)
        pictures.append(picture)
    share = [(j + 1) / (blended + 1) for j in range(blended)]
    frames = ([pictures[0]] * (new_shot_at - blended) + [cv2.addWeighted(pictures[0], 1 - a, pictures[1], a, 0)
                                                         for a in share] + [pictures[1]] * 20)
    whole, split = run_pair(tmp_path, write_video(tmp_path / "cut.mp4", frames, fps=10, size=(640, 360)),
                            every_frame=every_frame, fps=4.0)
    assert split["segments"].tolist()[0] > 1
    assert whole["shots"].tolist() == split["shots"].tolist() == [2]
    assert whole["persons"].tolist() == split["persons"].tolist() == [4]
    a, b = emovid.read_results(tmp_path / "whole"), emovid.read_results(tmp_path / "split")
    assert a["shot"].tolist() == b["shot"].tolist()
    assert (a["frame_index"] >= new_shot_at).tolist() == (a["shot"] == 1).tolist()
    assert a["person_id"].isna().tolist() == b["person_id"].isna().tolist()
    for run in (a, b):  # each person id on one side, in one shot: the new people's faces are their own
        faces = run.dropna(subset=["person_id"])
        assert (faces.groupby("person_id")["x"].agg(lambda x: (x < 240).nunique()) == 1).all()
        assert (faces.groupby("person_id")["shot"].nunique() == 1).all()


# 15: every cut exactly on a 1.5 s boundary; 20 with fade 8: 0.8 s fades through black on both sides
# of each cut, so the 1.5 s boundaries fall inside fades and shots span them (a plain 20-frame
# version with hard cuts added nothing either of these misses)
@pytest.mark.parametrize("frames_per_shot, fade", [(15, 0), (20, 8)])
@pytest.mark.parametrize("every_frame", [True, False])
def test_split_run_keeps_shots_tracks_and_persons(tmp_path, frames_per_shot, fade, every_frame):
    from tests.helpers import people_heads, shots_video

    heads = people_heads()
    shots = [[(heads[k % 10], (80, 100)), (heads[(k + 5) % 10], (380, 100))] for k in range(4)]
    shots[2] = [(heads[0], (380, 100))]  # person 0 again, on the other side
    video = shots_video(tmp_path / "cuts.mp4", shots, frames_per_shot=frames_per_shot, fps=10, fade=fade)
    whole, split = run_pair(tmp_path, video, every_frame=every_frame, fps=4.0)
    assert list(split["segments"]) == [4 if frames_per_shot == 15 else 5] and list(split["status"]) == ["ok"]
    for col in ("shots", "tracks", "persons"):
        assert split[col].tolist() == whole[col].tolist()
    assert whole["shots"].tolist() == [4]
    a, b = emovid.read_results(tmp_path / "whole"), emovid.read_results(tmp_path / "split")
    pd.testing.assert_frame_equal(a, b, check_exact=False, atol=1e-3)  # shot, track and person ids included
    faces = a.dropna(subset=["track_id"])
    assert (faces.groupby("track_id")["shot"].nunique() == 1).all()
    lit = faces[faces["frame_index"] % frames_per_shot >= fade]  # a fade's new shot starts once it is bright
    assert len(lit) and (lit["shot"] == lit["frame_index"] // frames_per_shot).all()
