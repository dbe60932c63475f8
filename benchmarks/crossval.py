"""K-fold cross-validation of training on FER+ plus labelled photos of another domain.

Used to measure ``emovid train --mix`` honestly: each fold's model is fine-tuned on FER+ Train
plus the photos of the other folds, and scored on its own fold's photos, which it never saw.
Every photo is scored once, by the model that did not train on it (out-of-fold scores).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emovid.training.data import LabelledFaces


def stratified_folds(faces: LabelledFaces, k: int, seed: int = 0) -> np.ndarray:
    """A fold index (0..k-1) per image, each class spread evenly over the folds; stable for a
    given set of file names and seed, whatever order the images were read in."""
    if k < 2:
        raise ValueError(f"k: expected >= 2 folds, got {k}")
    rng = np.random.default_rng(seed)
    fold = np.empty(len(faces), int)
    for c in range(faces.targets.shape[1]):
        idx = np.flatnonzero(faces.majority == c)
        idx = idx[np.argsort([str(n) for n in faces.names[idx]])]
        rng.shuffle(idx)
        fold[idx] = np.arange(len(idx)) % k
    unlabelled = faces.majority < 0
    fold[unlabelled] = np.arange(int(unlabelled.sum())) % k
    return fold


def subset(faces: LabelledFaces, keep: np.ndarray) -> LabelledFaces:
    return LabelledFaces(faces.images[keep], faces.targets[keep], faces.names[keep], faces.majority[keep])


@dataclass(frozen=True, slots=True)
class FoldLogits:
    """One fold model's raw logits (mirror-averaged, no temperature or prior) on the three sets."""

    fold: int
    valid: np.ndarray
    valid_labels: np.ndarray
    held_out: np.ndarray  # the fold's own photos
    held_out_labels: np.ndarray
    seed: np.ndarray
    seed_labels: np.ndarray

    def save(self, folder: Path) -> None:
        np.savez(folder / f"fold{self.fold}_logits.npz", **{k: getattr(self, k) for k in self.__slots__ if k != "fold"})

    @classmethod
    def load(cls, folder: Path, fold: int) -> "FoldLogits":
        with np.load(folder / f"fold{fold}_logits.npz") as data:
            return cls(fold, **{k: data[k] for k in data.files})


def cv_sweep(folds: list[FoldLogits], class_prior, taus: list[float], temperature: float,
             seed_out_of_fold: bool = False) -> list[dict]:
    """:func:`~training.crossdomain.prior_sweep` rows for cross-validated models: the photos
    out of fold (all folds joined), FER+ Valid as the mean over fold models, and the seed photos
    joined over folds when each fold holds its own (``seed_out_of_fold``), else as the mean."""
    from crossdomain import prior_sweep

    joined = {"wild (out of fold)": ("held_out", "held_out_labels")}
    averaged = {"FER+ Valid": ("valid", "valid_labels")}
    (joined if seed_out_of_fold else averaged)["seed photos"] = ("seed", "seed_labels")
    held = prior_sweep({n: np.concatenate([getattr(f, k) for f in folds]) for n, (k, _) in joined.items()},
                       {n: np.concatenate([getattr(f, y) for f in folds]) for n, (_, y) in joined.items()},
                       class_prior, taus, temperature)
    per_fold = [prior_sweep({n: getattr(f, k) for n, (k, _) in averaged.items()},
                            {n: getattr(f, y) for n, (_, y) in averaged.items()}, class_prior, taus, temperature)
                for f in folds]
    rows = []
    for i, tau in enumerate(taus):
        row = {"tau": tau}
        for name in averaged:
            row[name] = tuple(float(np.mean([p[i][name][j] for p in per_fold])) for j in (0, 1))
        row.update({name: held[i][name] for name in joined})
        rows.append(row)
    return rows


def write_json(path: Path, payload: dict) -> None:
    path.write_text(json.dumps(payload, indent=2, default=lambda v: v.tolist() if hasattr(v, "tolist") else float(v)))
