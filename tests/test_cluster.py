"""A real two-node Ray cluster on this machine (ray.cluster_utils.Cluster): videos spread over nodes."""

import pandas as pd
import pytest

import emovid
from tests.helpers import face_video


@pytest.fixture(scope="module")
def two_nodes():
    import ray
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    ray.init(address=cluster.address)
    cluster.wait_for_nodes()
    yield cluster
    ray.shutdown()
    cluster.shutdown()


def test_videos_are_spread_over_both_nodes(two_nodes, tmp_path):
    import ray

    assert len([n for n in ray.nodes() if n["Alive"]]) == 2
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(4):
        face_video(folder / f"v{i}.mp4", n_frames=6)
    manifest = emovid.analyze(folder, tmp_path / "out", progress=False)  # default pool: one worker per CPU
    assert (manifest["status"] == "ok").all()
    nodes = {w.split(":")[0] for w in manifest["worker"]}
    assert len(nodes) == 2  # each node ran videos
    assert len(pd.read_parquet(tmp_path / "out")) == manifest["frames_sampled"].sum()
