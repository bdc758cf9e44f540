"""The one-call API for still images: find every face, then its 68 landmarks.

    from rtalign import FaceAligner
    faces = FaceAligner("resnet").align(image_bgr)   # FaceLandmarks, faces.xy is (n, 68, 2)
"""
from __future__ import annotations

import numpy as np

from .detect import HaarDetector
from .models import LandmarkModel, load_model, refine
from .pose import head_pose
from .runtime import RuntimeOptions, resolve_runtime
from .types import FaceLandmarks


class FaceAligner:
    """Detector + landmark model for single images.

    Args:
        model: a model name ("resnet", "cnn", "cascade"), a file path, or a loaded LandmarkModel.
        max_faces: at most this many faces, largest first (None: all).
        runtime: where a model loaded here runs (device=/threads= are its older spelling).
        detector: any object with `detect(image) -> (N, 4) boxes`, largest first (default: Haar).
    """

    def __init__(self, model: str | LandmarkModel = "resnet", *, max_faces: int | None = 4,
                 runtime: RuntimeOptions | None = None, device: str | None = None, threads: int | None = None,
                 detector=None):
        runtime = resolve_runtime(runtime, device, threads)
        self.model = load_model(model, runtime=runtime) if isinstance(model, str) else model
        self.detector = detector or HaarDetector()
        self.max_faces = max_faces

    def align(self, image: np.ndarray, boxes: np.ndarray | None = None) -> FaceLandmarks:
        """Landmarks and head pose of the faces in a BGR image; pass (N, 4) `boxes` to skip detection (and
        max_faces).

        `track_id` of the result is None: ids belong to a tracker (see FaceTracker).
        """
        if boxes is None:
            boxes = self.detector.detect(image)[: self.max_faces]
        if len(boxes) == 0:
            return FaceLandmarks.empty()
        pts, used, scores = refine(self.model, image, np.asarray(boxes, np.float64))
        return FaceLandmarks(pts, used, scores, pose=head_pose(pts, image.shape[1::-1]))
