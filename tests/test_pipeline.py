"""The per-video pipeline, run without Ray on real and generated videos."""

import cv2
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from emovid.run.pipeline import VideoTask
from emovid.store.schema import face_schema, read_metadata
from tests.helpers import face_video, shared_video, write_video


def run(analyzer, path, tmp_path, video_id="v.mp4"):
    out = tmp_path / f"{video_id}.parquet"
    return analyzer(VideoTask(str(path), video_id, str(out))), out


def test_real_video_rows_schema_and_metadata(analyzer, tmp_path):
    result, out = run(analyzer, shared_video("WolfgangLanger_Pexels.mp4"), tmp_path)
    assert result.status == "ok" and result.error is None
    assert result.frames_decoded == 472 and result.frames_sampled == 79  # 19.7 s at 4 fps
    table = pq.read_table(out)
    assert table.schema.equals(face_schema(analyzer.classifier.classes), check_metadata=False)
    df = table.to_pandas()
    assert len(df) == result.faces == 79  # one man, found in every sampled frame
    assert df["timestamp_s"].is_monotonic_increasing
    probs = df.filter(like="prob_").to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1, atol=1e-4)
    assert (df["confidence"].to_numpy() == probs.max(axis=1)).all()
    assert (df["w"] > 50).all() and (df["x"] >= 0).all()
    meta = read_metadata(table.schema)
    assert meta["settings"]["sampling_fps"] == 4.0 and meta["settings"]["classes"] == list(analyzer.classifier.classes)
    assert meta["model_name"] and meta["emovid_version"] and meta["settings_hash"] == analyzer.settings_hash
    assert meta["video"]["fps"] == pytest.approx(23.976, abs=1e-3)


def test_no_face_video_gives_null_face_rows(analyzer, tmp_path):
    result, out = run(analyzer, shared_video("no_face.mp4"), tmp_path)
    df = pq.read_table(out).to_pandas()
    assert result.status == "ok" and result.faces == 0
    assert len(df) == result.frames_sampled > 0
    assert df["emotion"].isna().all() and df["face_index"].isna().all() and df["prob_joy"].isna().all()


def test_face_then_no_face_mov(analyzer, tmp_path):
    result, out = run(analyzer, shared_video("face_noface.mov"), tmp_path)
    df = pq.read_table(out).to_pandas()
    seen = df.groupby("timestamp_s")["emotion"].apply(lambda s: s.notna().any()).to_numpy()
    assert seen[0] and not seen[-1]  # a face at the start, none at the end
    assert result.faces == int(seen.sum())


def test_generated_face_video_every_frame(tmp_path):
    from emovid.config import AnalyzeConfig
    from emovid.run.pipeline import VideoAnalyzer

    analyzer = VideoAnalyzer(AnalyzeConfig(fps=None), num_threads=1, batch_size=4)
    path = face_video(tmp_path / "face.mp4", n_frames=12)
    result, out = run(analyzer, path, tmp_path)
    df = pq.read_table(out).to_pandas()
    assert result.frames_sampled == result.frames_decoded == 12
    assert df["frame_index"].tolist() == list(range(12)) and result.faces == 12
    np.testing.assert_allclose(df["timestamp_s"], np.arange(12) / 12.0, atol=1e-3)


def test_truncated_video_is_partial_with_the_frames_that_decode(analyzer, tmp_path):
    data = shared_video("WolfgangLanger_Pexels.mp4").read_bytes()
    path = tmp_path / "cut.mp4"
    path.write_bytes(data[: len(data) // 2])
    result, out = run(analyzer, path, tmp_path)
    assert result.status == "partial" and "truncated" in result.error
    assert 0 < result.frames_decoded < 472
    assert pq.read_table(out).num_rows == result.frames_sampled


def test_synthetic_faceless_video(analyzer, tmp_path):
    result, out = run(analyzer, write_video(tmp_path / "s.mp4", 20, fps=10), tmp_path)
    assert result.status == "ok" and result.faces == 0
    assert pq.read_table(out).num_rows == result.frames_sampled == 8  # 2 s at 4 fps


def test_frame_progress_callback_counts_every_decoded_frame(tmp_path, monkeypatch):
    import time

    from emovid.config import AnalyzeConfig
    from emovid.run.pipeline import PROGRESS_EVERY, VideoAnalyzer

    reports = []
    analyzer = VideoAnalyzer(AnalyzeConfig(fps=2), num_threads=1, on_frames=reports.append)
    detect = analyzer.detector.detect

    def slow_detect(image):  # the decode thread runs far ahead of the analysis
        time.sleep(0.01)
        return detect(image)

    monkeypatch.setattr(analyzer.detector, "detect", slow_detect)
    result, _ = run(analyzer, shared_video("WolfgangLanger_Pexels.mp4"), tmp_path)
    assert sum(reports) == result.frames_decoded == 472
    # reported as the frames are analysed, not as they are decoded ahead: each report covers
    # PROGRESS_EVERY frames plus at most one sampling step (~12 frames at 2 fps)
    assert len(reports) >= 6 and all(PROGRESS_EVERY <= n < PROGRESS_EVERY + 12 for n in reports[:-1])


def test_rotated_phone_video_is_analysed_upright(analyzer, tmp_path):
    from tests.helpers import rotated_phone_video

    path, (height, width) = rotated_phone_video(tmp_path)
    result, out = run(analyzer, path, tmp_path)
    df = pq.read_table(out).to_pandas()
    assert result.status == "ok" and (result.height, result.width) == (height, width)
    assert result.faces == result.frames_sampled and (df["x"] + df["w"] <= width + 2).all()


def test_classifier_batch_is_larger_on_gpu_workers(caplog):
    from emovid.run import pipeline
    from emovid.config import AnalyzeConfig
    from emovid.classify.emotions import CPU_BATCH_SIZE, GPU_BATCH_SIZE

    assert pipeline.VideoAnalyzer(AnalyzeConfig()).batch_size == CPU_BATCH_SIZE  # this machine has no GPU
    assert pipeline.VideoAnalyzer(AnalyzeConfig(), batch_size=64).batch_size == 64
    # a worker Ray gave a GPU sizes itself for it; here onnxruntime has no CUDA, so it says it runs on the CPU
    on_gpu = pipeline.VideoAnalyzer(AnalyzeConfig(), use_gpu=True)
    assert "emotion classification runs on CPU" in caplog.text and not on_gpu.classifier.on_gpu
    assert on_gpu.batch_size == GPU_BATCH_SIZE and on_gpu.max_frames_per_chunk >= GPU_BATCH_SIZE


def test_inline_decoding_gives_the_same_rows(analyzer, tmp_path):
    overlapped, a = run(analyzer, shared_video("face_noface.mov"), tmp_path / "a")
    inline = analyzer(VideoTask(str(shared_video("face_noface.mov")), "v.mp4", str(tmp_path / "b.parquet")),
                      overlap_decode=False)
    assert inline.status == overlapped.status == "ok" and inline.faces == overlapped.faces > 0
    assert pq.read_table(tmp_path / "b.parquet").equals(pq.read_table(a))


@pytest.mark.parametrize("stage", ["detection", "classification"])
def test_an_error_in_a_stage_thread_fails_the_video_and_stops_every_thread(analyzer, tmp_path, monkeypatch, stage):
    """An exception in the detection or classifier thread reaches the worker as this video's
    failure (nothing written), and no stage thread outlives it: the next video runs as usual."""
    import threading

    calls = []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 5:
            raise RuntimeError(f"{stage} broke")
        return original(*args, **kwargs)

    owner, name = (analyzer.detector, "detect") if stage == "detection" else (analyzer.classifier, "predict_proba")
    original = getattr(owner, name)
    monkeypatch.setattr(owner, name, failing)
    result, out = run(analyzer, shared_video("WolfgangLanger_Pexels.mp4"), tmp_path, video_id="bad")
    assert result.status == "failed" and f"RuntimeError: {stage} broke" in result.error and not out.exists()
    # the decode, detection and classifier threads (all named emovid-...) are joined
    assert [t.name for t in threading.enumerate() if t.name.startswith("emovid-")] == []
    monkeypatch.undo()
    again, _ = run(analyzer, shared_video("face_noface.mov"), tmp_path, video_id="next")
    assert again.status == "ok" and again.faces > 0


def test_overlapped_stages_classify_small_batches_beside_detection(analyzer, tmp_path, monkeypatch):
    """With the stages overlapped, every EAGER_BATCH waiting faces go to the classifier's thread
    while detection goes on: the same rows as running the stages in turn."""
    import threading

    from emovid.run.pipeline import EAGER_BATCH

    path = shared_video("WolfgangLanger_Pexels.mp4")
    inline_out = tmp_path / "inline.parquet"
    inline = analyzer(VideoTask(str(path), "v", str(inline_out)), overlap_decode=False)

    batches, threads = [], set()
    classify, detect = analyzer.classifier.predict_proba, analyzer.detector.detect

    def recording(faces, batch_size):
        batches.append(len(faces))
        threads.add(("classify", threading.current_thread().name))
        return classify(faces, batch_size)

    def detecting(image):
        threads.add(("detect", threading.current_thread().name))
        return detect(image)

    monkeypatch.setattr(analyzer.classifier, "predict_proba", recording)
    monkeypatch.setattr(analyzer.detector, "detect", detecting)
    result, out = run(analyzer, path, tmp_path, video_id="v")
    assert result.status == "ok" and result.faces == inline.faces > 2 * EAGER_BATCH
    assert sum(batches) == result.faces and len(batches) >= 3  # one face per frame here
    assert batches[:-1] == [EAGER_BATCH] * (len(batches) - 1) and 0 < batches[-1] <= EAGER_BATCH
    main = threading.current_thread().name
    assert {kind for kind, name in threads if name != main} == {"classify", "detect"}  # each in a thread of its own
    assert pq.read_table(out).equals(pq.read_table(inline_out))  # batching never changes a row
    # early batches are classified, not written: the file is not split into small row groups
    assert pq.ParquetFile(out).metadata.num_row_groups == pq.ParquetFile(inline_out).metadata.num_row_groups == 1


def test_a_gpu_worker_fills_its_batch_instead_of_classifying_early(tmp_path, monkeypatch):
    """On a GPU worker the early small batch would fire first and the GPU would never see a
    batch of its size; the CPU-only bf16 rewrite stays off there too."""
    from emovid.classify import emotions
    from emovid.run import pipeline
    from emovid.config import AnalyzeConfig

    assert not emotions.cpu_bf16_wanted(["/physical_device:GPU:0"])
    # No GPU here: onnxruntime runs on the CPU, but the worker sizes itself as the GPU one Ray made it.
    analyzer = pipeline.VideoAnalyzer(AnalyzeConfig(fps=None), num_threads=1, use_gpu=True)
    assert analyzer.batch_size == analyzer.eager_batch == emotions.GPU_BATCH_SIZE
    batches = []
    classify = analyzer.classifier.predict_proba
    monkeypatch.setattr(analyzer.classifier, "predict_proba", lambda faces, batch_size: batches.append(len(faces))
                        or classify(faces, batch_size))
    result, _ = run(analyzer, shared_video("WolfgangLanger_Pexels.mp4"), tmp_path, video_id="v")
    assert result.status == "ok" and batches == [result.faces] == [472]  # one batch: all faces of the video


def test_row_groups_follow_frames_not_classifier_batches(tmp_path):
    """Small classifier batches still give one Parquet row group per chunk of frames, with the same rows."""
    from emovid.config import AnalyzeConfig
    from emovid.run.pipeline import MAX_FRAMES_PER_CHUNK, VideoAnalyzer

    capture = cv2.VideoCapture(str(shared_video("WolfgangLanger_Pexels.mp4")))
    path = write_video(tmp_path / "clip.mp4", [capture.read()[1] for _ in range(260)], fps=24)
    capture.release()
    tables = []
    for batch_size in (8, 256):  # 33 classifier calls vs 2; chunks of 128 vs 256 frames (a full batch)
        analyzer = VideoAnalyzer(AnalyzeConfig(fps=None), num_threads=1, batch_size=batch_size)
        result, out = run(analyzer, path, tmp_path / str(batch_size))
        assert result.status == "ok" and result.faces == 260
        assert analyzer.max_frames_per_chunk == max(MAX_FRAMES_PER_CHUNK, batch_size)
        assert pq.ParquetFile(out).metadata.num_row_groups == -(-260 // analyzer.max_frames_per_chunk)  # 3 vs 2
        tables.append(pq.read_table(out).to_pandas())
    # the same rows; probabilities up to float rounding (oneDNN picks kernels by batch size)
    pd.testing.assert_frame_equal(tables[0], tables[1], check_exact=False, atol=1e-5, rtol=0)


@pytest.mark.parametrize("width, height, depth", [(640, 360, 64), (1920, 1080, 10), (3840, 2160, 8), (0, 0, 64)])
def test_prefetch_depth_keeps_about_64_mb_of_frames(width, height, depth):
    from emovid.run.pipeline import prefetch_depth
    from emovid.media.video import VideoInfo

    info = VideoInfo(width=width, height=height, fps=25.0, frame_count=10, codec="h264")
    assert prefetch_depth(info) == depth


@pytest.mark.parametrize("overlap_decode", [True, False])
def test_a_failing_detector_fails_the_video_and_stops_the_decode_thread(analyzer, tmp_path, monkeypatch,
                                                                         overlap_decode):
    import threading

    calls = []

    def detect(image):
        calls.append(1)
        if len(calls) == 5:
            raise RuntimeError("detector broke")
        return type(analyzer.detector).detect(analyzer.detector, image)

    monkeypatch.setattr(analyzer.detector, "detect", detect)
    out = tmp_path / "v.parquet"
    result = analyzer(VideoTask(str(shared_video("WolfgangLanger_Pexels.mp4")), "v", str(out)), overlap_decode)
    assert result.status == "failed" and "detector broke" in result.error
    assert not out.exists() and len(calls) == 5
    assert not [t for t in threading.enumerate() if t.name == "emovid-decode"]
