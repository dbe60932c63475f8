"""The per-video pipeline: decode -> sample -> detect -> crop -> classify (batched) -> Parquet.

Plain Python, no Ray: ``distributed.py`` runs :class:`VideoAnalyzer` in Ray actors, and tests
call it directly.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from contextlib import closing
from dataclasses import replace
from typing import Callable

import cv2
import numpy as np

from emovid import __version__
from emovid.config import AnalyzeConfig, settings_hash
from emovid.assets import model_path
from emovid.emotions import (CPU_BATCH_SIZE, GPU_BATCH_SIZE, EmotionClassifier, classifier_backend, configure_tensorflow,
                             cuda_available)
from emovid.errors import EmovidError, SegmentError, VideoError, VideoOpenError
from emovid.faces import FaceDetector, crop_faces
from emovid.model_file import model_digest
from emovid.photos import GroupResult, ImageGroupTask, ImageTask, analyze_images
from emovid.tasks import VideoResult, VideoTask  # noqa: F401  (re-exported: the pipeline's own types)
from emovid.appearance import describe
from emovid.identity import (IdentityCheck, TrackGallery, cluster_persons, co_occurring, load_embedder, mergeable,
                             track_embeddings)
from emovid.rows import FrameFaces, count_persons, to_record_batch, with_person_ids
from emovid.schema import face_schema, read_metadata, with_metadata
from emovid.shots import ShotDetector
from emovid.sink import ParquetSink
from emovid.tracker import FaceTracker
from emovid.video import PrefetchedFrames, VideoInfo, VideoReader, plan_segments

log = logging.getLogger(__name__)

#: Frames per Parquet row group: their faces are classified and their rows written then, even if
#: fewer than ``batch_size`` faces were found.
MAX_FRAMES_PER_CHUNK = 128
#: Frames (decoded up to the frame being analysed) between two progress reports.
PROGRESS_EVERY = 64
#: With decoding in its own thread, buffered faces are classified as soon as this many wait and
#: no decoded frame is ready: the main thread works instead of idling, and a decode-bound video
#: does not end with one big batch after the last frame (4 fps, one worker: 0.366 -> 0.325 s a
#: video). 16 was as fast as 8 with ~25% less CPU per crop (at 32: 0.34 s).
EAGER_BATCH = 16
#: Memory for decoded frames waiting in the prefetch queue (between 8 and 64 frames).
PREFETCH_BYTES = 64 << 20


class VideoAnalyzer:
    """Loads the face detector and emotion CNN once; call it on :class:`VideoTask` s.

    Args:
        config: analysis settings.
        num_threads: CPU threads for the classifier and OpenCV (Ray passes the worker's CPUs).
        on_frames: progress callback, given the number of frames read since its last call (counted up
            to the frame being analysed; the rest of the video's count comes at its end).
        use_gpu: run detection and classification on the GPU (sized for it: batches of 1024);
            None uses one when the classifier's runtime sees CUDA.
    """

    def __init__(self, config: AnalyzeConfig, num_threads: int | None = None,
                 on_frames: Callable[[int], None] | None = None, use_gpu: bool | None = None) -> None:
        self.on_frames = on_frames  # called with counts of newly read frames (progress bars)
        self.num_threads = num_threads
        if num_threads:
            cv2.setNumThreads(num_threads)
        self.config = config
        model = model_path(config.model)
        backend = classifier_backend(model)
        if backend == "tensorflow":
            configure_tensorflow(num_threads)  # before TensorFlow builds anything
        # A Ray worker knows whether it was given a GPU; elsewhere, use one if the runtime runs on it.
        want_gpu = cuda_available(backend) if use_gpu is None else use_gpu
        self.classifier = EmotionClassifier.load(model, config.prior, backend, num_threads, want_gpu)
        self.use_gpu = self.classifier.on_gpu if use_gpu is None else use_gpu
        # A GPU needs bigger batches to be busy; on CPU 256 is past the point of diminishing returns.
        self.batch_size = config.batch_size or (GPU_BATCH_SIZE if self.use_gpu else CPU_BATCH_SIZE)
        self.max_frames_per_chunk = max(MAX_FRAMES_PER_CHUNK, self.batch_size)
        # The early small batch keeps a CPU worker busy while decoding lags; on a GPU it would
        # fire before the batch ever reached the size the GPU needs.
        self.eager_batch = self.batch_size if self.use_gpu else EAGER_BATCH
        self.detector = FaceDetector(score_threshold=config.score_threshold, min_face=config.min_face,
                                     max_side=config.max_side, use_gpu=self.use_gpu)
        # tracks use it too: a jump in a face's look is checked with it (see PeopleOfVideo)
        self.embedder = load_embedder() if config.track else None
        self.settings = config.settings(self.classifier.name, self.classifier.classes, model_digest(model),
                                        self.detector.backend)
        self.settings_hash = settings_hash(self.settings)

    def __call__(self, task: VideoTask | ImageGroupTask, overlap_decode: bool = True) -> VideoResult | GroupResult:
        """Analyse one video (or a group of photos: one result per photo); per-input problems
        become a failed result, never an exception.

        ``overlap_decode``: decode in a background thread, overlapped with inference. That uses
        ~1.15-1.6 cores, which pays when CPUs are idle; when every CPU already has a worker,
        decoding inline is ~4% faster (no hand-offs), so the Ray driver turns it off then
        (:func:`emovid.distributed.decode_overlaps`).
        """
        if isinstance(task, ImageGroupTask):
            return self._images(task)
        started = time.perf_counter()
        try:
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
                                   "gpu": self.classifier.on_gpu},
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
    shots = ShotDetector(threshold=config.shot_threshold) if config.shots else None
    with VideoReader(task.path, config.fps, decode_threads=analyzer.num_threads, shots=shots) as reader:
        if (split := _split_answer(task, reader, config)) is not None:
            return split
        info = reader.info
        schema = face_schema(classifier.classes, analyzer.file_metadata(task, {"video": {
            "width": info.width, "height": info.height, "fps": info.fps, "frame_count": info.frame_count,
            "codec": info.codec}}))
        pending = PendingRows(classifier, analyzer.batch_size)
        faces_found = reported = 0
        people = PeopleOfVideo(config, analyzer.embedder)
        decoded = reader.frames(task.segment)
        # closing(): the decode thread (started only once the sink is open) must stop before the
        # reader releases the capture, even on errors.
        with ParquetSink(task.output, schema) as sink, \
                closing(PrefetchedFrames(decoded, prefetch_depth(reader.info)) if overlap_decode else decoded) as frames:
            for frame in frames:
                # Counted from the frame in hand: the decode thread may be many frames ahead.
                if analyzer.on_frames and frame.index + 1 - reported >= PROGRESS_EVERY:
                    analyzer.on_frames(frame.index + 1 - reported)
                    reported = frame.index + 1
                faces = analyzer.detector.detect(frame.image)
                track_ids = people.track(frame, faces)
                crops = crop_faces(frame.image, faces, classifier.info.crop_margin, classifier.input_size, config.align)
                pending.add(FrameFaces(frame.index, frame.timestamp_s, faces, track_ids, frame.shot), crops)
                faces_found += len(faces)
                if (pending.unclassified >= analyzer.batch_size
                        or (overlap_decode and pending.unclassified >= analyzer.eager_batch and not frames.ready)):
                    pending.classify()
                if len(pending) >= analyzer.max_frames_per_chunk:
                    pending.write(task.video_id, sink)
            pending.write(task.video_id, sink)
            if analyzer.on_frames and reader.frames_decoded > reported:
                analyzer.on_frames(reader.frames_decoded - reported)
            if reader.frames_decoded == 0 and (task.segment is None or task.segment.index == 0):
                raise VideoError("no decodable video frame (corrupt or truncated before the first frame)")
            if reader.dissolve_past_end_s is not None and people.tracker is not None:
                people.dissolved(reader.dissolve_past_end_s)
            persons = people.finish(sink, analyzer.embedder, reader.shots_seen, whole_video=task.segment is None)
        info = reader.info
        truncated = reader.truncation() if task.segment is None else None  # segments: checked when merged
        return VideoResult(
            task.video_id, task.path, "partial" if truncated else "ok", error=truncated,
            frames_decoded=reader.frames_decoded, frames_sampled=reader.frames_sampled, faces=faces_found,
            duration_s=round(info.duration_s, 3) if info.duration_s else None, fps=info.fps,
            width=info.width, height=info.height, output=os.fspath(task.output),
            shots=reader.shots_seen, tracks=people.tracks if config.track else None, persons=persons,
        )


class PeopleOfVideo:
    """Tracks, shots and person ids of one video (or segment) while it is read.

    Tracks end at every cut; each track's best faces are kept for the identity pass that
    :meth:`finish` runs once the video is read.
    """

    def __init__(self, config: AnalyzeConfig, embedder=None) -> None:
        self.tracker = FaceTracker(max_gap_s=config.track_gap_s) if config.track else None
        self.gallery = TrackGallery() if embedder is not None and self.tracker and config.persons else None
        # the tracker's jumps in look are checked with the identity model, so a track never runs
        # from one person into the next where a cut was missed
        self.identity = IdentityCheck(embedder) if embedder is not None and self.tracker else None
        self._shot = 0
        self._seen: list[tuple[int, np.ndarray]] = []  # (frame index, track ids) for the same-frame rule
        self._shot_tracks: dict[int, float] = {}  # the current shot's tracks: their first timestamp
        self.blended: set[int] = set()  # tracks seen only inside a dissolve: a mix of two people, no person
        self._shot_frames: list[tuple[int, float]] = []  # the current shot's frames with faces: (index, time)
        self.blend_frames: set[int] = set()  # frames inside a dissolve or wipe: their faces are no one's
        self.tracks = 0

    def track(self, frame, faces) -> np.ndarray | None:
        if self.tracker is None:
            return None
        if frame.shot != self._shot:
            self.tracker.end_all()
            self._shot = frame.shot
            if frame.transition_start_s is not None:
                self.dissolved(frame.transition_start_s)
            self._shot_tracks, self._shot_frames = {}, []
        ids = self.tracker.update(faces, frame.timestamp_s, describe(frame.image, faces))
        if self.identity is not None:
            for di in np.flatnonzero(self.tracker.jumped):
                if self.identity.changed(int(ids[di]), frame.image, faces.boxes[di]):
                    ids[di] = self.tracker.split(int(ids[di]), int(di))
            self.identity.remember(frame.image, faces, ids, self.tracker.live_ids)
        for t in ids.tolist():
            self._shot_tracks.setdefault(t, frame.timestamp_s)
        if len(ids):
            self.tracks = max(self.tracks, int(ids.max()) + 1)
            self._seen.append((frame.index, ids))
            self._shot_frames.append((frame.index, frame.timestamp_s))
            if self.gallery is not None:
                self.gallery.add(frame.image, faces, ids, frame.timestamp_s)
        return ids

    def dissolved(self, transition_start_s: float) -> None:
        """The current shot dissolved (or wiped) into the next from ``transition_start_s``: its
        tracks seen only since are blends of two people, faces since are no identity sample, and
        their rows get no person (a track that began before may have run onto the new person)."""
        self.blended |= {t for t, first in self._shot_tracks.items() if first > transition_start_s}
        self.blend_frames.update(i for i, t in self._shot_frames if t > transition_start_s)
        if self.gallery is not None:
            self.gallery.forget_since(transition_start_s)

    def finish(self, sink: ParquetSink, embedder, shots: int, whole_video: bool) -> int | None:
        """Set up the file's person ids and metadata for when the sink commits; returns the
        number of persons (None for a segment, whose persons the merge decides)."""
        metadata = {**read_metadata(sink.schema), "shots": shots}
        if self.tracker is None:
            sink.transform_on_close(lambda table: table, with_metadata(sink.schema, metadata))
            return None
        metadata["tracks"] = self.tracks
        if self.identity is not None:  # what the tracks' guard cost and found
            metadata["track_checks"] = {"checked": self.identity.checks, "split": self.identity.splits}
        if not whole_video:  # the merge clusters the whole video's tracks
            samples = self.gallery.embeddings(embedder) if self.gallery is not None else {}
            metadata["track_embeddings"] = {str(t): {"mean": np.round(np.mean(v, axis=0), 5).tolist(), "n": len(v)}
                                            for t, v in samples.items()}
            metadata["blended_tracks"] = sorted(self.blended)
            metadata["blend_frames"] = sorted(self.blend_frames)
            sink.transform_on_close(lambda table: table, with_metadata(sink.schema, metadata))
            return None
        frames = np.concatenate([np.full(len(ids), f) for f, ids in self._seen]) if self._seen else np.zeros(0, int)
        tracks = np.concatenate([ids for _, ids in self._seen]) if self._seen else np.zeros(0, int)
        track_ids = [t for t in range(self.tracks) if t not in self.blended]
        together = co_occurring(frames, tracks)
        wanted = mergeable(track_ids, together)  # e.g. a video with one track embeds nothing
        samples = self.gallery.embeddings(embedder, wanted) if self.gallery is not None and wanted else {}
        persons = {**cluster_persons(track_ids, track_embeddings(samples), together), **dict.fromkeys(self.blended)}
        metadata["persons"] = count_persons(persons)
        sink.transform_on_close(lambda table: with_person_ids(table, persons, self.blend_frames),
                                with_metadata(sink.schema, metadata))
        return metadata["persons"]


def prefetch_depth(info: VideoInfo) -> int:
    """Frames the decode thread may run ahead: ~``PREFETCH_BYTES`` of BGR frames, 8 to 64."""
    frame_bytes = max(info.width * info.height * 3, 1)
    return max(8, min(64, PREFETCH_BYTES // frame_bytes))


def _split_answer(task: VideoTask, reader: VideoReader, config: AnalyzeConfig) -> VideoResult | None:
    """A "split" result when ``task`` is a whole video longer than ``config.segment_s``."""
    info = reader.info
    if task.segment is not None or not task.split or not config.segment_s or not (info.fps and info.duration_s):
        return None
    count = len(plan_segments(info.duration_s, config.segment_s, config.fps))
    if count == 1:
        return None
    return VideoResult(task.video_id, task.path, "split", duration_s=info.duration_s, fps=info.fps,
                       width=info.width, height=info.height, segments=count)


class PendingRows:
    """Frames analysed but not yet written: their faces' crops until classified, then probabilities.

    Classifying (a full batch, or early while the decoder is behind) and writing (a Parquet row
    group of up to ``max_frames_per_chunk`` frames) happen at separate times, so early small
    batches do not fragment the file.
    """

    def __init__(self, classifier: EmotionClassifier, batch_size: int) -> None:
        self.classifier = classifier
        self.batch_size = batch_size
        self.frames: list[FrameFaces] = []
        self._crops: list[np.ndarray] = []
        self._probs: list[np.ndarray] = []
        self.unclassified = 0

    def __len__(self) -> int:
        return len(self.frames)

    def add(self, frame: FrameFaces, crops: np.ndarray) -> None:
        """One frame's faces and their crops (n, size, size); n may be 0."""
        self.frames.append(frame)
        if len(crops):
            self._crops.append(crops)
            self.unclassified += len(crops)

    def classify(self) -> None:
        """Score the waiting crops in one batched call."""
        if self._crops:
            self._probs.append(self.classifier.predict_proba(np.concatenate(self._crops), batch_size=self.batch_size))
            self._crops.clear()
            self.unclassified = 0

    def write(self, video_id: str, sink: ParquetSink) -> None:
        """Classify what is left and write every pending frame's rows; empties the buffer."""
        if not self.frames:
            return
        self.classify()
        classes = self.classifier.classes
        probs = np.concatenate(self._probs) if self._probs else np.zeros((0, len(classes)), np.float32)
        sink.write(to_record_batch(video_id, self.frames, probs, sink.schema, classes))
        self.frames.clear()
        self._probs.clear()
