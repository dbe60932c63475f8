"""The output folder: exclusive lock, leftover temp files, and which videos are already done."""

from __future__ import annotations

import json
import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from emovid.media.discover import check_local_path
from emovid.errors import OutputError
from emovid.store.schema import read_metadata
from emovid.store.sink import TEMP_MARKER

log = logging.getLogger(__name__)

LOCK_NAME = "_emovid.lock"


def prepare_out_dir(out_dir: str | Path) -> Path:
    """Create the output folder if needed; returns it as an absolute path (what workers get).

    Raises:
        ValueError: the path is a URL, or exists and is not a folder.
    """
    out = check_local_path(out_dir, "--out").absolute()
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {str(out)!r} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    return out


class OutputLock:
    """Exclusive lock on an output folder so two runs never write the same results.

    An OS lock (``flock``) on ``_emovid.lock``: the kernel releases it when the holding process
    ends, however it ends, so a stale lock is simply free, and nothing checks a pid (a pid means
    nothing across containers or hosts). The holder deletes the file on release while still
    holding the lock, and a taker checks that the file it locked is still the one at the path,
    so two runs can never both hold it. On NFS, Linux maps ``flock`` to byte-range locks that
    all clients see.

    Raises (on enter):
        OutputError: another live run holds the folder.
    """

    def __init__(self, out_dir: Path) -> None:
        self.path = Path(out_dir) / LOCK_NAME
        self._fd: int | None = None

    def __enter__(self) -> "OutputLock":
        import fcntl

        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:  # BlockingIOError: held; others (e.g. ENOLCK) mean no lock either
                holder = _read_holder(fd)
                os.close(fd)
                raise OutputError(f"{self.path.parent} is in use by another emovid run (pid {holder.get('pid', '?')} "
                                  f"on {holder.get('host', '?')}); wait for it to end") from None
            if _same_file(fd, self.path):
                break
            os.close(fd)  # the holder released and deleted it between our open and lock: again
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname()}).encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            self.path.unlink(missing_ok=True)  # while still locked: see the class docstring
            os.close(self._fd)  # releases the flock
            self._fd = None


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False


def _read_holder(fd: int) -> dict:
    try:
        return json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, ValueError):
        return {}


def remove_temp_files(out_dir: Path) -> int:
    """Delete temp files of interrupted writes (only call while holding the lock)."""
    removed = 0
    for path in out_dir.rglob(f".*{TEMP_MARKER}*"):
        path.unlink(missing_ok=True)
        removed += 1
    return removed


@dataclass(frozen=True, slots=True)
class ExistingOutput:
    """An output file that is already there, and whether it matches the current settings."""

    settings_hash: str | None
    settings: dict


def existing_output(path: Path) -> ExistingOutput | None:
    """Read an existing result file's settings; None when there is no (readable) file."""
    if not path.is_file():
        return None
    try:
        meta = read_metadata(pq.read_schema(path))
    except Exception:  # an unreadable file is redone, not trusted
        return ExistingOutput(None, {})
    return ExistingOutput(meta.get("settings_hash"), meta.get("settings", {}))


def describe_difference(old: dict, new: dict) -> str:
    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    return ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys) or "unreadable file"
