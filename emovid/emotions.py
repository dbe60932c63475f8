"""The emotion classifier: loads a ``.keras`` model (the bundled one by default) and scores face crops.

This is the only module of the package that imports Keras/TensorFlow.
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from emovid.assets import DEFAULT_MODEL_NAME, bundled, resolve_model
from emovid.errors import ModelError
from emovid.model_file import ModelInfo, read_model_info

log = logging.getLogger(__name__)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TF's C++ start-up chatter hides real errors

#: Default crops per forward pass: on CPU, throughput is flat beyond 256; a GPU needs more to fill.
CPU_BATCH_SIZE = 256
GPU_BATCH_SIZE = 1024


def cpu_has_bf16() -> bool:
    """True on CPUs with native bfloat16 math (AVX512-BF16 or AMX), where oneDNN runs bf16 ~2x faster."""
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def cpu_bf16_wanted(gpus: Sequence[str]) -> bool:
    """Whether to run the classifier in oneDNN's bf16: on CPU workers whose CPU has native bf16,
    unless ``EMOVID_BF16=0``. Never with a GPU: the graph runs there, and the rewrite is a CPU one."""
    return not gpus and os.environ.get("EMOVID_BF16", "1") != "0" and cpu_has_bf16()


def enable_cpu_bf16() -> bool:
    """On CPU-only processes with native bfloat16, switch on oneDNN's automatic bf16 rewrite.

    It doubles classifier throughput and moves probabilities by < 0.01; set ``EMOVID_BF16=0``
    to keep float32. Applies to graphs traced afterwards. Returns whether it is on.
    """
    import tensorflow as tf

    wanted = cpu_bf16_wanted([g.name for g in tf.config.list_physical_devices("GPU")])
    if wanted:
        tf.config.optimizer.set_experimental_options({"auto_mixed_precision_onednn_bfloat16": True})
    return wanted


def configure_tensorflow(num_threads: int | None = None) -> list[str]:
    """Size TF's thread pools to this worker's CPUs and let GPU memory grow on demand.

    Must run before the first model is built in the process; later calls change nothing.

    Returns:
        Names of the GPUs TensorFlow sees (empty on CPU-only workers).
    """
    import tensorflow as tf

    try:
        if num_threads:
            tf.config.threading.set_intra_op_parallelism_threads(num_threads)
            tf.config.threading.set_inter_op_parallelism_threads(min(2, num_threads))
        gpus = tf.config.list_physical_devices("GPU")
        for gpu in gpus:
            tf.config.experimental.set_memory_growth(gpu, True)
    except RuntimeError:  # the runtime is already initialised: keep its settings
        gpus = tf.config.list_physical_devices("GPU")
    return [g.name for g in gpus]


def to_model_input(faces: Sequence[np.ndarray] | np.ndarray, size: int) -> np.ndarray:
    """Stack face crops (uint8 gray HxW or BGR HxWx3, any size) into (N, size, size, 1) float32.

    Raises:
        ValueError: a crop is not 2-D gray or 3-channel BGR, or is empty.
    """
    if isinstance(faces, np.ndarray) and faces.ndim == 3 and faces.shape[1:] == (size, size):
        return faces.astype(np.float32)[..., None]
    batch = np.empty((len(faces), size, size), np.float32)
    for i, face in enumerate(faces):
        face = np.asarray(face)
        if face.ndim == 3 and face.shape[2] == 3:
            face = cv2.cvtColor(face, cv2.COLOR_BGR2GRAY)
        elif face.ndim == 3 and face.shape[2] == 1:
            face = face[..., 0]
        if face.ndim != 2 or face.size == 0:
            raise ValueError(f"faces[{i}]: expected a gray HxW or BGR HxWx3 image, got shape {face.shape}")
        if face.shape != (size, size):
            interp = cv2.INTER_AREA if max(face.shape) > size else cv2.INTER_LINEAR
            face = cv2.resize(face, (size, size), interpolation=interp)
        batch[i] = face
    return batch[..., None]


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float32 (outside the graph, so a bf16 graph still gives rows summing to 1)."""
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z, dtype=np.float32)
    return e / e.sum(axis=1, keepdims=True)


class EmotionClassifier:
    """Scores face crops with emovid's CNN.

    Use :meth:`load`; ``classes`` is the tuple of output names and ``predict_proba`` returns
    one probability row per face.
    """

    def __init__(self, model, info: ModelInfo, path: Path, prior_tau: float | None = None) -> None:
        import tensorflow as tf

        from emovid.inference_graph import fold_batch_norms  # imports Keras: not at package import

        enable_cpu_bf16()
        self.info = info
        self.path = path
        size = info.input_size
        model = fold_batch_norms(model)
        self._model = model
        # One traced graph for every batch size: no retracing per batch, no Python per layer.
        self.prior_tau = info.prior_tau if prior_tau is None else prior_tau
        self.offsets = info.offsets_for(prior_tau)
        offsets = tf.constant(self.offsets or [0.0] * len(info.classes), tf.float32)
        scale = 1.0 / info.temperature

        def logits(x):
            out = model(x, training=False)
            if info.flip_average:  # mirror test-time augmentation, declared in the model's metadata
                out = (out + model(tf.reverse(x, axis=[2]), training=False)) / 2
            return tf.cast(out, tf.float32) * scale + offsets

        self._logits = tf.function(
            logits,
            input_signature=[tf.TensorSpec([None, size, size, 1], tf.float32)],
            reduce_retracing=True,
        )
        # Trace (and bf16-rewrite) the graph now: ~0.35 s that would otherwise land on the first video.
        self._logits(tf.zeros([1, size, size, 1], tf.float32))

    @classmethod
    def load(cls, path: str | Path | None = None, prior_tau: float | None = None) -> "EmotionClassifier":
        """Load a model saved by ``emovid train`` (the bundled model when ``path`` is None; a bundled
        model's name, e.g. ``"emovid_fer7_v1"``, also works).

        ``prior_tau``: the operating point, the share of the training class prior to undo
        (:func:`emovid.config.parse_prior`); None keeps the model's default.

        Loading uses Keras ``safe_mode`` (no pickled code) and checks the model against its
        metadata before any face is scored.

        Raises:
            ModelError: missing file, no emovid metadata, a model whose input/output shape
                does not match its declared size and classes, or ``prior_tau`` for a model
                without a declared class prior.
        """
        path = resolve_model(path) or bundled(DEFAULT_MODEL_NAME)
        info = read_model_info(path)
        import keras

        try:
            model = keras.saving.load_model(path, compile=False, safe_mode=True)
        except Exception as exc:  # Keras raises many types for a broken archive
            raise ModelError(f"{path}: cannot load model ({type(exc).__name__}: {exc})") from None
        expected_in = (None, info.input_size, info.input_size, 1)
        expected_out = (None, len(info.classes))
        if tuple(model.input_shape) != expected_in or tuple(model.output_shape) != expected_out:
            raise ModelError(
                f"{path}: model maps {model.input_shape} -> {model.output_shape}, but its metadata "
                f"declares {expected_in} -> {expected_out} ({len(info.classes)} classes)")
        return cls(model, info, path, prior_tau)

    def without_prior_correction(self) -> "EmotionClassifier":
        """The same network as trained: no prior correction, no temperature (raw probabilities)."""
        return EmotionClassifier(self._model, replace(self.info, logit_offsets=None, prior_tau=None, temperature=1.0),
                                 self.path)

    def logits(self, x):
        """The traced graph on a float32 tensor (N, size, size, 1) of raw pixels: (N, C) logits
        with the metadata's mirror averaging and offsets, before the softmax. Also usable inside
        ``tf.data`` maps (distillation feeds it augmented batches)."""
        return self._logits(x)

    @property
    def classes(self) -> tuple[str, ...]:
        return self.info.classes

    @property
    def input_size(self) -> int:
        return self.info.input_size

    @property
    def name(self) -> str:
        return self.info.tag

    def predict_proba(self, faces: Sequence[np.ndarray] | np.ndarray, batch_size: int = CPU_BATCH_SIZE) -> np.ndarray:
        """Class probabilities for face crops.

        Args:
            faces: list or array of uint8 crops, gray HxW or BGR HxWx3, any size.
            batch_size: crops per forward pass.

        Returns:
            (N, len(classes)) float32 array; rows sum to 1. N = 0 gives a (0, C) array.
        """
        return softmax(self.predict_logits(faces, batch_size))

    def predict_logits(self, faces: Sequence[np.ndarray] | np.ndarray, batch_size: int = CPU_BATCH_SIZE) -> np.ndarray:
        """(N, C) float32 logits as :meth:`predict_proba` feeds its softmax (temperature and offsets applied)."""
        if batch_size < 1:
            raise ValueError(f"batch_size: expected >= 1, got {batch_size}")
        x = to_model_input(faces, self.input_size)
        out = np.empty((len(x), len(self.classes)), np.float32)
        for start in range(0, len(x), batch_size):
            out[start:start + batch_size] = self.logits(x[start:start + batch_size]).numpy()
        return out
