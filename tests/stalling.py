"""Inputs whose reading blocks in C code, as on a stalled network mount, for the watchdog and
interrupt tests; also runnable as ``python -m tests.stalling analyze ...``: the emovid CLI with
such workers.

emovid refuses named pipes before opening them, so these workers skip that check for inputs
named ``*.fifo.*``: a video is then read by FFmpeg from a pipe whose writer (:func:`feed_half`)
sent half a file and stopped, and a photo's open() waits for a writer that never comes. Both
block inside a C call, where no Python code of the worker runs.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

STALLING = ".fifo."


def stalling_analyzer_class():
    """A :class:`~emovid.run.workers.RayVideoAnalyzer` that reads ``*.fifo.*`` inputs as files.

    Made in a function: Ray then ships the class by value, so workers need not import tests/.
    """
    from emovid.run.workers import RayVideoAnalyzer

    class ReadsPipes(RayVideoAnalyzer):
        def __init__(self, *args):
            super().__init__(*args)
            import emovid.media.video
            import emovid.run.photos
            import emovid.run.pipeline

            # patched where they are looked up: the modules that call them
            real_kind, real_check = emovid.run.pipeline.not_a_file, emovid.media.video.check_video_file
            real_read = emovid.run.photos.read_image

            def not_a_file(path):
                return None if STALLING in os.fspath(path) else real_kind(path)

            def check_video_file(path):
                if STALLING not in os.fspath(path):
                    real_check(path)

            def read_image(path):
                if STALLING in path:
                    os.close(os.open(path, os.O_RDONLY))  # blocks in open(): no writer comes
                return real_read(path)

            emovid.run.pipeline.not_a_file, emovid.media.video.check_video_file = not_a_file, check_video_file
            emovid.run.photos.read_image = read_image

    return ReadsPipes


def feed_half(source: Path, pipe: Path) -> threading.Event:
    """Make ``pipe`` a named pipe; a thread writes the first half of ``source`` into it once a
    reader opens it, then holds it open without writing more. The event is set once the half is in."""
    os.mkfifo(pipe)
    fed = threading.Event()

    def writer() -> None:
        with open(pipe, "wb") as fh:  # returns when a reader opens the pipe
            data = source.read_bytes()
            fh.write(data[:len(data) // 2])
            fh.flush()
            fed.set()
            threading.Event().wait()  # stall, never closing: the reader waits for more

    threading.Thread(target=writer, daemon=True).start()
    return fed


def sigterm_inside_ray_init() -> None:
    """Send this process SIGTERM from inside ``ray.init``, right after Ray put its own handler in."""
    import signal

    import ray._private.utils

    set_handler = ray._private.utils.set_sigterm_handler

    def set_and_signal(handler):
        set_handler(handler)
        os.kill(os.getpid(), signal.SIGTERM)

    ray._private.utils.set_sigterm_handler = set_and_signal


def main(argv: list[str]) -> int:
    """``emovid`` with :func:`stalling_analyzer_class` workers. Options before the command:
    ``--feed SOURCE PIPE`` makes PIPE a pipe fed half of SOURCE; ``--sigterm-in-ray-init``
    (:func:`sigterm_inside_ray_init`)."""
    import signal

    import emovid.run.distributed
    from emovid.cli import main as cli_main

    signal.signal(signal.SIGINT, signal.default_int_handler)  # as a shell gives a foreground job
    if argv[:1] == ["--sigterm-in-ray-init"]:
        sigterm_inside_ray_init()
        argv = argv[1:]
    if argv[:1] == ["--feed"]:
        feed_half(Path(argv[1]), Path(argv[2]))
        argv = argv[3:]
    run_tasks = emovid.run.distributed.run_tasks
    analyzer_cls = stalling_analyzer_class()
    emovid.run.distributed.run_tasks = lambda *args, **kwargs: run_tasks(*args, **{**kwargs, "analyzer_cls": analyzer_cls})
    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
