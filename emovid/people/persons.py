"""Person ids across a whole video: constrained clustering of its tracks' identity embeddings.

Tracks end at every shot cut, so an interview cut between two people gives dozens of tracks.
After the pass, each track's best faces are embedded (:mod:`emovid.people.identity`), tracks are
averaged into one embedding each and clustered (average linkage) under a stricter distance than
the model's own, with one hard rule: two tracks seen in the same frame are two people. Ids are
numbered in order of first appearance. A whole video and a video merged from segments go
through the same :func:`assign_persons`.
"""

from __future__ import annotations

import numpy as np

#: Average-linkage distance under which two tracks are one person. dlib's own threshold is 0.6;
#: a wrong merge is worse than a split person, so ours is stricter: faces without colour carry less
#: evidence, and two different people of ours came to 0.51 in grey, 0.49 in sepia and 0.46 in dim
#: grey (0.52 in colour), where one person across six expressions stays within 0.65 in colour and
#: 0.58 in grey: 0.45 keeps them apart and links most returns.
PERSON_DISTANCE = 0.45


def co_occurring(frame_index: np.ndarray, track_id: np.ndarray) -> set[tuple[int, int]]:
    """Pairs (low, high) of track ids that share a frame (two faces at once: two people)."""
    order = np.lexsort((track_id, frame_index))
    frames, tracks = frame_index[order], track_id[order]
    pairs: set[tuple[int, int]] = set()
    bounds = np.flatnonzero(np.r_[True, np.diff(frames) != 0, True])
    for start, end in zip(bounds[:-1], bounds[1:]):
        together = np.unique(tracks[start:end]).tolist()
        pairs.update((a, b) for i, a in enumerate(together) for b in together[i + 1:])
    return pairs


def mergeable(track_ids: list[int], cannot_link: set[tuple[int, int]]) -> set[int]:
    """Tracks that could be one person with another track (the rest are their own person in the video)."""
    partners = {t: len(track_ids) - 1 for t in track_ids}
    for a, b in cannot_link:
        if a in partners and b in partners:  # pairs with a track left out (e.g. a dissolve's) do not count
            partners[a] -= 1
            partners[b] -= 1
    return {t for t, n in partners.items() if n > 0}


def cluster_persons(track_ids: list[int], embeddings: dict[int, np.ndarray], cannot_link: set[tuple[int, int]],
                    max_distance: float = PERSON_DISTANCE) -> dict[int, int]:
    """Group tracks into persons: {track id: person id}, persons numbered in ``track_ids`` order.

    Average-linkage agglomerative clustering on embedding distance; two clusters never merge
    when any pair of their tracks is in ``cannot_link`` (seen together) or their distance is
    ``max_distance`` or more. Tracks without an embedding stay alone.
    """
    members = [t for t in track_ids if t in embeddings]
    clusters = [[t] for t in members]
    if len(members) > 1:
        vectors = np.stack([embeddings[t] for t in members])
        dist = np.linalg.norm(vectors[:, None] - vectors[None], axis=2)
        index = {t: i for i, t in enumerate(members)}
        for a, b in cannot_link:
            if a in index and b in index:
                dist[index[a], index[b]] = dist[index[b], index[a]] = np.inf
        np.fill_diagonal(dist, np.inf)
        sizes = np.ones(len(members))
        alive = np.ones(len(members), bool)
        while True:
            masked = np.where(alive[:, None] & alive[None], dist, np.inf)
            i, j = np.unravel_index(np.argmin(masked), masked.shape)
            if not masked[i, j] < max_distance:
                break
            # Lance-Williams update for average linkage; inf (cannot link) stays inf.
            merged = (sizes[i] * dist[i] + sizes[j] * dist[j]) / (sizes[i] + sizes[j])
            dist[i], dist[:, i] = merged, merged
            dist[i, i] = np.inf
            sizes[i] += sizes[j]
            alive[j] = False
            clusters[i] += clusters[j]
        clusters = [c for c, keep in zip(clusters, alive) if keep]
    cluster_of = {t: k for k, group in enumerate(clusters) for t in group}
    persons: dict[int, int] = {}
    numbered: dict[tuple, int] = {}
    for t in track_ids:
        key = ("cluster", cluster_of[t]) if t in cluster_of else ("alone", t)
        persons[t] = numbered.setdefault(key, len(numbered))
    return persons


def track_embeddings(samples: dict[int, list[np.ndarray]]) -> dict[int, np.ndarray]:
    """One embedding per track: the mean of its faces' embeddings."""
    return {tid: np.mean(vectors, axis=0) for tid, vectors in samples.items() if len(vectors)}


def assign_persons(track_count: int, embeddings: dict[int, np.ndarray], cannot_link: set[tuple[int, int]],
                   blended: set[int]) -> dict[int, int | None]:
    """{track id: person id} for tracks ``0 .. track_count - 1``: the ``blended`` ones (seen only
    inside a dissolve: a mix of two people) get None; the others are clustered on ``embeddings``,
    never joining two tracks of a ``cannot_link`` pair (:func:`co_occurring`)."""
    track_ids = [t for t in range(track_count) if t not in blended]
    return {**cluster_persons(track_ids, embeddings, cannot_link), **dict.fromkeys(blended)}


def person_embeddings(persons: dict[int, int | None], tracks: dict[int, tuple[np.ndarray, int]]) -> dict[str, dict]:
    """Each person's identity, as stored in the file's metadata for linking across videos
    (:mod:`emovid.people.across_videos`): ``{person id: {"mean": 128 floats, "n": faces}}``, the
    face-weighted mean of its tracks' ``(mean embedding, faces)``; persons without one are left out."""
    members: dict[int, list[tuple[np.ndarray, int]]] = {}
    for track, person in persons.items():
        if person is not None and track in tracks:
            members.setdefault(person, []).append(tracks[track])
    return {str(p): {"mean": np.round(np.average([m for m, _ in v], axis=0, weights=[n for _, n in v]), 5).tolist(),
                     "n": int(sum(n for _, n in v))} for p, v in sorted(members.items())}
