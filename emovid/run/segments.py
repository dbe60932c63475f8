"""Long videos in parallel: split into time segments, analyse each as its own task, merge.

A worker that opens a video longer than ``AnalyzeConfig.segment_s`` answers "split" instead of
analysing it; the driver queues one task per :class:`~emovid.media.video.Segment` (ahead of other
videos, so the long video stops being a straggler) and, when all are in, merges their part
files into the video's one Parquet file:

- frames: segment bounds are exact (by presentation time, whole sampling periods), so the
  merged rows are the rows of an unsplit run; frame indices are shifted by the frames
  decoded in earlier segments.
- shots: each segment counts the cuts in its range (its reader sees the frames just before
  it, so a cut exactly on the boundary counts); shot indices are shifted by the cuts of
  earlier segments.
- tracks: each segment tracks on its own; at each boundary, tracks that end within
  ``track_gap_s`` before it are joined to tracks of the same shot that start after it with
  the tracker's own match score, and ids are renumbered in order of appearance, as an
  unsplit run numbers them.
- persons: each segment stores its tracks' identity embeddings in its part file; the merge
  clusters the whole video's tracks into person ids (:mod:`emovid.people.identity`).
- a segment that cannot be read exactly (no timestamps, failed seek) makes the driver redo
  the whole video in one piece; a failed segment fails the video. Part files are hidden temp
  files, so an interrupted run leaves nothing a reader would pick up.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from emovid.people.persons import assign_persons, co_occurring, person_embeddings
from emovid.people.stage import count_persons, with_person_ids
from emovid.people.stitch import TrackStitcher
from emovid.store.schema import read_metadata, with_metadata
from emovid.store.sink import TEMP_MARKER, ParquetSink
from emovid.run.tasks import VideoResult, VideoTask
from emovid.media.time_segments import Segment, plan_segments
from emovid.media.video import truncation_message


def part_path(output: str | os.PathLike, index: int) -> str:
    """Hidden temp-file name of one segment's rows (removed with other temp files)."""
    out = Path(output)
    return os.fspath(out.with_name(f".{out.name}.part{index:05d}{TEMP_MARKER}segment"))


def segment_tasks(task: VideoTask, segments: list[Segment]) -> list[VideoTask]:
    return [replace(task, output=part_path(task.output, s.index), segment=s) for s in segments]


@dataclass(frozen=True, slots=True)
class MergedVideo:
    """What :func:`merge_segments` wrote: rows, and shots / tracks / persons of the whole video."""

    rows: int
    shots: int
    tracks: int | None
    persons: int | None


def _shifted(table: pa.Table, column: str, offset: int) -> pa.Table:
    field = table.schema.field(column)
    return table.set_column(table.schema.get_field_index(column), field,
                            pc.add(table[column], pa.scalar(offset, field.type)))


def merge_segments(parts: list[str], output: str, frame_offsets: list[int], track_gap_s: float | None) -> MergedVideo:
    """Concatenate segment part files into ``output`` (atomically).

    ``frame_offsets[k]``: frames decoded before segment ``k``. ``track_gap_s`` None: tracking off.
    """
    tables = [pq.read_table(part) for part in parts]
    part_meta = [read_metadata(t.schema) for t in tables]
    stitcher = TrackStitcher(track_gap_s) if track_gap_s is not None else None
    shot_offset = 0
    samples: dict[int, list[tuple[np.ndarray, int]]] = {}  # whole-video track -> (mean embedding, faces)
    blended, unblended = set(), set()  # whole-video tracks with pieces inside a dissolve only / outside one
    blend_frames: set[int] = set()  # whole-video frames inside a dissolve or wipe
    for k, (table, meta) in enumerate(zip(tables, part_meta)):
        table = _shifted(_shifted(table, "frame_index", frame_offsets[k]), "shot", shot_offset)
        shot_offset += meta.get("shots", 1) - 1  # a segment's shot 0 continues the previous segment's last
        blend_frames.update(f + frame_offsets[k] for f in meta.get("blend_frames", []))
        if stitcher is not None:
            ids, lookup = stitcher.relabel(table)
            table = table.set_column(table.schema.get_field_index("track_id"), "track_id", ids)
            for local, entry in meta.get("track_embeddings", {}).items():
                samples.setdefault(lookup[int(local)], []).append((np.asarray(entry["mean"]), entry["n"]))
            in_dissolve = set(meta.get("blended_tracks", []))
            for local, whole_id in lookup.items():
                (blended if local in in_dissolve else unblended).add(whole_id)
        tables[k] = table
    per_part = ("track_embeddings", "blended_tracks", "blend_frames")
    metadata = {key: value for key, value in part_meta[0].items() if key not in per_part}
    metadata.update(segments=len(parts), shots=shot_offset + 1)
    persons = None
    if stitcher is not None:
        whole = pa.concat_tables(tables)
        present = ~np.asarray(pc.is_null(whole["track_id"]))
        frames = whole["frame_index"].to_numpy()[present]
        tracks = whole["track_id"].to_numpy(zero_copy_only=False)[present].astype(np.int64)
        embeddings = {t: np.average([m for m, _ in v], axis=0, weights=[n for _, n in v]) for t, v in samples.items()}
        blended -= unblended  # a track continued outside the dissolve is someone's
        persons = assign_persons(stitcher.track_count, embeddings, co_occurring(frames, tracks), blended)
        metadata.update(tracks=stitcher.track_count, persons=count_persons(persons))
        weights = {t: (embeddings[t], sum(n for _, n in v)) for t, v in samples.items()}
        metadata["person_embeddings"] = person_embeddings(persons, weights)
    schema = with_metadata(tables[0].schema, metadata)
    with ParquetSink(output, schema) as sink:
        for table in tables:
            table = table.replace_schema_metadata(schema.metadata)
            if persons is not None:
                table = with_person_ids(table, persons, blend_frames)
            sink.write(table.cast(schema))
    return MergedVideo(sink.rows, metadata["shots"], metadata.get("tracks"), metadata.get("persons"))


@dataclass(slots=True)
class _SplitVideo:
    task: VideoTask
    results: list[VideoResult | None] = field(default_factory=list)


class SegmentedVideos:
    """Driver-side bookkeeping of split videos: turns worker results into follow-up tasks and
    final per-video results.

    Args:
        segment_s, sample_fps, track_gap_s: the run's settings (as in ``AnalyzeConfig``);
            ``track_gap_s`` None when tracking is off.
    """

    def __init__(self, segment_s: float | None, sample_fps: float | None, track_gap_s: float | None) -> None:
        self.segment_s = segment_s
        self.sample_fps = sample_fps
        self.track_gap_s = track_gap_s
        self._videos: dict[str, _SplitVideo] = {}

    def handle(self, task: VideoTask, result: VideoResult) -> tuple[list[VideoTask], VideoResult | None]:
        """Returns (tasks to run next, the video's final result or None while segments are out)."""
        if result.status == "split":  # the worker planned result.segments: the same plan here
            segments = plan_segments(result.duration_s, self.segment_s, self.sample_fps, result.segments)
            self._videos[task.video_id] = _SplitVideo(task, [None] * len(segments))
            return segment_tasks(task, segments), None
        if task.segment is None:
            return [], result
        video = self._videos[task.video_id]
        video.results[task.segment.index] = result
        if any(r is None for r in video.results):
            return [], None
        del self._videos[task.video_id]
        return self._finish(video)

    def _finish(self, video: _SplitVideo) -> tuple[list[VideoTask], VideoResult | None]:
        results = video.results
        parts = [part_path(video.task.output, i) for i in range(len(results))]
        try:
            if any(r.status == "unsplittable" for r in results):
                return [replace(video.task, split_s=None)], None
            if failed := next((r for r in results if r.status == "failed"), None):
                return [], self._combined(video.task, results, "failed", f"segment: {failed.error}")
            offsets = np.cumsum([0] + [r.frames_decoded for r in results[:-1]]).tolist()
            try:
                merged = merge_segments(parts, video.task.output, offsets, self.track_gap_s)
            except Exception as exc:  # disk full, a part the driver cannot read: this video fails, the run goes on
                return [], self._combined(video.task, results, "failed",
                                          f"merging {len(parts)} segments failed: {type(exc).__name__}: {exc}")
            combined = replace(self._combined(video.task, results, "ok", None), shots=merged.shots,
                               tracks=merged.tracks, persons=merged.persons)
            expected = round(combined.duration_s * combined.fps) if combined.duration_s and combined.fps else None
            if truncated := truncation_message(combined.frames_decoded, expected):
                combined = replace(combined, status="partial", error=truncated)
            return [], replace(combined, output=video.task.output)
        finally:
            for part in parts:
                Path(part).unlink(missing_ok=True)

    @staticmethod
    def _combined(task: VideoTask, results: list[VideoResult], status: str, error: str | None) -> VideoResult:
        first = results[0]
        workers = sorted({r.worker for r in results if r.worker})
        return VideoResult(
            task.video_id, task.path, status, error=error,
            frames_decoded=sum(r.frames_decoded for r in results), frames_sampled=sum(r.frames_sampled for r in results),
            faces=sum(r.faces for r in results), duration_s=first.duration_s, fps=first.fps, width=first.width,
            height=first.height, wall_s=round(sum(r.wall_s for r in results), 3),
            attempts=max(r.attempts for r in results), worker=" ".join(workers) or None, segments=len(results),
        )
