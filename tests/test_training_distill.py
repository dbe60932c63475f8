import cv2
import numpy as np
import pytest
import tensorflow as tf

from emovid.assets import DEFAULT_MODEL_NAME, bundled
from emovid.classify.emotions import EmotionClassifier
from emovid.errors import ModelError
from emovid.classify.labels import EMOTIONS
from emovid.classify.model_file import read_model_info
from tests.helpers import multi_face_crops
from tests.helpers import VOTES, write_ferplus
from emovid.training.augment import make_augmenter, make_dataset
from emovid.training.distill import consistent_targets, mixup, teacher_probabilities, training_maps
from emovid.training.train import TrainConfig, train


#: A teacher whose predictions follow the pixels (a random small network's barely do).
TEACHER = "emovid_fer7_v7"
CROP_MARGIN = read_model_info(bundled(DEFAULT_MODEL_NAME)).crop_margin


def _one_hot(indices) -> np.ndarray:
    return np.eye(len(EMOTIONS), dtype=np.float32)[indices]


def _crops(size: int) -> np.ndarray:
    return np.stack([cv2.resize(cv2.cvtColor(c, cv2.COLOR_BGR2GRAY), (size, size), interpolation=cv2.INTER_AREA)
                     for c in multi_face_crops()])


def test_teacher_probabilities_are_the_teachers_uncorrected_predictions(small_model_file):
    crops = _crops(48)
    teacher = EmotionClassifier.load(small_model_file)  # has a prior correction (logit offsets)
    raw = teacher.without_prior_correction().predict_proba(crops)
    assert not np.allclose(raw, teacher.predict_proba(crops), atol=1e-3)
    probabilities = teacher_probabilities(str(small_model_file), 48, crop_margin=0.1)
    got = probabilities(tf.constant(crops[..., None], tf.float32)).numpy()
    np.testing.assert_allclose(got, raw, atol=1e-5)


def test_teacher_probabilities_reject_a_teacher_for_other_crops(small_model_file):
    with pytest.raises(ModelError, match="input 48 px"):
        teacher_probabilities(str(small_model_file), 32, crop_margin=0.1)


def test_teacher_probabilities_warn_about_a_teacher_made_for_another_crop_margin(small_model_file, caplog):
    teacher_probabilities(str(small_model_file), 48, crop_margin=0.1)
    assert "crop margin" not in caplog.text
    teacher_probabilities(str(small_model_file), 48, crop_margin=0.3)
    assert "crop margin 0.1" in caplog.text


def test_the_teacher_judges_each_augmented_batch_itself():
    """Consistent teaching: the targets follow the augmented pixels the student gets, not the originals."""
    crops = _crops(48)
    labels = _one_hot([0] * len(crops))
    weights = np.ones(len(crops), np.float32)
    probabilities = teacher_probabilities(TEACHER, 48, crop_margin=CROP_MARGIN)
    ds = make_dataset(crops, labels, weights, batch_size=len(crops), augmenter=make_augmenter(seed=3),
                      batch_maps=[consistent_targets(probabilities, 0.6)])
    x, targets, _ = next(iter(ds))
    assert not np.allclose(x.numpy()[..., 0], crops)  # augmented
    teacher = EmotionClassifier.load(TEACHER, backend="tensorflow").without_prior_correction()  # as teachers teach
    teacher_on_x = teacher.predict_proba(x.numpy()[..., 0])
    np.testing.assert_allclose(targets.numpy(), 0.6 * teacher_on_x + 0.4 * labels, atol=1e-2)  # one side may run in bf16
    on_originals = teacher.predict_proba(crops)
    assert np.abs(targets.numpy() - (0.6 * on_originals + 0.4 * labels)).max() > 5e-2


def test_mixup_blends_images_targets_and_weights_with_one_share():
    n = 16
    share_of = np.arange(n, dtype=np.float32) / (n - 1)
    # Image i is flat grey at 100 a_i, its target puts a_i on the first class and its weight is 1 + a_i:
    # any blend that uses one share for all three keeps them on the same lines.
    x = tf.constant(np.broadcast_to(100 * share_of[:, None, None, None], (n, 4, 4, 1)).copy())
    targets = np.zeros((n, len(EMOTIONS)), np.float32)
    targets[:, 0], targets[:, 1] = share_of, 1 - share_of
    weights = 1 + share_of
    mixed_x, mixed_targets, mixed_weights = (t.numpy() for t in mixup(0.5, seed=1)(x, tf.constant(targets),
                                                                                  tf.constant(weights)))
    assert mixed_x.shape == (n, 4, 4, 1) and (mixed_x == mixed_x[:, :1, :1]).all()  # still flat
    a = mixed_x[:, 0, 0, 0] / 100
    np.testing.assert_allclose(mixed_targets[:, 0], a, atol=1e-5)
    np.testing.assert_allclose(mixed_targets.sum(axis=1), 1, rtol=1e-6)
    np.testing.assert_allclose(mixed_weights, 1 + a, atol=1e-5)
    moved = np.abs(a - share_of)
    assert (moved > 1e-3).sum() >= n // 2  # images are blended...
    # ...but each keeps at least half of itself: it moves at most half way to the farthest partner.
    assert (moved <= 0.5 * np.maximum(share_of, 1 - share_of) + 1e-5).all()


def test_mixup_draws_new_blends_each_epoch():
    """Keras starts a new iterator each epoch: the blends must not repeat with it."""
    x = np.arange(8 * 4, dtype=np.uint8).reshape(8, 2, 2) * 7
    targets = _one_hot(np.arange(8) % len(EMOTIONS))
    ds = make_dataset(x, targets, np.ones(8, np.float32), batch_size=8, batch_maps=[mixup(0.5, seed=1)])
    first, second = (next(iter(ds))[0].numpy() for _ in range(2))
    assert not np.allclose(first, second)


def test_the_teacher_judges_the_mixed_images():
    """Mixup runs before the teacher: targets are the teacher's view of the blend, not a blend of its views."""
    crops = _crops(48)
    labels = _one_hot(np.arange(len(crops)) % len(EMOTIONS))
    maps = training_maps(TEACHER, 1.0, 0.5, 48, crop_margin=CROP_MARGIN, seed=2)
    ds = make_dataset(crops, labels, np.ones(len(crops), np.float32), batch_size=len(crops), batch_maps=maps)
    x, targets, _ = next(iter(ds))
    assert not np.allclose(x.numpy()[..., 0], crops)  # blended
    teacher = EmotionClassifier.load(TEACHER, backend="tensorflow").without_prior_correction()  # as teachers teach
    np.testing.assert_allclose(targets.numpy(), teacher.predict_proba(x.numpy()[..., 0]), atol=1e-2)
    assert training_maps(None, 0.7, 0, 48, crop_margin=0.1, seed=2) == []


@pytest.mark.parametrize("make, message", [
    (lambda: consistent_targets(lambda x: x, 1.5), "weight"),
    (lambda: mixup(0, seed=1), "alpha"),
    (lambda: mixup(float("nan"), seed=1), "alpha"),
])
def test_batch_maps_reject_bad_settings(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize("field, value", [("teacher_weight", 2), ("mixup", -0.1), ("mixup", float("inf"))])
def test_train_config_rejects_bad_distillation_settings(tmp_path, small_model_file, field, value):
    with pytest.raises(ValueError, match=field):
        TrainConfig(data=tmp_path, out=tmp_path / "m.keras", teacher=str(small_model_file), **{field: value})


def test_training_with_a_teacher_and_mixup_records_them(tmp_path, small_model_file):
    data = write_ferplus(tmp_path / "split", VOTES * 2)
    out = tmp_path / "student.keras"
    train(TrainConfig(data=data, out=out, epochs=1, batch_size=8, teacher=str(small_model_file), teacher_weight=0.5,
                      mixup=0.3))
    config = read_model_info(out).training["config"]
    assert (config["teacher"], config["teacher_weight"], config["mixup"]) == (str(small_model_file), "0.5", "0.3")
    assert EmotionClassifier.load(out).predict_proba(np.zeros((2, 48, 48), np.uint8)).shape == (2, 7)
