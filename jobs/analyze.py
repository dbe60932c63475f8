"""Ray job entry point for `emovid analyze`.

    ray job submit --address http://HEAD:8265 --working-dir . -- \
        python jobs/analyze.py /shared/videos --out /shared/results

Takes the same arguments as `emovid analyze`; inside a job `ray.init()` joins the cluster the
job was submitted to. `--smoke-test` analyses the bundled sample video into `--out`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the job's working_dir holds the package

from emovid.cli import main as emovid_main  # noqa: E402

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "sample.mp4"


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     add_help=False)
    parser.add_argument("--smoke-test", action="store_true", help="analyse the bundled sample video only")
    return parser.parse_known_args(argv)


def main(args: argparse.Namespace, rest: list[str]) -> int:
    if args.smoke_test:
        rest = [str(SAMPLE), "--workers", "1", *rest]
    return emovid_main(["analyze", "--no-progress", *rest])


if __name__ == "__main__":
    import ray

    ray.init()  # no address: joins the cluster this job was submitted to (or starts one locally)
    sys.exit(main(*parse_args(sys.argv[1:])))
