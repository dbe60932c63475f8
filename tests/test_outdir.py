import json
import multiprocessing
import os
import time
from pathlib import Path

import pytest

from emovid.errors import OutputError
from emovid.store.outdir import LOCK_NAME, OutputLock, existing_output, prepare_out_dir, remove_temp_files


def test_lock_is_exclusive_and_released(tmp_path):
    with OutputLock(tmp_path):
        with pytest.raises(OutputError, match=f"in use by another emovid run \\(pid {os.getpid()} on "):
            with OutputLock(tmp_path):
                pass
    assert not (tmp_path / LOCK_NAME).exists()  # released and removed on exit
    with OutputLock(tmp_path):  # the next run gets it
        pass


def test_lock_left_by_a_dead_process_is_free(tmp_path):
    # What a killed run leaves: the file, naming a holder that is gone; the kernel has dropped its lock.
    (tmp_path / LOCK_NAME).write_text('{"pid": 999999999, "host": "other-container"}')
    with OutputLock(tmp_path):
        assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()


def _hold_lock(out: str, start, results) -> None:
    start.wait()
    try:
        with OutputLock(Path(out)):
            results.put("won")
            time.sleep(1.5)  # hold it while the others try
    except OutputError:
        results.put("refused")


def test_processes_racing_for_a_stale_lock_have_one_winner(tmp_path):
    (tmp_path / LOCK_NAME).write_text('{"pid": 999999999, "host": "gone"}')
    ctx = multiprocessing.get_context("spawn")
    start, results = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_hold_lock, args=(str(tmp_path), start, results)) for _ in range(4)]
    for p in procs:
        p.start()
    time.sleep(1.0)  # all four waiting at the start line
    start.set()
    outcomes = sorted(results.get(timeout=60) for _ in procs)
    for p in procs:
        p.join(timeout=30)
    assert outcomes == ["refused", "refused", "refused", "won"]


def test_temp_files_are_found_in_subfolders(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / ".v.mp4.parquet.tmp-abc").write_bytes(b"")
    (tmp_path / "a" / "v.mp4.parquet").write_bytes(b"")
    assert remove_temp_files(tmp_path) == 1
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["v.mp4.parquet"]


def test_prepare_out_dir(tmp_path):
    assert prepare_out_dir(tmp_path / "new" / "deep").is_dir()
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError, match="not a folder"):
        prepare_out_dir(tmp_path / "f")


def test_unreadable_existing_output_is_redone(tmp_path):
    (tmp_path / "x.parquet").write_bytes(b"not parquet")
    assert existing_output(tmp_path / "x.parquet").settings_hash is None
    assert existing_output(tmp_path / "missing.parquet") is None
