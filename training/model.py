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


def make_model(input_shape: tuple[int, int, int], num_classes: int, dropout: float = 0.4) -> keras.Model:
    """Build the uncompiled VGG-style emotion CNN.

    Args:
        input_shape: (H, W, 1) grayscale input.
        num_classes: number of emotion classes.
        dropout: dropout rate before the classifier.

    Returns:
        A functional ``keras.Model`` mapping raw pixels to logits.
    """
    if len(input_shape) != 3 or input_shape[-1] != 1:
        raise ValueError(f"input_shape: expected (H, W, 1), got {input_shape}")
    if num_classes < 2:
        raise ValueError(f"num_classes: expected >= 2, got {num_classes}")
    inputs = keras.Input(shape=input_shape, name="face")
    x = layers.Rescaling(1.0 / 255)(inputs)
    for stage, width in enumerate(STAGE_WIDTHS):
        x = _conv_bn_relu(x, width)
        x = _conv_bn_relu(x, width)
        if stage < len(STAGE_WIDTHS) - 1:
            x = layers.MaxPooling2D()(x)
            x = layers.SpatialDropout2D(0.1)(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(dropout)(x)
    outputs = layers.Dense(num_classes, name="emotion_logits")(x)
    return keras.Model(inputs, outputs, name="emovid_cnn")
