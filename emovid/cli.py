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
                                default=argparse.SUPPRESS, help=f"analyse {meta['none_means']} ({f.name} None)")


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


def _add_report(sub) -> None:
    p = sub.add_parser("report", help="timeline plots, summary tables and index.html for a results folder",
                       description="Write OUT/_report/: a timeline PNG per video, summary.csv (per video and "
                                   "per track) and index.html (opens in a browser, no server).")
    p.add_argument("results", help="folder written by `emovid analyze`")
    p.add_argument("--smooth", type=_non_negative_float, default=REPORT_SMOOTH_S, metavar="SECONDS",
                   help=f"plot probabilities smoothed per track over this time constant "
                        f"(default {REPORT_SMOOTH_S:g}: as accurate as raw on our labelled test video, with "
                        f"4-7x fewer label flips; 0: raw)")


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
    from emovid.training.cli import add_parsers as add_training_parsers

    parser = argparse.ArgumentParser(prog="emovid", description="Emotion timelines from folders of videos and photos.")
    parser.add_argument("--version", action="version", version=f"emovid {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="show details and tracebacks")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_analyze(sub)
    add_training_parsers(sub)  # train, ensemble, soup, evaluate, tune
    _add_report(sub)
    _add_render(sub)
    return parser


def _run_analyze(args) -> int:
    from emovid.api import analyze, summarize
    from emovid.config import option_names

    options = {name: getattr(args, name) for name in option_names() if hasattr(args, name)}
    manifest = analyze(args.inputs, args.out, **options)  # -v is the global --verbose
    for row in manifest[manifest["status"].isin(["failed", "partial"])].itertuples():
        print(f"{row.status}: {row.video_id}: {row.error}", file=sys.stderr)
    print(f"{summarize(manifest)} -> {args.out}", file=sys.stderr)
    return EXIT_FAILED_VIDEOS if manifest["status"].isin(["failed", "partial"]).any() else 0


class Terminated(KeyboardInterrupt):
    """SIGTERM, turned into an exception so cleanup (temp files, lock, Ray) runs as for Ctrl-C.

    A KeyboardInterrupt: Ray's blocking calls (ray.wait, ray.get) let only that one out of a
    signal handler (any other became a SystemError), and re-raise it as a plain one, so
    :func:`main` also remembers which signal came.
    """


def _run_report(args) -> int:
    from emovid.report.page import build_report

    report = build_report(args.results, smooth=args.smooth or None)
    print(f"{report.videos} videos, {report.photos} photos, {report.failed} failed -> {report.index}", file=sys.stderr)
    return 0


def _run_render(args) -> int:
    from emovid.report.render import render

    done = render(args.results, videos=args.videos, out=args.out, bars=not args.no_bars,
                  progress=not args.no_progress, container=args.container)
    failed = [r for r in done if r.error]
    for r in failed:
        print(f"not rendered: {r.video_id}: {r.error}", file=sys.stderr)
    written = [r for r in done if not r.error]
    where = written[0].output.parent if len(written) == 1 else args.out or f"{args.results}/_render"
    print(f"{len(written)} rendered, {len(failed)} not -> {where}", file=sys.stderr)
    return EXIT_FAILED_VIDEOS if failed else 0


def _commands() -> dict:
    from emovid.training.cli import COMMANDS as TRAINING_COMMANDS

    return {"analyze": _run_analyze, "report": _run_report, "render": _run_render, **TRAINING_COMMANDS}


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
        return _commands()[args.command](args)
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
