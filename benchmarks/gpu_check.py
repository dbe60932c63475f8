"""Proves on a GPU machine that face detection and emotion classification run on the GPU, and
prints crops/s and frames/s on the GPU next to the same machine's CPU.

    pip install -e ".[gpu]" && python benchmarks/gpu_check.py [--video samples/sample.mp4] [--seconds 8]

Each side runs in its own process (the CPU side with ``CUDA_VISIBLE_DEVICES=""``, so neither
TensorFlow nor onnxruntime can reach the GPU there) and measures, for about ``--seconds`` each:
the classifier alone (batches of 1024 crops on the GPU, 256 on the CPU), the detector alone on
the video's frames, and one worker's whole pipeline on every frame of the video. With the
defaults it takes 2-3 minutes.

Exit code: 0 both run on the GPU; 1 one of them ran on the CPU (the reason is printed);
2 no GPU is visible to TensorFlow.
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


def measure(video: Path, seconds: float) -> dict:
    """This process's figures: on the GPU if one is visible, else on the CPU."""
    import cv2
    import numpy as np

    from emovid.config import AnalyzeConfig
    from emovid.emotions import CPU_BATCH_SIZE, GPU_BATCH_SIZE, configure_tensorflow
    from emovid.pipeline import VideoAnalyzer, VideoTask

    gpus = configure_tensorflow(os.cpu_count())
    analyzer = VideoAnalyzer(AnalyzeConfig(fps=None), num_threads=os.cpu_count())
    frames = []
    cap = cv2.VideoCapture(str(video))
    while len(frames) < 300 and (ok_frame := cap.read())[0]:
        frames.append(ok_frame[1])
    cap.release()
    batch = GPU_BATCH_SIZE if gpus else CPU_BATCH_SIZE
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, (batch, analyzer.classifier.input_size, analyzer.classifier.input_size), np.uint8)
    crops_done, crops_s = _timed(lambda: len(analyzer.classifier.predict_proba(crops, batch_size=batch)), seconds)
    figures = {"tensorflow_gpus": gpus, "classifier_batch": batch, "classifier_crops_per_s": crops_done / crops_s}
    import tensorflow as tf

    if gpus:
        figures["classifier_gpu_peak_mib"] = tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20
    figures["bf16_rewrite"] = bool(tf.config.optimizer.get_experimental_options().get(
        "auto_mixed_precision_onednn_bfloat16", False))
    detector = analyzer.detector
    figures["detector_backend"] = detector.backend
    figures["detector_providers"] = list(getattr(detector._net, "providers", ()))
    index = iter(range(10**9))
    figures["detector_frames_per_s"] = (lambda n, s: n / s)(*_timed(
        lambda: len([detector.detect(frames[next(index) % len(frames)])]), seconds))
    with tempfile.TemporaryDirectory() as tmp:
        task = VideoTask(str(video), video.name, str(Path(tmp) / "out.parquet"))
        analyzer(task)  # warm-up
        start = time.perf_counter()
        result = analyzer(task)
        figures["pipeline_frames_per_s"] = result.frames_decoded / (time.perf_counter() - start)
        figures["pipeline_status"] = result.status
    return figures


def _side(device: str, video: Path, seconds: float) -> dict:
    env = dict(os.environ)
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    run = subprocess.run([sys.executable, __file__, "--_measure", "--video", str(video), "--seconds", str(seconds)],
                         capture_output=True, text=True, env=env, timeout=600)
    if run.returncode != 0:
        raise SystemExit(f"the {device} measurement failed:\n{run.stderr[-4000:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def verdict(gpu: dict) -> list[str]:
    """Why the GPU side did not run on the GPU (empty: it did)."""
    problems = []
    if not gpu.get("classifier_gpu_peak_mib"):
        problems.append("the classifier allocated no GPU memory: TensorFlow ran it on the CPU")
    if gpu.get("bf16_rewrite"):
        problems.append("the CPU bf16 rewrite is on in a GPU process")
    if gpu["detector_backend"] != "onnxruntime" or "CUDAExecutionProvider" not in gpu["detector_providers"][:1]:
        problems.append(f"face detection ran on {gpu['detector_backend']} {gpu['detector_providers'] or ''}: "
                        f"install onnxruntime-gpu (pip install -e '.[gpu]'), and only it")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", type=Path, default=ROOT / "samples" / "sample.mp4")
    parser.add_argument("--seconds", type=float, default=8.0, help="time per measurement (default 8)")
    parser.add_argument("--_measure", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._measure:
        print(json.dumps(measure(args.video, args.seconds)))
        return 0
    started = time.perf_counter()
    gpu = _side("gpu", args.video, args.seconds)
    if not gpu["tensorflow_gpus"]:
        print("no GPU visible to TensorFlow: install the GPU build (pip install -e '.[gpu]') on a machine with "
              "an NVIDIA driver, and check nvidia-smi")
        return 2
    cpu = _side("cpu", args.video, args.seconds)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, GPU {gpu['tensorflow_gpus']}")
    print(f"video: {args.video.name}\n")
    print("| stage | GPU | CPU (all cores) | GPU / CPU |\n|---|---|---|---|")
    for key, label in (("classifier_crops_per_s", f"classifier, crops/s (batch {gpu['classifier_batch']} vs "
                                                   f"{cpu['classifier_batch']})"),
                       ("detector_frames_per_s", "face detection, frames/s"),
                       ("pipeline_frames_per_s", "one worker end to end, every frame, frames/s")):
        print(f"| {label} | {gpu[key]:,.0f} | {cpu[key]:,.0f} | {gpu[key] / cpu[key]:.1f}x |")
    print(f"\nGPU side: detector providers {gpu['detector_providers']}, classifier peak GPU memory "
          f"{gpu.get('classifier_gpu_peak_mib', 0):.0f} MiB, bf16 rewrite {'on' if gpu['bf16_rewrite'] else 'off'}; "
          f"CPU side: bf16 rewrite {'on' if cpu['bf16_rewrite'] else 'off'}. {time.perf_counter() - started:.0f} s in all.")
    problems = verdict(gpu)
    for problem in problems:
        print(f"NOT ON THE GPU: {problem}")
    if not problems:
        print("OK: detection and classification run on the GPU")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
