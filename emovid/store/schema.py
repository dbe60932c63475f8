"""The declared pyarrow schemas: one face-row table per video, and the run manifest.

``sink.py`` writes only through these; every Parquet file emovid writes matches
:func:`face_schema` for its model's classes exactly, even when it has no rows.
"""

from __future__ import annotations

import json

import pyarrow as pa

from emovid.classify.labels import EMOTIONS

SCHEMA_VERSION = "3"  # 2: shot and person_id columns; 3: yaw, pitch, roll and quality
METADATA_KEY = b"emovid"

#: Columns that are null on the one row written for a sampled frame with no face.
FACE_COLUMNS = ("face_index", "track_id", "person_id", "x", "y", "w", "h", "det_score", "yaw", "pitch", "roll", "quality",
                "emotion", "confidence")


def prob_column(emotion: str) -> str:
    return f"prob_{emotion}"


def face_schema(classes: tuple[str, ...] = EMOTIONS, metadata: dict | None = None) -> pa.Schema:
    """Schema of the per-video emotion table.

    One row per detected face per sampled frame; a sampled frame with no face has one row
    whose face columns are null, so "no face" differs from "not sampled". ``shot`` is the
    index of the frame's shot in the video (0 when shots are not detected); ``track_id``
    follows one face within one shot; ``person_id`` groups a video's tracks by identity (null
    for a track seen only inside a dissolve: its faces are blends of two people). ``yaw``,
    ``pitch`` and ``roll`` are the head's pose in degrees (:mod:`emovid.detect.pose`; null where
    no pose fits) and ``quality`` (0..1) how far to trust the row's emotion
    (:mod:`emovid.classify.quality`).
    """
    fields = [
        pa.field("video_id", pa.string(), nullable=False),
        pa.field("frame_index", pa.int64(), nullable=False),
        pa.field("timestamp_s", pa.float64(), nullable=False),
        pa.field("shot", pa.int32(), nullable=False),
        pa.field("face_index", pa.int16()),
        pa.field("track_id", pa.int32()),
        pa.field("person_id", pa.int32()),
        pa.field("x", pa.int32()),
        pa.field("y", pa.int32()),
        pa.field("w", pa.int32()),
        pa.field("h", pa.int32()),
        pa.field("det_score", pa.float32()),
        pa.field("yaw", pa.float32()),
        pa.field("pitch", pa.float32()),
        pa.field("roll", pa.float32()),
        pa.field("quality", pa.float32()),
        pa.field("emotion", pa.string()),
        pa.field("confidence", pa.float32()),
        *(pa.field(prob_column(c), pa.float32()) for c in classes),
    ]
    schema = pa.schema(fields)
    return with_metadata(schema, metadata) if metadata is not None else schema


def with_metadata(schema: pa.Schema, metadata: dict) -> pa.Schema:
    """``schema`` carrying ``metadata`` as its emovid metadata (replacing any it had)."""
    return schema.with_metadata({METADATA_KEY: json.dumps(metadata, sort_keys=True).encode()})


def read_metadata(schema: pa.Schema) -> dict:
    """The emovid metadata dict stored in a schema (empty if the file was not written by emovid)."""
    raw = (schema.metadata or {}).get(METADATA_KEY)
    return json.loads(raw) if raw else {}


MANIFEST_SCHEMA = pa.schema([
    pa.field("video_id", pa.string()),
    pa.field("path", pa.string()),
    pa.field("kind", pa.string()),  # video | image
    pa.field("status", pa.string()),  # ok | partial | failed | skipped
    pa.field("error", pa.string()),
    pa.field("frames_decoded", pa.int64()),
    pa.field("frames_sampled", pa.int64()),
    pa.field("faces", pa.int64()),
    pa.field("duration_s", pa.float64()),
    pa.field("fps", pa.float64()),
    pa.field("width", pa.int32()),
    pa.field("height", pa.int32()),
    pa.field("wall_s", pa.float64()),
    pa.field("attempts", pa.int32()),
    pa.field("output", pa.string()),
    pa.field("worker", pa.string()),
    pa.field("segments", pa.int32()),  # time segments the video was analysed in (1: in one piece)
    pa.field("shots", pa.int32()),  # shots found (1 when shot detection is off)
    pa.field("tracks", pa.int32()),
    pa.field("persons", pa.int32()),
    # True: this run found the video's results already made with the same settings and kept
    # them; status, counts and error are those of the run that made them
    pa.field("reused", pa.bool_()),
])

STATUSES = ("ok", "partial", "failed", "skipped")
