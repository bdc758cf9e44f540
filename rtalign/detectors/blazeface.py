"""MediaPipe's BlazeFace detector run by onnxruntime (files made by `python -m train.export_detector`).

The network scores a fixed set of anchors and regresses, per anchor, a box and six keypoints. Decoding
is array code: anchors are made once per model, scores thresholded with one mask over every anchor of
every tile, and overlapping detections merged by weighted non-maximum suppression whose loop runs once
per *face found*, never per anchor. The eyes give the face's roll; the eyes and the mouth give the
upright landmark box the landmark models expect (calibrated on the 300-W training faces).
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from ..errors import ModelError
from ..models.session import create_session
from .base import Detections, box_iou

REBUILD = "python -m train.export_detector"
#: Upright landmark box from the keypoints, in the face's own upright frame (x along the eyes, y from the
#: eyes towards the mouth), in units of d = (eye-midpoint → mouth distance) + ½ (eye distance): the box
#: centre lies at eye-mid + (dx, dy)·d and its side is ratio · d. d varied least of the scales tried
#: (8 % spread of the side, against 9 % for the mouth distance alone, 10 % eyes, 12 % the network's box).
#: Measured by `python -m train.calibrate_detector --detector blazeface` (train faces rolled ±45°, medians).
BLAZEFACE_CALIBRATION = (0.015, 0.432, 1.472)


def make_anchors(width: int, height: int, spec: str) -> np.ndarray:
    """(A, 2) anchor centres in input pixels for a width × height input, in the network's output order.

    `spec` is "stride:anchors per cell,…" (MediaPipe's SSD anchors with fixed size 1: layers sharing a
    stride are merged, all their anchors at the cell centre).
    """
    centres = []
    for part in spec.split(","):
        stride, per_cell = (int(v) for v in part.split(":"))
        y, x = np.mgrid[0:math.ceil(height / stride), 0:math.ceil(width / stride)]
        cell = np.stack([x.ravel(), y.ravel()], axis=1).astype(np.float64)
        centres.append(np.repeat((cell + 0.5) * stride, per_cell, axis=0))
    return np.concatenate(centres)


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, points: np.ndarray, iou: float) -> tuple:
    """MediaPipe's weighted NMS: the strongest candidate takes every candidate overlapping it by more
    than `iou` and becomes their score-weighted mean (box and keypoints), with its own score.

    boxes (M, 4) [x0, y0, x1, y1], scores (M,), points (M, K, 2) → the same, one row per face, strongest
    first. The IoU matrix is computed once; the loop runs once per face found.
    """
    order = np.argsort(-scores)
    boxes, scores, points = boxes[order], scores[order], points[order]
    overlap = box_iou(boxes, boxes) > iou
    free = np.ones(len(boxes), bool)
    keep_b, keep_s, keep_p = [], [], []
    while free.any():
        i = int(np.argmax(free))                      # strongest candidate not yet taken
        group = free & overlap[i]
        free &= ~group
        w = scores[group][:, None]
        keep_b.append((boxes[group] * w).sum(0) / w.sum())
        keep_p.append((points[group] * w[:, :, None]).sum(0) / w.sum())
        keep_s.append(scores[i])
    k = points.shape[1]
    return (np.array(keep_b).reshape(-1, 4), np.array(keep_s, np.float32), np.array(keep_p).reshape(-1, k, 2))


def upright_boxes(keypoints: np.ndarray, calibration=BLAZEFACE_CALIBRATION) -> tuple[np.ndarray, np.ndarray]:
    """(N, 4) upright landmark boxes and (N,) roll in degrees from BlazeFace keypoints (N, 6, 2)."""
    right, left, mouth = keypoints[:, 0], keypoints[:, 1], keypoints[:, 3]
    across = left - right
    roll = np.degrees(np.arctan2(across[:, 1], across[:, 0]))
    mid = (left + right) / 2
    u = across / np.maximum(np.linalg.norm(across, axis=1, keepdims=True), 1e-9)   # along the eyes
    v = np.stack([-u[:, 1], u[:, 0]], axis=1)                                       # towards the chin
    d = (np.abs(((mouth - mid) * v).sum(1)) + 0.5 * np.linalg.norm(across, axis=1))[:, None]
    dx, dy, ratio = calibration
    centre = mid + (dx * u + dy * v) * d
    half = ratio * d / 2
    return np.concatenate([centre - half, centre + half], axis=1), roll


class BlazeFaceDetector:
    """Faces in a BGR frame with a BlazeFace ONNX file.

    The network is fully convolutional and finds faces of about 32 to 80 of its input pixels (31 training
    faces: all found at 32-80 px; 29 at 24 and at 96, 22 at 128, 18 at 12, 1 at 160). Without `min_face` the
    whole frame is shrunk (INTER_AREA) into its square input, as MediaPipe does; with it the network runs on
    the whole (padded) frame at a pyramid of scales (see `passes`): no tile seams, cost in proportion to
    the pixels.

    Args:
        path: the .onnx file from `python -m train.export_detector`.
        min_face: smallest face side to find, frame pixels (None: the whole frame in the square input).
        min_score: detection threshold in [0, 1] (None: the file's own, MediaPipe's value).
        iou: overlap above which detections merge.
        threads: onnxruntime intra-op threads.

    Raises:
        ModelError: a missing or malformed file; the message names the command that rebuilds it.
    """

    FACE_PX, MAX_PX = 32, 80   # face sides in input pixels that the network finds reliably (see above)
    STEP = 32       # input sides must be multiples of the network's largest stride

    def __init__(self, path, min_face: float | None = None, min_score: float | None = None, iou: float = 0.3,
                 threads: int = 1, session=None):
        try:
            self.session = session or create_session(path, device="cpu", threads=threads)
        except ModelError as e:
            raise ModelError(f"{e}; rebuild it with `{REBUILD}`") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        if meta.get("rtalign.detector") != "blazeface":
            raise ModelError(f"{path}: not a BlazeFace detector file; rebuild it with `{REBUILD}`")
        self.size = int(meta["rtalign.input_size"])
        self.spec = meta["rtalign.anchors"]
        self.min_score = float(meta["rtalign.min_score"]) if min_score is None else min_score
        self.min_face, self.iou = min_face, iou
        self._input_name = self.session.get_inputs()[0].name
        self._anchors = {}
        n = self.session.get_outputs()[0].shape[1]
        if isinstance(n, int) and n != len(self.anchors(self.size, self.size)):
            raise ModelError(f"{path}: {n} outputs do not match its anchors; rebuild it with `{REBUILD}`")

    def anchors(self, width: int, height: int) -> np.ndarray:
        """Anchor centres for an input size, made once per size."""
        key = (width, height)
        if key not in self._anchors:
            self._anchors[key] = make_anchors(width, height, self.spec)
        return self._anchors[key]

    def passes(self, shape) -> list[tuple[float, int, int]]:
        """(scale, input width, input height) per network run on a frame of `shape`.

        Without `min_face`: the whole frame in the square input (MediaPipe's way). With it: a pyramid of
        whole-frame runs, the first at the scale that makes a `min_face` face FACE_PX input px, each next
        at half the scale, until a face as large as the frame's shorter side is within reach. One run finds
        faces of FACE_PX to MAX_PX input px, so halving steps leave no gap.
        """
        h, w = shape[:2]
        if self.min_face is None:
            return [(self.size / max(h, w), self.size, self.size)]
        runs, k = [], min(1.0, self.FACE_PX / self.min_face)
        while True:
            pad = lambda v: max(self.STEP, math.ceil(v * k / self.STEP) * self.STEP)
            runs.append((k, pad(w), pad(h)))
            if self.MAX_PX / k >= min(h, w):
                return runs
            k /= 2

    def _input(self, frame: np.ndarray, k: float, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
        """(1, 3, height, width) float32 RGB in [-1, 1], the frame scaled by about k (INTER_AREA) and padded
        bottom/right with black, and the exact (x, y) scale used."""
        h, w = frame.shape[:2]
        rw, rh = min(width, max(1, round(w * k))), min(height, max(1, round(h * k)))
        canvas = np.zeros((height, width, 3), np.uint8)
        canvas[:rh, :rw] = frame[:, :, :3] if (rw, rh) == (w, h) else cv2.resize(frame, (rw, rh), interpolation=cv2.INTER_AREA)
        x = canvas[..., ::-1].transpose(2, 0, 1)[None].astype(np.float32)
        return x * (1 / 127.5) - 1.0, np.array([rw / w, rh / h])

    def raw_faces(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The network's detections in frame pixels after merging: boxes (N, 4), scores (N,), keypoints (N, 6, 2)."""
        if frame.ndim == 2:
            frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
        found = [self._run(frame, *run) for run in self.passes(frame.shape)]
        boxes, scores, points = (np.concatenate(parts) for parts in zip(*found))
        if len(boxes) == 0:
            return boxes, scores.astype(np.float32), points
        return weighted_nms(boxes, scores, points, self.iou)

    def _run(self, frame: np.ndarray, k: float, width: int, height: int):
        """One network run: candidates above the score threshold as boxes (M, 4), scores (M,), points
        (M, 6, 2) in frame pixel centres, before merging."""
        x, scale = self._input(frame, k, width, height)
        regress, logits = self.session.run(None, {self._input_name: x})
        anchors = self.anchors(width, height)
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits[0, :, 0].astype(np.float64), -100, 100)))
        a = np.nonzero(scores >= self.min_score)[0]
        r = regress[0, a].astype(np.float64)
        # continuous input coordinates (pixel edges at 0 and the side) → frame pixel centres
        centre = (anchors[a] + r[:, :2]) / scale - 0.5
        half = r[:, 2:4] / scale / 2
        points = (anchors[a][:, None] + r[:, 4:].reshape(len(r), 6, 2)) / scale - 0.5
        return np.concatenate([centre - half, centre + half], axis=1), scores[a], points

    def detect_faces(self, frame: np.ndarray) -> Detections:
        """Faces in a BGR (or grey) frame, strongest first (see Detections)."""
        _, scores, points = self.raw_faces(frame)
        boxes, roll = upright_boxes(points)
        return Detections(boxes, roll, scores, points)

    def detect(self, frame: np.ndarray) -> np.ndarray:
        """(N, 4) upright landmark boxes, strongest first (the plain detector interface)."""
        return self.detect_faces(frame).boxes
