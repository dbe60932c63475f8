"""How far to trust a face's emotion: a 0..1 score from what the classifier was given.

Each factor is a ramp from "useless" to "as good as training faces" and the score is their
product, so any one failure (a tiny, blurred, dark, turned or doubtful face) is enough to
lower it. Sharpness and exposure are measured on the crop the CNN saw (48 px, grey), so a
blur the downscale hides does not count against a large face. docs/analytics.md shows the
classifier's accuracy by quality bin.
"""

from __future__ import annotations

import cv2
import numpy as np

from emovid.detect.faces import FaceDetections
from emovid.detect.pose import HeadPose

#: Face side (px, in the frame) from which a face counts as too small to read at all, and from
#: which size no longer matters (the CNN sees 48 px; FER+ faces were cut from ~100 px).
SIZE_RAMP = (16.0, 64.0)
#: Share of a crop's contrast left in its finest detail (Laplacian std / pixel std). FER+ training
#: crops: 5th percentile 0.57, median 0.85; blurred by sigma 1 px: median 0.26; by 2 px: 0.11. Set
#: from those at 0.2-0.6 first, then lowered on the wild photos, where it scored blurred faces the
#: CNN still read well as useless (seed photos held out; docs/analytics.md#quality).
SHARPNESS_RAMP = (0.05, 0.3)
#: Mean grey level at which a face is lost to darkness (or glare), and from which it is well lit.
EXPOSURE_RAMP = (20.0, 60.0)
#: Pixel std of a crop under which the face is a flat patch (fog, a fade, heavy compression);
#: 5% of FER+ training crops are under 33.
CONTRAST_RAMP = (8.0, 28.0)
#: Yaw or pitch (degrees) up to which pose costs nothing, and at which the face counts as unreadable.
POSE_RAMP = (25.0, 75.0)
#: Detector scores: the default threshold lets 0.7 in; from 0.9 the detector has no doubt.
SCORE_RAMP = (0.5, 0.9)


def ramp(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """0 at or below ``low``, 1 at or above ``high``, linear between."""
    return np.clip((np.asarray(values, np.float64) - low) / (high - low), 0.0, 1.0)


def face_quality(boxes: np.ndarray, scores: np.ndarray, pose: np.ndarray, crops: np.ndarray) -> np.ndarray:
    """(n,) float32 quality of ``n`` faces: ``boxes`` (n, 4) x, y, w, h; detector ``scores`` (n,);
    ``pose`` (n, 3) yaw, pitch, roll in degrees (NaN: unknown, not held against the face); the
    grey ``crops`` (n, s, s) uint8 the classifier saw."""
    n = len(boxes)
    if not (len(scores) == len(pose) == len(crops) == n):
        raise ValueError(f"expected one score, pose and crop per box, got {len(scores)}, {len(pose)}, {len(crops)} for {n}")
    if n == 0:
        return np.zeros(0, np.float32)
    size = ramp(np.minimum(boxes[:, 2], boxes[:, 3]), *SIZE_RAMP)
    grey = crops.astype(np.float32)
    spread = grey.reshape(n, -1).std(axis=1)
    detail = np.array([cv2.Laplacian(c, cv2.CV_32F, ksize=1).std() for c in grey])
    sharp = ramp(detail / np.maximum(spread, 1.0), *SHARPNESS_RAMP)
    mean = grey.reshape(n, -1).mean(axis=1)
    exposure = ramp(np.minimum(mean, 255.0 - mean), *EXPOSURE_RAMP) * ramp(spread, *CONTRAST_RAMP)
    turned = np.nan_to_num(np.abs(pose[:, :2]).max(axis=1), nan=0.0)
    facing = 1.0 - ramp(turned, *POSE_RAMP)
    certain = ramp(scores, *SCORE_RAMP)
    return (size * sharp * exposure * facing * certain).astype(np.float32)


def pose_and_quality(frame: np.ndarray, faces: FaceDetections, crops: np.ndarray,
                     pose_of: HeadPose) -> tuple[np.ndarray, np.ndarray]:
    """Head pose (n, 3) and quality (n,) of ``faces`` found in ``frame``, with the ``crops`` the
    classifier sees."""
    pose = pose_of(frame, faces)
    return pose, face_quality(faces.boxes, faces.scores, pose, crops)
