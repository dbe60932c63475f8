"""Driver memory and throughput on folders of many tiny videos (bounded in-flight work).

    python benchmarks/many_videos.py [--counts 100 1000]

Each count runs `emovid analyze` in a fresh process over that many generated 5-frame clips and
reports the driver's peak RSS: it should not grow with the number of videos.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np


def make_folder(root: Path, count: int) -> Path:
    folder = root / f"n{count}"
    folder.mkdir()
    frames = [np.full((48, 64, 3), 40 * i, np.uint8) for i in range(5)]
    for i in range(count):
        sub = folder / f"sub{i % 10}"
        sub.mkdir(exist_ok=True)
        writer = cv2.VideoWriter(str(sub / f"v{i}.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 5, (64, 48))
        for frame in frames:
            writer.write(frame)
        writer.release()
    return folder


def run(folder: Path, out: Path) -> tuple[float, float, int]:
    code = ("import resource, time, emovid; t = time.perf_counter(); "
            f"m = emovid.analyze({str(folder)!r}, {str(out)!r}, progress=False); "
            "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, (m.status == 'ok').sum())")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    wall, rss, ok = proc.stdout.strip().splitlines()[-1].split()
    return float(wall), float(rss), int(ok)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", type=int, nargs="+", default=[100, 1000])
    args = parser.parse_args()
    print("| videos | ok | wall s | videos/s | driver peak RSS |\n|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for count in args.counts:
            folder = make_folder(Path(tmp), count)
            wall, rss, ok = run(folder, Path(tmp) / f"out{count}")
            print(f"| {count} | {ok} | {wall:.1f} | {count / wall:.0f} | {rss:.0f} MB |", flush=True)


if __name__ == "__main__":
    main()
