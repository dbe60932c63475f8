"""Running :class:`~emovid.run.workers.RayVideoAnalyzer` workers over many inputs on Ray: the driver side.

One unit of work is one video. A fixed pool of actors (each loads the detector and CNN once)
takes videos from a driver-side queue; each actor holds at most ``PER_ACTOR_IN_FLIGHT`` tasks,
so 10,000 inputs never become 10,000 in-flight tasks, and results stream back as they finish.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import threading
import time
import uuid
from collections import deque
from contextlib import contextmanager
from dataclasses import replace
from typing import Callable

import ray
from ray.exceptions import ActorUnavailableError, GetTimeoutError, RayActorError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from emovid.config import AnalyzeConfig, RunOptions
from emovid.errors import EmovidError
from emovid.run.tasks import ImageGroupTask, VideoResult, VideoTask
from emovid.run.workers import RayVideoAnalyzer, ReadProgress

log = logging.getLogger(__name__)

#: Videos in flight per actor. One: when a worker dies, only the video it was on is affected.
PER_ACTOR_IN_FLIGHT = 1
RESTART_TIMEOUT_S = 120


def connect(options: RunOptions) -> bool:
    """Start Ray embedded (or join ``options.address``); returns True if this call started it.

    The caller's SIGTERM handler stays in place (see :func:`_keeping_sigterm_handler`).
    """
    if ray.is_initialized():
        return False
    try:
        with _keeping_sigterm_handler():
            if options.address and options.address.startswith("ray://"):
                ray.init(address=options.address)  # Ray Client: the cluster's own settings apply
            else:
                if options.address is None:
                    # A new local cluster gets Ray's default, token authentication (a token is made on
                    # first use); its "token authentication is enabled" notice is for cluster admins.
                    logging.getLogger("ray._private.authentication.authentication_token_setup").addFilter(
                        _no_token_notice)
                ray.init(address=options.address, include_dashboard=False, log_to_driver=options.verbose,
                         logging_level=logging.INFO if options.verbose else logging.WARNING)
    except BaseException:  # Ctrl-C during start-up: stop what was started so far
        ray.shutdown()
        raise
    return True


@contextmanager
def _keeping_sigterm_handler():
    """Put the caller's SIGTERM handler back after ``ray.init``.

    ray.init installs its own (``sys.exit(15)``) and its core worker a native one on top, so
    without this a SIGTERM ended ``emovid analyze`` with exit code 1, a native stack dump and
    no cleanup message. A SIGTERM that arrives during ray.init is handed to the caller's handler.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    try:
        yield
    except SystemExit as exc:
        if exc.code != signal.SIGTERM or previous is None:
            raise
        signal.signal(signal.SIGTERM, previous)
        os.kill(os.getpid(), signal.SIGTERM)  # the caller's handler (or the default action) takes it now
        raise
    finally:
        if previous is not None:  # None: a handler not set from Python, which cannot be put back
            signal.signal(signal.SIGTERM, previous)


def _no_token_notice(record: logging.LogRecord) -> bool:
    return "Token authentication is enabled" not in record.getMessage()


def pool_size(options: RunOptions) -> int:
    """Workers to run: ``--workers`` if given, else as many as the cluster's CPUs (and GPUs) hold.

    On a Ray started here (no ``--address``) nothing will ever join, so a request beyond what
    it holds is capped, with a warning, and one that fits no worker is an error. A joined
    cluster may autoscale: there a request beyond what it holds now is kept (pending workers
    are what make an autoscaler add nodes), with a warning; the driver starts work as soon as
    one worker is up and gives up after ``--start-timeout`` if none comes.

    Raises:
        EmovidError: GPUs are requested but the cluster has none, or a Ray started here cannot
            place a single worker.
    """
    resources = ray.cluster_resources()
    cpus = resources.get("CPU", 0)
    placeable = math.floor(cpus / options.cpus_per_worker + 1e-9)
    what = f"{options.cpus_per_worker:g} CPU(s)"
    if options.gpus_per_worker > 0:
        gpus = resources.get("GPU", 0)
        if gpus < options.gpus_per_worker and options.address is None:
            raise EmovidError(f"--gpus-per-worker {options.gpus_per_worker:g} but the Ray cluster has {gpus:g} GPUs")
        placeable = min(placeable, math.floor(gpus / options.gpus_per_worker + 1e-9))
        what += f" and {options.gpus_per_worker:g} GPU(s)"
    wanted = options.workers or max(placeable, 1)
    if wanted <= placeable:
        return wanted
    if options.address is None:
        if placeable < 1:
            raise EmovidError(f"the Ray cluster ({cpus:g} CPUs) cannot place one worker of {what}; "
                              f"lower --cpus-per-worker")
        log.warning("--workers %d, but the cluster (%g CPUs) holds only %d workers of %s: running %d",
                    wanted, cpus, placeable, what, placeable)
        return placeable
    log.warning("asking for %d workers of %s; the cluster holds %d now: the rest start if it scales up "
                "(work starts with the first; --start-timeout %gs if none starts)",
                wanted, what, placeable, options.start_timeout_s)
    return wanted


class _Pool:
    """The actors, started as work appears: one per task up to ``max_size`` (a long video that
    splits into segments adds workers; a single short video never starts an idle one).

    Work goes only to actors that answered ``ready()``, so an actor that cannot be scheduled
    yet (a busy cluster) or fails to start never holds a task.
    """

    def __init__(self, config: AnalyzeConfig, options: RunOptions, max_size: int, analyzer_cls: type,
                 progress_name: str | None, expected_settings: dict | None = None, out_dir: str | None = None) -> None:
        self.max_size = max_size
        self.cluster_cpus = ray.cluster_resources().get("CPU", 1)
        self.expected_settings = expected_settings
        self.out_dir = out_dir
        self._args = (config, max(1, math.floor(options.cpus_per_worker)), progress_name, options.batch_size)
        self._cls = ray.remote(analyzer_cls).options(
            num_cpus=options.cpus_per_worker, num_gpus=options.gpus_per_worker,
            max_restarts=-1, max_task_retries=0,  # a dead worker comes back; the driver decides on retries
        )
        self.ready: list = []
        self.starting: dict = {}  # ready() ObjectRef -> actor

    @property
    def actors(self) -> list:
        return [*self.ready, *self.starting.values()]

    def grow(self, n: int) -> None:
        """Start up to ``n`` more actors (within ``max_size``)."""
        for _ in range(min(n, self.max_size - len(self.ready) - len(self.starting))):
            actor = self._cls.remote(*self._args)
            self.starting[actor.ready.remote(self.out_dir)] = actor

    def mark_ready(self, ref) -> None:
        """Move the actor whose ``ready()`` answered to the ready list.

        Raises:
            EmovidError: its constructor failed (model missing on that node, bad install, ...),
                it computes other result settings than the driver (another emovid, model or
                detector backend on that node), or it cannot see the output folder.
        """
        actor = self.starting.pop(ref)
        try:
            info = ray.get(ref)
        except RayActorError as exc:
            ray.kill(actor, no_restart=True)
            raise EmovidError(f"an emovid worker failed to start: {_last_line(exc)} (run with -v for details)") from exc
        where = f"the worker on {info['host']} (node {info['node'][:8]})"
        if self.expected_settings is not None and info["settings"] != self.expected_settings:
            ray.kill(actor, no_restart=True)
            from emovid.store.outdir import describe_difference

            raise EmovidError(f"{where} would make other results than this driver "
                              f"({describe_difference(self.expected_settings, info['settings'])}): install the same "
                              f"emovid, models and packages on every node")
        if not info["sees_out"]:
            ray.kill(actor, no_restart=True)
            raise EmovidError(f"{where} cannot see the output folder {self.out_dir}: inputs and --out must be on a "
                              f"filesystem every node mounts at the same path")
        log.info("worker ready on node %s, Ray GPUs %s; on the GPU: classifier %s, detector %s", info["node"][:8],
                 info["ray_gpu_ids"] or "none", info["classifier_on_gpu"], info["detector_on_gpu"])
        self.ready.append(actor)

    def retire(self, actor) -> None:
        """Kill ``actor`` (a worker stuck in C code too: Ray ends its process); :meth:`grow`
        starts a replacement when work is waiting."""
        ray.kill(actor, no_restart=True)
        self.ready.remove(actor)


def run_tasks(tasks: list[VideoTask], config: AnalyzeConfig, options: RunOptions,
              on_result: Callable[[VideoTask, VideoResult], list[VideoTask]], analyzer_cls: type = RayVideoAnalyzer,
              on_frames: Callable[[int], None] | None = None, expected_settings: dict | None = None,
              out_dir: str | None = None) -> None:
    """Analyse ``tasks`` on a pool of Ray actors, calling ``on_result`` on the driver for each task.

    Work starts as soon as the first worker is ready; others join as they come up.
    ``on_result`` returns follow-up tasks (the segments of a long video), which run before the
    rest of the queue. A task whose worker process dies is retried (up to ``options.retries``
    times) on a restarted worker, then reported as failed. A task whose reading makes no progress
    for ``options.stall_timeout_s`` is failed at once and its worker replaced (a group of photos
    is first retried photo by photo). ``on_frames`` receives decoded-frame counts for a frame
    progress bar. ``expected_settings``: the driver's result settings, which
    each worker must share; ``out_dir``: the output folder each worker must see.
    ``analyzer_cls`` lets tests inject faults.

    Raises:
        EmovidError: a worker cannot start or disagrees with the driver, or no worker became
            ready within ``options.start_timeout_s`` (a cluster too busy to place one).
    """
    if not tasks:
        return
    watched = on_frames is not None or options.stall_timeout_s > 0
    progress_name = f"emovid-progress-{uuid.uuid4().hex[:12]}" if watched else None
    # On the driver's node: the watchdog must not take a stalled node's silence for the workers'.
    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=True)
    progress = (ray.remote(num_cpus=0)(ReadProgress).options(name=progress_name, scheduling_strategy=here).remote()
                if watched else None)
    pool = _Pool(config, options, pool_size(options), analyzer_cls, progress_name, expected_settings, out_dir)
    try:
        pool.grow(len(tasks))
        _drive(deque(tasks), pool, options, on_result, progress, on_frames)
    finally:
        for actor in [*pool.actors, *([progress] if progress else [])]:
            ray.kill(actor, no_restart=True)


#: Longest single wait of the driver loop (s): it also checks the start-up deadline this often.
POLL_S = 0.5


def _drive(queue: deque, pool: _Pool, options: RunOptions, on_result, progress, on_frames) -> None:
    """Keep every ready actor busy with one task until the queue is empty; retry tasks of dead
    workers and fail those whose reading stalls."""
    attempts: dict[str, int] = {}
    in_flight: dict = {}  # ObjectRef -> (actor, task)
    reading: dict = {}  # ObjectRef -> when its task last read something (monotonic s), until read to the end

    def fill() -> None:
        busy: dict = {}
        for actor, _ in in_flight.values():
            busy[actor] = busy.get(actor, 0) + 1
        idle = [a for a in pool.ready for _ in range(PER_ACTOR_IN_FLIGHT - busy.get(a, 0))]
        if (short := len(queue) - len(idle) - len(pool.starting) * PER_ACTOR_IN_FLIGHT) > 0:
            pool.grow(math.ceil(short / PER_ACTOR_IN_FLIGHT))
        dispatch = [(actor, queue.popleft()) for actor in idle[:len(queue)]]
        spare = pool.max_size - len(in_flight) - len(dispatch) - len(queue)  # workers left with nothing to do
        dispatch = [(actor, split_where_idle(task, spare)) for actor, task in dispatch]
        soon_busy = len(in_flight) + len(dispatch) + min(len(pool.starting), len(queue))  # starting ones get work
        overlap = decode_overlaps(soon_busy, options.cpus_per_worker, pool.cluster_cpus, options.gpus_per_worker)
        for actor, task in dispatch:
            attempts[task.key] = attempts.get(task.key, 0) + 1
            ref = actor.__call__.remote(task, overlap)
            in_flight[ref] = (actor, task)
            reading[ref] = time.monotonic()

    def track_progress() -> None:
        if progress is None:
            return
        try:
            frames, done = ray.get(progress.take.remote(), timeout=RESTART_TIMEOUT_S)
        except GetTimeoutError:
            return
        if on_frames:
            on_frames(sum(frames.values()))
        refs = {task.key: ref for ref, (_, task) in in_flight.items()}
        now = time.monotonic()
        for key in frames:
            if (ref := refs.get(key)) in reading:
                reading[ref] = now
        for key in done:
            reading.pop(refs.get(key), None)

    def fail_stalled() -> None:
        limit = options.stall_timeout_s
        now = time.monotonic()
        stalled = [ref for ref, since in reading.items() if limit and now - since > limit]
        for ref in stalled:
            actor, task = in_flight.pop(ref)
            del reading[ref]
            pool.retire(actor)
            if isinstance(task, ImageGroupTask) and len(task.images) > 1:
                log.warning("reading %s made no progress for %gs; retrying its %d photos one by one",
                            task.key, limit, len(task.images))
                queue.extendleft(reversed(task.singles()))
            else:
                log.warning("reading %s made no progress for %gs; its worker is replaced", task.key, limit)
                queue.extendleft(reversed(on_result(task, task.failed(
                    f"no progress for {limit:g} s while reading (a stalled disk or network mount, or a file "
                    f"still being written?)", attempts[task.key]))))
        if stalled:
            fill()  # a replacement worker starts if work is waiting

    fill()
    waiting_since = time.monotonic()  # since when no worker is ready
    while in_flight or (queue and pool.starting):
        ready, _ = ray.wait([*in_flight, *pool.starting], num_returns=1, timeout=POLL_S)
        track_progress()
        fail_stalled()
        if not ready:
            if not pool.ready and time.monotonic() - waiting_since > options.start_timeout_s:
                free = ray.available_resources().get("CPU", 0)
                raise EmovidError(f"no emovid worker started within {options.start_timeout_s:g}s: the cluster has "
                                  f"{free:g} of {pool.cluster_cpus:g} CPUs free (is it busy, or still scaling up?)")
            continue
        if ready[0] in pool.starting:
            pool.mark_ready(ready[0])
            fill()
            continue
        if ready[0] not in in_flight:  # its task was failed as stalled just now
            continue
        actor, task = in_flight.pop(ready[0])
        reading.pop(ready[0], None)
        tries = attempts[task.key]
        follow_up: list[VideoTask] = []
        try:
            follow_up = on_result(task, ray.get(ready[0]).with_attempts(tries))
        except RayActorError as exc:
            # Ray reports a death mid-task as ActorUnavailableError while the actor restarts.
            _wait_for_restart(actor)
            if isinstance(task, ImageGroupTask) and len(task.images) > 1:
                log.warning("worker died on %s; retrying its %d photos one by one", task.key, len(task.images))
                queue.extendleft(reversed(task.singles()))  # a photo that kills workers then fails alone
            elif tries <= options.retries:
                log.warning("worker died on %s (attempt %d); retrying", task.key, tries)
                queue.appendleft(task)
            else:
                follow_up = on_result(task, task.failed(
                    f"worker process died on each of {tries} attempts ({type(exc).__name__})", tries))
        queue.extendleft(reversed(follow_up))
        fill()


def split_where_idle(task: VideoTask | ImageGroupTask, spare_workers: int) -> VideoTask | ImageGroupTask:
    """``task`` as it should be dispatched: a whole video may split only into segments for the
    ``spare_workers`` that would otherwise idle (one segment more than them, for the worker
    taking it); with none spare it runs in one piece, as splitting then only adds each
    segment's start and seek-back."""
    if not isinstance(task, VideoTask) or task.segment is not None or not task.split_s:
        return task
    if spare_workers < 1:
        return replace(task, split_s=None)
    return replace(task, max_segments=spare_workers + 1)


def decode_overlaps(busy_workers: int, cpus_per_worker: float, cluster_cpus: float,
                    gpus_per_worker: float = 0) -> bool:
    """Whether workers should run their stages side by side (decoding, detection and the CNN in
    threads of their own; see :meth:`~emovid.run.pipeline.VideoAnalyzer.__call__`).

    On CPU workers, only while a CPU is left that no busy worker uses: the threads' extra work
    runs there (one worker: +56% at 4 fps, +81% at every frame), and without one they only add
    hand-offs (two workers on 2 cores: 36.7 video-s/s in turn vs 34.0 overlapped at 4 fps, 10.8
    either way at every frame). A busy worker uses at least one core whatever it reserved. CPUs are counted
    over the whole cluster, as if workers were spread evenly. GPU workers always overlap:
    their CPU is mostly free while the GPU classifies.
    """
    if gpus_per_worker > 0:
        return True
    return busy_workers * max(1.0, cpus_per_worker) + 1 <= cluster_cpus


def _last_line(exc: Exception) -> str:
    """The root cause line of a Ray error (its message ends with the remote traceback)."""
    lines = [line for line in str(getattr(exc, "error_msg", None) or exc).splitlines() if line.strip()]
    return lines[-1].strip() if lines else type(exc).__name__


def _wait_for_restart(actor) -> None:
    """Block until a restarting actor answers again (it reloads its models in ``__init__``)."""
    deadline = time.monotonic() + RESTART_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            ray.get(actor.ready.remote(), timeout=RESTART_TIMEOUT_S)
            return
        except (ActorUnavailableError, GetTimeoutError):
            time.sleep(0.2)
        except RayActorError as exc:  # died for good: its constructor failed on restart
            raise EmovidError(f"a crashed emovid worker could not restart: {_last_line(exc)}") from exc
    raise EmovidError(f"a crashed emovid worker did not restart within {RESTART_TIMEOUT_S}s")
