"""Reading an output folder back: all videos' rows as one typed pandas DataFrame."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from emovid.classify.labels import EMOTIONS
from emovid.store.schema import face_schema, read_metadata


def result_files(out: Path) -> list[Path]:
    """Parquet files under ``out``, skipping hidden/underscore names (temp files, manifests)."""
    files = []
    for path in sorted(out.rglob("*.parquet")):
        rel = path.relative_to(out).parts
        if not any(part.startswith((".", "_")) for part in rel):
            files.append(path)
    return files


def read_results(out_dir: str | Path, smooth: float | None = None) -> pd.DataFrame:
    """All result rows under ``out_dir`` as one DataFrame.

    With ``smooth`` (seconds), ``smooth_prob_*`` and ``smooth_emotion`` columns hold a
    per-track, time-aware moving average (see :func:`emovid.report.timelines.smooth`).

    ``emotion`` is a categorical in the model's class order, ids are strings, face columns are
    nullable, and rows are ordered by video, timestamp and face. An empty folder gives an
    empty frame with the full schema.

    Raises:
        FileNotFoundError: ``out_dir`` does not exist.
        ValueError: the files were written with different class lists.
    """
    out = Path(out_dir)
    if not out.is_dir():
        raise FileNotFoundError(f"results folder {out} does not exist")
    files = result_files(out)
    classes = EMOTIONS
    if files:
        class_lists = {tuple(read_metadata(pq.read_schema(f)).get("settings", {}).get("classes", EMOTIONS))
                       for f in files}
        if len(class_lists) > 1:
            raise ValueError(f"{out} mixes results of models with different classes: {sorted(class_lists)}")
        classes = class_lists.pop()
        table = ds.dataset([str(f) for f in files], format="parquet", partitioning=None).to_table()
    else:
        table = face_schema(classes).empty_table()
    frame = to_frame(table, classes)
    if smooth is not None:
        from emovid.report.timelines import smooth as smooth_tracks

        frame = smooth_tracks(frame, smooth)
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
