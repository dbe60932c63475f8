"""Editors' transitions on real footage: cuts found, and tracks and persons kept apart across them.

    pip install imageio-ffmpeg scenedetect   # only for this benchmark: an FFmpeg with xfade, and the peer
    python benchmarks/transitions.py [--fps 4 0] [--transitions fade wipeleft ... | --held-out]

Each video joins three real clips from ../shared/videos with FFmpeg's xfade filter, 0.8 s per
transition, at 640x360 and 25 fps: a woman (WolfgangLanger_Pexels.mp4, 0-4 s), a man
(face_noface.mov, 0-2.4 s, before its cut to black) and the woman again (the same video, 12-16 s).
A transition counts as found when a cut falls inside it or within three frames after it; any
other cut is false. Then `analyze` runs on the video (every frame, or at --fps) and, leaving out
the faces inside transitions, counts tracks and person ids holding both the woman and the man
(must be 0), and the person ids found (2 is right: the woman comes back).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.helpers import VIDEOS  # noqa: E402

import shots  # noqa: E402  (benchmarks/shots.py)

FPS = 25
DURATION_S = 0.8
#: (file, start s, length s, who)
CLIPS = [("WolfgangLanger_Pexels.mp4", 0.0, 4.0, "woman"), ("face_noface.mov", 0.0, 2.4, "man"),
         ("WolfgangLanger_Pexels.mp4", 12.0, 4.0, "woman")]
TRANSITIONS = ["fade", "dissolve", "fadeblack", "fadewhite", "fadegrays", "wipeleft", "wipeup", "wipetl",
               "slideleft", "coverleft", "revealleft", "circleopen", "circleclose", "radial", "smoothleft",
               "diagtl", "hlslice", "horzopen", "vertclose", "rectcrop", "distance", "hblur", "pixelize",
               "squeezeh", "zoomin"]
#: The rest of xfade's transitions: the wipe test's thresholds were chosen on TRANSITIONS, then these
#: were run once (--held-out).
HELD_OUT = ["wiperight", "wipedown", "slideright", "slideup", "slidedown", "smoothright", "smoothup",
            "smoothdown", "diagtr", "diagbl", "diagbr", "hrslice", "vuslice", "vdslice", "vertopen", "horzclose",
            "squeezev", "fadefast", "fadeslow", "hlwind", "hrwind", "vuwind", "vdwind", "coverright", "coverup",
            "coverdown", "revealright", "revealup", "revealdown", "wipetr", "wipebl", "wipebr", "circlecrop"]


def transition_frames() -> list[tuple[int, int]]:
    """(first, last + 1) output frame of each transition."""
    spans, offset = [], 0.0
    for _, _, length, _ in CLIPS[:-1]:
        offset += length - DURATION_S
        spans.append((round(offset * FPS), round((offset + DURATION_S) * FPS)))
    return spans


def clip_of_frame(frame: int) -> int | None:
    """Index of the clip a frame shows alone, or None inside a transition."""
    clip = 0
    for k, (first, end) in enumerate(transition_frames()):
        if first <= frame < end:
            return None
        if frame >= end:
            clip = k + 1
    return clip


def make_video(ffmpeg: str, transition: str, out: Path) -> Path:
    args = [ffmpeg, "-y", "-loglevel", "error"]
    for name, start, length, _ in CLIPS:
        args += ["-ss", str(start), "-t", str(length), "-i", str(VIDEOS / name)]
    graph = "".join(f"[{i}:v]scale=640:360,fps={FPS},format=yuv420p,setsar=1[c{i}];" for i in range(len(CLIPS)))
    offset, last = 0.0, "c0"
    for i in range(1, len(CLIPS)):
        offset += CLIPS[i - 1][2] - DURATION_S
        label = "v" if i == len(CLIPS) - 1 else f"x{i}"
        xfade = f"xfade=transition={transition}:duration={DURATION_S}:offset={offset:.3f}"
        graph += f"[{last}][c{i}]{xfade}[{label}];"
        last = label
    encode = ["-map", "[v]", "-c:v", "libx264", "-crf", "20", "-pix_fmt", "yuv420p", str(out)]
    subprocess.run(args + ["-filter_complex", graph.rstrip(";")] + encode, check=True)
    return out


def score_cuts(cuts: list[int]) -> str:
    spans = transition_frames()
    inside = [any(first - 1 <= c <= end + 3 for c in cuts) for first, end in spans]
    false = sum(not any(first - 1 <= c <= end + 3 for first, end in spans) for c in cuts)
    return f"{sum(inside)}/{len(spans)}" + (f" +{false} false" if false else "")


def our_cuts(path: Path) -> list[int]:
    return shots.ours(path)[0]  # benchmarks/shots.py: as `analyze` reads, on every decoded frame


def peer_cuts(path: Path) -> list[int] | None:
    try:
        from scenedetect import AdaptiveDetector, detect
    except ImportError:
        return None
    return [s[0].frame_num for s in detect(str(path), AdaptiveDetector(min_scene_len=8))[1:]]


def people(parquet: Path) -> dict:
    df = pq.read_table(parquet).to_pandas().dropna(subset=["track_id"])
    clip = df["frame_index"].map(clip_of_frame)
    faces = df[clip.notna()].assign(who=[CLIPS[int(c)][3] for c in clip.dropna()])
    persons = faces.dropna(subset=["person_id"])
    return {"tracks holding both": int((faces.groupby("track_id")["who"].nunique() > 1).sum()),
            "person ids holding both": int((persons.groupby("person_id")["who"].nunique() > 1).sum()),
            "person ids": int(df["person_id"].nunique())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fps", type=float, nargs="+", default=[4.0, 0.0], help="sampling rates (0: every frame)")
    parser.add_argument("--transitions", nargs="+", default=TRANSITIONS, help="xfade transition names")
    parser.add_argument("--held-out", action="store_true", help="the other xfade transitions (HELD_OUT)")
    args = parser.parse_args()
    if args.held_out:
        args.transitions = HELD_OUT
    import imageio_ffmpeg

    from emovid.config import AnalyzeConfig
    from emovid.run.pipeline import VideoAnalyzer, VideoTask

    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    analyzers = {fps: VideoAnalyzer(AnalyzeConfig(fps=fps or None), num_threads=2) for fps in args.fps}
    header = ["transition", "emovid cuts", "PySceneDetect Adaptive cuts"]
    for fps in args.fps:
        rate = f"{fps:g} fps" if fps else "every frame"
        header += [f"tracks holding both ({rate})", f"person ids holding both / person ids ({rate})"]
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for transition in args.transitions:
            video = make_video(ffmpeg, transition, tmp / f"{transition}.mp4")
            peer = peer_cuts(video)
            row = [transition, score_cuts(our_cuts(video)), "-" if peer is None else score_cuts(peer)]
            for fps, analyzer in analyzers.items():
                out = tmp / f"{transition}-{fps:g}.parquet"
                analyzer(VideoTask(str(video), transition, str(out)))
                found = people(out)
                row += [str(found["tracks holding both"]), f"{found['person ids holding both']} / {found['person ids']}"]
            print("| " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
    main()
