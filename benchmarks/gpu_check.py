"""Proves on a GPU machine that face detection and emotion classification run on the GPU, and
prints crops/s and frames/s on the GPU next to the same machine's CPU.

    pip install -e ".[gpu]" && python benchmarks/gpu_check.py [--video samples/sample.mp4] [--seconds 8]

Each side runs in its own process, set up as a Ray worker with and without a GPU (the CPU side
also with ``CUDA_VISIBLE_DEVICES=""``, so it cannot reach the GPU), and measures, for about ``--seconds`` each:
the classifier alone (batches of 1024 crops on the GPU, 256 on the CPU), the detector alone on
the video's frames, and one worker's whole pipeline on every frame of the video. With the
defaults it takes 2-3 minutes.

Exit code: 0 both run on the GPU; 1 one of them ran on the CPU (the reason is printed);
2 no NVIDIA GPU is visible (nvidia-smi).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _timed(step, seconds: float) -> tuple[int, float]:
    """Run ``step()`` (returns items done) repeatedly for about ``seconds``: (items, elapsed)."""
    step()  # warm-up: kernels, cuDNN algorithm choice, allocator growth
    items, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        items += step()
    return items, elapsed


def measure(video: Path, seconds: float, use_gpu: bool) -> dict:
    """This process's figures, sized and placed as a Ray worker with (or without) a GPU."""
    import cv2
    import numpy as np

    from emovid.config import AnalyzeConfig
    from emovid.run.pipeline import VideoAnalyzer, VideoTask

    analyzer = VideoAnalyzer(AnalyzeConfig(fps=None), num_threads=os.cpu_count(), use_gpu=use_gpu)
    classifier, detector = analyzer.classifier, analyzer.detector
    frames = []
    cap = cv2.VideoCapture(str(video))
    while len(frames) < 300 and (ok_frame := cap.read())[0]:
        frames.append(ok_frame[1])
    cap.release()
    batch = analyzer.batch_size
    crops = np.random.default_rng(0).integers(0, 256, (batch, classifier.input_size, classifier.input_size), np.uint8)
    crops_done, crops_s = _timed(lambda: len(classifier.predict_proba(crops, batch_size=batch)), seconds)
    index = iter(range(10**9))
    frames_done, frames_s = _timed(lambda: len([detector.detect(frames[next(index) % len(frames)])]), seconds)
    figures = {"classifier_backend": classifier.backend, "classifier_on_gpu": classifier.on_gpu,
               "classifier_providers": list(getattr(classifier._network, "providers", ())),
               "bf16_rewrite": classifier.bf16, "classifier_batch": batch, "classifier_crops_per_s": crops_done / crops_s,
               "detector_backend": detector.backend, "detector_on_gpu": detector.on_gpu,
               "detector_frames_per_s": frames_done / frames_s}
    with tempfile.TemporaryDirectory() as tmp:
        task = VideoTask(str(video), video.name, str(Path(tmp) / "out.parquet"))
        analyzer(task)  # warm-up
        start = time.perf_counter()
        result = analyzer(task)
        figures["pipeline_frames_per_s"] = result.frames_decoded / (time.perf_counter() - start)
        figures["pipeline_status"] = result.status
    return figures


def _gpu_name() -> str | None:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    names = [line.strip() for line in out.stdout.splitlines() if line.strip()]
    return ", ".join(names) if out.returncode == 0 and names else None


def _cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _side(device: str, video: Path, seconds: float) -> dict:
    env = dict(os.environ)
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    run = subprocess.run([sys.executable, __file__, f"--_measure={device}", "--video", str(video), "--seconds", str(seconds)],
                         capture_output=True, text=True, env=env, timeout=600)
    if run.returncode != 0:
        raise SystemExit(f"the {device} measurement failed:\n{run.stderr[-4000:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def verdict(gpu: dict) -> list[str]:
    """Why the GPU side did not run on the GPU (empty: it did)."""
    problems = []
    if not gpu["classifier_on_gpu"]:
        problems.append(f"the classifier ran on the CPU ({gpu['classifier_backend']} {gpu['classifier_providers']}): "
                        f"install onnxruntime-gpu, and only it: pip uninstall -y onnxruntime && pip install -e '.[gpu]'")
    if gpu["bf16_rewrite"]:
        problems.append("the CPU bf16 rewrite is on in a GPU process")
    if not gpu["detector_on_gpu"]:
        problems.append(f"face detection ran on the CPU ({gpu['detector_backend']}): install onnxruntime-gpu as above")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", type=Path, default=ROOT / "samples" / "sample.mp4")
    parser.add_argument("--seconds", type=float, default=8.0, help="time per measurement (default 8)")
    parser.add_argument("--_measure", choices=("cpu", "gpu"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._measure:
        print(json.dumps(measure(args.video, args.seconds, use_gpu=args._measure == "gpu")))
        return 0
    started = time.perf_counter()
    gpu_name = _gpu_name()
    if gpu_name is None:
        print("no NVIDIA GPU visible (nvidia-smi found none): run this on a GPU machine with its driver installed")
        return 2
    gpu = _side("gpu", args.video, args.seconds)
    cpu = _side("cpu", args.video, args.seconds)
    print(f"machine: {_cpu_name()}, {os.cpu_count()} CPUs, {gpu_name}")
    print(f"video: {args.video.name}\n")
    print("| stage | GPU | CPU (all cores) | GPU / CPU |\n|---|---|---|---|")
    for key, label in (("classifier_crops_per_s", f"classifier, crops/s (batch {gpu['classifier_batch']} vs "
                                                   f"{cpu['classifier_batch']})"),
                       ("detector_frames_per_s", "face detection, frames/s"),
                       ("pipeline_frames_per_s", "one worker end to end, every frame, frames/s")):
        print(f"| {label} | {gpu[key]:,.0f} | {cpu[key]:,.0f} | {gpu[key] / cpu[key]:.1f}x |")
    print(f"\nGPU side: classifier on {gpu['classifier_backend']} {gpu['classifier_providers']}, detector on the GPU: "
          f"{gpu['detector_on_gpu']}, bf16 rewrite {'on' if gpu['bf16_rewrite'] else 'off'}; CPU side: classifier on "
          f"{cpu['classifier_backend']}, bf16 rewrite {'on' if cpu['bf16_rewrite'] else 'off'}. "
          f"{time.perf_counter() - started:.0f} s in all.")
    problems = verdict(gpu)
    for problem in problems:
        print(f"NOT ON THE GPU: {problem}")
    if not problems:
        print("OK: detection and classification run on the GPU")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
