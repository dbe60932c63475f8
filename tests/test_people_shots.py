import math

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest

import emovid
from emovid.store.schema import read_metadata
from emovid.people.labels import PREROLL_SHOT_S, ShotLabels
from emovid.people.shots import ShotDetector, content_score, thumbnail_hsv
from emovid.people.transitions import CUT_DELAY_FRAMES
from emovid.media.video import VideoReader
from tests.helpers import paste, people_heads, shared_video, shot_background, shots_video, write_video


def test_content_score_is_zero_for_equal_frames_and_high_for_a_new_set():
    a, b = thumbnail_hsv(shot_background(0)), thumbnail_hsv(shot_background(1))
    assert content_score(a, a) == 0
    assert content_score(a, b) > 27


def test_hue_difference_wraps_around_the_circle():
    red_low = np.zeros((4, 4, 3), np.int16)
    red_high = red_low.copy()
    red_low[..., 0], red_high[..., 0] = 1, 179  # both red: 2 hue steps apart, not 178
    assert content_score(red_low, red_high) < 3


def test_cuts_fast_motion_and_flashes():
    detector = ShotDetector()
    frames = [shot_background(0)] * 5 + [shot_background(1)] * 5
    cuts = [detector.update(f, i / 10) for i, f in enumerate(frames)]
    assert cuts == [False] * 5 + [True] + [False] * 4 and detector.shot == 1
    # a one-frame flash inside a shot: the cut into it counts, the cut back is too soon (min_shot_s)
    flash = ShotDetector()
    seq = [shot_background(0)] * 5 + [np.full_like(shot_background(0), 255)] + [shot_background(0)] * 5
    assert sum(flash.update(f, i / 10) for i, f in enumerate(seq)) == 1


def test_steady_high_motion_is_not_a_cut():
    detector = ShotDetector()
    rng = np.random.default_rng(0)
    # noise frames: every frame differs from the last by a similar, high amount (a fast pan)
    frames = [rng.integers(0, 255, (90, 160, 3), dtype=np.uint8) for _ in range(20)]
    cuts = [detector.update(f, i / 10) for i, f in enumerate(frames)]
    assert sum(cuts[10:]) == 0  # once the local level is known, no frame stands out


@pytest.mark.parametrize("kwargs", [dict(threshold=-1), dict(min_ratio=math.nan), dict(window=0),
                                    dict(min_shot_s=-0.1)])
def test_bad_settings(kwargs):
    with pytest.raises(ValueError):
        ShotDetector(**kwargs)


@pytest.mark.parametrize("sample_fps", [None, 2.0, 0.5])
def test_reader_counts_cuts_between_sampled_frames(tmp_path, sample_fps):
    # 4 shots of 7 frames at 10 fps: at 0.5 fps only frames 0 and 20 are sampled, yet all 3 cuts count
    frames = [shot_background(k, (160, 96)) for k in range(4) for _ in range(7)]
    path = write_video(tmp_path / "cuts.mp4", frames, fps=10)
    labelled, labels = _labelled(path, sample_fps)
    assert labels.shots_seen == 4
    assert all(f.shot == f.index // 7 for f in labelled)
    with VideoReader(path, sample_fps) as reader:  # off: one shot
        assert [(f.index, f.shot) for f in reader.frames()] == [(f.index, 0) for f in labelled]


def _labelled(path, sample_fps):
    """The sampled frames of a video with their shots, and the labeller that gave them."""
    with VideoReader(path, sample_fps, context_s=PREROLL_SHOT_S) as reader:
        labels = ShotLabels(ShotDetector(), reader.info.fps)
        return list(labels.frames(reader.decoded())), labels


def _cuts(frames, fps=10.0):
    detector = ShotDetector()
    return [i for i, f in enumerate(frames) if detector.update(f, i / fps)]


@pytest.mark.parametrize("fade", [1, 5, 12])
def test_a_fade_through_black_is_one_cut_where_the_picture_comes_back(fade):
    a, b = shot_background(0, (160, 96)), shot_background(1, (160, 96))
    out = [(a * (1 - (i + 1) / fade)).astype(np.uint8) for i in range(fade)]  # ends black
    into = [(b * (i / fade)).astype(np.uint8) for i in range(fade)]  # starts black
    frames = [a] * 10 + out + into + [b] * 10
    cuts = _cuts(frames)
    assert len(cuts) == 1 and 10 + fade < cuts[0] <= 10 + 2 * fade  # in the fade in, once it is not black


@pytest.mark.parametrize("fade", [1, 5, 12])
def test_a_fade_through_white_is_one_cut_where_the_picture_comes_back(fade):
    a, b = shot_background(0, (160, 96)), shot_background(1, (160, 96))
    white = np.full_like(a, 255)
    out = [cv2.addWeighted(a, 1 - (i + 1) / fade, white, (i + 1) / fade, 0) for i in range(fade)]  # ends white
    into = [cv2.addWeighted(white, 1 - i / fade, b, i / fade, 0) for i in range(fade)]  # starts white
    cuts = _cuts([a] * 10 + out + into + [b] * 10)
    # the new shot starts in the fade in, once it is not white; washing out drops the saturation so
    # fast that a fade out may also score as a cut, which leaves a shot of the fade between
    assert 10 + fade < cuts[-1] <= 10 + 2 * fade and len(cuts) <= 2 and all(c >= 10 for c in cuts)


def test_a_fast_fade_out_then_a_short_blank_is_a_blank_shot_then_the_new_one():
    # the two frames out to white score as a hard cut; the picture back 0.2 s later is a cut too,
    # though the shot of white frames is shorter than min_shot_s (before, the new picture was not)
    a, b = shot_background(0, (160, 96)), shot_background(1, (160, 96))
    white = np.full_like(a, 255)
    frames = [a] * 10 + [cv2.addWeighted(a, 0.4, white, 0.6, 0)] + [white] * 2 + [b] * 10
    assert _cuts(frames) == [10, 13]


def test_a_hard_cut_to_black_and_back_is_one_cut_and_a_dim_scene_none():
    a, b = shot_background(0, (160, 96)), shot_background(1, (160, 96))
    black = np.zeros_like(a)
    assert _cuts([a] * 10 + [black] * 10 + [b] * 10) == [20]
    rng = np.random.default_rng(0)
    dim = [np.clip(a * 0.15 + rng.normal(0, 2, a.shape), 0, 255).astype(np.uint8) for _ in range(30)]
    assert _cuts(dim) == []  # dark but not black: no fades, and its noisy hue does not cut


def _with_head(background, x=60, head=None, y=20):
    frame = background.copy()
    paste(frame, people_heads(60)[1] if head is None else head, x, y)
    return frame


# (blended frames, fps): the last is a 2.5 s dissolve, whose window's last frames are 95% of the way
# to its end long before it ends
@pytest.mark.parametrize("blended, fps", [(4, 10), (6, 10), (10, 10), (50, 20)])
def test_a_dissolve_is_one_cut_once_the_blend_has_ended(blended, fps):
    a, b = _with_head(shot_background(0, (160, 96))), _with_head(shot_background(1, (160, 96)), 90)
    mix = [cv2.addWeighted(a, 1 - (i + 1) / (blended + 1), b, (i + 1) / (blended + 1), 0) for i in range(blended)]
    detector = ShotDetector()
    frames = [a] * 10 + mix + [b] * 10
    cuts = [i for i, f in enumerate(frames) if detector.update(f, i / fps)]
    # no frame-to-frame change stands out (10 blended frames: each is a tenth of the cut), yet it is one
    # cut, seen two frames into the new picture, which began at its first frame; the blend is the old shot's
    assert cuts == [10 + blended + CUT_DELAY_FRAMES]
    assert detector.shot_start_s == pytest.approx((10 + blended) / fps)
    assert detector.transition_start_s == pytest.approx(9 / fps)  # the old picture's last still frame


def test_a_dissolve_after_seconds_of_a_walking_person_is_one_cut_at_its_end():
    # the old shot's walk drifts the blend shares of the whole 3 s window before the blend begins;
    # the dissolve's start is where they start rising at the blend's pace
    head, other = people_heads(60)[1], people_heads(60)[2]
    a = [_with_head(shot_background(0, (160, 96)), i, head) for i in range(36)]
    b = [_with_head(shot_background(1, (160, 96)), 90 + i, other) for i in range(16)]
    mix = [cv2.addWeighted(a[30 + j], 1 - (j + 1) / 7, b[j], (j + 1) / 7, 0) for j in range(6)]
    detector = ShotDetector()
    cuts = [i for i, f in enumerate(a[:30] + mix + b[6:]) if detector.update(f, i / 12)]
    assert cuts == [36 + CUT_DELAY_FRAMES]
    assert detector.shot_start_s == pytest.approx(36 / 12)
    assert detector.transition_start_s == pytest.approx(29 / 12)


def _wipe(a, b, shape, share):
    """``b`` shown where ``shape``'s region holds ``share`` of the picture, ``a`` elsewhere (a hard-edged wipe)."""
    h, w = a.shape[:2]
    y, x = np.mgrid[0:h, 0:w]
    if shape == "left to right":
        inside = x < share * w
    elif shape == "soft left to right":  # the new picture fades in over an edge 40% of the width
        alpha = np.clip((share * 1.4 - x / w) / 0.4, 0, 1)[..., None]
        return (a * (1 - alpha) + b * alpha).astype(np.uint8)
    elif shape == "noise":  # each pixel switches at its own random moment (a dither dissolve)
        inside = np.random.default_rng(3).random((h, w)) < share
    elif shape == "top down":
        inside = y < share * h
    else:  # an iris opening from the middle
        inside = np.hypot(x - w / 2, y - h / 2) < share * np.hypot(w, h) / 2
    return np.where(inside[..., None], b, a)


# (shape, frames the end may be seen early and the start late): an iris's area grows with the
# square of its radius, so its first three frames change under a tenth of the picture and its
# last leave only the corners; a soft edge's first and last frames change little too
@pytest.mark.parametrize("shape, slack", [("left to right", 0), ("soft left to right", 2), ("top down", 0),
                                          ("iris", 3), ("noise", 0)])
@pytest.mark.parametrize("frames", [6, 12])
def test_a_wipe_is_one_cut_once_it_has_ended(shape, slack, frames):
    # no frame-to-frame change stands out and no frame is a blend of the two pictures, yet each
    # pixel switches once, quickly, from the old picture to the new one
    a, b = _with_head(shot_background(0, (160, 96))), _with_head(shot_background(1, (160, 96)), 70, people_heads(60)[2])
    if shape == "noise":  # at 640 px the thumbnail keeps much of the noise, as from FFmpeg's dissolve
        a, b = cv2.resize(a, (640, 384)), cv2.resize(b, (640, 384))
    wipe = [_wipe(a, b, shape, (i + 1) / (frames + 1)) for i in range(frames)]
    detector = ShotDetector()
    cuts = [i for i, f in enumerate([a] * 10 + wipe + [b] * 10) if detector.update(f, i / 12)]
    assert len(cuts) == 1 and 0 <= 10 + frames + CUT_DELAY_FRAMES - cuts[0] <= slack
    assert 0 <= (10 + frames) / 12 - detector.shot_start_s <= slack / 12 + 1e-9
    assert 0 <= detector.transition_start_s - 9 / 12 <= slack / 12 + 1e-9  # the old picture's last still frame


def _real_frames(name, start, count, size=(320, 180)):
    capture = cv2.VideoCapture(str(shared_video(name)))
    capture.set(cv2.CAP_PROP_POS_FRAMES, start)
    frames = [cv2.resize(capture.read()[1], size) for _ in range(count)]
    capture.release()
    return frames


def test_a_wipe_between_two_real_people_ends_the_track_and_keeps_them_apart(tmp_path):
    woman = _real_frames("WolfgangLanger_Pexels.mp4", 0, 30)
    man = _real_frames("face_noface.mov", 0, 30)
    wipe = [_wipe(woman[20 + i], man[i], "left to right", (i + 1) / 9) for i in range(8)]
    video = write_video(tmp_path / "wipe.mp4", woman[:20] + wipe + man[8:], fps=12, size=(320, 180))
    emovid.analyze(video, tmp_path / "out", every_frame=True, in_process=True, progress=False)
    faces = emovid.read_results(tmp_path / "out").dropna(subset=["track_id"])
    before, after = faces[faces["frame_index"] < 20], faces[faces["frame_index"] >= 28]
    assert set(before["shot"]) == {0} and set(after["shot"]) == {1}  # before: one shot, one track for both
    assert not set(before["track_id"]) & set(after["track_id"])
    assert not set(before["person_id"].dropna()) & set(after["person_id"].dropna())
    # the wipe's frames stay in the old shot, where the man's face may continue the woman's track:
    # their faces are no one's
    during = faces[(faces["frame_index"] >= 20) & (faces["shot"] == 0)]
    assert len(during) and during["person_id"].isna().all() and before["person_id"].notna().all()


def test_no_transition_when_a_pan_or_zoom_stops_or_a_close_up_walks_in():
    photo = cv2.resize(cv2.imread(str(shared_video("multi_face.jpg"))), (480, 270))
    zooming = [cv2.resize(photo[int(z * 135):270 - int(z * 135), int(z * 240):480 - int(z * 240)], (160, 96))
               for z in [min(i * 0.02, 0.5) for i in range(40)]]
    assert _cuts(zooming) == []
    gradient = np.dstack([np.tile(np.linspace(60, 220, 320), (96, 1))] * 3).astype(np.uint8)
    for k in range(5):
        cv2.circle(gradient, (40 + 60 * k, 48), 10, (40 * k, 200 - 30 * k, 90), -1)
    assert _cuts([gradient[:, x:x + 160].copy() for x in [min(i * 5, 125) for i in range(40)]]) == []
    head = cv2.resize(people_heads(60)[1], (76, 84))
    walking_in = [_with_head(shot_background(0, (160, 96)), min(-76 + 8 * i, 42), head, 6) for i in range(40)]
    assert _cuts(walking_in) == []


def test_no_dissolve_in_relighting_slow_moves_or_people_moving():
    a = _with_head(shot_background(0, (160, 96)))
    brightening = [(a * (0.35 + 0.65 * min(1.0, i / 10))).astype(np.uint8) for i in range(30)]
    assert _cuts(brightening) == []  # lights coming on: one picture, relit
    walking = [_with_head(shot_background(0, (160, 96)), x) for x in range(-60, 160, 6)]
    assert _cuts(walking) == []
    photo = cv2.resize(cv2.imread(str(shared_video("multi_face.jpg"))), (480, 270))
    panning = [photo[40:136, 3 * i:3 * i + 160] for i in range(100)]  # a camera pan
    assert _cuts(panning) == []


# (transition, frames before it, first frame after it): a dissolve's frames 22-29 blend and the new
# shot starts at 30, the first unblended one, though the detector sees it only at 32 (the reader holds
# frames back); a fade darkens frames 22-29 and brightens 30-37
@pytest.mark.parametrize("transition, before, after", [("dissolve", 22, 30), ("fade", 30, 38)])
@pytest.mark.parametrize("fps", [None, 2.0])
def test_people_on_both_sides_of_a_transition_get_their_own_shots_tracks_and_persons(tmp_path, fps, transition,
                                                                                       before, after):
    heads = people_heads()
    # the same place: only the transition parts them (before, one track ran through both people)
    video = shots_video(tmp_path / "video.mp4", [[(heads[1], (250, 100))], [(heads[6], (250, 100))]],
                        frames_per_shot=30, fps=10, drift=0, **{transition: 8})
    emovid.analyze(video, tmp_path / "out", fps=fps, every_frame=fps is None, in_process=True, progress=False)
    faces = emovid.read_results(tmp_path / "out").dropna(subset=["track_id"])
    first, second = faces[faces["frame_index"] < before], faces[faces["frame_index"] >= after]
    assert len(first) and len(second)
    assert set(first["shot"]) == {0} and set(second["shot"]) == {1}
    assert not set(first["track_id"]) & set(second["track_id"])
    assert not set(first["person_id"]) & set(second["person_id"])


@pytest.mark.parametrize("fps", [None, 4.0])
def test_two_people_trading_places_across_dissolves_stay_two_persons(tmp_path, fps):
    heads = people_heads()
    left, right = (80, 100), (400, 100)
    shots = [[(heads[1], left), (heads[6], right)], [(heads[6], left), (heads[1], right)]] * 2
    video = shots_video(tmp_path / "dissolves.mp4", shots, frames_per_shot=30, fps=10, dissolve=8, drift=0)
    emovid.analyze(video, tmp_path / "out", fps=fps, every_frame=fps is None, in_process=True, progress=False)
    part = next((tmp_path / "out").glob("*.parquet"))
    faces = emovid.read_results(tmp_path / "out").dropna(subset=["track_id"])
    # shots of 30, 22, 22 and 22 frames (a dissolve overlaps 8); the last 8 of the first three blend
    blend = faces["frame_index"].isin([f for end in (30, 52, 74) for f in range(end - 8, end)])
    clean = faces[~blend]
    assert clean["person_id"].notna().all()
    # both people are found in every shot, as the same two persons: the blends' faces push no earlier face
    # out of a track's identity samples (before, at every frame, they did and a person was split)
    on_left = clean[clean["x"] < 240].groupby("shot")["person_id"].agg(set).tolist()
    on_right = clean[clean["x"] >= 240].groupby("shot")["person_id"].agg(set).tolist()
    assert all(len(p) == 1 for p in on_left + on_right)
    assert on_left[0] == on_right[1] == on_left[2] == on_right[3] != on_right[0]
    assert on_right[0] == on_left[1] == on_right[2] == on_left[3]
    # a face seen only inside a blend (a mix of both) belongs to no person, and is not counted as one
    assert blend[faces["person_id"].isna()].all()
    assert read_metadata(pq.read_schema(part))["persons"] == 2


def _dissolve_then_cut(path):
    """3 s of person 1 dissolving (frames 25-30) into a 0.6 s shot of person 6, then a hard cut to
    person 4, at 10 fps. Sampled at 1 fps, frame 30 is inside the blend and frame 40 is past the cut:
    the middle shot is never sampled clean."""
    heads = people_heads()
    first, second, third = (_with_head(shot_background(k, (320, 200)), x, heads[h], y=40)
                            for k, h, x in ((0, 1, 40), (1, 6, 180), (2, 4, 100)))
    frames = [first] * 25 + [cv2.addWeighted(first, 1 - s / 7, second, s / 7, 0) for s in range(1, 7)]
    return write_video(path, frames + [second] * 6 + [third] * 13, fps=10)


def test_a_frame_after_a_dissolve_and_a_cut_both_unsampled_carries_the_dissolve(tmp_path):
    path = _dissolve_then_cut(tmp_path / "dissolve_cut.mp4")
    labelled, labels = _labelled(path, 1.0)
    sampled = {f.index: f for f in labelled}
    assert labels.shots_seen == 3
    assert sampled[30].shot == 0 and sampled[40].shot == 2
    # the tracker changes shot at frame 40: it must learn that frame 30's faces were blends
    assert sampled[40].transition_start_s == pytest.approx(2.4)
    shots = {f.index: (f.shot, f.transition_start_s) for f in _labelled(path, None)[0]}  # every frame: the middle shot is seen
    assert shots[31] == (1, pytest.approx(2.4)) and shots[37] == (2, None)


def test_a_face_seen_only_in_a_blend_before_an_unsampled_cut_has_no_person(tmp_path):
    path = _dissolve_then_cut(tmp_path / "dissolve_cut.mp4")
    emovid.analyze(path, tmp_path / "out", fps=1.0, in_process=True, progress=False)
    faces = emovid.read_results(tmp_path / "out").dropna(subset=["track_id"])
    assert {30, 40} <= set(faces["frame_index"])
    blend = faces[faces["frame_index"] == 30]
    assert blend["person_id"].isna().all()  # person 6 (or a mix) seen only inside the blend
    assert faces[faces["frame_index"] != 30]["person_id"].notna().all()
    part = next((tmp_path / "out").glob("*.parquet"))
    assert read_metadata(pq.read_schema(part))["persons"] == 2
