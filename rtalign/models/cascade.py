"""The cascade-regression model: random forests on shape-indexed pixel differences, evaluated
by Numba.

Each stage reads pixels at offsets attached to landmarks of the current estimate (in the frame
of a similarity fit of the mean shape, so the features move, turn and scale with the face),
takes differences of pixel pairs, and a forest predicts the shape correction as coefficients of
a per-stage PCA basis. The file is a plain `.npz` of arrays (loaded with allow_pickle=False), so
a model file can never run code.
"""
from __future__ import annotations

import zipfile

import cv2
import numba as nb
import numpy as np

from ..errors import ModelError
from ..landmarks import landmark_box

#: Arrays a cascade file must hold (see train/train_cascade.py for how they are made).
KEYS = ("mean_shape", "anchor", "offset", "pair", "tree_start", "feature", "threshold", "left", "right",
        "value", "basis", "basis_mean", "stage_trees")


@nb.njit(cache=True, fastmath=False)
def similarity_to(mean: np.ndarray, shape: np.ndarray):
    """Least-squares similarity mapping `mean` onto `shape`: returns (a, b) so that
    shape ≈ [[a, -b], [b, a]] @ (mean - mean_c) + shape_c (rotation and scale as a complex number)."""
    n = mean.shape[0]
    mcx = mcy = scx = scy = 0.0
    for i in range(n):
        mcx += mean[i, 0]; mcy += mean[i, 1]; scx += shape[i, 0]; scy += shape[i, 1]
    mcx /= n; mcy /= n; scx /= n; scy /= n
    num_re = num_im = den = 0.0
    for i in range(n):
        mx, my = mean[i, 0] - mcx, mean[i, 1] - mcy
        sx, sy = shape[i, 0] - scx, shape[i, 1] - scy
        num_re += mx * sx + my * sy
        num_im += mx * sy - my * sx
        den += mx * mx + my * my
    return num_re / den, num_im / den


@nb.njit(cache=True)
def shape_features(gray: np.ndarray, shape: np.ndarray, mean: np.ndarray, anchor: np.ndarray,
                   offset: np.ndarray, pair: np.ndarray, out: np.ndarray) -> None:
    """Pixel-difference features of one face for one stage, written into `out` (float32, n_pairs).

    Pixel k sits at landmark anchor[k] plus offset[k] (mean-shape units) turned and scaled with
    the face; out[p] = I(pair[p, 0]) − I(pair[p, 1]) with nearest-pixel reads, 0 outside the image.
    """
    a, b = similarity_to(mean, shape)
    h, w = gray.shape
    n_px = anchor.shape[0]
    vals = np.empty(n_px, np.float32)
    for k in range(n_px):
        j = anchor[k]
        x = shape[j, 0] + a * offset[k, 0] - b * offset[k, 1]
        y = shape[j, 1] + b * offset[k, 0] + a * offset[k, 1]
        xi, yi = int(np.floor(x + 0.5)), int(np.floor(y + 0.5))
        vals[k] = gray[yi, xi] if 0 <= xi < w and 0 <= yi < h else 0.0
    for p in range(pair.shape[0]):
        out[p] = vals[pair[p, 0]] - vals[pair[p, 1]]


@nb.njit(cache=True)
def forest_predict(x: np.ndarray, tree_start: np.ndarray, t0: int, t1: int, feature: np.ndarray,
                   threshold: np.ndarray, left: np.ndarray, right: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Mean of trees t0..t1-1 on one feature vector (scikit-learn's rule: x[f] <= threshold → left)."""
    out = np.zeros(value.shape[1], np.float64)
    for t in range(t0, t1):
        node = tree_start[t]
        base = node
        while left[node] != -1:
            node = base + (left[node] if x[feature[node]] <= threshold[node] else right[node])
        for k in range(value.shape[1]):
            out[k] += value[node, k]
    return out / (t1 - t0)


@nb.njit(cache=True)
def run_cascade(gray, shape, mean, anchor, offset, pair, tree_start, feature, threshold, left, right, value,
                basis, basis_mean, stage_trees):
    """All stages on one face, in place on `shape` (68, 2) float64."""
    n_stages = anchor.shape[0]
    feats = np.empty(pair.shape[1], np.float32)
    t0 = 0
    for s in range(n_stages):
        shape_features(gray, shape, mean, anchor[s], offset[s], pair[s], feats)
        coef = forest_predict(feats, tree_start, t0, t0 + stage_trees[s], feature, threshold, left, right, value)
        t0 += stage_trees[s]
        a, b = similarity_to(mean, shape)
        delta = basis_mean[s] + coef @ basis[s]                 # (136,) in mean-shape units
        for i in range(shape.shape[0]):
            dx, dy = delta[2 * i], delta[2 * i + 1]
            shape[i, 0] += a * dx - b * dy
            shape[i, 1] += b * dx + a * dy


def initial_shape(mean: np.ndarray, box: np.ndarray) -> np.ndarray:
    """The mean shape stretched to fill a face box (landmark-box convention) exactly."""
    mb = landmark_box(mean)
    scale = (box[2:] - box[:2]) / (mb[2:] - mb[:2])
    return (mean - (mb[:2] + mb[2:]) / 2) * scale + (box[:2] + box[2:]) / 2


class CascadeLandmarker:
    """`predict(frame, boxes)` with a cascade `.npz` (see LandmarkModel). Single-threaded by design."""

    def __init__(self, path, threads: int = 1, name: str = "cascade"):
        self.name = name
        try:
            with np.load(path, allow_pickle=False) as f:
                missing = [k for k in KEYS if k not in f.files]
                if missing:
                    raise ModelError(f"{path}: not a cascade model (missing {', '.join(missing)})")
                self.arrays = {k: np.ascontiguousarray(f[k]) for k in KEYS}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
            raise ModelError(f"cannot load cascade model {path}: {e}") from None
        self.mean = self.arrays["mean_shape"].astype(np.float64)
        self._args = tuple(self.arrays[k] for k in KEYS[1:])

    def predict(self, frame: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        gray = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        out = np.empty((len(boxes), 68, 2), np.float32)
        for i, box in enumerate(boxes):  # faces are few; each runs fully compiled
            shape = initial_shape(self.mean, box)
            run_cascade(gray, shape, self.mean, *self._args)
            out[i] = shape
        return out

    def predict_scored(self, frame: np.ndarray, boxes: np.ndarray):
        pts = self.predict(frame, boxes)
        return pts, np.ones(len(pts), np.float32)
