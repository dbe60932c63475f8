"""``emovid tune``: a Ray Tune search over the training recipe (:mod:`training.search_space`).

One trial per CPU (or GPU) slot; each trial trains a fresh CNN and reports validation accuracy
and mean recall after every epoch; ASHA stops the weak ones early. The best trial's model is
saved as a normal ``.keras`` file (``analyze --model`` takes it) with the search space and its
result in the metadata, next to ``results.csv`` and ``objective.png``. The search lives in
``OUT/search`` (Tune's experiment folder): run the same command again to continue an
interrupted search where it stopped.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from emovid.errors import DatasetError
from emovid.training.search_space import OBJECTIVES, Param, build_space, describe, stage_widths, to_tune

log = logging.getLogger(__name__)

EXPERIMENT = "search"
BEST_MODEL = "best.keras"
CROP_MARGIN = 0.15  # the training crop of class-folder photos, as `emovid train`
RECALIBRATION_CROPS = 4096  # clean training crops that set the batch-norm statistics before each score


@dataclass(frozen=True, slots=True)
class TuneOptions:
    """What ``emovid tune --help`` documents; validated here, before Ray starts.

    Attributes:
        data: training folder (any layout ``emovid train`` takes).
        out: results folder: ``search/`` (Tune's experiment), ``best.keras``, ``results.csv``,
            ``objective.png``.
        trials: configurations sampled.
        max_hours: wall-clock budget of the whole search (None: until every trial ends).
        epochs: most epochs per trial (ASHA stops weak trials sooner).
        objective: the metric maximised: ``val_mean_recall`` or ``val_acc``.
        space: ``NAME=SPEC`` overrides of :data:`~training.search_space.SEARCH_SPACE`.
        cpus_per_trial / gpus_per_trial: resources of one trial.
        address: Ray cluster to join (None: start Ray here).
        limit: train on the first ``limit`` images only (smoke tests).
        seed: random seed of the data split and of every trial's training.
    """

    data: Path
    out: Path
    trials: int = 12
    max_hours: float | None = None
    epochs: int = 20
    objective: str = "val_mean_recall"
    space: tuple[str, ...] = ()
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    address: str | None = None
    limit: int | None = None
    seed: int = 1337
    search_space: dict[str, Param] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "search_space", build_space(self.space))
        if self.trials < 1 or self.epochs < 1:
            raise ValueError(f"trials and epochs: expected >= 1, got {self.trials}, {self.epochs}")
        if self.max_hours is not None and not (math.isfinite(self.max_hours) and self.max_hours > 0):
            raise ValueError(f"max_hours: expected a number > 0, got {self.max_hours}")
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective: expected one of {OBJECTIVES}, got {self.objective!r}")
        if not self.cpus_per_trial > 0 or self.gpus_per_trial < 0:
            raise ValueError(f"cpus_per_trial > 0 and gpus_per_trial >= 0 expected, got "
                             f"{self.cpus_per_trial}, {self.gpus_per_trial}")
        if self.limit is not None and self.limit < 8:
            raise ValueError(f"limit: expected >= 8 images, got {self.limit}")
        if not Path(self.data).is_dir():
            raise DatasetError(f"{self.data}: not a directory")


def _load(data: str, size: int, limit: int | None, seed: int):
    from emovid.training.data import load_dataset
    from emovid.training.train import split_validation

    train, valid = load_dataset(Path(data), size, CROP_MARGIN)
    if limit:
        train = train.head(limit)
        valid = valid.head(max(4, limit // 4)) if valid is not None else None
    if valid is None:
        train, valid = split_validation(train, 0.2, seed)
    return train, valid


def run_trial(config: dict, *, data: str, epochs: int, seed: int, limit: int | None, cpus: float) -> None:
    """One Tune trial: train the sampled recipe, reporting after each epoch with a checkpoint
    (a restored trial continues from its last one)."""
    import keras
    from ray import tune

    from emovid.classify.emotions import configure_tensorflow
    from emovid.classify.labels import EMOTIONS
    from emovid.training.augment import make_augmenter, make_dataset
    from emovid.training.evaluate import EvalReport
    from emovid.training.model import make_model
    from emovid.training.soup import recalibrate_batch_norm
    from emovid.training.train import class_weights

    on_gpu = bool(configure_tensorflow(max(1, int(cpus))))
    keras.utils.set_random_seed(seed)
    size = int(config["input_size"])
    train, valid = _load(data, size, limit, seed)
    weights = class_weights(train.targets, float(config["balance"]))
    batch = 128
    steps = epochs * int(np.ceil(len(train) / batch))
    start_epoch, checkpoint = 0, tune.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as folder:
            model = keras.saving.load_model(Path(folder) / "model.keras")  # with its optimizer state
            start_epoch = json.loads((Path(folder) / "state.json").read_text())["epoch"]
    else:
        model = make_model((size, size, 1), len(EMOTIONS), widths=stage_widths(config["width"], config["depth"]),
                           dense_units=int(config["dense_units"]))
        lr = float(config["learning_rate"])
        schedule = keras.optimizers.schedules.CosineDecay(lr / 10, steps, warmup_target=lr,
                                                          warmup_steps=max(1, steps // 30))
        model.compile(optimizer=keras.optimizers.AdamW(schedule, weight_decay=5e-4),
                      loss=keras.losses.CategoricalCrossentropy(from_logits=True,
                                                                label_smoothing=float(config["label_smoothing"])),
                      jit_compile="auto" if on_gpu else False)
    train_ds = make_dataset(train.images, train.targets, (train.targets @ weights).astype("float32"),
                            batch_size=batch, augmenter=make_augmenter(seed, float(config["augment"])),
                            shuffle=True, seed=seed)
    judged = valid.evaluable()
    rng = np.random.default_rng(seed)
    for epoch in range(start_epoch, epochs):
        model.fit(train_ds, epochs=epoch + 1, initial_epoch=epoch, verbose=0)
        # Early in training the batch-norm moving averages lag the weights, and a network scored with
        # them predicts one class (seen: every trial at 1/7 mean recall after 2 epochs on 12,000 FER+
        # crops); statistics of clean training crops score what the network has learnt (~5 s).
        sample = rng.choice(len(train), min(RECALIBRATION_CROPS, len(train)), replace=False)
        recalibrate_batch_norm(model, train.images[sample])
        logits = model.predict(judged.images[..., None], batch_size=512, verbose=0)
        report = EvalReport.from_predictions(judged.majority, logits.argmax(axis=1))
        scores = {"val_acc": report.accuracy, "val_mean_recall": report.mean_recall, "epoch": epoch + 1}
        with tempfile.TemporaryDirectory() as folder:
            model.save(Path(folder) / "model.keras")
            (Path(folder) / "state.json").write_text(json.dumps(scores))  # the checkpoint knows its own scores
            tune.report(scores, checkpoint=tune.Checkpoint.from_directory(folder))


class _StopSignal(logging.Filter):
    """Notes Tune's "stop signal received" warning: Tune catches Ctrl-C itself, ends the run,
    saves the experiment and returns normally, so its log is the only sign of an interrupt."""

    seen = False

    def filter(self, record: logging.LogRecord) -> bool:
        if "Stop signal received" in record.getMessage():
            self.seen = True
        return True


@dataclass(frozen=True, slots=True)
class TuneResult:
    """Where the search wrote its outputs, and the winner."""

    best_model: Path | None  # None: interrupted before any trial's first checkpoint was kept
    best_config: dict
    best_metrics: dict
    results_csv: Path
    plot: Path
    trials: int
    resumed: bool
    complete: bool = True  # False: interrupted; the same call continues it


def tune_search(options: TuneOptions, progress: bool = True) -> TuneResult:
    """Run (or continue) the search; returns its outputs.

    Raises:
        ValueError / DatasetError: a bad option or data folder (before Ray starts).
        EmovidError: no trial finished an epoch.
    """
    from emovid.errors import EmovidError

    out = Path(options.out).absolute()
    train, _ = _load(os.fspath(options.data), 48, options.limit, options.seed)  # the data must load before Ray
    class_prior = train.targets.mean(axis=0)
    out.mkdir(parents=True, exist_ok=True)
    # Tune warns on every per-epoch checkpoint of short trials that snapshots are frequent.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    import ray
    from ray import tune

    from emovid.config import RunOptions
    from emovid.run.distributed import connect

    started = connect(RunOptions(address=options.address))
    try:
        trainable = tune.with_resources(
            tune.with_parameters(run_trial, data=os.fspath(Path(options.data).absolute()), epochs=options.epochs,
                                 seed=options.seed, limit=options.limit, cpus=options.cpus_per_trial),
            {"cpu": options.cpus_per_trial, "gpu": options.gpus_per_trial})
        experiment = out / EXPERIMENT
        resumed = tune.Tuner.can_restore(str(experiment))
        if resumed:
            log.info("continuing the search in %s", experiment)
            tuner = tune.Tuner.restore(str(experiment), trainable, resume_errored=True)
        else:
            from ray.tune.schedulers import ASHAScheduler

            tuner = tune.Tuner(
                trainable, param_space=to_tune(options.search_space),
                tune_config=tune.TuneConfig(
                    metric=options.objective, mode="max", num_samples=options.trials,
                    scheduler=ASHAScheduler(max_t=options.epochs, grace_period=min(2, options.epochs),
                                            reduction_factor=3),
                    time_budget_s=options.max_hours * 3600 if options.max_hours else None,
                    trial_dirname_creator=lambda trial: f"trial_{trial.trial_id}"),
                run_config=tune.RunConfig(name=EXPERIMENT, storage_path=os.fspath(out), verbose=1 if progress else 0,
                                          # Keeps each trial's best epoch; Tune also keeps the latest, to resume from.
                                          checkpoint_config=tune.CheckpointConfig(
                                              num_to_keep=1, checkpoint_score_attribute=options.objective,
                                              checkpoint_score_order="max")))
        stop = _StopSignal()
        tune_log = logging.getLogger("ray.tune.tune")
        tune_log.addFilter(stop)
        try:
            grid = tuner.fit()  # on Ctrl-C Tune saves the experiment and returns what it has
        finally:
            tune_log.removeFilter(stop)
        complete = not stop.seen
        # A Ctrl-C can land between a trial writing its first checkpoint and Tune registering it.
        saved = [(r, checkpoint, metrics) for r in grid for checkpoint, metrics in (r.best_checkpoints or [])]
        model_path, best_config, best_metrics = None, {}, {}
        if saved:
            best, checkpoint, _ = max(saved, key=lambda item: item[2].get(options.objective, -1.0))
            model_path, best_metrics = _save_best(best, checkpoint, options, out, class_prior)
            best_config = dict(best.config)
        elif complete:
            errors = "; ".join(str(r.error).splitlines()[-1] for r in grid if r.error)[:500]
            raise EmovidError(f"no trial finished an epoch ({errors or 'none ran'})")
        csv, plot = _write_results(grid, options, out)
    finally:
        if started:
            ray.shutdown()
    return TuneResult(model_path, best_config, best_metrics, csv, plot, len(grid), resumed, complete)


def _save_best(best, checkpoint, options: TuneOptions, out: Path, class_prior: np.ndarray) -> tuple[Path, dict]:
    """The best trial's kept checkpoint as a normal emovid model file with the search in its
    metadata; returns its path and that checkpoint's scores."""
    import keras

    from emovid.classify.labels import EMOTIONS
    from emovid.classify.model_file import ModelInfo, write_model

    with checkpoint.as_directory() as folder:
        trained = keras.saving.load_model(Path(folder) / "model.keras", compile=False)
        scores = json.loads((Path(folder) / "state.json").read_text())
    inference = keras.models.clone_model(trained)  # no optimizer state in the shipped file
    inference.set_weights(trained.get_weights())
    info = ModelInfo(
        name=out.name or "emovid-tuned", version="1", classes=EMOTIONS, input_size=int(best.config["input_size"]),
        crop_margin=CROP_MARGIN, flip_average=True,
        class_prior=tuple(round(float(v), 6) for v in np.maximum(class_prior, 1e-6)),
        training={"search": {"space": describe(options.search_space), "objective": options.objective,
                             "trials": options.trials, "epochs": options.epochs, "data": os.fspath(options.data)},
                  "best_config": {k: (float(v) if isinstance(v, float) else v) for k, v in best.config.items()},
                  "best_result": {"epoch": scores["epoch"], "val_acc": float(scores["val_acc"]),
                                  "val_mean_recall": float(scores["val_mean_recall"])}})
    path = out / BEST_MODEL
    tmp = out / f".{BEST_MODEL}.tmp.keras"
    write_model(inference, info, tmp)
    os.replace(tmp, path)
    return path, scores


def _write_results(grid, options: TuneOptions, out: Path) -> tuple[Path, Path]:
    """``results.csv`` (one row per trial, best epoch's scores, sorted by the objective) and
    ``objective.png`` (each trial's objective per epoch)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    rows = []
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for result in grid:
        if result.config is None:  # a trial that never started before an interrupt
            continue
        history = result.metrics_dataframe if result.metrics_dataframe is not None else pd.DataFrame()
        trial = (result.metrics or {}).get("trial_id") or (result.path and Path(result.path).name)
        best_row = history.loc[history[options.objective].idxmax()] if options.objective in history else None
        rows.append({"trial": trial, **{k: result.config.get(k) for k in options.search_space},
                     "epochs": int(history["epoch"].max()) if "epoch" in history else 0,
                     "best_epoch": int(best_row["epoch"]) if best_row is not None else None,
                     "val_acc": float(best_row["val_acc"]) if best_row is not None else None,
                     "val_mean_recall": float(best_row["val_mean_recall"]) if best_row is not None else None,
                     "error": str(result.error).splitlines()[-1] if result.error else None})
        if best_row is not None:
            ax.plot(history["epoch"], history[options.objective], marker="o", markersize=3, label=trial)
    columns = ["trial", *options.search_space, "epochs", "best_epoch", "val_acc", "val_mean_recall", "error"]
    table = pd.DataFrame(rows, columns=columns).sort_values(options.objective, ascending=False, na_position="last", kind="stable")
    csv = out / "results.csv"
    table.to_csv(csv, index=False)
    ax.set_xlabel("epoch")
    ax.set_ylabel(options.objective)
    ax.set_title(f"emovid tune: {options.objective} per trial ({len(rows)} trials)")
    if len(rows) <= 12:
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    plot = out / "objective.png"
    fig.savefig(plot, dpi=90)
    plt.close(fig)
    return csv, plot


def summary(result: TuneResult, top: int = 10) -> str:
    """The results table's first rows, sorted by the objective, as printed by the CLI."""
    import pandas as pd

    table = pd.read_csv(result.results_csv)
    return table.head(top).to_string(index=False, float_format=lambda v: f"{v:.4g}")
