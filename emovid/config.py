"""Settings of an analysis, validated where they are made (on the driver, before Ray starts)."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field, fields

from emovid.store.schema import SCHEMA_VERSION

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


def option(default, help: str, *, flag: str | None = None, metavar: str | None = None, check=None,
           none_means: str | None = None, none_flag: str | None = None):
    """A field of :class:`AnalyzeConfig` or :class:`RunOptions`, declared once: its default, its
    help (the CLI's and :func:`emovid.analyze`'s), its command-line flag and its check.

    Args:
        flag: the CLI flag (default ``--name-with-dashes``); a bool defaulting to True gets
            ``--no-...``.
        check: ``check(name, value)`` returns the value to keep (normalised) or raises
            ValueError; it runs in ``__post_init__`` and in the CLI's argument parsing alike. A
            None value skips it where None is allowed (the default is None, or ``none_means``).
        none_means: what None (the default) does, for the help text.
        none_flag: a CLI flag that sets the field to None (``--every-frame`` for ``fps``).
    """
    return field(default=default, metadata={"help": help, "flag": flag, "metavar": metavar, "check": check,
                                            "none_means": none_means, "none_flag": none_flag})


def in_range(low, high=math.inf, *, low_open: bool = False, zero_ok: bool = False, whole: bool = False):
    """A check: a number (not a bool) within the bounds; ``zero_ok``: 0 too (0 = off)."""
    bound = f"> {low}" if low_open else f">= {low}"
    wanted = (f"{'a whole number' if whole else 'a number'} {bound}{'' if high == math.inf else f' and <= {high}'}"
              f"{' (or 0)' if zero_ok else ''}")

    def check(name: str, value):
        number = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        if number and whole and value != int(value):
            number = False
        if not number or not ((zero_ok and value == 0)
                              or ((value > low if low_open else value >= low) and value <= high)):
            raise ValueError(f"{name}: expected {wanted}, got {value!r}")
        return int(value) if whole else value
    return check


def _prior(name: str, value):
    return parse_prior(value)


def _model(name: str, value):
    from emovid.assets import model_reference

    return model_reference(value)


def _address(name: str, value):
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name}: expected `auto` or a Ray address such as ray://host:10001, got {value!r}")
    return value


def _precision(name: str, value):
    from emovid.classify.emotions import PRECISIONS  # no model or runtime is loaded by this import

    if value not in PRECISIONS:
        raise ValueError(f"{name}: expected one of {', '.join(PRECISIONS)}, got {value!r}")
    return value


def _flag(name: str, value):
    if not isinstance(value, bool):
        raise ValueError(f"{name}: expected True or False, got {value!r}")
    return value


def _check_fields(obj) -> None:
    """Run each field's declared check (see :func:`option`); keep what it returns."""
    for f in fields(obj):
        value = getattr(obj, f.name)
        if value is None and (f.default is None or f.metadata.get("none_means")):
            continue
        check = f.metadata.get("check") or (_flag if isinstance(f.default, bool) else None)
        if check is not None:
            object.__setattr__(obj, f.name, check(f.name, value))


@dataclass(frozen=True, slots=True)
class AnalyzeConfig:
    """How each input is analysed: every field changes the results (and the settings hash), so a
    folder never mixes results of two configs. How a run executes is :class:`RunOptions`.

    Each field's help is in its declaration below (``emovid analyze --help`` shows the same).
    """

    fps: float | None = option(DEFAULT_FPS, "frames analysed per second of video", check=in_range(0, 1000, low_open=True),
                               none_means="every frame", none_flag="--every-frame")
    model: str | None = option(None, "emotion model: a .keras file from `emovid train`/`soup`/`ensemble`",
                               check=_model, none_means="the shipped emovid_fer7_v7")
    score_threshold: float = option(0.7, "face detection threshold", metavar="SCORE", check=in_range(0, 1, low_open=True))
    min_face: int = option(20, "smallest face side in pixels of the original frame", metavar="PX",
                           check=in_range(0, whole=True))
    max_side: int | None = option(None, "shrink frames to this longer side for face detection (boxes are mapped "
                                        "back)", metavar="PX", check=in_range(64, whole=True),
                                  none_means="from --min-face: 640 px video -> 320 px, where faces are found reliably from "
                                             "about 48 px (docs/analyze.md)")
    align: bool = option(False, "rotate face crops so the eyes are level")
    track: bool = option(True, "follow faces across frames (track_id); off: track_id stays null")
    track_gap_s: float = option(1.0, "how long a face may go undetected and keep its track id", flag="--track-gap",
                                metavar="SECONDS", check=in_range(0))
    shots: bool = option(True, "detect shot cuts on every decoded frame: tracks end at each cut and rows carry "
                               "the shot index; off: one shot, tracks may run across cuts")
    shot_threshold: float = option(DEFAULT_SHOT_THRESHOLD, "colour or structure change (0..255) that makes a cut; "
                                                           "lower finds softer cuts", metavar="SCORE",
                                   check=in_range(0, 255, low_open=True))
    persons: bool = option(True, "group each video's tracks into person_id by face identity (needs tracking and "
                                 "the identity model; off: person_id = track_id)")
    prior: float | str | None = option(None, "how the emotion decision weighs rare emotions: ferplus (FER+'s class "
                                       "shares: mostly neutral), balanced (every emotion equally likely) or a "
                                       f"number 0..{MAX_PRIOR_TAU:g} between them", metavar="PRIOR", check=_prior,
                                 none_means="the model's measured operating point, see the model card")
    precision: str = option("auto", "the CNN's arithmetic: int8 (the model file's quantised graph), fp32, or auto: "
                                    "int8 on CPUs where it measures faster, fp32 on GPUs; a folder keeps the one "
                                    "its results were made with", metavar="{auto,int8,fp32}", check=_precision)

    def __post_init__(self) -> None:
        _check_fields(self)

    def settings(self, model_tag: str, classes: tuple[str, ...], model_sha256: str,
                 detector_backend: str | None = None) -> dict:
        """The result-affecting settings, as stored in every output file's metadata.

        The model is identified by its file's content (``model_sha256``; the tag is for
        people), and the emovid version and detector backend are in: results of another
        model, release or detector backend are never mistaken for these. So is the precision,
        which must be resolved ("int8" or "fp32", see :meth:`with_precision`): int8 moves
        probabilities by ~0.01. The classifier's runtime is not in them: onnxruntime and
        TensorFlow agree to 1e-6 (closer than TF's own bf16 and fp32), so nodes may differ
        there; each file's metadata records it.

        Raises:
            ValueError: ``precision`` is still "auto".
        """
        if self.precision == "auto":
            raise ValueError("precision: resolve 'auto' (AnalyzeConfig.with_precision) before computing settings")
        from emovid import __version__
        from emovid.assets import YUNET_NAME
        from emovid.people.identity import identity_backend  # imports OpenCV: not at config import
        from emovid.detect.pose import tilt_backend
        from emovid.detect.yunet import auto_backend

        fields = asdict(self)
        fields["model"] = model_tag
        # tracks use the identity model too (their jumps in look are checked with it)
        fields["identity"] = identity_backend() if self.track else "none"
        fields["pose_tilt"] = tilt_backend()  # head pose differs with and without dlib's landmarks
        return {"people_rules": PEOPLE_RULES, "sampling_fps": fields.pop("fps"), **fields, "model_sha256": model_sha256,
                "classes": list(classes),
                "detector": YUNET_NAME, "detector_backend": detector_backend or auto_backend(),
                "emovid_version": __version__, "schema_version": SCHEMA_VERSION}


    def with_precision(self, use_gpu: bool = False, earlier: str | None = None) -> "AnalyzeConfig":
        """This config with ``precision`` resolved for this host: "auto" becomes ``earlier`` (the
        precision of results already in the output folder) when given, else what
        :func:`~emovid.classify.emotions.resolve_precision` measures; "int8" is checked.

        Raises:
            ModelError: int8 asked of a model, runtime or device that cannot run it.
        """
        from dataclasses import replace

        from emovid.classify.emotions import resolve_precision
        from emovid.errors import ModelError

        if self.precision == "auto" and earlier in ("int8", "fp32"):
            try:
                return replace(self, precision=resolve_precision(self.model, earlier, use_gpu=use_gpu))
            except ModelError:  # not possible here: measure, and let the folder check name the difference
                pass
        return replace(self, precision=resolve_precision(self.model, self.precision, use_gpu=use_gpu))


#: Version of the shot, track and person rules: results of other rules are not mixed with these.
#: 2: cuts on structure as well as colour; track jumps in look checked with the identity model.
PEOPLE_RULES = 2


def settings_hash(settings: dict) -> str:
    """Short hash of :meth:`AnalyzeConfig.settings`: equal hashes mean interchangeable results."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class RunOptions:
    """How a run executes: never changes results. Each field's help is in its declaration."""

    batch_size: int | None = option(None, "face crops per classifier call", metavar="N", check=in_range(1, whole=True),
                                    none_means="256 on CPU, 1024 on a GPU worker")
    segment_s: float = option(DEFAULT_SEGMENT_S, "split videos longer than 1.5x this into segments of about this "
                                                 "many seconds, analysed in parallel, but only into as many as "
                                                 "workers would otherwise idle (0: never split)",
                              metavar="SECONDS", check=in_range(1, zero_ok=True))
    address: str | None = option(None, "join a Ray cluster (`auto`, `ray://host:10001`)", metavar="ADDRESS", check=_address,
                                 none_means="start Ray here")
    workers: int | None = option(None, "max parallel workers; more is capped on a Ray started here and kept on a "
                                       "joined cluster, which may scale up", metavar="N", check=in_range(1, whole=True),
                                 none_means="what the cluster's CPUs hold at --cpus-per-worker")
    cpus_per_worker: float = option(1.0, "CPUs Ray reserves per worker (also its classifier and OpenCV threads)",
                                    metavar="CPUS", check=in_range(0, low_open=True))
    gpus_per_worker: float = option(0.0, "GPUs per worker; fractions share a GPU (0: CPU only)", metavar="GPUS", check=in_range(0))
    in_process: bool = option(False, "run in this process without Ray (debugging: no watchdog, and Ctrl-C waits "
                                     "for a blocked read)")
    retries: int = option(2, "extra attempts for an input whose worker process died", metavar="N", check=in_range(0, whole=True))
    start_timeout_s: float = option(DEFAULT_START_TIMEOUT_S, "end the run when no worker has started after this "
                                                             "long, e.g. on a busy cluster", flag="--start-timeout",
                                    metavar="SECONDS", check=in_range(0, low_open=True))
    stall_timeout_s: float = option(DEFAULT_STALL_TIMEOUT_S, "fail an input whose reading makes no progress for "
                                                             "this long (a stalled mount, a file still being "
                                                             "written) and replace its worker (0: never)",
                                    flag="--stall-timeout", metavar="SECONDS", check=in_range(0))
    overwrite: bool = option(False, "redo inputs that already have results")
    progress: bool = option(True, "show progress bars")
    verbose: bool = option(False, "log details and tracebacks", flag="--verbose")

    def __post_init__(self) -> None:
        _check_fields(self)

    @property
    def split_s(self) -> float | None:
        """Segment length for splitting long videos; None when ``segment_s`` is 0 (never split)."""
        return self.segment_s or None


def option_names() -> list[str]:
    """Every declared option, :class:`AnalyzeConfig`'s then :class:`RunOptions`'."""
    return [f.name for cls in (AnalyzeConfig, RunOptions) for f in fields(cls)]


def split_options(options: dict) -> tuple[AnalyzeConfig, RunOptions]:
    """Keyword options (any field of either class) into the two types.

    Raises:
        TypeError: a name that is no option.
        ValueError: a value its check refuses.
    """
    if unknown := set(options) - set(option_names()):
        raise TypeError(f"unknown option(s): {', '.join(sorted(unknown))}")
    config = {f.name for f in fields(AnalyzeConfig)}
    return (AnalyzeConfig(**{k: v for k, v in options.items() if k in config}),
            RunOptions(**{k: v for k, v in options.items() if k not in config}))


def default_text(f) -> str:
    """How a field's default reads in help: its value, or what None means."""
    if f.default is None:
        return f.metadata.get("none_means") or "none"
    if isinstance(f.default, bool):
        return "on" if f.default else "off"
    return f"{f.default:g}" if isinstance(f.default, float) else str(f.default)


def option_signature(func):
    """``func``'s signature with its ``**options`` spelled out as the declared keyword options,
    so ``help()`` and editors show each with its default."""
    import inspect
    import typing

    params = [p for p in inspect.signature(func).parameters.values() if p.kind is not p.VAR_KEYWORD]
    for cls in (AnalyzeConfig, RunOptions):
        hints = typing.get_type_hints(cls)
        params += [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default,
                                     annotation=hints[f.name]) for f in fields(cls)]
    return inspect.signature(func).replace(parameters=params)


def option_docs() -> str:
    """The declared options as a docstring section (appended to :func:`emovid.analyze`'s)."""
    lines = []
    for cls, title in ((AnalyzeConfig, "Options that change the results (AnalyzeConfig)"),
                       (RunOptions, "Options of the run (RunOptions)")):
        lines += ["", f"    {title}:"]
        for f in fields(cls):
            lines.append(f"        {f.name}: {f.metadata['help']} (default {default_text(f)}).")
    return "\n".join(lines) + "\n"
