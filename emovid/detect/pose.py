"""Head pose (yaw, pitch, roll in degrees) from the detector's five landmarks.

A mean face's five points in 3-D are fitted to the landmarks with OpenCV's SQPnP (a globally
optimal perspective-n-point solver), through a pinhole camera whose focal length is the frame's
longer side (a ~53 degree field of view) and whose centre is the frame's. Angles are the head's
rotation relative to a face looking straight into the camera:

- ``yaw`` > 0: the face turns toward the image's right (the person's left);
- ``pitch`` > 0: the face tilts up;
- ``roll`` > 0: the head leans clockwise in the image.

Five points fix roll well (the eye line) and yaw and pitch coarsely: the mean face stands in for
everyone's, so a long nose reads as a turned head. docs/analytics.md gives the measured errors.
"""

from __future__ import annotations

import cv2
import numpy as np

#: A mean adult face (mm; x to the image's right, y down, z away from the camera when the face
#: looks into it), in YuNet's landmark order: right eye, left eye, nose tip, right and left mouth
#: corner. Widths and depths are anthropometric means (pupils 63 mm apart, mouth 50 mm wide,
#: eyes 30 mm and mouth corners 22 mm behind the nose tip); heights are set so that frontal faces
#: in our photos read 0 pitch on average (docs/analytics.md).
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
