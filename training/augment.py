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


def make_augmenter(seed: int = 1337) -> keras.Sequential:
    """Random flip, rotation (+-12 degrees), zoom and shift (+-10%), contrast and brightness."""
    return keras.Sequential(
        [
            layers.RandomFlip("horizontal", seed=seed),
            layers.RandomRotation(12 / 360, fill_mode="reflect", seed=seed),
            layers.RandomZoom((-0.15, 0.1), fill_mode="reflect", seed=seed),
            layers.RandomTranslation(0.1, 0.1, fill_mode="reflect", seed=seed),
            layers.RandomContrast(0.3, seed=seed),
            layers.RandomBrightness(0.25, value_range=(0, 255), seed=seed),
        ],
        name="augment",
    )


def make_dataset(images, targets, weights=None, *, batch_size: int, augmenter=None, shuffle: bool = False,
                 seed: int = 1337, batch_maps=()) -> tf_data.Dataset:
    """Batch (N, H, W) uint8 images with their targets; augment if an augmenter is given.

    Order is shuffle -> batch -> augment (vectorised on the batch) -> ``batch_maps`` in order
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

        def augment(x, *rest):
            x = augmenter(x, training=True)
            # Sensor noise of a few grey levels; Keras' GaussianNoise only takes stddev <= 1.
            x = x + noise.normal(tf.shape(x), stddev=NOISE_STDDEV)
            return (tf.clip_by_value(x, 0.0, 255.0), *rest)

        ds = ds.map(augment, num_parallel_calls=tf_data.AUTOTUNE)
    for batch_map in batch_maps:
        ds = ds.map(batch_map, num_parallel_calls=tf_data.AUTOTUNE)
    return ds.prefetch(tf_data.AUTOTUNE)
