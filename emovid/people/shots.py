"""Shot-boundary (hard cut) detection on every decoded frame, so tracks can end at cuts.

A cut changes what a viewer sees in colour, in structure, or both, so two scores are taken
between consecutive frames, on a 64 px wide thumbnail (a cut changes the whole picture, so detail
does not matter and the thumbnail costs a fraction of a decode):

- colour: PySceneDetect's ContentDetector score (mean absolute change of hue, saturation and
  value, 0..255), with each pixel's hue change counted in proportion to its saturation up to
  ``HUE_FULL_SATURATION``: the hue of a grey or nearly grey pixel is noise (compression alone
  swings it across the circle), so in black-and-white, tinted or washed-out footage it
  otherwise drowns the cuts in a high level of noise;
- structure: ``100 * (1 - r)``, where ``r`` is the correlation of the two luma thumbnails: the
  layout of light and dark, blind to colour and to a change of exposure. It finds the cuts that
  keep the palette (black-and-white film, night and infrared cameras, two angles of one room).

Either score past ``threshold`` makes a cut. Like PySceneDetect's AdaptiveDetector, a frame is a
cut only when that score also stands out from its recent level (fast camera motion raises every
score, a cut only one), and a shot lasts at least ``min_shot_s`` (a flash or a single glitched
frame is not two cuts).

A fade through black (out to black, then in) is a cut too, like PySceneDetect's
ThresholdDetector: the new shot starts at the first frame whose mean brightness is back above
``BLACK_LEVEL`` within ``MAX_FADE_IN_S`` of the last black frame (one whose pixels are nearly all
below that level). A video that fades in from black at its start therefore begins with a short
faceless shot 0. A fade through white is the same, mirrored: white frames are nearly all grey
and above ``255 - BLACK_LEVEL``, and the picture is back when its mean brightness is below that.

Dissolves and wipes (:mod:`emovid.people.transitions`) are cuts too, at their end.
"""

from __future__ import annotations

import math
from collections import deque

import cv2
import numpy as np

from emovid.media.thumbnails import shrink
from emovid.people.transitions import CUT_DELAY_FRAMES, blend_shares, is_transition

THUMB_WIDTH = 64
#: Brightness (HSV value, 0..255) under which a frame is black: when 95% of its thumbnail's
#: pixels are under it. PySceneDetect's ThresholdDetector uses 12 on the mean of all channels.
BLACK_LEVEL = 24
#: Longest time from the last black frame to the picture being back (mean value above
#: BLACK_LEVEL) that still counts as a fade in; labels.PREROLL_SHOT_S must cover it.
MAX_FADE_IN_S = 1.5
#: Longest dissolve or wipe found; labels.PREROLL_SHOT_S must cover it.
MAX_DISSOLVE_S = 3.0
#: Saturation (0..255) from which a pixel's hue change counts fully; below, in proportion.
HUE_FULL_SATURATION = 32
#: Luma standard deviation (0..255) under which a thumbnail has no structure to compare (a blank
#: or nearly uniform frame): its structure score is 0 and the colour score alone decides.
MIN_STRUCTURE_CONTRAST = 3.0
#: Share of a thumbnail's pixels that must change (by over half the pictures' luma deviation) for
#: its structure score to make a cut: a cut replaces the whole picture at once, where a step of a wipe
#: or a person walking close to the camera changes a part of it (cuts of ours: 0.40 and more;
#: wipe steps and walks: 0.21 and less).
MIN_CHANGED_SHARE = 0.3


def thumbnail_bgr(image: np.ndarray) -> np.ndarray:
    """A BGR (or gray) frame as a small uint8 BGR thumbnail, ``THUMB_WIDTH`` px wide."""
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    h, w = image.shape[:2]
    return shrink(image, (THUMB_WIDTH, max(1, round(THUMB_WIDTH * h / max(w, 1)))))


def thumbnail_hsv(image: np.ndarray) -> np.ndarray:
    """A BGR (or gray) frame as a small int16 HSV thumbnail, ``THUMB_WIDTH`` px wide."""
    return _hsv(thumbnail_bgr(image))


def _hsv(small: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(small, cv2.COLOR_BGR2HSV).astype(np.int16)


def content_score(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute HSV change between two HSV thumbnails (hue on its circle, scaled to 0..255,
    and weighted by the lower saturation of the pair up to ``HUE_FULL_SATURATION``)."""
    diff = np.abs(a - b)
    hue = np.minimum(diff[..., 0], 180 - diff[..., 0]) * (255.0 / 90.0)
    weight = np.minimum(np.minimum(a[..., 1], b[..., 1]), HUE_FULL_SATURATION) / HUE_FULL_SATURATION
    return float(((hue * weight).mean() + diff[..., 1].mean() + diff[..., 2].mean()) / 3.0)


def structure_change(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """How the layout of light and dark differs between two grey thumbnails (float32): the score
    ``100 * (1 - r)`` for their correlation ``r`` (0 for the same layout, also under another
    exposure; about 100 for unrelated pictures, up to 200 for a negative) and the share of pixels
    that changed by over half the pictures' luma deviation. Both are 0 when either thumbnail has
    less contrast than ``MIN_STRUCTURE_CONTRAST``."""
    da, db = a - a.mean(), b - b.mean()
    sa, sb = float(np.sqrt((da * da).mean())), float(np.sqrt((db * db).mean()))
    if min(sa, sb) < MIN_STRUCTURE_CONTRAST:
        return 0.0, 0.0
    score = float(100.0 * (1.0 - (da * db).mean() / (sa * sb)))
    return score, float(np.count_nonzero(np.abs(a - b) > 0.25 * (sa + sb))) / a.size


def _grey(small: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(small, cv2.COLOR_BGR2GRAY).astype(np.float32)


class ShotDetector:
    """Counts shots over the frames of one video, fed in decode order.

    Args:
        threshold: colour or structure score a frame needs to be a cut (27 is PySceneDetect's
            ContentDetector default for colour; for structure it is a correlation of 0.73 with
            the frame before). Lower finds softer cuts (similar sets, same lighting) but cuts
            fast pans too.
        min_ratio: how many times the mean of the preceding ``window`` frames' scores (each
            score its own) a cut's score must reach; it rejects fast motion, where every frame
            scores high.
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
        self._scores: deque[tuple[float, float]] = deque(maxlen=window)  # (colour, structure)
        self._previous: tuple[np.ndarray, np.ndarray] | None = None  # (HSV, grey) thumbnails
        self._shot_start: float | None = None
        self._last_blank: float | None = None  # time of the latest black or white frame
        self._blank_white = False  # whether that frame was white
        self._back_from_blank = True  # the picture has come back since that frame
        self._recent: deque[tuple[float, np.ndarray, np.ndarray]] = deque()  # (time, HSV, BGR) since the last cut
        self.shot = 0  #: index of the current shot (cuts seen so far)
        #: When the current shot began with a dissolve: the time of the old picture's last still
        #: frame (frames since are blends of both shots, kept in the old one); else None.
        self.transition_start_s: float | None = None
        #: Time of the current shot's first frame. A dissolve is seen ``CUT_DELAY_FRAMES`` after
        #: it: :class:`~emovid.people.labels.ShotLabels` holds that many frames back, so theirs is the new shot too.
        self.shot_start_s: float | None = None
        self._transition_starts: dict[int, float] = {}  # shots of the current count that began with a dissolve

    def transition_start_of(self, shot: int) -> float | None:
        """``transition_start_s`` of ``shot`` (of the current count) when it began with a dissolve, else None."""
        return self._transition_starts.get(shot)

    def update(self, image: np.ndarray, timestamp_s: float) -> bool:
        """Feed the next decoded frame; True when a new shot starts at it."""
        small = thumbnail_bgr(image)
        thumb, grey = _hsv(small), _grey(small)
        previous, self._previous = self._previous, (thumb, grey)
        was_blank = (self._last_blank is not None and not self._back_from_blank
                     and timestamp_s - self._last_blank <= MAX_FADE_IN_S)
        value = thumb[..., 2]
        # nearly every pixel dark (the mean first: a frame whose 95th percentile is under the level
        # has a mean under level + 0.1 * 255, and most frames' mean is far above: no sort for them)
        black = (float(value.mean()) < BLACK_LEVEL + 0.1 * 255
                 and float(np.percentile(value, 95)) < BLACK_LEVEL)
        # nearly every pixel bright and grey (the mean first: it is cheap, and rules out most frames)
        white = (float(value.mean()) > 0.95 * (255 - BLACK_LEVEL)
                 and float(np.percentile(value, 5)) > 255 - BLACK_LEVEL
                 and float(np.percentile(thumb[..., 1], 95)) < BLACK_LEVEL)
        faded_in = self._fade_in(value, black, white, timestamp_s)
        if previous is None or previous[0].shape != thumb.shape:
            self._shot_start = timestamp_s if self._shot_start is None else self._shot_start
            self._recent.clear()
            self._recent.append((timestamp_s, thumb, small))
            return False
        hard = dissolved = False
        # Hue and saturation are noise near black and white, so a frame into or out of them scores
        # like a cut: there the fade rule decides (the shot changes when the picture comes back).
        if not (was_blank or black or white):
            structure, changed = structure_change(previous[1], grey)
            scores = (content_score(previous[0], thumb), structure)
            levels = np.mean(self._scores, axis=0) if self._scores else (0.0, 0.0)
            self._scores.append(scores)
            colour_cut, structure_cut = (score >= self.threshold and score >= self.min_ratio * max(level, 1.0)
                                         for score, level in zip(scores, levels))
            hard = colour_cut or (structure_cut and changed >= MIN_CHANGED_SHARE)
            dissolve_start = None if hard else self._dissolve_start(thumb, small, timestamp_s)
            dissolved = dissolve_start is not None
        else:
            self._recent.clear()  # fades are the fade rule's
        # A picture coming back always starts a shot when the current one began by cutting into the
        # blank frames (a fast fade out scores as a hard cut): else a short blank would hide it.
        into_blank = faded_in and self._last_blank is not None and self._last_blank >= self._shot_start
        long_enough = timestamp_s - self._shot_start >= self.min_shot_s
        is_cut = into_blank or ((faded_in or hard or dissolved) and long_enough)
        if is_cut:
            self.shot += 1
            self._shot_start = timestamp_s
            self.transition_start_s = dissolve_start[0] if dissolved else None
            self.shot_start_s = dissolve_start[1] if dissolved else timestamp_s
            if dissolved:
                self._transition_starts[self.shot] = self.transition_start_s
            self._scores.clear()
            self._scores.append((0.0, 0.0))
            self._recent.clear()
        if not (was_blank or black or white):
            self._recent.append((timestamp_s, thumb, small))
        return is_cut

    def _dissolve_start(self, thumb: np.ndarray, small: np.ndarray,
                        timestamp_s: float) -> tuple[float, float] | None:
        """When this frame ends a dissolve that began within ``MAX_DISSOLVE_S`` (since the last
        cut): the times of the old picture's last still frame and of the new one's first; else None."""
        while self._recent and timestamp_s - self._recent[0][0] > MAX_DISSOLVE_S:
            self._recent.popleft()
        # The cheap test first: the window's first frame differs from this one as a cut would, in
        # colour. (Not in structure alone: a pan over a smooth gradient that stops then passes the
        # blend tests. Gradual transitions in colourless footage are left to the tracks' own guard.)
        if len(self._recent) < 5 or content_score(self._recent[0][1], thumb) < self.threshold:
            return None
        frames = np.stack([f for _, _, f in self._recent] + [small]).reshape(len(self._recent) + 1, -1)
        frames = frames.astype(np.float32)
        # The dissolve's start: the old picture's last still frame, where the blend's shares stop
        # falling at its pace (walking back from the first true blend; shares against the whole
        # window, in which motion in the old shot drifts them slowly too). The test runs on the
        # window from the frame before it, so that little within-shot motion adds to the residual.
        share = blend_shares(frames)  # share[i] is frames[i + 1]'s
        blended = np.flatnonzero(share >= 0.2)
        if not len(blended) or blended[0] == 0:
            return None
        first = int(blended[0])
        settled = np.flatnonzero(share[first:] >= 0.95)
        end = first + int(settled[0]) if len(settled) else len(share) - 1
        pace = (share[end] - share[first]) / max(end - first, 1)
        still = first - 1
        while still > 0 and share[still] - share[still - 1] >= 0.5 * pace:
            still -= 1
        if is_transition(frames[still:], small.shape):
            return self._recent[still + 1][0], self._recent[-CUT_DELAY_FRAMES][0]
        return None

    def _fade_in(self, value: np.ndarray, black: bool, white: bool, timestamp_s: float) -> bool:
        """Whether this frame (its thumbnail's HSV value channel; ``black`` / ``white``: nearly all
        of it under BLACK_LEVEL / grey over 255 - BLACK_LEVEL) is the picture coming back from black
        or white. Depends on the last ``MAX_FADE_IN_S`` only, so a segment's pre-roll sees what an
        unsplit run sees."""
        if black or white:
            self._last_blank, self._blank_white, self._back_from_blank = timestamp_s, white, False
            return False
        brightness = float(value.mean())
        still_blank = brightness > 255 - BLACK_LEVEL if self._blank_white else brightness < BLACK_LEVEL
        if self._back_from_blank or still_blank:
            return False
        self._back_from_blank = True
        return timestamp_s - self._last_blank <= MAX_FADE_IN_S

    def restart_count(self) -> None:
        """Count shots from 0 again, keeping the previous frame: a segment's shot labels call it at
        the segment's first frame, after feeding the frames before it, so a cut exactly on the
        boundary still counts."""
        self.shot = 0
        self._transition_starts.clear()
