"""The one-call API for still images: find every face, then its 68 landmarks.

    from rtalign import FaceAligner
    faces = FaceAligner("resnet").align(image_bgr)   # FaceLandmarks, faces.xy is (n, 68, 2)
"""
from __future__ import annotations

import numpy as np

from .detect import HaarDetector
from .landmarks import landmark_box
from .models import LandmarkModel, load_model
from .pose import head_pose
from .types import FaceLandmarks


def refine(model: LandmarkModel, frame: np.ndarray, boxes: np.ndarray):
    """Predict, re-centre each box on its own landmarks, predict again.

    A detector box is only roughly where the model expects the face; one more pass from the
    landmark box removes most of that offset. Returns (points, boxes of the last pass, scores).
    """
    boxes = landmark_box(model.predict(frame, boxes)).astype(np.float64)
    pts, scores = model.predict_scored(frame, boxes)
    return pts, boxes, scores


class FaceAligner:
    """Detector + landmark model for single images.

    Args:
        model: a model name ("resnet", "cnn", "cascade"), a file path, or a loaded LandmarkModel.
        max_faces: at most this many faces, largest first.
        device, threads: passed to the model when it is loaded here.
    """

    def __init__(self, model="resnet", max_faces: int = 4, device: str = "cpu", threads: int = 2, detector=None):
        self.model = load_model(model, device, threads) if isinstance(model, str) else model
        self.detector = detector or HaarDetector()
        self.max_faces = max_faces

    def align(self, image: np.ndarray, boxes: np.ndarray | None = None) -> FaceLandmarks:
        """Landmarks and head pose of the faces in a BGR image; pass `boxes` to skip detection."""
        if boxes is None:
            boxes = self.detector.detect(image)[: self.max_faces]
        if len(boxes) == 0:
            return FaceLandmarks.empty()
        pts, used, scores = refine(self.model, image, np.asarray(boxes, np.float64))
        return FaceLandmarks(pts, used, scores, track_id=np.arange(len(pts)), pose=head_pose(pts, image.shape[1::-1]))
