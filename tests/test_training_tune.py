"""`emovid tune`: a real (tiny) Ray Tune search, interrupted and continued, and its validation."""

import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from emovid.cli import main
from emovid.classify.model_file import read_model_info
from tests.helpers import VOTES, write_ferplus
from emovid.training.search_space import SEARCH_SPACE, build_space, parse_override
from emovid.training.tune import TuneOptions

TINY = ["--space", "width=8", "--space", "depth=2", "--space", "dense_units=0,16", "--space", "input_size=32,40"]


@pytest.mark.parametrize("spec, message", [
    ("width=0", "outside"), ("depth=2.5", "whole numbers"), ("colour=1", "unknown setting"),
    ("learning_rate=1e-2..1e-3", "low < high"), ("width=16..64", "choices"), ("balance", "NAME=SPEC"),
    ("augment=x", "could not convert")])
def test_bad_search_space_values_are_refused_before_ray_starts(tmp_path, spec, message):
    import ray

    with pytest.raises(ValueError, match=message):
        TuneOptions(data=tmp_path, out=tmp_path / "out", space=(spec,))
    code = subprocess.run([sys.executable, "-m", "emovid", "tune", str(tmp_path), "--out", str(tmp_path / "o"),
                           "--space", spec], capture_output=True, text=True, env={**os.environ, "EMOVID_DEBUG": ""})
    assert code.returncode == 2 and message in code.stderr and "Traceback" not in code.stderr
    assert not ray.is_initialized() and not (tmp_path / "o").exists()


def test_search_space_overrides_keep_the_other_entries():
    space = build_space(["learning_rate=1e-4..1e-2", "width=16"])
    assert space["learning_rate"].kind == "loguniform" and space["learning_rate"].values == (1e-4, 1e-2)
    assert space["width"].values == (16,) and space["depth"] == SEARCH_SPACE["depth"]
    assert parse_override("balance=0.2..0.8").kind == "uniform"


def test_smoke_search_interrupted_then_continued_writes_a_loadable_model(tmp_path):
    data = write_ferplus(tmp_path / "data", VOTES * 6)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "emovid", "tune", str(data), "--out", str(out), "--trials", "2", "--epochs", "2",
           "--no-progress", *TINY]
    env = {k: v for k, v in os.environ.items() if k != "EMOVID_DEBUG"}
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 240
    while not list((out / "search").glob("trial_*/checkpoint_*")):  # the first epoch is reported
        assert time.time() < deadline and proc.poll() is None, proc.communicate()[1][-2000:]
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "run the same command again" in err, err[-2000:]

    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=400)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "continued 2 trials" in rerun.stderr
    table = pd.read_csv(out / "results.csv")
    assert len(table) == 2 and table["epochs"].between(1, 2).all() and table["error"].isna().all()
    assert table["val_mean_recall"].is_monotonic_decreasing  # sorted by the objective
    assert (out / "objective.png").stat().st_size > 5000
    info = read_model_info(out / "best.keras")
    assert info.training["search"]["space"]["width"] == {"kind": "choice", "values": [8]}
    assert info.input_size == info.training["best_config"]["input_size"] in (32, 40)
    # the best epoch of the best trial, even where a later epoch of that trial scored lower
    assert info.training["best_result"]["val_mean_recall"] == pytest.approx(table["val_mean_recall"].max())
    assert main(["evaluate", str(data), "--model", str(out / "best.keras"), "--out", str(tmp_path / "eval")]) == 0
