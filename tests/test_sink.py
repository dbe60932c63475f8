import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from emovid.store.schema import face_schema
from emovid.store.sink import ParquetSink


def _batch(schema, n=2):
    cols = {f.name: pa.nulls(n, f.type) for f in schema}
    cols["video_id"] = pa.array(["v"] * n)
    cols["frame_index"] = pa.array(range(n), pa.int64())
    cols["timestamp_s"] = pa.array([i / 10 for i in range(n)], pa.float64())
    cols["shot"] = pa.array([0] * n, pa.int32())
    cols["track_id"] = pa.array(range(n), pa.int32())
    return pa.RecordBatch.from_arrays([cols[f.name] for f in schema], schema=schema)


def test_writes_atomically_and_keeps_metadata(tmp_path):
    schema = face_schema(metadata={"settings_hash": "abc"})
    path = tmp_path / "sub" / "v.mp4.parquet"
    with ParquetSink(path, schema) as sink:
        sink.write(_batch(schema))
        assert not path.exists()  # invisible until the block ends
        assert len(list(path.parent.iterdir())) == 1 and next(path.parent.iterdir()).name.startswith(".")
    table = pq.read_table(path)
    assert table.num_rows == 2 and table.schema.metadata[b"emovid"] == b'{"settings_hash": "abc"}'
    assert [p.name for p in path.parent.iterdir()] == ["v.mp4.parquet"]


def test_failure_leaves_no_file_and_keeps_the_previous_one(tmp_path):
    schema = face_schema()
    path = tmp_path / "v.parquet"
    with ParquetSink(path, schema) as sink:
        sink.write(_batch(schema, 3))
    with pytest.raises(RuntimeError):
        with ParquetSink(path, schema) as sink:
            sink.write(_batch(schema, 5))
            raise RuntimeError("crash mid-video")
    assert pq.read_table(path).num_rows == 3  # the earlier complete file is untouched
    assert [p.name for p in tmp_path.iterdir()] == ["v.parquet"]


def test_empty_output_is_a_valid_file(tmp_path):
    schema = face_schema()
    with ParquetSink(tmp_path / "e.parquet", schema):
        pass
    table = pq.read_table(tmp_path / "e.parquet")
    assert table.num_rows == 0 and table.schema.equals(schema)


def test_schema_mismatch_raises(tmp_path):
    schema = face_schema()
    other = face_schema(("a", "b"))
    with pytest.raises(ValueError, match="does not match"):
        with ParquetSink(tmp_path / "x.parquet", schema) as sink:
            sink.write(_batch(other))
    assert list(tmp_path.iterdir()) == []
