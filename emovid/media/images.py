"""Reading photos: 8-bit BGR, upright, over white; refused before decoding when too large or not a file."""

from __future__ import annotations

import os
import socket
import warnings
from pathlib import Path

import cv2
import numpy as np
import PIL.Image

from emovid.errors import ImageError
from emovid.media.files import not_a_file


#: Larger images are refused rather than decoded (a 100-megapixel photo is 300 MB of pixels).
MAX_IMAGE_PIXELS = 100_000_000


def read_image(path: str) -> np.ndarray:
    """A photo as 8-bit BGR, upright (JPEG EXIF orientation applied), transparency over white.

    Raises:
        ImageError: missing, empty, not a decodable image, or too large.
    """
    if reason := not_a_file(Path(path)):  # first: a broken link does not exist either
        raise ImageError(reason)
    if not os.path.exists(path):  # the driver found it: this node does not see its filesystem
        raise ImageError(f"{path} does not exist on worker host {socket.gethostname()}: inputs and --out must be "
                         f"on a filesystem every node mounts at the same path")
    if os.path.getsize(path) == 0:
        raise ImageError("empty file (0 bytes)")
    _check_pixel_count(path)
    # IMREAD_UNCHANGED keeps alpha and 16-bit depth but skips EXIF rotation, which only JPEGs carry.
    jpeg = path.lower().endswith((".jpg", ".jpeg"))
    try:
        image = cv2.imread(path, cv2.IMREAD_COLOR if jpeg else cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:  # e.g. over OpenCV's own pixel limit
        raise ImageError(f"cannot decode: {exc.err or exc}") from None
    if image is None or image.size == 0:
        raise ImageError("not an image OpenCV can decode (corrupt, truncated or unsupported)")
    if image.dtype != np.uint8:  # 16-bit PNG/TIFF
        image = cv2.convertScaleAbs(image, alpha=255.0 / np.iinfo(image.dtype).max) \
            if np.issubdtype(image.dtype, np.integer) else cv2.convertScaleAbs(image, alpha=255.0)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        alpha = image[:, :, 3:4].astype(np.float32) / 255.0
        return (image[:, :, :3] * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)
    return image


def _check_pixel_count(path: str) -> None:
    """Refuse an oversized image from its header, before decoding allocates it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PIL.Image.DecompressionBombWarning)
            with PIL.Image.open(path) as header:
                width, height = header.size
    except PIL.Image.DecompressionBombError as exc:
        raise ImageError(f"too large to decode safely ({exc})") from None
    except (PIL.UnidentifiedImageError, OSError, ValueError):
        return  # not for Pillow to judge: OpenCV decides whether it is an image
    if width * height > MAX_IMAGE_PIXELS:
        raise ImageError(f"{width}x{height} pixels: more than {MAX_IMAGE_PIXELS:,}; downscale it first")


def truncation(path: str) -> str | None:
    """Why a JPEG decoded only in part (OpenCV fills what is missing with grey), or None.

    A complete JPEG ends with the end-of-image marker (some cameras append a few bytes after it).
    """
    if not path.lower().endswith((".jpg", ".jpeg")):
        return None
    with open(path, "rb") as fh:
        fh.seek(max(os.path.getsize(path) - 1024, 0))
        tail = fh.read()
    return None if b"\xff\xd9" in tail else "truncated JPEG (no end-of-image marker): its lower part is missing"
