"""Two passes of a model from a rough box: what both the still-image aligner and the tracker do on acquisition."""
from __future__ import annotations

import numpy as np

from ..landmarks import landmark_box
from .base import LandmarkModel


def refine(model: LandmarkModel, frame: np.ndarray, boxes: np.ndarray):
    """Predict, re-centre each box on its own landmarks, predict again.

    A detector box is only roughly where the model expects the face; one more pass from the
    landmark box removes most of that offset. Returns (points, boxes of the last pass, scores).
    """
    boxes = landmark_box(model.predict(frame, boxes)).astype(np.float64)
    pts, scores = model.predict_scored(frame, boxes)
    return pts, boxes, scores
