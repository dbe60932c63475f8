"""Cross-domain evaluation helpers: temperature fitting, the prior sweep and the operating-point rule."""

import sys
from pathlib import Path

import numpy as np
import pytest

from emovid.classify.labels import EMOTIONS
from emovid.training.evaluate import EvalReport, expected_calibration_error
from tests.helpers import SEED, SHARED

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))  # as running a benchmark does
from crossdomain import (LabelledSet, fit_temperature, operating_point, prior_sweep,  # noqa: E402
                         score_table, standard_sets)


def _sampled(logits, rng):
    z = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    return np.array([rng.choice(len(row), p=row) for row in p])


def test_fit_temperature_recovers_the_true_scale():
    rng = np.random.default_rng(0)
    true_logits = rng.normal(0, 2, (4000, 5))
    labels = _sampled(true_logits, rng)
    # a model that is twice as confident as it should be needs temperature 2
    assert fit_temperature({"a": true_logits * 2}, {"a": labels}) == pytest.approx(2.0, abs=0.15)
    # sets weigh the same: a big set at T=1 and a small one at T=2 meet in between
    small = true_logits[:500] * 2
    both = fit_temperature({"big": true_logits, "small": small}, {"big": labels, "small": labels[:500]})
    assert 1.0 < both < 2.0


def test_ece_is_zero_for_perfect_calibration_and_large_for_overconfidence():
    true = np.array([0, 1, 0, 1])
    assert expected_calibration_error(np.eye(2)[true], true) == 0
    wrong = np.eye(2)[1 - true]
    assert expected_calibration_error(wrong, true) == pytest.approx(1.0)


def test_prior_sweep_and_operating_point_use_every_set():
    # class 1 is rare in training (prior 0.1); "other" needs some of that prior undone, "home" not much
    prior = np.array([0.9, 0.1])
    home = {"z": np.array([[2.0, 0.0]] * 9 + [[0.0, 0.5]]), "y": np.array([0] * 9 + [1])}
    other = {"z": np.array([[1.5, 0.0]] * 5 + [[0.5, 0.0]] * 5), "y": np.array([0] * 5 + [1] * 5)}
    sweep = prior_sweep({"home": home["z"], "other": other["z"]}, {"home": home["y"], "other": other["y"]},
                        prior, [0.0, 0.5, 1.0])
    assert [row["tau"] for row in sweep] == [0.0, 0.5, 1.0]
    assert [row["other"][1] for row in sweep] == [0.5, 1.0, 0.5]
    assert [row["home"][0] for row in sweep] == [1.0, 1.0, 0.1]  # tau 1 calls every home face rare
    assert operating_point(sweep, in_domain="home") == 0.5
    # with only tau 0 and 1 on offer, 1 costs home 90 points of accuracy: it is never chosen
    assert operating_point([sweep[0], sweep[2]], in_domain="home") == 0.0


def test_score_table_lists_every_model_and_set():
    report = EvalReport.from_probabilities(np.array([0, 1]), np.eye(len(EMOTIONS))[[0, 2]])
    text = score_table({"m1": {"A": report, "B": report}, "m2": {"A": report, "B": report}})
    assert text.count("| m1 |") == 3 and "A acc / mean recall / ECE" in text and "50.0% / 0.500" in text


@pytest.mark.skipif(not (SEED / "live-test").is_dir(), reason=f"seed photos not found under {SEED}")
def test_seed_photos_through_detection(tmp_path):
    from emovid.classify.emotions import EmotionClassifier

    seed = next(s for s in standard_sets(SHARED) if s.name == "seed photos")
    assert isinstance(seed, LabelledSet) and seed.available()
    faces = seed.load(48, 0.1)
    assert 55 <= len(faces) <= 60 and set(np.unique(faces.majority)) == {1, 2, 3, 4, 5, 6}  # no neutral
    report = EvalReport.from_probabilities(faces.majority, EmotionClassifier.load().predict_proba(faces.images))
    assert report.accuracy > 0.4 and 0 <= report.ece <= 1
