"""emovid's exception types. Bad arguments stay ``ValueError``/``TypeError``."""

from __future__ import annotations


class EmovidError(Exception):
    """Base class for domain failures (a video, a model or an output folder that cannot be used)."""


class ModelError(EmovidError):
    """A model file is missing, unreadable or does not match what emovid expects."""


class VideoError(EmovidError):
    """A video cannot be opened or decoded."""


class VideoOpenError(VideoError):
    """The file is not a video OpenCV can open (empty, garbage, unreadable, unsupported)."""


class ImageError(EmovidError):
    """A photo cannot be read (missing, empty, corrupt, unsupported or too large)."""


class OutputError(EmovidError):
    """The output folder cannot be used (holds results from other settings, is locked, ...)."""


class SegmentError(VideoError):
    """A segment of a split video cannot be read exactly (no container timestamps, failed seek).

    The driver then analyses the whole video in one piece instead.
    """


class DatasetError(EmovidError):
    """A dataset folder cannot be used for training or evaluation."""
