import numpy as np
import pyarrow as pa
import pytest

from emovid.detect.faces import FaceDetections
from emovid.classify.labels import EMOTIONS
from emovid.people.stage import count_persons, with_person_ids
from emovid.store.rows import FrameFaces, to_record_batch
from emovid.store.schema import face_schema


def faces(n):
    boxes = np.array([[10 * i, 5, 20.6, 30.2] for i in range(n)], np.float32).reshape(-1, 4)
    return FaceDetections(boxes, np.full(n, 0.9, np.float32), np.zeros((n, 5, 2), np.float32))


def test_one_row_per_face_and_a_null_row_for_faceless_frames():
    frames = [FrameFaces(0, 0.0, faces(2)), FrameFaces(5, 0.5, faces(0)), FrameFaces(9, 0.9, faces(1))]
    probs = np.eye(len(EMOTIONS), dtype=np.float32)[[1, 3, 6]]
    batch = to_record_batch("v.mp4", frames, probs, face_schema(), EMOTIONS).to_pydict()
    assert batch["frame_index"] == [0, 0, 5, 9]
    assert batch["timestamp_s"] == [0.0, 0.0, 0.5, 0.9]
    assert batch["face_index"] == [0, 1, None, 0]
    assert batch["emotion"] == ["joy", "sadness", None, "fear"]
    assert batch["w"] == [21, 21, None, 21] and batch["x"][1] == 10
    assert batch["prob_fear"] == [0.0, 0.0, None, 1.0]
    assert batch["track_id"] == [None, None, None, None]  # tracking off


def test_track_ids_are_written():
    frames = [FrameFaces(0, 0.0, faces(2), np.array([3, 7], np.int32))]
    batch = to_record_batch("v", frames, np.full((2, 7), 1 / 7, np.float32), face_schema(), EMOTIONS).to_pydict()
    assert batch["track_id"] == [3, 7]


def test_probs_must_match_faces():
    with pytest.raises(ValueError, match="probs"):
        to_record_batch("v", [FrameFaces(0, 0.0, faces(2))], np.zeros((1, 7), np.float32), face_schema(), EMOTIONS)
    with pytest.raises(ValueError, match="track_ids"):
        FrameFaces(0, 0.0, faces(2), np.array([1]))


def test_person_ids_map_tracks_and_a_track_of_no_person_is_null():
    frames = [FrameFaces(0, 0.0, faces(3), np.array([0, 1, 2], np.int32)), FrameFaces(1, 0.1, faces(0)),
              FrameFaces(2, 0.2, faces(1), np.array([4], np.int32))]
    table = pa.Table.from_batches([to_record_batch("v", frames, np.full((4, 7), 1 / 7, np.float32), face_schema(), EMOTIONS)])
    persons = {0: 0, 1: None, 2: 0}  # 1: seen only inside a dissolve; 4: not in the map, keeps its own id
    assert with_person_ids(table, persons)["person_id"].to_pylist() == [0, None, 0, None, 4]
    assert count_persons(persons) == 1
    # frame 2 lies inside a transition: its face is no one's, whatever its track
    assert with_person_ids(table, persons, {2})["person_id"].to_pylist() == [0, None, 0, None, None]
