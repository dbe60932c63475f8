"""Averaging models into one file: same metadata contract, mean logits, clear refusals."""

from dataclasses import replace

import numpy as np
import pytest

from emovid.cli import main
from emovid.classify.emotions import EmotionClassifier, to_model_input
from emovid.errors import ModelError
from emovid.classify.labels import EMOTIONS
from emovid.classify.model_file import read_model_info
from tests.helpers import INFO, saved_model
from emovid.training.ensemble import average_models, prior_offsets


def test_ensemble_outputs_the_mean_of_its_members(tmp_path):
    members = [saved_model(tmp_path / f"m{i}.keras", i) for i in range(2)]
    offsets = prior_offsets(np.array([0.5, 0.2, 0.1, 0.1, 0.05, 0.02, 0.03]), 0.5)
    assert offsets[0] < offsets[1] < offsets[2] and offsets[5] == max(offsets)  # rare classes get the largest boost
    info = average_models([tmp_path / "m0.keras", tmp_path / "m1.keras"], tmp_path / "e.keras", version="2",
                          logit_offsets=offsets)
    assert read_model_info(tmp_path / "e.keras") == info
    assert info.version == "2" and [m["seed"] for m in info.training["ensemble_of"]] == [0, 1]
    crops = [np.random.default_rng(i).integers(0, 256, (60, 50), dtype=np.uint8) for i in range(5)]
    x = to_model_input(crops, 48)
    mean_logits = np.mean([m(x, training=False) for m in members], axis=0) + np.array(offsets)
    expected = np.exp(mean_logits) / np.exp(mean_logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(EmotionClassifier.load(tmp_path / "e.keras").predict_proba(crops), expected, atol=0.02)


def test_members_must_agree_and_be_two_or_more(tmp_path):
    saved_model(tmp_path / "a.keras", 0)
    saved_model(tmp_path / "b.keras", 1, replace(INFO, classes=EMOTIONS[:6]))
    with pytest.raises(ModelError, match="differ"):
        average_models([tmp_path / "a.keras", tmp_path / "b.keras"], tmp_path / "e.keras")
    with pytest.raises(ValueError, match="at least 2"):
        average_models([tmp_path / "a.keras"], tmp_path / "e.keras")
    assert not (tmp_path / "e.keras").exists()


def test_ensemble_command(tmp_path, capsys):
    for i in range(2):
        saved_model(tmp_path / f"m{i}.keras", i)
    out = tmp_path / "e.keras"
    assert main(["ensemble", str(tmp_path / "m0.keras"), str(tmp_path / "m1.keras"), "--out", str(out),
                 "--name", "emovid-x", "--flip-average"]) == 0
    info = read_model_info(out)
    assert info.name == "emovid-x" and info.flip_average
    assert "mean of 2 models" in capsys.readouterr().err


def test_logit_offsets_must_match_the_classes():
    with pytest.raises(ValueError, match="logit_offsets"):
        replace(INFO, logit_offsets=(0.1, 0.2))
