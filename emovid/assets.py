"""Paths of the weights that ship with emovid (the repo's ``models/``, installed as ``emovid.models``).

Nothing is downloaded at run time: every worker reads these from its own installed package.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

DEFAULT_MODEL_NAME = "emovid_fer7_v4.keras"
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
    """Names of the bundled emotion models (``emovid_fer7_v1`` ...), oldest first."""
    return sorted(p.stem for p in bundled(DEFAULT_MODEL_NAME).parent.glob("emovid_*.keras"))


def resolve_model(model: str | Path | None) -> Path | None:
    """A model argument as a path: an existing file, or the name of a bundled model
    (``emovid_fer7_v1`` or ``emovid_fer7_v1.keras``); None stays None (the default model)."""
    if model is None or Path(model).is_file():
        return None if model is None else Path(model)
    name = str(model) if str(model).endswith(".keras") else f"{model}.keras"
    if "/" not in name and "\\" not in name:
        try:
            return bundled(name)
        except FileNotFoundError:
            pass
    return Path(model)  # missing: validation reports it
