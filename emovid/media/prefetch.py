"""Decoding ahead in a thread: a bounded queue of frames, so decoding overlaps inference."""

from __future__ import annotations

import queue
import threading
from typing import Iterator

from emovid.media.video import Frame


_DONE = object()


class PrefetchedFrames:
    """Decode ``frames`` in a background thread, at most ``depth`` ahead of the consumer.

    Iterate it like ``frames``; :attr:`ready` says whether the next frame is already decoded, so
    the consumer can do other work (classify buffered faces) instead of waiting. OpenCV releases
    the GIL while decoding, as do face detection and TensorFlow, so decoding overlaps with
    inference. The thread starts at once: always :meth:`close` it (``contextlib.closing``); that,
    the end of the frames, or an error stops and joins the thread, and the source generator is
    closed in the thread that ran it.
    """

    def __init__(self, frames: Iterator[Frame], depth: int = 8) -> None:
        if depth < 1:
            raise ValueError(f"depth: expected >= 1, got {depth}")
        self._frames = frames
        self._buffer: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._finished = False
        self._thread = threading.Thread(target=self._produce, name="emovid-decode", daemon=True)
        self._thread.start()

    @property
    def ready(self) -> bool:
        """True when :func:`next` would return (a frame, the end or an error) without waiting."""
        return self._finished or not self._buffer.empty()

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._buffer.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self) -> None:
        try:
            for frame in self._frames:
                if not self._put(frame):
                    break
        except BaseException as exc:  # handed to the consumer, raised there
            self._put(exc)
        finally:
            try:
                if hasattr(self._frames, "close"):  # a generator: release what it holds, in this thread
                    self._frames.close()
            finally:
                self._put(_DONE)  # whatever happened, the consumer must not wait forever

    def __iter__(self) -> "PrefetchedFrames":
        return self

    def __next__(self) -> Frame:
        if self._finished:
            raise StopIteration
        item = self._buffer.get()
        if item is _DONE or isinstance(item, BaseException):
            self.close()
            if item is _DONE:
                raise StopIteration
            raise item
        return item

    def close(self) -> None:
        self._finished = True
        self._stop.set()
        self._thread.join()
