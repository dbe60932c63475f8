"""Settings of an analysis, validated where they are made (on the driver, before Ray starts)."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass

from emovid.schema import SCHEMA_VERSION

DEFAULT_FPS = 4.0
#: Segment length for long videos: at 4 fps about 10-20 s of work per segment on one CPU.
DEFAULT_SEGMENT_S = 300.0
#: Time constant (s) of the per-track smoothing ``emovid report`` applies by default
#: (``benchmarks/smoothing.py``: accuracy unchanged, 4-7x fewer label flips).
REPORT_SMOOTH_S = 1.0
#: Colour or structure score (0..255) of a hard cut; PySceneDetect's ContentDetector uses 27 for colour.
DEFAULT_SHOT_THRESHOLD = 27.0


#: Seconds the driver waits for its first worker before it gives up (a cluster too busy or too
#: small to place one; an autoscaler adding a node takes a few minutes).
DEFAULT_START_TIMEOUT_S = 600.0


#: Seconds an input may be read without progress before its worker is stopped and the input
#: failed (0: never). Workers report every 64 decoded frames; the longest quiet stretch measured
#: in a healthy read is a seek across a 10 s keyframe interval of 4K 10-bit HEVC, 5.2 s on a
#: 2-core EPYC (benchmarks/stalls.py), so 120 s leaves 23x for slow hosts, heavy footage and
#: busy nodes while a stalled mount costs a worker two minutes, not the run.
DEFAULT_STALL_TIMEOUT_S = 120.0


#: `emovid render`'s containers and their codecs, tried in order. pip's OpenCV wheels carry no
#: H.264 encoder, so most installs get mp4v in MP4: desktop players play it, browsers do not;
#: browsers do play WebM's VP8.
RENDER_CODECS = {"mp4": ("avc1", "mp4v"), "webm": ("VP80", "VP90")}

#: Named operating points for ``prior``: the share of the training class prior that is undone.
PRIOR_NAMES = {"ferplus": 0.0, "balanced": 1.0}
MAX_PRIOR_TAU = 1.5


def parse_prior(value) -> float | None:
    """``--prior``: None (the model's default), ``ferplus`` (keep FER+'s class prior, 0),
    ``balanced`` (every emotion equally likely, 1) or a number 0..1.5 in between or beyond.

    Raises:
        ValueError: anything else.
    """
    if isinstance(value, bool):
        raise ValueError(f"prior: expected ferplus, balanced or a number 0..{MAX_PRIOR_TAU}, got {value!r}")
    if value is None or isinstance(value, float | int):
        tau = value
    elif isinstance(value, str) and value.strip().lower() in PRIOR_NAMES:
        tau = PRIOR_NAMES[value.strip().lower()]
    else:
        try:
            tau = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"prior: expected ferplus, balanced or a number 0..{MAX_PRIOR_TAU}, got {value!r}") from None
    if tau is not None and not (math.isfinite(tau) and 0 <= tau <= MAX_PRIOR_TAU):
        raise ValueError(f"prior: expected ferplus, balanced or a number 0..{MAX_PRIOR_TAU}, got {value!r}")
    return None if tau is None else float(tau)


def _check_range(name: str, value, low, high=math.inf, *, low_open: bool = False) -> None:
    ok = (value > low if low_open else value >= low) and value <= high
    if not ok:
        bound = f"> {low}" if low_open else f">= {low}"
        raise ValueError(f"{name}: expected {bound}{'' if high == math.inf else f' and <= {high}'}, got {value!r}")


@dataclass(frozen=True, slots=True)
class AnalyzeConfig:
    """How each video is analysed. Everything but ``batch_size`` and ``segment_s`` changes the results.

    Attributes:
        fps: frames analysed per second of video; None analyses every frame.
        batch_size: face crops per classifier call (speed only); None: 256 on CPU workers,
            1024 on workers with a GPU.
        model: ``.keras`` emotion model or a bundled model's name; None uses the default.
            Kept as :func:`~emovid.assets.model_reference` makes it: bundled names stay names
            (each worker resolves them in its own install), other files become absolute paths.
        score_threshold: minimum face detection score (0..1).
        min_face: minimum face side in pixels of the original frame.
        max_side: frames are shrunk to this longer side for detection (boxes are mapped back);
            None sizes detection by ``min_face`` (see :class:`~emovid.faces.FaceDetector`).
        align: rotate each face crop so the eyes are level.
        track: give faces a ``track_id`` that follows a person across frames.
        track_gap_s: seconds a track survives without a detection before its id ends.
        shots: detect shot cuts on every decoded frame; tracks end at each cut and rows carry
            the ``shot`` index (off: one shot, tracks may run across cuts).
        shot_threshold: colour or structure score a frame needs to be a cut (see :mod:`emovid.people.shots`).
        prior: the emotion decision's class prior, as :func:`parse_prior` reads it (None: the
            model's measured default; see the model card).
        persons: group each video's tracks into ``person_id`` by face identity (with tracking
            on; needs the identity model, else ``person_id`` equals ``track_id``).
        segment_s: videos longer than 1.5x this are analysed in segments of about this many
            seconds, in parallel (speed only); None analyses every video in one piece.
    """

    fps: float | None = DEFAULT_FPS
    batch_size: int | None = None
    model: str | None = None
    score_threshold: float = 0.7
    min_face: int = 20
    max_side: int | None = None
    align: bool = False
    track: bool = True
    track_gap_s: float = 1.0
    shots: bool = True
    shot_threshold: float = DEFAULT_SHOT_THRESHOLD
    persons: bool = True
    prior: float | None = None
    segment_s: float | None = DEFAULT_SEGMENT_S

    def __post_init__(self) -> None:
        _check_range("track_gap_s", self.track_gap_s, 0)
        _check_range("shot_threshold", self.shot_threshold, 0, 255, low_open=True)
        object.__setattr__(self, "prior", parse_prior(self.prior))
        if self.segment_s is not None:
            _check_range("segment_s", self.segment_s, 1)
        if self.fps is not None:
            _check_range("fps", self.fps, 0, 1000, low_open=True)
        if self.batch_size is not None:
            _check_range("batch_size", self.batch_size, 1)
        _check_range("score_threshold", self.score_threshold, 0, 1, low_open=True)
        _check_range("min_face", self.min_face, 0)
        if self.max_side is not None:
            _check_range("max_side", self.max_side, 64)
        from emovid.assets import model_reference

        object.__setattr__(self, "model", model_reference(self.model))

    def settings(self, model_tag: str, classes: tuple[str, ...], model_sha256: str,
                 detector_backend: str | None = None) -> dict:
        """The result-affecting settings, as stored in every output file's metadata.

        The model is identified by its file's content (``model_sha256``; the tag is for
        people), and the emovid version and detector backend are in: results of another
        model, release or detector backend are never mistaken for these. The classifier's
        runtime is not in them: onnxruntime and TensorFlow agree to 1e-6 (closer than TF's own
        bf16 and fp32), so nodes may differ there; each file's metadata records it.
        """
        from emovid import __version__
        from emovid.assets import YUNET_NAME
        from emovid.people.identity import identity_backend  # imports OpenCV: not at config import
        from emovid.yunet import auto_backend

        fields = asdict(self)
        fields.pop("batch_size")
        fields.pop("segment_s")
        fields["model"] = model_tag
        # tracks use the identity model too (their jumps in look are checked with it)
        fields["identity"] = identity_backend() if self.track else "none"
        return {"people_rules": PEOPLE_RULES, "sampling_fps": fields.pop("fps"), **fields, "model_sha256": model_sha256, "classes": list(classes),
                "detector": YUNET_NAME, "detector_backend": detector_backend or auto_backend(),
                "emovid_version": __version__, "schema_version": SCHEMA_VERSION}


#: Version of the shot, track and person rules: results of other rules are not mixed with these.
#: 2: cuts on structure as well as colour; track jumps in look checked with the identity model.
PEOPLE_RULES = 2


def settings_hash(settings: dict) -> str:
    """Short hash of :meth:`AnalyzeConfig.settings`: equal hashes mean interchangeable results."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class RunOptions:
    """How a run is executed (never changes results).

    Attributes:
        workers: maximum parallel video workers; None = cluster CPUs // cpus_per_worker. A
            larger number is capped at that on a Ray started here and kept on a joined
            cluster, which may scale up (both with a warning; see ``distributed.pool_size``).
        cpus_per_worker: CPUs Ray reserves per worker (also its TF/OpenCV thread count).
        gpus_per_worker: GPUs per worker; fractions share a GPU; 0 = CPU only.
        address: Ray cluster to join (``auto``, ``ray://host:10001``); None starts Ray embedded.
        overwrite: redo videos that already have results.
        retries: extra attempts for a video whose worker process died.
        verbose: log full error details.
        progress: show tqdm bars.
        start_timeout_s: seconds to wait for the first worker to start before failing.
        stall_timeout_s: seconds an input may be read with no progress before its worker is
            replaced and the input failed ("no progress for N s"); 0 never. Reading only:
            classifying, person grouping and writing after the last frame are not timed.
    """

    workers: int | None = None
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    address: str | None = None
    overwrite: bool = False
    retries: int = 2
    verbose: bool = False
    progress: bool = True
    start_timeout_s: float = DEFAULT_START_TIMEOUT_S
    stall_timeout_s: float = DEFAULT_STALL_TIMEOUT_S

    def __post_init__(self) -> None:
        _check_range("start_timeout_s", self.start_timeout_s, 0, low_open=True)
        _check_range("stall_timeout_s", self.stall_timeout_s, 0)
        if self.workers is not None:
            _check_range("workers", self.workers, 1)
        _check_range("cpus_per_worker", self.cpus_per_worker, 0, low_open=True)
        _check_range("gpus_per_worker", self.gpus_per_worker, 0)
        _check_range("retries", self.retries, 0)
