import math

import numpy as np
import pytest

from emovid.shots import ShotDetector, content_score, thumbnail_hsv
from emovid.video import VideoReader
from tests.helpers import shot_background, write_video


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
    with VideoReader(path, sample_fps, shots=ShotDetector()) as reader:
        sampled = [(f.index, f.shot) for f in reader.frames()]
        assert reader.shots_seen == 4
    assert all(shot == index // 7 for index, shot in sampled)
    with VideoReader(path, sample_fps) as reader:  # off: one shot
        assert {f.shot for f in reader.frames()} == {0} and reader.shots_seen == 1
