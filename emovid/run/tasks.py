"""What a worker is given and what it answers: one input video (or a segment of one), one manifest row.

Plain data, shared by the pipeline, the photo path, the driver and the manifest without their
importing each other.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from emovid.media.time_segments import Segment


@dataclass(frozen=True, slots=True)
class VideoTask:
    """One input video: where it is, its id (path relative to the input root) and its output file.

    ``segment``: analyse only this time range of the video (see :mod:`emovid.run.segments`).
    ``split_s``: a worker answers "split" for a video longer than 1.5x this many seconds instead
    of analysing it (None: analyse it whole), into at most ``max_segments`` segments (None: as
    many as ``split_s`` makes; the Ray driver sets it to the workers that would otherwise idle).
    """

    path: str
    video_id: str
    output: str
    segment: Segment | None = None
    split_s: float | None = None
    max_segments: int | None = None

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


#: Photos per Ray task: enough to amortise a call and fill classifier batches, few enough that
#: a folder of a few hundred photos still spreads over several workers.
IMAGES_PER_TASK = 32


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
