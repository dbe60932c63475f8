"""Knowledge distillation: training targets softened toward a trained model's predictions.

An ensemble is accurate but runs every member per crop. Training one network on a mix of
the labels and the ensemble's probabilities (Hinton et al. 2015, "Distilling the knowledge
in a neural network") can keep much of the ensemble's accuracy at one network's cost (on
FER+ it did not beat our single network: see the model card). The
teacher's probabilities are computed once, on the un-augmented crops, with its mirror
averaging but without its prior correction (logit offsets): training re-weights classes
itself (by the labels), and correcting twice trades too much accuracy for recall.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from emovid.emotions import EmotionClassifier
from emovid.errors import ModelError
from emovid.labels import EMOTIONS
from training.data import LabelledFaces

log = logging.getLogger(__name__)


def mix_targets(labels: np.ndarray, teacher: np.ndarray, weight: float) -> np.ndarray:
    """``weight * teacher + (1 - weight) * labels``, row-wise distributions in, distributions out."""
    if not 0 <= weight <= 1:
        raise ValueError(f"weight: expected 0..1, got {weight}")
    if labels.shape != teacher.shape:
        raise ValueError(f"labels and teacher: shapes differ, {labels.shape} vs {teacher.shape}")
    return (weight * teacher + (1 - weight) * labels).astype(np.float32)


def distilled(data: LabelledFaces, teacher: str | Path, weight: float, crop_margin: float) -> LabelledFaces:
    """``data`` with targets moved ``weight`` of the way to the teacher's probabilities.

    A teacher whose crop margin differs from ``crop_margin`` only gets a warning: FER+ images
    come pre-cropped (the margin only applies to class-folder photos).

    Raises:
        ModelError: the teacher cannot be loaded, or its classes or input size differ from the
            data's.
    """
    clf = EmotionClassifier.load(teacher).without_prior_correction()
    size = data.images.shape[1]
    if clf.classes != EMOTIONS or clf.input_size != size:
        raise ModelError(f"teacher {clf.path}: classes {clf.classes} and input {clf.input_size} px do not "
                         f"match the training data ({EMOTIONS}, {size} px)")
    if abs(clf.info.crop_margin - crop_margin) > 1e-6:
        log.warning("teacher %s was made for crop margin %s, training crops use %s: for photos that are "
                    "cropped here, its predictions describe differently framed faces",
                    clf.name, clf.info.crop_margin, crop_margin)
    probs = clf.predict_proba(data.images, batch_size=512)
    agree = float(np.mean(probs.argmax(1) == data.targets.argmax(1)))
    log.info("teacher %s agrees with the labels' top class on %.1f%% of %d images", clf.name, 100 * agree, len(data))
    return LabelledFaces(data.images, mix_targets(data.targets, probs, weight), data.names, data.majority)
