"""The per-photo pipeline: still images, analysed in groups, one Parquet file per photo.

A photo is a one-frame input: its rows have ``frame_index`` 0, ``timestamp_s`` 0.0 and one row
per face (one all-null face row when it has none); each face is its own track and person.
Photos travel to workers in groups (:class:`ImageGroupTask`), so a folder of thousands of small
images costs a few Ray calls, and their crops are classified in shared batches.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace

import numpy as np

from emovid.errors import EmovidError
from emovid.classify.quality import pose_and_quality
from emovid.detect.faces import FaceDetections, crop_faces
from emovid.store.rows import FrameFaces, to_record_batch
from emovid.store.schema import face_schema
from emovid.store.sink import ParquetSink
from emovid.media.images import read_image, truncation
from emovid.run.tasks import GroupResult, ImageGroupTask, ImageTask, VideoResult

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Photo:
    index: int
    task: ImageTask
    faces: FaceDetections
    crops: np.ndarray
    pose: np.ndarray
    quality: np.ndarray
    width: int
    height: int
    seconds: float
    truncated: str | None  # why the file looks cut short, if it does


def analyze_images(group: ImageGroupTask, analyzer) -> GroupResult:
    """Analyse a group of photos with ``analyzer`` (a :class:`~emovid.run.pipeline.VideoAnalyzer`):
    detect and crop each, classify all crops in shared batches, write one Parquet file per photo.

    A photo that cannot be read or written gets a failed row; the others go on.
    """
    classifier, config = analyzer.classifier, analyzer.config
    photos: list[_Photo] = []
    results: dict[int, VideoResult] = {}
    for i, task in enumerate(group.images):
        started = time.perf_counter()
        try:
            image = read_image(task.path)
            cut = truncation(task.path)
            faces = analyzer.detector.detect(image)
            crops = crop_faces(image, faces, classifier.info.crop_margin, classifier.input_size, config.align)
            pose, quality = pose_and_quality(image, faces, crops, analyzer.head_pose)
            photos.append(_Photo(i, task, faces, crops, pose, quality, image.shape[1], image.shape[0],
                                 time.perf_counter() - started, cut))
        except EmovidError as exc:
            results[i] = VideoResult(task.video_id, task.path, "failed", error=str(exc), kind="image")
        except Exception as exc:  # an OpenCV error on one photo must not fail its group
            log.exception("unexpected error on %s", task.path)
            results[i] = VideoResult(task.video_id, task.path, "failed", error=f"{type(exc).__name__}: {exc}",
                                     kind="image")
        analyzer.frames_read(1)
    analyzer.reading_done()  # the photos are not opened again
    started = time.perf_counter()
    crops = [p.crops for p in photos if len(p.crops)]
    probs = (classifier.predict_proba(np.concatenate(crops), batch_size=analyzer.batch_size) if crops
             else np.zeros((0, len(classifier.classes)), np.float32))
    classify_s = (time.perf_counter() - started) / max(len(probs), 1)
    offset = 0
    for photo in photos:
        started = time.perf_counter()
        n = len(photo.faces)
        photo_probs, offset = probs[offset:offset + n], offset + n
        task = photo.task
        try:
            metadata = analyzer.file_metadata(task, {"kind": "image", "image": {"width": photo.width,
                                                                                "height": photo.height}})
            schema = face_schema(classifier.classes, {**metadata, "shots": 1, "tracks": n, "persons": n})
            frame = FrameFaces(0, 0.0, photo.faces, np.arange(n, dtype=np.int32), pose=photo.pose, quality=photo.quality)
            with ParquetSink(task.output, schema, compression="none") as sink:
                sink.write(to_record_batch(task.video_id, [frame], photo_probs, schema, classifier.classes))
            cut = photo.truncated
            result = VideoResult(task.video_id, task.path, "partial" if cut else "ok", error=cut, frames_decoded=1, frames_sampled=1, faces=n,
                                 width=photo.width, height=photo.height, output=task.output, shots=1,
                                 tracks=n, persons=n, kind="image")
        except (OSError, ValueError) as exc:  # disk full, a path that cannot be written
            result = VideoResult(task.video_id, task.path, "failed", error=f"writing results: {exc}", kind="image")
        wall = photo.seconds + n * classify_s + time.perf_counter() - started
        results[photo.index] = replace(result, wall_s=round(wall, 4))
    return GroupResult(tuple(results[i] for i in range(len(group.images))))
