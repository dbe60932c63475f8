"""What a worker is given and what it answers: one input video (or a segment of one), one manifest row.

Plain data, shared by the pipeline, the photo path, the driver and the manifest without their
importing each other.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from emovid.video import Segment


@dataclass(frozen=True, slots=True)
class VideoTask:
    """One input video: where it is, its id (path relative to the input root) and its output file.

    ``segment``: analyse only this time range of the video (see :mod:`emovid.segments`).
    ``split_s``: a worker answers "split" for a video longer than 1.5x this many seconds instead
    of analysing it (None: analyse it whole).
    """

    path: str
    video_id: str
    output: str
    segment: Segment | None = None
    split_s: float | None = None

    @property
    def key(self) -> str:
        """Unique per unit of work: the video id, plus the segment index for a segment."""
        if self.segment is not None:
            return f"{self.video_id}#{self.segment.index}"
        return self.video_id

    def failed(self, error: str, attempts: int) -> "VideoResult":
        """The result of this task when it could not run (its worker died on each attempt)."""
        return VideoResult(self.video_id, self.path, "failed", error=error, attempts=attempts)


@dataclass(frozen=True, slots=True)
class VideoResult:
    """What happened to one video; one manifest row.

    Workers also answer ``split`` (too long: analyse it in ``segments`` parts) and
    ``unsplittable`` (a segment could not be read exactly); the driver never records those.
    """

    video_id: str
    path: str
    status: str
    error: str | None = None
    frames_decoded: int = 0
    frames_sampled: int = 0
    faces: int = 0
    duration_s: float | None = None
    fps: float | None = None
    width: int | None = None
    height: int | None = None
    wall_s: float = 0.0
    attempts: int = 1
    output: str | None = None
    worker: str | None = None  # host:pid (Ray node id:pid on a cluster) that produced the result
    segments: int = 1  # time segments the video was analysed in
    shots: int | None = None  # shots found (1 without detection)
    tracks: int | None = None  # distinct track ids
    persons: int | None = None  # distinct person ids
    reused: bool = False  # results were already there (same settings) and were kept
    kind: str = "video"  # video | image

    def to_row(self) -> dict:
        return asdict(self)

    def with_attempts(self, attempts: int) -> "VideoResult":
        return replace(self, attempts=attempts)
