"""Time segments of a video: the ranges a long video is cut into so workers analyse them in parallel.

Plain data (no OpenCV): task types carry a :class:`Segment`, and the reader reads one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Segment:
    """A time range of one video analysed as its own task (long videos are split into these).

    Holds the frames with ``start_s <= t - t0 < end_s``, where ``t0`` is the video's first
    timestamp. With sampling, bounds are whole sampling periods, so a sampling slot never
    straddles two segments and the split run keeps exactly the frames an unsplit run keeps.
    """

    index: int
    count: int
    start_s: float
    end_s: float  # math.inf for the last segment

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise ValueError(f"index: expected 0..{self.count - 1}, got {self.index}")
        if not 0 <= self.start_s < self.end_s:
            raise ValueError(f"expected 0 <= start_s < end_s, got {self.start_s}, {self.end_s}")


def plan_segments(duration_s: float, segment_s: float, sample_fps: float | None,
                  max_count: int | None = None) -> list[Segment]:
    """Cut a video of ``duration_s`` into segments of about ``segment_s`` (one if it is short),
    or into ``max_count`` longer ones where ``segment_s`` would make more.

    Segments are 0.5-1.5x ``segment_s`` long (longer when capped); the last one is open-ended so
    frames beyond the declared duration are still read.
    """
    if not segment_s > 0 or not duration_s >= 0:
        raise ValueError(f"expected segment_s > 0 and duration_s >= 0, got {segment_s}, {duration_s}")
    if max_count is not None and max_count < 1:
        raise ValueError(f"max_count: expected >= 1 or None, got {max_count}")
    if max_count is not None and round(duration_s / segment_s) > max_count:
        segment_s = duration_s / max_count
    if sample_fps:  # a whole number of sampling periods per segment
        segment_s = max(1, round(segment_s * sample_fps)) / sample_fps
    count = max(1, round(duration_s / segment_s))
    if max_count is not None:
        count = min(count, max_count)
    return [Segment(i, count, i * segment_s, (i + 1) * segment_s if i < count - 1 else math.inf)
            for i in range(count)]
