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

from emovid.classify.labels import EMOTION_COLOURS, EMOTIONS
from emovid.store.manifest import MANIFEST_NAME, read_manifest
from emovid.store.results import result_files, to_frame
from emovid.store.schema import read_metadata
from emovid.report.timelines import (emotion_shares, person_summary, prob_columns, smooth as smooth_tracks, track_summary)
from emovid.people.across_videos import linked_persons
from emovid.report.analytics import EPISODE_COLUMNS, episodes, runs

log = logging.getLogger(__name__)

REPORT_DIR = "_report"  # underscore: pandas/pyarrow readers of the results folder skip it
MAX_PERSON_PANELS = 6
#: Rows under this quality are marked in the persons' strips (docs/analytics.md#quality).
LOW_QUALITY = 0.5


@dataclass(frozen=True, slots=True)
class Report:
    """Where the report was written and how many videos it covers."""

    folder: Path
    index: Path
    summary_csv: Path
    videos: int
    failed: int
    photos: int = 0


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
            ax.stackplot(times, *probs, colors=[EMOTION_COLOURS.get(c, None) for c in classes], labels=classes, step="mid")
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


#: Height (px) of the face thumbnails in the report.
THUMB_PX = 96
#: Width (px) of each person's emotion strip.
STRIP_PX = 600


@dataclass(slots=True)
class _Section:
    """What the HTML shows for one input."""

    video_id: str
    kind: str
    png: str | None
    rows: pd.DataFrame  # summary rows (video, then persons)
    tracks: pd.DataFrame  # one row per track, with its thumbnail file (or None)
    strips: dict  # person id -> SVG markup
    note: str | None = None
    episodes: pd.DataFrame | None = None  # one row per stretch of one emotion per person


def _best_faces(df: pd.DataFrame) -> pd.DataFrame:
    """Per track, its best face row: highest detector score, then largest box."""
    faces = df[df["track_id"].notna()].assign(area=lambda d: d["w"].astype(float) * d["h"].astype(float))
    faces = faces.sort_values(["track_id", "det_score", "area"], ascending=[True, False, False], kind="stable")
    return faces.drop_duplicates("track_id")


def _write_thumbnails(source: str | None, kind: str, best: pd.DataFrame, folder: Path, stem: str) -> tuple[dict, str | None]:
    """A JPEG thumbnail of each track's best face; returns ({track: file name}, note or None)."""
    if best.empty:
        return {}, None
    if not source or not Path(source).exists():
        return {}, f"source file {source} not found: face thumbnails left out"
    import cv2

    from emovid.errors import EmovidError
    from emovid.media.images import read_image
    from emovid.media.video import frames_at

    wanted = {int(f): rows for f, rows in best.groupby("frame_index")}
    if kind == "image":
        try:
            frames = [(0, read_image(source))]
        except EmovidError as exc:  # changed since analysis
            return {}, f"source file {source} no longer reads ({exc}): face thumbnails left out"
    else:
        frames = frames_at(source, wanted)
    names = {}
    (folder / "thumbs").mkdir(exist_ok=True)
    for index, image in frames:
        for row in wanted.get(index, best.iloc[:0]).itertuples():
            x, y, w, h = (int(v) for v in (row.x, row.y, row.w, row.h))
            pad = int(0.15 * max(w, h))
            crop = image[max(y - pad, 0):y + h + pad, max(x - pad, 0):x + w + pad]
            if crop.size == 0:
                continue
            crop = cv2.resize(crop, (max(1, round(crop.shape[1] * THUMB_PX / crop.shape[0])), THUMB_PX),
                              interpolation=cv2.INTER_AREA)
            name = f"thumbs/{stem}-t{int(row.track_id)}.jpg"
            if cv2.imwrite(str(folder / name), crop, [cv2.IMWRITE_JPEG_QUALITY, 85]):
                names[int(row.track_id)] = name
    return names, None


def _strip(df: pd.DataFrame, person, times: np.ndarray, interval: float, label: str) -> str:
    """An inline SVG strip of one person's emotion over the video: one coloured run per stretch of
    the same label (hover for times and label), blank where the person is not seen."""
    rows = df[df["person_id"] == person].drop_duplicates("timestamp_s").sort_values("timestamp_s")
    start, end = (float(times.min()), float(times.max()) + max(interval, 1e-3)) if len(times) else (0.0, 1.0)
    scale = STRIP_PX / max(end - start, 1e-6)
    t, emo = rows["timestamp_s"].to_numpy(float), rows[label].astype(object).to_numpy()
    step = max(interval, 1e-3)
    rects = []
    for i, k, _, _ in runs(t, emo, 1.5 * step):  # one coloured run per stretch of one label
        x0, x1 = (t[i] - start) * scale, (t[k - 1] + step - start) * scale
        colour = EMOTION_COLOURS.get(str(emo[i]), "#cccccc")
        rects.append(f"<rect x='{x0:.1f}' y='0' width='{max(x1 - x0, 1):.1f}' height='18' fill='{colour}'>"
                     f"<title>{t[i]:.2f}-{t[k - 1] + interval:.2f} s: {html.escape(str(emo[i]))}</title></rect>")
    # low-quality stretches (small, blurred, dark, turned or doubtful faces): a dark band underneath
    low = rows["quality"].lt(LOW_QUALITY).fillna(False).to_numpy(bool) if "quality" in rows else np.zeros(len(t), bool)
    for i, k, _, _ in runs(t, low, 1.5 * step):
        if low[i]:
            x0, x1 = (t[i] - start) * scale, (t[k - 1] + step - start) * scale
            rects.append(f"<rect class='low-quality' x='{x0:.1f}' y='14' width='{max(x1 - x0, 1):.1f}' height='4' "
                         f"fill='#222'><title>{t[i]:.2f}-{t[k - 1] + interval:.2f} s: low quality (under "
                         f"{LOW_QUALITY}): trust these emotions less</title></rect>")
    return (f"<svg class='strip' width='{STRIP_PX}' height='18' role='img' aria-label='emotion over time'>"
            f"<rect width='{STRIP_PX}' height='18' fill='#f4f4f4'/>{''.join(rects)}</svg>")


def build_report(out_dir: str | Path, smooth: float | None = None) -> Report:
    """Write ``OUT/_report/``: ``<video>.png`` timelines, ``summary.csv`` (per video and per person),
    ``episodes.csv`` (:func:`emovid.report.analytics.episodes`, per person; in the page too),
    a face thumbnail per track, and ``index.html`` listing every video with its persons (each
    with an emotion strip) and tracks, the photos with their faces, and the failed inputs.

    Raises:
        FileNotFoundError: ``out_dir`` does not exist.
    """
    out = Path(out_dir)
    if not out.is_dir():
        raise FileNotFoundError(f"results folder {out} does not exist")
    folder = out / REPORT_DIR
    folder.mkdir(exist_ok=True)
    summary_csv, episodes_csv = folder / "summary.csv", folder / "episodes.csv"
    sections, header_written, episodes_written, metadata = [], False, False, []
    for path in result_files(out):
        schema = pq.read_schema(path)
        meta = read_metadata(schema)
        metadata.append(meta)
        classes = tuple(meta.get("settings", {}).get("classes", EMOTIONS))
        kind = meta.get("kind", "video")
        df = to_frame(pq.read_table(path), classes)
        smoothed = smooth is not None and kind == "video" and df["track_id"].notna().any()
        if smoothed:
            df = smooth_tracks(df, smooth)
        video_id = str(df["video_id"].iloc[0]) if len(df) else path.stem
        png = _png_name(video_id)
        interval = _sample_interval(df)
        rows = pd.DataFrame(_summary_rows(df, video_id, interval))
        rows.to_csv(summary_csv, mode="a" if header_written else "w", header=not header_written, index=False)
        header_written = True
        thumbs, note = _write_thumbnails(meta.get("source"), kind, _best_faces(df), folder, Path(png).stem)
        tracks = track_summary(df).sort_values(["samples", "track_id"], ascending=[False, True], kind="stable")
        tracks["thumbnail"] = [thumbs.get(int(t)) for t in tracks["track_id"]]
        strips, found = {}, None
        if kind == "video":
            found = episodes(df, smooth_s=smooth or 1.0) if df["person_id"].notna().any() else None
            if found is not None and len(found):
                found.to_csv(episodes_csv, mode="a" if episodes_written else "w", header=not episodes_written,
                             index=False, float_format="%.3f")
                episodes_written = True
            plot_video(df, video_id, folder / png, "smooth_prob_" if smoothed else "prob_")
            times = np.sort(df["timestamp_s"].unique())
            label = "smooth_emotion" if smoothed else "emotion"
            strips = {p: _strip(df, p, times, interval, label) for p in _persons_longest_first(df)["person_id"]}
        sections.append(_Section(video_id, kind, png if kind == "video" else None, rows, tracks, strips, note, found))
    if not header_written:
        pd.DataFrame(columns=["video_id", "person_id"]).to_csv(summary_csv, index=False)
    if not episodes_written:
        pd.DataFrame(columns=EPISODE_COLUMNS).to_csv(episodes_csv, index=False)
    failed = _failed_videos(out)
    index = folder / "index.html"
    across = _across_videos(sections, linked_persons(out, metadata))
    index.write_text(_html(sections, failed, out.resolve().name, across), encoding="utf-8")
    return Report(folder, index, summary_csv, sum(s.kind == "video" for s in sections), len(failed),
                  sum(s.kind == "image" for s in sections))


def _failed_videos(out: Path) -> pd.DataFrame:
    if not (out / MANIFEST_NAME).exists():
        return pd.DataFrame(columns=["video_id", "status", "error"])
    manifest = read_manifest(out)
    return manifest[manifest["status"].isin(["failed", "partial"])][["video_id", "status", "error"]]


def _img(name: str | None, alt: str) -> str:
    return f"<img class='thumb' src='{html.escape(name)}' alt='{html.escape(alt)}'>" if name else ""


def _across_videos(sections: list[_Section], links: dict[tuple[str, int], int]) -> pd.DataFrame:
    """One row per person seen in more than one video: global id, how many videos and which,
    seconds with a face in all of them, and the person's rows (video, person, seconds, dominant)."""
    seen = []
    for s in sections:
        persons = s.rows[s.rows["person_id"] != "(all)"] if s.kind == "video" else s.rows.iloc[:0]
        for p in persons.itertuples():
            gid = links.get((s.video_id, int(p.person_id)))
            if gid is not None:
                seen.append({"global person": gid, "video": s.video_id, "person": int(p.person_id),
                             "seconds": float(p.seconds_with_face), "dominant": str(p.dominant_emotion)})
    table = pd.DataFrame(seen, columns=["global person", "video", "person", "seconds", "dominant"])
    counts = table.groupby("global person")["video"].transform("nunique")
    return table[counts > 1].sort_values(["global person", "video"], kind="stable")


def _html(sections: list[_Section], failed: pd.DataFrame, title: str, across: pd.DataFrame | None = None) -> str:
    videos = [s for s in sections if s.kind == "video"]
    photos = [s for s in sections if s.kind == "image"]
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>emovid report: {html.escape(title)}</title>",
             "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;font-size:13px}"
             "td,th{border:1px solid #ccc;padding:3px 6px;vertical-align:middle}img{max-width:100%}"
             f"img.thumb{{height:{THUMB_PX}px}}.legend span{{display:inline-block;padding:1px 6px;margin-right:4px}}"
             "</style></head><body>",
             f"<h1>emovid report: {html.escape(title)}</h1>",
             f"<p>{len(videos)} videos and {len(photos)} photos analysed, {len(failed)} inputs failed or partial.</p>",
             "<p class='legend'>" + "".join(f"<span style='background:{c}'>{html.escape(e)}</span>"
                                            for e, c in EMOTION_COLOURS.items())
             + f"<span style='border-bottom:4px solid #222'>low quality (under {LOW_QUALITY})</span></p>"]
    if len(failed):
        parts.append("<h2>Failed or partial inputs</h2>" + failed.to_html(index=False, classes="failed", na_rep=""))
    if across is not None and len(across):
        n = across["global person"].nunique()
        parts.append(f"<h2>People in more than one video</h2><p>{n} {'person' if n == 1 else 'people'}, linked by "
                     "face identity across the folder (global_person_id; docs/analytics.md).</p>"
                     + across.to_html(index=False, classes="across", float_format=lambda v: f"{v:.3g}"))
    fmt = lambda v: f"{v:.3g}"  # noqa: E731
    for s in videos:
        parts.append(f"<h2 id='{html.escape(s.png)}'>{html.escape(s.video_id)}</h2>")
        if s.note:
            parts.append(f"<p class='note'>{html.escape(s.note)}</p>")
        if s.rows.empty or s.rows["dominant_emotion"].isna().all():
            parts.append("<p class='note'>No face was seen in this video: the timeline is empty.</p>")
        persons = s.rows[s.rows["person_id"] != "(all)"]
        best = {}  # person -> the thumbnail of their longest track
        for t in s.tracks.itertuples():
            if not pd.isna(t.person_id) and t.thumbnail and int(t.person_id) not in best:
                best[int(t.person_id)] = t.thumbnail
        if len(persons):
            parts.append("<table class='persons'><tr><th>person</th><th>face</th><th>emotion over the video</th>"
                         "<th>seen (s)</th><th>tracks</th><th>dominant</th><th>mean confidence</th></tr>")
            for p in persons.itertuples():
                pid = int(p.person_id)
                parts.append(f"<tr><td>{pid}</td><td>{_img(best.get(pid), f'person {pid}')}</td>"
                             f"<td>{s.strips.get(pid, '')}</td><td>{p.seconds_with_face:.3g}</td><td>{p.tracks}</td>"
                             f"<td>{html.escape(str(p.dominant_emotion))}</td><td>{p.mean_confidence:.2f}</td></tr>")
            parts.append("</table>")
        parts.append(f"<img src='{html.escape(s.png)}' alt='timeline of {html.escape(s.video_id)}'>")
        if s.episodes is not None and len(s.episodes):
            shown = s.episodes.drop(columns="video_id")
            parts.append(f"<details><summary>{len(shown)} emotion episodes (at least 1 s; episodes.csv)</summary>"
                         + shown.to_html(index=False, na_rep="", float_format=fmt, classes="episodes") + "</details>")
        if len(s.tracks):
            parts.append(f"<details><summary>{len(s.tracks)} tracks</summary><table class='tracks'><tr><th>track</th>"
                         "<th>face</th><th>person</th><th>shot</th><th>seen (s)</th><th>dominant</th></tr>")
            for t in s.tracks.itertuples():
                parts.append(f"<tr><td>{int(t.track_id)}</td><td>{_img(t.thumbnail, f'track {int(t.track_id)}')}</td>"
                             f"<td>{'' if pd.isna(t.person_id) else int(t.person_id)}</td><td>{int(t.shot)}</td>"
                             f"<td>{fmt(t.first_seen_s)}-{fmt(t.last_seen_s)}</td>"
                             f"<td>{html.escape(str(t.dominant_emotion))}</td></tr>")
            parts.append("</table></details>")
        parts.append("<details><summary>summary rows</summary>"
                     + s.rows.to_html(index=False, na_rep="", float_format=fmt) + "</details>")
    if photos:
        parts.append("<h2>Photos</h2><table class='photos'><tr><th>photo</th><th>face</th><th>emotion</th>"
                     "<th>confidence</th></tr>")
        for s in photos:
            if s.tracks.empty:
                parts.append(f"<tr><td>{html.escape(s.video_id)}</td><td colspan='3'>no face found</td></tr>")
            for t in s.tracks.sort_values("track_id").itertuples():
                parts.append(f"<tr><td>{html.escape(s.video_id)}</td>"
                             f"<td>{_img(t.thumbnail, f'face {int(t.track_id)}') or html.escape(s.note or '')}</td>"
                             f"<td>{html.escape(str(t.dominant_emotion))}</td><td>{t.mean_confidence:.2f}</td></tr>")
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)
