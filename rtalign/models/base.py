"""The interface every landmark model offers, whatever its family (network or forest)."""
from __future__ import annotations

from typing import Protocol

import numpy as np


class LandmarkModel(Protocol):
    """Face boxes in, 68 points per face out, in frame pixel coordinates.

    `predict(frame, boxes)`: frame is (H, W, 3) BGR or (H, W) grey uint8; boxes is (N, 4)
    [x0, y0, x1, y1] in frame pixels, the same kind of box as the tight landmark box; the
    result is (N, 68, 2) float32 0-based pixel centres. The frame is not modified.

    `predict_scored(frame, boxes)` returns the points and a (N,) score in [0, 1] saying how
    much each crop looks like a face (1.0 for models that cannot tell); trackers use it to
    notice a lost face. `threads` is how many threads inference really uses (reports quote it).

    A model may also offer `predict_turned(frame, to_upright, boxes)` (the networks do): the boxes lie in
    each face's upright view, and it cuts its rotated crops from the frame itself; without it, the tracker
    hands the model one canvas of the faces turned upright (rtalign.align.predict_upright).
    """

    name: str
    threads: int

    def predict(self, frame: np.ndarray, boxes: np.ndarray) -> np.ndarray: ...

    def predict_scored(self, frame: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


class UnscoredModel:
    """Mixin for models that cannot tell a face from a non-face: every score is 1.0 (`has_score` False, as
    an ONNX landmarker's without a score output; the tracker then asks the detector)."""
    has_score = False

    def predict_scored(self, frame: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pts = self.predict(frame, boxes)
        return pts, np.ones(len(pts), np.float32)
