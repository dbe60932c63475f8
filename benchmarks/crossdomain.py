"""Cross-domain evaluation: every model on FER+ Valid, in-the-wild photos and the seed photos.

FER+ Valid is the in-domain check; the wild photos (LFW-style news photos, crowd labels) and the
seed project's photos (posed, full frames, through detection) are faces unlike FER+'s. A model
choice or an operating point is only made on all of them together (see :func:`operating_point`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emovid.classify.labels import EMOTIONS
from emovid.training.data import LabelledFaces
from emovid.training.evaluate import EvalReport, load_labelled


@dataclass(frozen=True, slots=True)
class LabelledSet:
    """A named evaluation set: FER+ split folder(s) or class folders, read at a model's crop settings."""

    name: str
    folders: tuple[Path, ...]

    def available(self) -> bool:
        return all(f.is_dir() for f in self.folders)

    def load(self, size: int, crop_margin: float) -> LabelledFaces:
        parts = [load_labelled(f, size, crop_margin) for f in self.folders]
        return LabelledFaces(*(np.concatenate([getattr(p, k) for p in parts])
                               for k in ("images", "targets", "names", "majority")))


def standard_sets(shared: Path) -> list[LabelledSet]:
    """FER+ Valid, the wild photos and the seed photos (54 training + 6 live-test) under ``shared``."""
    data = shared / "data"
    return [LabelledSet("FER+ Valid", (data / "ferplus" / "FER2013Valid",)),
            LabelledSet("wild", (data / "wild",)),
            LabelledSet("seed photos", (data / "seed" / "training", data / "seed" / "live-test"))]


class SetCache:
    """Loads each set once per (input size, crop margin): detection on photos is the slow part."""

    def __init__(self) -> None:
        self._faces: dict[tuple, LabelledFaces] = {}

    def get(self, labelled: LabelledSet, size: int, crop_margin: float) -> LabelledFaces:
        key = (labelled.name, size, round(crop_margin, 4))
        if key not in self._faces:
            self._faces[key] = labelled.load(size, crop_margin)
        return self._faces[key]


def score_table(results: dict[str, dict[str, EvalReport]]) -> str:
    """Markdown: one row per model, accuracy / mean recall / ECE per set, then per-class recall rows."""
    sets = list(next(iter(results.values())))
    head = "| model | " + " | ".join(f"{s} acc / mean recall / ECE" for s in sets) + " |"
    lines = [head, "|" + "---|" * (len(sets) + 1)]
    for model, by_set in results.items():
        cells = [f"{r.accuracy:.1%} / {r.mean_recall:.3f} / {r.ece:.3f}" if r.ece is not None
                 else f"{r.accuracy:.1%} / {r.mean_recall:.3f} / -" for r in by_set.values()]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    lines += ["", "Per-class recall:", "",
              "| model | set | " + " | ".join(EMOTIONS) + " |", "|" + "---|" * (len(EMOTIONS) + 2)]
    for model, by_set in results.items():
        for name, r in by_set.items():
            recalls = [f"{v:.2f}" if n else "-" for v, n in zip(r.recall, r.support)]
            lines.append(f"| {model} | {name} | " + " | ".join(recalls) + " |")
    return "\n".join(lines)


def prior_sweep(logits: dict[str, np.ndarray], labels: dict[str, np.ndarray], class_prior: np.ndarray,
                taus: list[float], temperature: float = 1.0) -> list[dict]:
    """Accuracy and mean recall per set for each prior strength ``tau`` (logits / T - tau log prior)."""
    log_prior = np.log(np.asarray(class_prior) / np.sum(class_prior))
    rows = []
    for tau in taus:
        row = {"tau": tau}
        for name, z in logits.items():
            r = EvalReport.from_predictions(labels[name], (z / temperature - tau * log_prior).argmax(axis=1))
            row[name] = (r.accuracy, r.mean_recall)
        rows.append(row)
    return rows


def operating_point(sweep: list[dict], in_domain: str, max_accuracy_drop: float = 0.01) -> float:
    """The prior strength with the best mean of every set's mean recall, among those that keep
    ``in_domain`` accuracy within ``max_accuracy_drop`` of its best (no single set decides)."""
    best_acc = max(row[in_domain][0] for row in sweep)
    allowed = [row for row in sweep if row[in_domain][0] >= best_acc - max_accuracy_drop]
    return max(allowed, key=lambda row: np.mean([v[1] for k, v in row.items() if k != "tau"]))["tau"]


def fit_temperature(logits: dict[str, np.ndarray], labels: dict[str, np.ndarray],
                    grid: np.ndarray | None = None) -> float:
    """The temperature with the lowest mean negative log-likelihood over the sets (each set counts
    the same, whatever its size), so one domain does not set the calibration alone."""
    grid = np.round(np.arange(0.4, 2.01, 0.05), 2) if grid is None else grid

    def nll(z, y, t):
        z = z / t
        z = z - z.max(axis=1, keepdims=True)
        return float(np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(y)), y]))

    return float(min(grid, key=lambda t: np.mean([nll(logits[k], labels[k], t) for k in logits])))
