import zipfile

import numpy as np
import pytest

from emovid.classify.emotions import EmotionClassifier
from emovid.classify.labels import EMOTIONS
from tests.helpers import VOTES, write_ferplus
from emovid.training.evaluate import EvalReport, evaluate_folder
from emovid.training.model import make_model
from emovid.training.train import TrainConfig, class_weights, train


def test_make_model_outputs_logits_for_raw_pixels():
    model = make_model((48, 48, 1), 7)
    assert model.input_shape == (None, 48, 48, 1) and model.output_shape == (None, 7)
    assert model.layers[1].__class__.__name__ == "Rescaling"  # preprocessing inside the model
    assert model.get_layer("emotion_logits").get_config()["activation"] == "linear"


@pytest.mark.parametrize("shape, classes", [((48, 48, 3), 7), ((48, 48), 7), ((48, 48, 1), 1)])
def test_make_model_rejects_bad_shapes(shape, classes):
    with pytest.raises(ValueError):
        make_model(shape, classes)


def test_class_weights_favour_rare_classes():
    targets = np.eye(7, dtype=np.float32)[[0] * 90 + [5] * 10]
    weights = class_weights(targets, 0.5)
    assert weights[5] > weights[0]
    assert (targets @ weights).mean() == pytest.approx(1.0)
    np.testing.assert_allclose(class_weights(targets, 0.0), 1.0)


def test_a_trained_model_is_named_after_its_file_by_default(tmp_path):
    config = TrainConfig(data=tmp_path, out=tmp_path / "mine_v2.keras")
    assert (config.name, config.version) == ("mine_v2", "1")  # not the bundled models' emovid-fer7


@pytest.mark.parametrize("kwargs, message", [({"epochs": 0}, "epochs"), ({"out": "m.h5"}, ".keras"),
                                             ({"validation_split": 1.0}, "validation_split"),
                                             ({"name": " "}, "name and version")])
def test_train_config_validation(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**{"data": tmp_path, "out": tmp_path / "m.keras", **kwargs})


def test_smoke_training_writes_a_loadable_model_and_evaluates(tmp_path):
    data = write_ferplus(tmp_path / "split", VOTES * 4)
    out = tmp_path / "models" / "smoke.keras"
    info = train(TrainConfig(data=data, out=out, epochs=1, batch_size=8, name="smoke", version="0"))
    assert info.classes == EMOTIONS and out.is_file()
    with zipfile.ZipFile(out) as zf:
        sizes = {i.filename: i.compress_size for i in zf.infolist()}
    fp32 = sizes.pop("emovid.onnx")
    assert fp32 > 1_000_000  # the network exported for onnxruntime
    assert 0 < sizes.pop("emovid.int8.onnx") < fp32 / 2  # and quantised, calibrated on the training crops
    assert sum(sizes.values()) < 6_000_000  # no optimizer state in the shipped file
    classifier = EmotionClassifier.load(out, precision="fp32")
    assert classifier.name == "smoke:0" and classifier.backend == "onnxruntime"
    crops = np.random.default_rng(0).integers(0, 256, (16, 64, 64), np.uint8)
    probs = classifier.predict_proba(crops)
    np.testing.assert_allclose(probs.sum(axis=1), 1, atol=1e-5)
    # the int8 graph loads and runs (how close it stays to fp32 is tested on the shipped model's real
    # faces: a one-epoch network on 12 images has no settled activation ranges to judge it by)
    int8 = EmotionClassifier.load(out, precision="int8").predict_proba(crops)
    assert not np.array_equal(probs, int8) and np.allclose(int8.sum(axis=1), 1, atol=1e-5)
    report = evaluate_folder(data, tmp_path / "eval", model=out)
    assert report.n == 12 and (tmp_path / "eval" / "confusion.png").stat().st_size > 1000
    assert (tmp_path / "eval" / "metrics.json").is_file()


def test_eval_report_metrics():
    true = np.array([0, 0, 1, 1, 5])
    pred = np.array([0, 1, 1, 1, 0])
    report = EvalReport.from_predictions(true, pred)
    assert report.accuracy == pytest.approx(3 / 5)
    assert report.recall[0] == pytest.approx(0.5) and report.recall[1] == 1.0 and report.recall[5] == 0.0
    assert report.precision[1] == pytest.approx(2 / 3)
    assert report.mean_recall == pytest.approx((0.5 + 1 + 0) / 3)  # classes absent from the set are ignored
    assert report.confusion.sum() == 5 and report.confusion[5, 0] == 1


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    """One epoch on a small FER+ split: (its data folder, its model file), shared by the tests below."""
    root = tmp_path_factory.mktemp("plain")
    data = write_ferplus(root / "split", VOTES * 4)
    train(TrainConfig(data=data, out=root / "plain.keras", epochs=1, batch_size=8))
    return data, root / "plain.keras"


def test_fine_tuning_starts_from_given_weights(tmp_path, plain):
    import keras

    data, first = plain
    second = tmp_path / "second.keras"
    train(TrainConfig(data=data, out=second, epochs=1, batch_size=8, learning_rate=1e-9, init_from=first))
    a = keras.saving.load_model(first).get_weights()
    b = keras.saving.load_model(second).get_weights()
    # a near-zero learning rate keeps the conv kernels where fine-tuning started
    np.testing.assert_allclose(a[0], b[0], atol=1e-4)


@pytest.mark.parametrize("recalibrate", [True, False])
def test_training_ends_with_batch_norm_statistics_of_the_clean_training_crops(tmp_path, recalibrate):
    import keras

    from emovid.training.data import load_ferplus
    from emovid.training.soup import recalibrate_batch_norm

    root = tmp_path / "fer"
    write_ferplus(root / "FER2013Train", VOTES * 4)
    write_ferplus(root / "FER2013Valid", VOTES)
    out = tmp_path / "m.keras"
    info = train(TrainConfig(data=root, out=out, epochs=1, batch_size=8, recalibrate=recalibrate))
    saved = keras.saving.load_model(out, compile=False)
    moving = [v.numpy() for v in saved.weights if "moving" in v.path]
    # Recalibrating the saved model again reproduces its statistics only if training already did.
    recalibrate_batch_norm(saved, load_ferplus(root / "FER2013Train").images)
    again = [v.numpy() for v in saved.weights if "moving" in v.path]
    same = all(np.allclose(a, b, rtol=1e-4, atol=1e-5) for a, b in zip(moving, again))
    assert same == recalibrate
    details = info.training.get("batch_norm_recalibration")
    assert (details is not None) == recalibrate
    if recalibrate:
        assert details["images"] == 16 and 0 <= details["val_acc_after"] <= 1


def test_with_mix_repeats_the_photos_with_smoothed_labels():
    from emovid.training.data import LabelledFaces
    from emovid.training.train import with_mix

    main = LabelledFaces(np.zeros((5, 48, 48), np.uint8), np.full((5, 7), 1 / 7, np.float32),
                         np.array(["m"] * 5, dtype=object), np.zeros(5, int))
    photos = LabelledFaces(np.ones((2, 48, 48), np.uint8), np.eye(7, dtype=np.float32)[[5, 6]],
                           np.array(["p0", "p1"], dtype=object), np.array([5, 6]))
    mixed = with_mix(main, photos, repeat=3, smoothing=0.3)
    assert len(mixed) == 5 + 3 * 2 and list(mixed.names[5:]) == ["p0", "p1"] * 3
    np.testing.assert_allclose(mixed.targets[5], [0.3 / 7] * 5 + [0.7 + 0.3 / 7, 0.3 / 7], rtol=1e-6)
    np.testing.assert_allclose(mixed.targets.sum(axis=1), 1, rtol=1e-6)


def test_training_with_mix_adds_class_folder_photos_but_keeps_the_main_prior(tmp_path, plain):
    import cv2

    from emovid.classify.model_file import read_model_info

    data, plain_model = plain
    for emotion in ("disgust", "fear"):
        (tmp_path / "mine" / emotion).mkdir(parents=True)
        for i in range(3):  # face crops already: used whole
            cv2.imwrite(str(tmp_path / "mine" / emotion / f"{i}.png"), np.full((48, 48), 40 * i, np.uint8))
    out = tmp_path / "mixed.keras"
    mixed = TrainConfig(data=data, out=out, epochs=1, batch_size=8, mix=(tmp_path / "mine",), mix_repeat=2)
    train(mixed)
    before, after = read_model_info(plain_model), read_model_info(out)
    assert after.training["train_images"] == before.training["train_images"] + 2 * 6
    assert after.class_prior == before.class_prior  # --prior undoes FER+'s prior, not the mix's
    with pytest.raises(ValueError, match="mix_smoothing"):
        TrainConfig(data=data, out=out, mix_smoothing=1.0)
