"""The same person across the videos of an output folder: ``global_person_id``.

Each video's file stores its persons' identity embeddings in its metadata (the face-weighted
mean of their tracks', :func:`emovid.people.persons.person_embeddings`). After a run, the
driver links them across the folder with the rules persons follow within a video: average
linkage under ``PERSON_DISTANCE``, and two persons of one video are never one person (the
video already told them apart). The links go to ``_persons.json`` beside the results, written
atomically (JSON, not Parquet: ``results/**/*.parquet`` globs must match face tables only).

A later run extends the links: persons already linked keep their global ids (two existing
global persons never merge, so an id a user has seen never changes), new videos' persons join
one of them or start a new one. A video whose persons changed (re-analysed) is linked anew.
Nothing is re-analysed: the embeddings are in the files.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from emovid.people.persons import PERSON_DISTANCE

log = logging.getLogger(__name__)

LINKS_FILE = "_persons.json"
#: One entry per (video, person); ``faces``: how many faces its embedding averages.
LINK_FIELDS = ("video_id", "person_id", "global_person_id", "faces", "embedding")


@dataclass(frozen=True, slots=True)
class Links:
    """What :func:`link_persons` found: persons linked, global persons, and those seen in more than one video."""

    persons: int
    global_persons: int
    in_several_videos: int


def link_persons(out: str | Path, max_distance: float = PERSON_DISTANCE) -> Links:
    """Link the persons of every result file under ``out`` and write ``_persons.json``."""
    from emovid.store.sink import TEMP_MARKER

    out = Path(out)
    persons = stored_persons(_file_metadata(out))
    ids = _cluster(persons, _still_linked(_read_links(out), persons), max_distance)
    entries = [dict(zip(LINK_FIELDS, (video, pid, ids[video, pid], faces, np.round(vector.astype(float), 5).tolist())))
               for video, pid, faces, vector in persons]
    temp = out / f".{LINKS_FILE}{TEMP_MARKER}{os.getpid()}"  # an interrupted write is removed with the run's
    try:
        temp.write_text(json.dumps({"version": 1, "persons": entries}))
        os.replace(temp, out / LINKS_FILE)
    finally:
        temp.unlink(missing_ok=True)
    videos = pd.Series([p[0] for p in persons], dtype=object).groupby([ids[p[0], p[1]] for p in persons]).nunique()
    return Links(len(persons), len(set(ids.values())), int((videos > 1).sum()))


def linked_persons(out: str | Path, metadata: Iterable[dict] | None = None) -> dict[tuple[str, int], int]:
    """{(video_id, person_id): global_person_id} of ``out``, for the videos whose persons are still
    the linked ones (a video re-analysed by a run that stopped before linking is left out).
    ``metadata``: the emovid metadata of ``out``'s result files, when the caller has read it."""
    links = _read_links(Path(out))
    if links is None:
        return {}
    return _still_linked(links, stored_persons(_file_metadata(Path(out)) if metadata is None else metadata))


def global_person_ids(out: str | Path, frame: pd.DataFrame, metadata: Iterable[dict] | None = None) -> pd.array:
    """``global_person_id`` of each row of ``frame`` (a ``read_results`` frame of ``out``): null
    where the row has no person or its video is not linked (:func:`linked_persons`)."""
    lookup = pd.Series(linked_persons(out, metadata) if len(frame) else {}, dtype="float64")
    if lookup.empty:
        return pd.array([pd.NA] * len(frame), dtype="Int32")
    keys = pd.MultiIndex.from_arrays([frame["video_id"].astype(object), frame["person_id"].astype("Int64")])
    return pd.array(lookup.reindex(keys).to_numpy(dtype=float, na_value=np.nan), dtype="Float64").astype("Int32")


def stored_persons(metadata: Iterable[dict]) -> list[tuple[str, int, int, np.ndarray]]:
    """(video_id, person_id, faces, embedding) of every person stored in result files' ``metadata``."""
    return [(meta.get("video_id"), int(pid), int(entry["n"]), np.asarray(entry["mean"], np.float32))
            for meta in metadata for pid, entry in (meta.get("person_embeddings") or {}).items()]


def _file_metadata(out: Path) -> list[dict]:
    from emovid.store.results import result_files
    from emovid.store.schema import read_metadata

    return [read_metadata(pq.read_schema(path)) for path in result_files(out)]


def _still_linked(links: pd.DataFrame | None, persons: list) -> dict[tuple[str, int], int]:
    """{(video, person): global id} of the stored links whose video still holds exactly the
    persons it was linked with (same ids, same embeddings)."""
    if links is None:
        return {}
    stored = {(v, p): (g, np.asarray(e, np.float32)) for v, p, g, e in zip(
        links["video_id"], links["person_id"], links["global_person_id"], links["embedding"])}
    by_video: dict[str, list] = {}
    for video, pid, _, vector in persons:
        by_video.setdefault(video, []).append((pid, vector))
    linked_per_video = Counter(v for v, _ in stored)
    kept = {}
    for video, members in by_video.items():
        if len(members) == linked_per_video[video] and all(
                (video, pid) in stored and np.allclose(stored[video, pid][1], vector, atol=1e-4)
                for pid, vector in members):
            kept.update({(video, pid): stored[video, pid][0] for pid, _ in members})
    return kept


def _cluster(persons: list, kept: dict[tuple[str, int], int], max_distance: float) -> dict[tuple[str, int], int]:
    """{(video, person): global id}: ``kept`` links stay; the other persons join a cluster or start one.

    Average linkage over group-to-group distances kept in one matrix (Lance-Williams updates), so
    a folder of thousands of persons links in seconds: O(groups^2) a merge.
    """
    keys = [(p[0], p[1]) for p in persons]
    if not keys:
        return {}
    vectors = np.stack([p[3] for p in persons]).astype(np.float64)
    squares = (vectors ** 2).sum(axis=1)
    person_dist = np.sqrt(np.maximum(squares[:, None] + squares[None] - 2 * vectors @ vectors.T, 0.0))
    kept_ids = sorted(set(kept.values()))
    members = [[i for i, k in enumerate(keys) if kept.get(k) == gid] for gid in kept_ids]
    members += [[i] for i, k in enumerate(keys) if k not in kept]
    label: list[int | None] = [*kept_ids, *[None] * (len(members) - len(kept_ids))]
    # group x person membership, group x video membership
    videos = sorted({k[0] for k in keys}, key=str)
    video_index = {v: j for j, v in enumerate(videos)}
    in_group = np.zeros((len(members), len(keys)))
    in_video = np.zeros((len(members), len(videos)), bool)
    for g, rows in enumerate(members):
        in_group[g, rows] = 1.0
        in_video[g, [video_index[keys[i][0]] for i in rows]] = True
    sizes = in_group.sum(axis=1)
    dist = (in_group @ person_dist @ in_group.T) / np.outer(sizes, sizes)
    # one video's persons are different people; two global persons users have seen stay two
    shared = (in_video.astype(np.float32) @ in_video.T.astype(np.float32)) > 0
    labelled = np.array([g is not None for g in label])
    alive = np.ones(len(members), bool)
    open_ = np.where(shared | (labelled[:, None] & labelled[None]), np.inf, dist)
    np.fill_diagonal(open_, np.inf)
    while True:
        a, b = np.unravel_index(np.argmin(open_), open_.shape)
        if not open_[a, b] < max_distance:
            break
        merged = (sizes[a] * dist[a] + sizes[b] * dist[b]) / (sizes[a] + sizes[b])
        dist[a], dist[:, a] = merged, merged
        sizes[a] += sizes[b]
        shared[a] |= shared[b]
        shared[:, a] = shared[a]
        members[a] += members[b]
        label[a] = label[a] if label[a] is not None else label[b]
        labelled[a] = label[a] is not None
        alive[b] = False
        row = np.where(alive & ~shared[a] & ~(labelled[a] & labelled), merged, np.inf)
        row[a] = np.inf
        open_[a], open_[:, a] = row, row
        open_[b], open_[:, b] = np.inf, np.inf
    next_id = max(kept.values(), default=-1) + 1
    ids: dict[tuple[str, int], int] = {}
    groups = [(members[g], label[g]) for g in np.flatnonzero(alive)]
    for rows, gid in sorted(groups, key=lambda g: min(keys[i] for i in g[0])):
        if gid is None:
            gid, next_id = next_id, next_id + 1
        ids.update({keys[i]: gid for i in rows})
    return ids


def _read_links(out: Path) -> pd.DataFrame | None:
    path = out / LINKS_FILE
    if not path.is_file():
        return None
    try:
        entries = json.loads(path.read_text())["persons"]
        return pd.DataFrame(entries, columns=list(LINK_FIELDS)).astype({"person_id": int, "global_person_id": int})
    except (OSError, ValueError, KeyError, TypeError) as exc:  # unreadable: link everything anew
        log.warning("ignoring unreadable %s (%s): persons are linked anew", path, exc)
        return None
