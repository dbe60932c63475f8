"""One long video on one machine: in one piece vs split into segments, at several lengths (the
crossover), through `emovid analyze` in fresh processes as a user runs it.

    python benchmarks/long_video.py [--loops 4 16 32] [--every-frame] [--check-rows]

Loops the sample video into one file per length (its H.264 packets copied with PyAV when
installed). "One piece": `segment_s=0`, one worker, its stages overlapped over the free CPUs.
"Split": `segment_s` = a third of the video and the default rule, so the run splits into as many
segments as workers would otherwise idle (on 2 CPUs: 2). Both include starting Ray (the same in
each); the split run also starts a second worker and seeks back for each segment's pre-roll.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench import cpu_name, decode_fps, long_video  # noqa: E402


def run(video: Path, out: Path, segment_s: float, every_frame: bool) -> tuple[float, int]:
    code = ("import time, emovid; t = time.perf_counter(); "
            f"m = emovid.analyze({str(video)!r}, {str(out)!r}, segment_s={segment_s!r}, "
            f"every_frame={every_frame}, progress=False); "
            "print(time.perf_counter() - t, m.status[0], m.segments[0])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    wall, status, segments = proc.stdout.strip().splitlines()[-1].split()
    if status != "ok":
        raise RuntimeError(f"{video.name}: {status}")
    return float(wall), int(float(segments)) if segments not in ("nan", "<NA>", "None") else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", type=Path, default=ROOT / "samples" / "sample.mp4")
    parser.add_argument("--loops", type=int, nargs="+", default=[4, 16, 32])
    parser.add_argument("--every-frame", action="store_true")
    parser.add_argument("--check-rows", action="store_true", help="also check the split rows equal the unsplit rows")
    args = parser.parse_args()
    import cv2

    print(f"\none long video, one piece vs split, {'every frame' if args.every_frame else 'default 4 fps'} -- "
          f"{cpu_name()}\n")
    print("| video | decode alone (1 thread) | one piece: wall s / video-s/s | split: segments, wall s / video-s/s "
          "| split vs one piece |\n|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for loops in args.loops:
            video = long_video(args.video, loops, tmp)
            cap = cv2.VideoCapture(str(video))
            seconds = cap.get(cv2.CAP_PROP_FRAME_COUNT) / cap.get(cv2.CAP_PROP_FPS)
            cap.release()
            fps, _ = decode_fps(video)
            decode_rate = fps / (cv2.VideoCapture(str(video)).get(cv2.CAP_PROP_FPS))
            whole, _ = run(video, tmp / f"whole{loops}", 0, args.every_frame)
            split, segments = run(video, tmp / f"split{loops}", seconds / 3, args.every_frame)
            print(f"| {seconds / 60:.1f} min | {decode_rate:.0f} video-s/s | {whole:.1f} s / {seconds / whole:.1f} | "
                  f"{segments}, {split:.1f} s / {seconds / split:.1f} | {whole / split:.2f}x |", flush=True)
            if args.check_rows:
                import emovid

                same = emovid.read_results(tmp / f"whole{loops}").equals(emovid.read_results(tmp / f"split{loops}"))
                print(f"|  | split rows == unsplit rows: {same} | | | |")
            video.unlink()
    print(f"\n{os.cpu_count()} CPUs; each wall time includes starting Ray in a fresh process.")


if __name__ == "__main__":
    main()
