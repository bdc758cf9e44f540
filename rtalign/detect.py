"""Face acquisition with OpenCV's Haar cascade (ships inside opencv-python 4.x, works offline).

The detector runs only to acquire or re-acquire faces; its boxes are mapped onto the tight
landmark-box convention the landmark models were trained with.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .errors import ModelError

#: (dx, dy, side ratio): landmark-box centre = Haar centre + (dx, dy) × Haar side, and the
#: landmark box's larger side = ratio × Haar side. Measured by `python -m train.calibrate_detector`.
HAAR_CALIBRATION = (0.0030, 0.1392, 0.8649)
#: The frontal cascade's window side: the smallest face it finds, in the pixels it scans.
_WINDOW = 20


class HaarDetector:
    """Frontal faces via cv2.CascadeClassifier on a downscaled grey frame.

    Args:
        max_side: the frame is shrunk so its larger side is at most this (speed), but only as far as keeps
            a `min_face` face at the cascade's 20-px window (a 4K frame is scanned at 1/2.3, not 1/8: a call on
            a faceless frame took 6 ms at 720p, 17 ms at 1080p and 64 ms at 4K here, against 4-6 ms before).
        min_face: smallest face to find: the side of its landmark box (the boxes returned), frame pixels.
        calibration: see HAAR_CALIBRATION.
    """

    def __init__(self, max_side: int = 480, min_face: int = 40, calibration=HAAR_CALIBRATION):
        path = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
        self._cascade = cv2.CascadeClassifier(str(path))
        if self._cascade.empty():
            raise ModelError(f"OpenCV's Haar cascade is missing ({path}); install opencv-python 4.x")
        self.max_side, self.min_face, self.calibration = max_side, min_face, calibration

    def detect(self, frame: np.ndarray) -> np.ndarray:
        """(N, 4) landmark-convention boxes [x0, y0, x1, y1] in frame pixels, largest first; (0, 4) if none."""
        gray = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        # shrunk for speed, but never so far that a min_face face falls below the cascade's 20-px window
        cascade_side = self.min_face / self.calibration[2]          # the cascade's square for such a face
        k = min(1.0, max(self.max_side / max(gray.shape), _WINDOW / cascade_side))
        h, w = gray.shape[:2]       # at least one pixel a side: a 5000x1 strip must not shrink to nothing
        small = cv2.resize(gray, (max(1, round(w * k)), max(1, round(h * k))), interpolation=cv2.INTER_AREA) \
            if k < 1 else gray
        min_side = max(_WINDOW, int(cascade_side * k))
        found = self._cascade.detectMultiScale(small, scaleFactor=1.1, minNeighbors=5, minSize=(min_side, min_side))
        if len(found) == 0:
            return np.empty((0, 4))
        found = np.asarray(found, np.float64) / k                      # x, y, w, h in frame pixels
        side = found[:, 2]
        dx, dy, ratio = self.calibration
        cx = found[:, 0] + side / 2 + dx * side
        cy = found[:, 1] + side / 2 + dy * side
        half = ratio * side / 2
        boxes = np.stack([cx - half, cy - half, cx + half, cy + half], axis=1)
        return boxes[np.argsort(-side)]
