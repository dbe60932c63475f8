"""Finding input videos and photos, and naming their outputs.

An input's id is its path relative to the input root (POSIX separators), so two ``clip.mp4``
in different folders never collide, and the same input always gets the same id.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Sequence

from emovid.media.files import IMAGE_SUFFIXES
from emovid.media.files import VIDEO_SUFFIXES, image_format

KINDS = ("video", "image")


@dataclass(frozen=True, slots=True)
class MediaInput:
    """One input file: its absolute path, its id and whether it is a video or a photo."""

    path: Path
    video_id: str
    kind: str = "video"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind: expected one of {KINDS}, got {self.kind!r}")


def _is_media_name(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES + IMAGE_SUFFIXES


def _kind(path: Path) -> str:
    """``image`` for a photo suffix, or (a file named otherwise) image content; else ``video``."""
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return "image"
    if path.suffix.lower() not in VIDEO_SUFFIXES and path.is_file():
        try:
            return "image" if image_format(path) else "video"
        except OSError:
            return "video"  # unreadable: the video reader reports why
    return "video"


def _walk(root: Path) -> list[Path]:
    """Every entry with a video or photo suffix under ``root``, also directories and broken links
    named like them: they are reported as failed inputs rather than silently dropped."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        base = Path(dirpath)
        found += [base / n for n in filenames if _is_media_name(Path(n))]
        found += [base / n for n in dirnames if _is_media_name(Path(n))]
    return sorted(found)


def check_local_path(value: str | os.PathLike, what: str) -> Path:
    """A path argument as a :class:`Path`, refusing URLs (``s3://bucket/x`` would otherwise
    become a local folder ``s3:``).

    Raises:
        ValueError: ``value`` is a URL.
    """
    text = os.fspath(value)
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]+://", text):
        raise ValueError(f"{what} {text!r} is a URL; emovid reads and writes files only: mount the storage "
                         f"(e.g. with s3fs, gcsfuse or blobfuse) at the same path on every node and pass that path")
    return Path(text)


def find_inputs(paths: Sequence[str | os.PathLike]) -> list[MediaInput]:
    """Expand files and folders (recursively) into video and photo inputs with unique, stable ids.

    One folder: ids are relative to it. One file: its name. Several: relative to their common
    parent folder. Explicit files are taken whatever their suffix (a photo by its content).

    Raises:
        ValueError: no paths, a path that does not exist, or no video or photo found.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    if not paths:
        raise ValueError("expected at least one video file or folder, got none")
    entries: list[tuple[Path, Path]] = []  # (path, root it is named relative to)
    roots = []
    for raw in paths:
        p = check_local_path(raw, "input")
        if not p.exists() and not p.is_symlink():
            raise ValueError(f"input {str(raw)!r} does not exist")
        if p.is_dir() and not _is_media_name(p):
            roots.append(p.absolute())
            entries += [(f, p.absolute()) for f in _walk(p)]
        else:
            roots.append(p.absolute().parent)
            entries.append((p, p.absolute().parent))
    common = Path(os.path.commonpath(roots)) if len(paths) > 1 else roots[0]
    inputs, seen = [], set()
    for path, _ in entries:
        video_id = PurePosixPath(*path.absolute().relative_to(common).parts).as_posix()
        if video_id in seen:
            continue
        seen.add(video_id)
        inputs.append(MediaInput(path.absolute(), video_id, _kind(path)))  # workers may run in another folder
    if not inputs:
        raise ValueError(f"no video files ({', '.join(VIDEO_SUFFIXES)}) or photos ({', '.join(IMAGE_SUFFIXES)}) "
                         f"found in {', '.join(map(str, paths))}")
    return inputs


def _escape(part: str) -> str:
    """Make a path component one that Parquet readers do not skip or parse as a partition.

    pyarrow/pandas ignore names starting with ``.`` or ``_`` and read ``key=value`` folders as
    columns; percent-escaping those characters (and ``%`` itself) keeps names one-to-one.
    """
    part = part.replace("%", "%25").replace("=", "%3D")
    if part[:1] in (".", "_"):
        part = f"%{ord(part[0]):02X}{part[1:]}"
    return part


def output_path(out_dir: str | os.PathLike, video_id: str) -> Path:
    """The Parquet file for ``video_id`` inside ``out_dir``; never outside it.

    Raises:
        ValueError: the id is absolute or climbs out with ``..``.
    """
    pure = PurePosixPath(video_id)
    if pure.is_absolute() or not pure.parts or any(p in ("..", ".", "") for p in pure.parts) or "\\" in video_id:
        raise ValueError(f"video id {video_id!r} must be a relative path without '..'")
    out = Path(out_dir)
    path = out.joinpath(*(_escape(p) for p in pure.parts[:-1]), _escape(pure.name) + ".parquet")
    if not path.absolute().is_relative_to(out.absolute()):
        raise ValueError(f"video id {video_id!r} would be written outside {out}")
    return path
