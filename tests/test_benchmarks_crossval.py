"""Cross-validation helpers of the model-card benchmarks: folds and the out-of-fold sweep."""

import sys
from pathlib import Path

import numpy as np
import pytest

from emovid.training.data import LabelledFaces

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))  # as running a benchmark does
from crossval import FoldLogits, cv_sweep, stratified_folds  # noqa: E402


def _faces(labels, names=None):
    n = len(labels)
    names = np.array(names if names is not None else [f"f{i}.jpg" for i in range(n)], dtype=object)
    return LabelledFaces(np.zeros((n, 4, 4), np.uint8), np.eye(7, dtype=np.float32)[labels], names,
                         np.asarray(labels))


def test_stratified_folds_spread_each_class_and_do_not_depend_on_read_order():
    labels = [0] * 30 + [5] * 7 + [6] * 3
    faces = _faces(labels)
    folds = stratified_folds(faces, 3)
    for c, n in ((0, 30), (5, 7), (6, 3)):
        counts = np.bincount(folds[np.asarray(labels) == c], minlength=3)
        assert counts.sum() == n and counts.max() - counts.min() <= 1
    order = np.random.default_rng(1).permutation(len(labels))
    shuffled = _faces(np.asarray(labels)[order], faces.names[order])
    assert (stratified_folds(shuffled, 3) == folds[order]).all()
    with pytest.raises(ValueError, match="folds"):
        stratified_folds(faces, 1)


def test_cv_sweep_scores_held_out_photos_once_and_averages_the_fold_models(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 7, 40)
    perfect = np.eye(7)[y] * 5
    folds = [FoldLogits(k, perfect, y, np.eye(7)[y[k::2]] * 5 if k == 0 else np.zeros((20, 7)), y[k::2],
                        perfect if k == 0 else -perfect, y) for k in range(2)]
    for f in folds:
        f.save(tmp_path)
    loaded = [FoldLogits.load(tmp_path, k) for k in range(2)]
    row = cv_sweep(loaded, np.full(7, 1 / 7), [0.0], 1.0)[0]
    assert row["FER+ Valid"] == (1.0, 1.0)  # both fold models perfect there
    assert row["seed photos"][0] == pytest.approx(np.mean([1.0, np.mean(np.argmax(-perfect, 1) == y)]))
    # out of fold: fold 0's 20 photos right, fold 1's (all-zero logits -> class 0) right only where y == 0
    assert row["wild (out of fold)"][0] == pytest.approx((20 + np.sum(y[1::2] == 0)) / 40)


def test_cv_sweep_joins_seed_photos_scored_out_of_fold():
    y = np.array([1, 2, 3, 4, 5, 6])
    # fold 0 holds photos 0-1 (both right), fold 1 photos 2-5 (all wrong)
    right, wrong = np.eye(7)[y[:2]] * 5, np.eye(7)[(y[2:] + 1) % 7] * 5
    valid = np.eye(7)[y] * 5
    folds = [FoldLogits(0, valid, y, right, y[:2], right, y[:2]), FoldLogits(1, valid, y, wrong, y[2:], wrong, y[2:])]
    joined = cv_sweep(folds, np.full(7, 1 / 7), [0.0], 1.0, seed_out_of_fold=True)[0]
    assert joined["seed photos"][0] == pytest.approx(2 / 6)  # each photo once
    assert joined["wild (out of fold)"] == joined["seed photos"]
    averaged = cv_sweep(folds, np.full(7, 1 / 7), [0.0], 1.0)[0]
    assert averaged["seed photos"][0] == pytest.approx((1 + 0) / 2)  # the mean of the two fold models' scores
    assert averaged["FER+ Valid"] == (1.0, 1.0)
