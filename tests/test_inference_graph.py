"""Batch-norm folding: same outputs, no BatchNormalization left where a conv feeds it."""

import keras
import numpy as np
import pytest

from emovid.classify.inference_graph import all_layers, fold_batch_norms
from emovid.training.model import make_model
from tests.helpers import randomise_batch_norms


def batch_norms(model):
    return [layer for layer in all_layers(model) if isinstance(layer, keras.layers.BatchNormalization)]


@pytest.fixture(scope="module")
def trained_like():
    model = make_model((48, 48, 1), 7)
    randomise_batch_norms(model, 0)
    return model


def test_folded_model_gives_the_same_logits(trained_like):
    x = np.random.default_rng(1).integers(0, 256, (16, 48, 48, 1)).astype("float32")
    folded = fold_batch_norms(trained_like)
    assert len(batch_norms(trained_like)) == 8 and batch_norms(folded) == []
    np.testing.assert_allclose(folded(x), trained_like(x, training=False), rtol=1e-4, atol=1e-4)


def test_nested_models_are_folded_and_other_batch_norms_kept(trained_like):
    other = make_model((48, 48, 1), 7)
    randomise_batch_norms(other, 2)
    other = keras.Model(other.input, other.output, name="second")
    face = keras.Input((48, 48, 1))
    averaged = keras.layers.Average()([trained_like(face), other(face)])
    head_bn = keras.layers.BatchNormalization()  # after a Dense: nothing to fold into
    ensemble = keras.Model(face, head_bn(averaged))
    head_bn.set_weights([np.full(7, 2.0), np.ones(7), np.zeros(7), np.full(7, 4.0)])
    folded = fold_batch_norms(ensemble)
    assert batch_norms(folded) == [folded.layers[-1]]
    x = np.random.default_rng(3).integers(0, 256, (8, 48, 48, 1)).astype("float32")
    np.testing.assert_allclose(folded(x), ensemble(x, training=False), rtol=1e-4, atol=1e-4)


def test_a_model_without_batch_norm_is_returned_as_is():
    face = keras.Input((8, 8, 1))
    model = keras.Model(face, keras.layers.Conv2D(2, 3)(face))
    assert fold_batch_norms(model) is model
