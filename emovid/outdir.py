"""The output folder: exclusive lock, leftover temp files, and which videos are already done."""

from __future__ import annotations

import json
import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from emovid.errors import OutputError
from emovid.schema import read_metadata
from emovid.sink import TEMP_MARKER

log = logging.getLogger(__name__)

LOCK_NAME = "_emovid.lock"


def prepare_out_dir(out_dir: str | Path) -> Path:
    """Create the output folder if needed.

    Raises:
        ValueError: the path exists and is not a folder.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {str(out)!r} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    return out


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class OutputLock:
    """Exclusive lock on an output folder so two runs never write the same results.

    A lock left by a dead process on this host is taken over.

    Raises (on enter):
        OutputError: another live run holds the folder.
    """

    def __init__(self, out_dir: Path) -> None:
        self.path = Path(out_dir) / LOCK_NAME
        self._held = False

    def __enter__(self) -> "OutputLock":
        me = {"pid": os.getpid(), "host": socket.gethostname()}
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                holder = self._holder()
                if holder.get("host") == me["host"] and not _pid_alive(int(holder.get("pid", -1))):
                    log.warning("removing stale lock of dead process %s", holder.get("pid"))
                    self.path.unlink(missing_ok=True)
                    continue
                raise OutputError(f"{self.path.parent} is in use by another emovid run "
                                  f"(pid {holder.get('pid')} on {holder.get('host')}); "
                                  f"wait for it, or delete {self.path} if that run is gone") from None
            with os.fdopen(fd, "w") as fh:
                json.dump(me, fh)
            self._held = True
            return self
        raise OutputError(f"could not lock {self.path.parent}")

    def _holder(self) -> dict:
        try:
            return json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            return {}

    def __exit__(self, *exc) -> None:
        if self._held:
            self.path.unlink(missing_ok=True)
            self._held = False


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
