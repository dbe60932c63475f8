"""Joining the tracks of a video's segments into the whole video's tracks (see :mod:`emovid.run.segments`).

At each segment boundary, tracks that end within ``track_gap_s`` before it are joined to tracks of
the same shot that start after it, with the tracker's own motion score; ids are renumbered in
order of appearance, as an unsplit run numbers them.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from emovid.people.tracker import FaceTracker


class TrackStitcher:
    """Renumbers per-segment track ids into ids for the whole video, joining tracks at boundaries."""

    def __init__(self, max_gap_s: float) -> None:
        self.max_gap_s = max_gap_s
        self._scorer = FaceTracker(max_gap_s=max_gap_s)
        self._next_id = 0
        # whole-video id -> (last time, box, centre velocity in px/s, shot) of tracks seen so far
        self._last: dict[int, tuple[float, np.ndarray, np.ndarray, int]] = {}

    @property
    def track_count(self) -> int:
        """Whole-video track ids given so far (they are 0 .. track_count - 1)."""
        return self._next_id

    def relabel(self, table: pa.Table) -> tuple[pa.Array, dict[int, int]]:
        """Whole-video track ids for one segment's rows (in segment order, ``shot`` already
        whole-video), and the {segment track id: whole-video id} map."""
        local = table["track_id"].to_numpy(zero_copy_only=False)
        has_track = ~np.asarray(pc.is_null(table["track_id"]))
        if not has_track.any():
            return table["track_id"], {}
        ids = local[has_track].astype(np.int64)
        times = table["timestamp_s"].to_numpy()[has_track]
        shots = table["shot"].to_numpy()[has_track]
        boxes = np.stack([table[c].to_numpy(zero_copy_only=False)[has_track] for c in ("x", "y", "w", "h")], axis=1)
        boxes = boxes.astype(float)
        order = np.lexsort((times, ids))  # rows grouped by id, in time order
        times, boxes, by_track, shots = times[order], boxes[order], ids[order], shots[order]
        starts = np.flatnonzero(np.r_[True, np.diff(by_track) != 0])
        ends = np.r_[starts[1:], len(order)] - 1
        local_ids = by_track[starts]
        before_last = np.maximum(ends - 1, starts)
        dt = times[ends] - times[before_last]
        centres = boxes[:, :2] + boxes[:, 2:] / 2
        velocity = np.divide(centres[ends] - centres[before_last], dt[:, None], out=np.zeros((len(ends), 2)),
                             where=dt[:, None] > 0)

        mapping = self._match(times[starts], boxes[starts], shots[starts])
        for i in range(len(local_ids)):  # local ids are in order of appearance
            if i not in mapping:
                mapping[i] = self._next_id
                self._next_id += 1
        for i in range(len(local_ids)):
            self._last[mapping[i]] = (float(times[ends[i]]), boxes[ends[i]], velocity[i], int(shots[ends[i]]))
        lookup = dict(zip(local_ids.tolist(), (mapping[i] for i in range(len(local_ids)))))
        out = np.full(len(local), -1, np.int64)
        out[has_track] = [lookup[i] for i in ids.tolist()]
        return pa.array(out.astype(np.int32), mask=~has_track), lookup

    def _match(self, first_t: np.ndarray, first_box: np.ndarray, first_shot: np.ndarray) -> dict[int, int]:
        """{index of a new track: whole-video id of the earlier track it continues}."""
        if not self._last or not len(first_t):
            return {}
        old_ids = list(self._last)
        old_t = np.array([self._last[i][0] for i in old_ids])
        old_box = np.stack([self._last[i][1] for i in old_ids])
        old_velocity = np.stack([self._last[i][2] for i in old_ids])
        old_shot = np.array([self._last[i][3] for i in old_ids])
        gap = first_t[None, :] - old_t[:, None]
        score = np.empty(gap.shape)
        for j in range(len(first_t)):  # each earlier track predicted at this track's first time, as the tracker does
            predicted = old_box.copy()
            predicted[:, :2] += old_velocity * np.clip(gap[:, j:j + 1], 0, None)
            score[:, j] = self._scorer.similarity(predicted, first_box[j:j + 1], np.clip(gap[:, j], 0, None))[:, 0]
        score[(gap < 0) | (gap > self.max_gap_s) | (old_shot[:, None] != first_shot[None, :])] = -1.0
        matched: dict[int, int] = {}
        used: set[int] = set()
        for flat in np.argsort(-score, axis=None):  # best pairs first, as the tracker does
            oi, ni = np.unravel_index(flat, score.shape)
            if score[oi, ni] < 0:
                break
            if oi in used or ni in matched:
                continue
            used.add(oi)
            matched[int(ni)] = old_ids[oi]
        return matched
