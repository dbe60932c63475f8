"""The training job: data -> model -> fit -> save (with metadata) -> evaluate.

Sections follow keras-io's mnist_convnet (Setup, Prepare data, Build model, Train, Evaluate),
written as functions so ``emovid train`` and ``jobs/train.py`` share them.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import keras
import numpy as np

from emovid import __version__
from emovid.classify.emotions import configure_tensorflow, enable_cpu_bf16
from emovid.classify.labels import EMOTIONS
from emovid.classify.model_file import ModelInfo, write_model
from emovid.training.augment import make_augmenter, make_dataset
from emovid.training.data import DatasetError, LabelledFaces, load_class_folders, load_dataset
from emovid.training.distill import training_maps
from emovid.training.model import make_model
from emovid.training.soup import recalibrate_batch_norm

log = logging.getLogger(__name__)

# ---- Setup ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TrainConfig:
    """Training settings; ``emovid train --help`` documents each one.

    Attributes:
        data: dataset folder (FER+ root with FER2013Train/ and FER2013Valid/, one FER+ split
            folder with label.csv, or ``<emotion>/*.jpg`` class folders).
        out: where the trained ``.keras`` model is written.
        epochs: maximum epochs (early stopping may end sooner).
        batch_size: training batch size.
        learning_rate: peak learning rate of the cosine schedule.
        balance: class re-weighting exponent: 0 = none, 1 = full inverse frequency.
        validation_split: share held out when the data has no validation split of its own.
        patience: epochs without val accuracy gain before stopping.
        input_size: side of the square grayscale model input.
        crop_margin: face-box enlargement used when cropping faces from photos and video.
        seed: random seed for the split, shuffling and augmentation.
        name / version: recorded in the model file, for people (default name: the ``out``
            file's stem); results identify a model by its file's hash, not by these.
        limit: train on the first ``limit`` images only (smoke tests).
        init_from: start from this ``.keras`` model's weights (fine-tuning; same architecture).
        teacher: distil: train toward this model's predictions (a path or bundled model name).
        teacher_weight: share of the teacher in the training targets (the rest is the labels).
        mixup: alpha of mixup's Beta(alpha, alpha) share (images of a batch blended); 0 = off.
        degrade: strength of the camera-fault augmentation (downscale, blur, JPEG, gamma,
            occlusion; :func:`training.augment.degrade_batch`); 0 = off, 1 = the default shares.
        recalibrate: after training, recompute the batch-norm statistics on the clean training
            crops (see :func:`training.soup.recalibrate_batch_norm`).
        mix: extra ``<emotion>/*.jpg`` folders (faces detected and cropped at ``crop_margin``, as
            ``analyze`` does) added to the training split, each repeated ``mix_repeat`` times
            per epoch, with labels smoothed by ``mix_smoothing`` (crowd labels are noisy): faces
            from the cameras a user cares about, next to FER+'s.
        mix_repeat: copies of each ``mix`` photo per epoch.
        mix_smoothing: share of each ``mix`` label spread evenly over the classes.
    """

    data: Path
    out: Path
    epochs: int = 30
    batch_size: int = 128
    learning_rate: float = 2e-3
    balance: float = 0.5
    validation_split: float = 0.2
    patience: int = 8
    input_size: int = 48
    crop_margin: float = 0.15
    seed: int = 1337
    name: str | None = None
    version: str = "1"
    limit: int | None = None
    init_from: Path | None = None
    teacher: str | None = None
    teacher_weight: float = 0.7
    mixup: float = 0.0
    degrade: float = 0.0
    recalibrate: bool = True
    mix: tuple[Path, ...] = ()
    mix_repeat: int = 4
    mix_smoothing: float = 0.1
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.name is None:
            object.__setattr__(self, "name", Path(self.out).stem)
        if not str(self.name).strip() or not str(self.version).strip():
            raise ValueError(f"name and version: expected non-empty text, got {self.name!r}, {self.version!r}")
        object.__setattr__(self, "mix", tuple(Path(m) for m in self.mix))
        for name in ("epochs", "batch_size", "patience", "input_size", "mix_repeat"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected >= 1, got {getattr(self, name)}")
        if not 0 < self.validation_split < 1:
            raise ValueError(f"validation_split: expected 0..1 exclusive, got {self.validation_split}")
        if not 0 <= self.teacher_weight <= 1:
            raise ValueError(f"teacher_weight: expected 0..1, got {self.teacher_weight}")
        if not (math.isfinite(self.mixup) and self.mixup >= 0):
            raise ValueError(f"mixup: expected a number >= 0, got {self.mixup}")
        if not (math.isfinite(self.degrade) and 0 <= self.degrade <= 3):
            raise ValueError(f"degrade: expected a number in 0..3, got {self.degrade}")
        if not 0 <= self.mix_smoothing < 1:
            raise ValueError(f"mix_smoothing: expected 0..1 (1 excluded), got {self.mix_smoothing}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate: expected > 0, got {self.learning_rate}")
        if Path(self.out).suffix != ".keras":
            raise ValueError(f"out: expected a .keras file name, got {self.out}")


# ---- Prepare data --------------------------------------------------------------------------


def split_validation(data: LabelledFaces, share: float, seed: int) -> tuple[LabelledFaces, LabelledFaces]:
    """Random ``1 - share`` / ``share`` split (the seed project's 80/20)."""
    order = np.random.default_rng(seed).permutation(len(data))
    n_val = max(1, int(round(share * len(data))))
    if n_val >= len(data):
        raise DatasetError(f"only {len(data)} images: too few to hold out a validation split")
    pick = lambda idx: LabelledFaces(data.images[idx], data.targets[idx], data.names[idx], data.majority[idx])  # noqa: E731
    return pick(order[n_val:]), pick(order[:n_val])


def with_mix(train: LabelledFaces, mix: LabelledFaces, repeat: int, smoothing: float) -> LabelledFaces:
    """``train`` plus ``repeat`` copies of ``mix``, whose targets are smoothed toward uniform."""
    targets = (mix.targets * (1 - smoothing) + smoothing / mix.targets.shape[1]).astype(np.float32)
    join = lambda a, b: np.concatenate([a] + [b] * repeat)  # noqa: E731
    return LabelledFaces(join(train.images, mix.images), join(train.targets, targets), join(train.names, mix.names),
                         join(train.majority, mix.majority))


def class_weights(targets: np.ndarray, exponent: float) -> np.ndarray:
    """Per-class weights ``(N / (K * n_c)) ** exponent``, normalised to mean 1 over the samples."""
    counts = targets.sum(axis=0) + 1.0
    per_class = (counts.sum() / (len(counts) * counts)) ** exponent
    sample = targets @ per_class
    return per_class / sample.mean()


# ---- Train ---------------------------------------------------------------------------------


def fit(config: TrainConfig, train: LabelledFaces, valid: LabelledFaces) -> tuple[keras.Model, dict]:
    """Compile and fit a fresh model; returns the best-epoch model and its history.

    With ``config.teacher`` the targets of each augmented (and mixed) batch move toward the
    teacher's probabilities on that very batch; class weights and validation keep the labels.
    """
    keras.utils.set_random_seed(config.seed)
    on_gpu = bool(configure_tensorflow())
    if not on_gpu:
        enable_cpu_bf16()  # measured 551 -> 384 ms per batch of 128 on this 2-core AMX CPU
    model = make_model((config.input_size, config.input_size, 1), len(EMOTIONS))
    if config.init_from:
        start = keras.saving.load_model(config.init_from, compile=False, safe_mode=True)
        try:
            model.set_weights(start.get_weights())
        except ValueError as exc:
            raise DatasetError(f"--init-from {config.init_from}: not this architecture ({exc})") from None
    model.summary(print_fn=log.info)
    weights = class_weights(train.targets, config.balance)
    log.info("class weights: %s", dict(zip(EMOTIONS, np.round(weights, 2))))
    batch_maps = training_maps(config.teacher, config.teacher_weight, config.mixup, config.input_size,
                               config.crop_margin, config.seed)
    train_ds = make_dataset(train.images, train.targets, (train.targets @ weights).astype("float32"),
                            batch_size=config.batch_size, augmenter=make_augmenter(config.seed),
                            shuffle=True, seed=config.seed, batch_maps=batch_maps, degrade=config.degrade)
    valid_ds = make_dataset(valid.images, valid.targets, batch_size=512)
    steps = config.epochs * int(np.ceil(len(train) / config.batch_size))
    schedule = keras.optimizers.schedules.CosineDecay(
        config.learning_rate / 10, steps, warmup_target=config.learning_rate, warmup_steps=steps // 30)
    model.compile(
        optimizer=keras.optimizers.AdamW(schedule, weight_decay=5e-4),
        loss=keras.losses.CategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.CategoricalAccuracy(name="acc")],
        # XLA's CPU convolutions are slower than oneDNN's (855 vs 551 ms per batch here); keep it for GPUs.
        jit_compile="auto" if on_gpu else False,
    )
    work = Path(config.out).with_suffix("").with_name(Path(config.out).stem + "_work")
    work.mkdir(parents=True, exist_ok=True)
    callbacks = [
        keras.callbacks.TensorBoard(log_dir=str(work / "tensorboard")),
        keras.callbacks.ModelCheckpoint(str(work / "best.keras"), monitor="val_acc", mode="max", save_best_only=True),
        keras.callbacks.EarlyStopping(monitor="val_acc", mode="max", patience=config.patience, restore_best_weights=True),
        keras.callbacks.CSVLogger(str(work / "history.csv")),
    ]
    started = time.perf_counter()
    history = model.fit(train_ds, validation_data=valid_ds, epochs=config.epochs, callbacks=callbacks, verbose=2)
    seconds = time.perf_counter() - started
    epochs_run = len(history.history["loss"])
    return model, {
        "epochs_run": epochs_run,
        "seconds": round(seconds, 1),
        "seconds_per_epoch": round(seconds / max(epochs_run, 1), 1),
        "best_val_acc": float(max(history.history["val_acc"])),
    }


def recalibrate(model: keras.Model, train: LabelledFaces, valid: LabelledFaces) -> dict:
    """Recompute the batch-norm statistics on the clean training crops; returns what the model
    card needs (validation accuracy before and after).

    Training estimated them on augmented batches with dropout on; recomputed, they describe the
    network as it runs at inference (+0.0-1.6 pp on FER+ Valid for our four networks).
    """
    valid_ds = make_dataset(valid.images, valid.targets, batch_size=512)
    before = model.evaluate(valid_ds, return_dict=True, verbose=0)["acc"]
    batches = recalibrate_batch_norm(model, train.images)
    after = model.evaluate(valid_ds, return_dict=True, verbose=0)["acc"]
    log.info("batch-norm statistics recomputed on %d training crops: val acc %.4f -> %.4f", len(train), before, after)
    if after < before:
        log.warning("recomputing the batch-norm statistics lowered validation accuracy (%.4f -> %.4f); "
                    "--no-recalibrate keeps the ones estimated during training", before, after)
    return {"images": len(train), "batches": batches, "val_acc_before": round(float(before), 5),
            "val_acc_after": round(float(after), 5)}


def save(model: keras.Model, config: TrainConfig, details: dict, calibration: np.ndarray | None = None) -> ModelInfo:
    """Write the model and its emovid metadata to ``config.out`` (and its int8 graph, calibrated
    on ``calibration``: training crops)."""
    info = ModelInfo(
        name=config.name, version=config.version, classes=EMOTIONS, input_size=config.input_size,
        crop_margin=config.crop_margin,
        class_prior=tuple(round(float(v), 6) for v in np.maximum(details.pop("class_prior"), 1e-6)),
        training={**details, "emovid_version": __version__,
                  "config": {k: str(v) for k, v in asdict(config).items()}},
    )
    # An uncompiled clone drops the optimizer state: the shipped file holds only what inference needs.
    inference_model = keras.models.clone_model(model)
    inference_model.set_weights(model.get_weights())
    write_model(inference_model, info, config.out, calibration=calibration)
    return info


def train(config: TrainConfig) -> ModelInfo:
    """Run the whole training job and return the saved model's metadata.

    Raises:
        DatasetError: the data folder cannot be used.
    """
    configure_tensorflow()  # before a teacher model initialises TensorFlow with other settings
    train_set, valid_set = load_dataset(config.data, config.input_size, config.crop_margin)
    if config.limit:
        train_set = train_set.head(config.limit)
        valid_set = valid_set.head(max(2, config.limit // 4)) if valid_set is not None else None
    if valid_set is None:
        train_set, valid_set = split_validation(train_set, config.validation_split, config.seed)
    class_prior = train_set.targets.mean(axis=0)  # the offsets of --prior undo the main data's prior
    for folder in config.mix:
        photos = load_class_folders(folder, config.input_size, config.crop_margin)
        log.info("mixing in %d photos from %s, %d copies each", len(photos), folder, config.mix_repeat)
        train_set = with_mix(train_set, photos, config.mix_repeat, config.mix_smoothing)
    log.info("training on %d images, validating on %d", len(train_set), len(valid_set))
    model, details = fit(config, train_set, valid_set)
    if config.recalibrate:
        details["batch_norm_recalibration"] = recalibrate(model, train_set, valid_set)
    details.update(train_images=len(train_set), valid_images=len(valid_set), data=str(config.data),
                   class_prior=class_prior, **config.extra)
    info = save(model, config, details, calibration=train_set.images)
    log.info("saved %s: %s", config.out, json.dumps(details))
    return info
