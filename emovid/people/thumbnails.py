"""Fast small copies of frames and face regions (shot detection, appearance descriptors)."""

from __future__ import annotations

import cv2
import numpy as np


def shrink(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` resized to ``size`` (width, height), area-averaged.

    OpenCV's area interpolation is slow for large, non-integer ratios (0.3 ms from 250 px to
    32 px), so the image is first subsampled by whole steps to at most twice the target size.
    """
    h, w = image.shape[:2]
    step = max(1, min(w // (2 * size[0]), h // (2 * size[1])))
    return cv2.resize(image[::step, ::step], size, interpolation=cv2.INTER_AREA)
