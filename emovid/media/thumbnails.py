"""Fast small copies of frames and face regions: thumbnails (shot detection, appearance
descriptors), area-averaged face crops (the CNN) and frames shrunk for the face detector."""

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


#: A region this many times its target size or more is first averaged in whole blocks (see
#: :func:`area_resize`): each block is then at most 1/8 of a target pixel.
BLOCKS_PER_PIXEL = 8


def area_resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` resized to ``size`` (width, height): area-averaged down, linear up.

    OpenCV's area interpolation is slow for large, non-integer ratios (2.6 ms from a 1000 px HD
    face to 48 px) but fast for whole ones, so an image ``2 * BLOCKS_PER_PIXEL`` times the size
    or more is first averaged in k x k blocks (:func:`block_size`, :func:`block_means`) and the
    rest done by one area pass: half the time or less, within 1 grey level of one area pass over
    the same part (fewer blocks a target pixel are faster but further from it).
    """
    width, height = size
    if image.shape[1] <= width and image.shape[0] <= height:
        return cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
    return cv2.resize(block_means(image, block_size(image.shape[:2], size)), size, interpolation=cv2.INTER_AREA)


def block_size(shape: tuple[int, int], size: tuple[int, int]) -> int:
    """Side of the blocks :func:`area_resize` first averages an image of ``shape`` (height, width)
    in, for a target ``size`` (width, height); 1 for none."""
    return max(1, min(shape[0] // (BLOCKS_PER_PIXEL * size[1]), shape[1] // (BLOCKS_PER_PIXEL * size[0])))


def block_means(image: np.ndarray, k: int) -> np.ndarray:
    """The means of ``image``'s k x k blocks (OpenCV's fast whole-ratio area path), over its
    top-left part whose sides are multiples of k: callers that mind the under k px of the right
    and bottom edges left out trim the image first."""
    if k <= 1:
        return image
    whole_h, whole_w = image.shape[0] // k * k, image.shape[1] // k * k
    return cv2.resize(image[:whole_h, :whole_w], (whole_w // k, whole_h // k), interpolation=cv2.INTER_AREA)


def downscale(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` shrunk to ``size`` (width, height) for a detector, area-averaged: first in whole
    k x k blocks (k the whole part of the ratio; OpenCV's fast path), then one area pass for the
    rest (under 2). Under a ratio of 2, and at whole ratios, that is OpenCV's area resize, bit
    for bit; at other ratios it costs half (0.40 vs 0.85 ms, a 640x360 frame to 256x144), and
    boxes found on it map back to within k - 1 px (the under k px of the right and bottom edges
    left out)."""
    width, height = size
    image = block_means(image, min(image.shape[1] // width, image.shape[0] // height))
    if image.shape[:2] != (height, width):
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return image
