"""A cheap appearance descriptor for every tracked face, so tracks follow people, not positions.

It is computed for every sampled face (about 0.2 ms each), so it is not an identity embedding (see
:mod:`emovid.people.identity` for that): a hue-saturation histogram of the face and hair (skin tone,
hair colour, lighting of the set) next to a coarse 8x8 grey thumbnail of the face (its
layout). Two faces that cross or swap places inside one shot differ in at least one of
those; the same face a fraction of a second later matches both.
"""

from __future__ import annotations

import cv2
import numpy as np

from emovid.detect.faces import FaceDetections
from emovid.media.thumbnails import shrink

HUE_BINS, SAT_BINS = 12, 4
THUMB = 8
#: Length of one descriptor: the histogram, then the thumbnail.
DESCRIPTOR_SIZE = HUE_BINS * SAT_BINS + THUMB * THUMB


def _region(image: np.ndarray, box: np.ndarray, grow: float) -> np.ndarray:
    x, y, w, h = box
    x0, y0 = int(max(x - grow * w, 0)), int(max(y - grow * h, 0))
    x1, y1 = int(min(x + (1 + grow) * w, image.shape[1])), int(min(y + (1 + grow) * h, image.shape[0]))
    return image[y0:max(y1, y0 + 1), x0:max(x1, x0 + 1)]


def _unit(v: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 0 else v


def describe(image: np.ndarray, faces: FaceDetections) -> np.ndarray:
    """(n, DESCRIPTOR_SIZE) float32 unit vectors, one per face of a BGR frame; compare with dot products."""
    out = np.zeros((len(faces), DESCRIPTOR_SIZE), np.float32)
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    for i, box in enumerate(faces.boxes):
        head = _region(image, box, 0.2)
        if head.size == 0:
            continue
        small = shrink(head, (32, 32))
        hsv = cv2.cvtColor(small, cv2.COLOR_BGR2HSV)
        hist = cv2.calcHist([hsv], [0, 1], None, [HUE_BINS, SAT_BINS], [0, 180, 0, 256]).ravel()
        face = cv2.cvtColor(shrink(_region(image, box, 0.0), (THUMB, THUMB)), cv2.COLOR_BGR2GRAY)
        face = face.astype(np.float32).ravel()
        face -= face.mean()
        # Hellinger (square-root) histogram; both parts weigh the same in the dot product.
        out[i] = np.concatenate([_unit(np.sqrt(hist)), _unit(face)]) / np.sqrt(2)
    return out
