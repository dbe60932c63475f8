"""Gradual transitions between two shots, dissolves and wipes, tested on a window of thumbnails
(:class:`~emovid.people.shots.ShotDetector` finds the window and counts each as a cut at its end).

A dissolve (one picture blending into the next) is a cut too, though no frame-to-frame change
stands out: over the last ``MAX_DISSOLVE_S`` the picture changed as much as a cut changes it, and
every frame in between is a blend of the window's first and last frames (a camera move or a
person moving is not), with the blend share rising and, at the end, settled. It is seen two frames
into the new picture; the new shot starts at the first of them (:class:`~emovid.people.labels.ShotLabels`
holds sampled frames back two frames to label them). Before, a dissolve between two people framed alike kept one
track across both.

A wipe (an edge or a shape sweeping the new picture in: bars, irises, clocks, slices) is a cut the
same way: the window passes the same tests on its shares, but instead of being blends, most of its
changed pixels switch from the first frame's colour to the last's within a few frames and stay.
"""

from __future__ import annotations

import numpy as np

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
