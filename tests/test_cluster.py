"""A real two-node Ray cluster on this machine (ray.cluster_utils.Cluster): videos spread over nodes.

Its workers run in another working directory than the driver (a ``runtime_env`` working_dir),
as on a cluster whose nodes start from their own folders.
"""

import pandas as pd
import pytest

import emovid
from tests.helpers import face_video


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory):
    import ray
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    elsewhere = tmp_path_factory.mktemp("worker_cwd")
    (elsewhere / "README").write_text("workers start here, not in the driver's folder")
    ray.init(address=cluster.address, runtime_env={"working_dir": str(elsewhere)})
    cluster.wait_for_nodes()
    yield cluster
    ray.shutdown()
    cluster.shutdown()


def both_workers_start_first_class(starts: str):
    """Workers that hold each video until two workers have loaded: work begins as soon as one
    is ready, and tiny videos would otherwise all go to the first one up."""
    import time

    from emovid.run.workers import RayVideoAnalyzer

    class WaitForTwo(RayVideoAnalyzer):
        def __init__(self, *args):
            super().__init__(*args)
            with open(starts, "a") as fh:  # loaded: about to answer ready()
                fh.write("x")

        def __call__(self, task, *args):
            deadline = time.monotonic() + 120
            while open(starts).read() != "xx" and time.monotonic() < deadline:
                time.sleep(0.1)
            return super().__call__(task, *args)

    return WaitForTwo


def test_videos_are_spread_over_both_nodes(two_nodes, tmp_path):
    import ray

    from emovid.api import driver_settings
    from emovid.config import AnalyzeConfig, RunOptions
    from emovid.run.distributed import run_tasks
    from emovid.run.pipeline import VideoTask

    assert len([n for n in ray.nodes() if n["Alive"]]) == 2
    (tmp_path / "out").mkdir()
    tasks = []
    for i in range(4):
        video = face_video(tmp_path / f"v{i}.mp4", n_frames=6)
        tasks.append(VideoTask(str(video), video.name, str(tmp_path / "out" / f"{video.name}.parquet")))
    config, results = AnalyzeConfig().with_precision(), []
    run_tasks(tasks, config, RunOptions(), lambda t, r: results.append(r) or [],  # default pool: one worker per CPU
              analyzer_cls=both_workers_start_first_class(str(tmp_path / "starts")),
              expected_settings=driver_settings(config), out_dir=str(tmp_path / "out"))
    assert [r.status for r in results] == ["ok"] * 4
    assert len({r.worker.split(":")[0] for r in results}) == 2  # each node ran videos
    assert len(pd.read_parquet(tmp_path / "out")) == sum(r.frames_sampled for r in results)


def test_relative_paths_work_when_workers_run_in_another_folder(two_nodes, tmp_path, monkeypatch):
    import ray

    @ray.remote(num_cpus=0)
    def worker_cwd():
        import os

        return os.getcwd()

    monkeypatch.chdir(tmp_path)
    assert ray.get(worker_cwd.remote()) != str(tmp_path)
    (tmp_path / "in").mkdir()
    face_video(tmp_path / "in" / "v.mp4", n_frames=6)
    manifest = emovid.analyze("in", "out", progress=False, model="emovid_fer7_v7")
    assert list(manifest["status"]) == ["ok"], manifest["error"].tolist()
    assert manifest["path"][0] == str(tmp_path / "in" / "v.mp4") and manifest["output"][0].startswith(str(tmp_path))
    assert len(emovid.read_results("out")) == manifest["frames_sampled"][0] == 2
    # a bundled model travels by name, resolved in each worker's own install
    import pyarrow.parquet as pq

    from emovid.store.schema import read_metadata

    settings = read_metadata(pq.read_schema(tmp_path / "out" / "v.mp4.parquet"))["settings"]
    assert settings["model"] == "emovid-fer7:7" and len(settings["model_sha256"]) == 16


def test_train_job_asks_for_one_nodes_cpus(two_nodes):
    import ray

    from jobs.train import largest_node_cpus

    assert ray.cluster_resources()["CPU"] == 2  # a task asking for both would never schedule
    assert largest_node_cpus(ray.nodes()) == 1


def freezing_analyzer_class(frozen: str):
    """Workers that stop their whole process (SIGSTOP) on ``stall.mp4``, as a node that hangs: no
    thread of theirs runs, Ray's own included. ``frozen`` gets the stopped process's pid."""
    import os
    import signal

    from emovid.run.workers import RayVideoAnalyzer

    class Freezes(RayVideoAnalyzer):
        def __call__(self, task, *args):
            if task.video_id == "stall.mp4":
                with open(frozen, "w") as fh:
                    fh.write(str(os.getpid()))
                os.kill(os.getpid(), signal.SIGSTOP)
            return super().__call__(task, *args)

    return Freezes


def test_a_worker_that_stops_responding_is_replaced_and_the_run_goes_on(two_nodes, tmp_path):
    import time

    from emovid.api import driver_settings
    from emovid.config import AnalyzeConfig, RunOptions
    from emovid.run.distributed import run_tasks
    from emovid.run.pipeline import VideoTask
    from tests.helpers import write_video

    (tmp_path / "out").mkdir()
    names = ["a.mp4", "stall.mp4", "b.mp4", "c.mp4"]
    tasks = [VideoTask(str(write_video(tmp_path / n, 12)), n, str(tmp_path / "out" / f"{n}.parquet")) for n in names]
    config, results = AnalyzeConfig().with_precision(), {}
    run_tasks(tasks, config, RunOptions(stall_timeout_s=2), lambda t, r: results.__setitem__(r.video_id, r) or [],
              analyzer_cls=freezing_analyzer_class(str(tmp_path / "frozen")),
              expected_settings=driver_settings(config), out_dir=str(tmp_path / "out"))
    assert {n: r.status for n, r in results.items()} == {"a.mp4": "ok", "stall.mp4": "failed", "b.mp4": "ok",
                                                         "c.mp4": "ok"}
    assert results["stall.mp4"].error.startswith("no progress for 2 s")
    # Ray ends the stopped process (its kill escalates to SIGKILL): it holds no CPU of the cluster
    frozen = int((tmp_path / "frozen").read_text())
    deadline = time.monotonic() + 60
    while _alive(frozen) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _alive(frozen)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as fh:
            return "zombie" not in fh.read()
    except FileNotFoundError:
        return False
