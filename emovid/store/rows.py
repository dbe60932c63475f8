"""Turning per-frame detections and class probabilities into rows of the declared face schema."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from emovid.detect.faces import FaceDetections
from emovid.store.schema import prob_column


@dataclass(frozen=True, slots=True)
class FrameFaces:
    """The faces of one sampled frame, waiting to be classified.

    Attributes:
        frame_index: index of the frame in the decoded stream.
        timestamp_s: presentation time in seconds.
        faces: detections in original-frame pixels.
        track_ids: (n,) int32 track per face, or None when tracking is off.
        shot: index of the frame's shot.
        pose: (n, 3) float32 yaw, pitch, roll in degrees (NaN: none fits), or None (all null).
        quality: (n,) float32 in 0..1, or None (all null).
    """

    frame_index: int
    timestamp_s: float
    faces: FaceDetections
    track_ids: np.ndarray | None = None
    shot: int = 0
    pose: np.ndarray | None = None
    quality: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.faces)
        for name, value, shape in (("track_ids", self.track_ids, (n,)), ("pose", self.pose, (n, 3)),
                                   ("quality", self.quality, (n,))):
            if value is not None and value.shape != shape:
                raise ValueError(f"{name}: expected shape {shape}, got {value.shape}")


def to_record_batch(video_id: str, frames: list[FrameFaces], probs: np.ndarray, schema: pa.Schema,
                    classes: tuple[str, ...]) -> pa.RecordBatch:
    """Rows for ``frames``: one per face, or one all-null face row for a frame with no face.

    ``probs`` holds the class probabilities of all faces of ``frames``, in order. ``person_id``
    starts equal to ``track_id``; the people stage maps it once the video is done
    (:meth:`emovid.people.stage.People.rows`).

    Raises:
        ValueError: ``probs`` does not have one row per face and one column per class.
    """
    counts = np.array([len(f.faces) for f in frames], dtype=np.int64)
    n_faces = int(counts.sum())
    if probs.shape != (n_faces, len(classes)):
        raise ValueError(f"probs: expected shape {(n_faces, len(classes))}, got {probs.shape}")
    rows_per_frame = np.maximum(counts, 1)
    n_rows = int(rows_per_frame.sum())
    has_face = np.repeat(counts > 0, rows_per_frame)
    null = ~has_face

    def face_values(values: np.ndarray, dtype) -> pa.Array:
        full = np.zeros(n_rows, dtype=dtype)
        full[has_face] = values
        return pa.array(full, mask=null)

    def optional(get, width: int) -> np.ndarray:
        """Per-face values of ``frames`` (NaN for a frame that has none), as (n_faces, width)."""
        parts = [np.full((len(f.faces), width), np.nan, np.float32) if get(f) is None
                 else np.asarray(get(f), np.float32).reshape(len(f.faces), width) for f in frames]
        return np.concatenate(parts) if n_faces else np.zeros((0, width), np.float32)

    def nullable(values: np.ndarray) -> pa.Array:
        full = np.full(n_rows, np.nan, np.float32)
        full[has_face] = values
        return pa.array(full, mask=np.isnan(full))

    boxes = np.concatenate([f.faces.boxes for f in frames]) if n_faces else np.zeros((0, 4), np.float32)
    scores = np.concatenate([f.faces.scores for f in frames]) if n_faces else np.zeros(0, np.float32)
    face_index = np.concatenate([np.arange(c) for c in counts]) if n_faces else np.zeros(0)
    tracks = [f.track_ids if f.track_ids is not None else np.full(len(f.faces), -1) for f in frames]
    track_ids = np.concatenate(tracks) if n_faces else np.zeros(0)
    track_column = np.full(n_rows, -1, dtype=np.int64)  # -1: no face, or tracking off
    track_column[has_face] = track_ids
    int_boxes = np.rint(boxes).astype(np.int32)
    best = probs.argmax(axis=1) if n_faces else np.zeros(0, np.int64)
    pose = optional(lambda f: f.pose, 3)
    labels = np.empty(n_rows, dtype=object)
    labels[has_face] = np.asarray(classes, dtype=object)[best]

    columns = {
        "video_id": pa.array(np.full(n_rows, video_id, dtype=object), pa.string()),
        "frame_index": pa.array(np.repeat([f.frame_index for f in frames], rows_per_frame).astype(np.int64)),
        "timestamp_s": pa.array(np.repeat([f.timestamp_s for f in frames], rows_per_frame).astype(np.float64)),
        "face_index": face_values(face_index, np.int16),
        "shot": pa.array(np.repeat([f.shot for f in frames], rows_per_frame).astype(np.int32)),
        "track_id": pa.array(track_column.astype(np.int32), mask=track_column < 0),
        "person_id": pa.array(track_column.astype(np.int32), mask=track_column < 0),
        "x": face_values(int_boxes[:, 0], np.int32),
        "y": face_values(int_boxes[:, 1], np.int32),
        "w": face_values(int_boxes[:, 2], np.int32),
        "h": face_values(int_boxes[:, 3], np.int32),
        "det_score": face_values(scores, np.float32),
        **{name: nullable(values) for name, values in zip(("yaw", "pitch", "roll"), pose.T)},
        "quality": nullable(optional(lambda f: f.quality, 1)[:, 0]),
        "emotion": pa.array(labels, pa.string()),
        "confidence": face_values(probs.max(axis=1) if n_faces else np.zeros(0), np.float32),
    }
    for i, c in enumerate(classes):
        columns[prob_column(c)] = face_values(probs[:, i], np.float32)
    return pa.RecordBatch.from_arrays([columns[f.name] for f in schema], schema=schema)
