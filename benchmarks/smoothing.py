"""Does smoothing the emotion timeline help? Raw vs smoothed labels on a generated labelled video.

    python benchmarks/smoothing.py

The video (12 fps, about 70 s) is built from labelled photos in ../shared/data/seed: the one
person of the live-test photos changing expression every 2 s within a shot (twice through her
six expressions), then 30 of the training photos' people, 1.5 s each in a shot of their own;
each frame jitters a few pixels, in brightness and with sensor noise. Prints, at 4 fps and at
every frame, the share of face rows whose label matches the photo's and the label flips within
tracks, raw and for each smoothing time constant.
"""
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.helpers import LIVE_TEST, SEED, _head, paste, shot_background, write_video  # noqa: E402

import emovid  # noqa: E402
from emovid.classify.labels import canonical_emotion  # noqa: E402

rng = np.random.default_rng(0)
segments = []  # (patch, label, seconds, shot)
jo = {canonical_emotion(f.name): _head(cv2.imread(str(next(f.iterdir()))), 130) for f in sorted(LIVE_TEST.iterdir())}
shot = 0
for k in range(2):  # jo changing expression within one shot, twice over
    for emo in rng.permutation(list(jo)):
        segments.append((jo[emo], emo, 2.0, shot))
    shot += 1
files = sorted(p for p in (SEED / 'training').rglob('*.jpg'))
for f in rng.permutation(files)[:30]:  # other people, one shot each
    img = cv2.imread(str(f))
    try: patch = _head(img, 130)
    except RuntimeError: continue
    segments.append((patch, canonical_emotion(f.parent.name), 1.5, shot)); shot += 1
fps = 12
frames, labels = [], []
for patch, emo, secs, s in segments:
    bg = shot_background(s)
    for i in range(int(secs * fps)):
        canvas = bg.copy()
        dx, dy = rng.integers(-4, 5, 2)
        g = rng.uniform(0.85, 1.15)
        p = np.clip(patch.astype(float) * g + rng.normal(0, 4, patch.shape), 0, 255).astype(np.uint8)
        paste(canvas, p, 250 + dx, 100 + dy)
        frames.append(canvas); labels.append(emo)
import tempfile  # noqa: E402

out = Path(tempfile.mkdtemp(prefix="emovid-smoothing-"))
video = write_video(out / 'labelled.mp4', frames, fps=fps)
res = out / 'res'
print("| sampling | smoothing (s) | label right | label flips within tracks |\n|---|---|---|---|")
for fps_s in (4.0, None):
    tag = 'every' if fps_s is None else f'{fps_s:g}'
    emovid.analyze(video, res / tag, fps=fps_s or 4.0, every_frame=fps_s is None, in_process=True, progress=False, overwrite=True)
    rows = []
    for w in (None, 0.25, 0.5, 1.0, 2.0, 4.0):
        df = emovid.read_results(res / tag, smooth=w) if w else emovid.read_results(res / tag)
        df = df.dropna(subset=['track_id'])
        truth = np.array([labels[i] for i in df['frame_index']])
        pred = df['smooth_emotion' if w else 'emotion'].astype(str).to_numpy()
        acc = (pred == truth).mean()
        # flips: label changes within a track per second
        flips = sum((g[ 'smooth_emotion' if w else 'emotion'].astype(str).to_numpy()[1:] != g['smooth_emotion' if w else 'emotion'].astype(str).to_numpy()[:-1]).sum() for _, g in df.groupby('track_id'))
        print(f"| {tag} ({len(df)} face rows) | {w or 'raw'} | {acc:.1%} | {flips} |")
