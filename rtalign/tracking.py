"""Landmark-driven face tracking: the detector only acquires; each face's next box comes from
its previous landmarks, and each face keeps a stable id (and, through FaceSmoother, its own
temporal filter)."""
from __future__ import annotations

from dataclasses import dataclass, field
from itertools import count

import numpy as np

from .detect import HaarDetector
from .landmarks import landmark_box, shape_residual
from .models import LandmarkModel, load_model, refine
from .runtime import RuntimeOptions
from .smoothing import FaceSmoother, OneEuroOptions
from .types import FaceLandmarks, Frame


@dataclass(frozen=True)
class TrackerOptions:
    """max_faces: faces tracked at once. redetect_every: frames between detector runs while fewer
    than max_faces are tracked (with none tracked the detector runs every frame); 60 picks up a
    new face within 2 s at 30 fps and keeps the detector's cost off the throughput (measured:
    pipeline/codec 0.67-0.71 at 30, 0.72-0.75 at 60 on 2 cores). min_score: a
    track whose model score falls below this is lost (None: the model's own `min_score`, measured
    when it was exported). max_residual: a track whose shape is this
    far from a face (see landmarks.shape_residual) is lost. min_face: smallest face, pixels."""
    max_faces: int = 4
    redetect_every: int = 60
    min_score: float | None = None
    max_residual: float = 0.5
    min_face: float = 24.0

    def __post_init__(self):
        if self.max_faces < 1 or self.redetect_every < 1:
            raise ValueError(f"max_faces and redetect_every must be ≥ 1, got {self}")


@dataclass
class _Track:
    id: int
    points: np.ndarray                      # raw (unsmoothed) landmarks of the last frame
    score: float
    box: np.ndarray = field(default=None)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix of (N, 4) and (M, 4) boxes."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area = lambda x: np.prod(x[:, 2:] - x[:, :2], axis=1)
    return inter / (area(a)[:, None] + area(b)[None, :] - inter + 1e-9)


class FaceTracker:
    """`update(frame) -> FaceLandmarks`: smoothed landmarks of every tracked face, with ids.

    Args:
        model: a model name or file (loaded on `runtime`), or a LandmarkModel; its `predict_scored`
            score tells a lost face.
        detector: any object with `detect(image) -> (N, 4) boxes`, largest first (default: Haar).
        options: TrackerOptions.
        smoothing: One Euro options, or None for raw landmarks.
        runtime: where a model loaded here runs.
    """

    def __init__(self, model: str | LandmarkModel = "resnet", detector=None, *,
                 options: TrackerOptions = TrackerOptions(), smoothing: OneEuroOptions | None = OneEuroOptions(),
                 runtime: RuntimeOptions = RuntimeOptions()):
        self.model = load_model(model, runtime=runtime) if isinstance(model, str) else model
        self.detector = detector or HaarDetector()
        self.options, self.smoothing = options, smoothing
        self._smoother = FaceSmoother(smoothing) if smoothing else None
        self.tracks: list[_Track] = []
        self.detector_runs = 0
        self._since_detect = 0
        self._ids = count()

    def _alive(self, points: np.ndarray, scores: np.ndarray, shape) -> np.ndarray:
        o = self.options
        box = landmark_box(points)
        side = np.maximum(box[:, 2] - box[:, 0], box[:, 3] - box[:, 1])
        h, w = shape[:2]
        centre = (box[:, :2] + box[:, 2:]) / 2
        inside = (centre[:, 0] >= 0) & (centre[:, 0] < w) & (centre[:, 1] >= 0) & (centre[:, 1] < h)
        min_score = o.min_score if o.min_score is not None else getattr(self.model, "min_score", 0.0)
        return (scores >= min_score) & (shape_residual(points) <= o.max_residual) & (side >= o.min_face) & inside

    def _follow(self, image) -> None:
        """Move every track to this frame, its box taken from its own last landmarks."""
        if not self.tracks:
            return
        boxes = landmark_box(np.stack([t.points for t in self.tracks])).astype(np.float64)
        pts, scores = self.model.predict_scored(image, boxes)
        alive = self._alive(pts, scores, image.shape)
        for t, p, s, b in zip(self.tracks, pts, scores, boxes):
            t.points, t.score, t.box = p, float(s), b
        self.tracks = [t for t, ok in zip(self.tracks, alive) if ok]
        # two tracks that converged onto one face: keep the older (lower id)
        if len(self.tracks) > 1:
            boxes = landmark_box(np.stack([t.points for t in self.tracks]))
            iou = np.triu(box_iou(boxes, boxes), 1)
            drop = set(np.nonzero((iou > 0.5).any(axis=0))[0])
            self.tracks = [t for i, t in enumerate(self.tracks) if i not in drop]

    def _acquire(self, image) -> None:
        o = self.options
        self.detector_runs += 1
        self._since_detect = 0
        boxes = np.asarray(self.detector.detect(image), np.float64).reshape(-1, 4)
        if self.tracks and len(boxes):
            known = landmark_box(np.stack([t.points for t in self.tracks]))
            boxes = boxes[box_iou(boxes, known).max(axis=1) < 0.2]
        boxes = boxes[: o.max_faces - len(self.tracks)]
        if len(boxes) == 0:
            return
        pts, used, scores = refine(self.model, image, boxes)
        for p, s, b, ok in zip(pts, scores, used, self._alive(pts, scores, image.shape)):
            if ok:
                self.tracks.append(_Track(next(self._ids), p, float(s), b))

    def update(self, frame: Frame) -> FaceLandmarks:
        image = frame.image
        self._since_detect += 1
        self._follow(image)
        if not self.tracks or (len(self.tracks) < self.options.max_faces
                               and self._since_detect >= self.options.redetect_every):
            self._acquire(image)
        if self.tracks:
            faces = FaceLandmarks(np.stack([t.points for t in self.tracks]), np.stack([t.box for t in self.tracks]),
                                  np.array([t.score for t in self.tracks]), np.array([t.id for t in self.tracks]))
        else:
            faces = FaceLandmarks.empty(tracked=True)
        return self._smoother.update(faces, frame.timestamp) if self._smoother else faces
