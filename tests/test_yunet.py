import logging
import sys

import cv2
import numpy as np
import pytest

from emovid.assets import YUNET_NAME, bundled
from emovid.detect.faces import FaceDetector
from emovid.detect.yunet import OnnxYuNet, OpenCVYuNet, make_yunet
from tests.helpers import shared_video


def runners(score_threshold=0.7, nms_threshold=0.3, top_k=5000):
    path = bundled(YUNET_NAME)
    return (OnnxYuNet(path, score_threshold, nms_threshold, top_k),
            OpenCVYuNet(path, score_threshold, nms_threshold, top_k))


def by_score(rows):
    return rows[np.argsort(-rows[:, 14], kind="stable")]


def assert_same_faces(onnx_rows, opencv_rows):
    assert onnx_rows.shape == opencv_rows.shape
    np.testing.assert_allclose(by_score(onnx_rows), by_score(opencv_rows), atol=0.01)


def sample_frames(name, every, limit, max_side=320):
    cap = cv2.VideoCapture(str(shared_video(name)))
    frames, index = [], 0
    while len(frames) < limit:
        ok, frame = cap.read()
        if not ok:
            break
        if index % every == 0:
            scale = max_side / max(frame.shape[:2])
            frames.append(cv2.resize(frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA))
        index += 1
    cap.release()
    return frames


@pytest.mark.parametrize("score_threshold", [0.7, 0.3])
@pytest.mark.parametrize("width", [640, 333, 1000])  # padded to 32 differently; 333 is odd
def test_onnxruntime_finds_the_same_faces_as_opencv_in_a_group_photo(score_threshold, width):
    image = cv2.imread(str(shared_video("multi_face.jpg")))
    image = cv2.resize(image, (width, round(image.shape[0] * width / image.shape[1])), interpolation=cv2.INTER_AREA)
    onnx, opencv = runners(score_threshold)
    onnx_rows, opencv_rows = onnx.detect(image), opencv.detect(image)
    assert len(opencv_rows) >= 3  # real faces, so the comparison means something
    assert_same_faces(onnx_rows, opencv_rows)


def test_onnxruntime_matches_opencv_frame_by_frame_on_videos_with_and_without_faces():
    frames = sample_frames("WolfgangLanger_Pexels.mp4", 10, 48) + sample_frames("face_noface.mov", 15, 40)
    onnx, opencv = runners()
    counts = []
    for frame in frames:  # one runner across all sizes and frames: its reused input buffer must not leak
        onnx_rows, opencv_rows = onnx.detect(frame), opencv.detect(frame)
        assert_same_faces(onnx_rows, opencv_rows)
        counts.append(len(onnx_rows))
    assert 0 in counts and max(counts) >= 1


def test_padding_stays_zero_when_a_smaller_frame_follows_a_larger_one():
    """330 and 321 px wide frames share one padded width (352): the runner reuses its buffer."""
    image = cv2.imread(str(shared_video("multi_face.jpg")))
    first = cv2.resize(image, (330, round(image.shape[0] * 330 / image.shape[1])), interpolation=cv2.INTER_AREA)
    second = np.ascontiguousarray(first[:-5, 9:])  # faces now touch the right and bottom padding
    onnx, opencv = runners()
    onnx.detect(first)
    assert len(opencv.detect(second)) >= 3
    assert_same_faces(onnx.detect(second), opencv.detect(second))


def test_a_frame_that_is_not_three_channel_bgr_is_a_value_error():
    onnx, _ = runners()
    with pytest.raises(ValueError, match="BGR"):
        onnx.detect(np.zeros((64, 64), np.uint8))


def test_a_blank_frame_has_no_faces():
    onnx, opencv = runners()
    blank = np.full((180, 320, 3), 127, np.uint8)
    assert onnx.detect(blank).shape == opencv.detect(blank).shape == (0, 15)


def test_unknown_backend_is_a_value_error():
    with pytest.raises(ValueError, match="backend"):
        make_yunet(bundled(YUNET_NAME), 0.7, 0.3, 100, backend="tensorrt")


def test_auto_falls_back_to_opencv_when_onnxruntime_is_missing(monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes `import onnxruntime` raise ImportError
    with caplog.at_level(logging.WARNING, logger="emovid.detect.yunet"):
        detector = FaceDetector(backend="auto")
    assert detector.backend == "opencv"
    assert "onnxruntime cannot be imported" in caplog.text
    with pytest.raises(ImportError):
        FaceDetector(backend="onnxruntime")


def test_auto_prefers_onnxruntime():
    assert FaceDetector().backend == "onnxruntime"


def test_asking_for_a_gpu_without_cuda_runs_on_cpu_with_a_warning(caplog):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this machine's onnxruntime has CUDA")
    with caplog.at_level(logging.WARNING, logger="emovid.detect.yunet"):
        runner = OnnxYuNet(bundled(YUNET_NAME), 0.7, 0.3, 100, use_gpu=True)
    assert runner.providers == ("CPUExecutionProvider",)
    assert "runs on CPU" in caplog.text
    assert runner.detect(np.zeros((64, 64, 3), np.uint8)).shape == (0, 15)
