"""Reading videos with OpenCV: container facts and a sampled frame stream with real timestamps.

The reader only reads: which frames a run keeps (sampling, segments) and, for the shot detector of
the people stage (:class:`emovid.people.labels.ShotLabels`), every decoded frame around them
(:meth:`VideoReader.decoded`). It never labels a frame's shot.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from emovid.errors import SegmentError, VideoOpenError
from emovid.media.files import check_video_file
from emovid.media.time_segments import Segment


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
    """One decoded frame: its index in the stream, presentation time in seconds, BGR pixels, the
    index of its shot (0 when shots are not detected) and, when that shot began with a dissolve,
    the time the old picture began blending into it (frames since are a mix of both shots). When
    whole shots fell between two sampled frames, the later frame carries the transition that ended
    the earlier frame's shot instead (None if that was a cut): the tracker's shot change is there."""

    index: int
    timestamp_s: float
    image: np.ndarray
    shot: int = 0
    transition_start_s: float | None = None


@dataclass(frozen=True, slots=True)
class Decoded:
    """One decoded frame for the shot detector: its index in the segment (or video), presentation
    time, BGR pixels (None when the decoder returned none for it), whether sampling keeps it, and
    where it lies: ``"before"`` the segment (pre-roll), ``"in"`` it, or ``"after"`` its end."""

    index: int
    timestamp_s: float
    image: np.ndarray | None
    sampled: bool
    where: str = "in"


class VideoReader:
    """Context manager around ``cv2.VideoCapture`` that yields sampled frames.

    Args:
        path: video file.
        sample_fps: target frames per second; None keeps every frame. A frame is kept when it
            starts a new ``1/sample_fps`` slot of presentation time, so variable frame rates and
            odd container rates are sampled evenly in time.
        decode_threads: FFmpeg decoder threads; None lets FFmpeg use one per CPU.
        context_s: for :meth:`decoded`: seconds of frames before a segment to read with it (the
            shot detector's pre-roll); a seek lands that far before the segment. None: only
            :meth:`frames` is used.

    Raises (on enter):
        VideoOpenError: the file cannot be opened as a video.
    """

    def __init__(self, path: str | Path, sample_fps: float | None = None, decode_threads: int | None = None,
                 context_s: float | None = None) -> None:
        if sample_fps is not None and not sample_fps > 0:
            raise ValueError(f"sample_fps: expected > 0 or None, got {sample_fps}")
        if decode_threads is not None and decode_threads < 1:
            raise ValueError(f"decode_threads: expected >= 1 or None, got {decode_threads}")
        self.path = Path(path)
        self.sample_fps = sample_fps
        self.decode_threads = decode_threads
        if context_s is not None and not context_s >= 0:
            raise ValueError(f"context_s: expected >= 0 or None, got {context_s}")
        self.frames_decoded = 0
        self.frames_sampled = 0
        self.context_s = context_s
        self._cap: cv2.VideoCapture | None = None
        self.info: VideoInfo | None = None

    def __enter__(self) -> "VideoReader":
        check_video_file(self.path)
        cap = self._open()
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

    def _open(self) -> cv2.VideoCapture:
        # FFmpeg decodes with one thread per CPU of the machine by default: a Ray worker given one
        # CPU would compete with its neighbours (and threads cost 25% more CPU per frame here).
        params = [cv2.CAP_PROP_N_THREADS, self.decode_threads] if self.decode_threads else []
        return cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG, params)

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def _timestamp(self, index: int, previous: float | None, exact: bool = False) -> float:
        """Presentation time of the frame just grabbed, from the container.

        Falls back to index / fps (or the previous time + 1/30 s) where the container gives none,
        and never goes backwards. ``exact``: raise :class:`SegmentError` instead of falling back.
        """
        msec = self._cap.get(cv2.CAP_PROP_POS_MSEC)
        if math.isfinite(msec) and msec >= 0 and not (index > 0 and msec == 0):
            t = msec / 1000.0
        elif exact:
            raise SegmentError("the container gives no frame timestamps, so the video cannot be split")
        elif self.info.fps:
            t = index / self.info.fps
        else:
            t = (previous + 1 / 30) if previous is not None else 0.0
        return t if previous is None else max(t, previous)

    def frames(self, segment: Segment | None = None) -> Iterator[Frame]:
        """Yield the sampled frames in order; the others are only grabbed (no colour conversion).

        With ``segment``, only that time range is read (seeking to it) and ``Frame.index``
        counts from the segment's first frame; :func:`emovid.run.segments.merge_segments` turns it
        into the index in the whole video.

        Raises:
            SegmentError: ``segment`` cannot be read exactly (see :meth:`_seek_before`).
        """
        for frame in self._read(segment, context=False):
            yield Frame(frame.index, frame.timestamp_s, frame.image)

    def decoded(self, segment: Segment | None = None) -> Iterator[Decoded]:
        """Every decoded frame, pixels and all: the ``context_s`` before ``segment`` (``"before"``),
        the segment's (``"in"``, sampled or not) and, once it ends, those after it (``"after"``,
        for as long as the consumer asks: close the generator when done).

        Raises:
            SegmentError: ``segment`` cannot be read exactly (see :meth:`_seek_before`).
            ValueError: the reader was made without ``context_s``.
        """
        if self.context_s is None:
            raise ValueError("VideoReader.decoded() needs a reader made with context_s")
        return self._read(segment, context=True)

    def _read(self, segment: Segment | None, context: bool) -> Iterator[Decoded]:
        if self._cap is None:
            raise RuntimeError("VideoReader used outside its `with` block")
        period = 1.0 / self.sample_fps if self.sample_fps else None
        # Positions in sampling slots (or seconds): slot membership and segment bounds use the
        # same number, so they can never disagree about a frame on a boundary.
        unit = period or 1.0
        start_pos, end_pos = -math.inf, math.inf
        if segment is not None:
            start_pos, end_pos = segment.start_s / unit, segment.end_s / unit
            if period:
                start_pos = round(start_pos)
                end_pos = round(end_pos) if math.isfinite(end_pos) else end_pos
        first_t: float | None = None
        previous: float | None = None
        grabbed = 0  # frames grabbed from the stream's start, or since the seek (which grabbed one)
        if segment is not None and segment.start_s > 0:
            first_t = self._seek_before(segment.start_s)
            previous, grabbed = first_t, 1
        last_slot = start_pos - 1 if period and segment is not None else -1
        exact = segment is not None
        index = -1  # of decoded frames (in the segment, when there is one)
        after = False  # past the segment's end (only with context)
        while True:
            if not self._cap.grab():
                if math.isfinite(end_pos) and not after:  # later segments' frame indices would be off: redo in one piece
                    raise SegmentError(f"the stream ended inside segment {segment.index + 1} of {segment.count}")
                return
            grabbed += 1
            t = self._timestamp(grabbed - 1, previous, exact)
            previous = t
            first_t = t if first_t is None else first_t
            position = (t - first_t) / unit + 1e-6
            if position < start_pos:
                if context and (segment.start_s - (t - first_t)) <= self.context_s:
                    yield Decoded(-1, t, self._retrieve(), False, "before")
                continue
            if position >= end_pos or after:
                if not context:
                    return
                after = True
                yield Decoded(-1, t, self._retrieve(), False, "after")
                continue
            index += 1
            self.frames_decoded += 1
            sampled = True
            if period is not None:
                slot = math.floor(position)
                sampled = slot > last_slot
                last_slot = max(slot, last_slot)
            if not (sampled or context):
                continue
            image = self._retrieve()  # with context every frame's pixels are fetched; else the sampled ones'
            sampled = sampled and image is not None
            self.frames_sampled += sampled
            if context or sampled:
                yield Decoded(index, t, image, sampled)

    def _retrieve(self) -> np.ndarray | None:
        """The pixels of the frame just grabbed (None if the decoder gives none)."""
        ok, image = self._cap.retrieve()
        return image if ok else None

    def _seek_before(self, start_s: float) -> float:
        """Position the capture on a frame before ``start_s``; returns the video's first timestamp.

        OpenCV seeks by frame number through the frame rate, which lands late on variable frame
        rate videos, so it seeks further back until the frame it lands on is before the segment:
        then no frame of the segment can have been skipped.

        Raises:
            SegmentError: no frame rate or timestamps, or no seek landed before ``start_s``.
        """
        fps = self.info.fps
        if not fps or not self._cap.grab():
            raise SegmentError("no frame rate or first frame, so the video cannot be split")
        first_t = self._timestamp(0, None, exact=True)
        preroll_s = (self.context_s or 0.0) + 2.0 / fps  # the shot detector's pre-roll, and the frame before it
        while True:
            target = math.floor((start_s - preroll_s) * fps)
            if target <= 0:  # read from the first frame: reopen rather than trust a seek to 0
                self._cap.release()
                self._cap = self._open()
                if not self._cap.grab():
                    raise SegmentError("the video could not be reopened to read a segment")
                return first_t
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, target)
            if not self._cap.grab():
                raise SegmentError(f"seeking to {start_s:.3f}s found no frame")
            t = self._timestamp(1, None, exact=True)
            if t - first_t < start_s - 1e-3:
                return first_t
            preroll_s *= 4

    def truncation(self) -> str | None:
        """A reason string when the stream ended well before the frame count the container declared."""
        return truncation_message(self.frames_decoded, self.info.frame_count if self.info else None)


def truncation_message(frames_decoded: int, frame_count: int | None) -> str | None:
    """Why a stream of ``frames_decoded`` frames looks truncated, or None if it does not."""
    if frame_count and frames_decoded < 0.95 * frame_count - 1:
        return f"stream ended after {frames_decoded} of {frame_count} frames (truncated or corrupt)"
    return None


def frames_at(path: str | Path, indices) -> Iterator[tuple[int, np.ndarray]]:
    """The decoded frames at ``indices`` (in the order of the decoded stream, the indices that
    ``analyze`` writes), read from the start: ``grab`` skips the others without converting them.

    Container seeks can land on another frame, so this never seeks; frames past the stream's end
    are not yielded.
    """
    wanted = sorted(set(int(i) for i in indices))
    if not wanted:
        return
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    try:
        index, pending = 0, iter(wanted)
        target = next(pending)
        while cap.grab():
            if index == target:
                ok, image = cap.retrieve()
                if ok:
                    yield index, image
                target = next(pending, None)
                if target is None:
                    return
            index += 1
    finally:
        cap.release()
