"""Per-person analytics: head pose, quality, the resting-face baseline, episodes, and the same
person across videos (``global_person_id``)."""

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

import emovid
from emovid.detect.faces import FaceDetector
from emovid.detect.pose import MEAN_FACE_MM, HeadPose, head_pose, rotation_from_angles
from emovid.report.analytics import episodes, with_baseline
from tests.helpers import write_video

DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize("yaw, pitch, roll", [(0, 0, 0), (35, 0, 0), (-20, 15, 10), (10, -25, -30)])
def test_pose_of_a_projected_mean_face_is_recovered(yaw, pitch, roll):
    """The solver and the angle conventions: a mean face turned by known angles, seen off-centre."""
    size, focal = (1280, 720), 1280.0
    camera = np.array([[focal, 0, 640], [0, focal, 360], [0, 0, 1]])
    points = (MEAN_FACE_MM @ rotation_from_angles(yaw, pitch, roll).T + [150, -80, 700]) @ camera.T
    estimate = head_pose((points[:, :2] / points[:, 2:])[None], size)[0]
    np.testing.assert_allclose(estimate, [yaw, pitch, roll], atol=0.5)


@pytest.fixture(scope="module")
def pose_of():
    detector = FaceDetector()
    head = HeadPose(detector.detect)
    return lambda image: head(image, detector.detect(image).largest())[0]


def test_roll_follows_a_rotated_face_and_yaw_flips_in_a_mirror(pose_of):
    image = cv2.imread(str(DATA / "45-m7-di-ph.jpg"))  # a man turned to the image's left
    upright = pose_of(image)
    assert upright[0] < -15 and abs(upright[2]) < 8
    assert pose_of(cv2.flip(image, 1))[0] > 15  # mirrored, he turns the other way
    frontal = cv2.imread(str(DATA / "single_face.jpg"))
    h, w = frontal.shape[:2]
    rolls = []
    for angle in (-10, 0, 10):  # OpenCV: a positive angle turns the picture counter-clockwise
        turned = cv2.warpAffine(frontal, cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1), (w, h),
                                borderMode=cv2.BORDER_REPLICATE)
        rolls.append(pose_of(turned)[2])
    # clockwise roll is positive; YuNet's own landmarks read about half of this turn (docs/analytics.md)
    assert rolls[0] - rolls[1] == pytest.approx(10, abs=3) and rolls[1] - rolls[2] == pytest.approx(10, abs=3)


def test_tilt_of_an_hd_face_matches_the_same_face_small():
    """A face 4x larger (about 700 px, an HD close-up) is fitted on every 5th pixel: its tilt
    stays within 1.5 degrees of the same face at its own size."""
    detector = FaceDetector()
    head = HeadPose(detector.detect)
    frontal = cv2.imread(str(DATA / "single_face.jpg"))
    for angle in (-10, 0, 10):
        tilts = []
        for scale in (1, 4):
            image = cv2.resize(frontal, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
            h, w = image.shape[:2]
            turned = cv2.warpAffine(image, cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1), (w, h),
                                    borderMode=cv2.BORDER_REPLICATE)
            tilts.append(head.tilts(turned, detector.detect(turned).largest())[0])
        assert tilts[1] == pytest.approx(tilts[0], abs=1.5)


def _copy(source: Path, path: Path, change=lambda f: f, seconds: float = 4.0) -> Path:
    """The first ``seconds`` of ``source``, each frame passed through ``change``, as ``path``."""
    cap = cv2.VideoCapture(str(source))
    fps, frames = cap.get(cv2.CAP_PROP_FPS), []
    while len(frames) < fps * seconds and (read := cap.read())[0]:
        frames.append(change(read[1]))
    cap.release()
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_video(path, frames, fps=fps)


def _rotated(frame, angle=15):
    h, w = frame.shape[:2]
    return cv2.warpAffine(frame, cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1), (w, h), borderMode=cv2.BORDER_REPLICATE)


@pytest.fixture(scope="module")
def three_videos_of_her(tmp_path_factory):
    """The woman of samples/sample.mp4 in three folders (as she is, rotated, blurred), and a man's video."""
    root = tmp_path_factory.mktemp("people")
    sample = Path(__file__).parents[1] / "samples" / "sample.mp4"
    videos = [_copy(sample, root / "a" / "her.mp4"), _copy(sample, root / "b" / "her_rotated.mp4", _rotated),
              _copy(sample, root / "c" / "her_blurred.mp4", lambda f: cv2.GaussianBlur(f, (0, 0), 6))]
    man = _copy(DATA / "single_face.mp4", root / "d" / "him.mp4")
    out = root / "out"
    emovid.analyze([*videos, root / "d"], out, in_process=True, progress=False)
    return root, out, man


def test_the_same_woman_in_three_videos_is_one_global_person(three_videos_of_her):
    root, out, _ = three_videos_of_her
    df = emovid.read_results(out)
    faces = df.dropna(subset=["person_id"])
    ids = faces.groupby("video_id")["global_person_id"].agg(set)
    assert ids["a/her.mp4"] == ids["b/her_rotated.mp4"] == ids["c/her_blurred.mp4"] != ids["d/him.mp4"]
    assert all(len(v) == 1 for v in ids)
    # roll follows the rotated copy (15 degrees counter-clockwise); blur lowers quality
    rolls = faces.groupby("video_id")["roll"].median()
    assert rolls["b/her_rotated.mp4"] - rolls["a/her.mp4"] == pytest.approx(-15, abs=4)
    quality = faces.groupby("video_id")["quality"].median()
    assert quality["c/her_blurred.mp4"] < quality["a/her.mp4"] - 0.1  # 1.0 -> 0.82 at a 6 px blur
    every_face = df.dropna(subset=["face_index"])
    trusted = emovid.read_results(out, min_quality=0.9).dropna(subset=["face_index"])
    assert (trusted["quality"] >= 0.9).all() and len(trusted) == (every_face["quality"] >= 0.9).sum() < len(every_face)
    summary = emovid.person_summary(df, by="global_person_id")
    assert sorted(summary["videos"]) == [1, 3]
    page = emovid.build_report(out).index.read_text()  # the report lists her across her three videos
    section = page[page.index("People in more than one video"):]
    section = section[:section.index("</table>")]
    assert "1 person," in section and section.count("<tr") == 4  # a header and her three videos
    assert all(v in section for v in ("a/her.mp4", "b/her_rotated.mp4", "c/her_blurred.mp4"))
    assert "d/him.mp4" not in section


def test_a_new_run_extends_the_links_and_keeps_the_ids(three_videos_of_her, tmp_path):
    root, out, man = three_videos_of_her
    before = emovid.read_results(out).dropna(subset=["person_id"]).groupby("video_id")["global_person_id"].first()
    again = _copy(man, root / "e" / "him_again.mp4", lambda f: cv2.convertScaleAbs(f, alpha=0.7, beta=10))
    emovid.analyze([root / "a", root / "b", root / "c", root / "d", root / "e"], out, in_process=True, progress=False)
    manifest = emovid.read_manifest(out)
    assert manifest["reused"].sum() == 4  # nothing re-analysed
    after = emovid.read_results(out).dropna(subset=["person_id"]).groupby("video_id")["global_person_id"].first()
    assert after[before.index].tolist() == before.tolist()
    assert after["e/him_again.mp4"] == after["d/him.mp4"]
    assert again.exists()


def test_a_folder_written_before_pose_and_quality_reads_with_nulls(three_videos_of_her, tmp_path):
    _, out, _ = three_videos_of_her
    table = pq.read_table(out / "a" / "her.mp4.parquet")
    old = table.drop_columns(["yaw", "pitch", "roll", "quality"])
    (tmp_path / "old").mkdir()
    pq.write_table(old, tmp_path / "old" / "her.mp4.parquet")
    df = emovid.read_results(tmp_path / "old")
    assert len(df) == len(table) and df["quality"].isna().all() and df["yaw"].isna().all()
    assert df["global_person_id"].isna().all()  # never linked
    assert len(emovid.read_results(tmp_path / "old", min_quality=0.1).dropna(subset=["face_index"])) == 0


def _timeline(probs_by_second: list[dict[str, float]], person=0, fps=4.0) -> pd.DataFrame:
    """A read_results-like frame of one person: each entry lasts a second, sampled at ``fps``."""
    rows = []
    for second, probs in enumerate(probs_by_second):
        for k in range(int(fps)):
            full = {f"prob_{c}": probs.get(c, 0.0) for c in emovid.EMOTIONS}
            rest = 1 - sum(full.values())
            full["prob_neutral"] += rest
            rows.append({"video_id": "v.mp4", "timestamp_s": second + k / fps, "track_id": person, "person_id": person,
                         "quality": 0.9, **full})
    df = pd.DataFrame(rows)
    df["track_id"] = df["track_id"].astype("Int32")
    df["person_id"] = df["person_id"].astype("Int32")
    return df


def test_episodes_of_a_sad_then_smiling_person():
    sad, joy, calm = {"sadness": 0.8}, {"joy": 0.85}, {}
    df = _timeline([calm] * 2 + [sad] * 4 + [joy] + [sad] * 0 + [joy] * 4 + [{"anger": 0.9}] + [joy] * 3)
    found = episodes(df, min_duration_s=1.5)
    assert found["emotion"].astype(str).tolist() == ["neutral", "sadness", "joy"]
    sadness, joy_row = found.iloc[1], found.iloc[2]
    # the smoothed timeline (1 s) follows a change within a second
    assert 2.0 <= sadness["start_s"] < 3.0 and 6.0 <= sadness["end_s"] < 7.0
    # the 1 s of anger is shorter than the minimum: the joy on both sides is one episode
    assert joy_row["end_s"] == pytest.approx(14.75, abs=0.01) and joy_row["duration_s"] > 7.5
    assert 0.5 < joy_row["mean_confidence"] <= joy_row["peak"] <= 0.85 + 1e-6
    assert episodes(df.iloc[:0]).empty


def test_baseline_takes_away_a_resting_face_that_leans_sad():
    resting = {"sadness": 0.35}  # this face reads a little sad at rest
    df = _timeline([resting] * 10 + [{"sadness": 0.8}] * 3)
    rel = with_baseline(df)
    at_rest, sad = rel.iloc[:40], rel.iloc[40:]
    assert at_rest["rel_sadness"].abs().max() < 0.01
    assert sad["rel_sadness"].min() > 0.4
    assert rel["rel_neutral"].iloc[:40].abs().max() < 0.01
    short = with_baseline(df.iloc[:4])  # too few rows to know the resting face
    assert short["rel_sadness"].isna().all()


def test_a_sad_then_smiling_video_gives_a_sadness_episode_then_a_joy_episode(tmp_path):
    """samples/sample.mp4: the woman cries for the first seconds, then laughs (looked at frame by frame)."""
    sample = Path(__file__).parents[1] / "samples" / "sample.mp4"
    emovid.analyze(sample, tmp_path / "out", in_process=True, progress=False)
    df = emovid.read_results(tmp_path / "out", baseline="person")
    found = emovid.episodes(df)
    assert set(found["person_id"]) == {0}
    sad = found[found["emotion"] == "sadness"].sort_values("duration_s").iloc[-1]
    joy = found[found["emotion"] == "joy"].sort_values("duration_s").iloc[-1]
    assert sad["duration_s"] >= 3 and joy["duration_s"] >= 3 and sad["end_s"] <= joy["start_s"]
    # she is seen all along: the episodes cover most of her time on screen, without overlap
    assert found["duration_s"].sum() > 0.8 * (df["timestamp_s"].max() - df["timestamp_s"].min())
    assert (found["start_s"].iloc[1:].to_numpy() >= found["end_s"].iloc[:-1].to_numpy() - 1e-9).all()
    # against her own resting face (her most neutral quarter), her crying reads sadness well above it
    assert df["rel_sadness"].notna().sum() == df["person_id"].notna().sum()
    crying = df[(df["timestamp_s"] >= sad["start_s"]) & (df["timestamp_s"] < sad["end_s"])]
    assert crying["rel_sadness"].mean() > 0.3


def test_links_of_a_video_whose_persons_changed_since_are_not_used(three_videos_of_her, tmp_path):
    """A video re-analysed by a run that stopped before linking: its rows get no global id until
    the next run links it again; the other videos keep theirs."""
    import json
    import shutil

    _, out, _ = three_videos_of_her
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    links = json.loads((copy / "_persons.json").read_text())
    for entry in links["persons"]:
        if entry["video_id"] == "a/her.mp4":
            entry["embedding"][0] += 0.5  # as if the file now held another analysis
    (copy / "_persons.json").write_text(json.dumps(links))
    df = emovid.read_results(copy).dropna(subset=["person_id"])
    linked = df.groupby("video_id")["global_person_id"].agg(lambda g: g.notna().all())
    assert not linked["a/her.mp4"] and linked.drop("a/her.mp4").all()
    from emovid.people.across_videos import link_persons

    assert link_persons(copy).global_persons == 2  # linked again: she rejoins herself
    df = emovid.read_results(copy).dropna(subset=["person_id"])
    assert df.groupby("video_id")["global_person_id"].first().nunique() == 2


def test_linking_rules_across_videos():
    from emovid.people.across_videos import _cluster

    def unit(*xs):
        v = np.zeros(128, np.float32)
        v[: len(xs)] = xs
        return v / np.linalg.norm(v)

    a, b, c = unit(1), unit(0, 1), unit(0, 0, 1)
    persons = [("v1", 0, 3, a), ("v1", 1, 3, a),  # one video's two persons: never one, however alike
               ("v2", 0, 3, a), ("v3", 0, 3, b), ("v4", 0, 3, b), ("v5", 0, 3, c)]
    ids = _cluster(persons, {}, 0.45)
    assert ids["v1", 0] != ids["v1", 1] and ids["v2", 0] in (ids["v1", 0], ids["v1", 1])
    assert ids["v3", 0] == ids["v4", 0] != ids["v5", 0]
    assert sorted(set(ids.values())) == [0, 1, 2, 3]  # numbered by first (video, person)
    # kept links stay, two kept global persons never merge, a newcomer joins the nearest allowed one
    kept = {("v3", 0): 7, ("v4", 0): 9}
    again = _cluster([*persons, ("v6", 0, 3, b)], kept, 0.45)
    assert again["v3", 0] == 7 and again["v4", 0] == 9 and again["v6", 0] in (7, 9)
    assert min(again[k] for k in again if k not in (*kept, ("v6", 0))) == 10  # new ids come after the kept ones
