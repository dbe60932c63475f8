"""Shot-boundary (hard cut) detection on every decoded frame, so tracks can end at cuts.

The score is PySceneDetect's ContentDetector score (mean absolute change of hue, saturation and
value between consecutive frames, 0..255), computed on a 64 px wide thumbnail: a cut changes
the whole picture, so detail does not matter and the thumbnail costs a fraction of a decode.
Like its AdaptiveDetector, a frame is a cut only when its score also stands out from the
recent scores (fast camera motion raises every score, a cut only one), and a shot lasts at
least ``min_shot_s`` (a flash or a single glitched frame is not two cuts).

A fade through black (out to black, then in) is a cut too, like PySceneDetect's
ThresholdDetector: the new shot starts at the first frame whose mean brightness is back above
``BLACK_LEVEL`` within ``MAX_FADE_IN_S`` of the last black frame (one whose pixels are nearly all
below that level). A video that fades in from black at its start therefore begins with a short
faceless shot 0. Dissolves (one picture blending into the next) are not detected: they change the
picture slowly, and the tracker's motion and appearance gates still keep people apart through them.
"""

from __future__ import annotations

import math
from collections import deque

import cv2
import numpy as np

from emovid.thumbnails import shrink

THUMB_WIDTH = 64
#: Brightness (HSV value, 0..255) under which a frame is black: when 95% of its thumbnail's
#: pixels are under it. PySceneDetect's ThresholdDetector uses 12 on the mean of all channels.
BLACK_LEVEL = 24
#: Longest time from the last black frame to the picture being back (mean value above
#: BLACK_LEVEL) that still counts as a fade in; video.PREROLL_SHOT_S must cover it.
MAX_FADE_IN_S = 1.5


def thumbnail_hsv(image: np.ndarray) -> np.ndarray:
    """A BGR (or gray) frame as a small int16 HSV thumbnail, ``THUMB_WIDTH`` px wide."""
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    h, w = image.shape[:2]
    size = (THUMB_WIDTH, max(1, round(THUMB_WIDTH * h / max(w, 1))))
    small = shrink(image, size)
    return cv2.cvtColor(small, cv2.COLOR_BGR2HSV).astype(np.int16)


def content_score(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute HSV change between two thumbnails (hue on its circle, scaled to 0..255)."""
    diff = np.abs(a - b)
    hue = np.minimum(diff[..., 0], 180 - diff[..., 0]) * (255.0 / 90.0)
    return float((hue.mean() + diff[..., 1].mean() + diff[..., 2].mean()) / 3.0)


class ShotDetector:
    """Counts shots over the frames of one video, fed in decode order.

    Args:
        threshold: content score a frame needs to be a cut (PySceneDetect's ContentDetector
            default is 27). Lower finds softer cuts (similar sets, same lighting) but cuts
            fast pans too.
        min_ratio: how many times the mean score of the preceding ``window`` frames a cut must
            reach; it rejects fast motion, where every frame scores high.
        window: preceding frames whose scores set the local level.
        min_shot_s: shortest shot in seconds; a second cut sooner is ignored (flashes).
    """

    def __init__(self, threshold: float = 27.0, min_ratio: float = 3.0, window: int = 8,
                 min_shot_s: float = 0.3) -> None:
        for name, value in (("threshold", threshold), ("min_ratio", min_ratio), ("min_shot_s", min_shot_s)):
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name}: expected a finite number >= 0, got {value}")
        if window < 1:
            raise ValueError(f"window: expected >= 1, got {window}")
        self.threshold = threshold
        self.min_ratio = min_ratio
        self.min_shot_s = min_shot_s
        self._scores: deque[float] = deque(maxlen=window)
        self._previous: np.ndarray | None = None
        self._shot_start: float | None = None
        self._last_black: float | None = None  # time of the latest black frame
        self._back_from_black = True  # a frame has been bright since that black frame
        self.shot = 0  #: index of the current shot (cuts seen so far)

    def update(self, image: np.ndarray, timestamp_s: float) -> bool:
        """Feed the next decoded frame; True when a new shot starts at it."""
        thumb = thumbnail_hsv(image)
        previous, self._previous = self._previous, thumb
        was_black = (self._last_black is not None and not self._back_from_black
                     and timestamp_s - self._last_black <= MAX_FADE_IN_S)
        value = thumb[..., 2]
        black = float(np.percentile(value, 95)) < BLACK_LEVEL  # nearly every pixel dark
        faded_in = self._fade_in(value, black, timestamp_s)
        if previous is None or previous.shape != thumb.shape:
            self._shot_start = timestamp_s if self._shot_start is None else self._shot_start
            return False
        hard = False
        # Hue and saturation are noise near black, so a frame into or out of black scores like a
        # cut: there the fade rule decides (the shot changes when the picture comes back).
        if not (was_black or black):
            score = content_score(previous, thumb)
            level = sum(self._scores) / len(self._scores) if self._scores else 0.0
            self._scores.append(score)
            hard = score >= self.threshold and score >= self.min_ratio * max(level, 1.0)
        is_cut = (faded_in or hard) and timestamp_s - self._shot_start >= self.min_shot_s
        if is_cut:
            self.shot += 1
            self._shot_start = timestamp_s
            self._scores.clear()
            self._scores.append(0.0)
        return is_cut

    def _fade_in(self, value: np.ndarray, black: bool, timestamp_s: float) -> bool:
        """Whether this frame (its thumbnail's HSV value channel; ``black``: nearly all of it
        under BLACK_LEVEL) is the picture coming back from black. Depends on the last
        ``MAX_FADE_IN_S`` only, so a segment's pre-roll sees what an unsplit run sees."""
        if black:
            self._last_black, self._back_from_black = timestamp_s, False
            return False
        if self._back_from_black or value.mean() < BLACK_LEVEL:
            return False
        self._back_from_black = True
        return timestamp_s - self._last_black <= MAX_FADE_IN_S

    def restart_count(self) -> None:
        """Count shots from 0 again, keeping the previous frame: a segment's reader calls it at
        the segment's first frame, after feeding the frames before it, so a cut exactly on the
        boundary still counts."""
        self.shot = 0
