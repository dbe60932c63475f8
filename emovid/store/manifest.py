"""The run manifest: one CSV row per input, appended as each video finishes and compacted after the run.

It lives at ``OUT/_manifest.csv``: pandas/pyarrow skip ``_`` names and DuckDB's
``**/*.parquet`` glob does not match ``.csv``, so it never mixes with the results.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd

from emovid.run.tasks import VideoResult
from emovid.store.schema import MANIFEST_SCHEMA, STATUSES

MANIFEST_NAME = "_manifest.csv"
COLUMNS = tuple(MANIFEST_SCHEMA.names)
_PANDAS_DTYPES = {
    "frames_decoded": "Int64", "frames_sampled": "Int64", "faces": "Int64",
    "duration_s": "Float64", "fps": "Float64", "width": "Int32", "height": "Int32",
    "wall_s": "Float64", "attempts": "Int32", "segments": "Int32",
    "shots": "Int32", "tracks": "Int32", "persons": "Int32", "reused": "boolean",
}


class ManifestWriter:
    """Context manager that appends one flushed row per finished video to the manifest.

    The manifest describes the output folder, not only the last run: rows of earlier runs are
    kept, and each video this run handles gets a newer row, appended and flushed as it finishes
    (a run killed outright leaves every finished video recorded; readers keep the last row per
    video). A video whose results are reused gets the row of the run that made them (its
    status, counts and error) with ``reused`` set. On enter and on exit (also after an error or
    Ctrl-C) the file is compacted to one row per video, atomically, so after a run it holds
    exactly one row per input.
    """

    def __init__(self, out_dir: str | Path) -> None:
        self.path = Path(out_dir) / MANIFEST_NAME
        self.earlier: dict[str, dict] = {}
        self._fh = None
        self._writer: csv.DictWriter | None = None

    def __enter__(self) -> "ManifestWriter":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.earlier = self._compact()
        self._fh = self.path.open("a", newline="", encoding="utf-8")
        self._writer = csv.DictWriter(self._fh, fieldnames=COLUMNS)
        return self

    def write(self, result: VideoResult) -> dict:
        """Record ``result``; returns its manifest row (for a reused video: the earlier row)."""
        row = result.to_row()
        if row["status"] not in STATUSES:
            raise ValueError(f"status: expected one of {STATUSES}, got {row['status']!r}")
        if result.reused and result.video_id in self.earlier:
            row = {**_typed(self.earlier[result.video_id]), "reused": True}
        self._writer.writerow({k: ("" if row[k] is None else row[k]) for k in COLUMNS})
        self._fh.flush()
        return row

    def __exit__(self, *exc) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
            self._compact()

    def _compact(self) -> dict[str, dict]:
        """Rewrite the file with the last row per video (atomically: a temp file renamed over it);
        returns those rows."""
        rows = _read_rows(self.path)
        tmp = self.path.with_name(self.path.name + ".tmp")
        with tmp.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=COLUMNS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows.values())
        tmp.replace(self.path)
        return rows


def _read_rows(path: Path) -> dict[str, dict]:
    """The last row per video of a manifest file, as strings or None ({} when there is none)."""
    if not path.is_file():
        return {}
    with path.open(newline="", encoding="utf-8") as fh:
        return {row["video_id"]: {k: row.get(k) or None for k in COLUMNS} for row in csv.DictReader(fh)
                if row.get("video_id")}


def _typed(row: dict) -> dict:
    """A manifest row read back as strings, with the declared column types."""
    return to_frame([row]).iloc[0].replace({pd.NA: None}).to_dict()


def to_frame(rows: list[dict]) -> pd.DataFrame:
    """Manifest rows as a DataFrame with the declared columns and nullable dtypes."""
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    # CSV gives "True"/"False" strings; manifests of older versions lack the column (False).
    frame["reused"] = frame["reused"].map(lambda v: v if isinstance(v, bool) else str(v) == "True")
    frame["kind"] = frame["kind"].fillna("video")  # manifests before photos were all videos
    frame = frame.astype(_PANDAS_DTYPES)
    for col in ("video_id", "path", "kind", "status", "error", "output", "worker"):
        frame[col] = frame[col].astype("string")
    return frame


def read_manifest(out_dir: str | Path) -> pd.DataFrame:
    """Read ``OUT/_manifest.csv`` with proper dtypes: one row per video, the latest.

    Raises:
        FileNotFoundError: the folder has no manifest (no run wrote there).
    """
    path = Path(out_dir) / MANIFEST_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no manifest (has emovid analyze written to {out_dir}?)")
    return to_frame(list(_read_rows(path).values()))
