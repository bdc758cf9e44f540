"""Head pose (yaw, pitch, roll in degrees) from the 68 landmarks, by cv2.solvePnP against a generic 3-D face.

Axes and signs (angles of the person's head as seen by the camera; 0, 0, 0 faces the camera upright):
    yaw   > 0 when the person turns to their left (the nose moves to the image's right),
    pitch > 0 when the person looks up (the nose moves up in the image),
    roll  > 0 when the person tilts their head towards their left shoulder (the face turns clockwise in
          the image; a face rotated with cv2.getRotationMatrix2D by +a degrees reads roll -a).
The rotation from the face's own axes to the camera's (x right, y down, z forward) is
R = Rz(roll) · Ry(-yaw) · Rx(-pitch): pitch first, then yaw, then roll in the image plane, so an
in-plane rotation of the image changes roll alone. Mirroring an image negates yaw and roll.

The camera is a pinhole with focal length max(width, height) pixels (a 53° horizontal view on a 16:9
frame, close to a laptop camera) and its principal point mid-frame, unless a camera matrix is given.
"""
from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from .types import FaceLandmarks, Frame

#: The generic 3-D face, (68, 3), inter-ocular distance 1, x right, y down, z away from the camera
#: (the nose tip is nearest). Recovered by `python -m train.build_face3d` from the 1,215 300-W
#: training faces and their mirror images by rigid affine factorization (Tomasi-Kanade with the
#: orthographic metric upgrade), then made exactly left/right symmetric: no outside model is used.
FACE_3D = np.array([
    [-0.828, -0.414, 0.848], [-0.821, -0.197, 0.803], [-0.798, 0.019, 0.778], [-0.752, 0.229, 0.751],
    [-0.665, 0.423, 0.660], [-0.532, 0.592, 0.513], [-0.371, 0.733, 0.328], [-0.196, 0.844, 0.147],
    [0.000, 0.876, 0.082], [0.196, 0.844, 0.147], [0.371, 0.733, 0.328], [0.532, 0.592, 0.513],
    [0.665, 0.423, 0.660], [0.752, 0.229, 0.751], [0.798, 0.019, 0.778], [0.821, -0.197, 0.803],
    [0.828, -0.414, 0.848], [-0.667, -0.578, 0.146], [-0.568, -0.673, -0.024], [-0.424, -0.706, -0.162],
    [-0.273, -0.688, -0.273], [-0.131, -0.635, -0.351], [0.131, -0.635, -0.351], [0.273, -0.688, -0.273],
    [0.424, -0.706, -0.162], [0.568, -0.673, -0.024], [0.667, -0.578, 0.146], [0.000, -0.460, -0.344],
    [0.000, -0.321, -0.439], [0.000, -0.184, -0.547], [0.000, -0.043, -0.654], [-0.171, 0.060, -0.340],
    [-0.089, 0.089, -0.393], [0.000, 0.113, -0.424], [0.089, 0.089, -0.393], [0.171, 0.060, -0.340],
    [-0.500, -0.434, 0.029], [-0.410, -0.484, -0.049], [-0.303, -0.484, -0.076], [-0.208, -0.415, -0.071],
    [-0.308, -0.397, -0.070], [-0.416, -0.398, -0.043], [0.208, -0.415, -0.071], [0.303, -0.484, -0.076],
    [0.410, -0.484, -0.049], [0.500, -0.434, 0.029], [0.416, -0.398, -0.043], [0.308, -0.397, -0.070],
    [-0.318, 0.321, 0.028], [-0.201, 0.271, -0.201], [-0.081, 0.246, -0.327], [0.000, 0.266, -0.340],
    [0.081, 0.246, -0.327], [0.201, 0.271, -0.201], [0.318, 0.321, 0.028], [0.205, 0.437, -0.127],
    [0.087, 0.487, -0.235], [0.000, 0.496, -0.250], [-0.087, 0.487, -0.235], [-0.205, 0.437, -0.127],
    [-0.270, 0.327, -0.002], [-0.082, 0.314, -0.292], [0.000, 0.322, -0.308], [0.082, 0.314, -0.292],
    [0.270, 0.327, -0.002], [0.083, 0.383, -0.251], [0.000, 0.393, -0.266], [-0.083, 0.383, -0.251],
])

#: Column names of `FaceLandmarks.pose`, in order.
POSE_COLUMNS = ("yaw", "pitch", "roll")


def camera_matrix(size: tuple[int, int], focal: float | None = None) -> np.ndarray:
    """3x3 pinhole for a frame of `size` = (width, height) pixels, principal point mid-frame
    (0-based pixel centres), focal length `focal` pixels or max(width, height)."""
    w, h = size
    f = float(focal or max(w, h))
    return np.array([[f, 0, (w - 1) / 2], [0, f, (h - 1) / 2], [0, 0, 1]], np.float64)


def rotation_from_angles(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """R = Rz(roll) · Ry(-yaw) · Rx(-pitch), angles in degrees (see the module docstring)."""
    a, b, c = np.radians([-pitch, -yaw, roll])
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return rz @ ry @ rx


def angles_from_rotation(r: np.ndarray) -> np.ndarray:
    """(yaw, pitch, roll) in degrees of a rotation matrix; inverse of `rotation_from_angles` for |yaw| < 90°."""
    b = np.arctan2(-r[2, 0], np.hypot(r[0, 0], r[1, 0]))
    a = np.arctan2(r[2, 1], r[2, 2])
    c = np.arctan2(r[1, 0], r[0, 0])
    return np.degrees([-b, -a, c])


def _upright_guess(points: np.ndarray, camera: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A starting pose facing the camera, rolled like the eye line, at the distance its size implies.

    Started from nothing, the solver sometimes settles on the mirror-image solution (a face turned
    away from the camera, rolled by 180°); from here it finds the nearer, real one.
    """
    eyes = points[45] - points[36]
    roll = np.degrees(np.arctan2(eyes[1], eyes[0]))
    z = camera[0, 0] / max(float(np.hypot(*eyes)), 1e-6)           # FACE_3D's inter-ocular distance is 1
    centre = points.mean(axis=0)
    t = np.array([(centre[0] - camera[0, 2]) * z / camera[0, 0], (centre[1] - camera[1, 2]) * z / camera[1, 1], z])
    return cv2.Rodrigues(rotation_from_angles(0.0, 0.0, roll))[0], t.reshape(3, 1)


def solve_pose(points: np.ndarray, camera: np.ndarray, guess: tuple[np.ndarray, np.ndarray] | None = None):
    """(rvec, tvec) of one face's (68, 2) landmarks, the solver started from `guess` (a previous
    (rvec, tvec), e.g. the same face's last frame) or from an upright face facing the camera."""
    pts = np.ascontiguousarray(points, np.float64).reshape(-1, 1, 2)
    rvec, tvec = guess if guess is not None else _upright_guess(pts.reshape(-1, 2), camera)
    _, rvec, tvec = cv2.solvePnP(FACE_3D, pts, camera, None, rvec.copy(), tvec.copy(), useExtrinsicGuess=True,
                                 flags=cv2.SOLVEPNP_ITERATIVE)
    return rvec, tvec


def head_pose(xy: np.ndarray, size: tuple[int, int], camera: np.ndarray | None = None) -> np.ndarray:
    """(n, 3) float32 [yaw, pitch, roll] degrees of (n, 68, 2) landmarks in a frame of `size` = (width, height)."""
    camera = camera_matrix(size) if camera is None else camera
    out = [angles_from_rotation(cv2.Rodrigues(solve_pose(p, camera)[0])[0]) for p in np.reshape(xy, (-1, 68, 2))]
    return np.asarray(out, np.float32).reshape(-1, 3)


class PoseTracker:
    """Wraps a tracker: `update(frame) -> FaceLandmarks` with `pose` filled in.

    Each track's solver starts from that track's previous pose. The landmarks it reads are the
    tracker's own One Euro-smoothed ones, so the pose is smoothed by the same filter, with no
    second filter and no added lag.

    Args:
        tracker: anything with `update(frame) -> FaceLandmarks` (track ids keep the solver's memory).
        camera: a 3x3 camera matrix, or None for `camera_matrix(frame size)`.
    """

    def __init__(self, tracker, camera: np.ndarray | None = None):
        self.tracker, self.camera = tracker, camera
        self._last: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    @property
    def detector_runs(self) -> int:
        return getattr(self.tracker, "detector_runs", 0)

    def update(self, frame: Frame) -> FaceLandmarks:
        faces = self.tracker.update(frame)
        h, w = frame.image.shape[:2]
        camera = camera_matrix((w, h)) if self.camera is None else self.camera
        ids = faces.track_id if faces.track_id is not None else np.full(len(faces), -1)
        last, angles = {}, []
        for points, tid in zip(faces.xy, ids.tolist()):
            rvec, tvec = solve_pose(points, camera, self._last.get(tid) if tid >= 0 else None)
            if np.isfinite(rvec).all() and np.isfinite(tvec).all():    # a NaN start would stay NaN for good
                last[tid] = (rvec, tvec)
            angles.append(angles_from_rotation(cv2.Rodrigues(rvec)[0]))
        self._last = last
        return dataclasses.replace(faces, pose=np.asarray(angles, np.float32).reshape(-1, 3))
