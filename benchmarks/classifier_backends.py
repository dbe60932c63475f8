"""The emotion CNN in onnxruntime vs TensorFlow on this machine: start-up and crops/s, side by side.

    python benchmarks/classifier_backends.py [--model emovid_fer7_v7] [--seconds 5] [--repeats 3]

Each figure comes from a fresh process per backend, the two backends taking turns, and is
the median of ``--repeats``:
 - start-up: process start to the first prediction (imports, model load, first batch), and
   the resident memory then;
 - crops/s: batches of 256 real-looking crops (FER+ Valid when ../shared is there, else
   noise) through ``predict_proba``, mirror averaging included, on ``--threads`` threads.
TensorFlow uses its oneDNN bf16 rewrite where the CPU has native bf16 (the table says).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
FERPLUS_VALID = ROOT.parent / "shared" / "data" / "ferplus" / "FER2013Valid"


def _child(backend: str, model: str, seconds: float, threads: int, started: float) -> dict:
    import resource

    import numpy as np

    from emovid.classify.emotions import EmotionClassifier, configure_tensorflow

    if backend == "tensorflow":
        configure_tensorflow(threads)
    clf = EmotionClassifier.load(model, backend=backend, num_threads=threads)
    clf.predict_proba(np.zeros((1, 48, 48), np.uint8))
    startup = time.time() - started
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if FERPLUS_VALID.is_dir():
        import cv2

        files = sorted(FERPLUS_VALID.glob("*.png"))[:256]
        crops = np.stack([cv2.imread(str(f), cv2.IMREAD_GRAYSCALE) for f in files])
    else:
        crops = np.random.default_rng(0).integers(0, 256, (256, 48, 48), np.uint8)
    clf.predict_proba(crops)  # warm-up
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        n += len(clf.predict_proba(crops, batch_size=256))
    return {"startup_s": startup, "rss_mib": rss_mib, "crops_per_s": n / (time.perf_counter() - t0), "bf16": clf.bf16}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="emovid_fer7_v7")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--_child", help=argparse.SUPPRESS)
    parser.add_argument("--_started", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._child:
        print(json.dumps(_child(args._child, args.model, args.seconds, args.threads, args._started)))
        return 0
    runs: dict[str, list[dict]] = {"onnxruntime": [], "tensorflow": []}
    for _ in range(args.repeats):
        for backend in runs:
            out = subprocess.run([sys.executable, __file__, f"--_child={backend}", f"--_started={time.time()}",
                                  "--model", args.model, "--seconds", str(args.seconds), "--threads", str(args.threads)],
                                 capture_output=True, text=True, check=True, timeout=600)
            runs[backend].append(json.loads(out.stdout.strip().splitlines()[-1]))
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    print(f"CPU: {cpu}, {os.cpu_count()} cores; {args.threads} threads; model {args.model}; median of {args.repeats}\n")
    print("| backend | start-up to first prediction | RSS then | crops/s (batch 256) | bf16 |\n|---|---|---|---|---|")
    med = {b: {k: statistics.median(r[k] for r in rs) for k in ("startup_s", "rss_mib", "crops_per_s")}
           for b, rs in runs.items()}
    for backend, m in med.items():
        print(f"| {backend} | {m['startup_s']:.2f} s | {m['rss_mib']:.0f} MiB | {m['crops_per_s']:,.0f} | "
              f"{'on' if runs[backend][0]['bf16'] else 'off'} |")
    ort, tf = med["onnxruntime"], med["tensorflow"]
    print(f"\nonnxruntime / TensorFlow: crops/s {ort['crops_per_s'] / tf['crops_per_s']:.2f}x, "
          f"start-up {tf['startup_s'] / ort['startup_s']:.1f}x faster")
    return 0


if __name__ == "__main__":
    sys.exit(main())
