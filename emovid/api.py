"""The Python front door: :func:`analyze` (the ``emovid analyze`` command as a function)."""

from __future__ import annotations

import logging
import os
import time
from collections import Counter, deque
from pathlib import Path
from typing import Sequence

import pandas as pd
from tqdm.auto import tqdm

from emovid.assets import model_path
from emovid.config import (DEFAULT_FPS, DEFAULT_SEGMENT_S, DEFAULT_SHOT_THRESHOLD, DEFAULT_STALL_TIMEOUT_S,
                           DEFAULT_START_TIMEOUT_S, AnalyzeConfig, RunOptions, settings_hash)
from emovid.discover import MediaInput, find_inputs, output_path
from emovid.errors import OutputError
from emovid.manifest import ManifestWriter, to_frame
from emovid.model_file import model_digest, read_model_info
from emovid.outdir import OutputLock, describe_difference, existing_output, prepare_out_dir, remove_temp_files
from emovid.photos import GroupResult, ImageGroupTask, ImageTask, group_images
from emovid.pipeline import VideoResult, VideoTask
from emovid.segments import SegmentedVideos

log = logging.getLogger(__name__)


def driver_settings(config: AnalyzeConfig) -> dict:
    """The result settings as this (driver) process computes them; every worker must agree.

    Raises:
        ModelError: the model is unusable, or cannot take ``config.prior``.
    """
    path = model_path(config.model)
    info = read_model_info(path)
    info.offsets_for(config.prior)  # a --prior the model cannot take fails here, before Ray starts
    return config.settings(info.tag, info.classes, model_digest(path))


def plan_tasks(inputs: list[MediaInput], out: Path, config: AnalyzeConfig, overwrite: bool,
               settings: dict | None = None) -> tuple[list[VideoTask | ImageGroupTask], list[VideoResult]]:
    """Split the inputs into work to do (one task per video, photos in groups of
    :data:`~emovid.photos.IMAGES_PER_TASK`) and inputs already done with these settings
    (``settings``: :func:`driver_settings`, computed when not given).

    Raises:
        OutputError: results made with other settings are in ``out`` and ``overwrite`` is off.
    """
    settings = settings or driver_settings(config)
    wanted = settings_hash(settings)
    videos, photos, done, clashes = [], [], [], []
    for item in inputs:
        path, output = os.fspath(item.path), os.fspath(output_path(out, item.video_id))
        existing = None if overwrite else existing_output(Path(output))
        if existing is None or existing.settings_hash is None:
            if item.kind == "image":
                photos.append(ImageTask(path, item.video_id, output))
            else:
                videos.append(VideoTask(path, item.video_id, output))
        elif existing.settings_hash == wanted:
            done.append(VideoResult(item.video_id, path, "skipped", error="already analysed with these settings",
                                    attempts=0, output=output, reused=True, kind=item.kind))
        else:
            clashes.append((item.video_id, describe_difference(existing.settings, settings)))
    if clashes:
        first_id, diff = clashes[0]
        model_hint = (", or pass the model they were made with as --model (emovid's older models are in git "
                      "history: see models/MODEL_CARD.md)" if "model" in diff else "")
        raise OutputError(f"{len(clashes)} input(s) in {out} were analysed with other settings "
                          f"(e.g. {first_id}: {diff}); rerun with --overwrite to redo them, or use another "
                          f"--out{model_hint}")
    return [*videos, *group_images(photos)], done


def analyze(
    paths: str | os.PathLike | Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    fps: float | None = DEFAULT_FPS,
    every_frame: bool = False,
    batch_size: int | None = None,
    model: str | os.PathLike | None = None,
    score_threshold: float = 0.7,
    min_face: int = 20,
    max_side: int | None = None,
    align: bool = False,
    track: bool = True,
    track_gap_s: float = 1.0,
    shots: bool = True,
    shot_threshold: float = DEFAULT_SHOT_THRESHOLD,
    persons: bool = True,
    prior: str | float | None = None,
    segment_s: float | None = DEFAULT_SEGMENT_S,
    workers: int | None = None,
    cpus_per_worker: float = 1.0,
    gpus_per_worker: float = 0.0,
    address: str | None = None,
    overwrite: bool = False,
    retries: int = 2,
    start_timeout_s: float = DEFAULT_START_TIMEOUT_S,
    stall_timeout_s: float = DEFAULT_STALL_TIMEOUT_S,
    in_process: bool = False,
    progress: bool = True,
    verbose: bool = False,
) -> pd.DataFrame:
    """Analyse videos into per-video Parquet files under ``out``; returns the run manifest.

    Args:
        paths: video files and/or folders (searched recursively).
        out: output folder; one ``<video id>.parquet`` per video plus ``_manifest.csv``.
        fps: frames analysed per second of video. every_frame: analyse all frames instead.
        batch_size: face crops per classifier call (None: 256 on CPU, 1024 on a GPU worker).
        model: ``.keras`` emotion model file; default the shipped ``emovid_fer7_v7`` (v6's
            recipe run six times, weights averaged; calibrated, prior 0.4).
        score_threshold, min_face, max_side, align: face detection and cropping; track,
            track_gap_s: face tracking; shots, shot_threshold: shot-cut detection (tracks end at
            cuts); persons: person ids by face identity; prior: the emotion decision's class
            prior (``"ferplus"``, ``"balanced"`` or 0..1.5; None: the model's default); see
            :class:`~emovid.config.AnalyzeConfig`.
        segment_s: analyse videos longer than 1.5x this many seconds in parallel segments
            (None: never split); see :mod:`emovid.segments`.
        workers, cpus_per_worker, gpus_per_worker, address: Ray execution, see
            :class:`~emovid.config.RunOptions`.
        overwrite: redo videos that already have results (default: skip them).
        retries: extra attempts for a video whose worker process died.
        start_timeout_s: seconds to wait for the first Ray worker before failing.
        stall_timeout_s: fail an input whose reading makes no progress for this many seconds
            and replace its worker (0: never); see :class:`~emovid.config.RunOptions`.
        in_process: run in this process without Ray (debugging, notebooks). Nothing there
            can stop an input that blocks (no watchdog, and Ctrl-C waits for the C call).
        progress: show a progress bar. verbose: log details of errors.

    Returns:
        The manifest as a DataFrame: one row per input with status ok/partial/failed. A video
        whose results were already there keeps the row of the run that made them, with
        ``reused`` True (``skipped`` only when that row is gone from ``_manifest.csv``).

    Raises:
        ValueError: an invalid argument or input path (checked before Ray starts).
        OutputError: ``out`` is locked by another run or holds results of other settings.
        ModelError: the model file is unusable.
    """
    config = AnalyzeConfig(fps=None if every_frame else fps, batch_size=batch_size,
                           model=None if model is None else os.fspath(model),
                           score_threshold=score_threshold, min_face=min_face, max_side=max_side, align=align,
                           track=track, track_gap_s=track_gap_s, shots=shots, shot_threshold=shot_threshold,
                           persons=persons, prior=prior, segment_s=segment_s)
    options = RunOptions(workers=workers, cpus_per_worker=cpus_per_worker, gpus_per_worker=gpus_per_worker,
                         address=address, overwrite=overwrite, retries=retries, verbose=verbose, progress=progress,
                         start_timeout_s=start_timeout_s, stall_timeout_s=stall_timeout_s)
    inputs = find_inputs(paths)  # input errors surface before the output folder is touched
    out_dir = prepare_out_dir(out)
    rows: list[dict] = []
    with OutputLock(out_dir):
        if removed := remove_temp_files(out_dir):
            log.info("removed %d temp files of an interrupted run", removed)
        settings = driver_settings(config)
        todo, done = plan_tasks(inputs, out_dir, config, options.overwrite, settings)
        started = time.perf_counter()
        try:
            with ManifestWriter(out_dir) as manifest, tqdm(total=len(inputs), initial=len(done),
                                                           unit="input", disable=not progress) as bar:
                def record(result: VideoResult) -> None:
                    row = manifest.write(result)  # a reused video keeps its earlier status, counts and error
                    rows.append(row)
                    bar.update(0 if result.reused else 1)
                    if row["status"] in ("failed", "partial"):  # the CLI lists these once at the end
                        log.info("%s %s: %s", row["status"], row["video_id"], row["error"])

                for result in done:
                    record(result)
                _execute(todo, config, options, in_process, record, settings, os.fspath(out_dir))
        finally:
            remove_temp_files(out_dir)  # a worker killed mid-write leaves its temp file behind
        log.info("%d inputs in %.1fs", len(inputs) - len(done), time.perf_counter() - started)
    return to_frame(rows)


#: Runs of at most this many videos also get a progress bar over frames (long single videos).
FRAME_BAR_MAX_VIDEOS = 4


def _execute(tasks, config, options, in_process, record, settings: dict, out_dir: str) -> None:
    videos = sum(isinstance(t, VideoTask) for t in tasks)
    show_frames = options.progress and 0 < videos == len(tasks) and videos <= FRAME_BAR_MAX_VIDEOS
    segmented = SegmentedVideos(config.segment_s, config.fps, config.track_gap_s if config.track else None)

    def on_result(task: VideoTask | ImageGroupTask, result: VideoResult | GroupResult) -> list[VideoTask]:
        if isinstance(result, GroupResult):
            for photo in result.results:
                record(photo)
            return []
        follow_up, final = segmented.handle(task, result)
        if final is not None:
            record(final)
        return follow_up

    # No total: the driver never opens an input (a named pipe or a stalled mount would block it
    # in C, out of reach of Ctrl-C), so the frame bar counts frames and their rate.
    with tqdm(total=None, unit="frame", disable=not show_frames,
              position=1, leave=False) as frame_bar:
        on_frames = frame_bar.update if show_frames else None
        if in_process:
            from emovid.pipeline import VideoAnalyzer

            analyzer = VideoAnalyzer(config, num_threads=None, on_frames=on_frames)
            queue = deque(tasks)
            while queue:
                task = queue.popleft()
                queue.extendleft(reversed(on_result(task, analyzer(task))))
        else:
            _execute_on_ray(tasks, config, options, on_result, on_frames, settings, out_dir)


def _execute_on_ray(tasks, config, options, on_result, on_frames, settings, out_dir) -> None:
    from emovid import distributed

    started_ray = distributed.connect(options)
    try:
        distributed.run_tasks(tasks, config, options, on_result, on_frames=on_frames, expected_settings=settings,
                              out_dir=out_dir)
    finally:
        if started_ray:
            import ray

            ray.shutdown()


def summarize(manifest: pd.DataFrame) -> str:
    """One line: counts per status, e.g. ``3 ok, 1 failed (2 reused from an earlier run)``."""
    counts = Counter(manifest["status"])
    shown = [s for s in ("ok", "partial", "failed", "skipped") if counts[s] or s in ("ok", "failed")]
    line = ", ".join(f"{counts[s]} {s}" for s in shown)
    reused = int(manifest["reused"].fillna(False).sum()) if len(manifest) else 0
    return f"{line} ({reused} reused from an earlier run)" if reused else line
