"""Reading an output folder back: all videos' rows as one typed pandas DataFrame."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from emovid.classify.labels import EMOTIONS
from emovid.people.across_videos import global_person_ids
from emovid.store.schema import face_schema, read_metadata


def result_files(out: Path) -> list[Path]:
    """Parquet files under ``out``, skipping hidden/underscore names (temp files, manifests)."""
    files = []
    for path in sorted(out.rglob("*.parquet")):
        rel = path.relative_to(out).parts
        if not any(part.startswith((".", "_")) for part in rel):
            files.append(path)
    return files


def read_results(out_dir: str | Path, smooth: float | None = None, min_quality: float | None = None,
                 baseline: str | None = None) -> pd.DataFrame:
    """All result rows under ``out_dir`` as one DataFrame.

    With ``min_quality`` (0..1), face rows whose ``quality`` is lower (or unknown: files written
    before quality existed) are dropped; rows of frames without a face stay. With ``smooth``
    (seconds), ``smooth_prob_*`` and ``smooth_emotion`` columns hold a per-track, time-aware
    moving average of what is left (see :func:`emovid.report.timelines.smooth`). With
    ``baseline="person"``, ``rel_<emotion>`` columns hold each probability relative to that
    person's resting face (:func:`emovid.report.analytics.with_baseline`). ``global_person_id``
    is the person across the folder's videos (:mod:`emovid.people.across_videos`; null where
    persons were not linked).

    Files written before a column existed read with nulls in it.

    ``emotion`` is a categorical in the model's class order, ids are strings, face columns are
    nullable, and rows are ordered by video, timestamp and face. An empty folder gives an
    empty frame with the full schema.

    Raises:
        FileNotFoundError: ``out_dir`` does not exist.
        ValueError: the files were written with different class lists, ``min_quality`` is not in
            0..1, or ``baseline`` is not None or "person".
    """
    if min_quality is not None and not 0 <= min_quality <= 1:
        raise ValueError(f"min_quality: expected 0..1, got {min_quality}")
    if baseline not in (None, "person"):
        raise ValueError(f"baseline: expected None or 'person', got {baseline!r}")
    out = Path(out_dir)
    if not out.is_dir():
        raise FileNotFoundError(f"results folder {out} does not exist")
    files = result_files(out)
    metadata = [read_metadata(pq.read_schema(f)) for f in files]  # read once: classes and persons
    classes = EMOTIONS
    if files:
        class_lists = {tuple(meta.get("settings", {}).get("classes", EMOTIONS)) for meta in metadata}
        if len(class_lists) > 1:
            raise ValueError(f"{out} mixes results of models with different classes: {sorted(class_lists)}")
        classes = class_lists.pop()
        # the declared schema: columns an older file lacks read as nulls
        table = ds.dataset([str(f) for f in files], schema=face_schema(classes), format="parquet",
                           partitioning=None).to_table()
    else:
        table = face_schema(classes).empty_table()
    frame = to_frame(table, classes)
    frame.insert(frame.columns.get_loc("person_id") + 1, "global_person_id", global_person_ids(out, frame, metadata))
    if min_quality is not None:
        frame = frame[frame["face_index"].isna() | (frame["quality"] >= min_quality).fillna(False)].reset_index(drop=True)
    if smooth is not None:
        from emovid.report.timelines import smooth as smooth_tracks

        frame = smooth_tracks(frame, smooth)
    if baseline == "person":
        from emovid.report.analytics import with_baseline

        frame = with_baseline(frame)
    return frame


def to_frame(table: pa.Table, classes: tuple[str, ...]) -> pd.DataFrame:
    """A face-schema table as a typed DataFrame ordered by video, time and face."""
    frame = table.to_pandas(types_mapper={
        pa.int16(): pd.Int16Dtype(), pa.int32(): pd.Int32Dtype(), pa.int64(): pd.Int64Dtype(),
        pa.float32(): pd.Float32Dtype(), pa.string(): pd.StringDtype(),
    }.get)
    frame["emotion"] = pd.Categorical(frame["emotion"].astype(object), categories=list(classes))
    frame["timestamp_s"] = frame["timestamp_s"].astype("float64")
    frame = frame.sort_values(["video_id", "timestamp_s", "face_index"], na_position="first", kind="stable")
    return frame.reset_index(drop=True)
