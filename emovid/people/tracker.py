"""Online face tracking: stable ``track_id`` per person while they stay in view, within one shot.

SORT-style association, made time-aware for sampled frames and checked by appearance: each
track predicts its box at the new frame's timestamp with a constant-velocity model; a
detection may join a track only when its box is plausible for that prediction (IoU, or
centre distance relative to face size for the big jumps between frames sampled at a few fps)
*and* it looks like the track (:mod:`emovid.people.appearance`), so a different person who steps into
a lost face's place starts a new track. Pairs are chosen by optimal assignment (Hungarian)
on a mix of both scores, so two faces that cross keep their ids. A track that misses
detections survives ``max_gap_s`` seconds; :meth:`FaceTracker.end_all` ends every track at a
shot cut. Ids are never reused.

The cheap descriptor cannot tell every two people apart (two grey faces of similar build can
look more alike to it than one face across two expressions), so each match whose look differs
more than a moving face's does from one sampled frame to the next is flagged in
:attr:`FaceTracker.jumped`: a missed cut, or a new person in a lost face's place. The caller
checks those with the identity embedding and calls :meth:`FaceTracker.split` where it changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from emovid.detect.faces import FaceDetections

#: ``max_centre_shift`` is allowed per this many seconds since a track was last seen.
SHIFT_PERIOD_S = 0.25
#: Similarity (descriptor dot product) under which a match is a jump worth an identity check: to
#: the track's last face and to each of its known looks. Two different people at one place came to
#: 0.92 at most (grey photos; 0.5-0.85 where our swap videos cut from one to the other); one face
#: from sample to sample is under it in about 1% of matches at every frame and 5% at 4 fps (a turn,
#: a fast move), which is what the checks cost.
JUMP_SIMILARITY = 0.92
#: Looks (descriptors) kept per track as known to be its person: its first face's and those of
#: jumps that stayed the same person.
KNOWN_LOOKS = 8


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of ``x, y, w, h`` boxes: (len(a), len(b))."""
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)))
    ax1, ay1, ax2, ay2 = a[:, 0], a[:, 1], a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]
    bx1, by1, bx2, by2 = b[:, 0], b[:, 1], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.clip(np.minimum(ax2[:, None], bx2) - np.maximum(ax1[:, None], bx1), 0, None)
    ih = np.clip(np.minimum(ay2[:, None], by2) - np.maximum(ay1[:, None], by1), 0, None)
    inter = iw * ih
    union = (a[:, 2] * a[:, 3])[:, None] + b[:, 2] * b[:, 3] - inter
    return np.divide(inter, union, out=np.zeros_like(inter, dtype=float), where=union > 0)


@dataclass(slots=True)
class _Track:
    track_id: int
    box: np.ndarray  # x, y, w, h at last_seen
    last_seen: float
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2))  # centre px/s
    appearance: np.ndarray | None = None  # running mean descriptor (unit length)
    last_look: np.ndarray | None = None  # the descriptor of its last face
    known_looks: list[np.ndarray] = field(default_factory=list)  # see KNOWN_LOOKS

    def jumps(self, look: np.ndarray | None) -> bool:
        """Whether ``look`` differs from this track's last face and from each of its known looks."""
        if look is None or self.last_look is None or float(look @ self.last_look) >= JUMP_SIMILARITY:
            return False
        return all(float(look @ known) < JUMP_SIMILARITY for known in self.known_looks)

    def predict(self, t: float) -> np.ndarray:
        box = self.box.copy()
        box[:2] += self.velocity * (t - self.last_seen)
        return box

    def update(self, box: np.ndarray, t: float, smoothing: float, appearance: np.ndarray | None,
               momentum: float) -> None:
        dt = t - self.last_seen
        if dt > 0:
            measured = ((box[:2] + box[2:] / 2) - (self.box[:2] + self.box[2:] / 2)) / dt
            self.velocity = smoothing * measured + (1 - smoothing) * self.velocity
        self.box = box.astype(float)
        self.last_seen = t
        if appearance is not None:
            self.last_look = appearance
            mixed = appearance if self.appearance is None else momentum * self.appearance + (1 - momentum) * appearance
            norm = float(np.linalg.norm(mixed))
            self.appearance = mixed / norm if norm > 0 else mixed


class FaceTracker:
    """Assigns track ids to the faces of successive frames of one video.

    Args:
        max_gap_s: how long a track survives without a matching detection (a turned head, a
            hand in front of the face). Longer bridges longer occlusions but risks handing an
            id to someone else who appears where the lost face was.
        min_iou: IoU with the predicted box needed for a match.
        max_centre_shift: fallback match when IoU is low: centre distance at most this many
            face widths per quarter second since the track was last seen (at least once), for
            sampled frames far apart. Larger follows faster motion, but two people close
            together are likelier to swap.
        velocity_smoothing: weight of the newest motion measurement (0..1).
        min_appearance: appearance similarity (dot product of descriptors, -1..1) a detection
            needs to join a track. Higher splits a person whose look changes fast (light, a
            turned head) into two tracks; lower lets a stranger in a lost face's place take
            its id.
        appearance_weight: share of appearance in the score the assignment maximises (the
            rest is motion); it decides which of two crossing faces is which.
        appearance_momentum: weight of a track's running descriptor against each new one.
    """

    def __init__(self, max_gap_s: float = 1.0, min_iou: float = 0.2, max_centre_shift: float = 1.0,
                 velocity_smoothing: float = 0.5, min_appearance: float = 0.5, appearance_weight: float = 0.7,
                 appearance_momentum: float = 0.8) -> None:
        if (max_gap_s < 0 or not 0 <= min_iou <= 1 or max_centre_shift < 0 or not 0 <= velocity_smoothing <= 1
                or not -1 <= min_appearance <= 1 or not 0 <= appearance_weight <= 1
                or not 0 <= appearance_momentum < 1):
            raise ValueError("expected max_gap_s >= 0, 0 <= min_iou <= 1, max_centre_shift >= 0, "
                             "0 <= velocity_smoothing <= 1, -1 <= min_appearance <= 1, 0 <= appearance_weight <= 1, "
                             f"0 <= appearance_momentum < 1; got {max_gap_s}, {min_iou}, {max_centre_shift}, "
                             f"{velocity_smoothing}, {min_appearance}, {appearance_weight}, {appearance_momentum}")
        self.max_gap_s = max_gap_s
        self.min_iou = min_iou
        self.max_centre_shift = max_centre_shift
        self.velocity_smoothing = velocity_smoothing
        self.min_appearance = min_appearance
        self.appearance_weight = appearance_weight
        self.appearance_momentum = appearance_momentum
        self._tracks: list[_Track] = []
        self._next_id = 0
        self._last_t: float | None = None
        #: Per face of the last :meth:`update`: whether it continued a track with a jump in its
        #: look (see the module docs).
        self.jumped = np.zeros(0, bool)
        self._last_update: tuple[FaceDetections, float, np.ndarray | None] | None = None
        self._last_ids = np.zeros(0, np.int32)  # the track ids the last update gave

    def reset(self) -> None:
        """Forget all tracks (ids still never repeat for this tracker)."""
        self._tracks.clear()
        self._last_t = None

    @property
    def live_ids(self) -> set[int]:
        """Ids of the tracks a later face may still continue."""
        return {t.track_id for t in self._tracks}

    def end_all(self) -> None:
        """End every track (a shot cut): no face after it continues a track from before it."""
        self._tracks.clear()

    def similarity(self, predicted: np.ndarray, boxes: np.ndarray, elapsed_s: np.ndarray | None = None) -> np.ndarray:
        """Pairwise match scores: IoU where it is high enough, else a score below ``min_iou``
        from centre distance; negative means "cannot be the same face". ``elapsed_s``: per
        predicted box, seconds since its track was last seen (widens the reach)."""
        iou = iou_matrix(predicted, boxes)
        pc = predicted[:, :2] + predicted[:, 2:] / 2
        bc = boxes[:, :2] + boxes[:, 2:] / 2
        scale = np.maximum(predicted[:, 2:3], 1.0)
        shift = np.linalg.norm(pc[:, None, :] - bc[None, :, :], axis=2) / scale
        size_ratio = boxes[None, :, 2] / np.maximum(predicted[:, None, 2], 1.0)
        periods = np.ones((len(predicted), 1)) if elapsed_s is None else np.maximum(1.0, elapsed_s / SHIFT_PERIOD_S)[:, None]
        reach = np.maximum(self.max_centre_shift * periods, 1e-6)
        plausible = (shift <= reach) & (size_ratio > 0.5) & (size_ratio < 2.0)
        fallback = np.where(plausible, self.min_iou * (1 - shift / reach) * 0.999, -1.0)
        return np.where(iou >= self.min_iou, iou, fallback)

    def match_scores(self, faces: FaceDetections, timestamp_s: float,
                     descriptors: np.ndarray | None) -> np.ndarray:
        """(tracks, faces) scores for the assignment; -1 where a pair fails a gate."""
        predicted = np.stack([t.predict(timestamp_s) for t in self._tracks])
        elapsed = np.array([timestamp_s - t.last_seen for t in self._tracks])
        motion = self.similarity(predicted, faces.boxes.astype(float), elapsed)
        if descriptors is None:
            return motion
        score = motion.copy()
        for ti, track in enumerate(self._tracks):
            if track.appearance is None:
                continue
            looks = descriptors @ track.appearance
            mixed = (1 - self.appearance_weight) * motion[ti] + self.appearance_weight * looks
            score[ti] = np.where((motion[ti] >= 0) & (looks >= self.min_appearance), mixed, -1.0)
        return score

    def update(self, faces: FaceDetections, timestamp_s: float, descriptors: np.ndarray | None = None) -> np.ndarray:
        """Match ``faces`` (one frame) to tracks and return their (n,) int32 track ids.

        Args:
            faces: the frame's detections.
            timestamp_s: the frame's time; must not go backwards.
            descriptors: (n, d) unit appearance descriptors (:func:`emovid.people.appearance.describe`);
                None matches by motion alone.

        Raises:
            ValueError: timestamps go backwards, or descriptors do not match the faces.
        """
        if self._last_t is not None and timestamp_s < self._last_t:
            raise ValueError(f"timestamp_s: expected >= {self._last_t}, got {timestamp_s}")
        if descriptors is not None and len(descriptors) != len(faces):
            raise ValueError(f"descriptors: expected {len(faces)} rows, got {len(descriptors)}")
        self._confirm_jumps()
        self._last_t = timestamp_s
        self._last_update = (faces, timestamp_s, descriptors)
        self._tracks = [t for t in self._tracks if timestamp_s - t.last_seen <= self.max_gap_s]
        ids = np.full(len(faces), -1, np.int32)
        self.jumped = np.zeros(len(faces), bool)
        if self._tracks and len(faces):
            score = self.match_scores(faces, timestamp_s, descriptors)
            rows, cols = linear_sum_assignment(np.where(score >= 0, score, -1e3), maximize=True)
            for ti, di in zip(rows, cols):
                if score[ti, di] >= 0:
                    ids[di] = self._tracks[ti].track_id
                    self.jumped[di] = self._tracks[ti].jumps(None if descriptors is None else descriptors[di])
                    self._tracks[ti].update(faces.boxes[di], timestamp_s, self.velocity_smoothing,
                                            None if descriptors is None else descriptors[di],
                                            self.appearance_momentum)
        for di in np.flatnonzero(ids < 0):
            ids[di] = self._start(faces, timestamp_s, descriptors, di)
        self._last_ids = ids
        return ids

    def _confirm_jumps(self) -> None:
        """The last update's jumps that were not split are their track's person: known looks."""
        if self._last_update is None or self._last_update[2] is None or not self.jumped.any():
            return
        live = {t.track_id: t for t in self._tracks}
        for di in np.flatnonzero(self.jumped):
            track = live.get(int(self._last_ids[di]))
            if track is not None:
                track.known_looks = (track.known_looks + [self._last_update[2][di]])[-KNOWN_LOOKS:]

    def _start(self, faces: FaceDetections, timestamp_s: float, descriptors: np.ndarray | None, index: int) -> int:
        look = None if descriptors is None else descriptors[index].copy()
        self._tracks.append(_Track(self._next_id, faces.boxes[index].astype(float), timestamp_s,
                                   appearance=look, last_look=look, known_looks=[] if look is None else [look]))
        self._next_id += 1
        return self._next_id - 1

    def split(self, track_id: int, face_index: int) -> int:
        """End ``track_id`` at the last :meth:`update` and start a new track with that update's face
        ``face_index`` (which had continued it): the face is someone else. Returns the new id.

        Raises:
            ValueError: ``track_id`` is not a live track, or there was no such face.
        """
        if self._last_update is None or not 0 <= face_index < len(self._last_update[0]):
            raise ValueError(f"face_index: no face {face_index} in the last update")
        if not any(t.track_id == track_id for t in self._tracks):
            raise ValueError(f"track_id: {track_id} is not a live track")
        self._tracks = [t for t in self._tracks if t.track_id != track_id]
        self.jumped[face_index] = False
        self._last_ids[face_index] = self._start(*self._last_update, face_index)
        return int(self._last_ids[face_index])
