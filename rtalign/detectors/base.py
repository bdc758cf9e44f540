"""What a face detector returns: upright face boxes with the face's roll, so that the landmark crop
can be turned upright before the model sees it."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Detections:
    """Parallel arrays for the faces found in one frame, strongest first.

    Attributes:
        boxes: (n, 4) [x0, y0, x1, y1] frame pixels: the tight landmark box of the face as it would be
            if the face were turned upright about the box's centre (for an upright face, simply its
            landmark box).
        roll: (n,) degrees, the angle of the line from the subject's right eye to the left eye in the image
            (clockwise on screen, since y points down); 0 for detectors that cannot tell.
        scores: (n,) float32 detector confidence in [0, 1].
        keypoints: (n, k, 2) frame pixels (BlazeFace: both eyes, nose tip, mouth, both ear tragions;
            the subject's right before left), or (n, 0, 2).
    """
    boxes: np.ndarray
    roll: np.ndarray
    scores: np.ndarray
    keypoints: np.ndarray

    def __post_init__(self):
        self.boxes = np.asarray(self.boxes, np.float64).reshape(-1, 4)
        n = len(self.boxes)
        self.roll = np.asarray(self.roll, np.float64).reshape(n)
        self.scores = np.asarray(self.scores, np.float32).reshape(n)
        kp = np.asarray(self.keypoints, np.float64)
        self.keypoints = kp.reshape(n, kp.shape[1] if kp.ndim == 3 else 0, 2)

    def __len__(self) -> int:
        return len(self.boxes)

    def __getitem__(self, index) -> "Detections":
        """Some of the faces: `found[0]` (one face, still a Detections), `found[:2]`, `found[mask]`."""
        index = [index] if isinstance(index, (int, np.integer)) else index
        return Detections(self.boxes[index], self.roll[index], self.scores[index], self.keypoints[index])

    def largest_first(self) -> "Detections":
        """The same faces ordered by box side, largest first (ties keep their order): what max_faces keeps."""
        return self[np.argsort(-np.max(self.boxes[:, 2:] - self.boxes[:, :2], axis=1), kind="stable")]

    @classmethod
    def upright(cls, boxes: np.ndarray) -> "Detections":
        """Boxes from a detector that knows nothing of roll (Haar, a test double)."""
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        return cls(boxes, np.zeros(len(boxes)), np.ones(len(boxes)), np.empty((len(boxes), 0, 2)))


#: A detection overlapping a known (tracked) face by this IoU or more is that face, not a new one.
KNOWN_IOU = 0.2
#: Two landmark boxes of one frame overlapping by more than this IoU are one face (detected twice, or two
#: tracks that converged on it): the stronger or older one is kept. BlazeFace's double detections of one
#: rolled face overlap by 0.45-0.82 (61 pairs, the portrait at 5 sizes and rolls up to ±70°); two people's
#: faces overlap that much only when one hides most of the other.
SAME_FACE_IOU = 0.4


def detect_faces(detector, frame: np.ndarray, known: np.ndarray | None = None) -> Detections:
    """`detector.detect_faces(frame)` when it has one, else its plain `detect(frame)` boxes, upright.

    `known`: (M, 4) landmark boxes of faces already tracked; detections of them (IoU ≥ KNOWN_IOU) are left
    out. A detector with `skips_known` (BlazeFace) takes them itself and leaves them out before its costlier
    steps; from any other its result is filtered here."""
    if known is not None and len(known) and getattr(detector, "skips_known", False):
        return detector.detect_faces(frame, known=known)
    found = detector.detect_faces(frame) if hasattr(detector, "detect_faces") else Detections.upright(detector.detect(frame))
    return found[not_known(found.boxes, known)]


def not_known(boxes: np.ndarray, known: np.ndarray | None) -> np.ndarray:
    """(N,) bools: which of (N, 4) boxes are none of the (M, 4) `known` faces (IoU < KNOWN_IOU with each)."""
    if known is None or len(known) == 0 or len(boxes) == 0:
        return np.ones(len(boxes), bool)
    return box_iou(boxes, np.asarray(known, np.float64).reshape(-1, 4)).max(axis=1) < KNOWN_IOU


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix of (N, 4) and (M, 4) boxes."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area = lambda x: np.prod(x[:, 2:] - x[:, :2], axis=1)
    return inter / (area(a)[:, None] + area(b)[None, :] - inter + 1e-9)


def distinct(boxes: np.ndarray) -> np.ndarray:
    """Indices of the (N, 4) boxes, in their order (strongest or oldest first), that are not a face an
    earlier kept box already is (IoU > SAME_FACE_IOU). The loop runs once per box, i.e. per face."""
    same = box_iou(boxes, boxes) > SAME_FACE_IOU
    keep: list[int] = []
    for i in range(len(boxes)):
        if not same[i, keep].any():
            keep.append(i)
    return np.array(keep, np.int64)
