"""int8 vs fp32: the model file's two graphs side by side, crops/s and accuracy on the same crops,
with and without the mirror pass, and the gate int8 must pass to be the default.

The int8 graph was calibrated on FER+ *training* crops (``emovid quantize``); the sets here only
check it. Both run through the product's own post-processing (temperature, prior correction,
mirror pass), so the accuracy columns compare like with like.

    python benchmarks/int8.py ../shared [--model FILE]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench import cpu_name  # noqa: E402
from crossdomain import standard_sets  # noqa: E402

from emovid.assets import model_path  # noqa: E402
from emovid.classify.emotions import EmotionClassifier, int8_speedup  # noqa: E402
from emovid.classify.model_file import model_digest  # noqa: E402

#: The accuracy change int8 may cost on every set and still be the default (issue 34).
MAX_ACCURACY_DROP = 0.003
MAX_RECALL_DROP = 0.005


def rate(classifier: EmotionClassifier, crops: np.ndarray, batch: int = 256) -> float:
    classifier.predict_proba(crops[:batch], batch_size=batch)
    start = time.perf_counter()
    classifier.predict_proba(crops, batch_size=batch)
    return len(crops) / (time.perf_counter() - start)


def scores(classifier: EmotionClassifier, faces) -> tuple[float, float]:
    """Accuracy against the majority label and mean per-class recall."""
    guess = classifier.predict_proba(faces.images).argmax(axis=1)
    truth = faces.majority
    recalls = [np.mean(guess[truth == c] == c) for c in np.unique(truth)]
    return float(np.mean(guess == truth)), float(np.mean(recalls))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("shared", type=Path, help="the shared data folder (../shared)")
    parser.add_argument("--model", help="model file (default: the shipped one)")
    args = parser.parse_args(argv)
    model = model_path(args.model)
    info = EmotionClassifier.load(model, precision="fp32").info
    sets = [(s.name, s.load(info.input_size, info.crop_margin)) for s in standard_sets(args.shared) if s.available()]
    timing = np.concatenate([faces.images for _, faces in sets])[:2048]
    print(f"\nint8 vs fp32 graphs of {model.name}, {cpu_name()}; auto's own measurement here: int8 "
          f"{int8_speedup(model, model_digest(model)):.2f}x fp32\n")
    print("| graph | threads | crops/s (batch 256) | " + " | ".join(f"{n}: acc / mean recall" for n, _ in sets) + " |")
    print("|---" * (3 + len(sets)) + "|")
    measured = {}
    for precision in ("fp32", "int8"):
        for mirror in (True, False):  # the mirror pass: the network run again on flipped crops, averaged
            for threads in (1, 2):
                clf = EmotionClassifier.load(model, num_threads=threads, precision=precision)
                clf._network._flip = mirror and clf._network._flip
                results = [scores(clf, faces) for _, faces in sets] if threads == 1 else []
                if results:
                    measured[precision, mirror] = results
                cells = [f"{a:.1%} / {r:.3f}" for a, r in results] or ["" for _ in sets]
                label = precision + ("" if mirror else ", no mirror pass")
                print(f"| {label} | {threads} | {rate(clf, timing):.0f} | " + " | ".join(cells) + " |")
    drops = [(fa - ia, fr - ir) for (fa, fr), (ia, ir) in zip(measured["fp32", True], measured["int8", True])]
    passed = all(a <= MAX_ACCURACY_DROP and r <= MAX_RECALL_DROP for a, r in drops)
    print(f"\nint8 (with the mirror pass) vs fp32: accuracy change "
          + ", ".join(f"{n} {-a * 100:+.2f} pp / recall {-r:+.4f}" for (n, _), (a, r) in zip(sets, drops))
          + f": {'within' if passed else 'OUTSIDE'} the gate ({MAX_ACCURACY_DROP * 100:.1f} pp, {MAX_RECALL_DROP} "
            f"mean recall) -> int8 {'may' if passed else 'must not'} be the default")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
