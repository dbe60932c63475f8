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
import math
from pathlib import Path

import tensorflow as tf

from emovid.classify.emotions import EmotionClassifier
from emovid.errors import ModelError
from emovid.classify.labels import EMOTIONS

log = logging.getLogger(__name__)


def teacher_probabilities(teacher: str | Path, size: int, crop_margin: float):
    """The teacher as a graph function for ``tf.data`` maps.

    Mirror-averaged when the teacher's metadata says so, but without its prior correction
    (logit offsets): training re-weights classes itself, and correcting twice trades too much
    accuracy for recall. It runs the classifier's inference graph (batch norms folded). The
    teacher is placed on the CPU, where ``tf.data`` runs: on 2 cores FER+ epochs took 100-110 s
    with v2 as teacher against 85-90 s without one; on a GPU node it costs the node's CPUs.

    Args:
        teacher: a ``.keras`` file or bundled model name.
        size: the training crops' side in pixels.
        crop_margin: the training crops' margin; a teacher made for another one only gets a
            warning, since FER+ images come pre-cropped (the margin only applies to photos).

    Returns:
        A function: float32 pixels (N, size, size, 1) -> float32 probabilities (N, C).

    Raises:
        ModelError: the teacher cannot be loaded, or its classes or input size differ.
    """
    with tf.device("/CPU:0"):
        clf = EmotionClassifier.load(teacher, backend="tensorflow").without_prior_correction()  # a tf.data map
    if clf.classes != EMOTIONS or clf.input_size != size:
        raise ModelError(f"teacher {clf.path}: classes {clf.classes} and input {clf.input_size} px do not "
                         f"match the training data ({EMOTIONS}, {size} px)")
    if abs(clf.info.crop_margin - crop_margin) > 1e-6:
        log.warning("teacher %s was made for crop margin %s, training crops use %s: for photos that are "
                    "cropped here, its predictions describe differently framed faces",
                    clf.name, clf.info.crop_margin, crop_margin)
    return lambda x: tf.nn.softmax(clf.logits(x))


def mixup(alpha: float, seed: int):
    """A ``tf.data`` batch map that blends each image with another of its batch (Zhang et al. 2018).

    Gives the teacher inputs it was never trained on, where its outputs carry the most
    information for the student ("function matching").

    Args:
        alpha: each image keeps a share ``max(s, 1 - s)`` of itself, s ~ Beta(alpha, alpha):
            small alphas keep most images nearly whole. Targets and sample weights blend with
            the same share.
        seed: seeds a generator whose state carries over between epochs (each epoch draws
            new shares and partners).

    Returns:
        A function (x, targets, weights) -> the blended (x, targets, weights).

    Raises:
        ValueError: ``alpha`` is not a positive number.
    """
    if not (math.isfinite(alpha) and alpha > 0):
        raise ValueError(f"alpha: expected a number > 0, got {alpha}")
    generator = tf.random.Generator.from_seed(seed)

    def blend(x, targets, weights):
        n = tf.shape(x)[0]
        seeds = generator.make_seeds(3)
        a = tf.random.stateless_gamma([n], seeds[:, 0], alpha)
        b = tf.random.stateless_gamma([n], seeds[:, 1], alpha)
        share = a / (a + b + 1e-12)
        share = tf.maximum(share, 1 - share)  # the image stays the main part of its blend
        partner = tf.argsort(tf.random.stateless_uniform([n], seeds[:, 2]))

        def mix(values, shares):
            return shares * values + (1 - shares) * tf.gather(values, partner)

        return mix(x, share[:, None, None, None]), mix(targets, share[:, None]), mix(weights, share)

    return blend


def consistent_targets(probabilities, weight: float):
    """A ``tf.data`` batch map: targets = ``weight`` x teacher(x) + the rest x labels, x as it comes
    (augmented, mixed).

    Args:
        probabilities: the teacher (see :func:`teacher_probabilities`).
        weight: the teacher's share, 0..1.

    Returns:
        A function (x, targets, weights) -> (x, the mixed targets, weights).

    Raises:
        ValueError: ``weight`` is outside 0..1.
    """
    if not 0 <= weight <= 1:
        raise ValueError(f"weight: expected 0..1, got {weight}")

    def with_teacher(x, targets, weights):
        return x, weight * probabilities(x) + (1 - weight) * targets, weights

    return with_teacher


def training_maps(teacher: str | None, teacher_weight: float, mixup_alpha: float, size: int,
                  crop_margin: float, seed: int) -> list:
    """The batch maps of a training run, in order: mixup first, so the teacher judges the blends.

    Returns:
        A list for ``make_dataset(batch_maps=...)``; empty without a teacher or mixup.
    """
    maps = []
    if mixup_alpha:
        maps.append(mixup(mixup_alpha, seed))
    if teacher:
        maps.append(consistent_targets(teacher_probabilities(teacher, size, crop_margin), teacher_weight))
    return maps
