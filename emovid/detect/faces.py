"""Face detection (YuNet, see :mod:`emovid.detect.yunet`) and the face crops fed to the CNN.

Training (class-folder photos) and ``analyze`` (video frames) both crop through
:func:`crop_faces`, so the CNN sees faces framed the same way in both.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from emovid.assets import YUNET_NAME, bundled
from emovid.detect.yunet import make_yunet
from emovid.media.thumbnails import area_resize, block_size, downscale


@dataclass(frozen=True, slots=True)
class FaceDetections:
    """Faces found in one frame, as parallel arrays in original-frame pixels.

    Attributes:
        boxes: (n, 4) float32 ``x, y, w, h``.
        scores: (n,) float32 detector confidence in 0..1.
        landmarks: (n, 5, 2) float32: right eye, left eye, nose tip, right and left mouth corner.
    """

    boxes: np.ndarray
    scores: np.ndarray
    landmarks: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.boxes)
        for name, value, shape in (("boxes", self.boxes, (n, 4)), ("scores", self.scores, (n,)),
                                   ("landmarks", self.landmarks, (n, 5, 2))):
            if not isinstance(value, np.ndarray) or value.shape != shape:
                got = getattr(value, "shape", type(value).__name__)
                raise ValueError(f"{name}: expected array of shape {shape}, got {got}")

    @classmethod
    def empty(cls) -> "FaceDetections":
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32))

    @classmethod
    def from_yunet(cls, raw: np.ndarray | None, scale: float = 1.0) -> "FaceDetections":
        """Convert YuNet's face rows (n, 15) found on a frame resized by ``scale``."""
        if raw is None or len(raw) == 0:
            return cls.empty()
        raw = np.asarray(raw, np.float32) / np.float32(scale)
        return cls(raw[:, 0:4].copy(), raw[:, 14] * np.float32(scale), raw[:, 4:14].reshape(-1, 5, 2))

    def __len__(self) -> int:
        return len(self.boxes)

    def __getitem__(self, index) -> "FaceDetections":
        """Select faces by boolean mask, index array or slice; always returns ``FaceDetections``."""
        if isinstance(index, (int, np.integer)):
            index = [index]
        return FaceDetections(self.boxes[index], self.scores[index], self.landmarks[index])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FaceDetections):
            return NotImplemented
        return all(np.array_equal(getattr(self, f), getattr(other, f)) for f in ("boxes", "scores", "landmarks"))

    def largest(self) -> "FaceDetections":
        """The single largest face (empty stays empty)."""
        if not len(self):
            return self
        return self[int(np.argmax(self.boxes[:, 2] * self.boxes[:, 3]))]


#: Face width (px, at detection resolution) the default detection size aims a ``min_face`` face at.
#: Measured (``benchmarks/detectors.py``, the media's 30 faces, score 0.7): YuNet finds 10% of
#: faces 10 px wide, 70% at 20 px, 93% at 24 px and all from 32 px, so with this aim faces are
#: found reliably from about 2.4 ``min_face`` (48 px: 93%), smaller ones often not (40 px: 70%,
#: 30 px: 33%). A larger aim finds smaller faces at a cost that grows with its square: a trade
#: for the team (docs/analyze.md).
YUNET_MIN_FACE_PX = 10
#: Detection never runs on frames smaller than this (longer side).
MIN_DETECT_SIDE = 320


class FaceDetector:
    """YuNet face detector that runs on a downscaled copy of each frame and maps boxes back.

    Args:
        score_threshold: minimum detection score. Lower finds more small/profile faces and more
            false positives; 0.7 keeps faceless footage clean.
        min_face: minimum face side in original-frame pixels; smaller faces carry too little
            expression detail for a 48 px classifier.
        max_side: frames are shrunk so their longer side is at most this before detection.
            None (default) picks the size per video from ``min_face``: a ``min_face`` face
            ``YUNET_MIN_FACE_PX`` wide, never below 320 px. Smaller is faster (640 -> 320 px
            is ~3.5x); YuNet finds nearly every face from 24 px wide at the size it runs at,
            ``24 * long_side / max_side`` px of the frame (48 at 320 of 640; ``YUNET_MIN_FACE_PX``).
        nms_threshold: overlap above which two detections are merged.
        model_path: YuNet ONNX weights; the bundled file by default.
        backend: "onnxruntime", "opencv", or "auto" (onnxruntime when installed); see :mod:`emovid.detect.yunet`.
        use_gpu: run the network on CUDA when onnxruntime has it (``onnxruntime-gpu``).
    """

    def __init__(self, score_threshold: float = 0.7, min_face: int = 20, max_side: int | None = None,
                 nms_threshold: float = 0.3, model_path: str | Path | None = None, backend: str = "auto",
                 use_gpu: bool = False) -> None:
        if not 0 < score_threshold < 1:
            raise ValueError(f"score_threshold: expected 0..1, got {score_threshold}")
        if min_face < 0 or (max_side is not None and max_side < 64):
            raise ValueError(f"expected min_face >= 0 and max_side >= 64 or None, got {min_face}, {max_side}")
        self.score_threshold = score_threshold
        self.min_face = min_face
        self.max_side = max_side
        self.model_path = Path(model_path) if model_path else bundled(YUNET_NAME)
        self._net = make_yunet(self.model_path, score_threshold, nms_threshold, 5000, backend, use_gpu)

    @property
    def backend(self) -> str:
        return self._net.backend

    @property
    def on_gpu(self) -> bool:
        return "CUDAExecutionProvider" in getattr(self._net, "providers", ())[:1]

    @property
    def name(self) -> str:
        return f"yunet:{self.model_path.name}"

    def detection_scale(self, width: int, height: int) -> float:
        """Factor (<= 1) by which a ``width`` x ``height`` frame is shrunk before detection."""
        long_side = max(width, height)
        if self.max_side is not None:
            return min(1.0, self.max_side / long_side)
        by_min_face = YUNET_MIN_FACE_PX / self.min_face if self.min_face > 0 else 1.0
        return min(1.0, max(by_min_face, MIN_DETECT_SIDE / long_side))

    def detect(self, frame: np.ndarray) -> FaceDetections:
        """Detect faces in a BGR (or grayscale) frame; boxes are in the frame's own pixels."""
        if frame.ndim == 2:
            frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
        height, width = frame.shape[:2]
        scale = self.detection_scale(width, height)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        small = frame if scale == 1.0 else downscale(frame, size)
        faces = FaceDetections.from_yunet(self._net.detect(small), scale)
        keep = np.minimum(faces.boxes[:, 2], faces.boxes[:, 3]) >= self.min_face
        return faces if keep.all() else faces[keep]


def eye_line_tilt(landmarks: np.ndarray) -> np.ndarray:
    """(n,) angle in degrees of each face's eye line (right eye to left eye; > 0: clockwise)."""
    eyes = landmarks[:, 1].astype(np.float64) - landmarks[:, 0]
    return np.degrees(np.arctan2(eyes[:, 1], eyes[:, 0]))


def crop_transforms(detections: FaceDetections, margin: float, align: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Affine maps (n, 2, 3) from frame pixels to square, unscaled face patches, and their sides (n,).

    The patch is a square centred on the box, its side ``(1 + margin) * max(w, h)``; with
    ``align`` it is rotated so the eyes are level.
    """
    boxes = detections.boxes.astype(np.float64)
    centres = boxes[:, :2] + boxes[:, 2:] / 2
    sides = np.maximum(np.ceil(boxes[:, 2:].max(axis=1) * (1 + margin)), 1).astype(int)
    angles = np.zeros(len(boxes))
    if align and len(boxes):
        angles = eye_line_tilt(detections.landmarks)
    maps = np.empty((len(boxes), 2, 3))
    for i, (centre, side, angle) in enumerate(zip(centres, sides, angles)):
        m = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), float(angle), 1.0)
        m[:, 2] += side / 2 - centre
        maps[i] = m
    return maps, sides


def crop_faces(frame: np.ndarray, detections: FaceDetections, margin: float, size: int,
               align: bool = False) -> np.ndarray:
    """Cut grayscale face crops (n, size, size) uint8 out of a BGR or grayscale frame.

    Parts of the square outside the frame are filled by replicating the border. The patch is
    cut at full resolution and then area-averaged down, as the FER+ crops were made.
    """
    crops = np.empty((len(detections), size, size), np.uint8)
    if not len(detections):
        return crops
    # Aligned crops resample the gray frame; plain squares convert only their own pixels (a face
    # patch is a fraction of the frame, and gray(slice) == slice(gray) exactly).
    gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if align and frame.ndim == 3 else frame
    maps, sides = crop_transforms(detections, margin, align)
    for i, (m, side) in enumerate(zip(maps, sides)):
        # an HD face is averaged in whole blocks first (area_resize): cut the centred part whose
        # side is a multiple of the block (under one block less than planned)
        block = block_size((int(side), int(side)), (size, size))
        trim = (int(side) % block) // 2
        side = int(side) // block * block
        m = m.copy()
        m[:, 2] -= trim
        if align:
            patch = cv2.warpAffine(gray, m, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        else:  # a plain square: slicing (to the nearest pixel) is 4x cheaper than resampling it
            patch = _square_patch(frame, -int(round(m[0, 2])), -int(round(m[1, 2])), side)
            if patch.ndim == 3:
                patch = cv2.cvtColor(patch, cv2.COLOR_BGR2GRAY)
        crops[i] = area_resize(patch, (size, size))
    return crops


def _square_patch(image: np.ndarray, x0: int, y0: int, side: int) -> np.ndarray:
    """``image[y0:y0+side, x0:x0+side]``, with parts outside the image filled by replicating its border."""
    height, width = image.shape[:2]
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x0 + side, width), min(y0 + side, height)
    if cx1 <= cx0 or cy1 <= cy0:  # entirely outside: the nearest border pixel everywhere
        value = image[min(max(y0, 0), height - 1), min(max(x0, 0), width - 1)]
        return np.full((side, side) + image.shape[2:], value, image.dtype)
    patch = image[cy0:cy1, cx0:cx1]
    if (cx0, cy0, cx1, cy1) != (x0, y0, x0 + side, y0 + side):
        patch = cv2.copyMakeBorder(patch, cy0 - y0, y0 + side - cy1, cx0 - x0, x0 + side - cx1, cv2.BORDER_REPLICATE)
    return patch
