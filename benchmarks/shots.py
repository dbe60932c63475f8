"""emovid's shot-cut detector against PySceneDetect's on the same videos: cuts found, false cuts, time.

    pip install scenedetect   # only for this comparison; emovid does not depend on it
    python benchmarks/shots.py [--held-out]

Videos: the generated multi-shot videos of benchmarks/people.py (hard cuts between sets, people
walking), a fast horizontal pan over one set (no cut), and the real videos in ../shared/videos
(two single shots; face_noface.mov cuts to black and then to sky at frame 72), fades through
black and dissolves between four shots (two people at one place), and a pan over a photo
(no cut); then people.py's videos without colour or with one palette (grey, sepia, two angles
of one room, and a cut that swaps only a face, which no frame-level detector can see).
``--held-out`` runs people.py's held-out family instead (textured sets in dim, washed-out and
low-saturation grey, another room, real clips in grey and sepia joined by cuts).
A cut counts as found within one frame (within the fade for fades, within the blend and the
two frames after it for dissolves). Each detector reads the whole video itself (decode
included); emovid's runs as `analyze` runs it, on every decoded frame.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.helpers import VIDEOS, people_heads, same_person_heads, shot_background, shots_video, write_video  # noqa: E402

import people  # noqa: E402  (benchmarks/people.py: the generated scenarios)


def ours(path: Path) -> tuple[list[int], float, int]:
    from emovid.people.labels import PREROLL_SHOT_S, ShotLabels
    from emovid.people.shots import ShotDetector
    from emovid.media.video import VideoReader

    start = time.perf_counter()
    with VideoReader(path, None, decode_threads=1, context_s=PREROLL_SHOT_S) as reader:
        shots = [f.shot for f in ShotLabels(ShotDetector(), reader.info.fps).frames(reader.decoded())]
    cuts = [i for i in range(1, len(shots)) if shots[i] != shots[i - 1]]
    return cuts, time.perf_counter() - start, len(shots)


#: PySceneDetect's detectors, each with its defaults but for min_scene_len: 4 frames (0.33 s at
#: 12 fps) like emovid's 0.3 s; its default of 15 frames hides every cut of shots shorter than that.
PYSCENEDETECT = ("ContentDetector", "AdaptiveDetector", "HistogramDetector", "HashDetector")


def pyscenedetect(path: Path, name: str) -> tuple[list[int], float]:
    import scenedetect

    start = time.perf_counter()
    scenes = scenedetect.detect(str(path), getattr(scenedetect, name)(min_scene_len=4))
    return [s[0].frame_num for s in scenes[1:]], time.perf_counter() - start


def pan_video(path: Path) -> Path:
    wide = np.concatenate([shot_background(k, (640, 360)) for k in (0, 0, 0)], axis=1)  # one set, 1920 px wide
    wide = (wide * np.linspace(0.6, 1.0, wide.shape[1])[None, :, None]).astype(np.uint8)
    return write_video(path, [wide[:, i * 40:i * 40 + 640] for i in range(32)], fps=12)


def count(found: list[int], truth: list[int], tolerance: int = 1) -> tuple[int, int]:
    """(true cuts found, false cuts) within ``tolerance`` frames."""
    hits = sum(any(abs(f - t) <= tolerance for f in found) for t in truth)
    return hits, sum(not any(abs(f - t) <= tolerance for t in truth) for f in found)


def score(found: list[int], truth: list[int], tolerance: int = 1) -> str:
    hits, false = count(found, truth, tolerance)
    # a second cut within one true cut's tolerance (e.g. into and out of a fade) splits a shot in two
    doubled = sum(max(0, sum(abs(f - t) <= tolerance for f in found) - 1) for t in truth)
    return f"{hits}/{len(truth)} found, {false} false" + (f", {doubled} doubled" if doubled else "")


def colourless_cases(tmp: Path, heads, jo, held_out: bool) -> list[tuple[str, Path, list[int], int]]:
    """The people benchmark's videos without colour or with one palette (hard cuts only)."""
    cases = []
    for name, (frames, _, shot_of) in people.scenarios(heads, jo, held_out).items():
        cuts = [i for i in range(1, len(shot_of)) if shot_of[i] != shot_of[i - 1]]
        if "dissolves" in name:
            continue
        cases.append((name, write_video(tmp / f"{len(cases)}.mp4", frames, fps=12), cuts, 1))
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--held-out", action="store_true", help="only the held-out videos of benchmarks/people.py")
    args = parser.parse_args()
    heads, jo = people_heads(), same_person_heads()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        cases = [] if args.held_out else builtin_cases(tmp, heads, jo)
        cases += [(n, p, t, tol) for n, p, t, tol in colourless_cases(tmp, heads, jo, args.held_out)
                  if args.held_out or n not in {"cuts", "interview", "crossing"}]
        print("| video | emovid | " + " | ".join(PYSCENEDETECT) + " |")
        print("|---|---|" + "---|" * len(PYSCENEDETECT))
        totals = {name: [0, 0, 0] for name in ("emovid", *PYSCENEDETECT)}
        for name, path, truth, tol in cases:
            found = {"emovid": ours(path)[0]}
            found.update({d: pyscenedetect(path, d)[0] for d in PYSCENEDETECT})
            cells = []
            for d, cuts in found.items():
                hits, false = count(cuts, truth, tol)
                totals[d][0] += hits
                totals[d][1] += len(truth)
                totals[d][2] += false
                cells.append(score(cuts, truth, tol))
            print(f"| {name} ({len(truth)} cuts) | " + " | ".join(cells) + " |")
        print("| **all** | " + " | ".join(f"**{h}/{n} found, {f} false**" for h, n, f in totals.values()) + " |")
        _, t_ours, n = ours(cases[-1][1])
        t_theirs = {d: pyscenedetect(cases[-1][1], d)[1] for d in PYSCENEDETECT}
        print(f"\nms per frame, decode included, on '{cases[-1][0]}': emovid {1000 * t_ours / n:.2f}, " +
              ", ".join(f"{d} {1000 * t / n:.2f}" for d, t in t_theirs.items()))


def builtin_cases(tmp: Path, heads, jo) -> list[tuple[str, Path, list[int], int]]:
    """The colour cases: people's scenarios, a pan, fades, dissolves and the real clips."""
    cases = []
    for name, (shots, length) in {"cuts": (people.cuts_scenario(heads), people.FRAMES_PER_SHOT),
                                  "interview": (people.interview_scenario(heads, jo), people.FRAMES_PER_SHOT),
                                  "crossing": (people.crossing_scenario(), 30)}.items():
        frames, _, _ = people.render(shots, heads, jo, length)
        cases.append((name, write_video(tmp / f"{name}.mp4", frames, fps=12),
                      [k * length for k in range(1, len(shots))], 1))
    cases.append(("fast pan (40 px a frame)", pan_video(tmp / "pan.mp4"), [], 1))
    # fades through black, 0.5 s and 1 s out and in: a cut anywhere within the fade counts
    faded = [[(heads[k], (250, 100))] for k in range(4)]
    for fade in (6, 12):
        cases.append((f"fades through black, {fade / 12:g} s each way (4 shots)",
                      shots_video(tmp / f"fades{fade}.mp4", faded, frames_per_shot=48, fps=12, fade=fade),
                      [48, 96, 144], fade))
    # dissolves of 0.5 to 3 s: the blend's frames and the two after it count
    for blend in (6, 12, 24, 36):
        per_shot = max(48, 2 * blend + 24)
        video = shots_video(tmp / f"dissolves{blend}.mp4", faded, frames_per_shot=per_shot, fps=12, dissolve=blend)
        ends = [per_shot + k * (per_shot - blend) for k in range(3)]  # where each new shot's own frames begin
        cases.append((f"dissolves, {blend / 12:g} s (4 shots)", video, [e - blend // 2 + 1 for e in ends],
                      blend // 2 + 1))
    # face_noface.mov cuts from the face to black at frame 72 (and from black to sky one frame later)
    for name, truth in (("WolfgangLanger_Pexels.mp4", []), ("single_face.mp4", []), ("face_noface.mov", [72])):
        cases.append((name, VIDEOS / name, truth, 1))
    return cases

if __name__ == "__main__":
    main()
