"""`emovid render`: annotated copies of analysed videos and photos, drawn from their Parquet files.

No re-analysis: each face's box, person id, emotion and confidence (and optionally a small bar
per class probability) come from the results. Videos are written at their own frame rate and
size; between two sampled frames a face's box moves linearly when its track is in both, and is
held for one sampling interval otherwise.
"""

from __future__ import annotations

import bisect
import contextlib
import functools
import logging
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import cv2
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from emovid.config import RENDER_CODECS
from emovid.media.discover import output_path
from emovid.errors import EmovidError
from emovid.classify.labels import EMOTION_COLOURS, EMOTIONS
from emovid.media.images import read_image
from emovid.store.results import result_files, to_frame
from emovid.store.schema import read_metadata

log = logging.getLogger(__name__)

RENDER_DIR = "_render"  # underscore: readers of the results folder skip it


@dataclass(frozen=True, slots=True)
class Rendered:
    """One annotated output (or why there is none: ``error``)."""

    video_id: str
    output: Path | None
    frames: int = 0
    codec: str | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class FaceMark:
    """What is drawn for one face on one frame."""

    box: np.ndarray  # x, y, w, h in frame pixels (float)
    track: int | None
    person: int | None
    emotion: str
    confidence: float
    probs: np.ndarray


class FacePlan:
    """The faces to draw on any frame of a video, from its sampled frames' rows."""

    def __init__(self, df: pd.DataFrame, classes: Sequence[str]) -> None:
        self.classes = tuple(classes)
        self.sampled = sorted(int(i) for i in df["frame_index"].unique())
        faces = df[df["emotion"].notna()]
        probs = faces[[f"prob_{c}" for c in self.classes]].to_numpy(dtype=np.float32, na_value=0.0)
        boxes = faces[["x", "y", "w", "h"]].to_numpy(dtype=np.float32)
        self.marks: dict[int, list[FaceMark]] = {i: [] for i in self.sampled}
        for row, box, p in zip(faces.itertuples(index=False), boxes, probs):
            self.marks[int(row.frame_index)].append(FaceMark(
                box, None if pd.isna(row.track_id) else int(row.track_id),
                None if pd.isna(row.person_id) else int(row.person_id), str(row.emotion), float(row.confidence), p))
        gaps = np.diff(self.sampled)
        self.hold = int(np.median(gaps)) if len(gaps) else 0  # frames a face stays drawn after its sample

    def at(self, frame: int) -> list[FaceMark]:
        k = bisect.bisect_right(self.sampled, frame) - 1
        if k < 0:
            return []
        before = self.sampled[k]
        if frame == before:
            return self.marks[before]
        after = self.sampled[k + 1] if k + 1 < len(self.sampled) else None
        later = {m.track: m for m in self.marks[after] if m.track is not None} if after is not None else {}
        shown = []
        for mark in self.marks[before]:
            if mark.track in later:
                w = (frame - before) / (after - before)
                shown.append(FaceMark((1 - w) * mark.box + w * later[mark.track].box, mark.track, mark.person,
                                      mark.emotion, mark.confidence, mark.probs))
            elif frame - before <= self.hold:
                shown.append(mark)
        return shown


def _bgr(hex_colour: str) -> tuple[int, int, int]:
    r, g, b = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return b, g, r


def draw_faces(image: np.ndarray, marks: Iterable[FaceMark], classes: Sequence[str], bars: bool = True) -> np.ndarray:
    """``image`` with each face's box, ``P<person> <emotion> <confidence>`` and (``bars``) one
    bar per class probability under the box, drawn in place; returns ``image``."""
    height, width = image.shape[:2]
    line = max(1, round(max(height, width) / 400))
    scale = max(0.4, min(height, width) / 720)
    for mark in marks:
        x, y, w, h = (int(round(v)) for v in mark.box)
        colour = _bgr(EMOTION_COLOURS.get(mark.emotion, "#ffffff"))
        cv2.rectangle(image, (x, y), (x + w, y + h), colour, line + 1)
        who = f"P{mark.person} " if mark.person is not None else ""
        text = f"{who}{mark.emotion} {mark.confidence:.0%}"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, line)
        top = y - th - base - 4 if y - th - base - 4 >= 0 else y + h + 2
        cv2.rectangle(image, (x, top), (x + tw + 4, top + th + base + 4), colour, cv2.FILLED)
        cv2.putText(image, text, (x + 2, top + th + 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), line, cv2.LINE_AA)
        if bars:
            _draw_bars(image, mark, classes, (x, y, w, h), scale, line)
    return image


def _draw_bars(image, mark: FaceMark, classes, box, scale: float, line: int) -> None:
    """One short bar per class probability, labelled with the class's first letters, beside the
    box (right of it, else left of it, else inside it)."""
    height, width = image.shape[:2]
    x, y, w, h = box
    font = max(0.35, 0.45 * scale)
    label_w = max(cv2.getTextSize(name[:3], cv2.FONT_HERSHEY_SIMPLEX, font, 1)[0][0] for name in classes)
    bar_h, bar_w = cv2.getTextSize("Eg", cv2.FONT_HERSHEY_SIMPLEX, font, 1)[0][1] + 4, max(40, round(60 * scale))
    panel_w = label_w + 3 + bar_w
    x0 = x + w + 4 if x + w + 4 + panel_w <= width else x - 4 - panel_w if x - 4 - panel_w >= 0 else x + 2
    y0 = min(max(y, 0), max(height - len(classes) * (bar_h + 2), 0))
    for i, (name, p) in enumerate(zip(classes, mark.probs)):
        top = y0 + i * (bar_h + 2)
        cv2.rectangle(image, (x0, top), (x0 + panel_w, top + bar_h + 1), (32, 32, 32), cv2.FILLED)
        cv2.putText(image, name[:3], (x0 + 1, top + bar_h - 2), cv2.FONT_HERSHEY_SIMPLEX, font, (255, 255, 255), 1,
                    cv2.LINE_AA)
        left = x0 + label_w + 3
        cv2.rectangle(image, (left, top + 1), (left + max(1, int(round(p * bar_w))), top + bar_h),
                      _bgr(EMOTION_COLOURS.get(name, "#ffffff")), cv2.FILLED)


@contextlib.contextmanager
def _quiet_ffmpeg():
    """Mutes the process's stderr: FFmpeg prints there directly, on a missing encoder and on
    every WebM writer ("tag ... is not supported", then it picks the right one itself)."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _open_writer(path: Path, codec: str, fps: float, size: tuple[int, int]) -> cv2.VideoWriter:
    with _quiet_ffmpeg():
        return cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), fps, size)


@functools.cache
def _working_codecs(container: str) -> tuple[str, ...]:
    """The codecs of :data:`~emovid.config.RENDER_CODECS` this OpenCV can write to ``container`` (probed once)."""
    probe = Path(os.environ.get("TMPDIR", "/tmp")) / f"emovid-codec-probe-{uuid.uuid4().hex[:8]}.{container}"
    found = []
    try:
        for codec in RENDER_CODECS[container]:
            writer = _open_writer(probe, codec, 10.0, (64, 64))
            if writer.isOpened():
                writer.write(np.zeros((64, 64, 3), np.uint8))
                found.append(codec)
            writer.release()
    finally:
        probe.unlink(missing_ok=True)
    return tuple(found)


def _render_video(source: str, df: pd.DataFrame, classes, output: Path, bars: bool, progress: bool) -> Rendered:
    video_id = str(df["video_id"].iloc[0])
    cap = cv2.VideoCapture(source, cv2.CAP_FFMPEG)
    if not cap.isOpened():
        cap.release()
        return Rendered(video_id, None, error=f"cannot open the source video {source}")
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    codecs = _working_codecs(output.suffix.lstrip("."))
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.stem}.tmp-{uuid.uuid4().hex[:8]}{output.suffix}")  # FFmpeg picks by suffix
    writer = _open_writer(tmp, codecs[0], fps, size)
    plan, frames = FacePlan(df, classes), 0
    try:
        with tqdm(total=total, unit="frame", desc=video_id, disable=not progress, leave=False) as bar:
            while True:
                ok, image = cap.read()
                if not ok:
                    break
                writer.write(draw_faces(image, plan.at(frames), classes, bars))
                frames += 1
                bar.update(1)
        writer.release()
        os.replace(tmp, output)
    finally:
        writer.release()
        cap.release()
        tmp.unlink(missing_ok=True)
    return Rendered(video_id, output, frames, codecs[0])


def _render_photo(source: str, df: pd.DataFrame, classes, output: Path, bars: bool) -> Rendered:
    video_id = str(df["video_id"].iloc[0])
    image = draw_faces(read_image(source), FacePlan(df, classes).at(0), classes, bars)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.stem}.tmp-{uuid.uuid4().hex[:8]}{output.suffix}")
    try:
        if not cv2.imwrite(str(tmp), image):
            raise OSError(f"cannot write {output}")
        os.replace(tmp, output)
    finally:
        tmp.unlink(missing_ok=True)
    return Rendered(video_id, output, 1)


def render(results: str | os.PathLike, videos: Sequence[str] | None = None, out: str | os.PathLike | None = None,
           bars: bool = True, progress: bool = True, container: str = "mp4") -> list[Rendered]:
    """Draw the results of ``results`` onto copies of their inputs: ``<id>.mp4`` (or ``.webm``)
    per video, ``<id>.jpg`` per photo, under ``out`` (default ``RESULTS/_render``). An input whose
    source file cannot be read gets a :class:`Rendered` with ``error``; the others go on.

    Args:
        videos: ids to render (default: every input with results).
        container: ``mp4`` (H.264 where OpenCV has it, else MPEG-4 Part 2) or ``webm`` (VP8:
            plays in browsers).

    Raises:
        FileNotFoundError: ``results`` does not exist.
        ValueError: an id in ``videos`` has no results there, or an unknown ``container``.
    """
    if container not in RENDER_CODECS:
        raise ValueError(f"container: expected one of {', '.join(RENDER_CODECS)}, got {container!r}")
    root = Path(results)
    if not root.is_dir():
        raise FileNotFoundError(f"results folder {root} does not exist")
    out_dir = Path(out) if out is not None else root / RENDER_DIR
    files = {}
    for path in result_files(root):
        meta = read_metadata(pq.read_schema(path))
        files[meta.get("video_id") or path.stem] = (path, meta)
    if videos:
        if missing := [v for v in videos if v not in files]:
            raise ValueError(f"no results for {', '.join(map(repr, missing))} in {root} "
                             f"(ids look like {next(iter(files), 'clip.mp4')!r})")
        files = {v: files[v] for v in videos}
    if not _working_codecs(container) and any(meta.get("kind") != "image" for _, meta in files.values()):
        raise EmovidError(f"this OpenCV build can write none of {', '.join(RENDER_CODECS[container])} to {container}")
    done = []
    for video_id, (path, meta) in tqdm(files.items(), unit="input", disable=not progress or len(files) < 2):
        classes = tuple(meta.get("settings", {}).get("classes", EMOTIONS))
        df = to_frame(pq.read_table(path), classes)
        source = meta.get("source")
        photo = meta.get("kind") == "image"
        suffix = ".jpg" if photo else f".{container}"
        name = output_path(out_dir, video_id).with_suffix("")  # the id's folders, escaped as the results are
        target = name if name.suffix.lower() == suffix else name.with_name(name.name + suffix)
        if not source or not os.path.exists(source):
            done.append(Rendered(video_id, None, error=f"source file {source} not found (moved since analysis?)"))
        elif df.empty:
            done.append(Rendered(video_id, None, error="the results file has no rows"))
        else:
            try:
                done.append(_render_photo(source, df, classes, target, bars) if photo
                            else _render_video(source, df, classes, target, bars, progress))
            except (EmovidError, OSError) as exc:  # e.g. a photo that no longer decodes, a full disk
                done.append(Rendered(video_id, None, error=str(exc)))
        if done[-1].error:
            log.warning("%s: not rendered: %s", video_id, done[-1].error)
    return done
