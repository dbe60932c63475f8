import cv2
import numpy as np
import pytest

from emovid.emotions import EmotionClassifier
from emovid.errors import ModelError
from emovid.labels import EMOTIONS
from emovid.model_file import read_model_info
from tests.helpers import multi_face_crops
from tests.test_training_data import VOTES, write_ferplus
from training.data import LabelledFaces
from training.distill import distilled, mix_targets
from training.train import TrainConfig, train


def _one_hot(indices) -> np.ndarray:
    return np.eye(len(EMOTIONS), dtype=np.float32)[indices]


def test_mix_targets_interpolates_between_labels_and_teacher():
    labels = _one_hot([0, 3])
    teacher = np.full((2, len(EMOTIONS)), 1 / len(EMOTIONS), np.float32)
    np.testing.assert_allclose(mix_targets(labels, teacher, 0.0), labels)
    np.testing.assert_allclose(mix_targets(labels, teacher, 1.0), teacher)
    mixed = mix_targets(labels, teacher, 0.25)
    np.testing.assert_allclose(mixed[0, 0], 0.75 + 0.25 / len(EMOTIONS), rtol=1e-6)
    np.testing.assert_allclose(mixed.sum(axis=1), 1, rtol=1e-6)


@pytest.mark.parametrize("teacher_shape, weight, message", [((2, 7), 1.5, "weight"), ((3, 7), 0.5, "shapes")])
def test_mix_targets_rejects_bad_input(teacher_shape, weight, message):
    with pytest.raises(ValueError, match=message):
        mix_targets(_one_hot([0, 1]), np.zeros(teacher_shape, np.float32), weight)


def _faces(size: int) -> LabelledFaces:
    crops = [cv2.resize(cv2.cvtColor(c, cv2.COLOR_BGR2GRAY), (size, size), interpolation=cv2.INTER_AREA)
             for c in multi_face_crops()]
    n = len(crops)
    return LabelledFaces(np.stack(crops), _one_hot([0] * n), np.array([f"f{i}" for i in range(n)]),
                         np.zeros(n, int))


def test_distilled_targets_mix_the_teachers_uncorrected_probabilities_with_the_labels():
    data = _faces(48)
    teacher = EmotionClassifier.load("emovid_fer7_v2")  # has a prior correction (logit offsets)
    raw = teacher.without_prior_correction().predict_proba(data.images)
    assert not np.allclose(raw, teacher.predict_proba(data.images), atol=1e-3)
    soft = distilled(data, "emovid_fer7_v2", 0.6, crop_margin=0.1)
    np.testing.assert_allclose(soft.targets, 0.6 * raw + 0.4 * data.targets, atol=1e-5)
    assert soft.images is data.images and (soft.majority == data.majority).all()  # evaluation labels untouched


def test_distilled_rejects_a_teacher_for_other_crops():
    with pytest.raises(ModelError, match="input 48 px"):
        distilled(_faces(32), "emovid_fer7_v1", 0.5, crop_margin=0.1)


def test_distilled_warns_about_a_teacher_made_for_another_crop_margin(caplog):
    distilled(_faces(48), "emovid_fer7_v1", 0.5, crop_margin=0.1)
    assert "crop margin" not in caplog.text
    distilled(_faces(48), "emovid_fer7_v1", 0.5, crop_margin=0.3)
    assert "crop margin 0.1" in caplog.text


def test_train_config_rejects_a_bad_teacher_weight(tmp_path):
    with pytest.raises(ValueError, match="teacher_weight"):
        TrainConfig(data=tmp_path, out=tmp_path / "m.keras", teacher="emovid_fer7_v1", teacher_weight=2)


def test_training_with_a_teacher_records_it(tmp_path):
    data = write_ferplus(tmp_path / "split", VOTES * 2)
    out = tmp_path / "student.keras"
    train(TrainConfig(data=data, out=out, epochs=1, batch_size=8, teacher="emovid_fer7_v1", teacher_weight=0.5))
    config = read_model_info(out).training["config"]
    assert config["teacher"] == "emovid_fer7_v1" and config["teacher_weight"] == "0.5"
    assert EmotionClassifier.load(out).predict_proba(np.zeros((2, 48, 48), np.uint8)).shape == (2, 7)
