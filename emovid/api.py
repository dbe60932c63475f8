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
from emovid.config import AnalyzeConfig, RunOptions, option_docs, option_signature, settings_hash, split_options
from emovid.media.discover import MediaInput, find_inputs, output_path
from emovid.errors import OutputError
from emovid.store.manifest import ManifestWriter, to_frame
from emovid.classify.model_file import model_digest, read_model_info
from emovid.store.outdir import OutputLock, describe_difference, existing_output, prepare_out_dir, remove_temp_files
from emovid.run.tasks import GroupResult, ImageGroupTask, ImageTask, group_images
from emovid.run.pipeline import VideoResult, VideoTask
from emovid.run.segments import SegmentedVideos

log = logging.getLogger(__name__)


def driver_settings(config: AnalyzeConfig) -> dict:
    """The result settings as this (driver) process computes them; every worker must agree.
    A precision still "auto" is resolved for this host (:func:`resolved_config` does it for a run).

    Raises:
        ModelError: the model is unusable, or cannot take ``config.prior``.
    """
    if config.precision == "auto":
        config = config.with_precision()
    path = model_path(config.model)
    info = read_model_info(path)
    info.offsets_for(config.prior)  # a --prior the model cannot take fails here, before Ray starts
    return config.settings(info.tag, info.classes, model_digest(path))


def earlier_precision(inputs: list[MediaInput], out: Path) -> str | None:
    """The precision the first of ``inputs`` with results in ``out`` was analysed with (None: none
    has results, or they predate the setting): ``precision="auto"`` keeps it, so a folder
    resumed on another host does not clash with itself."""
    for item in inputs:
        existing = existing_output(output_path(out, item.video_id))
        if existing is not None and existing.settings_hash is not None:
            return existing.settings.get("precision")
    return None


def resolved_config(config: AnalyzeConfig, options: RunOptions, inputs: list[MediaInput], out: Path) -> AnalyzeConfig:
    """``config`` with its precision resolved once for the whole run, on the driver."""
    if options.gpus_per_worker > 0:
        use_gpu = True
    elif options.in_process:  # the analyzer in this process uses a GPU when its runtime sees one
        from emovid.classify.emotions import classifier_backend, cuda_available

        use_gpu = cuda_available(classifier_backend(model_path(config.model)))
    else:
        use_gpu = False
    earlier = earlier_precision(inputs, out) if config.precision == "auto" and not options.overwrite else None
    return config.with_precision(use_gpu, earlier)


def plan_tasks(inputs: list[MediaInput], out: Path, config: AnalyzeConfig, overwrite: bool,
               settings: dict | None = None, split_s: float | None = None,
               ) -> tuple[list[VideoTask | ImageGroupTask], list[VideoResult]]:
    """Split the inputs into work to do (one task per video, photos in groups of
    :data:`~emovid.run.tasks.IMAGES_PER_TASK`) and inputs already done with these settings
    (``settings``: :func:`driver_settings`, computed when not given). ``split_s``: videos longer
    than 1.5x this are analysed in segments (:attr:`RunOptions.segment_s`; None: whole).

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
                videos.append(VideoTask(path, item.video_id, output, split_s=split_s))
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


def analyze(paths: str | os.PathLike | Sequence[str | os.PathLike], out: str | os.PathLike, *,
            every_frame: bool = False, **options) -> pd.DataFrame:
    """Analyse videos and photos into per-input Parquet files under ``out``; returns the run manifest.

    Args:
        paths: video files, photos and/or folders (searched recursively).
        out: output folder; one ``<video id>.parquet`` per input plus ``_manifest.csv``.
        every_frame: analyse every frame (the same as ``fps=None``).
        **options: any field of :class:`~emovid.config.AnalyzeConfig` (what changes the
            results) or :class:`~emovid.config.RunOptions` (how the run executes), by name:
            the options of ``emovid analyze``, declared once there. They are listed below.

    Returns:
        The manifest as a DataFrame: one row per input with status ok/partial/failed. An input
        whose results were already there keeps the row of the run that made them, with
        ``reused`` True (``skipped`` only when that row is gone from ``_manifest.csv``).

    Raises:
        TypeError: an unknown option.
        ValueError: an invalid option value or input path (checked before Ray starts).
        OutputError: ``out`` is locked by another run or holds results of other settings.
        ModelError: the model file is unusable.
    """
    config, options = split_options({**options, **({"fps": None} if every_frame else {})})
    inputs = find_inputs(paths)  # input errors surface before the output folder is touched
    out_dir = prepare_out_dir(out)
    rows: list[dict] = []
    with OutputLock(out_dir):
        if removed := remove_temp_files(out_dir):
            log.info("removed %d temp files of an interrupted run", removed)
        config = resolved_config(config, options, inputs, out_dir)
        settings = driver_settings(config)
        todo, done = plan_tasks(inputs, out_dir, config, options.overwrite, settings, options.split_s)
        started = time.perf_counter()
        try:
            with ManifestWriter(out_dir) as manifest, tqdm(total=len(inputs), initial=len(done),
                                                           unit="input", disable=not options.progress) as bar:
                def record(result: VideoResult) -> None:
                    row = manifest.write(result)  # a reused video keeps its earlier status, counts and error
                    rows.append(row)
                    bar.update(0 if result.reused else 1)
                    if row["status"] in ("failed", "partial"):  # the CLI lists these once at the end
                        log.info("%s %s: %s", row["status"], row["video_id"], row["error"])

                for result in done:
                    record(result)
                _execute(todo, config, options, record, settings, os.fspath(out_dir))
            if config.track and config.persons:
                from emovid.people.across_videos import link_persons

                links = link_persons(out_dir)
                log.info("%d persons of the folder's videos are %d people (%d seen in more than one video)",
                         links.persons, links.global_persons, links.in_several_videos)
        finally:
            remove_temp_files(out_dir)  # a worker killed mid-write leaves its temp file behind
        log.info("%d inputs in %.1fs", len(inputs) - len(done), time.perf_counter() - started)
    return to_frame(rows)


#: Runs of at most this many videos also get a progress bar over frames (long single videos).
FRAME_BAR_MAX_VIDEOS = 4


def _execute(tasks, config: AnalyzeConfig, options: RunOptions, record, settings: dict, out_dir: str) -> None:
    videos = sum(isinstance(t, VideoTask) for t in tasks)
    show_frames = options.progress and 0 < videos == len(tasks) and videos <= FRAME_BAR_MAX_VIDEOS
    segmented = SegmentedVideos(options.split_s, config.fps, config.track_gap_s if config.track else None)

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
        if options.in_process:
            from emovid.run.pipeline import VideoAnalyzer

            analyzer = VideoAnalyzer(config, num_threads=None, on_frames=on_frames, batch_size=options.batch_size)
            queue = deque(tasks)
            while queue:
                task = queue.popleft()
                queue.extendleft(reversed(on_result(task, analyzer(task))))
        else:
            _execute_on_ray(tasks, config, options, on_result, on_frames, settings, out_dir)


def _execute_on_ray(tasks, config, options, on_result, on_frames, settings, out_dir) -> None:
    from emovid.run import distributed

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


analyze.__signature__ = option_signature(analyze)
analyze.__doc__ += option_docs()
