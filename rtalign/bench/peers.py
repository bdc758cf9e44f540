"""Peers measured beside rtalign's models: dlib's HOG detector + 68-point ERT (optional extra `.[peers]`).

dlib-bin ships dlib; face_recognition_models ships its 68-point model file. Missing either is a
clear skip, never an error.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np

from ..landmarks import landmark_box
from ..models.base import UnscoredModel


def dlib_model_path() -> Path | None:
    """The 68-point ERT file inside face_recognition_models (found without importing that package,
    whose __init__ needs the removed pkg_resources)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / "shape_predictor_68_face_landmarks.dat"
    return path if path.is_file() else None


def dlib_unavailable() -> str | None:
    """Why the dlib peer cannot run here, or None when it can."""
    if importlib.util.find_spec("dlib") is None:
        return "dlib not installed (pip install 'rtalign[peers]')"
    if dlib_model_path() is None:
        return "dlib's 68-point model not found (pip install face_recognition_models)"
    return None


class DlibPeer(UnscoredModel):
    """dlib as its users run it: the HOG detector finds the face, the ERT predicts 68 points.

    `predict(frame, boxes)` gives the ERT a box in dlib's detector convention, derived from a
    landmark box with a ratio measured on training faces (`calibrate`), so it can be scored and
    timed like the other models; `detect_and_predict` is the full dlib pipeline per frame.
    """
    name = "dlib"
    threads = 1          # dlib's shape predictor is single-threaded

    def __init__(self):
        import dlib
        self._dlib = dlib
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(str(dlib_model_path()))
        self.calibration = (0.0, 0.0, 1.0)   # landmark box → dlib box: centre shift, side ratio

    def _gray(self, frame):
        return frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)

    def _shape(self, gray, rect) -> np.ndarray:
        s = self._predictor(gray, rect)
        return np.array([[p.x, p.y] for p in s.parts()], np.float32)

    def detect(self, frame) -> list:
        return list(self._detector(self._gray(frame), 0))

    def predict_from_detections(self, frame, rects) -> np.ndarray:
        gray = self._gray(frame)
        return np.stack([self._shape(gray, r) for r in rects]) if rects else np.empty((0, 68, 2), np.float32)

    def to_rect(self, box):
        dx, dy, ratio = self.calibration
        side = max(box[2] - box[0], box[3] - box[1])
        cx, cy = (box[0] + box[2]) / 2 + dx * side, (box[1] + box[3]) / 2 + dy * side
        half = ratio * side / 2
        return self._dlib.rectangle(int(round(cx - half)), int(round(cy - half)), int(round(cx + half)), int(round(cy + half)))

    def predict(self, frame, boxes) -> np.ndarray:
        return self.predict_from_detections(frame, [self.to_rect(b) for b in np.asarray(boxes).reshape(-1, 4)])

    def _detections_near(self, frame, box) -> list:
        """dlib's detections whose centre lies within 0.3 × the box's larger side of the box's centre."""
        side = max(box[2] - box[0], box[3] - box[1])
        c = (box[:2] + box[2:]) / 2
        return [r for r in self.detect(frame)
                if np.hypot((r.left() + r.right()) / 2 - c[0], (r.top() + r.bottom()) / 2 - c[1]) < 0.3 * side]

    def predict_with_own_detector(self, frame, gt_box) -> tuple[np.ndarray, bool]:
        """Points from dlib's own detection of the annotated face (as the ERT was trained), and
        whether the detector found it; when it did not, the calibrated ground-truth box stands in."""
        near = self._detections_near(frame, gt_box)
        if near:
            return self.predict_from_detections(frame, near[:1])[0], True
        return self.predict(frame, gt_box[None])[0], False

    def calibrate(self, samples, images) -> None:
        """Fit the landmark-box → dlib-box map on faces where dlib's own detector fires."""
        rows = []
        for s, img in zip(samples, images):
            gt = landmark_box(s.points)
            side = max(gt[2] - gt[0], gt[3] - gt[1])
            c = (gt[:2] + gt[2:]) / 2
            for r in self._detections_near(img, gt):
                rc = np.array([(r.left() + r.right()) / 2, (r.top() + r.bottom()) / 2])
                rows.append([*(rc - c) / side, r.width() / side])
        if rows:
            self.calibration = tuple(np.median(np.array(rows), axis=0))


class DlibTracker:
    """dlib's own video pipeline: detect on every frame, then the ERT (what dlib users run)."""

    def __init__(self, peer: DlibPeer):
        self.peer = peer
        self.detector_runs = 0

    def update(self, frame):
        from ..types import FaceLandmarks
        rects = self.peer.detect(frame.image)
        self.detector_runs += 1
        if not rects:
            return FaceLandmarks.empty()
        pts = self.peer.predict_from_detections(frame.image, rects)
        return FaceLandmarks(pts, landmark_box(pts))   # detections only: no ids across frames
