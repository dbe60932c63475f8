"""Does ``quality`` predict where the classifier is wrong? Accuracy by quality bin.

The in-the-wild photos (and, with ``--seed``, the seed project's posed photos) go through the
product's own detector, crop, CNN and :func:`emovid.classify.quality.pose_and_quality`, as they
are and as degraded copies: blurred, dark, low-contrast, small. Each face's quality lands in a
bin; the table gives the classifier's accuracy in each bin. The quality ramps were set from
FER+ training crops' statistics (see quality.py), not from these photos.

    python benchmarks/quality.py ../shared/data/wild [--limit 400]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from emovid.assets import model_path
from emovid.classify.emotions import EmotionClassifier
from emovid.classify.quality import pose_and_quality
from emovid.detect.faces import FaceDetector, crop_faces
from emovid.detect.pose import HeadPose

BINS = (0.0, 0.25, 0.5, 0.75, 1.0001)


def degraded(image: np.ndarray, kind: str) -> np.ndarray:
    """``image`` as it is ("clean") or made harder to read in one way."""
    if kind == "clean":
        return image
    if kind == "blurred":  # about a fifth of the face's width smeared
        return cv2.GaussianBlur(image, (0, 0), max(image.shape[:2]) / 60)
    if kind == "dark":
        return (image.astype(np.float32) * 0.12).astype(np.uint8)
    if kind == "flat":  # fog: a third of the contrast left
        return (image.astype(np.float32) / 3 + 140).astype(np.uint8)
    if kind == "small":  # the face a little over 20 px
        return cv2.resize(image, None, fx=0.18, fy=0.18, interpolation=cv2.INTER_AREA)
    raise ValueError(f"unknown degradation {kind!r}")


KINDS = ("clean", "blurred", "dark", "flat", "small")


def measure(folder: Path, limit: int | None) -> list[tuple[str, float, bool]]:
    """(kind, quality, correct) for the largest face of each labelled photo and its degraded copies."""
    classifier = EmotionClassifier.load(model_path(None))
    detector = FaceDetector(min_face=10)
    head_pose = HeadPose(detector.detect)
    classes = list(classifier.classes)
    rows = []
    for label_dir in sorted(p for p in folder.iterdir() if p.is_dir() and p.name in classes):
        photos = sorted(label_dir.glob("*.jp*g"))[:limit]
        for path in photos:
            image = cv2.imread(str(path))
            if image is None:
                continue
            for kind in KINDS:
                frame = degraded(image, kind)
                faces = detector.detect(frame).largest()
                if not len(faces):
                    continue
                crops = crop_faces(frame, faces, classifier.info.crop_margin, classifier.input_size)
                _, quality = pose_and_quality(frame, faces, crops, head_pose)
                guess = classes[int(classifier.predict_proba(crops).argmax())]
                rows.append((kind, float(quality[0]), guess == label_dir.name))
    return rows


def table(rows: list[tuple[str, float, bool]]) -> str:
    lines = ["| faces | " + " | ".join(f"quality {lo:.2f}-{min(hi, 1):.2f}" for lo, hi in zip(BINS[:-1], BINS[1:]))
             + " | all |", "|---" * (len(BINS) + 1) + "|"]
    for kind in (*KINDS, "all"):
        chosen = [r for r in rows if kind in ("all", r[0])]
        cells = []
        for lo, hi in zip(BINS[:-1], BINS[1:]):
            hits = [ok for _, q, ok in chosen if lo <= q < hi]
            cells.append(f"{np.mean(hits):.1%} (n={len(hits)})" if hits else "-")
        cells.append(f"{np.mean([ok for *_, ok in chosen]):.1%} (n={len(chosen)})" if chosen else "-")
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="labelled photos in class folders (e.g. ../shared/data/wild)")
    parser.add_argument("--limit", type=int, default=None, help="at most this many photos per class")
    args = parser.parse_args(argv)
    if not args.folder.is_dir():
        print(f"{args.folder} is not a folder", file=sys.stderr)
        return 2
    rows = measure(args.folder, args.limit)
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
