"""emovid's shot-cut detector against PySceneDetect's on the same videos: cuts found, false cuts, time.

    pip install scenedetect   # only for this comparison; emovid does not depend on it
    python benchmarks/shots.py

Videos: the generated multi-shot videos of benchmarks/people.py (hard cuts between sets, people
walking), a fast horizontal pan over one set (no cut), and the real videos in ../shared/videos
(two single shots; face_noface.mov cuts to black and then to sky at frame 72), fades through
black and dissolves between four shots (two people at one place), and a pan over a photo
(no cut). A cut counts as found within one frame (within the fade for fades, within the blend
and the two frames after it for dissolves).
Each detector reads the whole video itself (decode included);
emovid's runs as `analyze` runs it, on every decoded frame.
"""

from __future__ import annotations

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
    from emovid.shots import ShotDetector
    from emovid.video import VideoReader

    start = time.perf_counter()
    with VideoReader(path, None, decode_threads=1, shots=ShotDetector()) as reader:
        shots = [f.shot for f in reader.frames()]
    cuts = [i for i in range(1, len(shots)) if shots[i] != shots[i - 1]]
    return cuts, time.perf_counter() - start, len(shots)


def pyscenedetect(path: Path, adaptive: bool) -> tuple[list[int], float]:
    from scenedetect import AdaptiveDetector, ContentDetector, detect

    start = time.perf_counter()
    # min_scene_len: 4 frames (0.33 s at 12 fps) like emovid's 0.3 s; its default of 15 frames hides
    # every cut of shots shorter than that
    detector = AdaptiveDetector(min_scene_len=4) if adaptive else ContentDetector(min_scene_len=4)
    scenes = detect(str(path), detector)
    return [s[0].frame_num for s in scenes[1:]], time.perf_counter() - start


def pan_video(path: Path) -> Path:
    wide = np.concatenate([shot_background(k, (640, 360)) for k in (0, 0, 0)], axis=1)  # one set, 1920 px wide
    wide = (wide * np.linspace(0.6, 1.0, wide.shape[1])[None, :, None]).astype(np.uint8)
    return write_video(path, [wide[:, i * 40:i * 40 + 640] for i in range(32)], fps=12)


def score(found: list[int], truth: list[int], tolerance: int = 1) -> str:
    hits = sum(any(abs(f - t) <= tolerance for f in found) for t in truth)
    false = sum(not any(abs(f - t) <= tolerance for t in truth) for f in found)
    # a second cut within one true cut's tolerance (e.g. into and out of a fade) splits a shot in two
    doubled = sum(max(0, sum(abs(f - t) <= tolerance for f in found) - 1) for t in truth)
    return f"{hits}/{len(truth)} found, {false} false" + (f", {doubled} doubled" if doubled else "")


def main() -> None:
    heads, jo = people_heads(), same_person_heads()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
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
        print("| video | emovid | ms / frame | PySceneDetect ContentDetector | ms / frame | AdaptiveDetector | ms / frame |")
        print("|---|---|---|---|---|---|---|")
        for name, path, truth, tol in cases:
            mine, t_mine, n = ours(path)
            content, t_content = pyscenedetect(path, adaptive=False)
            adaptive, t_adaptive = pyscenedetect(path, adaptive=True)
            print(f"| {name} ({n} frames, {len(truth)} cuts) | {score(mine, truth, tol)} | {1000 * t_mine / n:.2f} | "
                  f"{score(content, truth, tol)} | {1000 * t_content / n:.2f} | {score(adaptive, truth, tol)} | "
                  f"{1000 * t_adaptive / n:.2f} |")


if __name__ == "__main__":
    main()
