"""Photos vs video frames, per face, in one run: the same frames as a video and as JPEG files.

    python benchmarks/photos.py                 # the sample video's frames, x4 copies as photos
    python benchmarks/photos.py --copies 20     # more photos (4 copies: ~1,900 photos)

The bundled sample video (one face per frame, 640x360) is analysed at every frame, and its frames,
written as JPEGs (several copies each, as a folder of thousands of photos), are analysed as photos:
both in this process and on Ray with two workers. The table gives milliseconds per face and
faces per second, side by side; the photos' time includes JPEG decoding and one Parquet file per photo.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import cv2

import emovid

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "sample.mp4"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def write_photos(folder: Path, copies: int) -> int:
    cap = cv2.VideoCapture(str(SAMPLE))
    n = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        for c in range(copies):
            sub = folder / f"copy{c}"
            sub.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(sub / f"frame{n:05d}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, 92])
        n += 1
    cap.release()
    return n * copies


def timed(inputs, out: Path, **kw) -> tuple[float, int, float]:
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    manifest = emovid.analyze(inputs, out, progress=False, **kw)
    seconds = time.perf_counter() - started
    if not (manifest["status"] == "ok").all():
        raise SystemExit(f"not every input was analysed: {manifest['status'].value_counts().to_dict()}")
    return seconds, int(manifest["faces"].sum()), float(manifest["wall_s"].sum())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--copies", type=int, default=4, help="copies of each frame in the photo folder (default 4)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        photos = write_photos(root / "photos", args.copies)
        rows = []
        for where, kw in (("in process", {"in_process": True}), ("Ray, 2 workers", {"workers": 2})):
            for what, inputs, extra in (("video, every frame", [SAMPLE], {"every_frame": True}),
                                        (f"{photos} photos", [root / "photos"], {})):
                rows.append((where, what, *timed(inputs, root / "out", **kw, **extra)))
    print(f"CPU: {cpu_name()}, {len(os.sched_getaffinity(0))} cores. Wall: the whole call, start-up included; "
          f"worker: the inputs' own time (manifest wall_s), summed over workers\n")
    print("| where | input | faces | wall s | wall faces/s | worker ms per face |\n|---|---|---|---|---|---|")
    for where, what, seconds, faces, busy in rows:
        print(f"| {where} | {what} | {faces} | {seconds:.1f} | {faces / seconds:.0f} | {1000 * busy / faces:.2f} |")


if __name__ == "__main__":
    main()
