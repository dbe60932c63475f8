"""On-the-fly augmentation for face crops, applied in ``tf.data`` to training batches only.

Faces in video move, tilt, change scale and lighting and are mirrored freely, so we sample
those; the seed project's 90/180 degree rotations and vertical flips are gone (no one films
upside-down faces, and they cost capacity).
"""

from __future__ import annotations

import keras
from keras import layers
from tensorflow import data as tf_data
import tensorflow as tf

NOISE_STDDEV = 5.0  # grey levels

#: Share of training crops that get each camera degradation when ``degrade`` is 1 (scaled by it).
DEGRADE_SHARES = {"downscale": 0.35, "blur": 0.3, "jpeg": 0.3, "gamma": 0.5, "occlude": 0.25}


def make_augmenter(seed: int = 1337, strength: float = 1.0) -> keras.Sequential:
    """Random flip, rotation (+-12 degrees), zoom and shift (+-10%), contrast and brightness;
    ``strength`` scales every range (0.5: half of each, as ``emovid tune`` searches)."""
    if not 0 < strength <= 3:
        raise ValueError(f"strength: expected 0 < strength <= 3, got {strength}")
    s = strength
    return keras.Sequential(
        [
            layers.RandomFlip("horizontal", seed=seed),
            layers.RandomRotation(12 * s / 360, fill_mode="reflect", seed=seed),
            layers.RandomZoom((-0.15 * s, 0.1 * s), fill_mode="reflect", seed=seed),
            layers.RandomTranslation(min(0.1 * s, 0.5), min(0.1 * s, 0.5), fill_mode="reflect", seed=seed),
            layers.RandomContrast(min(0.3 * s, 0.9), seed=seed),
            layers.RandomBrightness(min(0.25 * s, 0.9), value_range=(0, 255), seed=seed),
        ],
        name="augment",
    )


def _chosen(gen: tf.random.Generator, n, share: float):
    """(n, 1, 1, 1) float mask: 1 for the crops picked with probability ``share``."""
    return tf.cast(gen.uniform([n, 1, 1, 1]) < share, tf.float32)


def degrade_batch(x, gen: tf.random.Generator, strength: float = 1.0):
    """Camera and compression faults of real video frames on a float batch (N, H, W, 1) of 0..255.

    FER+ crops are clean, centred web photos; the faces users meet in video are downscaled, out
    of focus, H.264-blocky, badly exposed and partly hidden by hands or microphones. Each fault
    hits its own random share of the crops (``DEGRADE_SHARES`` times ``strength``).
    """
    n, h, w = tf.shape(x)[0], tf.shape(x)[1], tf.shape(x)[2]
    share = {k: min(1.0, v * strength) for k, v in DEGRADE_SHARES.items()}
    # Downscale then upscale: a small face in a wide frame (12-36 px of real detail).
    side = gen.uniform([], 12, 37, dtype=tf.int32)
    small = tf.image.resize(tf.image.resize(x, [side, side], method="area"), [h, w], method="bilinear")
    pick = _chosen(gen, n, share["downscale"])
    x = pick * small + (1 - pick) * x
    # Gaussian blur, sigma 0.5-1.6 px: focus and motion softness.
    sigma = gen.uniform([], 0.5, 1.6)
    taps = tf.range(-3, 4, dtype=tf.float32)
    kernel = tf.exp(-0.5 * (taps / sigma) ** 2)
    kernel = kernel / tf.reduce_sum(kernel)
    blurred = tf.nn.conv2d(x, tf.reshape(kernel, [7, 1, 1, 1]), 1, "SAME")
    blurred = tf.nn.conv2d(blurred, tf.reshape(kernel, [1, 7, 1, 1]), 1, "SAME")
    pick = _chosen(gen, n, share["blur"])
    x = pick * blurred + (1 - pick) * x
    # JPEG at quality 15-70: the blocking of compressed streams.
    quality = gen.uniform([], 15, 71, dtype=tf.int32)
    jpeg = tf.map_fn(lambda img: tf.image.adjust_jpeg_quality(img / 255.0, quality) * 255.0, x,
                     fn_output_signature=tf.float32)
    pick = _chosen(gen, n, share["jpeg"])
    x = pick * jpeg + (1 - pick) * x
    # Gamma 0.6-1.7 (log-uniform): under- and over-exposure that contrast scaling does not mimic.
    gamma = tf.exp(gen.uniform([n, 1, 1, 1], tf.math.log(0.6), tf.math.log(1.7)))
    pick = _chosen(gen, n, share["gamma"])
    x = pick * 255.0 * tf.pow(tf.clip_by_value(x / 255.0, 1e-4, 1.0), gamma) + (1 - pick) * x
    # Occlusion: one flat grey rectangle of 15-40% of each side (hands, microphones, glasses).
    ys = tf.cast(tf.range(h), tf.float32)[None, :, None, None]
    xs = tf.cast(tf.range(w), tf.float32)[None, None, :, None]
    hf, wf = tf.cast(h, tf.float32), tf.cast(w, tf.float32)
    cy, cx = gen.uniform([n, 1, 1, 1], 0, hf), gen.uniform([n, 1, 1, 1], 0, wf)
    half_h, half_w = gen.uniform([n, 1, 1, 1], 0.075, 0.2) * hf, gen.uniform([n, 1, 1, 1], 0.075, 0.2) * wf
    box = tf.cast((tf.abs(ys - cy) < half_h) & (tf.abs(xs - cx) < half_w), tf.float32)
    box = box * _chosen(gen, n, share["occlude"])
    fill = gen.uniform([n, 1, 1, 1], 0, 255)
    return tf.clip_by_value(box * fill + (1 - box) * x, 0.0, 255.0)


def make_dataset(images, targets, weights=None, *, batch_size: int, augmenter=None, shuffle: bool = False,
                 seed: int = 1337, batch_maps=(), degrade: float = 0.0) -> tf_data.Dataset:
    """Batch (N, H, W) uint8 images with their targets; augment if an augmenter is given.

    Order is shuffle -> batch -> augment (vectorised on the batch; with ``degrade`` > 0 also
    :func:`degrade_batch` at that strength) -> ``batch_maps`` in order
    (functions (x, targets, weights) -> (x, targets, weights), e.g. mixup or a teacher's
    targets; they need ``weights``) -> prefetch.
    """
    x = images[..., None]
    parts = (x, targets) if weights is None else (x, targets, weights)
    ds = tf_data.Dataset.from_tensor_slices(parts)
    if shuffle:
        ds = ds.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)

    def to_float(x, *rest):
        return (tf.cast(x, tf.float32), *rest)

    ds = ds.map(to_float, num_parallel_calls=tf_data.AUTOTUNE)
    if augmenter is not None:
        # A generator's state outlives the per-epoch iterator, so each epoch draws new noise
        # (a seeded op would restart its sequence with every epoch).
        noise = tf.random.Generator.from_seed(seed)
        faults = tf.random.Generator.from_seed(seed + 1)

        def augment(x, *rest):
            x = augmenter(x, training=True)
            if degrade > 0:
                x = degrade_batch(x, faults, degrade)
            # Sensor noise of a few grey levels; Keras' GaussianNoise only takes stddev <= 1.
            x = x + noise.normal(tf.shape(x), stddev=NOISE_STDDEV)
            return (tf.clip_by_value(x, 0.0, 255.0), *rest)

        ds = ds.map(augment, num_parallel_calls=tf_data.AUTOTUNE)
    for batch_map in batch_maps:
        ds = ds.map(batch_map, num_parallel_calls=tf_data.AUTOTUNE)
    return ds.prefetch(tf_data.AUTOTUNE)
