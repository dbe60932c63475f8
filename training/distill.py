"""Knowledge distillation and mixup: ``tf.data`` batch maps for the training job.

An ensemble is accurate but runs every member per crop. Training one network toward the
ensemble's probabilities (Hinton et al. 2015, "Distilling the knowledge in a neural network")
can keep much of its accuracy at one network's cost. The teacher runs inside the input
pipeline on each augmented (and mixed) batch, so it judges exactly the crop the student sees
("consistent teaching", Beyer et al. 2022, "Knowledge distillation: a good teacher is patient
and consistent"). Precomputing its predictions once on the un-augmented training images, as a
first version did, gave the student the sharp answers of a teacher that had memorised those
images, and the students ended below our single network (see the model card).
"""

from __future__ import annotations

import logging
from pathlib import Path

import tensorflow as tf

from emovid.emotions import EmotionClassifier
from emovid.errors import ModelError
from emovid.labels import EMOTIONS

log = logging.getLogger(__name__)


def teacher_probabilities(teacher: str | Path, size: int, crop_margin: float):
    """A graph function: float pixels (N, size, size, 1) -> the teacher's probabilities (N, C).

    Mirror-averaged when the teacher's metadata says so, but without its prior correction
    (logit offsets): training re-weights classes itself, and correcting twice trades too much
    accuracy for recall. It runs the classifier's inference graph (batch norms folded); on 2 CPU cores it adds about
    25 s to a 90 s FER+ epoch.

    A teacher whose crop margin differs from ``crop_margin`` only gets a warning: FER+ images
    come pre-cropped (the margin only applies to class-folder photos).

    Raises:
        ModelError: the teacher cannot be loaded, or its classes or input size differ.
    """
    clf = EmotionClassifier.load(teacher).without_prior_correction()
    if clf.classes != EMOTIONS or clf.input_size != size:
        raise ModelError(f"teacher {clf.path}: classes {clf.classes} and input {clf.input_size} px do not "
                         f"match the training data ({EMOTIONS}, {size} px)")
    if abs(clf.info.crop_margin - crop_margin) > 1e-6:
        log.warning("teacher %s was made for crop margin %s, training crops use %s: for photos that are "
                    "cropped here, its predictions describe differently framed faces",
                    clf.name, clf.info.crop_margin, crop_margin)
    return lambda x: tf.nn.softmax(clf.logits(x))


def mixup(alpha: float, seed: int):
    """A ``tf.data`` batch map: each image blended with another of its batch (Zhang et al. 2018).

    Targets and sample weights blend with the same share; one Beta(alpha, alpha) share per image.
    Gives the teacher inputs it was never trained on, where its outputs carry the most
    information for the student ("function matching").
    """
    if alpha <= 0:
        raise ValueError(f"alpha: expected > 0, got {alpha}")

    def blend(x, targets, weights):
        n = tf.shape(x)[0]
        a = tf.random.gamma([n], alpha, seed=seed)
        b = tf.random.gamma([n], alpha, seed=seed + 1)
        share = a / (a + b + 1e-12)
        share = tf.maximum(share, 1 - share)  # the first image stays the main one
        other = tf.random.shuffle(tf.range(n), seed=seed)
        mix = lambda v, s: s * v + (1 - s) * tf.gather(v, other)  # noqa: E731
        return (mix(x, share[:, None, None, None]), mix(targets, share[:, None]), mix(weights, share))

    return blend


def consistent_targets(probabilities, weight: float):
    """A ``tf.data`` batch map: targets = ``weight`` x teacher(augmented x) + the rest x labels."""
    if not 0 <= weight <= 1:
        raise ValueError(f"weight: expected 0..1, got {weight}")

    def with_teacher(x, targets, weights):
        return x, weight * probabilities(x) + (1 - weight) * targets, weights

    return with_teacher
