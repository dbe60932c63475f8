import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from emovid.cli import build_parser, main
from tests.helpers import face_video


def test_help_reads_well():
    out = subprocess.run([sys.executable, "-m", "emovid", "analyze", "--help"], capture_output=True, text=True, check=True).stdout
    for flag in ("--out", "--fps", "--every-frame", "--batch-size", "--address", "--workers", "--gpus-per-worker", "--overwrite",
                 "--prior", "--no-shots", "--no-persons"):
        assert flag in out


@pytest.mark.parametrize("argv", [
    ["analyze", "x", "--out", "o", "--fps", "-1"],
    ["analyze", "x", "--out", "o", "--fps", "abc"],
    ["analyze", "x", "--out", "o", "--batch-size", "0"],
    ["analyze", "x", "--out", "o", "--workers", "0"],
    ["analyze", "x", "--out", "o", "--gpus-per-worker", "-1"],
    ["analyze", "x", "--out", "o", "--stall-timeout", "-5"],
    ["analyze", "x", "--out", "o", "--fps", "2", "--every-frame"],
    ["analyze", "x"],
    ["train", "d", "--out", "m.keras", "--teacher", "t.keras", "--teacher-weight", "1.5"],
    ["train", "d", "--out", "m.keras", "--mixup", "nan"],
    ["train", "d", "--out", "m.keras", "--mixup", "-0.2"],
    ["train", "d", "--out", "m.keras", "--degrade", "-1"],
    ["analyze", "x", "--out", "o", "--prior", "uniform"],
    ["analyze", "x", "--out", "o", "--prior", "3"],
    ["analyze", "x", "--out", "o", "--shot-threshold", "0"],
    ["evaluate", "d", "--out", "o", "--prior", "-0.5"],
])
def test_invalid_values_are_rejected_by_the_parser(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(argv)
    assert exc.value.code == 2


def test_missing_input_is_a_one_line_error(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("EMOVID_DEBUG", raising=False)
    assert main(["analyze", str(tmp_path / "nope"), "--out", str(tmp_path / "o"), "--in-process"]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("argv, message", [
    (["train", "{empty}", "--out", "{tmp}/m.keras", "--epochs", "1"], "no images"),
    (["evaluate", "{empty}", "--out", "{tmp}/eval"], "no images"),
    (["analyze", "{videos}", "--out", "s3://bucket/results", "--in-process"], "'s3://bucket/results' is a URL"),
    (["analyze", "s3://bucket/videos", "--out", "{tmp}/o", "--in-process"], "input 's3://bucket/videos' is a URL"),
])
def test_bad_data_and_urls_are_one_line_errors(argv, message, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("EMOVID_DEBUG", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty").mkdir()
    (tmp_path / "videos").mkdir()
    face_video(tmp_path / "videos" / "a.mp4", n_frames=4)
    argv = [a.format(empty=tmp_path / "empty", tmp=tmp_path, videos=tmp_path / "videos") for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "s3:").exists() and not (tmp_path / "o").exists()


def test_first_run_on_a_fresh_machine_is_quiet(tmp_path):
    """The console script with embedded Ray, as a newcomer runs it: no Ray token warning."""
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_AUTH_MODE", "EMOVID_DEBUG")}
    env["HOME"] = str(tmp_path)  # no ~/.ray token yet
    sample = Path(__file__).resolve().parents[1] / "samples" / "sample.mp4"
    run = subprocess.run(["emovid", "analyze", str(sample), "--out", str(tmp_path / "out"), "--workers", "1",
                          "--no-progress"], capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Token authentication" not in run.stderr and "1 ok, 0 failed" in run.stderr


def test_analyze_exit_codes_and_summary(tmp_path, capsys):
    videos = tmp_path / "in"
    videos.mkdir()
    face_video(videos / "ok.mp4", n_frames=6)
    assert main(["analyze", str(videos), "--out", str(tmp_path / "o"), "--in-process", "--no-progress"]) == 0
    assert "1 ok, 0 failed" in capsys.readouterr().err
    (videos / "bad.mp4").write_text("garbage")
    assert main(["analyze", str(videos), "--out", str(tmp_path / "o"), "--in-process", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "1 ok, 1 failed (1 reused from an earlier run)" in err and "bad.mp4" in err
    assert set(pd.read_parquet(tmp_path / "o")["video_id"]) == {"ok.mp4"}


def test_console_script_is_installed():
    out = subprocess.run(["emovid", "--version"], capture_output=True, text=True, check=True).stdout
    assert out.startswith("emovid ")


def test_train_and_evaluate_commands(tmp_path, capsys):
    from tests.helpers import VOTES, write_ferplus

    data = write_ferplus(tmp_path / "split", VOTES * 3)
    model = tmp_path / "m.keras"
    assert main(["train", str(data), "--out", str(model), "--epochs", "1", "--batch-size", "4"]) == 0
    assert model.is_file()
    assert main(["evaluate", str(data), "--model", str(model), "--out", str(tmp_path / "eval")]) == 0
    assert "accuracy" in capsys.readouterr().out
    assert (tmp_path / "eval" / "report.txt").is_file()
    # the shipped model by name, as `analyze --model` takes it
    assert main(["evaluate", str(data), "--model", "emovid_fer7_v7", "--out", str(tmp_path / "eval_v7")]) == 0
    assert (tmp_path / "eval_v7" / "metrics.json").is_file()
