"""The run manifest: one CSV row per input, written as each video finishes.

It lives at ``OUT/_manifest.csv``: pandas/pyarrow skip ``_`` names and DuckDB's
``**/*.parquet`` glob does not match ``.csv``, so it never mixes with the results.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd

from emovid.pipeline import VideoResult
from emovid.schema import MANIFEST_SCHEMA, STATUSES

MANIFEST_NAME = "_manifest.csv"
COLUMNS = tuple(MANIFEST_SCHEMA.names)
_PANDAS_DTYPES = {
    "frames_decoded": "Int64", "frames_sampled": "Int64", "faces": "Int64",
    "duration_s": "Float64", "fps": "Float64", "width": "Int32", "height": "Int32",
    "wall_s": "Float64", "attempts": "Int32", "segments": "Int32",
    "shots": "Int32", "tracks": "Int32", "persons": "Int32",
}


class ManifestWriter:
    """Context manager that appends one flushed row per finished video to the manifest."""

    def __init__(self, out_dir: str | Path) -> None:
        self.path = Path(out_dir) / MANIFEST_NAME
        self._fh = None
        self._writer: csv.DictWriter | None = None

    def __enter__(self) -> "ManifestWriter":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = self.path.open("w", newline="", encoding="utf-8")
        self._writer = csv.DictWriter(self._fh, fieldnames=COLUMNS)
        self._writer.writeheader()
        self._fh.flush()
        return self

    def write(self, result: VideoResult) -> None:
        row = result.to_row()
        if row["status"] not in STATUSES:
            raise ValueError(f"status: expected one of {STATUSES}, got {row['status']!r}")
        self._writer.writerow({k: ("" if row[k] is None else row[k]) for k in COLUMNS})
        self._fh.flush()

    def __exit__(self, *exc) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def to_frame(rows: list[dict]) -> pd.DataFrame:
    """Manifest rows as a DataFrame with the declared columns and nullable dtypes."""
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    frame = frame.astype(_PANDAS_DTYPES)
    for col in ("video_id", "path", "status", "error", "output", "worker"):
        frame[col] = frame[col].astype("string")
    return frame


def read_manifest(out_dir: str | Path) -> pd.DataFrame:
    """Read ``OUT/_manifest.csv`` with proper dtypes.

    Raises:
        FileNotFoundError: the folder has no manifest (no run wrote there).
    """
    path = Path(out_dir) / MANIFEST_NAME
    frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    return to_frame(frame.to_dict("records"))
