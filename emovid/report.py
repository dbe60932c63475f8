"""`emovid report`: a timeline PNG per video, summary tables and a static index.html.

Built one video at a time (read, plot, close the figure, append its summary rows), so a run of
hundreds of videos never holds more than one video's rows or one figure in memory.
"""

from __future__ import annotations

import hashlib
import html
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from emovid.labels import EMOTIONS
from emovid.manifest import MANIFEST_NAME, read_manifest
from emovid.results import result_files, to_frame
from emovid.schema import read_metadata
from emovid.timelines import emotion_shares, person_summary, prob_columns, smooth as smooth_tracks

log = logging.getLogger(__name__)

REPORT_DIR = "_report"  # underscore: pandas/pyarrow readers of the results folder skip it
COLOURS = {"neutral": "#9e9e9e", "joy": "#f4b400", "surprise": "#ab47bc", "sadness": "#4285f4",
           "anger": "#db4437", "disgust": "#0f9d58", "fear": "#ff7043"}
MAX_PERSON_PANELS = 6


@dataclass(frozen=True, slots=True)
class Report:
    """Where the report was written and how many videos it covers."""

    folder: Path
    index: Path
    summary_csv: Path
    videos: int
    failed: int


def _summary_rows(df: pd.DataFrame, video_id: str, interval: float) -> list[dict]:
    """One row for the video and one per person (longest seen first): time with a face, the
    person's tracks and shots, dominant emotion, shares, confidence."""
    classes = [c[len("prob_"):] for c in prob_columns(df)]
    duration = round(float(df["timestamp_s"].max() - df["timestamp_s"].min() + interval), 3) if len(df) else 0.0
    faces = df[df["emotion"].notna()]
    shares = emotion_shares(df).drop(columns="video_id").to_numpy()  # one row, or none without faces
    rows = [{
        "video_id": video_id, "person_id": "(all)", "tracks": df["track_id"].nunique(),
        "shots": df["shot"].nunique(), "duration_s": duration,
        "seconds_with_face": round(faces["timestamp_s"].nunique() * interval, 3),
        "dominant_emotion": classes[int(shares[0].argmax())] if len(faces) else None,
        "mean_confidence": round(float(faces["confidence"].mean()), 4) if len(faces) else None,
        **{f"share_{c}": round(float(shares[0][i]), 4) if len(faces) else 0.0 for i, c in enumerate(classes)},
    }]
    for person in _persons_longest_first(df).to_dict("records"):
        rows.append({
            "video_id": video_id, "person_id": str(int(person["person_id"])), "tracks": int(person["tracks"]),
            "shots": int(person["shots"]), "duration_s": duration,
            "seconds_with_face": round(person["samples"] * interval, 3),  # one row per person per timestamp
            "dominant_emotion": person["dominant_emotion"],
            "mean_confidence": round(float(person["mean_confidence"]), 4),
            **{f"share_{c}": round(float(person[f"share_{c}"]), 4) for c in classes},
        })
    return rows


def _persons_longest_first(df: pd.DataFrame) -> pd.DataFrame:
    summary = person_summary(df)
    return summary.sort_values(["samples", "person_id"], ascending=[False, True], kind="stable")


def _sample_interval(df: pd.DataFrame) -> float:
    times = np.sort(df["timestamp_s"].unique())
    return float(np.median(np.diff(times))) if len(times) > 1 else 0.0


def plot_video(df: pd.DataFrame, video_id: str, path: Path, prob_prefix: str = "prob_") -> None:
    """Stacked probabilities over time, one panel per person (the ``MAX_PERSON_PANELS`` seen
    longest; the title says how many more there are); gaps where the person was not seen."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    times = np.sort(df["timestamp_s"].unique())
    persons = _persons_longest_first(df)["person_id"].tolist()
    tracks = persons[:MAX_PERSON_PANELS]
    panels = tracks or [None]
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, 1.8 + 1.6 * len(panels)), sharex=True, squeeze=False)
    classes = [c[len("prob_"):] for c in prob_columns(df)]
    for ax, track in zip(axes[:, 0], panels):
        if track is None:
            ax.text(0.5, 0.5, "no face seen in this video", ha="center", va="center", transform=ax.transAxes)
            ax.set_yticks([])
        else:
            rows = df[df["person_id"] == track].drop_duplicates("timestamp_s").set_index("timestamp_s")
            rows = rows.reindex(times)  # not seen at a sampled time -> NaN -> a gap in the plot
            probs = [rows[f"{prob_prefix}{c}"].to_numpy(dtype=float, na_value=np.nan) for c in classes]
            ax.stackplot(times, *probs, colors=[COLOURS.get(c, None) for c in classes], labels=classes, step="mid")
            ax.set_ylim(0, 1)
            ax.set_ylabel(f"person {int(track)}")
        ax.set_xlim(times.min() if len(times) else 0, times.max() if len(times) > 1 else 1)
    left_out = len(persons) - len(tracks)
    axes[0, 0].set_title(video_id + (f" ({left_out} more persons seen less, not plotted)" if left_out else ""))
    axes[-1, 0].set_xlabel("time (s)")
    if tracks:
        axes[0, 0].legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _png_name(video_id: str) -> str:
    """A safe, unique file name for a video's plot (ids can hold slashes and any characters)."""
    digest = hashlib.sha1(video_id.encode()).hexdigest()[:8]
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in video_id) + f"-{digest}.png"


def build_report(out_dir: str | Path, smooth: float | None = None) -> Report:
    """Write ``OUT/_report/``: ``<video>.png`` timelines, ``summary.csv`` (per video and per person),
    and ``index.html`` listing every video (failed ones from the manifest, unplotted).

    Raises:
        FileNotFoundError: ``out_dir`` does not exist.
    """
    out = Path(out_dir)
    if not out.is_dir():
        raise FileNotFoundError(f"results folder {out} does not exist")
    folder = out / REPORT_DIR
    folder.mkdir(exist_ok=True)
    summary_csv = folder / "summary.csv"
    sections, header_written, n_videos = [], False, 0
    for path in result_files(out):
        schema = pq.read_schema(path)
        classes = tuple(read_metadata(schema).get("settings", {}).get("classes", EMOTIONS))
        df = to_frame(pq.read_table(path), classes)
        if smooth is not None and df["track_id"].notna().any():
            df = smooth_tracks(df, smooth)
        video_id = str(df["video_id"].iloc[0]) if len(df) else path.stem
        png = _png_name(video_id)
        plot_video(df, video_id, folder / png, "smooth_prob_" if smooth is not None and "smooth_prob_joy" in df else "prob_")
        rows = pd.DataFrame(_summary_rows(df, video_id, _sample_interval(df)))
        rows.to_csv(summary_csv, mode="a" if header_written else "w", header=not header_written, index=False)
        header_written = True
        sections.append((video_id, png, rows))
        n_videos += 1
    if not header_written:
        pd.DataFrame(columns=["video_id", "person_id"]).to_csv(summary_csv, index=False)
    failed = _failed_videos(out)
    index = folder / "index.html"
    index.write_text(_html(sections, failed, out.name), encoding="utf-8")
    return Report(folder, index, summary_csv, n_videos, len(failed))


def _failed_videos(out: Path) -> pd.DataFrame:
    if not (out / MANIFEST_NAME).exists():
        return pd.DataFrame(columns=["video_id", "status", "error"])
    manifest = read_manifest(out)
    return manifest[manifest["status"].isin(["failed", "partial"])][["video_id", "status", "error"]]


def _html(sections, failed: pd.DataFrame, title: str) -> str:
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>emovid report: {html.escape(title)}</title>",
             "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;font-size:13px}"
             "td,th{border:1px solid #ccc;padding:3px 6px}img{max-width:100%}</style></head><body>",
             f"<h1>emovid report: {html.escape(title)}</h1>",
             f"<p>{len(sections)} videos analysed, {len(failed)} failed or partial.</p>"]
    if len(failed):
        parts.append("<h2>Failed or partial videos</h2>" + failed.to_html(index=False, classes="failed", na_rep=""))
    for video_id, png, rows in sections:
        parts.append(f"<h2 id='{html.escape(png)}'>{html.escape(video_id)}</h2>")
        if rows.empty or rows["dominant_emotion"].isna().all():
            parts.append("<p class='note'>No face was seen in this video: the timeline is empty.</p>")
        parts.append(rows.to_html(index=False, na_rep="", float_format=lambda v: f"{v:.3g}"))
        parts.append(f"<img src='{html.escape(png)}' alt='timeline of {html.escape(video_id)}'>")
    parts.append("</body></html>")
    return "\n".join(parts)
