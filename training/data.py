"""Dataset loaders for the training job: FER+ vote files and class-per-folder photos.

Both return a :class:`LabelledFaces`: uint8 grayscale crops at the model's input size and a
probability distribution over ``EMOTIONS`` per image (soft for FER+, one-hot for folders).
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from emovid.errors import DatasetError, ImageError  # DatasetError is re-exported: defined with emovid's other errors
from emovid.classify.labels import EMOTIONS, FERPLUS_VOTE_COLUMNS, canonical_emotion
from emovid.media.files import IMAGE_SUFFIXES
from emovid.media.images import read_image

log = logging.getLogger(__name__)

_NUM_VOTE_CLASSES = len(EMOTIONS)  # the first 7 FER+ vote columns are our classes, same order




@dataclass(frozen=True, slots=True)
class LabelledFaces:
    """Face crops with a class distribution per image.

    Attributes:
        images: (N, H, W) uint8 grayscale crops.
        targets: (N, len(EMOTIONS)) float32 rows that sum to 1.
        names: (N,) source file names, for error reports.
        majority: (N,) int class index used for evaluation, -1 where the label is ambiguous.
    """

    images: np.ndarray
    targets: np.ndarray
    names: np.ndarray
    majority: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.images)
        if self.images.ndim != 3 or self.images.dtype != np.uint8:
            raise ValueError(f"images: expected (N, H, W) uint8, got {self.images.shape} {self.images.dtype}")
        if self.targets.shape != (n, len(EMOTIONS)):
            raise ValueError(f"targets: expected shape {(n, len(EMOTIONS))}, got {self.targets.shape}")
        if self.names.shape != (n,) or self.majority.shape != (n,):
            raise ValueError(f"names/majority: expected shape {(n,)}, got {self.names.shape}/{self.majority.shape}")

    def __len__(self) -> int:
        return len(self.images)

    def head(self, n: int) -> "LabelledFaces":
        """The first ``n`` images."""
        return LabelledFaces(self.images[:n], self.targets[:n], self.names[:n], self.majority[:n])

    def evaluable(self) -> "LabelledFaces":
        """The subset with an unambiguous majority label."""
        keep = self.majority >= 0
        return LabelledFaces(self.images[keep], self.targets[keep], self.names[keep], self.majority[keep])


def ferplus_targets(votes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Turn FER+ vote counts (N, 10) into soft targets and evaluation labels.

    Returns:
        (usable, targets, majority): ``usable`` marks images with at least one vote for our
        classes and whose top vote is one of them; ``targets`` is the vote share over our
        classes; ``majority`` is the class index of an untied top vote among all 10 columns
        that falls in our classes, else -1 (the evaluation protocol).
    """
    votes = np.asarray(votes, dtype=np.float32)
    ours = votes[:, :_NUM_VOTE_CLASSES]
    top = votes.max(axis=1)
    top_is_ours = ours.max(axis=1) >= top
    usable = top_is_ours & (ours.sum(axis=1) > 0)
    targets = np.zeros_like(ours)
    targets[usable] = ours[usable] / ours[usable].sum(axis=1, keepdims=True)
    tied = (votes == top[:, None]).sum(axis=1) > 1
    majority = np.where(top_is_ours & ~tied & (top > 0), ours.argmax(axis=1), -1)
    return usable, targets, majority


def load_ferplus(folder: str | Path, size: int = 48) -> LabelledFaces:
    """Load a FER+ split folder (PNG files + ``label.csv`` with 10 vote counts).

    Raises:
        DatasetError: missing or malformed ``label.csv``, missing or unreadable images, no usable rows.
    """
    folder = Path(folder)
    label_file = folder / "label.csv"
    if not label_file.is_file():
        raise DatasetError(f"{folder}: no label.csv (expected the FER+ layout: images + label.csv)")
    names, votes = [], []
    with label_file.open(newline="") as fh:
        for line_no, row in enumerate(csv.reader(fh), start=1):
            if not row:
                continue
            if len(row) != 2 + len(FERPLUS_VOTE_COLUMNS):
                raise DatasetError(f"{label_file}:{line_no}: expected {2 + len(FERPLUS_VOTE_COLUMNS)} columns, got {len(row)}")
            try:
                votes.append([float(v) for v in row[2:]])
            except ValueError as exc:
                raise DatasetError(f"{label_file}:{line_no}: vote counts must be numbers ({exc})") from None
            names.append(row[0])
    if not names:
        raise DatasetError(f"{label_file}: no rows")
    usable, targets, majority = ferplus_targets(np.array(votes))
    keep = np.flatnonzero(usable)
    images = np.empty((len(keep), size, size), np.uint8)
    for out_i, i in enumerate(keep):
        images[out_i] = read_gray(folder / names[i], size)
    log.info("%s: %d images, %d usable", folder, len(names), len(keep))
    return LabelledFaces(images, targets[keep], np.array(names, dtype=object)[keep], majority[keep])


def read_gray(path: Path, size: int) -> np.ndarray:
    """Read an image as grayscale at ``size`` x ``size``.

    Raises:
        DatasetError: the file is missing or not a readable image.
    """
    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise DatasetError(f"{path}: missing or not a readable image")
    if img.shape != (size, size):
        img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
    return img


def class_folders(root: str | Path) -> dict[str, list[Path]]:
    """List ``<emotion>/*.jpg`` images under ``root``, keyed by canonical emotion.

    Raises:
        DatasetError: ``root`` is missing, empty, or has a folder that is not an emotion.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a directory")
    found: dict[str, list[Path]] = {}
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        try:
            emotion = canonical_emotion(sub.name)
        except ValueError as exc:
            raise DatasetError(f"{sub}: {exc}") from None
        files = sorted(p for p in sub.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        found.setdefault(emotion, []).extend(files)
    if not any(found.values()):
        raise DatasetError(f"{root}: no images in <emotion>/ sub-folders (expected e.g. joy/*.jpg)")
    return found


def load_dataset(root: str | Path, size: int, crop_margin: float) -> tuple[LabelledFaces, LabelledFaces | None]:
    """Load a training folder in any supported layout.

    Layouts: a FER+ root (``FER2013Train/`` and ``FER2013Valid/``), one FER+ split folder
    (``label.csv``), or class folders (``<emotion>/*.jpg``). Returns (train, valid-or-None).

    Raises:
        DatasetError: the folder matches no layout or cannot be read.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a directory")
    if (root / "FER2013Train").is_dir():
        valid = load_ferplus(root / "FER2013Valid", size) if (root / "FER2013Valid").is_dir() else None
        return load_ferplus(root / "FER2013Train", size), valid
    if (root / "label.csv").exists():
        return load_ferplus(root, size), None
    return load_class_folders(root, size, crop_margin), None


def load_class_folders(root: str | Path, size: int, crop_margin: float) -> LabelledFaces:
    """Load ``<emotion>/*.jpg`` photos, cropping the largest face the way ``analyze`` does.

    Images that are already face crops (no face found, but the image is small and roughly
    square) are used whole; other photos without a detectable face are skipped with a warning.

    Raises:
        DatasetError: bad folder layout, unreadable image, or no usable face at all.
    """
    from emovid.detect.faces import FaceDetector, crop_faces  # needs the detector weights only for this layout

    detector = FaceDetector()
    images, targets, names, majority = [], [], [], []
    for emotion, files in class_folders(root).items():
        label = EMOTIONS.index(emotion)
        for path in files:
            try:  # as analyze reads photos: alpha over white, 16-bit scaled, JPEGs upright
                frame = read_image(str(path))
            except ImageError as exc:
                raise DatasetError(f"{path}: {exc}") from None
            faces = detector.detect(frame)
            if len(faces):
                crop = crop_faces(frame, faces.largest(), crop_margin, size)[0]
            elif max(frame.shape[:2]) <= 4 * size and 0.75 < frame.shape[0] / frame.shape[1] < 1.33:
                crop = cv2.resize(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), (size, size), interpolation=cv2.INTER_AREA)
            else:
                log.warning("%s: no face found, skipped", path)
                continue
            images.append(crop)
            target = np.zeros(len(EMOTIONS), np.float32)
            target[label] = 1.0
            targets.append(target)
            names.append(str(path))
            majority.append(label)
    if not images:
        raise DatasetError(f"{root}: no face found in any image")
    return LabelledFaces(np.stack(images), np.stack(targets), np.array(names, dtype=object), np.array(majority))
