"""Weight averaging and batch-norm recalibration: exact statistics, untouched weights, one loadable file."""

import keras
import numpy as np
import pytest

from emovid.cli import main
from emovid.classify.emotions import EmotionClassifier
from emovid.errors import ModelError
from emovid.classify.model_file import onnx_precisions, read_model_info, write_model_info
from tests.helpers import saved_model
from emovid.training.model import make_model
from emovid.training.soup import average_weights, recalibrate_batch_norm, recalibration_batches, soup_models


def crops(n, seed=0, size=48):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size), dtype=np.uint8)


def batch_norm_inputs(model, x):
    """{layer name: its input (N, H, W, C)} in inference mode, for model inputs ``x`` (N, H, W, 1)."""
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    probe = keras.Model(model.input, [bn.input for bn in norms])
    return {bn.name: np.asarray(out) for bn, out in zip(norms, probe(x, training=False))}


def moving_statistics(model):
    return [v.numpy() for v in model.weights if "moving" in v.path]


def test_recalibration_batches_hold_every_crop_once_about_half_mirrored():
    images = crops(200)
    batches = list(recalibration_batches(images, batch_size=64, seed=5))
    assert [len(b) for b in batches] == [64, 64, 64, 8]
    seen = np.concatenate(batches)[..., 0]
    as_is = {im.tobytes(): i for i, im in enumerate(images)}
    flipped = {im[:, ::-1].tobytes(): i for i, im in enumerate(images)}
    found = [(as_is.get(b.astype(np.uint8).tobytes()), flipped.get(b.astype(np.uint8).tobytes())) for b in seen]
    assert sorted(a if a is not None else f for a, f in found) == list(range(200))
    assert 60 < sum(a is None for a, _ in found) < 140  # mirrored ones


def test_average_weights_is_the_mean_of_the_members():
    members = []
    for seed in (0, 1):
        keras.utils.set_random_seed(seed)
        members.append(make_model((48, 48, 1), 7))
    averaged = average_weights(members)
    assert averaged is not members[0]
    for a, b, mean in zip(members[0].get_weights(), members[1].get_weights(), averaged.get_weights()):
        np.testing.assert_allclose(mean, (a + b) / 2, rtol=1e-6)


def test_average_weights_refuses_different_architectures():
    with pytest.raises(ModelError, match="different architectures"):
        average_weights([make_model((48, 48, 1), 7), make_model((48, 48, 1), 6)])
    with pytest.raises(ValueError, match="at least one"):
        average_weights([])


def test_recalibration_sets_the_statistics_of_the_inference_network():
    keras.utils.set_random_seed(3)
    model = make_model((48, 48, 1), 7)
    images = crops(24)
    learned = [w.copy() for w, v in zip(model.get_weights(), model.weights) if "moving" not in v.path]
    assert recalibrate_batch_norm(model, images, batch_size=64, seed=2) == 1
    # One batch: each layer's moving statistics are that batch's moments, and the layers before it
    # normalise with the same moments in inference mode. Stage 2+ layers sit behind dropout, so
    # this also shows dropout was off.
    (batch,) = recalibration_batches(images, 64, seed=2)
    inputs = batch_norm_inputs(model, batch)
    assert len(inputs) == 8
    for bn in (layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)):
        x = inputs[bn.name]
        np.testing.assert_allclose(bn.moving_mean.numpy(), x.mean(axis=(0, 1, 2)), rtol=1e-3, atol=1e-4)
        np.testing.assert_allclose(bn.moving_variance.numpy(), x.var(axis=(0, 1, 2)), rtol=2e-3, atol=1e-5)
        assert bn.momentum == 0.99 and bn.trainable  # restored
    assert [layer.rate for layer in model.layers if isinstance(layer, (keras.layers.Dropout,
                                                                      keras.layers.SpatialDropout2D))] == [0.1] * 3 + [0.4]
    unchanged = [w for w, v in zip(model.get_weights(), model.weights) if "moving" not in v.path]
    assert all(np.array_equal(a, b) for a, b in zip(learned, unchanged))


def test_recalibration_weighs_every_crop_equally():
    keras.utils.set_random_seed(4)
    model = make_model((48, 48, 1), 7)
    images = crops(26, seed=1)
    assert recalibrate_batch_norm(model, images, batch_size=8, seed=1) == 4  # 8 + 8 + 8 + 2 crops
    first = next(layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization))
    # The first layer's input does not depend on any statistics: compare with its moments per batch.
    batches = list(recalibration_batches(images, 8, seed=1))
    per_batch = [batch_norm_inputs(model, b)[first.name] for b in batches]
    sizes = np.array([len(b) for b in batches], float)
    mean = np.average([x.mean(axis=(0, 1, 2)) for x in per_batch], axis=0, weights=sizes)
    variance = np.average([x.var(axis=(0, 1, 2)) for x in per_batch], axis=0, weights=sizes)
    np.testing.assert_allclose(first.moving_mean.numpy(), mean, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(first.moving_variance.numpy(), variance, rtol=2e-3, atol=1e-5)


def test_frozen_batch_norms_are_recalibrated_and_stay_frozen():
    model = make_model((48, 48, 1), 7)
    first = next(layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization))
    first.trainable = False
    recalibrate_batch_norm(model, crops(8))
    assert not first.trainable and not np.allclose(first.moving_variance.numpy(), 1.0)


@pytest.mark.parametrize("shape", [(0, 48, 48), (4, 40, 40), (4, 48, 48, 1)])
def test_recalibration_rejects_wrong_images(shape):
    with pytest.raises(ValueError, match="images"):
        recalibrate_batch_norm(make_model((48, 48, 1), 7), np.zeros(shape, np.uint8))


def test_soup_file_is_a_normal_model(tmp_path):
    members = [saved_model(tmp_path / f"m{i}.keras", i) for i in range(2)]
    images = crops(20)
    info = soup_models([tmp_path / "m0.keras", tmp_path / "m1.keras"], tmp_path / "s.keras", images,
                       version="3", flip_average=True)
    assert read_model_info(tmp_path / "s.keras") == info
    assert info.version == "3" and info.flip_average and info.logit_offsets is None
    assert [m["seed"] for m in info.training["weight_average_of"]] == [0, 1]
    assert info.training["batch_norm_recalibration"]["images"] == 20
    souped = keras.saving.load_model(tmp_path / "s.keras", compile=False)
    kernel = next(v for v in souped.weights if "kernel" in v.path)
    member_kernels = [next(v for v in m.weights if "kernel" in v.path).numpy() for m in members]
    np.testing.assert_allclose(kernel.numpy(), np.mean(member_kernels, axis=0), rtol=1e-6)
    # saved with the layers' own settings, and with recalibrated statistics (a second pass over
    # the same crops reproduces them; the members' own statistics are not reproduced)
    assert {layer.momentum for layer in souped.layers if isinstance(layer, keras.layers.BatchNormalization)} == {0.99}
    stored = moving_statistics(souped)
    recalibrate_batch_norm(souped, images)
    assert all(np.allclose(a, b, rtol=1e-4, atol=1e-5) for a, b in zip(stored, moving_statistics(souped)))
    assert not np.allclose(moving_statistics(members[0])[0], stored[0])
    assert EmotionClassifier.load(tmp_path / "s.keras").predict_proba(crops(3)).shape == (3, 7)
    with pytest.raises(ValueError, match=".keras"):
        soup_models([tmp_path / "m0.keras"], tmp_path / "s.h5", crops(2))


def test_soup_command(tmp_path, capsys):
    from tests.helpers import write_ferplus

    one_per_class = [[10 * (column == c) for column in range(10)] for c in range(7)]
    data = write_ferplus(tmp_path / "fer", one_per_class * 2)
    for i in range(2):
        saved_model(tmp_path / f"m{i}.keras", i)
    out = tmp_path / "s.keras"
    assert main(["soup", str(tmp_path / "m0.keras"), str(tmp_path / "m1.keras"), "--data", str(data),
                 "--out", str(out), "--flip-average", "--prior-correction", "0.1"]) == 0
    info = read_model_info(out)
    assert info.flip_average and info.logit_offsets is not None
    assert info.training["batch_norm_recalibration"]["images"] == 14
    assert "weight mean of 2 checkpoint(s)" in capsys.readouterr().err
    assert onnx_precisions(out) == ("fp32", "int8")  # quantised on the same training crops


def test_quantize_command_adds_an_int8_graph_to_a_model_file(tmp_path, capsys):
    """`emovid quantize` gives any model file (here an ensemble's, which has none) its int8
    graph; the file stays a loadable model and its fp32 graph is untouched."""
    from emovid.classify.emotions import EmotionClassifier
    from emovid.classify.model_file import read_onnx
    from tests.helpers import write_ferplus

    data = write_ferplus(tmp_path / "fer", [[10 * (column == c) for column in range(10)] for c in range(7)] * 3)
    for i in range(2):
        saved_model(tmp_path / f"m{i}.keras", i)
    model = tmp_path / "e.keras"
    assert main(["ensemble", str(tmp_path / "m0.keras"), str(tmp_path / "m1.keras"), "--out", str(model)]) == 0
    fp32 = read_onnx(model)
    assert onnx_precisions(model) == ("fp32",)
    with pytest.raises(ModelError, match="no int8 graph"):
        EmotionClassifier.load(model, precision="int8")
    assert main(["quantize", str(model), "--data", str(data)]) == 0
    assert "added an int8 graph" in capsys.readouterr().err
    assert onnx_precisions(model) == ("fp32", "int8") and read_onnx(model) == fp32
    crops = np.random.default_rng(1).integers(0, 256, (8, 64, 64), np.uint8)
    int8 = EmotionClassifier.load(model, precision="int8").predict_proba(crops)
    assert not np.array_equal(int8, EmotionClassifier.load(model, precision="fp32").predict_proba(crops))
    assert np.allclose(int8.sum(axis=1), 1, atol=1e-5)  # closeness to fp32: tested on the shipped model


def test_soup_warns_about_checkpoints_of_different_runs(tmp_path, caplog):
    from dataclasses import replace

    from tests.helpers import INFO

    for i, seed in enumerate(["7", "7", "1337"]):
        saved_model(tmp_path / f"m{i}.keras", i)
        write_model_info(tmp_path / f"m{i}.keras", replace(INFO, training={"config": {"seed": seed}}))
    with caplog.at_level("WARNING", logger="training.soup"):
        soup_models([tmp_path / "m0.keras", tmp_path / "m1.keras"], tmp_path / "same.keras", crops(4))
    assert "different seeds" not in caplog.text
    with caplog.at_level("WARNING", logger="training.soup"):
        soup_models([tmp_path / "m0.keras", tmp_path / "m2.keras"], tmp_path / "mixed.keras", crops(4))
    assert "different seeds (1337, 7)" in caplog.text
