"""Atomic Parquet output: rows go to a hidden temp file that is renamed into place on success.

Readers never see a half-written video: pandas/pyarrow skip names starting with ``.``, the
DuckDB glob ``**/*.parquet`` does not match ``.x.parquet.tmp-*``, and a failed or interrupted
write deletes its temp file.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

TEMP_MARKER = ".tmp-"


def temp_path_for(path: Path) -> Path:
    return path.with_name(f".{path.name}{TEMP_MARKER}{uuid.uuid4().hex[:12]}")


class ParquetSink:
    """Context manager writing record batches of exactly one schema to ``path``, atomically.

    Args:
        path: final file path; its folder is created.
        schema: the declared schema (with metadata); a batch with another schema raises.
        compression: Parquet codec (``none`` for files of a few rows, where zstd's per-column
            set-up costs more than it saves: 1 ms of a photo's 6).

    The file appears at ``path`` only when the ``with`` block exits without an exception; an
    existing file there is replaced in one step.
    """

    def __init__(self, path: str | Path, schema: pa.Schema, compression: str = "zstd") -> None:
        self.path = Path(path)
        self.schema = schema
        self.compression = compression
        self.rows = 0
        self._tmp: Path | None = None
        self._writer: pq.ParquetWriter | None = None

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = temp_path_for(self.path)
        self._writer = pq.ParquetWriter(self._tmp, self.schema, compression=self.compression)

    def write(self, batch: pa.RecordBatch | pa.Table) -> None:
        """Append rows.

        Raises:
            ValueError: the batch's schema differs from the sink's.
        """
        if self._writer is None:
            raise RuntimeError("ParquetSink.write() called before open()")
        if not batch.schema.equals(self.schema, check_metadata=False):
            raise ValueError(f"batch schema does not match the declared schema:\n{batch.schema}\nexpected:\n{self.schema}")
        if batch.num_rows:
            table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch], schema=self.schema)
            self._writer.write_table(table)
            self.rows += batch.num_rows

    def close(self, commit: bool = True) -> None:
        """Finish the file and move it into place (``commit``), or throw it away."""
        writer, tmp = self._writer, self._tmp
        self._writer = self._tmp = None
        if writer is None:
            return
        try:
            writer.close()
            if commit:
                os.replace(tmp, self.path)
        finally:
            tmp.unlink(missing_ok=True)

    def __enter__(self) -> "ParquetSink":
        self.open()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(commit=exc_type is None)
