"""Averaging trained models into one model file (an ensemble of independently trained seeds).

Members see the same crop and their logits are averaged inside the graph, so the result is an
ordinary ``.keras`` file with the usual metadata: ``EmotionClassifier``, ``analyze`` and
``evaluate`` use it unchanged. Members must agree on classes, input size and crop margin.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import keras
import numpy as np

from emovid.errors import ModelError
from emovid.classify.model_file import ModelInfo, read_model_info, write_model


def prior_offsets(class_shares: np.ndarray, tau: float) -> tuple[float, ...]:
    """Logit offsets ``-tau * log(share)`` that undo part of the training set's class prior.

    Training on FER+ (a third neutral, 1.6% disgust) leaves the logits leaning to frequent
    classes; ``tau`` 0 keeps them, 1 removes the prior entirely (logit adjustment, Menon et al. 2021).
    """
    class_shares = np.asarray(class_shares, dtype=np.float64)
    if tau < 0 or np.any(class_shares <= 0):
        raise ValueError(f"expected tau >= 0 and positive class shares, got {tau}, {class_shares}")
    return tuple(float(v) for v in np.round(-tau * np.log(class_shares / class_shares.sum()), 5))


def read_members(paths: list[Path], out: Path, minimum: int) -> list[ModelInfo]:
    """The metadata of the models to combine into ``out``, checked to agree on classes, input and crop.

    Raises:
        ValueError: fewer than ``minimum`` paths, or ``out`` is not a ``.keras`` name.
        ModelError: a member has no readable metadata, or the members disagree.
    """
    if len(paths) < minimum:
        raise ValueError(f"paths: expected at least {minimum} model{'s' * (minimum > 1)}, got {len(paths)}")
    if Path(out).suffix != ".keras":
        raise ValueError(f"out: expected a .keras file name, got {out}")
    infos = [read_model_info(p) for p in paths]
    first = infos[0]
    for path, info in zip(paths[1:], infos[1:]):
        if (info.classes, info.input_size, info.crop_margin) != (first.classes, first.input_size, first.crop_margin):
            raise ModelError(f"{path}: classes/input size/crop margin differ from {paths[0]}; cannot combine")
    return infos


def average_models(paths: list[Path], out: Path, name: str | None = None, version: str | None = None,
                   flip_average: bool | None = None, logit_offsets: tuple[float, ...] | None = None) -> ModelInfo:
    """Write ``out``: one model whose logits are the mean of the models at ``paths``.

    Args:
        paths: two or more model files saved by ``emovid train``.
        name, version, flip_average: metadata of the result (default: the first member's).
        logit_offsets: per-class offsets added to the mean logits (see :func:`prior_offsets`).

    Raises:
        ValueError: fewer than two models, or ``out`` is not a ``.keras`` name.
        ModelError: a member is unreadable, or the members disagree on classes/input/crop.
    """
    infos = read_members(paths, out, minimum=2)
    first = infos[0]
    face = keras.Input((first.input_size, first.input_size, 1), name="face")
    member_logits = []
    for i, path in enumerate(paths):
        member = keras.saving.load_model(path, compile=False, safe_mode=True)
        member = keras.Model(member.input, member.output, name=f"member_{i}")  # unique names inside the file
        member_logits.append(member(face))
    logits = keras.layers.Average(name="emotion_logits")(member_logits)
    ensemble = keras.Model(face, logits, name="emovid_ensemble")
    info = replace(first, name=name or first.name, version=version or first.version,
                   flip_average=first.flip_average if flip_average is None else flip_average,
                   logit_offsets=logit_offsets, prior_tau=None, temperature=1.0,
                   training={"ensemble_of": [{"file": Path(p).name, "tag": i.tag, **i.training}
                                             for p, i in zip(paths, infos)]})
    write_model(ensemble, info, out)
    return info
