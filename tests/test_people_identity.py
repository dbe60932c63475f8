"""Person ids: constrained clustering of tracks, real identity embeddings, and whole videos."""

import numpy as np
import pyarrow.parquet as pq
import pytest

from emovid.people.identity import identity_backend
from emovid.people.persons import PERSON_DISTANCE, cluster_persons, co_occurring
from emovid.run.pipeline import VideoTask
from emovid.store.schema import read_metadata
from tests.helpers import needs_shared, people_heads, recolour, same_person_heads, shots_video

needs_identity = pytest.mark.skipif(identity_backend() == "none", reason="identity model wheels not installed")


def _unit(*values):
    v = np.array(values, float)
    return v / np.linalg.norm(v)


@pytest.mark.parametrize("embeddings, cannot_link, expected", [
    ({0: _unit(1, 0), 1: _unit(0, 1), 2: _unit(1, 0.05)}, set(), {0: 0, 1: 1, 2: 0}),  # 0 and 2 alike
    ({0: _unit(1, 0), 1: _unit(0, 1), 2: _unit(1, 0.05)}, {(0, 2)}, {0: 0, 1: 1, 2: 2}),  # ...but seen together
    ({0: _unit(1, 0), 2: _unit(1, 0)}, set(), {0: 0, 1: 1, 2: 0}),  # no embedding for 1: alone, numbered in order
    ({}, set(), {0: 0, 1: 1, 2: 2}),  # no identity model: person = track
])
def test_cluster_persons(embeddings, cannot_link, expected):
    assert cluster_persons([0, 1, 2], embeddings, cannot_link) == expected


def test_cannot_link_holds_for_whole_clusters():
    # 0~1 and 1~2 are close, but 0 and 2 were seen together: 2 must not join {0, 1}
    e = {0: _unit(1, 0), 1: _unit(1, 0.2), 2: _unit(1, 0.4)}
    persons = cluster_persons([0, 1, 2], e, {(0, 2)}, max_distance=0.5)
    assert persons[0] != persons[2]


def test_only_tracks_that_could_merge_need_an_embedding():
    from emovid.people.persons import mergeable

    assert mergeable([0], set()) == set()  # one track: nothing to group
    assert mergeable([0, 1], {(0, 1)}) == set()  # always seen together
    assert mergeable([0, 1, 2], {(0, 1)}) == {0, 1, 2}


def test_co_occurring_pairs():
    frames = np.array([0, 0, 1, 2, 2, 2])
    tracks = np.array([0, 1, 1, 1, 2, 3])
    assert co_occurring(frames, tracks) == {(0, 1), (1, 2), (1, 3), (2, 3)}


@needs_shared
@needs_identity
def test_identity_embedding_tells_people_apart_and_keeps_one_person_across_expressions():
    from emovid.detect.faces import FaceDetector
    from emovid.people.identity import FaceEmbedder

    detector, embedder = FaceDetector(), FaceEmbedder()

    def embed(patch):
        return embedder.embed(patch, detector.detect(patch).largest().boxes[0])

    def distances(patches, look="colour"):
        vectors = [embed(recolour(p, look)) for p in patches]
        return np.array([np.linalg.norm(a - b) for i, a in enumerate(vectors) for b in vectors[i + 1:]])

    d_same = distances(same_person_heads().values())  # one person, six expressions
    for look in ("colour", "grey"):  # without colour, faces carry less evidence: still none merge
        d_other = distances(people_heads(), look)  # ten different people
        assert (d_other >= PERSON_DISTANCE).all(), look  # 45 pairs of different people: none would merge
    # posed expressions move one face a lot (0.24-0.63 here): some pairs of single faces still join
    # (a track's person is the mean of its best faces, which varies less)
    assert (d_same < PERSON_DISTANCE).mean() >= 0.15 and np.median(d_same) < np.median(d_other) - 0.1


@needs_identity
def test_the_resnet_in_onnxruntime_gives_dlibs_own_embeddings():
    """The identity ResNet rebuilt from dlib's model file (onnxruntime) embeds real faces of the
    sample video as dlib's own network does, to float rounding."""
    import cv2
    import dlib

    from emovid.assets import identity_model_folder
    from emovid.detect.faces import FaceDetector
    from emovid.people.identity import FaceEmbedder
    from tests.helpers import shared_video

    embedder, detector = FaceEmbedder(), FaceDetector()
    assert embedder.runtime == "onnxruntime"
    dlib_net = dlib.face_recognition_model_v1(str(identity_model_folder() / "dlib_face_recognition_resnet_model_v1.dat"))
    capture = cv2.VideoCapture(str(shared_video("WolfgangLanger_Pexels.mp4")))
    ours, theirs = [], []
    for i in range(0, 400, 50):
        capture.set(cv2.CAP_PROP_POS_FRAMES, i)
        frame = capture.read()[1]
        box = detector.detect(frame).largest().boxes[0]
        ours.append(embedder.embed(frame, box))
        rgb = np.ascontiguousarray(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
        x, y, w, h = (int(round(v)) for v in box)
        chip = dlib.get_face_chip(rgb, embedder._shape(rgb, dlib.rectangle(x, y, x + w, y + h)), size=150, padding=0.25)
        theirs.append(np.asarray(dlib_net.compute_face_descriptor(chip), np.float32))
    capture.release()
    np.testing.assert_allclose(np.stack(ours), np.stack(theirs), atol=1e-5)
    assert np.linalg.norm(ours[0] - ours[-1]) < 0.6  # one man, sad then smiling: "same" on dlib's LFW scale


@needs_shared
@needs_identity
def test_person_comes_back_after_a_cut_with_another_expression(analyzer, tmp_path):
    jo = same_person_heads()
    heads = people_heads()
    shots = [[(jo["anger"], (80, 100)), (heads[1], (380, 100))],  # jo and someone
             [(heads[2], (80, 100))],                            # a stranger where jo stood
             [],                                                 # a faceless shot
             [(heads[3], (380, 100)), (jo["disgust"], (80, 100))]]  # jo again, disgusted
    video = shots_video(tmp_path / "back.mp4", shots, frames_per_shot=10, fps=10)
    out = tmp_path / "back.parquet"
    result = analyzer(VideoTask(str(video), "back.mp4", str(out)))
    assert (result.status, result.shots) == ("ok", 4)
    df = pq.read_table(out).to_pandas().dropna(subset=["track_id"])
    assert result.tracks == df["track_id"].nunique() == 5 and result.persons == df["person_id"].nunique() == 4
    left = df[df["x"] < 250]
    jo_rows = left[left["shot"].isin([0, 3])]
    assert jo_rows["person_id"].nunique() == 1 and jo_rows["track_id"].nunique() == 2
    stranger = left[left["shot"] == 1]
    assert not set(stranger["person_id"]) & set(jo_rows["person_id"])
    assert not (df["shot"] == 2).any()  # the faceless shot has no tracked rows
    meta = read_metadata(pq.read_schema(out))
    assert (meta["shots"], meta["tracks"], meta["persons"]) == (4, 5, 4)


def test_gallery_keeps_the_best_faces_small():
    from emovid.detect.faces import FaceDetections
    from emovid.people.identity import MAX_KEPT_FACE, SAMPLES_PER_TRACK, TrackGallery

    gallery = TrackGallery()
    frame = np.full((2000, 3000, 3), 128, np.uint8)  # well lit
    for k, side in enumerate([30, 120, 900, 400, 80]):  # 30 px is too small to embed
        faces = FaceDetections(np.array([[100, 100, side, side]], np.float32), np.ones(1, np.float32),
                               np.zeros((1, 5, 2), np.float32))
        gallery.add(frame, faces, np.array([7]))
    kept = gallery.kept(7)
    assert len(kept) == SAMPLES_PER_TRACK
    assert sorted(round(s.quality) for s in kept) == [120, 400, 900]  # the largest three, the tiny one never
    assert all(max(s.box[2:]) <= MAX_KEPT_FACE + 1e-3 and max(s.patch.shape[:2]) <= 2 * MAX_KEPT_FACE + 2 for s in kept)


def test_gallery_forgets_the_faces_of_a_dissolve_and_keeps_the_ones_before():
    from emovid.detect.faces import FaceDetections
    from emovid.people.identity import RECENT_S, TrackGallery

    gallery = TrackGallery()
    frame = np.full((400, 400, 3), 128, np.uint8)
    # three good faces, then a dissolve from 0.8 s whose blends are larger (they would push all three out)
    for t, side in [(0.0, 60), (0.3, 70), (0.5, 80), (1.0, 200), (1.1, 210), (1.2, 220)]:
        faces = FaceDetections(np.array([[10, 10, side, side]], np.float32), np.ones(1, np.float32),
                               np.zeros((1, 5, 2), np.float32))
        gallery.add(frame, faces, np.array([3]), timestamp_s=t)
        if t > 0.8:  # a face seen only inside the blend
            gallery.add(frame, faces, np.array([4]), timestamp_s=t)
    assert [s.timestamp_s for s in gallery.kept(3)] == [1.2, 1.1, 1.0]  # no dissolve known yet
    gallery.forget_since(0.8)
    assert [s.timestamp_s for s in gallery.kept(3)] == [0.5, 0.3, 0.0]  # the faces before it, all three
    assert gallery.kept(4) == []  # none left: embeddings() skips the track, which keeps its own person

    # once a face is older than RECENT_S it is settled: a better later face pushes it out for good
    later = TrackGallery()
    for t, side in [(0.0, 60), (0.1, 70), (0.2, 80), (RECENT_S + 1.0, 200), (2 * RECENT_S + 3.0, 210)]:
        later.add(frame, FaceDetections(np.array([[10, 10, side, side]], np.float32), np.ones(1, np.float32),
                                        np.zeros((1, 5, 2), np.float32)), np.array([3]), timestamp_s=t)
    later.forget_since(2 * RECENT_S + 2.0)
    assert sorted(s.timestamp_s for s in later.kept(3)) == [0.1, 0.2, RECENT_S + 1.0]


@pytest.mark.parametrize("fade_to", ["black", "white"])
def test_gallery_skips_faces_in_a_fade_and_ranks_dim_or_washed_out_ones_lower(fade_to):
    from emovid.detect.faces import FaceDetections
    from emovid.people.identity import TrackGallery

    def level(value):  # a brightness on the way to black, or the same distance from white
        return value if fade_to == "black" else 255 - value

    gallery = TrackGallery()
    box = FaceDetections(np.array([[10, 10, 100, 100]], np.float32), np.ones(1, np.float32), np.zeros((1, 5, 2), np.float32))
    for value in (5, 30, 128, 128, 128):  # a face in the fade, a dim (or washed-out) one, three well lit
        gallery.add(np.full((200, 200, 3), level(value), np.uint8), box, np.array([1]))
    assert [int(s.patch.mean()) for s in gallery.kept(1)] == [level(128)] * 3  # the dim one lost its place
    faded = TrackGallery()
    faded.add(np.full((200, 200, 3), level(5), np.uint8), box, np.array([2]))
    assert faded.kept(2) == []
