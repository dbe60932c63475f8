"""GPU requests, checked on CPU machines by declaring fake GPUs to Ray."""

import pytest

import emovid
from emovid.config import AnalyzeConfig, RunOptions
from tests.helpers import face_video


@pytest.fixture(scope="module")
def ray_with_fake_gpu():
    import ray

    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_pool_size_respects_gpus(ray_with_fake_gpu):
    from emovid.run.distributed import pool_size

    assert pool_size(RunOptions(gpus_per_worker=1)) == 1
    assert pool_size(RunOptions(gpus_per_worker=0.5)) == 2  # two workers share the GPU
    assert pool_size(RunOptions(gpus_per_worker=0.25)) == 2  # still capped by CPUs


def test_workers_are_placed_on_the_gpu(ray_with_fake_gpu, tmp_path):
    from emovid.run.distributed import _Pool
    from emovid.run.workers import RayVideoAnalyzer

    ray = ray_with_fake_gpu
    pool = _Pool(AnalyzeConfig(), RunOptions(gpus_per_worker=0.5), 2, RayVideoAnalyzer, None)
    pool.grow(5)
    actors = pool.actors
    assert len(actors) == 2  # never beyond the pool's size
    try:
        infos = ray.get([a.ready.remote() for a in actors])
        assert all(info["ray_gpu_ids"] for info in infos)  # Ray assigned a GPU share to each worker
        assert ray.available_resources().get("GPU", 0) == pytest.approx(0)
    finally:
        for actor in actors:
            ray.kill(actor)
    face_video(tmp_path / "v.mp4", n_frames=6)
    manifest = emovid.analyze(tmp_path / "v.mp4", tmp_path / "out", gpus_per_worker=0.5, progress=False)
    assert list(manifest["status"]) == ["ok"]  # no real GPU: TensorFlow falls back to the CPU
