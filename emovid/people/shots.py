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

A dissolve (one picture blending into the next) is a cut too, though no frame-to-frame change
stands out: over the last ``MAX_DISSOLVE_S`` the picture changed as much as a cut changes it, and
every frame in between is a blend of the window's first and last frames (a camera move or a
person moving is not), with the blend share rising and, at the end, settled. It is seen two frames
into the new picture; the new shot starts at the first of them (the reader holds two frames
back to label them). Before, a dissolve between two people framed alike kept one
track across both.

A wipe (an edge or a shape sweeping the new picture in: bars, irises, clocks, slices) is a cut the
same way: the window passes the same tests on its shares, but instead of being blends, most of its
changed pixels switch from the first frame's colour to the last's within a few frames and stay.
"""

from __future__ import annotations

import math
from collections import deque

import cv2
import numpy as np

from emovid.people.thumbnails import shrink

THUMB_WIDTH = 64
#: Brightness (HSV value, 0..255) under which a frame is black: when 95% of its thumbnail's
#: pixels are under it. PySceneDetect's ThresholdDetector uses 12 on the mean of all channels.
BLACK_LEVEL = 24
#: Longest time from the last black frame to the picture being back (mean value above
#: BLACK_LEVEL) that still counts as a fade in; labels.PREROLL_SHOT_S must cover it.
MAX_FADE_IN_S = 1.5
#: Longest dissolve or wipe found; labels.PREROLL_SHOT_S must cover it.
MAX_DISSOLVE_S = 3.0
#: Frames of the new picture a dissolve's end needs (the blend must be seen to have stopped).
CUT_DELAY_FRAMES = 2
#: Largest mean distance of a frame in a dissolve from the blend of its first and last frames, as a
#: share of their own distance: a blend is on that line, a camera move or a moving person is not.
DISSOLVE_MAX_RESIDUAL = 0.2
#: Side (thumbnail pixels) of the blocks a noise dissolve's residual is averaged over.
NOISE_BLOCK = 4
#: Mean colour change (0..255) of a thumbnail pixel between a wipe's ends for it to count as changed.
WIPE_MIN_PIXEL_CHANGE = 20.0
#: Share of a wipe's frames its edge may take to pass a thumbnail pixel (a hard edge takes one or
#: two frames; FFmpeg's soft-edged smooth* and vertopen/horzclose wipes up to nearly half the wipe).
WIPE_MAX_SWITCH_SHARE = 0.5
#: Share of the changed pixels that must switch like a wipe's (quickly, once, on the line between).
WIPE_MIN_EXPLAINED = 0.6
#: Largest share of a blended frame's mean step that a settled frame may still gain.
SETTLED_STEP_SHARE = 0.5
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


def _same_picture_relit(first: np.ndarray, last: np.ndarray, change: float) -> bool:
    """Whether ``last`` is ``first`` under other light (per colour channel, a gain and an offset
    explain most of the ``change``): lights coming on or exposure adapting is not a new shot."""
    a, b = first.reshape(-1, 3), last.reshape(-1, 3)
    unexplained = 0.0
    for c in range(3):
        design = np.stack([a[:, c], np.ones(len(a), np.float32)], axis=1)
        fit, *_ = np.linalg.lstsq(design, b[:, c], rcond=None)
        unexplained += float(np.abs(b[:, c] - design @ fit).mean()) / 3
    return unexplained <= 0.1 * change  # relit: about 0.01; two sets of ours 0.17-0.28; two photos 0.7


def blend_shares(frames: np.ndarray) -> np.ndarray:
    """For each frame of ``frames`` (n, pixels) between the first and the last, its least-squares
    share ``a`` of the last in ``(1 - a) first + a last``."""
    span = frames[-1] - frames[0]
    norm = float(span @ span)
    return (frames[1:-1] - frames[0]) @ span / norm if norm > 0 else np.zeros(len(frames) - 2)


def is_transition(frames: np.ndarray, shape: tuple[int, int, int]) -> bool:
    """Whether ``frames`` (oldest first, flattened BGR float thumbnails) are one transition from a
    still picture to another, a dissolve or a wipe. On the shares ``a`` of ``blend_shares``: ``a``
    rises (never falling back by more than 0.15), at least two frames are halfway (0.2 <= a <= 0.8),
    the frame after the first is still the old picture (a <= 0.05 for a dissolve, 0.1 for a wipe,
    whose first changed corner can be small) and the two before the last already the new one
    (a >= 0.95, and gaining far less a frame than the transition did: it has ended, so a long one
    is not cut in its middle, and what is left of a hard cut's blend is none), and the last is not
    merely the first relit. Then either every frame between is ``(1 - a) first + a last`` with
    little residual (a dissolve; also when averaged over blocks of the thumbnails, whose (h, w, 3)
    is ``shape``: a noise dissolve), or most changed pixels switch as a wipe's do (:func:`_is_wipe`)."""
    if len(frames) < 6:
        return False
    first, last = frames[0], frames[-1]
    span = last - first
    change = float(np.abs(span).mean())
    if change <= 0.0:
        return False
    share = blend_shares(frames)
    rising = np.all(share >= np.maximum.accumulate(share) - 0.15)
    blends = np.count_nonzero((share >= 0.2) & (share <= 0.8))
    # Settled, not only 95% of the way: inside a long steady dissolve the window's last frames are
    # that close to its end too, so the last frames must also gain far less than a blended frame does.
    between = np.count_nonzero((share > 0.05) & (share < 0.95))  # frames the transition took
    step = 0.9 / max(between, 1)
    settle = (1.0 - share[-CUT_DELAY_FRAMES]) / CUT_DELAY_FRAMES
    # the tests on the shares first: they are cheap, and a slow camera move fails them
    if not (rising and blends >= 2 and share[0] <= 0.1 and share[-CUT_DELAY_FRAMES:].min() >= 0.95
            and settle <= SETTLED_STEP_SHARE * step):
        return False
    off_blend = frames[1:-1] - first - share[:, None] * span[None, :]
    # a slow pan over a smooth gradient that stops passes as a blend started at a <= 0.1
    dissolve = share[0] <= 0.05 and np.abs(off_blend).mean(axis=1).max() <= DISSOLVE_MAX_RESIDUAL * change
    if not dissolve and share[0] <= 0.05:
        # a noise dissolve (each pixel switches at its own moment) is a blend once averaged over
        # blocks; held to half the residual, as averaging also hides some motion
        dissolve = _block_residual(off_blend, shape).max() <= DISSOLVE_MAX_RESIDUAL / 2 * change
    # a wipe only just ended: over a longer wait a moving picture passes for one
    ended = len(share) - 1 - int(np.flatnonzero(share < 0.95)[-1]) <= CUT_DELAY_FRAMES + 2
    wipe = not dissolve and ended and _is_wipe(frames, between)
    return bool((dissolve or wipe) and not _same_picture_relit(first, last, change))


def _block_residual(residual: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """Mean absolute value, per frame, of ``residual`` (frames, flattened thumbnails of ``shape``)
    averaged over ``NOISE_BLOCK`` x ``NOISE_BLOCK`` pixel blocks first."""
    h, w, c = shape
    k = NOISE_BLOCK
    blocks = residual.reshape(-1, h, w, c)[:, :h - h % k, :w - w % k].reshape(-1, h // k, k, w // k, k, c)
    return np.abs(blocks.mean(axis=(2, 4))).mean(axis=(1, 2, 3))


def _is_wipe(frames: np.ndarray, frames_between: int) -> bool:
    """Whether most changed pixels of ``frames`` (flattened BGR thumbnails) switch from the first
    frame's colour to the last's within a few frames and stay: a wipe (or any edge or pattern
    sweeping the new picture in), where a dissolve ramps every pixel together and a camera move
    takes pixels through other colours."""
    n = len(frames)
    pixels = frames.reshape(n, -1, 3)
    first, last = pixels[0], pixels[-1]
    span = last - first
    changed = np.abs(span).mean(axis=1) >= WIPE_MIN_PIXEL_CHANGE
    if changed.mean() < 0.5:
        return False
    inner, span = pixels[1:-1, changed] - first[changed], span[changed]
    norm = (span * span).sum(axis=1)
    share = (inner * span).sum(axis=2) / norm  # (frames, changed pixels)
    off_line = np.abs(inner - share[..., None] * span).mean(axis=2) / np.abs(span).mean(axis=1)
    switching = ((share > 0.15) & (share < 0.85)).sum(axis=0)
    back = (np.maximum.accumulate(share, axis=0) - share).max(axis=0)
    quick = switching <= max(3.0, WIPE_MAX_SWITCH_SHARE * frames_between)
    explained = quick & (back <= 0.5) & (off_line.max(axis=0) <= 0.5)
    return bool(explained.mean() >= WIPE_MIN_EXPLAINED)


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
        #: it: the reader holds that many frames back, so theirs is the new shot too.
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
        black = float(np.percentile(value, 95)) < BLACK_LEVEL  # nearly every pixel dark
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
        """Count shots from 0 again, keeping the previous frame: a segment's reader calls it at
        the segment's first frame, after feeding the frames before it, so a cut exactly on the
        boundary still counts."""
        self.shot = 0
        self._transition_starts.clear()
