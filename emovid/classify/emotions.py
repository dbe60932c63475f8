"""The emotion classifier: loads a ``.keras`` model (the bundled one by default) and scores face crops.

The network runs in onnxruntime when the model file carries its ONNX graph (no TensorFlow
import: a worker starts in ~0.6 s instead of ~11 s, and runs ~1.6x the crops/s on a CPU without
native bf16), else in TensorFlow. Apart from training, this is the only module that imports
Keras/TensorFlow.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from emovid.assets import DEFAULT_MODEL_NAME, bundled, resolve_model
from emovid.errors import ModelError
from emovid.classify.model_file import ModelInfo, has_onnx, model_digest, onnx_precisions, read_model_info, read_onnx

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


#: Which runtime runs the network: "auto" is onnxruntime when the model file carries its ONNX
#: graph and onnxruntime imports, else TensorFlow. ``EMOVID_CLASSIFIER`` overrides "auto".
CLASSIFIER_BACKENDS = ("auto", "onnxruntime", "tensorflow")


def classifier_backend(path: str | Path, requested: str = "auto") -> str:
    """The backend ``requested`` resolves to for the model file at ``path`` (no model is loaded).

    The two agree to 1e-6 on the logits; each result file's metadata records which one ran.

    Raises:
        ValueError: an unknown backend name.
    """
    requested = os.environ.get("EMOVID_CLASSIFIER", requested) if requested == "auto" else requested
    if requested not in CLASSIFIER_BACKENDS:
        raise ValueError(f"classifier backend: expected one of {', '.join(CLASSIFIER_BACKENDS)}, got {requested!r}")
    if requested != "auto":
        return requested
    if not has_onnx(path):
        return "tensorflow"
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return "tensorflow"
    return "onnxruntime"


def cuda_available(backend: str) -> bool:
    """Whether this process can run ``backend`` on an NVIDIA GPU (without starting either runtime
    on it: TensorFlow is asked for its devices, onnxruntime for its CUDA provider)."""
    if os.environ.get("CUDA_VISIBLE_DEVICES") == "":
        return False
    if backend == "tensorflow":
        import tensorflow as tf

        return bool(tf.config.list_physical_devices("GPU"))
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()


#: The classifier's arithmetic: "int8" runs the model file's quantised graph, "fp32" its float
#: graph; "auto" picks int8 where it measures faster on this host (CPU, onnxruntime, the model
#: carries it) and fp32 otherwise, e.g. on GPUs.
PRECISIONS = ("auto", "int8", "fp32")
#: int8 is chosen when it runs this much faster than fp32 here: a margin over timing noise
#: (measured 2.7-3.0x on AVX-512 VNNI).
INT8_MIN_SPEEDUP = 1.2


def resolve_precision(path: str | Path, requested: str = "auto", backend: str = "auto", use_gpu: bool = False) -> str:
    """The arithmetic ``requested`` means for the model at ``path`` on this host: "int8" or "fp32".

    "auto" measures both graphs here once a process (:func:`int8_speedup`, ~0.3 s).

    Raises:
        ValueError: an unknown precision.
        ModelError: "int8" for a model without an int8 graph, or on TensorFlow or a GPU.
    """
    if requested not in PRECISIONS:
        raise ValueError(f"precision: expected one of {', '.join(PRECISIONS)}, got {requested!r}")
    path = resolve_model(path) or bundled(DEFAULT_MODEL_NAME)
    available = "int8" in onnx_precisions(path) and classifier_backend(path, backend) == "onnxruntime"
    if requested == "int8":
        if not available:
            raise ModelError(f"{path}: no int8 graph to run (add one with `emovid quantize`; it needs onnxruntime)")
        if use_gpu:
            raise ModelError("int8 runs on CPU workers only: use precision fp32 (or auto) with GPUs")
        return "int8"
    if requested == "fp32" or not available or use_gpu:
        return "fp32"
    return "int8" if int8_speedup(path, model_digest(path)) >= INT8_MIN_SPEEDUP else "fp32"


@functools.lru_cache(maxsize=8)
def int8_speedup(path: Path, digest: str) -> float:
    """How many times faster the int8 graph of ``path`` scores crops than its fp32 graph on one
    thread of this host (best of 3 batches of 16 crops each; ``digest`` keys the cache to the content)."""
    import onnxruntime as ort

    info = read_model_info(path)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    crops = np.random.default_rng(0).uniform(0, 255, (16, info.input_size, info.input_size, 1)).astype(np.float32)
    best = {}
    for precision in ("fp32", "int8"):
        session = ort.InferenceSession(read_onnx(path, precision), options, providers=["CPUExecutionProvider"])
        feed = {session.get_inputs()[0].name: crops}
        session.run(None, feed)  # the first run allocates and picks kernels
        times = []
        for _ in range(3):
            start = time.perf_counter()
            session.run(None, feed)
            times.append(time.perf_counter() - start)
        best[precision] = min(times)
    speedup = best["fp32"] / best["int8"]
    log.info("int8 runs the CNN %.1fx as fast as fp32 on this host", speedup)
    return speedup


class KerasNetwork:
    """The network as one traced TensorFlow graph (batch norms folded), with mirror averaging."""

    backend = "tensorflow"

    def __init__(self, model, info: ModelInfo) -> None:
        import tensorflow as tf

        from emovid.classify.inference_graph import fold_batch_norms  # imports Keras: not at package import

        self.on_gpu = bool(tf.config.list_logical_devices("GPU"))
        self.bf16 = enable_cpu_bf16()
        self.precision = "fp32"
        self.model = fold_batch_norms(model)
        size, model = info.input_size, self.model

        def raw(x):
            out = model(x, training=False)
            if info.flip_average:  # mirror test-time augmentation, declared in the model's metadata
                out = (out + model(tf.reverse(x, axis=[2]), training=False)) / 2
            return tf.cast(out, tf.float32)

        # One traced graph for every batch size: no retracing per batch, no Python per layer.
        self.graph = tf.function(raw, input_signature=[tf.TensorSpec([None, size, size, 1], tf.float32)],
                                 reduce_retracing=True)
        # Trace (and bf16-rewrite) the graph now: ~0.35 s that would otherwise land on the first video.
        self.graph(tf.zeros([1, size, size, 1], tf.float32))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.graph(x).numpy()


class OnnxNetwork:
    """The network's ONNX graph in onnxruntime, on CUDA when asked and available, with mirror averaging."""

    backend = "onnxruntime"

    def __init__(self, graph: bytes, info: ModelInfo, path: Path, num_threads: int | None = None,
                 use_gpu: bool = False, precision: str = "fp32") -> None:
        import onnxruntime as ort

        from emovid.detect.yunet import onnx_session

        options = ort.SessionOptions()
        options.intra_op_num_threads = num_threads or 0  # 0: onnxruntime's default, one per core
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        # Idle threads sleep instead of spinning: a worker's decode thread shares these cores.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self._session = onnx_session(graph, options, use_gpu)
        except Exception as exc:  # onnxruntime raises its own types for a bad graph
            raise ModelError(f"{path}: cannot load its ONNX graph ({type(exc).__name__}: {exc})") from None
        self.providers = tuple(self._session.get_providers())
        self.on_gpu = self.providers[0] == "CUDAExecutionProvider"
        if use_gpu and not self.on_gpu:
            log.warning("emotion classification runs on CPU: onnxruntime has no usable CUDA (pip install 'emovid[gpu]')")
        self.bf16 = False
        self.precision = precision
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        shape_in, shape_out = tuple(inputs[0].shape[1:]), tuple(outputs[0].shape[1:])
        if shape_in != (info.input_size, info.input_size, 1) or shape_out != (len(info.classes),):
            raise ModelError(f"{path}: its ONNX graph maps {inputs[0].shape} -> {outputs[0].shape}, but its metadata "
                             f"declares {info.input_size}x{info.input_size}x1 -> {len(info.classes)} classes")
        self._input = inputs[0].name
        self._flip = info.flip_average

    def __call__(self, x: np.ndarray) -> np.ndarray:
        out = self._session.run(None, {self._input: x})[0]
        if self._flip:
            out = (out + self._session.run(None, {self._input: np.ascontiguousarray(x[:, :, ::-1])})[0]) / 2
        return out.astype(np.float32, copy=False)


class EmotionClassifier:
    """Scores face crops with emovid's CNN.

    Use :meth:`load`; ``classes`` is the tuple of output names and ``predict_proba`` returns
    one probability row per face. ``backend`` says which runtime runs the network.
    """

    def __init__(self, network: KerasNetwork | OnnxNetwork, info: ModelInfo, path: Path,
                 prior_tau: float | None = None) -> None:
        self.info = info
        self.path = path
        self._network = network
        self.prior_tau = info.prior_tau if prior_tau is None else prior_tau
        self.offsets = info.offsets_for(prior_tau)
        self._scale = np.float32(1.0 / info.temperature)
        self._offsets = np.asarray(self.offsets or [0.0] * len(info.classes), np.float32)

    @classmethod
    def load(cls, path: str | Path | None = None, prior_tau: float | None = None, backend: str = "auto",
             num_threads: int | None = None, use_gpu: bool = False, precision: str = "auto") -> "EmotionClassifier":
        """Load a model saved by ``emovid train`` (the bundled model when ``path`` is None; a bundled
        model's name, ``"emovid_fer7_v7"``, also works).

        ``prior_tau``: the operating point, the share of the training class prior to undo
        (:func:`emovid.config.parse_prior`); None keeps the model's default. ``backend``: see
        :func:`classifier_backend`; ``num_threads`` and ``use_gpu`` apply to onnxruntime
        (TensorFlow takes them from :func:`configure_tensorflow`). ``precision``: the graph's
        arithmetic, see :func:`resolve_precision` (TensorFlow runs fp32).

        Loading uses Keras ``safe_mode`` (no pickled code) and checks the network against its
        metadata before any face is scored.

        Raises:
            ModelError: missing file, no emovid metadata, a network whose input/output shape
                does not match its declared size and classes, or ``prior_tau`` for a model
                without a declared class prior.
        """
        path = resolve_model(path) or bundled(DEFAULT_MODEL_NAME)
        info = read_model_info(path)
        info.offsets_for(prior_tau)  # fails before any network loads
        if classifier_backend(path, backend) == "onnxruntime":
            precision = resolve_precision(path, precision, backend, use_gpu)
            graph = read_onnx(path, precision)
            if graph is None:
                raise ModelError(f"{path}: no ONNX graph inside (saved without tf2onnx?); use the tensorflow backend")
            return cls(OnnxNetwork(graph, info, path, num_threads, use_gpu, precision), info, path, prior_tau)
        if precision == "int8":
            raise ModelError("int8 runs on onnxruntime only, not on the tensorflow backend")
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
        return cls(KerasNetwork(model, info), info, path, prior_tau)

    def without_prior_correction(self) -> "EmotionClassifier":
        """The same network as trained: no prior correction, no temperature (raw probabilities)."""
        return EmotionClassifier(self._network, replace(self.info, logit_offsets=None, prior_tau=None, temperature=1.0),
                                 self.path)

    def logits(self, x):
        """TensorFlow backend only: the traced graph on a float32 tensor (N, size, size, 1) of raw
        pixels, (N, C) logits with the metadata's mirror averaging, temperature and offsets,
        before the softmax. Usable inside ``tf.data`` maps (distillation feeds it augmented batches).

        Raises:
            ModelError: the classifier runs on onnxruntime (load it with ``backend="tensorflow"``).
        """
        if not isinstance(self._network, KerasNetwork):
            raise ModelError("logits() needs the tensorflow backend: EmotionClassifier.load(..., backend='tensorflow')")
        return self._network.graph(x) * self._scale + self._offsets

    @property
    def backend(self) -> str:
        return self._network.backend

    @property
    def on_gpu(self) -> bool:
        return self._network.on_gpu

    @property
    def precision(self) -> str:
        """The arithmetic of the graph that runs: "int8" or "fp32"."""
        return self._network.precision

    @property
    def bf16(self) -> bool:
        """Whether the network runs in oneDNN's bf16 (TensorFlow on a CPU with native bf16)."""
        return self._network.bf16

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
            out[start:start + batch_size] = self._network(x[start:start + batch_size]) * self._scale + self._offsets
        return out
