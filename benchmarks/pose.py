"""Head pose against poses we know: photos turned in the image plane and mirrored.

Roll: each photo is turned by -30..30 degrees; the roll change read (against the photo as it is)
should equal the turn (OpenCV turns counter-clockwise for a positive angle; our roll is
clockwise-positive). Reported with the landmarks as YuNet finds them and after
:class:`emovid.detect.pose.HeadPose` (landmarks found again on an upright copy of a tilted face). Yaw: a mirror must flip its sign and keep pitch.

    python benchmarks/pose.py [photos ...]   (default: the one-face photos in tests/data)
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

from emovid.detect.faces import FaceDetector
from emovid.detect.pose import HeadPose, head_pose

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"
TURNS = (-30, -20, -10, 10, 20, 30)


def pose(detector: FaceDetector, image: np.ndarray, refine: bool = True) -> np.ndarray:
    faces = detector.detect(image).largest()
    if not len(faces):
        return np.full(3, np.nan)
    if refine:
        return _head_pose(detector)(image, faces)[0]
    return head_pose(faces.landmarks, (image.shape[1], image.shape[0]))[0]


_MADE: dict[int, HeadPose] = {}


def _head_pose(detector: FaceDetector) -> HeadPose:
    return _MADE.setdefault(id(detector), HeadPose(detector.detect))


def main(argv: list[str]) -> int:
    photos = [Path(p) for p in argv] or [p for p in sorted(DATA.glob("*.jpg")) if p.name != "multi_face.jpg"]
    detector = FaceDetector()
    print("| photo | yaw, pitch, roll as it is | mirrored | roll change error, as found (mean / max) | HeadPose (upright "
          "landmarks) | HeadPose: yaw / pitch drift on turned copies (mean abs) |")
    print("|---|---|---|---|---|---|")
    found_err, upright_err, drift = [], [], []
    for path in photos:
        image = cv2.imread(str(path))
        if image is None or not len(detector.detect(image)):
            continue
        h, w = image.shape[:2]
        still, mirrored = pose(detector, image), pose(detector, cv2.flip(image, 1))
        errors = {False: [], True: []}
        moved = []
        for turn in TURNS:
            turned = cv2.warpAffine(image, cv2.getRotationMatrix2D((w / 2, h / 2), turn, 1), (w, h),
                                    borderMode=cv2.BORDER_REPLICATE)
            for refine in (False, True):
                base, seen = pose(detector, image, refine), pose(detector, turned, refine)
                errors[refine].append(abs(seen[2] - base[2] + turn))
            moved.append(np.abs(seen[:2] - base[:2]))
        found_err += errors[False]
        upright_err += errors[True]
        drift += moved
        print(f"| {path.name} | {still[0]:.0f}, {still[1]:.0f}, {still[2]:.0f} | {mirrored[0]:.0f}, {mirrored[1]:.0f}, "
              f"{mirrored[2]:.0f} | {np.mean(errors[False]):.1f} / {np.max(errors[False]):.1f} | "
              f"{np.mean(errors[True]):.1f} / {np.max(errors[True]):.1f} | "
              f"{np.mean(moved, axis=0)[0]:.1f} / {np.mean(moved, axis=0)[1]:.1f} |")
    print(f"| all ({len(found_err)} turned copies) | | | {np.mean(found_err):.1f} / {np.max(found_err):.1f} | "
          f"{np.mean(upright_err):.1f} / {np.max(upright_err):.1f} | "
          f"{np.mean(drift, axis=0)[0]:.1f} / {np.mean(drift, axis=0)[1]:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
