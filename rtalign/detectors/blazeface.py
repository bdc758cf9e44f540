"""MediaPipe's BlazeFace detectors run by onnxruntime (files made by `python -m train.export_detector`).

A network scores a fixed set of anchors and regresses, per anchor, a box and six keypoints. Decoding
is array code: anchors are made once per input size, scores thresholded with one mask over every anchor,
and overlapping detections merged by weighted non-maximum suppression whose loop runs once per *face
found*, never per anchor. The default detector runs the short-range network over whole-frame scales and has
the full-range network confirm each face, turned upright, in one batched run (`confirm`). The eyes give the
face's roll; the eyes and the mouth give the upright landmark box the landmark models expect (calibrated
on the 300-W training faces).
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from ..crop import apply_affine, invert_affine, upright_affines, warp_crops
from ..errors import ModelError
from ..models.session import create_session
from .base import Detections, box_iou, distinct, not_known

REBUILD = "python -m train.export_detector"
#: Upright landmark box from the keypoints, in the face's own upright frame (x along the eyes, y from the
#: eyes towards the mouth), in units of d = (eye-midpoint → mouth distance) + ½ (eye distance): the box
#: centre lies at eye-mid + (dx, dy)·d and its side is ratio · d. d varied least of the scales tried
#: (8 % spread of the side, against 9 % for the mouth distance alone, 10 % eyes, 12 % the network's box).
#: Measured by `python -m train.calibrate_detector --detector blazeface` (train faces rolled ±45°, medians,
#: the default detector's keypoints: the mean of both networks').
BLAZEFACE_CALIBRATION = (0.007, 0.442, 1.481)


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


def rescale(image: np.ndarray, k: float) -> tuple[np.ndarray, np.ndarray]:
    """`image` scaled by about k and the exact (x, y) scale of continuous coordinates. Shrinking is INTER_AREA
    by the whole factor n = ⌊1/k⌋ (OpenCV's fast path, on the image cut to a multiple of n: up to n − 1 pixels
    dropped at the right and bottom), then INTER_LINEAR for the rest (< 2×): a tenth of the cost of
    INTER_AREA at a fractional factor on a 720p frame."""
    h, w = image.shape[:2]
    n = max(1, min(int(1 / k + 1e-9), h, w))          # a 1×5000 strip keeps its one pixel
    if n > 1:
        h, w = h // n * n, w // n * n
        image = cv2.resize(image[:h, :w], (w // n, h // n), interpolation=cv2.INTER_AREA)
    rw, rh = max(1, round(w * k)), max(1, round(h * k))
    if (rw, rh) != image.shape[1::-1]:
        image = cv2.resize(image, (rw, rh), interpolation=cv2.INTER_LINEAR)
    return image, np.array([rw / w, rh / h])


def network_input(images: list[np.ndarray]) -> np.ndarray:
    """(B, 3, H, W) float32 RGB in [-1, 1] from same-size BGR uint8 images (one OpenCV call)."""
    return cv2.dnn.blobFromImages(images, 1 / 127.5, mean=(127.5, 127.5, 127.5), swapRB=True)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Scores from the networks' logits (background anchors reach ±3e4: clipped, no overflow warning)."""
    return 1.0 / (1.0 + np.exp(-np.clip(logits.astype(np.float64), -100, 100)))


class BlazeFaceDetector:
    """Faces in a BGR frame with a BlazeFace ONNX file.

    The network is fully convolutional: it finds faces whose landmark box is `face_px` of its input pixels
    at any input size. Without `min_face` the whole frame is shrunk (`rescale`) into its square input, as
    MediaPipe does; with it the network runs on the whole (padded) frame at a few scales (see `passes`):
    no tile seams, cost in proportion to the pixels.

    Args:
        path: the .onnx file from `python -m train.export_detector`.
        min_face: smallest face side to find, frame pixels (None: the whole frame in the square input).
        face_px: (smallest, largest) landmark-box side, input pixels, that the network finds reliably
            (measured by `python -m train.calibrate_detector --sizes`).
        min_score: detection threshold in [0, 1] (None: the file's own, MediaPipe's value).
        iou: overlap above which detections merge.
        threads: onnxruntime intra-op threads.
        verifier: another BlazeFaceDetector that must `confirm` each face (a network's false faces on
            textures are seldom the other's).

    Raises:
        ModelError: a missing or malformed file; the message names the command that rebuilds it.
    """

    STEP = 32       # input sides must be multiples of the networks' largest stride
    skips_known = True   # detect_faces takes `known` (see rtalign.detectors.detect_faces)
    CONFIRM_TILE, CONFIRM_BOX = 128, 48    # `confirm`: square side and landmark-box side, input pixels

    def __init__(self, path, min_face: float | None = None, face_px: tuple[float, float] = (32, 80),
                 min_score: float | None = None, iou: float = 0.3, threads: int = 1, verifier=None, session=None):
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
        self.min_face, self.face_px, self.iou, self.verifier = min_face, face_px, iou, verifier
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

        Without `min_face`: the whole frame in the square input (MediaPipe's way). With it: whole-frame runs
        from the scale that makes a `min_face` face the smallest reliable size (face_px[0]) down to the one
        that makes a face as large as the frame's shorter side the largest (face_px[1]), as few as leave no
        gap between neighbouring runs' ranges.
        """
        h, w = shape[:2]
        if self.min_face is None:
            return [(self.size / max(h, w), self.size, self.size)]
        lo, hi = self.face_px
        first = min(1.0, lo / self.min_face)
        last = min(first, hi / min(h, w))
        n = 1 + math.ceil(math.log(first / last) / math.log(hi / lo) - 1e-9)
        pad = lambda v, k: max(self.STEP, math.ceil(v * k / self.STEP) * self.STEP)
        return [(k, pad(w, k), pad(h, k)) for k in np.geomspace(first, last, n).tolist()]

    def _input(self, frame: np.ndarray, k: float, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
        """(1, 3, height, width) network input: the frame scaled by about k (`rescale`), padded bottom/right
        with black, and the exact (x, y) scale used."""
        small, scale = rescale(frame[:, :, :3], k)
        rh, rw = small.shape[:2]
        canvas = cv2.copyMakeBorder(small, 0, height - rh, 0, width - rw, cv2.BORDER_CONSTANT, value=0)
        return network_input([canvas]), scale

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
        scores = sigmoid(logits[0, :, 0])
        a = np.nonzero(scores >= self.min_score)[0]
        r = regress[0, a].astype(np.float64)
        # continuous input coordinates (pixel edges at 0 and the side) → frame pixel centres
        centre = (anchors[a] + r[:, :2]) / scale - 0.5
        half = r[:, 2:4] / scale / 2
        points = (anchors[a][:, None] + r[:, 4:].reshape(len(r), 6, 2)) / scale - 0.5
        return np.concatenate([centre - half, centre + half], axis=1), scores[a], points

    def confirm(self, frame: np.ndarray, boxes: np.ndarray, roll: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A second opinion on another network's faces (N upright boxes, N rolls): each face turned upright in
        a square of its own with its landmark box CONFIRM_BOX px (this network's sweet spot), all squares in
        one run. Returns this network's best score near each square's centre (N,) and that anchor's
        keypoints (N, 6, 2) in frame pixels."""
        if len(boxes) == 0:
            return np.zeros(0), np.zeros((0, 6, 2))
        tile = self.CONFIRM_TILE
        affines = upright_affines((boxes[:, :2] + boxes[:, 2:]) / 2, np.max(boxes[:, 2:] - boxes[:, :2], axis=1),
                                  roll, self.CONFIRM_BOX, tile)
        x = network_input(list(warp_crops(frame, affines, tile)))
        regress, logits = self.session.run(None, {self._input_name: x})
        anchors = self.anchors(tile, tile)
        near = np.nonzero(np.linalg.norm(anchors - tile / 2, axis=1) < self.CONFIRM_BOX / 3)[0]
        best = near[np.argmax(logits[:, near, 0], axis=1)]
        rows = np.arange(len(boxes))
        points = anchors[best][:, None] + regress[rows, best, 4:].reshape(-1, 6, 2) - 0.5   # crop pixel centres
        to_frame = invert_affine(affines)
        return sigmoid(logits[rows, best, 0]), apply_affine(to_frame, points.astype(np.float64))

    def detect_faces(self, frame: np.ndarray, known: np.ndarray | None = None) -> Detections:
        """Faces in a BGR (or grey) frame, strongest first (see Detections). With a `verifier`, only the faces
        it confirms (score ≥ its min_score), their keypoints the mean of both networks' (boxes with IoU < 0.5
        against the landmark box: 3 of 300 train faces from one network, none from the mean). Each face once:
        a box that is a stronger one's face (base.distinct) is left out.

        `known`: (M, 4) boxes of faces already tracked: candidates overlapping one (base.not_known) are left
        out before the verifier sees them (its run costs per face: a tracker's periodic look for new faces
        then seldom needs it)."""
        frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR) if frame.ndim == 2 else frame[:, :, :3]
        _, scores, points = self.raw_faces(frame)
        boxes, roll = upright_boxes(points)
        new = not_known(boxes, known)
        scores, points, boxes, roll = scores[new], points[new], boxes[new], roll[new]
        if self.verifier is not None:
            second, their_points = self.verifier.confirm(frame, boxes, roll)
            ok = second >= self.verifier.min_score
            scores, points = scores[ok], (points[ok] + their_points[ok]) / 2
            boxes, roll = upright_boxes(points)
        # one face seen at two scales can give raw boxes too different to merge, yet the same upright box
        one = distinct(boxes)
        return Detections(boxes[one], roll[one], scores[one], points[one])

    def detect(self, frame: np.ndarray) -> np.ndarray:
        """(N, 4) upright landmark boxes, strongest first (the plain detector interface)."""
        return self.detect_faces(frame).boxes
