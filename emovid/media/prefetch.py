"""A pipeline stage in its own thread: a bounded queue between an iterator and its consumer,
so decoding, face detection and the rest of the pipeline run at the same time."""

from __future__ import annotations

import queue
import threading
from typing import Generic, Iterator, TypeVar

T = TypeVar("T")

_DONE = object()


class Prefetched(Generic[T]):
    """Run ``items`` (e.g. decoded frames) in a background thread called ``name``, at most
    ``depth`` ahead of the consumer.

    Iterate it like ``items``. OpenCV releases the GIL while decoding, as do onnxruntime (face
    detection, the CNN) and TensorFlow, so stages overlap on a worker's cores. The thread starts
    at once: always :meth:`close` it (``contextlib.closing``); that, the end of the items, or an
    error stops and joins the thread, and the source generator is closed in the thread that ran it.
    """

    def __init__(self, items: Iterator[T], depth: int = 8, name: str = "emovid-stage") -> None:
        if depth < 1:
            raise ValueError(f"depth: expected >= 1, got {depth}")
        self._items = items
        self._buffer: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._finished = False
        self._thread = threading.Thread(target=self._produce, name=name, daemon=True)
        self._thread.start()

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
            for item in self._items:
                if not self._put(item):
                    break
        except BaseException as exc:  # handed to the consumer, raised there
            self._put(exc)
        finally:
            try:
                if hasattr(self._items, "close"):  # a generator: release what it holds, in this thread
                    self._items.close()
            finally:
                self._put(_DONE)  # whatever happened, the consumer must not wait forever

    def __iter__(self) -> "Prefetched[T]":
        return self

    def __next__(self) -> T:
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
