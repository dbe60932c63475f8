"""Who a face is: dlib's face-recognition ResNet (128-D identity embeddings; distance < 0.6 means
"same person" on LFW at 99.4%), the faces each track keeps for it, and the check of a track's
jumps in look.

The model ships in pip wheels (``dlib-bin``: Boost licence; ``face-recognition-models``: the
dlib model files, CC0 / public domain, packaged under MIT), nothing is downloaded at run time.
Without them, :func:`load_embedder` returns None and every track is its own person: a person
id is never a guess that merges two people.
"""

from __future__ import annotations

import heapq
import logging
import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from emovid.assets import face_landmark_model, identity_model_folder, identity_model_installed
from emovid.detect.faces import FaceDetections
from emovid.people.identity_net import CHIP_SIZE, read_dlib_net, to_onnx
from emovid.people.persons import PERSON_DISTANCE
from emovid.people.shots import MAX_DISSOLVE_S

log = logging.getLogger(__name__)

#: Faces embedded per track (its largest, most confident ones): 2-3 average away pose and blur.
SAMPLES_PER_TRACK = 3
#: Faces smaller than this (px) are not embedded: their embeddings are unreliable.
MIN_IDENTITY_FACE = 40
#: Kept faces are shrunk to this side (px), so a 4K close-up costs no more memory than a 200 px face.
MAX_KEPT_FACE = 200
#: Mean brightness (0..255) of a face box under which (or this close to 255) it is not embedded:
#: faces in a fade to black or white are still found, but their embeddings drift toward other
#: dim or washed-out faces' (seen: two people merged, in each kind of fade).
MIN_FACE_BRIGHTNESS = 20
#: Faces darker than this, or this close to white, rank lower as samples of their track, in proportion.
WELL_LIT_BRIGHTNESS = 60
#: A face this recent (s) may still be part of a dissolve, which the shot labels report up to
#: ``MAX_DISSOLVE_S`` and two frames late: it cannot push an older face out until then.
RECENT_S = MAX_DISSOLVE_S + 0.5
IDENTITY_BACKEND = "dlib-resnet-v1"


class FaceEmbedder:
    """dlib's 5-point alignment + face-recognition ResNet: BGR frame regions -> 128-D embeddings.

    The ResNet runs in onnxruntime, rebuilt from dlib's own weights (:mod:`identity_net`: the same
    embeddings to 3e-7, 6 ms a face instead of dlib's 73 ms here, without holding the GIL); in
    dlib where onnxruntime is missing.
    """

    def __init__(self) -> None:
        import dlib

        weights = identity_model_folder() / "dlib_face_recognition_resnet_model_v1.dat"
        self._dlib = dlib
        self._shape = face_landmark_model()
        self._session = _onnx_session(weights)
        self._net = None if self._session is not None else dlib.face_recognition_model_v1(str(weights))

    @property
    def runtime(self) -> str:
        """What runs the ResNet: "onnxruntime", or "dlib" where onnxruntime is missing."""
        return "dlib" if self._session is None else "onnxruntime"

    def embed(self, patch: np.ndarray, box: np.ndarray) -> np.ndarray:
        """Embedding of the face at ``box`` (x, y, w, h in ``patch`` pixels) of a BGR patch."""
        rgb = np.ascontiguousarray(cv2.cvtColor(patch, cv2.COLOR_BGR2RGB))
        x, y, w, h = (int(round(v)) for v in box)
        shape = self._shape(rgb, self._dlib.rectangle(x, y, x + w, y + h))
        chip = self._dlib.get_face_chip(rgb, shape, size=CHIP_SIZE, padding=0.25)
        if self._session is None:
            return np.asarray(self._net.compute_face_descriptor(chip), np.float32)
        return self._session.run(None, {"chips": chip[None].astype(np.float32)})[0][0]


def _onnx_session(weights):
    """An onnxruntime session of the ResNet in ``weights``, or None without onnxruntime."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # a few faces per track: one core, beside the worker's other stages
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(to_onnx(read_dlib_net(weights)), options, providers=["CPUExecutionProvider"])


def identity_backend() -> str:
    """The identity model's name, or "none" when its wheels are not installed (no import of them)."""
    return IDENTITY_BACKEND if identity_model_installed() else "none"


def load_embedder() -> FaceEmbedder | None:
    """The identity embedder, or None (logged once) when its wheels are not installed."""
    try:
        return FaceEmbedder()
    except ImportError as exc:
        log.warning("person ids fall back to track ids: no identity model (%s); "
                    "pip install dlib-bin face-recognition-models", exc)
        return None


@dataclass(slots=True)
class _Sample:
    quality: float
    patch: np.ndarray
    box: np.ndarray  # in patch pixels
    timestamp_s: float = 0.0

    def __lt__(self, other: "_Sample") -> bool:
        return self.quality < other.quality


@dataclass(slots=True)
class TrackGallery:
    """Keeps each track's best few faces during the pass (a small patch each), embeds them after.

    A face from the last ``RECENT_S`` seconds may yet turn out to be a dissolve's blend of two
    people (the shot detector learns of a dissolve only when it ends), so it waits in ``recent`` and
    pushes no older face out of ``settled`` until then: forgetting a blend must leave the
    track the good faces it had.
    """

    settled: dict[int, list[_Sample]] = field(default_factory=dict)  # a min-heap per track
    recent: dict[int, list[_Sample]] = field(default_factory=dict)  # in time order

    def add(self, image: np.ndarray, faces: FaceDetections, track_ids: np.ndarray, timestamp_s: float = 0.0) -> None:
        """Offer one frame's tracked faces; per track, keeps those that may be among its
        ``SAMPLES_PER_TRACK`` best (largest, most confident, well lit) after any forget_since."""
        self._settle(before_s=timestamp_s - RECENT_S)
        for box, score, tid in zip(faces.boxes, faces.scores, track_ids.tolist()):
            brightness = _identifiable_brightness(image, box)
            if brightness is None:
                continue
            side = float(min(box[2], box[3]))
            quality = float(score) * side * min(1.0, brightness / WELL_LIT_BRIGHTNESS,
                                                (255 - brightness) / WELL_LIT_BRIGHTNESS)
            heap, waiting = self.settled.get(tid, []), self.recent.setdefault(tid, [])
            # settled faces and older recent ones survive any forget_since that keeps this one
            if sum(s.quality >= quality for s in heap) + sum(s.quality >= quality for s in waiting) >= SAMPLES_PER_TRACK:
                continue
            waiting.append(_Sample(quality, *face_patch(image, box), timestamp_s))

    def forget_since(self, timestamp_s: float) -> None:
        """Drop the faces of frames after ``timestamp_s``: a dissolve's blended faces (of two
        people) are no sample of either. A track left with none keeps its own person id."""
        for tid, waiting in self.recent.items():
            waiting[:] = [s for s in waiting if s.timestamp_s <= timestamp_s]
        self._settle(before_s=math.inf)

    def kept(self, track_id: int) -> list[_Sample]:
        """The faces of ``track_id`` that would be embedded if the video ended now, best first."""
        faces = self.settled.get(track_id, []) + self.recent.get(track_id, [])
        return heapq.nlargest(SAMPLES_PER_TRACK, faces, key=lambda s: s.quality)

    def _settle(self, before_s: float) -> None:
        for tid, waiting in list(self.recent.items()):
            while waiting and waiting[0].timestamp_s < before_s:
                sample, heap = waiting.pop(0), self.settled.setdefault(tid, [])
                if len(heap) < SAMPLES_PER_TRACK:
                    heapq.heappush(heap, sample)
                elif sample.quality > heap[0].quality:
                    heapq.heapreplace(heap, sample)
            if not waiting:  # ended tracks cost nothing on later frames
                del self.recent[tid]

    def embeddings(self, embedder: FaceEmbedder | None, only: set[int] | None = None) -> dict[int, list[np.ndarray]]:
        """{track id: embeddings of its kept faces} for the tracks with at least one usable face
        (of ``only``, when given)."""
        if embedder is None:
            return {}
        tracks = sorted(set(self.settled) | set(self.recent))
        kept = {tid: self.kept(tid) for tid in tracks if only is None or tid in only}
        return {tid: [embedder.embed(s.patch, s.box) for s in faces] for tid, faces in kept.items() if faces}


def face_patch(image: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A copy of the face at ``box`` with half its size around it, at most ``MAX_KEPT_FACE`` px a
    side (dlib embeds 150 px chips: keeping more only costs memory), and the box in its pixels."""
    x, y, w, h = box
    pad = 0.5 * max(w, h)
    x0, y0 = int(max(x - pad, 0)), int(max(y - pad, 0))
    x1, y1 = int(min(x + w + pad, image.shape[1])), int(min(y + h + pad, image.shape[0]))
    patch, local = image[y0:y1, x0:x1], np.array([x - x0, y - y0, w, h], np.float32)
    side = float(min(w, h))
    if side > MAX_KEPT_FACE:
        scale = MAX_KEPT_FACE / side
        patch = cv2.resize(patch, (max(1, round(patch.shape[1] * scale)), max(1, round(patch.shape[0] * scale))),
                           interpolation=cv2.INTER_AREA)
        local = local * scale
    return np.ascontiguousarray(patch), local


def identifiable(image: np.ndarray, box: np.ndarray) -> bool:
    """Whether the face at ``box`` is large and well enough lit for a trustworthy embedding."""
    return _identifiable_brightness(image, box) is not None


def _identifiable_brightness(image: np.ndarray, box: np.ndarray) -> float | None:
    """The face's mean brightness when it is at least ``MIN_IDENTITY_FACE`` px and neither too dim
    nor washed out (faces in a fade through white are as unreliable as those in a fade to black);
    else None."""
    if float(min(box[2], box[3])) < MIN_IDENTITY_FACE:
        return None
    brightness = _brightness(image, box)
    return brightness if min(brightness, 255 - brightness) >= MIN_FACE_BRIGHTNESS else None


class IdentityCheck:
    """Checks, with the identity embedding, the track continuations the tracker flags as jumps
    (:attr:`emovid.people.tracker.FaceTracker.jumped`): whether the face is still the track's person.

    It keeps each live track's last face (a reference to its frame: no copy) and, once checked,
    the embeddings of up to ``SAMPLES_PER_TRACK`` faces known to be the track's person, so a check
    costs one embedding, two the first time (about 0.1 s each on one core): it runs only on
    jumps, never on every face. The threshold is the clustering's: two faces it would not call
    one person are not one track (a wrong split costs an extra track, which the clustering links
    back to its person; a missed one, a track holding two people).
    """

    def __init__(self, embedder: FaceEmbedder, max_distance: float = PERSON_DISTANCE) -> None:
        self.embedder = embedder
        self.max_distance = max_distance
        self._last: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # track -> (frame, box) of its last face
        self._person: dict[int, list[np.ndarray]] = {}  # track -> embeddings of faces known to be its person
        self.checks = 0  #: jumps checked
        self.splits = 0  #: jumps found to be another person

    def changed(self, track_id: int, image: np.ndarray, box: np.ndarray) -> bool:
        """Whether the face at ``box`` of ``image``, which continued ``track_id`` with a jump, is
        another person than the track's (False when either face is too small or dim to tell)."""
        previous = self._last.get(track_id)
        if previous is None or not identifiable(image, box) or not identifiable(*previous):
            return False
        known = self._person.get(track_id) or [self.embedder.embed(*face_patch(*previous))]
        now = self.embedder.embed(*face_patch(image, box))
        self.checks += 1
        # against the mean of the faces known to be the track's person: one face's embedding is noisy
        if float(np.linalg.norm(np.mean(known, axis=0) - now)) >= self.max_distance:
            self.splits += 1
            return True
        self._person[track_id] = (known + [now])[-SAMPLES_PER_TRACK:]
        return False

    def remember(self, image: np.ndarray, faces: FaceDetections, track_ids: np.ndarray, live: set[int]) -> None:
        """Note this frame's face of each track; forget tracks no longer ``live``."""
        for box, tid in zip(faces.boxes, track_ids.tolist()):
            self._last[tid] = (image, box)
        for tid in [t for t in self._last if t not in live]:
            del self._last[tid]
            self._person.pop(tid, None)


def _brightness(image: np.ndarray, box: np.ndarray) -> float:
    """Mean pixel value (0..255, all channels) inside a face box, from about 32 x 32 of its pixels
    (it runs for every tracked face of every sampled frame)."""
    x, y, w, h = (int(round(v)) for v in box)
    step = max(1, min(w, h) // 32)
    region = image[max(y, 0):max(y + h, 0):step, max(x, 0):max(x + w, 0):step]
    return float(region.mean()) if region.size else 0.0
