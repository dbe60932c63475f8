"""The search space of ``emovid tune``: each tunable setting of the training recipe, its default
range and the values it may take, in one place.

The original project searched conv layers x dense layers x widths by hand; here ``depth``,
``dense_units`` and ``width`` are that grid, next to the input size and the training settings.
``emovid tune --space NAME=SPEC`` overrides one entry: ``a,b,c`` (a choice), ``lo..hi`` (a
range, sampled as the entry's default is: uniform, or log-uniform for the learning rate) or one
value (fixed).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Param:
    """One searched setting.

    Attributes:
        name: the setting.
        kind: ``choice``, ``uniform`` or ``loguniform``.
        values: the choices, or (low, high) for a range.
        limits: the (low, high) any value must lie in.
        integer: whether values are whole numbers.
        help: what it changes.
    """

    name: str
    kind: str
    values: tuple
    limits: tuple[float, float]
    integer: bool
    help: str

    def __post_init__(self) -> None:
        if self.kind not in ("choice", "uniform", "loguniform"):
            raise ValueError(f"{self.name}: kind must be choice, uniform or loguniform, got {self.kind!r}")
        if not self.values:
            raise ValueError(f"{self.name}: no values")
        if self.kind != "choice" and (len(self.values) != 2 or not self.values[0] < self.values[1]):
            raise ValueError(f"{self.name}: a range needs low < high, got {self.values}")
        low, high = self.limits
        for v in self.values:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not low <= v <= high:
                raise ValueError(f"{self.name}: {v!r} is outside {low:g}..{high:g}")
            if self.integer and v != int(v):
                raise ValueError(f"{self.name}: expected whole numbers, got {v!r}")
        if self.kind == "loguniform" and self.values[0] <= 0:
            raise ValueError(f"{self.name}: a log-uniform range must be positive")

    def describe(self) -> str:
        if self.kind == "choice":
            return ", ".join(f"{v:g}" for v in self.values)
        return f"{self.values[0]:g}..{self.values[1]:g} ({self.kind})"


#: The default search space. ``width`` is the first stage's filters; each later stage doubles them.
SEARCH_SPACE: dict[str, Param] = {p.name: p for p in (
    Param("width", "choice", (16, 24, 32, 48), (4, 256), True, "filters of the first conv stage (doubling per stage)"),
    Param("depth", "choice", (3, 4), (1, 5), True, "conv stages (two 3x3 convs each)"),
    Param("dense_units", "choice", (0, 128, 256), (0, 2048), True, "hidden dense layer before the classifier (0: none)"),
    Param("input_size", "choice", (40, 48, 56), (24, 128), True, "side of the grayscale face crop (px)"),
    Param("learning_rate", "loguniform", (5e-4, 5e-3), (1e-5, 0.1), False, "peak learning rate (cosine decay)"),
    Param("augment", "uniform", (0.5, 1.5), (0.05, 3.0), False, "strength of rotation/zoom/shift/contrast/brightness"),
    Param("balance", "uniform", (0.0, 1.0), (0.0, 1.0), False, "class re-weighting exponent (0: none, 1: inverse frequency)"),
    Param("label_smoothing", "choice", (0.0, 0.05, 0.1), (0.0, 0.5), False, "share of each target spread over all classes"),
)}

OBJECTIVES = ("val_mean_recall", "val_acc")


def parse_override(text: str) -> Param:
    """``NAME=SPEC`` as a :class:`Param` replacing that entry of :data:`SEARCH_SPACE`.

    Raises:
        ValueError: unknown name, malformed spec, or values outside the entry's limits.
    """
    name, sep, spec = text.partition("=")
    name = name.strip()
    if not sep or not spec.strip():
        raise ValueError(f"--space {text!r}: expected NAME=SPEC, e.g. width=16,32 or learning_rate=1e-4..1e-2")
    if name not in SEARCH_SPACE:
        raise ValueError(f"--space {text!r}: unknown setting {name!r}; tunable: {', '.join(SEARCH_SPACE)}")
    base = SEARCH_SPACE[name]
    try:
        if ".." in spec:
            low, high = (float(v) for v in spec.split("..", 1))
            kind = base.kind if base.kind != "choice" else "uniform"
            if base.integer:
                raise ValueError(f"{name} takes whole-number choices (e.g. {name}=16,32), not a range")
            values = (low, high)
        else:
            values = tuple(float(v) for v in spec.split(","))
            values = tuple(int(v) if base.integer and v == int(v) else v for v in values)
            kind = "choice"
    except ValueError as exc:
        raise ValueError(f"--space {text!r}: {exc}") from None
    try:
        return Param(name, kind, values, base.limits, base.integer, base.help)
    except ValueError as exc:
        raise ValueError(f"--space {text!r}: {exc}") from None


def build_space(overrides: list[str] | tuple[str, ...] = ()) -> dict[str, Param]:
    """:data:`SEARCH_SPACE` with ``overrides`` (``NAME=SPEC`` strings) applied."""
    space = dict(SEARCH_SPACE)
    for text in overrides:
        param = parse_override(text)
        space[param.name] = param
    return space


def to_tune(space: dict[str, Param]) -> dict:
    """The space as Ray Tune sampling objects."""
    from ray import tune

    out = {}
    for name, p in space.items():
        if p.kind == "choice":
            out[name] = tune.choice(list(p.values))
        elif p.kind == "uniform":
            out[name] = tune.uniform(*p.values)
        else:
            out[name] = tune.loguniform(*p.values)
    return out


def describe(space: dict[str, Param]) -> dict[str, dict]:
    """The space as plain data, for a model file's metadata and the results folder."""
    return {name: {"kind": p.kind, "values": list(p.values)} for name, p in space.items()}


def stage_widths(width: int, depth: int) -> tuple[int, ...]:
    """Filters per conv stage: ``width`` doubling ``depth`` times (32, 4 -> the shipped 32..256)."""
    return tuple(int(width) * 2 ** i for i in range(int(depth)))
