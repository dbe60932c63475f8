import pyarrow as pa

from emovid.classify.labels import EMOTIONS
from emovid.store.schema import FACE_COLUMNS, MANIFEST_SCHEMA, face_schema, read_metadata


def test_face_schema_has_declared_columns_and_one_prob_per_class():
    schema = face_schema()
    assert schema.names[:3] == ["video_id", "frame_index", "timestamp_s"]
    assert [n for n in schema.names if n.startswith("prob_")] == [f"prob_{c}" for c in EMOTIONS]
    assert schema.field("timestamp_s").type == pa.float64()
    for name in ("x", "y", "w", "h"):
        assert schema.field(name).type == pa.int32()
    assert set(FACE_COLUMNS) <= set(schema.names)
    assert not schema.field("video_id").nullable and schema.field("emotion").nullable


def test_empty_table_is_valid_and_metadata_round_trips():
    schema = face_schema(metadata={"model_name": "m", "classes": list(EMOTIONS)})
    table = schema.empty_table()
    assert table.num_rows == 0 and table.schema.equals(schema)
    assert read_metadata(table.schema)["model_name"] == "m"
    assert read_metadata(face_schema()) == {}


def test_manifest_schema_columns():
    assert {"video_id", "status", "error", "frames_decoded", "frames_sampled", "faces", "duration_s",
            "fps", "wall_s"} <= set(MANIFEST_SCHEMA.names)
