"""Per-face timelines from ``read_results`` DataFrames: smoothing, per-track rows, summaries.

Smoothing is applied when reading, so the Parquet files keep the raw per-frame probabilities
and any window can be tried without re-analysing.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

PROB_PREFIX = "prob_"
SMOOTH_PREFIX = "smooth_"


def prob_columns(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if c.startswith(PROB_PREFIX)]


def _classes(df: pd.DataFrame) -> list[str]:
    return [c[len(PROB_PREFIX):] for c in prob_columns(df)]


def _ema(times: np.ndarray, values: np.ndarray, tau: float) -> np.ndarray:
    """Exponential moving average over irregular timestamps: weight ``1 - exp(-dt / tau)``."""
    out = np.empty_like(values)
    out[0] = values[0]
    for i in range(1, len(values)):
        alpha = 1.0 - np.exp(-(times[i] - times[i - 1]) / tau)
        out[i] = alpha * values[i] + (1 - alpha) * out[i - 1]
    return out


def smooth(df: pd.DataFrame, seconds: float) -> pd.DataFrame:
    """Add ``smooth_prob_<class>`` and ``smooth_emotion`` columns: a time-aware EMA per track.

    Each (video, track) is smoothed on its own, in timestamp order, with time constant
    ``seconds``; tracks never mix. Rows without a track (no face, or tracking off) get nulls.
    Raw ``prob_`` columns are left as they are.

    Raises:
        ValueError: ``seconds`` is not positive, or the frame has no ``prob_`` columns.
    """
    if not seconds > 0:
        raise ValueError(f"seconds: expected > 0, got {seconds}")
    probs = prob_columns(df)
    if not probs:
        raise ValueError("expected prob_<class> columns (a DataFrame from emovid.read_results)")
    out = df.copy()
    smoothed = np.full((len(df), len(probs)), np.nan)
    tracked = df["track_id"].notna().to_numpy()
    sub = df.loc[tracked, ["video_id", "track_id", "timestamp_s"]].assign(_row=np.flatnonzero(tracked))
    values = df[probs].to_numpy(dtype=float, na_value=np.nan)
    for _, group in sub.sort_values("timestamp_s", kind="stable").groupby(["video_id", "track_id"], sort=False):
        rows = group["_row"].to_numpy()
        smoothed[rows] = _ema(group["timestamp_s"].to_numpy(), values[rows], seconds)
    classes = _classes(df)
    for i, col in enumerate(probs):
        out[SMOOTH_PREFIX + col] = pd.array(smoothed[:, i], dtype="Float32")
    best = np.where(np.isnan(smoothed).all(axis=1), -1, np.nan_to_num(smoothed, nan=-1).argmax(axis=1))
    labels = pd.Categorical.from_codes(best, categories=classes)
    out[SMOOTH_PREFIX + "emotion"] = labels
    return out


def track_timelines(df: pd.DataFrame) -> pd.DataFrame:
    """One row per track per timestamp (faceless and untracked rows dropped), ordered by video, track, time."""
    rows = df[df["track_id"].notna()]
    return rows.sort_values(["video_id", "track_id", "timestamp_s"], kind="stable").reset_index(drop=True)


def _summary(df: pd.DataFrame, key: str, extra: dict[str, tuple[str, str]]) -> pd.DataFrame:
    """Per (video, ``key``): time span, samples, ``extra`` aggregations, dominant emotion, shares."""
    timeline = df[df[key].notna()].sort_values(["video_id", key, "timestamp_s"], kind="stable")
    classes = _classes(df)
    columns = ["video_id", key, "first_seen_s", "last_seen_s", "samples", *extra, "dominant_emotion",
               "mean_confidence", *(f"share_{c}" for c in classes)]
    if timeline.empty:
        return pd.DataFrame(columns=columns)
    grouped = timeline.groupby(["video_id", key], observed=True, sort=True)
    summary = grouped.agg(first_seen_s=("timestamp_s", "min"), last_seen_s=("timestamp_s", "max"),
                          samples=("timestamp_s", "size"), mean_confidence=("confidence", "mean"), **extra)
    shares = emotion_shares(timeline, by=("video_id", key)).set_index(["video_id", key])
    summary = summary.join(shares.add_prefix("share_"))
    summary["dominant_emotion"] = pd.Categorical(
        [classes[i] for i in shares.to_numpy().argmax(axis=1)], categories=classes)
    return summary.reset_index()[columns]


def track_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Per (video, track): its shot and person, first/last seen, samples, dominant emotion, share of
    samples per emotion, mean confidence. Shares are over the track's samples, so they sum to 1."""
    return _summary(df, "track_id", {"shot": ("shot", "first"), "person_id": ("person_id", "first")})


def person_summary(df: pd.DataFrame, by: str = "person_id") -> pd.DataFrame:
    """Per (video, person): first/last seen, samples, how many tracks and shots the person spans,
    dominant emotion, share of samples per emotion, mean confidence.

    ``by="global_person_id"``: per person across the folder's videos instead, with how many
    ``videos`` they are in (``video_id`` holds the first).

    Raises:
        ValueError: ``by`` is neither "person_id" nor "global_person_id".
    """
    if by == "person_id":
        return _summary(df, "person_id", {"tracks": ("track_id", "nunique"), "shots": ("shot", "nunique")})
    if by != "global_person_id":
        raise ValueError(f"by: expected 'person_id' or 'global_person_id', got {by!r}")
    across = df.assign(_video=df["video_id"], video_id="")
    summary = _summary(across, by, {"videos": ("_video", "nunique"), "first_video": ("_video", "min")})
    return summary.drop(columns="video_id").rename(columns={"first_video": "video_id"})


def resample(df: pd.DataFrame, step_s: float = 1.0) -> pd.DataFrame:
    """Mean probabilities per fixed time window, per video and track.

    Returns one row per (video_id, track_id, window_start_s) that has at least one face sample:
    the mean of each ``prob_`` column, ``samples`` and the window's ``dominant_emotion``.

    Raises:
        ValueError: ``step_s`` is not positive.
    """
    if not step_s > 0:
        raise ValueError(f"step_s: expected > 0, got {step_s}")
    probs = prob_columns(df)
    faces = df[df["emotion"].notna()].copy()
    faces["window_start_s"] = np.floor(faces["timestamp_s"] / step_s) * step_s
    keys = ["video_id", "track_id", "window_start_s"]
    grouped = faces.groupby(keys, dropna=False, sort=True, observed=True)
    out = grouped[probs].mean().astype("float32")
    out.insert(0, "samples", grouped.size())
    classes = _classes(df)
    out["dominant_emotion"] = pd.Categorical(
        [classes[i] for i in out[probs].to_numpy().argmax(axis=1)] if len(out) else [], categories=classes)
    return out.reset_index()


def emotion_shares(df: pd.DataFrame, by: tuple[str, ...] = ("video_id",)) -> pd.DataFrame:
    """Share of face samples per emotion (columns) for each group of ``by``; rows sum to 1."""
    faces = df[df["emotion"].notna()]
    classes = _classes(df)
    if faces.empty:
        return pd.DataFrame(columns=[*by, *classes])
    # Only the groups that occur: crosstab(dropna=False) crossed every video with every id (a row
    # per combination, most of them empty), so the shares no longer lined up with their groups.
    emotion = pd.Categorical(faces["emotion"].astype(object), categories=classes)
    counts = (faces.assign(_emotion=emotion).groupby([*by, "_emotion"], observed=True, sort=True).size()
              .unstack("_emotion", fill_value=0))
    shares = counts.div(counts.sum(axis=1), axis=0).reindex(columns=classes, fill_value=0.0).astype("float64")
    return shares.reset_index().rename_axis(columns=None)
