import numpy as np
import pandas as pd
import pytest

from emovid.classify.labels import EMOTIONS
from emovid.report.timelines import person_summary, smooth, track_summary, track_timelines


def frame(rows, persons=None):
    """rows: (video, track, t, emotion index or None); ``persons`` maps track -> person (default: same id),
    and each track is its own shot."""
    records = []
    persons = persons or {}
    for video, track, t, k in rows:
        probs = np.eye(7)[k] if k is not None else np.full(7, np.nan)
        rec = {"video_id": video, "frame_index": int(t * 10), "timestamp_s": t,
               "face_index": 0 if k is not None else None, "track_id": track,
               "person_id": persons.get(track, track), "shot": track if track is not None else 0,
               "emotion": EMOTIONS[k] if k is not None else None,
               "confidence": 1.0 if k is not None else None}
        rec.update({f"prob_{c}": p for c, p in zip(EMOTIONS, probs)})
        records.append(rec)
    df = pd.DataFrame(records)
    df["track_id"] = df["track_id"].astype("Int32")
    df["person_id"] = df["person_id"].astype("Int32")
    df["emotion"] = pd.Categorical(df["emotion"], categories=EMOTIONS)
    return df


def test_smoothing_never_mixes_tracks_or_videos():
    # track 0 is always joy, track 1 always fear, interleaved in time; another video reuses id 0
    df = frame([("a", 0, t, 1) for t in (0, 1, 2)] + [("a", 1, t + 0.5, 6) for t in (0, 1, 2)]
               + [("b", 0, t, 4) for t in (0, 1)] + [("a", None, 3.0, None)])
    out = smooth(df, seconds=5.0)
    a0 = out[(out.video_id == "a") & (out.track_id == 0)]
    assert (a0["smooth_prob_joy"] == 1).all() and (a0["smooth_emotion"] == "joy").all()
    assert (out[(out.video_id == "a") & (out.track_id == 1)]["smooth_prob_fear"] == 1).all()
    assert (out[out.video_id == "b"]["smooth_emotion"] == "anger").all()
    assert out["smooth_prob_joy"].isna().sum() == 1  # the faceless row
    pd.testing.assert_series_equal(out["prob_joy"], df["prob_joy"])  # raw kept


def test_smoothing_is_time_aware():
    df = frame([("a", 0, 0.0, 0), ("a", 0, 0.1, 1), ("a", 0, 10.0, 1)])
    out = smooth(df, seconds=1.0)
    joy = out["smooth_prob_joy"].to_numpy(dtype=float)
    assert joy[1] == pytest.approx(1 - np.exp(-0.1))  # 0.1 s later: mostly the past
    assert joy[2] > 0.999  # 10 s later: the past is forgotten


@pytest.mark.parametrize("seconds", [0, -1])
def test_smoothing_window_must_be_positive(seconds):
    with pytest.raises(ValueError):
        smooth(frame([("a", 0, 0.0, 0)]), seconds)


def test_track_timelines_and_summary():
    df = frame([("a", 0, 0.0, 1), ("a", 0, 0.5, 1), ("a", 0, 1.0, 3), ("a", 1, 0.5, 6), ("a", None, 2.0, None)])
    timeline = track_timelines(df)
    assert len(timeline) == 4 and timeline["track_id"].tolist() == [0, 0, 0, 1]
    summary = track_summary(df).set_index("track_id")
    assert summary.loc[0, "first_seen_s"] == 0.0 and summary.loc[0, "last_seen_s"] == 1.0
    assert summary.loc[0, "samples"] == 3 and summary.loc[0, "dominant_emotion"] == "joy"
    assert summary.loc[0, "share_joy"] == pytest.approx(2 / 3) and summary.loc[0, "share_sadness"] == pytest.approx(1 / 3)
    assert summary.loc[1, "dominant_emotion"] == "fear"
    share_cols = [c for c in summary.columns if c.startswith("share_")]
    np.testing.assert_allclose(summary[share_cols].sum(axis=1), 1)


def test_summary_of_faceless_results_is_empty():
    assert track_summary(frame([("a", None, 0.0, None)])).empty


def test_resample_to_fixed_windows_per_track():
    from emovid.report.timelines import resample

    df = frame([("a", 0, 0.1, 1), ("a", 0, 0.6, 3), ("a", 0, 1.2, 3), ("a", 1, 0.2, 6), ("a", None, 2.5, None)])
    out = resample(df, step_s=1.0)
    assert out[["track_id", "window_start_s", "samples"]].values.tolist() == [[0, 0.0, 2], [0, 1.0, 1], [1, 0.0, 1]]
    assert out.loc[0, "prob_joy"] == pytest.approx(0.5) and out.loc[1, "dominant_emotion"] == "sadness"
    with pytest.raises(ValueError):
        resample(df, 0)


def test_emotion_shares():
    from emovid.report.timelines import emotion_shares

    df = frame([("a", 0, 0.0, 1), ("a", 0, 1.0, 1), ("a", 0, 2.0, 4), ("b", 0, 0.0, 0), ("b", None, 1.0, None)])
    shares = emotion_shares(df).set_index("video_id")
    assert shares.loc["a", "joy"] == pytest.approx(2 / 3) and shares.loc["b", "neutral"] == 1.0
    np.testing.assert_allclose(shares.sum(axis=1), 1)


def test_person_summary_spans_the_person_tracks_and_shots():
    # tracks 0 and 2 are one person seen in two shots; track 1 is someone else
    df = frame([("a", 0, 0.0, 1), ("a", 0, 0.5, 1), ("a", 1, 0.5, 6), ("a", 2, 3.0, 3), ("a", None, 2.0, None)],
               persons={0: 0, 1: 1, 2: 0})
    summary = person_summary(df).set_index("person_id")
    assert summary.loc[0, ["tracks", "shots", "samples"]].tolist() == [2, 2, 3]
    assert (summary.loc[0, "first_seen_s"], summary.loc[0, "last_seen_s"]) == (0.0, 3.0)
    assert summary.loc[0, "share_joy"] == pytest.approx(2 / 3) and summary.loc[1, "dominant_emotion"] == "fear"
    tracks = track_summary(df).set_index("track_id")
    assert tracks["person_id"].tolist() == [0, 1, 0] and tracks["shot"].tolist() == [0, 1, 2]
    assert person_summary(frame([("a", None, 0.0, None)])).empty


@pytest.fixture(scope="module")
def several_videos_out(tmp_path_factory):
    """A real output folder: two videos with a face, a photo of two, a faceless video and a junk file."""
    import shutil
    from pathlib import Path

    import cv2

    import emovid
    from tests.helpers import write_video

    root = tmp_path_factory.mktemp("several")
    sample = Path(__file__).resolve().parents[1] / "samples" / "sample.mp4"
    (root / "in").mkdir()
    shutil.copy(sample, root / "in" / "talk.mp4")
    capture = cv2.VideoCapture(str(sample))
    frames = [capture.read()[1] for _ in range(36)]
    capture.release()
    write_video(root / "in" / "short.mp4", frames[::2], fps=12.0)
    cv2.imwrite(str(root / "in" / "photo.jpg"), np.hstack([frames[10], frames[30]]))  # two faces: persons 0 and 1
    write_video(root / "in" / "nobody.mp4", 24)
    (root / "in" / "junk.mp4").write_bytes(b"not a video")
    emovid.analyze(root / "in", root / "out", in_process=True, progress=False)
    return root / "out"


@pytest.mark.parametrize("smooth_s", [None, 2.0])
def test_documented_summaries_on_a_folder_of_several_videos_and_a_photo(several_videos_out, smooth_s):
    import emovid

    df = emovid.read_results(several_videos_out, smooth=smooth_s)
    assert set(df["video_id"]) == {"talk.mp4", "short.mp4", "photo.jpg", "nobody.mp4"}  # junk: failed, no rows
    faces = df[df["person_id"].notna()]
    assert faces.groupby("video_id", observed=True)["person_id"].nunique().to_dict() == {
        "talk.mp4": 1, "short.mp4": 1, "photo.jpg": 2}
    for summary, key in ((emovid.person_summary(df), "person_id"), (emovid.track_summary(df), "track_id")):
        # one row per (video, id) that has faces, and each row's shares sum to 1
        expected = faces.groupby(["video_id", key], observed=True).ngroups if key == "person_id" else \
            df[df["track_id"].notna()].groupby(["video_id", key], observed=True).ngroups
        assert len(summary) == expected and set(summary["video_id"]) == {"talk.mp4", "short.mp4", "photo.jpg"}
        shares = summary[[c for c in summary.columns if c.startswith("share_")]]
        np.testing.assert_allclose(shares.sum(axis=1), 1.0, rtol=1e-6)
    assert (emovid.person_summary(df).groupby("video_id")["samples"].sum()
            == faces.groupby("video_id", observed=True).size()).all()
    by_video = emovid.emotion_shares(df)
    assert set(by_video["video_id"]) == {"talk.mp4", "short.mp4", "photo.jpg"}
    np.testing.assert_allclose(by_video[list(EMOTIONS)].sum(axis=1), 1.0, rtol=1e-6)
    windows = emovid.resample(df, 1.0)
    assert windows["samples"].sum() == df["emotion"].notna().sum()


def test_readme_pandas_duckdb_and_polars_snippets_on_a_folder_of_several_videos(several_videos_out):
    import duckdb
    import polars as pl

    df = pd.read_parquet(several_videos_out)  # every video at once, the manifest and temp files skipped
    shares = df.groupby("video_id", observed=True)["emotion"].value_counts(normalize=True)
    np.testing.assert_allclose(shares.groupby(level=0, observed=True).sum(), 1.0)
    glob = f"{several_videos_out.as_posix()}/**/*.parquet"
    counts = duckdb.sql(f"""
        SELECT video_id, person_id, emotion, count(*) AS n
        FROM read_parquet('{glob}')
        WHERE emotion IS NOT NULL
        GROUP BY ALL ORDER BY video_id, person_id, n DESC
    """).df()
    faces = df[df["emotion"].notna()]
    assert counts["n"].sum() == len(faces) and set(counts["video_id"]) == {"talk.mp4", "short.mp4", "photo.jpg"}
    joy = pl.read_parquet(glob).group_by("video_id", "shot").agg(pl.col("prob_joy").mean())
    assert set(joy["video_id"]) == set(df["video_id"]) and joy.height == df.groupby(["video_id", "shot"]).ngroups
