"""Runs the YuNet face-detector network: onnxruntime (default) or OpenCV's ``FaceDetectorYN``.

Both return OpenCV's face rows, (n, 15) float32: ``x, y, w, h``, five landmark points, score.
onnxruntime runs the same ONNX file ~2.5x faster than OpenCV's DNN module on CPU (the network:
1.0 vs 2.7 ms per 320x180 frame on one core; the whole detection step about 2x), and it can run
on a GPU when ``onnxruntime-gpu`` is installed.
The decoding below follows OpenCV's ``FaceDetectorYN`` so both backends give the same faces.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

log = logging.getLogger(__name__)

BACKENDS = ("auto", "onnxruntime", "opencv")
#: YuNet's feature-map strides; the input is zero-padded (bottom/right) to a multiple of the largest.
STRIDES = (8, 16, 32)
#: The network's outputs, in the order the decoding reads them (as OpenCV asks for them).
OUTPUT_NAMES = tuple(f"{kind}_{stride}" for kind in ("cls", "obj", "bbox", "kps") for stride in STRIDES)
EMPTY_ROWS = np.zeros((0, 15), np.float32)


class YuNetRunner(Protocol):
    backend: str

    def detect(self, image: np.ndarray) -> np.ndarray:
        """Face rows (n, 15) for a BGR uint8 image, in its own pixels."""


class OpenCVYuNet:
    """YuNet through OpenCV's DNN module (needs nothing beyond ``opencv-python-headless``)."""

    backend = "opencv"

    def __init__(self, model_path: Path, score_threshold: float, nms_threshold: float, top_k: int) -> None:
        self._net = cv2.FaceDetectorYN.create(str(model_path), "", (320, 320), score_threshold, nms_threshold, top_k)
        self._input_size = (320, 320)

    def detect(self, image: np.ndarray) -> np.ndarray:
        size = (image.shape[1], image.shape[0])
        if size != self._input_size:
            self._net.setInputSize(size)
            self._input_size = size
        _, rows = self._net.detect(image)
        return EMPTY_ROWS if rows is None else rows


class OnnxYuNet:
    """YuNet through onnxruntime, with OpenCV's decoding and non-maximum suppression.

    Args:
        model_path: the YuNet ONNX file.
        score_threshold: minimum face score (0..1).
        nms_threshold: overlap above which the lower-scored of two faces is dropped.
        top_k: most faces kept per frame.
        use_gpu: run on CUDA when onnxruntime has it (the ``onnxruntime-gpu`` package); CPU
            otherwise, with a warning.
    """

    backend = "onnxruntime"

    def __init__(self, model_path: Path, score_threshold: float, nms_threshold: float, top_k: int,
                 use_gpu: bool = False) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        # One thread: the network is small (a 320 px frame), one core runs it at the lowest CPU
        # cost, and the worker's other cores are busy decoding and classifying.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        # Heuristic conv algorithms: every new frame size would otherwise trigger a cuDNN
        # benchmark; exact-size arena growth leaves GPU memory to the classifier.
        self._session = onnx_session(str(model_path), options, use_gpu, {"cudnn_conv_algo_search": "HEURISTIC",
                                                                         "arena_extend_strategy": "kSameAsRequested"})
        self.providers = tuple(self._session.get_providers())
        if use_gpu and "CUDAExecutionProvider" not in self.providers:
            log.warning("face detection runs on CPU: onnxruntime has no usable CUDA (install onnxruntime-gpu)")
        self._input_name = self._session.get_inputs()[0].name
        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold
        self.top_k = top_k
        self._blob = np.zeros((1, 3, 0, 0), np.float32)

    def detect(self, image: np.ndarray) -> np.ndarray:
        """Face rows (n, 15) for a BGR uint8 image (H, W, 3), in its own pixels."""
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected a BGR image (H, W, 3), got shape {image.shape}")
        height, width = image.shape[:2]
        padded = (1, 3, -(-height // STRIDES[-1]) * STRIDES[-1], -(-width // STRIDES[-1]) * STRIDES[-1])
        if self._blob.shape != padded:
            self._blob = np.zeros(padded, np.float32)
        else:  # reused: a larger image of the same padded size may have left pixels in the padding
            self._blob[0, :, height:, :] = 0
            self._blob[0, :, :height, width:] = 0
        self._blob[0, :, :height, :width] = image.transpose(2, 0, 1)
        outputs = self._session.run(OUTPUT_NAMES, {self._input_name: self._blob})
        return self._decode(outputs, padded[3])

    def _decode(self, outputs: list[np.ndarray], padded_width: int) -> np.ndarray:
        """OpenCV's post-processing: scores, boxes and landmarks per grid cell, then NMS."""
        levels = len(STRIDES)
        found = []
        for level, stride in enumerate(STRIDES):
            cls, obj = outputs[level][0, :, 0], outputs[level + levels][0, :, 0]
            scores = np.sqrt(np.clip(cls, 0, 1) * np.clip(obj, 0, 1))
            cells = np.flatnonzero(scores >= self.score_threshold)
            if not len(cells):
                continue
            columns = padded_width // stride
            row, col = (cells // columns).astype(np.float32), (cells % columns).astype(np.float32)
            box = outputs[level + 2 * levels][0, cells]
            points = outputs[level + 3 * levels][0, cells].reshape(-1, 5, 2)
            w, h = np.exp(box[:, 2]) * stride, np.exp(box[:, 3]) * stride
            x = (col + box[:, 0]) * stride - w / 2
            y = (row + box[:, 1]) * stride - h / 2
            points = (points + np.stack([col, row], axis=1)[:, None, :]) * stride
            found.append(np.column_stack([x, y, w, h, points.reshape(-1, 10), scores[cells]]))
        if not found:
            return EMPTY_ROWS
        rows = np.concatenate(found).astype(np.float32)
        if len(rows) > 1:  # OpenCV suppresses on integer-truncated boxes; so do we, to match it
            keep = cv2.dnn.NMSBoxes(rows[:, :4].astype(np.int32).tolist(), rows[:, 14].tolist(),
                                    self.score_threshold, self.nms_threshold, top_k=self.top_k)
            rows = rows[np.asarray(keep, dtype=np.int64).reshape(-1)]
        return rows


def onnx_session(model: str | bytes, options, use_gpu: bool, cuda_options: dict | None = None):
    """An onnxruntime session on CUDA when ``use_gpu`` and onnxruntime has CUDA (``emovid[gpu]``:
    its CUDA and cuDNN pip packages are loaded first), else on the CPU."""
    import onnxruntime as ort

    providers: list = ["CPUExecutionProvider"]
    if use_gpu and "CUDAExecutionProvider" in ort.get_available_providers():
        if hasattr(ort, "preload_dlls"):  # onnxruntime >= 1.21: CUDA libraries from nvidia-* wheels
            try:
                ort.preload_dlls()
            except Exception as exc:  # system CUDA libraries may still be found
                log.debug("onnxruntime.preload_dlls: %s", exc)
        providers.insert(0, ("CUDAExecutionProvider", cuda_options or {}))
    return ort.InferenceSession(model, options, providers=providers)


def auto_backend() -> str:
    """What backend "auto" picks here: onnxruntime when it imports, else OpenCV (logged once).

    Part of the result settings: the driver and every worker must agree on it.
    """
    global _FALLBACK_LOGGED
    try:
        import onnxruntime  # noqa: F401  (only the import may fall back; other errors are real)
    except ImportError as exc:
        if not _FALLBACK_LOGGED:
            log.warning("onnxruntime cannot be imported (%s): face detection falls back to OpenCV DNN "
                        "(about 2x slower); pip install 'emovid[cpu]' or 'emovid[gpu]'", exc)
            _FALLBACK_LOGGED = True
        return "opencv"
    return "onnxruntime"


_FALLBACK_LOGGED = False


def make_yunet(model_path: Path, score_threshold: float, nms_threshold: float, top_k: int,
               backend: str = "auto", use_gpu: bool = False) -> YuNetRunner:
    """The YuNet runner for ``backend``; "auto" is onnxruntime when it imports, else OpenCV.

    Args: as :class:`OnnxYuNet`, plus ``backend``: "auto", "onnxruntime" or "opencv".

    Raises:
        ValueError: unknown backend.
        ImportError: backend "onnxruntime" without onnxruntime installed.
    """
    if backend not in BACKENDS:
        raise ValueError(f"detector backend: expected one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "onnxruntime" or (backend == "auto" and auto_backend() == "onnxruntime"):
        return OnnxYuNet(model_path, score_threshold, nms_threshold, top_k, use_gpu)
    return OpenCVYuNet(model_path, score_threshold, nms_threshold, top_k)
