"""One long video: 1 worker vs 2 workers, unsplit vs split into time segments.

    python benchmarks/long_video.py [--loops 60] [--segment-s 300] [--every-frame]

Loops the sample video into one long file (60 loops = 19.7 minutes) and runs `emovid analyze` on
it in fresh processes, as a user would. Without segments a second worker has nothing to do; with
them the video's segments run in parallel. Also checks that the split run wrote the same rows.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench import long_video  # noqa: E402


def run(video: Path, out: Path, workers: int, segment_s: float | None, every_frame: bool) -> tuple[float, str]:
    code = ("import time, emovid; t = time.perf_counter(); "
            f"m = emovid.analyze({str(video)!r}, {str(out)!r}, workers={workers}, segment_s={segment_s!r}, "
            f"every_frame={every_frame}, progress=False); "
            "print(time.perf_counter() - t, m.status[0], m.segments[0], m.frames_decoded[0])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    wall, status, segments, frames = proc.stdout.strip().splitlines()[-1].split()
    return float(wall), f"{status}, {segments} segment(s), {frames} frames"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", type=Path, default=ROOT / "samples" / "sample.mp4")
    parser.add_argument("--loops", type=int, default=60)
    parser.add_argument("--segment-s", type=float, default=300.0)
    parser.add_argument("--every-frame", action="store_true")
    args = parser.parse_args()
    import pandas as pd

    import emovid

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        video = long_video(args.video, args.loops, tmp)
        import cv2

        cap = cv2.VideoCapture(str(video))
        minutes = cap.get(cv2.CAP_PROP_FRAME_COUNT) / cap.get(cv2.CAP_PROP_FPS) / 60
        cap.release()
        runs = [("1 worker, one piece", 1, None), ("2 workers, one piece", 2, None),
                (f"2 workers, {args.segment_s:g} s segments", 2, args.segment_s)]
        walls = {}
        print(f"\n{video.name}: {minutes:.1f} min, {'every frame' if args.every_frame else 'default 4 fps'}\n")
        print("| run | wall s (incl. Ray start) | video-s/s | speed-up | result |\n|---|---|---|---|---|")
        for i, (name, workers, segment_s) in enumerate(runs):
            wall, what = run(video, tmp / f"out{i}", workers, segment_s, args.every_frame)
            walls[i] = wall
            print(f"| {name} | {wall:.1f} | {minutes * 60 / wall:.0f} | {walls[0] / wall:.2f}x | {what} |", flush=True)
        same = emovid.read_results(tmp / "out0").equals(emovid.read_results(tmp / "out2"))
        close = same or pd.testing.assert_frame_equal(
            emovid.read_results(tmp / "out0"), emovid.read_results(tmp / "out2"), check_exact=False, atol=1e-3) is None
        print(f"\nsplit rows == unsplit rows: {'identical' if same else 'equal within 1e-3' if close else 'DIFFERENT'}")


if __name__ == "__main__":
    main()
