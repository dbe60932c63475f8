"""The people stage of one video (or segment): tracks, shot changes and person ids.

Frames come in labelled with their shot (:class:`emovid.people.labels.ShotLabels`); faces come in
per frame and leave with their track id. The stage owns every decision about people: tracks end
at each cut, a jump in a face's look is checked with the identity model and splits its track when
the person changed, faces inside a dissolve are no one's, and once the video is read
:meth:`PeopleOfVideo.finish` clusters the tracks into persons. Rows are written once, after that,
with their person ids (:meth:`People.rows`).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from emovid.config import AnalyzeConfig
from emovid.people.appearance import describe
from emovid.people.identity import FaceEmbedder, IdentityCheck, TrackGallery
from emovid.people.persons import assign_persons, co_occurring, mergeable, person_embeddings, track_embeddings
from emovid.people.tracker import FaceTracker


@dataclass(frozen=True, slots=True)
class People:
    """What the stage decided for one video or segment.

    Attributes:
        persons: {track id: person id, or None for a blend of two people}; None when tracking is
            off or for a segment (the merge decides the whole video's persons).
        no_person_frames: frames inside a dissolve or wipe: their faces are no one's.
        metadata: what the output file's metadata gains (shots, tracks, persons, and for a
            segment what the merge needs).
    """

    persons: dict[int, int | None] | None
    no_person_frames: frozenset[int] = frozenset()
    metadata: dict = field(default_factory=dict)

    def rows(self, table: pa.Table) -> pa.Table:
        """``table`` (rows whose ``person_id`` still holds the track id) with its person ids."""
        return table if self.persons is None else with_person_ids(table, self.persons, self.no_person_frames)


def with_person_ids(table: pa.Table, persons: dict[int, int | None], no_person_frames: Collection[int] = ()) -> pa.Table:
    """``table`` with ``person_id`` set from its ``track_id`` through ``persons`` (null stays null,
    and so does a track mapped to None; a track missing from ``persons`` keeps its own id), and
    null on the rows of ``no_person_frames`` (frames inside a transition)."""
    mapped = [None if t is None else persons.get(t, t) for t in table["track_id"].to_pylist()]
    if no_person_frames:
        mapped = [None if f in no_person_frames else p for f, p in zip(table["frame_index"].to_pylist(), mapped)]
    column = table.schema.field("person_id")
    return table.set_column(table.schema.get_field_index("person_id"), column, pa.array(mapped, type=column.type))


def count_persons(persons: dict[int, int | None]) -> int:
    """Distinct person ids of a ``{track id: person id}`` map (tracks of no person left out)."""
    return len({p for p in persons.values() if p is not None})


class PeopleOfVideo:
    """Tracks, shots and person ids of one video (or segment) while it is read.

    Args:
        config: the analysis settings (``track``, ``track_gap_s``, ``persons``).
        embedder: the identity model, or None (no jump checks; every track its own person).
    """

    def __init__(self, config: AnalyzeConfig, embedder: FaceEmbedder | None = None) -> None:
        self.embedder = embedder
        self.tracker = FaceTracker(max_gap_s=config.track_gap_s) if config.track else None
        self.gallery = TrackGallery() if embedder is not None and self.tracker and config.persons else None
        # the tracker's jumps in look are checked with the identity model, so a track never runs
        # from one person into the next where a cut was missed
        self.identity = IdentityCheck(embedder) if embedder is not None and self.tracker else None
        self._shot = 0
        self._seen: list[tuple[int, np.ndarray]] = []  # (frame index, track ids) for the same-frame rule
        self._shot_tracks: dict[int, float] = {}  # the current shot's tracks: their first timestamp
        self._blended: set[int] = set()  # tracks seen only inside a dissolve: a mix of two people, no person
        self._shot_frames: list[tuple[int, float]] = []  # the current shot's frames with faces: (index, time)
        self._blend_frames: set[int] = set()  # frames inside a dissolve or wipe: their faces are no one's
        self.tracks = 0  #: track ids given so far (0 .. tracks - 1)

    def track(self, frame, faces) -> np.ndarray | None:
        """Track ids (n,) of one sampled frame's faces (None with tracking off). ``frame``: a
        :class:`~emovid.media.video.Frame` with its shot label."""
        if self.tracker is None:
            return None
        if frame.shot != self._shot:
            self.tracker.end_all()
            self._shot = frame.shot
            if frame.transition_start_s is not None:
                self.dissolved(frame.transition_start_s)
            self._shot_tracks, self._shot_frames = {}, []
        ids = self.tracker.update(faces, frame.timestamp_s, describe(frame.image, faces))
        if self.identity is not None:
            for di in np.flatnonzero(self.tracker.jumped):
                if self.identity.changed(int(ids[di]), frame.image, faces.boxes[di]):
                    ids[di] = self.tracker.split(int(ids[di]), int(di))
            self.identity.remember(frame.image, faces, ids, self.tracker.live_ids)
        for t in ids.tolist():
            self._shot_tracks.setdefault(t, frame.timestamp_s)
        if len(ids):
            self.tracks = max(self.tracks, int(ids.max()) + 1)
            self._seen.append((frame.index, ids))
            self._shot_frames.append((frame.index, frame.timestamp_s))
            if self.gallery is not None:
                self.gallery.add(frame.image, faces, ids, frame.timestamp_s)
        return ids

    def dissolved(self, transition_start_s: float) -> None:
        """The current shot dissolved (or wiped) into the next from ``transition_start_s``: its
        tracks seen only since are blends of two people, faces since are no identity sample, and
        their rows get no person (a track that began before may have run onto the new person)."""
        if self.tracker is None:
            return
        self._blended |= {t for t, first in self._shot_tracks.items() if first > transition_start_s}
        self._blend_frames.update(i for i, t in self._shot_frames if t > transition_start_s)
        if self.gallery is not None:
            self.gallery.forget_since(transition_start_s)

    def finish(self, shots: int, whole_video: bool) -> People:
        """The persons of the video, once it is read (a segment's are left to the merge, which gets
        its tracks' mean embeddings in the metadata instead)."""
        metadata: dict = {"shots": shots}
        if self.tracker is None:
            return People(None, metadata=metadata)
        metadata["tracks"] = self.tracks
        if self.identity is not None:  # what the tracks' guard cost and found
            metadata["track_checks"] = {"checked": self.identity.checks, "split": self.identity.splits}
        if not whole_video:
            samples = self.gallery.embeddings(self.embedder) if self.gallery is not None else {}
            metadata["track_embeddings"] = {str(t): {"mean": np.round(np.mean(v, axis=0), 5).tolist(), "n": len(v)}
                                            for t, v in samples.items()}
            metadata["blended_tracks"] = sorted(self._blended)
            metadata["blend_frames"] = sorted(self._blend_frames)
            return People(None, metadata=metadata)
        frames = np.concatenate([np.full(len(ids), f) for f, ids in self._seen]) if self._seen else np.zeros(0, int)
        tracks = np.concatenate([ids for _, ids in self._seen]) if self._seen else np.zeros(0, int)
        together = co_occurring(frames, tracks)
        # every person gets an identity, for linking people across videos (about 0.07 s a face,
        # up to SAMPLES_PER_TRACK faces a track); only tracks that could merge take part in clustering
        unblended = [t for t in range(self.tracks) if t not in self._blended]
        samples = self.gallery.embeddings(self.embedder, set(unblended)) if self.gallery is not None and unblended else {}
        wanted = mergeable(unblended, together)
        means = track_embeddings(samples)
        persons = assign_persons(self.tracks, {t: v for t, v in means.items() if t in wanted}, together, self._blended)
        metadata["persons"] = count_persons(persons)
        if samples:
            metadata["person_embeddings"] = person_embeddings(persons, {t: (means[t], len(samples[t])) for t in means})
        return People(persons, frozenset(self._blend_frames), metadata)
