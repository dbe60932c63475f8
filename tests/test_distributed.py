"""Real Ray (2 local CPUs): distribution, worker count, GPU requests and worker death."""

import os

import numpy as np

import pandas as pd
import pytest

import emovid
from emovid.config import AnalyzeConfig, RunOptions
from emovid.errors import EmovidError
from tests.helpers import face_video, write_video


@pytest.fixture()
def folder(tmp_path):
    root = tmp_path / "in"
    root.mkdir()
    for i in range(3):
        face_video(root / f"f{i}.mp4", n_frames=6)
    write_video(root / "plain.mp4", 8)
    (root / "bad.mp4").write_text("garbage")
    return root


def test_analyze_on_ray_matches_in_process(ray_local, folder, tmp_path):
    on_ray = emovid.analyze(folder, tmp_path / "ray", workers=2, progress=False)
    local = emovid.analyze(folder, tmp_path / "local", in_process=True, progress=False)
    assert dict(zip(on_ray["video_id"], on_ray["status"])) == dict(zip(local["video_id"], local["status"]))
    assert (on_ray["status"] == "ok").sum() == 4
    a = emovid.read_results(tmp_path / "ray")
    b = emovid.read_results(tmp_path / "local")
    pd.testing.assert_frame_equal(a, b, check_exact=False, atol=1e-4)  # global person ids included
    # the three videos of one face, analysed by two workers, are one person across the folder
    people = a.dropna(subset=["person_id"])
    assert people["video_id"].nunique() == 3 and people["global_person_id"].notna().all()
    assert people["global_person_id"].nunique() == 1


def test_pool_size_follows_cpus_and_caps(ray_local, caplog):
    from emovid.run.distributed import pool_size

    assert pool_size(RunOptions()) == 2  # 2 CPUs, 1 per worker
    assert pool_size(RunOptions(workers=1)) == 1
    assert pool_size(RunOptions(cpus_per_worker=2)) == 1
    assert pool_size(RunOptions(cpus_per_worker=0.5)) == 4
    assert not caplog.records
    assert pool_size(RunOptions(workers=8)) == 2  # more than the cluster holds: capped, and said so
    assert "--workers 8, but the cluster (2 CPUs) holds only 2 workers" in caplog.text
    with pytest.raises(EmovidError, match="cannot place one worker of 3 CPU"):
        pool_size(RunOptions(cpus_per_worker=3))


def test_a_joined_cluster_may_scale_up_so_its_pool_is_not_capped(ray_local, caplog):
    from emovid.run.distributed import pool_size

    # --address: a cluster that may autoscale; pending workers are what make it add nodes
    assert pool_size(RunOptions(address="auto", workers=8)) == 8
    assert "asking for 8 workers of 1 CPU(s); the cluster holds 2 now" in caplog.text
    assert pool_size(RunOptions(address="auto", cpus_per_worker=4)) == 1  # none fits yet: one, bounded by the timeout
    assert pool_size(RunOptions(address="auto", gpus_per_worker=1)) == 1  # GPU nodes may come


def test_more_workers_than_cpus_runs_instead_of_hanging(ray_local, folder, tmp_path):
    manifest = emovid.analyze(folder, tmp_path / "out", workers=8, progress=False, start_timeout_s=120)
    assert (manifest["status"] == "ok").sum() == 4 and len(manifest) == 5


def test_a_cluster_too_busy_to_start_a_worker_times_out(ray_local, folder, tmp_path):
    import ray

    @ray.remote(num_cpus=2)
    class Hog:
        def ping(self):
            return True

    hog = Hog.remote()
    ray.get(hog.ping.remote())  # every CPU of the cluster is taken
    try:
        with pytest.raises(EmovidError, match="no emovid worker started within 2s: the cluster has 0 of 2 CPUs free"):
            emovid.analyze(folder, tmp_path / "out", progress=False, start_timeout_s=2)
    finally:
        ray.kill(hog)
    assert not list((tmp_path / "out").glob("*.parquet"))


def other_release_analyzer_class():
    """A worker whose emovid would make other results (as another release on one node would)."""
    from emovid.run.workers import RayVideoAnalyzer

    class OtherRelease(RayVideoAnalyzer):
        def __init__(self, *args):
            super().__init__(*args)
            self.settings = {**self.settings, "emovid_version": "0.0.9"}

    return OtherRelease


def test_worker_with_other_settings_than_the_driver_is_refused(ray_local, folder, tmp_path):
    from emovid.api import driver_settings
    from emovid.run.distributed import run_tasks
    from emovid.run.pipeline import VideoTask

    config = AnalyzeConfig().with_precision()
    task = VideoTask(str(folder / "f0.mp4"), "f0.mp4", str(tmp_path / "f0.mp4.parquet"))
    with pytest.raises(EmovidError, match=r"would make other results than this driver \(emovid_version: '0.1.0' -> '0.0.9'\)"):
        run_tasks([task], config, RunOptions(workers=1), lambda t, r: [], analyzer_cls=other_release_analyzer_class(),
                  expected_settings=driver_settings(config))
    assert not os.path.exists(task.output)


def test_worker_that_cannot_see_the_output_folder_is_refused(ray_local, folder, tmp_path):
    from emovid.run.distributed import run_tasks
    from emovid.run.pipeline import VideoTask

    task = VideoTask(str(folder / "f0.mp4"), "f0.mp4", str(tmp_path / "gone" / "f0.mp4.parquet"))
    with pytest.raises(EmovidError, match="cannot see the output folder .*gone: inputs and --out must be on a filesystem"):
        run_tasks([task], AnalyzeConfig(), RunOptions(workers=1), lambda t, r: [], out_dir=str(tmp_path / "gone"))


@pytest.mark.parametrize("busy, cpus_each, cluster, gpus_each, expected", [
    (1, 1, 2, 0, True), (2, 1, 2, 0, False), (1, 2, 2, 0, False), (7, 1, 8, 0, True),
    (1, 0.5, 2, 0, True), (2, 0.5, 2, 0, False),  # a busy worker uses a whole core whatever it reserved
    (4, 4, 16, 1, True)])  # GPU workers leave their CPUs mostly free
def test_decode_overlaps_only_while_a_cpu_is_free(busy, cpus_each, cluster, gpus_each, expected):
    from emovid.run.distributed import decode_overlaps

    assert decode_overlaps(busy, cpus_each, cluster, gpus_each) is expected


def overlap_recording_analyzer_class(log: str, hold_v0_until: str | None = None):
    """Workers that append ``video_id overlap_decode`` lines to ``log``; with ``hold_v0_until``,
    v0.mp4 waits (up to 60 s) until that video has been dispatched, so it is still running then
    however fast this host analyses it."""
    import time

    from emovid.run.workers import RayVideoAnalyzer

    class Recording(RayVideoAnalyzer):
        def __call__(self, task, overlap_decode=True):
            with open(log, "a") as fh:
                fh.write(f"{task.video_id} {overlap_decode}\n")
            deadline = time.monotonic() + 60
            while (hold_v0_until and task.video_id == "v0.mp4" and time.monotonic() < deadline
                   and hold_v0_until not in open(log).read()):
                time.sleep(0.05)
            return super().__call__(task, overlap_decode)

    return Recording


@pytest.mark.parametrize("workers, expected", [(1, "True"), (2, "False")])
def test_driver_overlaps_decoding_only_with_a_spare_cpu(ray_local, tmp_path, workers, expected):
    from emovid.run.distributed import run_tasks
    from emovid.run.pipeline import VideoTask

    # v0 still runs when v2 is dispatched (held for it with 2 workers), so the driver must count it as busy
    videos = [write_video(tmp_path / f"v{i}.mp4", 300 if i == 0 else 4) for i in range(3)]
    tasks = [VideoTask(str(v), v.name, str(tmp_path / "out" / f"{v.name}.parquet")) for v in videos]
    log = tmp_path / "calls.log"
    results = []
    run_tasks(tasks, AnalyzeConfig(fps=None), RunOptions(workers=workers), lambda t, r: results.append(r) or [],
              analyzer_cls=overlap_recording_analyzer_class(str(log), "v2.mp4" if workers == 2 else None))
    assert [r.status for r in results] == ["ok"] * 3
    # 2 CPUs: one busy worker leaves a CPU for its decode thread; two busy workers hold both
    assert sorted(log.read_text().split("\n")[:-1]) == [f"v{i}.mp4 {expected}" for i in range(3)]


def test_gpu_request_without_gpus_is_a_clear_error(ray_local):
    from emovid.run.distributed import pool_size

    with pytest.raises(EmovidError, match="GPUs"):
        pool_size(RunOptions(gpus_per_worker=0.5))


def crashing_analyzer_class():
    """A worker class that kills its own process on a video while ``<video>.crash`` exists.

    Built in a function so cloudpickle ships it to the workers by value.
    """
    from emovid.run.workers import RayVideoAnalyzer

    class CrashingAnalyzer(RayVideoAnalyzer):
        def __call__(self, task, *args):
            flag = task.path + ".crash"
            if os.path.exists(flag):
                if open(flag).read() == "once":
                    os.remove(flag)
                os._exit(1)  # the process dies mid-video, as with a segfault or an OOM kill
            return super().__call__(task, *args)

    return CrashingAnalyzer


def test_worker_death_is_retried_then_reported(ray_local, folder, tmp_path):
    from emovid.run.distributed import run_tasks
    from emovid.run.pipeline import VideoTask

    out = tmp_path / "out"
    tasks = [VideoTask(str(folder / f"f{i}.mp4"), f"f{i}.mp4", str(out / f"f{i}.mp4.parquet")) for i in range(3)]
    (folder / "f0.mp4.crash").write_text("once")
    (folder / "f1.mp4.crash").write_text("always")
    results, frames = {}, []
    run_tasks(tasks, AnalyzeConfig(), RunOptions(workers=2, retries=1),
              lambda task, r: results.__setitem__(r.video_id, r) or [], analyzer_cls=crashing_analyzer_class(),
              on_frames=frames.append)
    assert results["f0.mp4"].status == "ok" and results["f0.mp4"].attempts == 2
    assert results["f1.mp4"].status == "failed" and "died" in results["f1.mp4"].error
    assert results["f1.mp4"].attempts == 2
    assert results["f2.mp4"].status == "ok"
    assert sum(frames) == 12  # frame progress reached the driver: 6 frames each for f0 and f2
    assert sorted(p.name for p in out.iterdir()) == ["f0.mp4.parquet", "f2.mp4.parquet"]  # no temp files
    clean = emovid.analyze([folder / "f0.mp4"], tmp_path / "clean", in_process=True, progress=False)
    assert list(clean["status"]) == ["ok"]
    pd.testing.assert_frame_equal(pd.read_parquet(out / "f0.mp4.parquet"),
                                  pd.read_parquet(tmp_path / "clean" / "f0.mp4.parquet"), check_exact=False, atol=1e-4)


def two_worker_analyzer_class(started: str):
    """Workers that note their start, and hold segment tasks until a second worker has started:
    which worker takes a segment is otherwise a race with worker start-up."""
    import time

    from emovid.run.workers import RayVideoAnalyzer

    class WaitsForSecondWorker(RayVideoAnalyzer):
        def __init__(self, *args):
            super().__init__(*args)
            with open(started, "a") as fh:
                fh.write(f"{os.getpid()}\n")

        def __call__(self, task, *args):
            deadline = time.monotonic() + 120
            while task.segment is not None and len(open(started).read().split()) < 2 and time.monotonic() < deadline:
                time.sleep(0.1)
            return super().__call__(task, *args)

    return WaitsForSecondWorker


def test_one_long_video_is_split_over_two_workers(ray_local, tmp_path):
    from emovid.run.distributed import run_tasks
    from emovid.run.pipeline import VideoTask
    from emovid.run.segments import SegmentedVideos
    from tests.helpers import moving_faces_video
    from tests.helpers import crossing_scene

    video = moving_faces_video(tmp_path / "crossing.mp4", crossing_scene()[0], fps=10)
    task = VideoTask(str(video), "crossing.mp4", str(tmp_path / "split" / "crossing.mp4.parquet"), split_s=1.5)
    config = AnalyzeConfig(fps=None)
    segmented, finals, seen = SegmentedVideos(1.5, None, config.track_gap_s), [], []

    def on_result(t, result):
        seen.append(result)
        follow_up, final = segmented.handle(t, result)
        finals.extend([final] if final else [])
        return follow_up

    (tmp_path / "started").touch()
    run_tasks([task], config, RunOptions(workers=2), on_result,
              analyzer_cls=two_worker_analyzer_class(str(tmp_path / "started")))
    # 1.5 s segments would make 4 of its 6 s; two workers, one idle: 2 segments of 3 s
    assert [r.status for r in seen] == ["split", "ok", "ok"]
    assert len({r.worker for r in seen[1:]}) == 2  # the pool grew from one worker (one video) to two
    assert [(r.status, r.segments, r.frames_decoded) for r in finals] == [("ok", 2, 60)]
    emovid.analyze(video, tmp_path / "whole", segment_s=0, every_frame=True, in_process=True, progress=False)
    pd.testing.assert_frame_equal(pd.read_parquet(task.output), pd.read_parquet(tmp_path / "whole" / "crossing.mp4.parquet"),
                                  check_exact=False, atol=1e-3)


def test_videos_split_only_for_workers_that_would_idle():
    from emovid.run.distributed import split_where_idle
    from emovid.run.pipeline import VideoTask
    from emovid.media.time_segments import Segment

    task = VideoTask("v.mp4", "v.mp4", "v.mp4.parquet", split_s=300.0)
    assert split_where_idle(task, 0) == VideoTask("v.mp4", "v.mp4", "v.mp4.parquet")  # all busy: one piece
    assert split_where_idle(task, 3).max_segments == 4  # three idle workers and the one taking it
    segment = VideoTask("v.mp4", "v.mp4", "p", segment=Segment(0, 2, 0.0, 300.0), split_s=300.0)
    assert split_where_idle(segment, 5) is segment
    assert split_where_idle(VideoTask("v.mp4", "v.mp4", "o"), 5).split_s is None  # --segment-s 0


def test_a_worker_added_later_that_cannot_start_is_a_clear_error(ray_local, tmp_path):
    import time

    from emovid.run.distributed import run_tasks
    from emovid.run.workers import RayVideoAnalyzer
    from emovid.run.pipeline import VideoTask
    from emovid.run.segments import SegmentedVideos
    from tests.helpers import moving_faces_video
    from tests.helpers import crossing_scene

    starts = tmp_path / "starts"

    class SecondWorkerFails(RayVideoAnalyzer):
        def __init__(self, *args):
            with open(starts, "a") as fh:
                fh.write("x")
            if starts.read_text() == "xx":
                raise RuntimeError("model file missing on this node")
            super().__init__(*args)

        def __call__(self, task, *args):
            # hold the segments until the second worker has tried to start: otherwise the first
            # one may finish them all first, and a run that needs no more workers ends cleanly
            deadline = time.monotonic() + 120
            while task.segment is not None and starts.read_text() != "xx" and time.monotonic() < deadline:
                time.sleep(0.1)
            return super().__call__(task, *args)

    video = moving_faces_video(tmp_path / "crossing.mp4", crossing_scene()[0], fps=10)
    task = VideoTask(str(video), "crossing.mp4", str(tmp_path / "out" / "crossing.mp4.parquet"), split_s=1.5)
    segmented = SegmentedVideos(1.5, None, None)
    with pytest.raises(EmovidError, match="failed to start: RuntimeError: model file missing on this node"):
        # one video: one worker at first; its segments make the pool grow, and the new worker fails
        run_tasks([task], AnalyzeConfig(fps=None), RunOptions(workers=2),
                  lambda t, r: segmented.handle(t, r)[0], analyzer_cls=SecondWorkerFails)
    assert starts.read_text() == "xx"


def test_a_video_whose_reading_stalls_fails_and_the_run_goes_on_with_a_new_worker(ray_local, tmp_path):
    import time

    from emovid.run.distributed import run_tasks
    from emovid.run.pipeline import VideoTask
    from tests.stalling import feed_half, stalling_analyzer_class

    out = tmp_path / "out"
    out.mkdir()
    fed = feed_half(write_video(tmp_path / "whole.mp4", 40), tmp_path / "cut.fifo.mp4")
    names = ["cut.fifo.mp4", "a.mp4", "b.mp4"]
    for name in names[1:]:
        write_video(tmp_path / name, 12)
    tasks = [VideoTask(str(tmp_path / n), n, str(out / f"{n}.parquet")) for n in names]
    results, frames = {}, []
    started = time.monotonic()
    # one worker: the videos after the stalled one can only run on its replacement
    run_tasks(tasks, AnalyzeConfig(), RunOptions(workers=1, stall_timeout_s=2),
              lambda task, r: results.__setitem__(r.video_id, r) or [], analyzer_cls=stalling_analyzer_class(),
              on_frames=frames.append)
    assert time.monotonic() - started < 120  # liveness, not speed: without the watchdog this never returns
    assert fed.is_set()  # FFmpeg did read the first half, then waited in C for more
    assert results["cut.fifo.mp4"].status == "failed"
    assert results["cut.fifo.mp4"].error.startswith("no progress for 2 s while reading")
    assert results["a.mp4"].status == results["b.mp4"].status == "ok"
    assert sum(frames) == 24  # the stalled video read no frame the driver was told of
    assert sorted(p.name for p in out.iterdir()) == ["a.mp4.parquet", "b.mp4.parquet"]


def test_a_photo_whose_reading_stalls_fails_alone(ray_local, tmp_path):
    import cv2

    from emovid.run.distributed import run_tasks
    from emovid.run.tasks import ImageTask, group_images
    from tests.stalling import stalling_analyzer_class

    out = tmp_path / "out"
    out.mkdir()
    os.mkfifo(tmp_path / "cut.fifo.jpg")  # no writer ever comes: open() blocks
    names = ["a.jpg", "cut.fifo.jpg", "b.jpg"]
    for name in ("a.jpg", "b.jpg"):
        cv2.imwrite(str(tmp_path / name), np.full((60, 80, 3), 128, np.uint8))
    group = group_images([ImageTask(str(tmp_path / n), n, str(out / f"{n}.parquet")) for n in names])
    assert len(group) == 1
    results = {}

    def record(task, result):
        results.update({r.video_id: r for r in result.results})
        return []

    run_tasks(group, AnalyzeConfig(), RunOptions(workers=1, stall_timeout_s=2), record,
              analyzer_cls=stalling_analyzer_class())
    # the group stalled, so its photos were retried one by one: only the blocked one fails
    assert {n: r.status for n, r in results.items()} == {"a.jpg": "ok", "cut.fifo.jpg": "failed", "b.jpg": "ok"}
    assert results["cut.fifo.jpg"].error.startswith("no progress for 2 s")
