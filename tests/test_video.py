import os

import cv2
import numpy as np
import pytest

from emovid.errors import VideoOpenError
from emovid.media.video import VideoReader
from tests.helpers import rotated_phone_video, shared_video, write_video


def test_timestamps_come_from_the_container_and_increase():
    path = shared_video("WolfgangLanger_Pexels.mp4")
    with VideoReader(path) as reader:
        frames = [(f.index, f.timestamp_s) for f in reader.frames()]
        fps = reader.info.fps
    assert len(frames) == 472 and reader.frames_decoded == 472
    times = np.array([t for _, t in frames])
    assert times[0] == 0.0 and (np.diff(times) > 0).all()
    np.testing.assert_allclose(times, np.arange(472) / fps, atol=1e-3)  # constant-rate file: pts == i / fps


@pytest.mark.parametrize("sample_fps", [1.0, 4.0, 10.0])
def test_sampling_rate_is_honoured(sample_fps):
    path = shared_video("WolfgangLanger_Pexels.mp4")  # 19.7 s at 23.98 fps
    with VideoReader(path, sample_fps) as reader:
        times = np.array([f.timestamp_s for f in reader.frames()])
    expected = int(np.floor(times[-1] * sample_fps + 1e-6)) + 1
    assert abs(len(times) - 19.7 * sample_fps) <= 1.5
    assert len(times) == expected
    gaps = np.diff(times)
    assert gaps.min() >= 1 / sample_fps - 1 / 23.976 - 1e-6
    assert gaps.max() <= 1 / sample_fps + 1 / 23.976 + 1e-6


def test_sample_rate_above_video_rate_keeps_every_frame(tmp_path):
    path = write_video(tmp_path / "v.mp4", 8, fps=10)
    with VideoReader(path, 100.0) as reader:
        assert len(list(reader.frames())) == 8


def test_hevc_mov_decodes():
    with VideoReader(shared_video("face_noface.mov"), 2.0) as reader:
        frames = list(reader.frames())
        assert reader.info.codec.lower() == "hevc"
    assert frames and frames[0].image.shape == (540, 960, 3)


def _bad_inputs(tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "text.mp4").write_text("this is not a video\n" * 50)
    (tmp_path / "dir.mp4").mkdir()
    os.symlink(tmp_path / "missing.mp4", tmp_path / "broken.mp4")
    cv2.imwrite(str(tmp_path / "photo.jpg"), np.zeros((32, 32, 3), np.uint8))
    (tmp_path / "photo.jpg").rename(tmp_path / "photo.mp4")
    return {
        "empty.mp4": "empty file",
        "text.mp4": "not a video",
        "dir.mp4": "directory",
        "broken.mp4": "broken symbolic link",
        "absent.mp4": "not found",
        "photo.mp4": "JPEG image",
    }


def test_bad_inputs_raise_clear_errors(tmp_path):
    for name, message in _bad_inputs(tmp_path).items():
        with pytest.raises(VideoOpenError, match=message):
            with VideoReader(tmp_path / name):
                pass


def test_unreadable_file(tmp_path):
    path = write_video(tmp_path / "locked.mp4", 3)
    os.chmod(path, 0)
    try:
        if os.access(path, os.R_OK):
            pytest.skip("running as root: permissions do not stop reading")
        with pytest.raises(VideoOpenError, match="permission denied"):
            with VideoReader(path):
                pass
    finally:
        os.chmod(path, 0o644)


def test_truncated_video_reports_truncation(tmp_path):
    source = shared_video("WolfgangLanger_Pexels.mp4").read_bytes()
    path = tmp_path / "cut.mp4"
    path.write_bytes(source[: len(source) // 2])
    try:
        with VideoReader(path) as reader:
            n = sum(1 for _ in reader.frames())
    except VideoOpenError:
        pytest.skip("this FFmpeg build cannot open an mp4 cut before its index")
    assert 0 < n < 472
    assert "truncated" in reader.truncation()


@pytest.mark.parametrize("bad", [0, -1.0, float("nan")])
def test_sample_fps_must_be_positive(bad, tmp_path):
    with pytest.raises(ValueError, match="sample_fps"):
        VideoReader(tmp_path / "x.mp4", bad)


def test_frames_outside_with_block_is_an_error(tmp_path):
    reader = VideoReader(write_video(tmp_path / "v.mp4", 3))
    with pytest.raises(RuntimeError):
        next(reader.frames())


def test_capture_released_when_generator_stops_early(tmp_path):
    path = write_video(tmp_path / "v.mp4", 20)
    with VideoReader(path) as reader:
        next(reader.frames())
    assert reader._cap is None


def test_prefetched_yields_everything_in_order_and_stops_cleanly(tmp_path):
    from emovid.media.prefetch import Prefetched

    path = write_video(tmp_path / "v.mp4", 30)
    with VideoReader(path) as reader:
        indices = [f.index for f in Prefetched(reader.frames(), depth=2)]
    assert indices == list(range(30))
    with VideoReader(path) as reader:
        stream = Prefetched(reader.frames(), depth=2)
        first = [next(stream).index for _ in range(3)]
        stream.close()  # consumer stops early: the decode thread ends, nothing hangs
    assert first == [0, 1, 2]


def test_prefetched_passes_errors_to_the_consumer():
    from emovid.media.prefetch import Prefetched

    def broken():
        yield 1
        raise OSError("disk gone")

    stream = Prefetched(broken())
    assert next(stream) == 1
    with pytest.raises(OSError, match="disk gone"):
        next(stream)


def test_prefetched_takes_any_iterator_and_a_positive_depth():
    from emovid.media.prefetch import Prefetched

    assert list(Prefetched(iter([1, 2, 3]))) == [1, 2, 3]  # any iterator, not only generators
    with pytest.raises(ValueError, match="depth"):
        Prefetched(iter([]), depth=0)


def test_avi_with_zeroed_frame_rate_still_gets_increasing_timestamps(tmp_path):
    import struct

    path = tmp_path / "z.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for i in range(10):
        writer.write(np.full((48, 64, 3), i * 20, np.uint8))
    writer.release()
    data = bytearray(path.read_bytes())
    strh = data.find(b"strh") + 8 + 20  # dwScale, dwRate of the stream header
    data[strh:strh + 8] = struct.pack("<II", 0, 0)
    path.write_bytes(bytes(data))
    with VideoReader(path) as reader:
        times = [f.timestamp_s for f in reader.frames()]
    assert len(times) == 10 and times[0] == 0 and (np.diff(times) > 0).all()


class _NoTimestamps:
    """Stands in for a capture whose container reports no presentation times."""

    def get(self, prop):
        return float("nan")


@pytest.mark.parametrize("fps, expected", [(20.0, [0.0, 0.05, 0.1]), (None, [0.0, 1 / 30, 2 / 30])])
def test_timestamp_fallbacks(fps, expected):
    from emovid.media.video import VideoInfo

    reader = VideoReader("unused.mp4")
    reader._cap = _NoTimestamps()
    reader.info = VideoInfo(64, 48, fps, None, "")
    times, previous = [], None
    for i in range(3):
        previous = reader._timestamp(i, previous)
        times.append(previous)
    np.testing.assert_allclose(times, expected)


def test_rotation_metadata_is_applied(tmp_path):
    path, upright = rotated_phone_video(tmp_path)
    with VideoReader(path) as reader:
        frames = list(reader.frames())
        assert (reader.info.height, reader.info.width) == upright
    assert len(frames) == 5 and frames[0].image.shape[:2] == upright


def test_decoder_threads_follow_the_workers_cpus():
    import cv2

    path = shared_video("single_face.mp4")
    with VideoReader(path, None, decode_threads=1) as one, VideoReader(path, None) as default:
        assert one._cap.get(cv2.CAP_PROP_N_THREADS) == 1
        assert [f.timestamp_s for f in one.frames()] == [f.timestamp_s for f in default.frames()]
    with pytest.raises(ValueError, match="decode_threads"):
        VideoReader(path, None, decode_threads=0)


def test_prefetched_runs_its_items_in_a_thread_of_the_given_name():
    import threading

    from emovid.media.prefetch import Prefetched

    def where():
        yield threading.current_thread().name

    # profilers (py-spy, bench.py --profile) tell the pipeline's stages apart by these names
    assert list(Prefetched(where(), name="emovid-decode")) == ["emovid-decode"]
    assert list(Prefetched(where())) == ["emovid-stage"]
