"""Reading videos with OpenCV: container facts and a sampled frame stream with real timestamps."""

from __future__ import annotations

import math
import os
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from emovid.errors import VideoOpenError

VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v")


@dataclass(frozen=True, slots=True)
class VideoInfo:
    """What the container says about a video (``fps``/``frame_count`` are None when it does not say)."""

    width: int
    height: int
    fps: float | None
    frame_count: int | None
    codec: str

    @property
    def duration_s(self) -> float | None:
        if self.fps and self.frame_count:
            return self.frame_count / self.fps
        return None

    @classmethod
    def from_capture(cls, cap: cv2.VideoCapture) -> "VideoInfo":
        fps = cap.get(cv2.CAP_PROP_FPS)
        count = cap.get(cv2.CAP_PROP_FRAME_COUNT)
        fourcc = int(cap.get(cv2.CAP_PROP_FOURCC))
        codec = fourcc.to_bytes(4, "little").decode("ascii", "replace").strip("\x00 ") if fourcc > 0 else ""
        return cls(
            width=int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
            height=int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
            fps=fps if math.isfinite(fps) and 0 < fps < 1000 else None,
            frame_count=int(count) if math.isfinite(count) and count > 0 else None,
            codec=codec,
        )


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded frame: its index in the stream, presentation time in seconds, BGR pixels."""

    index: int
    timestamp_s: float
    image: np.ndarray


_IMAGE_MAGIC = {b"\xff\xd8\xff": "JPEG", b"\x89PNG": "PNG", b"GIF8": "GIF", b"BM": "BMP", b"II*\x00": "TIFF",
                b"MM\x00*": "TIFF"}


def _image_kind(path: Path) -> str | None:
    """The image format of ``path`` from its first bytes (FFmpeg would open it as a 1-frame video)."""
    with path.open("rb") as fh:
        head = fh.read(12)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    return next((kind for magic, kind in _IMAGE_MAGIC.items() if head.startswith(magic)), None)


def check_video_file(path: Path) -> None:
    """Reject paths that cannot be a readable video, with a one-line reason.

    Raises:
        VideoOpenError: missing, a directory, a broken link, unreadable, empty or an image.
    """
    if path.is_symlink() and not path.exists():
        raise VideoOpenError(f"broken symbolic link (points to {os.readlink(path)})")
    if not path.exists():
        raise VideoOpenError("file not found")
    if path.is_dir():
        raise VideoOpenError("is a directory, not a video file")
    if not os.access(path, os.R_OK):
        raise VideoOpenError("permission denied")
    if path.stat().st_size == 0:
        raise VideoOpenError("empty file (0 bytes)")
    if kind := _image_kind(path):
        raise VideoOpenError(f"is a {kind} image, not a video")


class VideoReader:
    """Context manager around ``cv2.VideoCapture`` that yields sampled frames.

    Args:
        path: video file.
        sample_fps: target frames per second; None keeps every frame. A frame is kept when it
            starts a new ``1/sample_fps`` slot of presentation time, so variable frame rates and
            odd container rates are sampled evenly in time.

    Raises (on enter):
        VideoOpenError: the file cannot be opened as a video.
    """

    def __init__(self, path: str | Path, sample_fps: float | None = None) -> None:
        if sample_fps is not None and not sample_fps > 0:
            raise ValueError(f"sample_fps: expected > 0 or None, got {sample_fps}")
        self.path = Path(path)
        self.sample_fps = sample_fps
        self.frames_decoded = 0
        self.frames_sampled = 0
        self._cap: cv2.VideoCapture | None = None
        self.info: VideoInfo | None = None

    def __enter__(self) -> "VideoReader":
        check_video_file(self.path)
        cap = cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG)
        if not cap.isOpened():
            cap.release()
            raise VideoOpenError("not a video OpenCV/FFmpeg can open (corrupt, unsupported or not a video)")
        self._cap = cap
        self.info = VideoInfo.from_capture(cap)
        if self.info.width <= 0 or self.info.height <= 0:
            self.close()
            raise VideoOpenError("no video stream (frame size is 0)")
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def _timestamp(self, index: int, previous: float | None) -> float:
        """Presentation time of the frame just grabbed, from the container.

        Falls back to index / fps (or the previous time + 1/30 s) where the container gives none,
        and never goes backwards.
        """
        msec = self._cap.get(cv2.CAP_PROP_POS_MSEC)
        if math.isfinite(msec) and msec >= 0 and not (index > 0 and msec == 0):
            t = msec / 1000.0
        elif self.info.fps:
            t = index / self.info.fps
        else:
            t = (previous + 1 / 30) if previous is not None else 0.0
        return t if previous is None else max(t, previous)

    def frames(self) -> Iterator[Frame]:
        """Yield the sampled frames in order; undecoded frames are only grabbed (no colour conversion)."""
        if self._cap is None:
            raise RuntimeError("VideoReader.frames() used outside its `with` block")
        period = 1.0 / self.sample_fps if self.sample_fps else None
        first_t: float | None = None
        last_slot = -1
        previous: float | None = None
        index = -1
        while self._cap.grab():
            index += 1
            self.frames_decoded += 1
            t = self._timestamp(index, previous)
            previous = t
            if period is not None:
                first_t = t if first_t is None else first_t
                slot = math.floor((t - first_t) / period + 1e-6)
                if slot <= last_slot:
                    continue
                last_slot = slot
            ok, image = self._cap.retrieve()
            if not ok or image is None:
                continue
            self.frames_sampled += 1
            yield Frame(index, t, image)

    def truncation(self) -> str | None:
        """A reason string when the stream ended well before the frame count the container declared."""
        expected = self.info.frame_count if self.info else None
        if expected and self.frames_decoded < 0.95 * expected - 1:
            return f"stream ended after {self.frames_decoded} of {expected} frames (truncated or corrupt)"
        return None


_DONE = object()


def prefetched(frames: Iterator[Frame], depth: int = 8) -> Iterator[Frame]:
    """Decode ``frames`` in a background thread, at most ``depth`` ahead of the consumer.

    OpenCV releases the GIL while decoding, as do face detection and TensorFlow, so decoding
    overlaps with inference. Stopping early (or an error) stops and joins the thread, and the
    source generator is closed in the thread that ran it.
    """
    buffer: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                buffer.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for frame in frames:
                if not put(frame):
                    break
        except BaseException as exc:  # handed to the consumer, raised there
            put(exc)
        finally:
            frames.close()
            put(_DONE)

    thread = threading.Thread(target=produce, name="emovid-decode", daemon=True)
    thread.start()
    try:
        while True:
            item = buffer.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()
