import os

import pytest

from emovid.errors import OutputError
from emovid.outdir import LOCK_NAME, OutputLock, existing_output, prepare_out_dir, remove_temp_files


def test_lock_is_exclusive_and_released(tmp_path):
    with OutputLock(tmp_path):
        assert (tmp_path / LOCK_NAME).exists()
        with pytest.raises(OutputError, match="in use"):
            with OutputLock(tmp_path):
                pass
    assert not (tmp_path / LOCK_NAME).exists()


def test_lock_of_a_dead_process_is_taken_over(tmp_path):
    (tmp_path / LOCK_NAME).write_text('{"pid": 999999999, "host": "%s"}' % os.uname().nodename)
    with OutputLock(tmp_path):
        pass


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
