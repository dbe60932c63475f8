"""The emotion CNN: a ``make_model`` factory in the keras-io style.

The model takes raw grayscale pixels (0..255) and scales them itself, so inference in the
workers cannot drift from training. It outputs logits named ``emotion_logits``.
"""

from __future__ import annotations

import keras
from keras import layers

#: Filters per stage; each stage is two 3x3 conv + BN + ReLU, then 2x2 max pooling.
STAGE_WIDTHS = (32, 64, 128, 256)


def _conv_bn_relu(x, filters: int):
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    return layers.ReLU()(x)


def make_model(input_shape: tuple[int, int, int], num_classes: int, dropout: float = 0.4,
               widths: tuple[int, ...] = STAGE_WIDTHS, dense_units: int = 0) -> keras.Model:
    """Build the uncompiled VGG-style emotion CNN.

    Args:
        input_shape: (H, W, 1) grayscale input.
        num_classes: number of emotion classes.
        dropout: dropout rate before the classifier.
        widths: filters of each stage (its length is the depth); the default is the shipped network's.
        dense_units: width of a hidden dense layer before the classifier (0: none, as shipped).

    Returns:
        A functional ``keras.Model`` mapping raw pixels to logits.
    """
    if len(input_shape) != 3 or input_shape[-1] != 1:
        raise ValueError(f"input_shape: expected (H, W, 1), got {input_shape}")
    if num_classes < 2:
        raise ValueError(f"num_classes: expected >= 2, got {num_classes}")
    if not widths or any(w < 1 for w in widths) or dense_units < 0:
        raise ValueError(f"widths: expected positive filter counts, dense_units >= 0; got {widths}, {dense_units}")
    inputs = keras.Input(shape=input_shape, name="face")
    x = layers.Rescaling(1.0 / 255)(inputs)
    for stage, width in enumerate(widths):
        x = _conv_bn_relu(x, width)
        x = _conv_bn_relu(x, width)
        if stage < len(widths) - 1:
            x = layers.MaxPooling2D()(x)
            x = layers.SpatialDropout2D(0.1)(x)
    x = layers.GlobalAveragePooling2D()(x)
    if dense_units:
        x = layers.Dense(dense_units, activation="relu")(x)
    x = layers.Dropout(dropout)(x)
    outputs = layers.Dense(num_classes, name="emotion_logits")(x)
    return keras.Model(inputs, outputs, name="emovid_cnn")
