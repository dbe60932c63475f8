"""The Ray actors of a run: a worker (:class:`RayVideoAnalyzer`, one per pool slot) and the small
actor that collects the workers' reading progress for the driver (:class:`ReadProgress`)."""

from __future__ import annotations

import os
import socket

import ray

from emovid.config import AnalyzeConfig
from emovid.run.pipeline import VideoAnalyzer
from emovid.run.tasks import GroupResult, ImageGroupTask, VideoResult, VideoTask


class ReadProgress:
    """Tiny actor that collects the workers' reading progress per task, for the driver's frame
    bar and its watchdog (:func:`emovid.run.distributed._drive`), which takes what came since it last asked."""

    def __init__(self) -> None:
        self.frames: dict[str, int] = {}  # task key -> frames read since the last take()
        self.done: list[str] = []  # task keys read to the end

    def add(self, key: str, n: int) -> None:
        self.frames[key] = self.frames.get(key, 0) + n

    def finish(self, key: str) -> None:
        self.done.append(key)

    def take(self) -> tuple[dict[str, int], list[str]]:
        taken = self.frames, self.done
        self.frames, self.done = {}, []
        return taken


class RayVideoAnalyzer(VideoAnalyzer):
    """Actor flavour of :class:`VideoAnalyzer`: reports reading progress to the named
    :class:`ReadProgress` actor.

    That actor travels by name, not as a handle: constructor arguments must stay plain values
    so Ray can restart a crashed worker from them.
    """

    def __init__(self, config: AnalyzeConfig, num_threads: int, progress_name: str | None = None,
                 batch_size: int | None = None) -> None:
        self._progress = ray.get_actor(progress_name) if progress_name else None
        self._task_key = ""
        self._reports: list = []  # progress calls not yet known to have landed
        super().__init__(config, num_threads, use_gpu=bool(ray.get_gpu_ids()), batch_size=batch_size)

    def __call__(self, task: VideoTask | ImageGroupTask, overlap_decode: bool = True) -> VideoResult | GroupResult:
        self._task_key = task.key
        result = super().__call__(task, overlap_decode)
        # The driver reads the count when a result arrives: the video's last frames must be in it.
        ray.get(self._reports)
        self._reports.clear()
        return result

    def frames_read(self, n: int) -> None:
        if self._progress:
            self._reports.append(self._progress.add.remote(self._task_key, n))

    def reading_done(self) -> None:
        if self._progress:
            self._reports.append(self._progress.finish.remote(self._task_key))

    def worker_name(self) -> str:
        return f"{ray.get_runtime_context().get_node_id()[:12]}:{os.getpid()}"

    def ready(self, out_dir: str | None = None) -> dict:
        """What the driver checks before giving this worker work: its devices, its result
        settings (must equal the driver's) and whether it sees the output folder."""
        context = ray.get_runtime_context()
        return {"classifier_on_gpu": self.classifier.on_gpu, "detector_on_gpu": self.detector.on_gpu,
                "node": context.get_node_id(),
                "ray_gpu_ids": [str(g) for g in ray.get_gpu_ids()], "settings": self.settings,
                "host": socket.gethostname(), "sees_out": out_dir is None or os.path.isdir(out_dir)}
