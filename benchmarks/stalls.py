"""The quiet stretches of a healthy read, which size ``--stall-timeout``.

    python benchmarks/stalls.py [--seconds 10] [--fps 4]

The Ray driver fails an input whose worker reports no reading progress for ``--stall-timeout``
seconds (workers report every 64 decoded frames). A healthy read must never come near it. This
encodes 4K clips with a 10 s keyframe interval (H.264 and 10-bit HEVC, with imageio-ffmpeg's
FFmpeg) and runs the real per-video pipeline on each, whole and as a segment that starts just
before the next keyframe (a seek decodes the whole keyframe interval inside one C call), and
prints the longest time between two progress reports, from the start to the first one and from
the last one to the end of reading.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from photos import cpu_name  # noqa: E402

CLIPS = {"H.264": ["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p"],
         "HEVC 10-bit": ["-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error",
                         "-pix_fmt", "yuv420p10le"]}


def encode(folder: Path, name: str, codec: list[str], seconds: float) -> Path:
    import imageio_ffmpeg

    path = folder / f"{name.replace(' ', '_')}.mp4"
    if not path.exists():
        subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "lavfi",
                        "-i", "testsrc2=size=3840x2160:rate=30", "-t", str(seconds), *codec, "-g", "300", str(path)],
                       check=True)
    return path


class GapRecorder:
    """Stands in for the Ray worker's progress reports: records when each one comes."""

    def __init__(self) -> None:
        self.times = [time.perf_counter()]

    def __call__(self, n: int) -> None:
        self.times.append(time.perf_counter())

    def longest(self) -> float:
        return max(b - a for a, b in zip(self.times, self.times[1:]))


def longest_gap(path: Path, fps: float | None, segment) -> tuple[float, int]:
    from emovid.config import AnalyzeConfig
    from emovid.run.pipeline import VideoAnalyzer, analyze_video
    from emovid.run.tasks import VideoTask

    analyzer = VideoAnalyzer(AnalyzeConfig(fps=fps), num_threads=len(os.sched_getaffinity(0)))
    gaps = GapRecorder()
    analyzer.frames_read = gaps  # the hooks the Ray worker reports through
    analyzer.reading_done = lambda: gaps(0)
    with tempfile.TemporaryDirectory() as out:
        result = analyze_video(VideoTask(str(path), path.name, f"{out}/x.parquet", segment=segment), analyzer)
    return gaps.longest(), result.frames_decoded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each 4K clip")
    parser.add_argument("--fps", type=float, default=4.0, help="sampling rate of the pipeline")
    args = parser.parse_args()
    from emovid.config import DEFAULT_STALL_TIMEOUT_S
    from emovid.media.time_segments import Segment

    folder = Path(tempfile.gettempdir()) / "emovid-stall-bench"
    folder.mkdir(exist_ok=True)
    print(f"CPU: {cpu_name()}, {len(os.sched_getaffinity(0))} cores; 4K clips of {args.seconds:g} s, keyframes every "
          f"10 s; pipeline at {args.fps:g} fps; --stall-timeout default {DEFAULT_STALL_TIMEOUT_S:g} s\n")
    print("| clip | read | frames | longest quiet stretch (s) | share of the default timeout |")
    print("|---|---|---|---|---|")
    for name, codec in CLIPS.items():
        path = encode(folder, name, codec, args.seconds)
        # a last segment from 0.5 s before the end: its seek decodes the keyframe interval in one call
        late = Segment(1, 2, args.seconds - 0.5, math.inf)
        for label, segment in (("whole", None), (f"segment from {late.start_s:.1f} s", late)):
            gap, frames = longest_gap(path, args.fps, segment)
            print(f"| 4K {name} | {label} | {frames} | {gap:.2f} | {gap / DEFAULT_STALL_TIMEOUT_S:.1%} |")


if __name__ == "__main__":
    main()
