"""Builders shared by the tests: generated videos, shared-data paths and skip markers."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"
VIDEOS = SHARED / "videos"
FERPLUS = SHARED / "data" / "ferplus"
SEED = SHARED / "data" / "seed"

needs_shared = pytest.mark.skipif(not VIDEOS.is_dir(), reason=f"shared test data not found at {SHARED}")


def shared_video(name: str) -> Path:
    path = VIDEOS / name
    if not path.exists():
        pytest.skip(f"{path} not available (../shared is absent)")
    return path


def write_video(path: Path, frames: list[np.ndarray] | int = 10, fps: float = 10.0, size=(160, 120)) -> Path:
    """Write an mp4 (mp4v) of the given BGR frames, or of ``frames`` gray frames with a moving square."""
    if isinstance(frames, int):
        frames = [_square_frame(i, size) for i in range(frames)]
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    if not writer.isOpened():
        raise RuntimeError(f"cannot write {path}")
    try:
        for frame in frames:
            writer.write(frame)
    finally:
        writer.release()
    return path


def _square_frame(i: int, size) -> np.ndarray:
    w, h = size
    frame = np.full((h, w, 3), 90, np.uint8)
    x = (i * 7) % max(w - 20, 1)
    frame[10:30, x:x + 20] = 200
    return frame


def face_video(path: Path, n_frames: int = 12, fps: float = 12.0) -> Path:
    """A short video of a real face photo drifting a few pixels per frame."""
    photo = cv2.imread(str(shared_video("single_face.jpg")))
    photo = cv2.resize(photo, (320, int(320 * photo.shape[0] / photo.shape[1])))
    h, w = photo.shape[:2]
    canvas_w, canvas_h = w + 40, h + 20
    frames = []
    for i in range(n_frames):
        canvas = np.full((canvas_h, canvas_w, 3), 60, np.uint8)
        dx = (i * 3) % 40
        canvas[10:10 + h, dx:dx + w] = photo
        frames.append(canvas)
    return write_video(path, frames, fps=fps)


def multi_face_crops() -> list[np.ndarray]:
    """The five faces of multi_face.jpg as BGR patches (about 100 px), left to right."""
    from emovid.faces import FaceDetector

    image = cv2.imread(str(shared_video("multi_face.jpg")))
    faces = FaceDetector().detect(image)
    order = np.argsort(faces.boxes[:, 0])
    crops = []
    for x, y, w, h in faces.boxes[order].astype(int):
        pad = int(0.25 * w)
        crops.append(image[max(y - pad, 0):y + h + pad, max(x - pad, 0):x + w + pad].copy())
    return crops


def moving_faces_video(path: Path, positions: list[dict[int, tuple[int, int]]], fps: float = 10.0,
                       size=(640, 360)) -> Path:
    """Render frames where face k of multi_face.jpg is pasted at ``positions[frame][k]`` (top-left)."""
    crops = multi_face_crops()
    frames = []
    for placed in positions:
        canvas = np.full((size[1], size[0], 3), 110, np.uint8)
        for k, (x, y) in placed.items():
            crop = crops[k]
            h, w = crop.shape[:2]
            x0, y0 = max(x, 0), max(y, 0)
            x1, y1 = min(x + w, size[0]), min(y + h, size[1])
            if x1 > x0 and y1 > y0:
                canvas[y0:y1, x0:x1] = crop[y0 - y:y1 - y, x0 - x:x1 - x]
        frames.append(canvas)
    return write_video(path, frames, fps=fps)
