"""Each sampled frame's shot, from every decoded frame: the people stage's view of the video.

The reader hands over every decoded frame (:meth:`emovid.media.video.VideoReader.decoded`); the
:class:`~emovid.people.shots.ShotDetector` sees them all, so a cut between two sampled frames still
starts a new shot. A dissolve or wipe is seen ``CUT_DELAY_FRAMES`` frames after its new picture
began, so sampled frames wait that many decoded frames here and move to the new shot when one is
seen. For a segment, the frames before it (the pre-roll) let a cut or fade exactly at its start
count, and the frames after it show a dissolve under way at its end.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import replace

from emovid.people.shots import CUT_DELAY_FRAMES, MAX_DISSOLVE_S, MAX_FADE_IN_S, ShotDetector
from emovid.media.video import Decoded, Frame

#: Seconds of frames before a segment's start the shot detector needs: the last one for a cut
#: exactly at the segment's start, the last MAX_FADE_IN_S for a fade through black and
#: MAX_DISSOLVE_S for a dissolve.
PREROLL_SHOT_S = max(MAX_FADE_IN_S, MAX_DISSOLVE_S) + 0.5


class ShotLabels:
    """Labels the sampled frames of one video (or segment) with their shot.

    Args:
        detector: a fresh shot detector.
        fps: the video's frame rate (None if unknown), for how far past a segment's end to look.

    Attributes:
        dissolve_past_end_s: where a dissolve under way at the segment's end began, when its
            blend began inside the segment but its new picture after it (or was not sampled);
            the segment's faces since are blends. None if there was none.
    """

    def __init__(self, detector: ShotDetector, fps: float | None) -> None:
        self.detector = detector
        self.fps = fps
        self.dissolve_past_end_s: float | None = None
        self._last_shot: int | None = None  # the segment's last shot, once frames past its end are read
        self._seen_any = False

    @property
    def shots_seen(self) -> int:
        """Shots among the frames labelled so far (1 before any frame)."""
        if not self._seen_any:
            return 1
        return (self._last_shot if self._last_shot is not None else self.detector.shot) + 1

    def frames(self, decoded: Iterable[Decoded], segment: bool = False) -> Iterator[Frame]:
        """The sampled frames of ``decoded`` (a reader's :meth:`~emovid.media.video.VideoReader.decoded`),
        in order, each with its shot. ``segment``: the frames are a segment of a longer video (a
        dissolve whose new picture began before it is the previous segment's)."""
        detector = self.detector
        held: deque[Frame] = deque()
        shown: int | None = None  # the shot of the frame yielded last
        first_t: float | None = None
        source = iter(decoded)
        try:
            for frame in source:
                if frame.where == "before":
                    if frame.image is not None:
                        detector.update(frame.image, frame.timestamp_s)
                    continue
                if frame.where == "after":
                    self._look_past_end(frame, source, held)
                    break
                if first_t is None:
                    first_t = frame.timestamp_s
                    self._seen_any = True
                    detector.restart_count()
                if frame.image is not None:
                    detector.update(frame.image, frame.timestamp_s)
                shot, began, dissolve = detector.shot, detector.shot_start_s, detector.transition_start_s
                if segment and shot == 1 and dissolve is not None and began < first_t:
                    # the new picture began before this segment: the previous segment's labels saw
                    # the dissolve past its end and counted it
                    detector.restart_count()
                    shot = 0
                if dissolve is not None:  # a dissolve seen now: its new picture began earlier
                    _move_to_shot(held, shot, began, dissolve)
                while held and frame.index - held[0].index >= CUT_DELAY_FRAMES:
                    shown, out = self._shown(held.popleft(), shown)
                    yield out
                if frame.sampled and frame.image is not None:
                    held.append(Frame(frame.index, frame.timestamp_s, frame.image, shot, detector.transition_start_s))
            while held:
                shown, out = self._shown(held.popleft(), shown)
                yield out
        finally:
            if hasattr(source, "close"):
                source.close()

    def _shown(self, frame: Frame, shown: int | None) -> tuple[int, Frame]:
        if shown is not None and frame.shot > shown + 1:
            # Shots came and went between two sampled frames: the tracker must hear of the
            # dissolve that ended the last frame's shot (its faces since were blends), not of
            # the transition into this frame's.
            frame = replace(frame, transition_start_s=self.detector.transition_start_of(shown + 1))
        return frame.shot, frame

    def _look_past_end(self, first: Decoded, source: Iterator[Decoded], held: deque[Frame]) -> None:
        """Feed the detector the frames after a segment, from ``first``, until its next cut or
        MAX_DISSOLVE_S + CUT_DELAY_FRAMES on: a dissolve under way at the segment's end is seen
        only there. If its new picture began inside the segment, the segment counts the new shot
        and its held frames from there move to it (the next segment does not count it); the
        transition start of a dissolve whose blend began inside the segment but not its new picture
        goes to ``dissolve_past_end_s``, or also of one whose new frames were not sampled."""
        detector, t = self.detector, first.timestamp_s
        shot = self._last_shot = detector.shot
        frame: Decoded | None = first
        for _ in range(CUT_DELAY_FRAMES + 1 + math.ceil(MAX_DISSOLVE_S * (self.fps or 30.0))):
            if frame is None:
                frame = next(source, None)
                if frame is None:
                    return
            if frame.image is not None:
                detector.update(frame.image, frame.timestamp_s)
            frame = None
            if detector.shot == shot:
                continue
            dissolve, began = detector.transition_start_s, detector.shot_start_s
            if dissolve is None or dissolve >= t:  # a cut or a dissolve of the next segment's
                return
            if began < t:
                self._last_shot = detector.shot
                if _move_to_shot(held, detector.shot, began, dissolve):  # the tracker sees it at the shot change
                    return
            self.dissolve_past_end_s = dissolve
            return


def _move_to_shot(held: deque[Frame], shot: int, began: float, transition_start_s: float) -> bool:
    """Move the held frames from ``began`` on to ``shot``, whose dissolve was seen after them;
    True if any moved."""
    moved = False
    for k, frame in enumerate(held):
        if frame.shot < shot and frame.timestamp_s >= began:
            held[k] = replace(frame, shot=shot, transition_start_s=transition_start_s)
            moved = True
    return moved
