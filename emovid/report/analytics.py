"""Per-person analytics on ``read_results`` DataFrames: each person against their own resting
face, and emotion episodes.

Both work on what is in the table, so they cost nothing at analysis time and any setting can
be tried again without re-analysing.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from emovid.report.timelines import PROB_PREFIX, SMOOTH_PREFIX, _classes, prob_columns, smooth

REL_PREFIX = "rel_"
#: Rows at or above this quality count as "well seen" for a person's baseline.
BASELINE_MIN_QUALITY = 0.5
#: The share of a person's well-seen rows, most neutral first, whose median is their resting face.
BASELINE_SHARE = 0.25
#: A person needs this many well-seen rows for a baseline; with fewer, their rel_ columns are null.
BASELINE_MIN_ROWS = 8
EPISODE_COLUMNS = ["video_id", "person_id", "emotion", "start_s", "end_s", "duration_s", "peak", "mean_confidence"]


def person_baselines(df: pd.DataFrame, key: str = "person_id") -> pd.DataFrame:
    """Each person's resting face: per (video_id, ``key``), the median of every ``prob_`` column
    over their most neutral quarter of well-seen rows (quality >= 0.5; rows of old files without
    quality all count). Persons with fewer than ``BASELINE_MIN_ROWS`` such rows are left out.

    Raises:
        ValueError: the table has no ``prob_neutral`` column (a model without a neutral class).
    """
    probs = prob_columns(df)
    if PROB_PREFIX + "neutral" not in probs:
        raise ValueError("a person baseline needs the model's neutral class (prob_neutral)")
    seen = df[df[key].notna() & df[PROB_PREFIX + "neutral"].notna()]
    if "quality" in seen:
        seen = seen[seen["quality"].isna() | (seen["quality"] >= BASELINE_MIN_QUALITY)]
    rows = []
    for (video, person), group in seen.groupby(["video_id", key], observed=True, sort=True):
        if len(group) < BASELINE_MIN_ROWS:
            continue
        calm = group.nlargest(max(int(np.ceil(len(group) * BASELINE_SHARE)), BASELINE_MIN_ROWS // 2),
                              PROB_PREFIX + "neutral")
        rows.append({"video_id": video, key: person, **calm[probs].astype(float).median().to_dict()})
    return pd.DataFrame(rows, columns=["video_id", key, *probs])


def with_baseline(df: pd.DataFrame, key: str = "person_id") -> pd.DataFrame:
    """``df`` with ``rel_<emotion>`` columns: each probability minus that person's resting face's
    (:func:`person_baselines`), so a face that looks sad at rest reads 0 sadness when it rests
    and what it shows beyond that when it does not. Null where the person has no baseline."""
    probs = prob_columns(df)
    base = person_baselines(df, key).rename(columns={p: "_base_" + p for p in probs})
    joined = df[["video_id", key]].merge(base, on=["video_id", key], how="left")
    out = df.copy()
    for p in probs:
        rel = df[p].astype("Float64").to_numpy(dtype=float, na_value=np.nan) - joined["_base_" + p].to_numpy(dtype=float)
        out[REL_PREFIX + p[len(PROB_PREFIX):]] = pd.array(rel, dtype="Float32")
    return out


def episodes(df: pd.DataFrame, min_duration_s: float = 1.0, smooth_s: float = 1.0, max_gap_s: float = 1.0) -> pd.DataFrame:
    """One row per stretch of one emotion per person: ``video_id, person_id, emotion, start_s,
    end_s, duration_s, peak, mean_confidence``.

    The emotion of each moment is the smoothed timeline's (``smooth_emotion``; smoothed here with
    ``smooth_s`` seconds when ``df`` is not). A stretch ends where the emotion changes or the
    person is unseen for more than ``max_gap_s``; it lasts until the next sample when one follows
    within that gap. Stretches shorter than ``min_duration_s`` are dropped, and two stretches of
    the same emotion that only such a short one parted are joined. ``peak`` and
    ``mean_confidence`` are the highest and the mean smoothed probability of the emotion.

    Raises:
        ValueError: a duration or gap is negative, or ``smooth_s`` is not positive.
    """
    if min_duration_s < 0 or max_gap_s < 0:
        raise ValueError(f"min_duration_s and max_gap_s: expected >= 0, got {min_duration_s}, {max_gap_s}")
    if SMOOTH_PREFIX + "emotion" not in df:
        df = smooth(df, smooth_s)
    classes = _classes(df)
    faces = df[df["person_id"].notna() & df[SMOOTH_PREFIX + "emotion"].notna()]
    found = []
    for (video, person), group in faces.sort_values("timestamp_s", kind="stable").groupby(
            ["video_id", "person_id"], observed=True, sort=True):
        times = group["timestamp_s"].to_numpy(float)
        labels = group[SMOOTH_PREFIX + "emotion"].astype(object).to_numpy()
        values = group[[SMOOTH_PREFIX + PROB_PREFIX + c for c in classes]].to_numpy(float, na_value=np.nan)
        found_runs = runs(times, labels, max_gap_s)
        kept = [r for r in found_runs if r[3] - r[2] >= min_duration_s]
        merged: list[list] = []
        for label, (i, j, start, end) in ((labels[r[0]], r) for r in kept):
            if merged and merged[-1][0] == label and start - merged[-1][4] <= max(min_duration_s, max_gap_s):
                merged[-1][2], merged[-1][4] = j, end  # parted only by a short stretch: one episode
            else:
                merged.append([label, i, j, start, end])
        for label, i, j, start, end in merged:
            column = values[i:j, classes.index(label)]
            found.append({"video_id": video, "person_id": person, "emotion": label, "start_s": start, "end_s": end,
                          "duration_s": end - start, "peak": np.nanmax(column), "mean_confidence": np.nanmean(column)})
    out = pd.DataFrame(found, columns=EPISODE_COLUMNS)
    out["emotion"] = pd.Categorical(out["emotion"], categories=classes)
    return out.astype({"start_s": float, "end_s": float, "duration_s": float, "peak": float, "mean_confidence": float})


def runs(times: np.ndarray, labels: np.ndarray, max_gap_s: float) -> list[tuple[int, int, float, float]]:
    """(first row, end row (exclusive), start_s, end_s) of each run of one label with no gap over
    ``max_gap_s``; a run ends at the next sample's time when that follows within the gap."""
    found = []
    start = 0
    for k in range(1, len(times) + 1):
        gap = k < len(times) and times[k] - times[k - 1] > max_gap_s
        if k == len(times) or gap or labels[k] != labels[start]:
            end_s = times[k] if k < len(times) and not gap else times[k - 1]
            found.append((start, k, float(times[start]), float(end_s)))
            start = k
    return found
