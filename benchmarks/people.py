"""Tracks, shots and persons on generated multi-shot videos with known people: prints a table.

    python benchmarks/people.py [--fps 4 2 0]      # 0 = every frame

Videos are built from the real photos in ../shared (ten different people, and one person in six
expressions), pasted on a different set per shot, with hard cuts:
- "cuts": 10 shots, 2-3 people each, each new shot's people standing where the last shot's stood;
- "interview": shot / reverse-shot, the same two people (one of them with a new expression in each
  of her shots) alternating over 8 shots, with a faceless cutaway in the middle;
- "crossing": two people walk through each other, a cut to them standing in each other's
  starting places, and the walk again;
- "cuts, 0.5 s dissolves": "cuts" with 28-frame shots and 6-frame dissolves between them (the
  blend's frames and people count as the old shot's);
- "cuts, 2 s dissolves": the same with 56-frame shots and 24-frame dissolves.

Per video and sampling rate: tracks holding more than one person (must be 0), extra tracks per
person per shot, cuts found vs true cuts, persons found (every person id in the file) vs true
persons, and person ids that hold more than one person.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.helpers import paste, people_heads, same_person_heads, shot_background, write_video  # noqa: E402

FRAMES_PER_SHOT = 14
POSITIONS = [60, 250, 440]  # left edges of the three places people stand in
DRIFT = 2  # px per frame


def cuts_scenario(heads):
    """10 shots, 2-3 people each; each shot's people stand where the last shot's stood."""
    rng = np.random.default_rng(7)
    return [[(int(p), POSITIONS[j], 0) for j, p in enumerate(rng.choice(len(heads), size=2 + k % 2, replace=False))]
            for k in range(10)]


def interview_scenario(heads, jo):
    """Shot / reverse shot: jo (a new expression each time) and person 4 alternate in one place, with a
    faceless cutaway in the middle."""
    expressions = list(jo)
    shots = []
    for k in range(8):
        if k == 4:
            shots.append([])
        elif k % 2 == 0:
            shots.append([(f"jo:{expressions[k // 2]}", POSITIONS[1], 0)])
        else:
            shots.append([(4, POSITIONS[1], 0)])
    return shots


def crossing_scenario():
    """Two people walk through each other on one line (15 px a frame), then a cut to both of them
    standing in each other's starting places, then a cut back to the walk."""
    walk = [(1, 40, 15), (3, 500, -15)]
    return [walk, [(1, 500, 0), (3, 40, 0)], walk]


def render(shots, heads, jo, frames_per_shot, size=(640, 360), dissolve=0):
    """Frames, per frame the (person, box centre x) of every pasted head, and per frame its true
    shot. With ``dissolve`` > 0 each shot's last ``dissolve`` frames blend into the next shot's
    first ones (which are not shown again): those frames are the old shot's, and their truth is
    None (a blended face is neither person; the measure skips them)."""
    clips = []
    for k, placed in enumerate(shots):
        background = shot_background(k, size)
        clip = []
        for i in range(frames_per_shot):
            canvas, here = background.copy(), []
            for who, x, vx in placed:
                patch = jo[who.split(":")[1]] if isinstance(who, str) else heads[who]
                left = x + (vx or DRIFT) * i
                paste(canvas, patch, left, 100)
                here.append(("jo" if isinstance(who, str) else who, left + patch.shape[1] / 2))
            clip.append((canvas, here))
        clips.append(clip)
    frames, truth, shot_of = [], [], []
    for k, clip in enumerate(clips):
        if dissolve and k < len(clips) - 1:
            following = clips[k + 1]
            for j in range(dissolve):
                share = (j + 1) / (dissolve + 1)
                canvas, here = clip[-dissolve + j]
                clip[-dissolve + j] = (cv2.addWeighted(canvas, 1 - share, following[j][0], share, 0), None)
            clips[k + 1] = following[dissolve:]
        for canvas, here in clip:
            frames.append(canvas)
            truth.append(here)
            shot_of.append(k)
    return frames, truth, shot_of


def measure(parquet: Path, truth: list[list], shot_of: list[int]) -> dict:
    df = pq.read_table(parquet).to_pandas()
    tracked = df.dropna(subset=["track_id"])
    faces = tracked[[truth[f] is not None for f in tracked["frame_index"]]].copy()  # blended frames: skipped
    true_shot = faces["frame_index"].map(lambda f: shot_of[f]).astype(int)
    faces["person"] = [str(min(truth[f], key=lambda p: abs(p[1] - (x + w / 2)))[0])
                       for f, x, w in zip(faces["frame_index"], faces["x"], faces["w"])]
    person_shots = faces.assign(true_shot=true_shot).groupby(["person", "true_shot"]).ngroups
    n_shots = shot_of[-1] + 1
    return {
        "tracks holding >1 person": int((faces.groupby("track_id")["person"].nunique() > 1).sum()),
        "extra tracks per person-shot": round((faces["track_id"].nunique() - person_shots) / person_shots, 3),
        "cuts found / true": f"{int(df['shot'].max())} / {n_shots - 1}",
        "shot index right": f"{(faces['shot'] == true_shot).mean():.0%}",
        # as a user counts them: every person id in the file, the blends' faces included
        "persons found / true": f"{tracked['person_id'].nunique()} / {faces['person'].nunique()}",
        "person ids holding >1 person": int((faces.groupby("person_id")["person"].nunique() > 1).sum()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fps", type=float, nargs="+", default=[4.0, 2.0, 0.0], help="sampling rates (0: every frame)")
    args = parser.parse_args()
    from emovid.config import AnalyzeConfig
    from emovid.pipeline import VideoAnalyzer, VideoTask

    heads, jo = people_heads(), same_person_heads()
    scenarios = {"cuts": (cuts_scenario(heads), FRAMES_PER_SHOT, 0),
                 "interview": (interview_scenario(heads, jo), FRAMES_PER_SHOT, 0),
                 "crossing": (crossing_scenario(), 30, 0),
                 "cuts, 0.5 s dissolves": (cuts_scenario(heads), 2 * FRAMES_PER_SHOT, 6),
                 "cuts, 2 s dissolves": (cuts_scenario(heads), 4 * FRAMES_PER_SHOT, 24)}
    rows = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        videos = {}
        for k, (name, (shots, length, dissolve)) in enumerate(scenarios.items()):
            frames, truth, shot_of = render(shots, heads, jo, length, dissolve=dissolve)
            videos[name] = (write_video(tmp / f"video{k}.mp4", frames, fps=12), truth, shot_of)
        for fps in args.fps:
            analyzer = VideoAnalyzer(AnalyzeConfig(fps=fps or None), num_threads=2)
            for name, (video, truth, shot_of) in videos.items():
                out = tmp / f"{video.stem}-{fps}.parquet"
                analyzer(VideoTask(str(video), name, str(out)))
                rows.append({"video": name, "sampling": f"{fps:g} fps" if fps else "every frame",
                             **measure(out, truth, shot_of)})
    keys = list(rows[0])
    print("| " + " | ".join(keys) + " |\n|" + "---|" * len(keys))
    for row in rows:
        print("| " + " | ".join(str(row[k]) for k in keys) + " |")


if __name__ == "__main__":
    main()
