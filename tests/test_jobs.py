"""`ray job submit` of jobs/analyze.py against a real local `ray start --head` cluster."""

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
RAY = shutil.which("ray") or str(Path(sys.executable).with_name("ray"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory):
    import ray

    if ray.is_initialized():
        ray.shutdown()
    gcs, dashboard = free_port(), free_port()
    temp = tmp_path_factory.mktemp("ray")
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    subprocess.run([RAY, "start", "--head", f"--port={gcs}", "--num-cpus=2", "--include-dashboard=true",
                    f"--dashboard-port={dashboard}", "--dashboard-host=127.0.0.1", f"--temp-dir={temp}"],
                   check=True, capture_output=True, env=env, timeout=180)
    address = f"http://127.0.0.1:{dashboard}"
    try:
        for _ in range(60):
            ok = subprocess.run([RAY, "job", "list", "--address", address], capture_output=True, env=env)
            if ok.returncode == 0:
                break
            time.sleep(1)
        yield address, env
    finally:
        subprocess.run([RAY, "stop", "--force"], capture_output=True, env=env, timeout=120)


def submit(address: str, env: dict, entry: list[str]) -> subprocess.CompletedProcess:
    """``ray job submit`` of ``entry`` from the repo, retried while the node's job agent is not up
    yet (``ray job list`` answers before the agent registers: "No available agent to submit job")."""
    deadline = time.monotonic() + 90
    while True:
        job = subprocess.run([RAY, "job", "submit", "--address", address, "--working-dir", str(ROOT), "--", *entry],
                             capture_output=True, text=True, env=env, timeout=600)
        if job.returncode == 0 or "No available agent" not in job.stderr or time.monotonic() > deadline:
            return job
        time.sleep(2)


def test_submit_analyze_job_to_a_local_cluster(ray_head, tmp_path):
    address, env = ray_head
    out = tmp_path / "results"
    job = submit(address, env, ["python", "jobs/analyze.py", "--smoke-test", "--out", str(out)])
    assert job.returncode == 0, job.stdout[-3000:] + job.stderr[-3000:]
    assert "1 ok, 0 failed" in job.stdout + job.stderr
    df = pd.read_parquet(out)
    assert set(df["video_id"]) == {"sample.mp4"} and len(df) == 79


def test_submit_train_and_tune_jobs_together_to_a_local_cluster(ray_head, tmp_path):
    """Two jobs at once, as a team shares a cluster: a training job on one CPU beside a search."""
    from concurrent.futures import ThreadPoolExecutor

    from emovid.classify.emotions import EmotionClassifier
    from emovid.classify.model_file import read_model_info
    from tests.helpers import VOTES, write_ferplus

    address, env = ray_head
    data = write_ferplus(tmp_path / "fer", VOTES * 4)
    model, out = tmp_path / "models" / "job.keras", tmp_path / "tune"
    train = ["python", "jobs/train.py", str(data), "--out", str(model), "--smoke-test", "--batch-size", "8", "--cpus", "1"]
    tune = ["python", "jobs/tune.py", str(data), "--out", str(out), "--trials", "1", "--epochs", "1",
            "--space", "width=8", "--space", "depth=2", "--space", "dense_units=0", "--space", "input_size=32"]
    with ThreadPoolExecutor(2) as pool:
        trained, tuned = pool.map(lambda entry: submit(address, env, entry), (train, tune))
    assert trained.returncode == 0, trained.stdout[-3000:] + trained.stderr[-3000:]
    assert EmotionClassifier.load(model).classes[0] == "neutral"
    assert tuned.returncode == 0, tuned.stdout[-3000:] + tuned.stderr[-3000:]
    assert read_model_info(out / "best.keras").input_size == 32 and (out / "results.csv").is_file()
