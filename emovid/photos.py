"""The per-photo pipeline: still images, analysed in groups, one Parquet file per photo.

A photo is a one-frame input: its rows have ``frame_index`` 0, ``timestamp_s`` 0.0 and one row
per face (one all-null face row when it has none); each face is its own track and person.
Photos travel to workers in groups (:class:`ImageGroupTask`), so a folder of thousands of small
images costs a few Ray calls, and their crops are classified in shared batches.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import PIL.Image

from emovid.errors import EmovidError, ImageError
from emovid.faces import FaceDetections, crop_faces
from emovid.rows import FrameFaces, to_record_batch
from emovid.schema import face_schema
from emovid.sink import ParquetSink
from emovid.tasks import VideoResult
from emovid.video import not_a_file

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
#: Photos per Ray task: enough to amortise a call and fill classifier batches, few enough that
#: a folder of a few hundred photos still spreads over several workers.
IMAGES_PER_TASK = 32
#: Larger images are refused rather than decoded (a 100-megapixel photo is 300 MB of pixels).
MAX_IMAGE_PIXELS = 100_000_000


@dataclass(frozen=True, slots=True)
class ImageTask:
    """One photo: where it is, its id (path relative to the input root) and its output file."""

    path: str
    video_id: str  # the id column is named for videos; for a photo it is the photo's id
    output: str


@dataclass(frozen=True, slots=True)
class ImageGroupTask:
    """Photos analysed by one worker call."""

    images: tuple[ImageTask, ...]

    def __post_init__(self) -> None:
        if not self.images:
            raise ValueError("an image group needs at least one image")

    @property
    def key(self) -> str:
        """Unique per unit of work (the retry count is kept per key)."""
        return f"images:{self.images[0].video_id}+{len(self.images) - 1}"

    @property
    def video_id(self) -> str:
        return self.images[0].video_id

    def singles(self) -> list["ImageGroupTask"]:
        """One group per photo: a photo that kills its worker then fails alone."""
        return [ImageGroupTask((image,)) for image in self.images]

    def failed(self, error: str, attempts: int) -> "GroupResult":
        return GroupResult(tuple(VideoResult(t.video_id, t.path, "failed", error=error, attempts=attempts,
                                             kind="image") for t in self.images))


@dataclass(frozen=True, slots=True)
class GroupResult:
    """One manifest row per photo of an :class:`ImageGroupTask`, in its order."""

    results: tuple

    def with_attempts(self, attempts: int) -> "GroupResult":
        return GroupResult(tuple(r.with_attempts(attempts) for r in self.results))


def group_images(tasks: list[ImageTask], per_task: int = IMAGES_PER_TASK) -> list[ImageGroupTask]:
    """``tasks`` in groups of at most ``per_task`` photos, in order."""
    if per_task < 1:
        raise ValueError(f"per_task: expected >= 1, got {per_task}")
    return [ImageGroupTask(tuple(tasks[i:i + per_task])) for i in range(0, len(tasks), per_task)]


def read_image(path: str) -> np.ndarray:
    """A photo as 8-bit BGR, upright (JPEG EXIF orientation applied), transparency over white.

    Raises:
        ImageError: missing, empty, not a decodable image, or too large.
    """
    if reason := not_a_file(Path(path)):  # first: a broken link does not exist either
        raise ImageError(reason)
    if not os.path.exists(path):  # the driver found it: this node does not see its filesystem
        raise ImageError(f"{path} does not exist on worker host {socket.gethostname()}: inputs and --out must be "
                         f"on a filesystem every node mounts at the same path")
    if os.path.getsize(path) == 0:
        raise ImageError("empty file (0 bytes)")
    _check_pixel_count(path)
    # IMREAD_UNCHANGED keeps alpha and 16-bit depth but skips EXIF rotation, which only JPEGs carry.
    jpeg = path.lower().endswith((".jpg", ".jpeg"))
    try:
        image = cv2.imread(path, cv2.IMREAD_COLOR if jpeg else cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:  # e.g. over OpenCV's own pixel limit
        raise ImageError(f"cannot decode: {exc.err or exc}") from None
    if image is None or image.size == 0:
        raise ImageError("not an image OpenCV can decode (corrupt, truncated or unsupported)")
    if image.dtype != np.uint8:  # 16-bit PNG/TIFF
        image = cv2.convertScaleAbs(image, alpha=255.0 / np.iinfo(image.dtype).max) \
            if np.issubdtype(image.dtype, np.integer) else cv2.convertScaleAbs(image, alpha=255.0)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        alpha = image[:, :, 3:4].astype(np.float32) / 255.0
        return (image[:, :, :3] * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)
    return image


def _check_pixel_count(path: str) -> None:
    """Refuse an oversized image from its header, before decoding allocates it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PIL.Image.DecompressionBombWarning)
            with PIL.Image.open(path) as header:
                width, height = header.size
    except PIL.Image.DecompressionBombError as exc:
        raise ImageError(f"too large to decode safely ({exc})") from None
    except (PIL.UnidentifiedImageError, OSError, ValueError):
        return  # not for Pillow to judge: OpenCV decides whether it is an image
    if width * height > MAX_IMAGE_PIXELS:
        raise ImageError(f"{width}x{height} pixels: more than {MAX_IMAGE_PIXELS:,}; downscale it first")


def truncation(path: str) -> str | None:
    """Why a JPEG decoded only in part (OpenCV fills what is missing with grey), or None.

    A complete JPEG ends with the end-of-image marker (some cameras append a few bytes after it).
    """
    if not path.lower().endswith((".jpg", ".jpeg")):
        return None
    with open(path, "rb") as fh:
        fh.seek(max(os.path.getsize(path) - 1024, 0))
        tail = fh.read()
    return None if b"\xff\xd9" in tail else "truncated JPEG (no end-of-image marker): its lower part is missing"


@dataclass(slots=True)
class _Photo:
    index: int
    task: ImageTask
    faces: FaceDetections
    crops: np.ndarray
    width: int
    height: int
    seconds: float
    truncated: str | None  # why the file looks cut short, if it does


def analyze_images(group: ImageGroupTask, analyzer) -> GroupResult:
    """Analyse a group of photos with ``analyzer`` (a :class:`~emovid.pipeline.VideoAnalyzer`):
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
            photos.append(_Photo(i, task, faces, crops, image.shape[1], image.shape[0], time.perf_counter() - started,
                                 cut))
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
            frame = FrameFaces(0, 0.0, photo.faces, np.arange(n, dtype=np.int32))
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
