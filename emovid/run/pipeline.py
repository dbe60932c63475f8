"""The per-video pipeline: decode -> sample -> detect -> crop -> classify (batched) -> Parquet.

Plain Python, no Ray: ``distributed.py`` runs :class:`VideoAnalyzer` in Ray actors, and tests
call it directly.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from dataclasses import replace
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import pyarrow as pa

from emovid import __version__
from emovid.config import AnalyzeConfig, settings_hash
from emovid.assets import model_path
from emovid.classify.emotions import (CPU_BATCH_SIZE, GPU_BATCH_SIZE, EmotionClassifier, classifier_backend, configure_tensorflow, cuda_available)
from emovid.errors import EmovidError, SegmentError, VideoError, VideoOpenError
from emovid.detect.faces import FaceDetector, crop_faces
from emovid.detect.pose import HeadPose
from emovid.classify.model_file import model_digest
from emovid.classify.quality import pose_and_quality
from emovid.run.tasks import GroupResult, ImageGroupTask, ImageTask
from emovid.run.photos import analyze_images
from emovid.run.tasks import VideoResult, VideoTask  # noqa: F401  (re-exported: the pipeline's own types)
from emovid.people.identity import load_embedder
from emovid.people.labels import PREROLL_SHOT_S, ShotLabels
from emovid.people.shots import ShotDetector
from emovid.people.stage import PeopleOfVideo
from emovid.store.rows import FrameFaces, to_record_batch
from emovid.store.schema import face_schema, read_metadata, with_metadata
from emovid.store.sink import ParquetSink
from emovid.media.prefetch import Prefetched
from emovid.media.time_segments import plan_segments
from emovid.media.video import VideoInfo, VideoReader
from emovid.media.files import not_a_file

log = logging.getLogger(__name__)

#: Frames per Parquet row group: their faces are classified and their rows written then, even if
#: fewer than ``batch_size`` faces were found.
MAX_FRAMES_PER_CHUNK = 128
#: Frames (decoded up to the frame being analysed) between two progress reports.
PROGRESS_EVERY = 64
#: With the stages overlapped, waiting faces go to the classifier's thread as soon as this many
#: wait: it works beside detection instead of after it, and a decode-bound video does not end
#: with one big batch after the last frame. 16 was as fast as 8 with ~25% less CPU per crop.
EAGER_BATCH = 16
#: Frames the detection thread may run ahead of tracking and the rest.
DETECT_AHEAD = 4
#: Memory for decoded frames waiting in the prefetch queue (between 8 and 64 frames).
PREFETCH_BYTES = 64 << 20


class VideoAnalyzer:
    """Loads the face detector and emotion CNN once; call it on :class:`VideoTask` s.

    Args:
        config: analysis settings.
        num_threads: CPU threads for the classifier and OpenCV (Ray passes the worker's CPUs).
        on_frames: progress callback, given the number of frames read since its last call (counted up
            to the frame being analysed; the rest of the video's count comes at its end); see
            :meth:`frames_read`.
        use_gpu: run detection and classification on the GPU (sized for it: batches of 1024);
            None uses one when the classifier's runtime sees CUDA.
        batch_size: face crops per classifier call (:attr:`RunOptions.batch_size`); None sizes
            it for the device.
    """

    def __init__(self, config: AnalyzeConfig, num_threads: int | None = None,
                 on_frames: Callable[[int], None] | None = None, use_gpu: bool | None = None,
                 batch_size: int | None = None) -> None:
        self.on_frames = on_frames  # called with counts of newly read frames (progress bars)
        self.num_threads = num_threads
        if num_threads:
            cv2.setNumThreads(num_threads)
        model = model_path(config.model)
        backend = classifier_backend(model)
        if backend == "tensorflow":
            configure_tensorflow(num_threads)  # before TensorFlow builds anything
        # A Ray worker knows whether it was given a GPU; elsewhere, use one if the runtime runs on it.
        want_gpu = cuda_available(backend) if use_gpu is None else use_gpu
        # The driver resolves "auto" for a whole run (workers must agree); used alone, it is resolved here.
        self.config = config = config.with_precision(want_gpu)
        self.classifier = EmotionClassifier.load(model, config.prior, backend, num_threads, want_gpu, config.precision)
        self.use_gpu = self.classifier.on_gpu if use_gpu is None else use_gpu
        # A GPU needs bigger batches to be busy; on CPU 256 is past the point of diminishing returns.
        self.batch_size = batch_size or (GPU_BATCH_SIZE if self.use_gpu else CPU_BATCH_SIZE)
        self.max_frames_per_chunk = max(MAX_FRAMES_PER_CHUNK, self.batch_size)
        # The early small batch keeps a CPU worker busy while decoding lags; on a GPU it would
        # fire before the batch ever reached the size the GPU needs.
        self.eager_batch = self.batch_size if self.use_gpu else EAGER_BATCH
        detection = dict(score_threshold=config.score_threshold, min_face=config.min_face,
                         max_side=config.max_side, use_gpu=self.use_gpu)
        self.detector = FaceDetector(**detection)
        # its own detector: with the stages overlapped, the main one runs in the detection thread
        self.head_pose = HeadPose(FaceDetector(**detection).detect)
        # tracks use it too: a jump in a face's look is checked with it (see PeopleOfVideo)
        self.embedder = load_embedder() if config.track else None
        self.settings = config.settings(self.classifier.name, self.classifier.classes, model_digest(model),
                                        self.detector.backend)
        self.settings_hash = settings_hash(self.settings)

    def __call__(self, task: VideoTask | ImageGroupTask, overlap_decode: bool = True) -> VideoResult | GroupResult:
        """Analyse one video (or a group of photos: one result per photo); per-input problems
        become a failed result, never an exception.

        ``overlap_decode``: run the stages side by side: decoding (and shot scores), face
        detection and classification each in their own thread, the rest in this one. That uses
        up to ~2 cores, which pays when CPUs are idle; when every CPU already has a worker,
        running them in turn is faster (no hand-offs), so the Ray driver turns it off then
        (:func:`emovid.run.distributed.decode_overlaps`).
        """
        if isinstance(task, ImageGroupTask):
            return self._images(task)
        started = time.perf_counter()
        try:
            if reason := not_a_file(Path(task.path)):  # first: a broken link does not exist either
                raise VideoOpenError(reason)
            if not os.path.exists(task.path):  # the driver found it: this node does not see its filesystem
                raise VideoOpenError(f"{task.path} does not exist on worker host {socket.gethostname()}: inputs and "
                                     f"--out must be on a filesystem every node mounts at the same path")
            result = analyze_video(task, self, overlap_decode)
        except SegmentError as exc:
            result = VideoResult(task.video_id, task.path, "unsplittable", error=str(exc))
        except EmovidError as exc:
            result = VideoResult(task.video_id, task.path, "failed", error=str(exc))
        except Exception as exc:  # a bug or an OpenCV error on one video must not end the run
            log.exception("unexpected error on %s", task.path)
            result = VideoResult(task.video_id, task.path, "failed", error=f"{type(exc).__name__}: {exc}")
        return replace(result, wall_s=round(time.perf_counter() - started, 3), worker=self.worker_name())

    def frames_read(self, n: int) -> None:
        """Progress of the input being read: ``n`` more frames (a photo counts as one).

        Called at least every ``PROGRESS_EVERY`` frames while an input is read, so a caller can
        tell a slow input from one that stopped (the Ray driver's watchdog does).
        """
        if self.on_frames:
            self.on_frames(n)

    def reading_done(self) -> None:
        """Progress: the input is read; what is left (classifying, persons, writing) is compute."""

    def _images(self, group: ImageGroupTask) -> GroupResult:
        worker = self.worker_name()
        return GroupResult(tuple(replace(r, worker=worker) for r in analyze_images(group, self).results))

    def worker_name(self) -> str:
        return f"{socket.gethostname()}:{os.getpid()}"

    def file_metadata(self, task: VideoTask | ImageTask, source: dict) -> dict:
        """The Parquet file's emovid metadata: settings, model, operating point, and ``source``
        (what the input is: ``{"video": {...}}`` or ``{"kind": "image", "image": {...}}``)."""
        return {
            "emovid_version": __version__, "settings_hash": self.settings_hash, "settings": self.settings,
            "model_name": self.classifier.info.name, "model_version": self.classifier.info.version,
            "classifier_runtime": {"backend": self.classifier.backend, "bf16": self.classifier.bf16,
                                   "gpu": self.classifier.on_gpu, "precision": self.classifier.precision},
            "operating_point": {"temperature": self.classifier.info.temperature,
                                "prior_tau": self.classifier.prior_tau, "logit_offsets": self.classifier.offsets},
            "video_id": task.video_id, "source": task.path, **source,
        }


def analyze_video(task: VideoTask, analyzer: VideoAnalyzer, overlap_decode: bool = True) -> VideoResult:
    """Run the pipeline on one video and write its Parquet file atomically.

    Raises:
        VideoError: the video cannot be opened or has no decodable frame (nothing is written).
    """
    config, classifier = analyzer.config, analyzer.classifier
    context_s = PREROLL_SHOT_S if config.shots else None
    with VideoReader(task.path, config.fps, decode_threads=analyzer.num_threads, context_s=context_s) as reader:
        if (split := _split_answer(task, reader, config)) is not None:
            return split
        info = reader.info
        schema = face_schema(classifier.classes, analyzer.file_metadata(task, {"video": {
            "width": info.width, "height": info.height, "fps": info.fps, "frame_count": info.frame_count,
            "codec": info.codec}}))
        # the classifier's own thread when the stages overlap (onnxruntime releases the GIL)
        classify_thread = ThreadPoolExecutor(1, thread_name_prefix="emovid-classify") if overlap_decode else None
        pending = PendingRows(classifier, analyzer.batch_size, task.video_id, schema, classify_thread)
        faces_found = reported = 0
        people = PeopleOfVideo(config, analyzer.embedder)
        labels = ShotLabels(ShotDetector(threshold=config.shot_threshold), info.fps) if config.shots else None
        decoded = (labels.frames(reader.decoded(task.segment), segment=task.segment is not None) if labels
                   else reader.frames(task.segment))
        try:
            # closing(): the stage threads must stop before the reader releases the capture, even on errors.
            with (closing(Prefetched(decoded, prefetch_depth(reader.info), "emovid-decode") if overlap_decode
                          else decoded) as frames,
                  closing(_detected(frames, analyzer.detector, overlap_decode)) as detected):
                for frame, faces in detected:
                    # Counted from the frame in hand: the decode thread may be many frames ahead.
                    if frame.index + 1 - reported >= PROGRESS_EVERY:
                        analyzer.frames_read(frame.index + 1 - reported)
                        reported = frame.index + 1
                    track_ids = people.track(frame, faces)
                    crops = crop_faces(frame.image, faces, classifier.info.crop_margin, classifier.input_size,
                                       config.align)
                    pose, quality = pose_and_quality(frame.image, faces, crops, analyzer.head_pose)
                    pending.add(FrameFaces(frame.index, frame.timestamp_s, faces, track_ids, frame.shot, pose,
                                           quality), crops)
                    faces_found += len(faces)
                    if (pending.unclassified >= analyzer.batch_size
                            or (overlap_decode and pending.unclassified >= analyzer.eager_batch)):
                        pending.classify()
                    if pending.frames_waiting >= analyzer.max_frames_per_chunk:
                        pending.seal()
            if reader.frames_decoded > reported:
                analyzer.frames_read(reader.frames_decoded - reported)
            analyzer.reading_done()
            pending.seal()
        finally:
            if classify_thread is not None:
                classify_thread.shutdown(cancel_futures=True)
        if reader.frames_decoded == 0 and (task.segment is None or task.segment.index == 0):
            raise VideoError("no decodable video frame (corrupt or truncated before the first frame)")
        shots = labels.shots_seen if labels else 1
        if labels and labels.dissolve_past_end_s is not None:
            people.dissolved(labels.dissolve_past_end_s)
        found = people.finish(shots, whole_video=task.segment is None)
        # Written once, person ids and all, now that the whole video is read.
        final = with_metadata(schema, {**read_metadata(schema), **found.metadata})
        with ParquetSink(task.output, final) as sink:
            for rows in pending.sealed:
                sink.write(found.rows(rows).replace_schema_metadata(final.metadata))
        persons = found.metadata.get("persons")
        info = reader.info
        truncated = reader.truncation() if task.segment is None else None  # segments: checked when merged
        return VideoResult(
            task.video_id, task.path, "partial" if truncated else "ok", error=truncated,
            frames_decoded=reader.frames_decoded, frames_sampled=reader.frames_sampled, faces=faces_found,
            duration_s=round(info.duration_s, 3) if info.duration_s else None, fps=info.fps,
            width=info.width, height=info.height, output=os.fspath(task.output),
            shots=shots, tracks=people.tracks if config.track else None, persons=persons,
        )


def _detected(frames, detector: FaceDetector, in_thread: bool):
    """``(frame, faces)`` for each of ``frames``; with ``in_thread``, detected in a thread of its
    own up to ``DETECT_AHEAD`` frames ahead (close it, as :class:`Prefetched`)."""
    pairs = ((frame, detector.detect(frame.image)) for frame in frames)
    return Prefetched(pairs, DETECT_AHEAD, "emovid-detect") if in_thread else pairs


def prefetch_depth(info: VideoInfo) -> int:
    """Frames the decode thread may run ahead: ~``PREFETCH_BYTES`` of BGR frames, 8 to 64."""
    frame_bytes = max(info.width * info.height * 3, 1)
    return max(8, min(64, PREFETCH_BYTES // frame_bytes))


def _split_answer(task: VideoTask, reader: VideoReader, config: AnalyzeConfig) -> VideoResult | None:
    """A "split" result when ``task`` is a whole video longer than 1.5x ``task.split_s``."""
    info = reader.info
    if task.segment is not None or not task.split_s or not (info.fps and info.duration_s):
        return None
    count = len(plan_segments(info.duration_s, task.split_s, config.fps, task.max_segments))
    if count == 1:
        return None
    return VideoResult(task.video_id, task.path, "split", duration_s=info.duration_s, fps=info.fps,
                       width=info.width, height=info.height, segments=count)


class PendingRows:
    """The rows of the video being analysed: faces' crops until classified, then probabilities,
    then sealed into Arrow tables (one Parquet row group each) that wait for the video's person ids.

    Classifying (a full batch, or early while the stages overlap) and sealing (a row group of
    up to ``max_frames_per_chunk`` frames) happen at separate times, so early small batches do
    not fragment the file. With ``classify_thread`` batches are classified there while the
    caller goes on; sealing waits for them. Sealed rows take about 120 bytes a face in memory
    until the video (or segment: long videos are split) is written.
    """

    def __init__(self, classifier: EmotionClassifier, batch_size: int, video_id: str, schema: pa.Schema,
                 classify_thread: ThreadPoolExecutor | None = None) -> None:
        self.classifier = classifier
        self.classify_thread = classify_thread
        self.batch_size = batch_size
        self.video_id = video_id
        self.schema = schema
        self.sealed: list[pa.Table] = []
        self._frames: list[FrameFaces] = []
        self._crops: list[np.ndarray] = []
        self._probs: list[np.ndarray | Future] = []
        self.unclassified = 0

    @property
    def frames_waiting(self) -> int:
        """Frames added since the last :meth:`seal`."""
        return len(self._frames)

    def add(self, frame: FrameFaces, crops: np.ndarray) -> None:
        """One frame's faces and their crops (n, size, size); n may be 0."""
        self._frames.append(frame)
        if len(crops):
            self._crops.append(crops)
            self.unclassified += len(crops)

    def classify(self) -> None:
        """Score the waiting crops in one batched call (in ``classify_thread`` when there is one)."""
        if self._crops:
            crops = np.concatenate(self._crops)
            if self.classify_thread is not None:
                self._probs.append(self.classify_thread.submit(self.classifier.predict_proba, crops,
                                                               batch_size=self.batch_size))
            else:
                self._probs.append(self.classifier.predict_proba(crops, batch_size=self.batch_size))
            self._crops.clear()
            self.unclassified = 0

    def seal(self) -> None:
        """Classify what is left and turn the waiting frames into rows."""
        if not self._frames:
            return
        self.classify()
        classes = self.classifier.classes
        done = [p.result() if isinstance(p, Future) else p for p in self._probs]
        probs = np.concatenate(done) if done else np.zeros((0, len(classes)), np.float32)
        batch = to_record_batch(self.video_id, self._frames, probs, self.schema, classes)
        self.sealed.append(pa.Table.from_batches([batch]))
        self._frames.clear()
        self._probs.clear()
