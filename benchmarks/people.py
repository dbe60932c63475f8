"""Tracks, shots and persons on generated multi-shot videos with known people: prints a table.

    python benchmarks/people.py [--fps 4 2 0] [--held-out]      # 0 = every frame

Videos are built from the real photos in ../shared (ten different people, and one person in six
expressions), pasted on a different set per shot, with hard cuts:
- "cuts": 10 shots, 2-3 people each, each new shot's people standing where the last shot's stood;
- "interview": shot / reverse-shot, the same two people (one of them with a new expression in each
  of her shots) alternating over 8 shots, with a faceless cutaway in the middle;
- "crossing": two people walk through each other, a cut to them standing in each other's
  starting places, and the walk again;
- "cuts, 0.5 s dissolves": "cuts" with 28-frame shots and 6-frame dissolves between them (the
  blend's frames and people count as the old shot's);
- "cuts, 2 s dissolves": the same with 56-frame shots and 24-frame dissolves;
- "cuts" and "interview" in grey and sepia (no colour, or one tint for every shot);
- "same room": shot / reverse shot of two people, two camera angles of one room (one palette);
- "swap in place": one set and one camera, a cut changes only the person standing in the middle
  (no frame-level detector can see it: only the tracker's own guard keeps people apart).

``--held-out`` runs another family of videos, kept out of tuning: textured sets, other people in
other places, another room, dim, washed-out and low-saturation grey, and real footage (the
clips of ../shared/videos) in grey, joined by hard cuts.

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

from emovid.store.schema import read_metadata  # noqa: E402
from tests.helpers import (VIDEOS, paste, people_heads, recolour, room_background, same_person_heads,  # noqa: E402
                           shot_background, textured_background, write_video)

FRAMES_PER_SHOT = 14
POSITIONS = [60, 250, 440]  # left edges of the three places people stand in
DRIFT = 2  # px per frame


def cuts_scenario(heads, seed=7, positions=POSITIONS):
    """10 shots, 2-3 people each; each shot's people stand where the last shot's stood."""
    rng = np.random.default_rng(seed)
    return [[(int(p), positions[j], 0) for j, p in enumerate(rng.choice(len(heads), size=2 + k % 2, replace=False))]
            for k in range(10)]


def swap_scenario(order=(0, 5, 2, 7, 0, 3, 5, 9)):
    """One person at a time in the middle of one unchanging set; each cut swaps the person."""
    return [[(p, POSITIONS[1], 0)] for p in order]


def room_angles(seed: int, shots: int, size=(640, 360)) -> list[np.ndarray]:
    """Backgrounds of shot / reverse shot in one room: two crops of one wide room, alternating."""
    room = room_background(seed, (1100, size[1]))
    angles = [room[:, :size[0]], room[:, -size[0]:]]
    return [angles[k % 2].copy() for k in range(shots)]


def same_room_scenario(a=2, b=4):
    """Shot / reverse shot of two people in one room: a on the first angle, b on the other."""
    return [[(a if k % 2 == 0 else b, POSITIONS[1] - 60 + 40 * (k % 2), 0)] for k in range(8)]


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


def render(shots, heads, jo, frames_per_shot, size=(640, 360), dissolve=0, backgrounds=None, look="colour"):
    """Frames, per frame the (person, box centre x) of every pasted head, and per frame its true
    shot. With ``dissolve`` > 0 each shot's last ``dissolve`` frames blend into the next shot's
    first ones (which are not shown again): those frames are the old shot's, and their truth is
    None (a blended face is neither person; the measure skips them). ``backgrounds``: one per
    shot (default: :func:`shot_background`'s sets); ``look``: :func:`recolour`'s look of the frames."""
    clips = []
    for k, placed in enumerate(shots):
        background = shot_background(k, size) if backgrounds is None else backgrounds[k]
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
    if look != "colour":
        clips = [[(recolour(canvas, look), here) for canvas, here in clip] for clip in clips]
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
        "identity checks (splits)": "{checked} ({split})".format(**read_metadata(pq.read_schema(parquet)).get(
            "track_checks", {"checked": "-", "split": "-"})),
    }


def real_clips(look: str, size=(640, 360), per_clip=36) -> tuple[list, list, list]:
    """The real clips of ../shared/videos (one person each), ``per_clip`` frames of each, in ``look``,
    joined by hard cuts: a man, a woman, the man again (single_face.mp4 is the start of
    face_noface.mov), the woman again (smiling, where she was sad)."""
    frames, truth, shot_of = [], [], []
    for k, (name, start, who) in enumerate([("face_noface.mov", 0, "man"), ("WolfgangLanger_Pexels.mp4", 40, "woman"),
                                            ("single_face.mp4", 0, "man"), ("WolfgangLanger_Pexels.mp4", 300, "woman")]):
        capture = cv2.VideoCapture(str(VIDEOS / name))
        capture.set(cv2.CAP_PROP_POS_FRAMES, start)
        for _ in range(per_clip):
            ok, image = capture.read()
            if not ok:
                break
            frames.append(recolour(cv2.resize(image, size), look))
            truth.append([(who, size[0] / 2)])
            shot_of.append(k)
        capture.release()
    return frames, truth, shot_of


def scenarios(heads, jo, held_out: bool) -> dict:
    """{name: (frames, truth, shot of each frame)} of the tuned set, or of the held-out one."""
    if held_out:
        textured = [textured_background(k) for k in range(10)]
        places = [100, 300, 470]
        return {
            "cuts, textured sets, dim grey": render(cuts_scenario(heads, 11, places), heads, jo, FRAMES_PER_SHOT,
                                                    backgrounds=textured, look="dim grey"),
            "cuts, textured sets, washed grey": render(cuts_scenario(heads, 12, places), heads, jo, FRAMES_PER_SHOT,
                                                       backgrounds=textured, look="washed grey"),
            "cuts, textured sets, low saturation": render(cuts_scenario(heads, 13, places), heads, jo,
                                                          FRAMES_PER_SHOT, backgrounds=textured, look="low saturation"),
            "same room 2, grey": render(same_room_scenario(6, 1), heads, jo, FRAMES_PER_SHOT,
                                        backgrounds=room_angles(5, 8), look="grey"),
            "swap in place 2, textured, grey": render(swap_scenario((8, 1, 6, 3, 8, 4, 1)), heads, jo, FRAMES_PER_SHOT,
                                                      backgrounds=[textured_background(3)] * 7, look="grey"),
            "real clips, grey": real_clips("grey"),
            "real clips, sepia": real_clips("sepia"),
        }
    swap = swap_scenario()
    return {
        "cuts": render(cuts_scenario(heads), heads, jo, FRAMES_PER_SHOT),
        "interview": render(interview_scenario(heads, jo), heads, jo, FRAMES_PER_SHOT),
        "crossing": render(crossing_scenario(), heads, jo, 30),
        "cuts, 0.5 s dissolves": render(cuts_scenario(heads), heads, jo, 2 * FRAMES_PER_SHOT, dissolve=6),
        "cuts, 2 s dissolves": render(cuts_scenario(heads), heads, jo, 4 * FRAMES_PER_SHOT, dissolve=24),
        "cuts, grey": render(cuts_scenario(heads), heads, jo, FRAMES_PER_SHOT, look="grey"),
        "cuts, sepia": render(cuts_scenario(heads), heads, jo, FRAMES_PER_SHOT, look="sepia"),
        "interview, grey": render(interview_scenario(heads, jo), heads, jo, FRAMES_PER_SHOT, look="grey"),
        "same room": render(same_room_scenario(), heads, jo, FRAMES_PER_SHOT, backgrounds=room_angles(0, 8)),
        "same room, grey": render(same_room_scenario(), heads, jo, FRAMES_PER_SHOT, backgrounds=room_angles(0, 8),
                                  look="grey"),
        "swap in place": render(swap, heads, jo, FRAMES_PER_SHOT, backgrounds=[shot_background(0)] * len(swap)),
        "swap in place, grey": render(swap, heads, jo, FRAMES_PER_SHOT, backgrounds=[shot_background(0)] * len(swap),
                                      look="grey"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fps", type=float, nargs="+", default=[4.0, 2.0, 0.0], help="sampling rates (0: every frame)")
    parser.add_argument("--held-out", action="store_true", help="run the held-out family of videos instead")
    parser.add_argument("--only", nargs="+", help="run only the videos whose names contain one of these")
    args = parser.parse_args()
    from emovid.config import AnalyzeConfig
    from emovid.run.pipeline import VideoAnalyzer, VideoTask

    heads, jo = people_heads(), same_person_heads()
    rows = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        videos = {}
        for k, (name, (frames, truth, shot_of)) in enumerate(scenarios(heads, jo, args.held_out).items()):
            if args.only and not any(word in name for word in args.only):
                continue
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
