"""What a file is, told from its name, its kind and its first bytes, without decoding it: video and
photo suffixes, image formats, and files that are not regular files (pipes, devices) or not videos."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from emovid.errors import VideoOpenError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v")


_IMAGE_MAGIC = {b"\xff\xd8\xff": "JPEG", b"\x89PNG": "PNG", b"GIF8": "GIF", b"BM": "BMP", b"II*\x00": "TIFF",
                b"MM\x00*": "TIFF"}


def image_format(path: Path) -> str | None:
    """The image format of ``path`` from its first bytes (FFmpeg would open it as a 1-frame video)."""
    with path.open("rb") as fh:
        head = fh.read(12)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    return next((kind for magic, kind in _IMAGE_MAGIC.items() if head.startswith(magic)), None)


_FILE_TYPES = ((stat.S_ISDIR, "directory"), (stat.S_ISFIFO, "named pipe"), (stat.S_ISSOCK, "socket"),
               (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"))


def not_a_file(path: Path) -> str | None:
    """Why ``path`` (links followed) is no regular file, in a few words, or None if it is one or is
    missing. Opening a named pipe with no writer blocks in C, where no signal reaches Python, so
    nothing may open an input before this says it is a file."""
    if path.is_symlink() and not path.exists():
        return f"broken symbolic link (points to {os.readlink(path)})"
    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    kind = next((name for test, name in _FILE_TYPES if test(mode)), None if stat.S_ISREG(mode) else "special file")
    return None if kind is None else f"not a regular file: {kind}"


def check_video_file(path: Path) -> None:
    """Reject paths that cannot be a readable video, with a one-line reason.

    Raises:
        VideoOpenError: missing, not a regular file (a directory, a pipe, a device, a broken link),
            unreadable, empty or an image.
    """
    if reason := not_a_file(path):
        raise VideoOpenError(reason)
    if not path.exists():
        raise VideoOpenError("file not found")
    if not os.access(path, os.R_OK):
        raise VideoOpenError("permission denied")
    if path.stat().st_size == 0:
        raise VideoOpenError("empty file (0 bytes)")
    if kind := image_format(path):
        raise VideoOpenError(f"is a {kind} image, not a video")
