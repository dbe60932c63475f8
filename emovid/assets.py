"""Paths of the weights that ship with emovid (the repo's ``models/``, installed as ``emovid.models``).

Nothing is downloaded at run time: every worker reads these from its own installed package.
"""

from __future__ import annotations

import functools
import importlib.resources
import importlib.util
import os
from pathlib import Path

DEFAULT_MODEL_NAME = "emovid_fer7_v7.keras"
YUNET_NAME = "face_detection_yunet_2026may.onnx"


def bundled(name: str) -> Path:
    """Path of a shipped file in ``emovid.models``.

    Raises:
        FileNotFoundError: the installed package lacks the file (a broken install).
    """
    try:
        folder = Path(str(importlib.resources.files("emovid.models")))
    except ModuleNotFoundError:  # running from a source tree that is not installed (e.g. a Ray job's working_dir)
        folder = Path(__file__).resolve().parents[1] / "models"
    path = folder / name
    if not path.is_file():
        raise FileNotFoundError(f"bundled file {name} is missing from {path.parent}; reinstall emovid")
    return path


def bundled_names() -> list[str]:
    """Names of the bundled emotion models (``emovid_fer7_v7``), oldest first."""
    return sorted(p.stem for p in bundled(DEFAULT_MODEL_NAME).parent.glob("emovid_*.keras"))


def _bundled_name(model: str | Path) -> str | None:
    """The bundled file name ``model`` refers to (``emovid_fer7_v7``, ``emovid_fer7_v7.keras``, or
    the path of a bundled file), or None."""
    text = str(model)
    if "/" in text or "\\" in text:
        path = Path(text)
        try:
            return path.name if path.resolve().parent == bundled(DEFAULT_MODEL_NAME).parent.resolve() else None
        except (OSError, FileNotFoundError):
            return None
    name = text if text.endswith(".keras") else f"{text}.keras"
    try:
        bundled(name)
    except FileNotFoundError:
        return None
    return name


def resolve_model(model: str | Path | None) -> Path | None:
    """A model argument as a path: an existing file, or the name of a bundled model
    (``emovid_fer7_v7`` or ``emovid_fer7_v7.keras``); None stays None (the default model)."""
    if model is None or Path(model).is_file():
        return None if model is None else Path(model)
    name = _bundled_name(model)
    return bundled(name) if name else Path(model)  # missing: validation reports it


def model_reference(model: str | Path | None) -> str | None:
    """How a run names its model to the workers: a bundled model by file name (each worker
    finds it in its own install, wherever that is), any other file by absolute path.

    Raises:
        ValueError: neither an existing file nor a bundled model's name.
    """
    if model is None:
        return None
    if name := _bundled_name(model):
        return name
    if Path(model).is_file():
        return os.path.abspath(model)
    raise ValueError(f"model: expected a .keras file or a bundled model name "
                     f"({', '.join(bundled_names())}), got {str(model)!r}")


def model_path(reference: str | None) -> Path:
    """The file a :func:`model_reference` names, on this machine (None: the default model)."""
    return resolve_model(reference) or bundled(DEFAULT_MODEL_NAME)


def identity_model_folder() -> Path:
    """The model files of the ``face-recognition-models`` wheel, found without importing it (its
    ``__init__`` needs ``pkg_resources``, which new setuptools no longer ship).

    Raises:
        ImportError: the wheel is not installed.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    folder = Path(spec.origin).parent / "models" if spec is not None and spec.origin else None
    if folder is None or not (folder / "dlib_face_recognition_resnet_model_v1.dat").is_file():
        raise ImportError("face-recognition-models is not installed")
    return folder


def identity_model_installed() -> bool:
    """Whether dlib and the ``face-recognition-models`` files are installed (neither is imported)."""
    try:
        identity_model_folder()
    except ImportError:
        return False
    return importlib.util.find_spec("dlib") is not None


@functools.cache
def face_landmark_model():
    """dlib's 5-point shape predictor (from ``face-recognition-models``), loaded once a process:
    the identity embedder aligns faces with it and head pose measures tilt with it.

    Raises:
        ImportError: dlib or the model files are not installed.
    """
    import dlib

    return dlib.shape_predictor(str(identity_model_folder() / "shape_predictor_5_face_landmarks.dat"))
