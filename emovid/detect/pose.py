"""Head pose (yaw, pitch, roll in degrees) from the detector's five landmarks.

A mean face's five points in 3-D are fitted to the landmarks with OpenCV's SQPnP (a globally
optimal perspective-n-point solver), through a pinhole camera whose focal length is the frame's
longer side (a ~53 degree field of view) and whose centre is the frame's. Angles are the head's
rotation relative to a face looking straight into the camera:

- ``yaw`` > 0: the face turns toward the image's right (the person's left);
- ``pitch`` > 0: the face tilts up;
- ``roll`` > 0: the head leans clockwise in the image.

Five points fix roll well (the eye line) and yaw and pitch coarsely: the mean face stands in for
everyone's, so a long nose reads as a turned head. YuNet places landmarks as if a face were
nearer upright than it is, so the landmarks of a tilted face are found again on a copy of it
turned upright (:class:`HeadPose`). docs/analytics.md gives the measured errors.
"""

from __future__ import annotations

from typing import Callable

import cv2
import numpy as np

from emovid.detect.faces import FaceDetections, eye_line_tilt

#: Tilt (degrees) beyond which a face's landmarks are found again on an upright copy: upright
#: faces (most) cost one dlib shape fit (0.4-0.5 ms) and no second detection.
REFINE_TILT = 5.0
#: The tilt fit reads every k-th pixel of a face at least k times this side (px): from 256 px
#: every 2nd, from 384 every 3rd, ..., so it always sees this many pixels across.
TILT_FACE_PX = 128
#: Side (px) a tilted face is shrunk to, at most, to be detected again upright.
UPRIGHT_FACE_PX = 96

#: A mean adult face (mm; x to the image's right, y down, z away from the camera when the face
#: looks into it), in YuNet's landmark order: right eye, left eye, nose tip, right and left mouth
#: corner. Anthropometric means, rounded: pupils 63 mm apart, 33 mm above the nose tip and 30 mm
#: behind it; mouth corners 50 mm apart, 31 mm below the nose tip and 22 mm behind it. Frontal
#: faces in our photos read pitch -7..1 with it (docs/analytics.md).
MEAN_FACE_MM = np.array([
    [-31.5, -33.0, 30.0],
    [31.5, -33.0, 30.0],
    [0.0, 0.0, 0.0],
    [-25.0, 31.0, 22.0],
    [25.0, 31.0, 22.0],
], np.float64)


def head_pose(landmarks: np.ndarray, frame_size: tuple[int, int]) -> np.ndarray:
    """(n, 3) float32 yaw, pitch, roll in degrees for ``landmarks`` (n, 5, 2) in a frame of
    ``frame_size`` (width, height); a row is NaN where no pose fits (degenerate landmarks)."""
    landmarks = np.asarray(landmarks, np.float64)
    if landmarks.ndim != 3 or landmarks.shape[1:] != (5, 2):
        raise ValueError(f"landmarks: expected shape (n, 5, 2), got {landmarks.shape}")
    width, height = frame_size
    focal = float(max(width, height, 1))
    camera = np.array([[focal, 0, width / 2], [0, focal, height / 2], [0, 0, 1]], np.float64)
    angles = np.full((len(landmarks), 3), np.nan, np.float32)
    for i, points in enumerate(landmarks):
        if not np.isfinite(points).all() or np.ptp(points[:, 0]) < 1:
            continue
        ok, rvec, _ = cv2.solvePnP(MEAN_FACE_MM, points, camera, None, flags=cv2.SOLVEPNP_SQPNP)
        if ok:
            angles[i] = rotation_angles(cv2.Rodrigues(rvec)[0])
    return angles


def tilt_backend() -> str:
    """What measures faces' tilt for :class:`HeadPose` on this machine: "dlib-5pt" (the identity
    model's wheels are installed) or "yunet" (its own eye line, which lags a turn)."""
    from emovid.assets import identity_model_installed

    return "dlib-5pt" if identity_model_installed() else "yunet"


class HeadPose:
    """Yaw, pitch and roll of detected faces (:func:`head_pose`), on landmarks found upright.

    YuNet places landmarks as if a face were nearer upright than it is: a face turned 20 degrees
    in the image reads 4-19 degrees, and its yaw drifts with it. dlib's 5-point shape predictor
    (installed with the identity model) follows such a turn within 2 degrees, so it measures
    each face's tilt; a face tilted more than ``REFINE_TILT`` is cut out (twice its size), turned
    upright by that tilt, detected again with ``detect``, and its landmarks mapped back. Without
    dlib, YuNet's own eye line gives the tilt (and lags).

    Args:
        detect: the face detector (:meth:`emovid.detect.faces.FaceDetector.detect`).
    """

    def __init__(self, detect: Callable[[np.ndarray], FaceDetections]) -> None:
        self.detect = detect
        self._shape = None
        try:
            import dlib

            from emovid.assets import face_landmark_model

            self._dlib = dlib
            self._shape = face_landmark_model()
        except ImportError:
            pass

    def __call__(self, frame: np.ndarray, faces: FaceDetections) -> np.ndarray:
        """(n, 3) float32 yaw, pitch, roll of ``faces`` found in ``frame`` (BGR or grey)."""
        return head_pose(self.upright_landmarks(frame, faces), (frame.shape[1], frame.shape[0]))

    def tilts(self, frame: np.ndarray, faces: FaceDetections) -> np.ndarray:
        """(n,) eye-line angle of each face in degrees (> 0: clockwise)."""
        if self._shape is None or not len(faces):
            return eye_line_tilt(faces.landmarks) if len(faces) else np.zeros(0)
        tilts = np.empty(len(faces))
        height, width = frame.shape[:2]
        for i, (x, y, w, h) in enumerate(faces.boxes.astype(float)):
            # dlib fits on grey pixels too: convert only the face and a margin, not the frame
            x0, y0 = max(int(x - w / 4), 0), max(int(y - h / 4), 0)
            x1, y1 = min(int(x + w * 1.25) + 1, width), min(int(y + h * 1.25) + 1, height)
            if x1 <= x0 or y1 <= y0:
                tilts[i] = 0.0
                continue
            # a large face is fitted on every step-th pixel (the fit reads single pixels: no
            # filtering needed), so an HD face costs what a small one does
            step = max(1, int(min(w, h) // TILT_FACE_PX))
            region = frame[y0:y1:step, x0:x1:step]
            grey = np.ascontiguousarray(region if region.ndim == 2 else cv2.cvtColor(region, cv2.COLOR_BGR2GRAY))
            box = ((x - x0) / step, (y - y0) / step, (x + w - x0) / step, (y + h - y0) / step)
            shape = self._shape(grey, self._dlib.rectangle(*(int(v) for v in box)))
            points = np.array([(shape.part(k).x, shape.part(k).y) for k in range(4)], np.float64)
            eyes = sorted((points[0:2].mean(axis=0), points[2:4].mean(axis=0)), key=lambda e: e[0])
            tilts[i] = np.degrees(np.arctan2(eyes[1][1] - eyes[0][1], eyes[1][0] - eyes[0][0]))
        return tilts

    def upright_landmarks(self, frame: np.ndarray, faces: FaceDetections) -> np.ndarray:
        """``faces.landmarks`` (n, 5, 2), those of faces tilted over ``REFINE_TILT`` found again
        on an upright copy (at most ``UPRIGHT_FACE_PX``) and mapped back to ``frame``."""
        refined = faces.landmarks.copy()
        tilts = self.tilts(frame, faces)
        for i in np.flatnonzero(np.abs(tilts) > REFINE_TILT):
            x, y, w, h = (float(v) for v in faces.boxes[i])
            # the face at most UPRIGHT_FACE_PX in a patch twice its size: landmarks as good, detection cheap
            scale = min(1.0, UPRIGHT_FACE_PX / max(w, h, 1.0))
            centre, side = (x + w / 2, y + h / 2), max(int(2 * max(w, h) * scale), 32)
            to_patch = cv2.getRotationMatrix2D(centre, float(tilts[i]), scale)  # > 0 turns counter-clockwise
            to_patch[:, 2] += side / 2 - np.asarray(centre)
            patch = cv2.warpAffine(frame, to_patch, (side, side), flags=cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_REPLICATE)
            found = self.detect(patch)
            if not len(found):
                continue
            k = int(np.argmin(np.linalg.norm(found.boxes[:, :2] + found.boxes[:, 2:] / 2 - side / 2, axis=1)))
            back = cv2.invertAffineTransform(to_patch)
            refined[i] = found.landmarks[k] @ back[:, :2].T.astype(np.float32) + back[:, 2].astype(np.float32)
        return refined


def rotation_angles(rotation: np.ndarray) -> tuple[float, float, float]:
    """Yaw, pitch, roll (degrees, conventions above) of a model-to-camera rotation matrix.

    Yaw and pitch are where the face points (its forward axis, -z in the model); roll is the
    turn about that axis left once yaw and pitch are undone, so each angle means one thing
    whatever the others are.
    """
    forward = rotation @ np.array([0.0, 0.0, -1.0])
    yaw = np.arctan2(forward[0], -forward[2])
    pitch = np.arctan2(-forward[1], np.hypot(forward[0], forward[2]))
    undo = (_about_y(-yaw) @ _about_x(-pitch)).T @ rotation  # a turn about z alone
    roll = np.arctan2(undo[1, 0], undo[0, 0])
    return float(np.degrees(yaw)), float(np.degrees(pitch)), float(np.degrees(roll))


def rotation_from_angles(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """The rotation whose :func:`rotation_angles` are ``yaw, pitch, roll`` (degrees)."""
    y, p, r = np.radians([yaw, pitch, roll])
    return _about_y(-y) @ _about_x(-p) @ _about_z(r)


def _about_x(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _about_y(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _about_z(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
