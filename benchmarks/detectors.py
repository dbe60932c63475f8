"""Face detector comparison on the shared test media: YuNet (emovid's; onnxruntime and OpenCV DNN), ResNet-10 SSD, Haar.

    python benchmarks/detectors.py

Prints a Markdown table: faces found on multi_face.jpg (5 real), single-face photos found,
frames with a face on the sample video (a face is in all of them), false positives on
no_face.mp4 (no face in any frame), and milliseconds per 640x360 frame (1 thread); also YuNet
at smaller detection sizes and other score thresholds (what cheaper detection would lose).

Then two tables of small faces: each of the media's 30 faces shrunk to a given width and set in a
grey frame, (1) how many YuNet finds by the face's width at its input, per score threshold, and
(2) how many emovid's default detector finds in 640, 1280 and 1920 px wide frames.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared"
PHOTOS = ["single_face.jpg", "0-f1-su-ph.jpg", "0-f15-hao-ph.jpg", "15-f13-anc-ph.jpg", "45-m7-di-ph.jpg"]


class Yunet:
    def __init__(self, max_side: int | None = None, backend: str = "onnxruntime", score: float = 0.7):
        from emovid.detect.faces import FaceDetector

        self.detector = FaceDetector(max_side=max_side, backend=backend, score_threshold=score)
        size = f"{max_side} px" if max_side else "emovid default (from min face: 320 px here)"
        self.name = f"YuNet ({backend}), detection at {size} (score {score:g}, min face 20 px)"

    def __call__(self, frame):
        return len(self.detector.detect(frame))


class Ssd:
    name = "ResNet-10 SSD (confidence 0.5)"

    def __init__(self):
        self.net = cv2.dnn.readNetFromCaffe(str(SHARED / "models" / "deploy.prototxt"),
                                            str(SHARED / "models" / "res10_300x300_ssd_iter_140000.caffemodel"))

    def __call__(self, frame):
        blob = cv2.dnn.blobFromImage(cv2.resize(frame, (300, 300)), 1.0, (300, 300), (104.0, 177.0, 123.0))
        self.net.setInput(blob)
        return int((self.net.forward()[0, 0, :, 2] > 0.5).sum())


class Haar:
    name = "Haar cascade (fer settings: 1.1, 5, min 50 px)"

    def __init__(self):
        self.cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")

    def __call__(self, frame):
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        return len(self.cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(50, 50)))


def frames(path: Path):
    cap = cv2.VideoCapture(str(path))
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        yield frame
    cap.release()


def main() -> None:
    cv2.setNumThreads(1)
    video = list(frames(SHARED / "videos" / "WolfgangLanger_Pexels.mp4"))
    faceless = list(frames(SHARED / "videos" / "no_face.mp4"))
    multi = cv2.imread(str(SHARED / "videos" / "multi_face.jpg"))
    photos = [cv2.imread(str(SHARED / "videos" / p)) for p in PHOTOS]
    print("| detector | multi_face.jpg (5 faces) | single-face photos | sample video frames with a face | "
          "no_face.mp4 false positives | ms / 640x360 frame |\n|---|---|---|---|---|---|")
    # the cheaper-detection trade-offs (issue 34): smaller detection images, other score thresholds
    trade_offs = (Yunet(256), Yunet(192), Yunet(score=0.6), Yunet(score=0.8))
    # OpenCV 5 dropped Haar cascades and Caffe models: the peers' rows need OpenCV 4
    baselines = [cls() for cls, needs in ((Ssd, hasattr(cv2.dnn, "readNetFromCaffe")),
                                          (Haar, hasattr(cv2, "CascadeClassifier"))) if needs]
    for detector in (Yunet(640), Yunet(640, "opencv"), Yunet(), Yunet(backend="opencv"), *trade_offs, *baselines):
        found_multi = detector(multi)
        found_photos = sum(min(detector(p), 1) for p in photos)
        start = time.perf_counter()
        with_face = sum(detector(f) > 0 for f in video)
        ms = 1000 * (time.perf_counter() - start) / len(video)
        false_pos = sum(detector(f) for f in faceless)
        print(f"| {detector.name} | {found_multi} | {found_photos}/{len(photos)} | {with_face}/{len(video)} | "
              f"{false_pos} in {len(faceless)} frames | {ms:.1f} |")


def _faces_of_media() -> list[tuple[np.ndarray, np.ndarray]]:
    """(image, face box) for every face YuNet finds at full size in the shared media: the sample
    video once a second, the photos and multi_face.jpg."""
    from emovid.detect.faces import FaceDetector

    detector = FaceDetector(max_side=4000)
    images = list(frames(SHARED / "videos" / "WolfgangLanger_Pexels.mp4"))[::24]
    images += [cv2.imread(str(SHARED / "videos" / p)) for p in (*PHOTOS, "multi_face.jpg")]
    return [(image, box) for image in images for box in detector.detect(image).boxes]


def _found_at(detector, image: np.ndarray, box: np.ndarray, width: float, frame: tuple[int, int]) -> bool:
    """Whether ``detector`` finds the face at ``box`` of ``image`` once the image is shrunk so the
    face is ``width`` px wide and set at the top left of a grey ``frame`` (width, height)."""
    scale = width / box[2]
    small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    canvas = np.full((frame[1], frame[0], 3), 110, np.uint8)
    h, w = min(small.shape[0], frame[1]), min(small.shape[1], frame[0])
    canvas[:h, :w] = small[:h, :w]
    centre = (box[:2] + box[2:] / 2) * scale
    found = detector.detect(canvas).boxes
    return bool(len(found) and (np.abs(found[:, :2] + found[:, 2:] / 2 - centre).max(axis=1) < width / 2).any())


def small_faces() -> None:
    """The two small-face tables (see the module's docstring)."""
    from emovid.detect.faces import FaceDetector

    faces = _faces_of_media()
    widths, thresholds = (10, 12, 16, 20, 24, 32, 48), (0.5, 0.6, 0.7)
    print(f"\nfound of {len(faces)} faces, by the face's width at YuNet's input (no downscaling, 640x360 frames)\n")
    print("| score threshold | " + " | ".join(f"{w} px" for w in widths) + " |\n" + "|---" * (len(widths) + 1) + "|")
    for threshold in thresholds:
        detector = FaceDetector(score_threshold=threshold, min_face=8, max_side=4000)
        found = [sum(_found_at(detector, image, box, w, (640, 360)) for image, box in faces) for w in widths]
        print(f"| {threshold:g} | " + " | ".join(str(n) for n in found) + " |")
    detector, sizes = FaceDetector(), (20, 30, 40, 48, 64)
    print(f"\nfound of {len(faces)} faces by emovid's default detector (min face 20 px, score 0.7), by the "
          "face's width in the frame\n")
    print("| frame | detected at | " + " | ".join(f"{w} px" for w in sizes) + " |\n" + "|---" * (len(sizes) + 2) + "|")
    for frame in ((640, 360), (1280, 720), (1920, 1080)):
        scale = detector.detection_scale(*frame)
        found = [sum(_found_at(detector, image, box, w, frame) for image, box in faces) for w in sizes]
        print(f"| {frame[0]}x{frame[1]} | {round(frame[0] * scale)} px | " + " | ".join(str(n) for n in found) + " |")


if __name__ == "__main__":
    main()
    small_faces()
