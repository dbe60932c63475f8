"""Metadata that travels inside a ``.keras`` model file (classes, input size, crop settings).

A ``.keras`` file is a zip archive; we add one ``emovid.json`` member next to Keras' own files.
Keras ignores it when loading, and this module needs no Keras to read it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from emovid.errors import ModelError

log = logging.getLogger(__name__)

METADATA_MEMBER = "emovid.json"
#: The network exported to ONNX (``emovid.classify.inference_graph.to_onnx``), run by onnxruntime when
#: it is installed; models without it run on TensorFlow.
ONNX_MEMBER = "emovid.onnx"
#: The same network quantised to int8 (``emovid.classify.quantize``), where the model file has it.
INT8_MEMBER = "emovid.int8.onnx"
#: The ONNX graphs a model file may carry, by arithmetic.
ONNX_MEMBERS = {"fp32": ONNX_MEMBER, "int8": INT8_MEMBER}


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What a caller must know to feed the model and read its outputs.

    Attributes:
        name: model name, e.g. ``emovid-fer7``.
        version: model version string.
        classes: output class names, in logit order.
        input_size: side of the square grayscale input, in pixels.
        crop_margin: how much the detector's face box is enlarged before cropping (0.2 = 20%).
        training: free-form training details (data, epochs, results) for the model card.
        flip_average: average the logits of each crop and its mirror image at inference.
        logit_offsets: added to the logits before the softmax, one per class (a prior
            correction, ``-tau * log(training class share)``); None adds nothing. Models that
            declare ``class_prior`` and ``prior_tau`` compute it from them instead.
        temperature: the logits are divided by it before the offsets (calibration: fitted so
            the probabilities match how often the top class is right).
        class_prior: the training set's class shares (the prior the network learned).
        prior_tau: default operating point: the share of ``class_prior`` that is undone
            (0 keeps the training prior, 1 assumes every class equally likely).
    """

    name: str
    version: str
    classes: tuple[str, ...]
    input_size: int
    crop_margin: float
    training: dict = field(default_factory=dict)
    flip_average: bool = False
    logit_offsets: tuple[float, ...] | None = None
    temperature: float = 1.0
    class_prior: tuple[float, ...] | None = None
    prior_tau: float | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.temperature) and self.temperature > 0):
            raise ValueError(f"temperature: expected a number > 0, got {self.temperature}")
        if self.class_prior is not None and (len(self.class_prior) != len(self.classes)
                                             or not all(v > 0 for v in self.class_prior)):
            raise ValueError(f"class_prior: expected {len(self.classes)} positive shares, got {self.class_prior}")
        if self.logit_offsets is not None and len(self.logit_offsets) != len(self.classes):
            raise ValueError(f"logit_offsets: expected {len(self.classes)} values, got {len(self.logit_offsets)}")
        if not self.classes or len(set(self.classes)) != len(self.classes):
            raise ValueError(f"classes: expected unique names, got {self.classes}")
        if self.input_size < 8:
            raise ValueError(f"input_size: expected >= 8, got {self.input_size}")
        if not 0 <= self.crop_margin <= 1:
            raise ValueError(f"crop_margin: expected 0..1, got {self.crop_margin}")

    @property
    def tag(self) -> str:
        return f"{self.name}:{self.version}"

    def offsets_for(self, tau: float | None) -> tuple[float, ...] | None:
        """Logit offsets at prior strength ``tau`` (None: the model's default operating point).

        Raises:
            ModelError: ``tau`` is given but the model declares no ``class_prior``.
        """
        if tau is None:
            tau = self.prior_tau
            if tau is None:
                return self.logit_offsets
        if self.class_prior is None:
            raise ModelError(f"model {self.tag} declares no class_prior, so its prior cannot be changed")
        shares = [v / sum(self.class_prior) for v in self.class_prior]
        return tuple(round(-tau * math.log(v), 5) for v in shares)


def model_digest(path: str | Path) -> str:
    """The first 16 hex digits of the file's SHA-256: a model's identity in result settings.

    Name and version are for people; two models trained under the same name differ here, so
    results of one are never taken for results of the other.

    Raises:
        ModelError: the file cannot be read.
    """
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise ModelError(f"{path}: cannot read model file ({exc.strerror or exc})") from None
    return digest.hexdigest()[:16]


def write_model_info(path: str | Path, info: ModelInfo) -> None:
    """Add (or replace) the metadata member in a saved ``.keras`` file."""
    _replace_member(path, METADATA_MEMBER, json.dumps(asdict(info), indent=2).encode())


def write_onnx(path: str | Path, graph: bytes, precision: str = "fp32") -> None:
    """Add (or replace) the ONNX graph of ``precision`` ("fp32" or "int8") in a saved ``.keras`` file."""
    _replace_member(path, ONNX_MEMBERS[precision], graph)


def onnx_precisions(path: str | Path) -> tuple[str, ...]:
    """The arithmetic of each ONNX graph a model file carries, e.g. ``("fp32", "int8")`` (reads
    the zip's index only; empty for a file without graphs or not a zip)."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
    except (OSError, zipfile.BadZipFile):
        return ()
    return tuple(p for p, member in ONNX_MEMBERS.items() if member in names)


def has_onnx(path: str | Path) -> bool:
    """Whether a model file carries its (fp32) ONNX graph."""
    return "fp32" in onnx_precisions(path)


def read_onnx(path: str | Path, precision: str = "fp32") -> bytes | None:
    """The ONNX graph of ``precision`` inside a model file, or None when it has none."""
    if precision not in onnx_precisions(path):
        return None
    with zipfile.ZipFile(path) as zf:
        return zf.read(ONNX_MEMBERS[precision])


def _replace_member(path: str | Path, member: str, data: bytes) -> None:
    path = Path(path)
    with zipfile.ZipFile(path, "r") as zf:
        members = {n: zf.read(n) for n in zf.namelist() if n != member}
    tmp = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, content in members.items():
            zf.writestr(name, content)
        zf.writestr(member, data)
    tmp.replace(path)


def write_model(model, info: ModelInfo, path: str | Path, onnx: bool = True, calibration=None) -> None:
    """Save a Keras model with its metadata (and, with ``onnx``, its ONNX graph) to ``path``
    atomically (a temp file renamed into place). Without tf2onnx the graph is left out, with
    a warning: the model then runs on TensorFlow.

    ``calibration``: training crops (uint8, the model's input size); with them the int8 graph
    is stored too (:mod:`emovid.classify.quantize`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".partial.keras")
    try:
        model.save(tmp)
        write_model_info(tmp, info)
        if onnx:
            from emovid.classify.inference_graph import to_onnx  # imports Keras and TensorFlow

            try:
                graph = to_onnx(model)
            except ImportError as exc:
                log.warning("no ONNX graph in %s (%s): it will run on TensorFlow only", path.name, exc)
            else:
                write_onnx(tmp, graph)
                if calibration is not None:
                    write_int8(tmp, graph, calibration, info.input_size)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def write_int8(path: str | Path, graph: bytes, images, input_size: int) -> None:
    """Quantise ``graph`` on a sample of ``images`` (uint8 training crops) and store it beside it.
    Without onnxruntime's quantisation tools only a warning: the model then runs in fp32."""
    from emovid.classify.emotions import to_model_input
    from emovid.classify.quantize import calibration_sample, quantize_graph

    try:
        int8 = quantize_graph(graph, to_model_input(calibration_sample(images), input_size))
    except ImportError as exc:
        log.warning("no int8 graph in %s (%s): it will run in fp32 only", Path(path).name, exc)
        return
    write_onnx(path, int8, "int8")


def read_model_info(path: str | Path) -> ModelInfo:
    """Read the metadata of a ``.keras`` model file.

    Raises:
        ModelError: the file is missing, not a zip archive, or has no emovid metadata.
    """
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as zf:
            raw = json.loads(zf.read(METADATA_MEMBER))
    except FileNotFoundError:
        raise ModelError(f"{path}: model file not found") from None
    except zipfile.BadZipFile:
        raise ModelError(f"{path}: not a .keras model file (not a zip archive)") from None
    except KeyError:
        raise ModelError(f"{path}: no {METADATA_MEMBER} inside; was it saved by `emovid train`?") from None
    try:
        raw["classes"] = tuple(raw["classes"])
        for key in ("logit_offsets", "class_prior"):
            if raw.get(key) is not None:
                raw[key] = tuple(raw[key])
        return ModelInfo(**raw)
    except (TypeError, ValueError) as exc:
        raise ModelError(f"{path}: invalid emovid metadata ({exc})") from None
