"""The cascade-regression model: gradient-boosted regression trees on shape-indexed pixel
differences (the ERT recipe), evaluated by Numba.

Each stage reads pixels at offsets attached to landmarks of the current estimate (in the frame
of a similarity fit of the mean shape, so the features move, turn and scale with the face),
takes differences of pixel pairs, and the sum of the stage's trees predicts the shape correction
as coefficients of a per-stage basis. The file is a plain `.npz` of arrays (loaded with
allow_pickle=False), so a model file can never run code.

Tree layout: all trees complete to the same depth D and stored implicitly (`feature`, `threshold`:
(trees, 2^D − 1) inner nodes in breadth-first order; `value`: (trees, 2^D, components) leaves,
already multiplied by the learning rate).
"""
from __future__ import annotations

import zipfile

import cv2
import numba as nb
import numpy as np

from ..errors import ModelError
from ..landmarks import landmark_box
from .base import UnscoredModel

#: The arrays `run_cascade` takes after the mean shape, in its argument order.
RUN_KEYS = ("anchor", "offset", "pair", "feature", "threshold", "value", "basis", "basis_mean", "stage_trees")
#: Arrays a cascade file must hold (see train/train_cascade.py for how they are made).
KEYS = ("mean_shape", *RUN_KEYS, "box_side", "start_boxes")
#: The cascade reads a grey region of this many box sides around each face, shrunk so every face
#: is read near the scale it was trained at (`box_side` in the file); feature offsets stay well inside.
CROP_SCALE = 2.0


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
def pixel_values(gray: np.ndarray, shape: np.ndarray, a: float, b: float, anchor: np.ndarray,
                 offset: np.ndarray, out: np.ndarray) -> None:
    """The pixels one stage reads, written into `out` (float32, n_pixels).

    Pixel k sits at landmark anchor[k] plus offset[k] (mean-shape units) turned and scaled by the
    face's similarity (a, b) (see `similarity_to`); bilinear reads (features that move smoothly with
    the shape: measured better than nearest-pixel reads), 0 outside the image.
    Indices computed from data are unsigned: Numba then emits no negative-index wraparound code.
    """
    h, w = gray.shape
    one = np.uint64(1)
    for k in range(anchor.shape[0]):
        j = np.uint64(anchor[k])
        x = shape[j, 0] + a * offset[k, 0] - b * offset[k, 1]
        y = shape[j, 1] + b * offset[k, 0] + a * offset[k, 1]
        if x >= 0.0 and y >= 0.0 and x < w - 1 and y < h - 1:
            x0, y0 = np.uint64(x), np.uint64(y)
            fx, fy = x - np.float64(x0), y - np.float64(y0)
            g00, g01 = np.float64(gray[y0, x0]), np.float64(gray[y0, x0 + one])
            g10, g11 = np.float64(gray[y0 + one, x0]), np.float64(gray[y0 + one, x0 + one])
            top = g00 + fx * (g01 - g00)
            bottom = g10 + fx * (g11 - g10)
            out[k] = top + fy * (bottom - top)
        else:
            out[k] = 0.0


@nb.njit(cache=True)
def pair_differences(vals: np.ndarray, pair: np.ndarray, out: np.ndarray) -> None:
    """out[p] = vals[pair[p, 0]] − vals[pair[p, 1]]: the features the trees split on."""
    for p in range(pair.shape[0]):
        out[p] = vals[np.uint64(pair[p, 0])] - vals[np.uint64(pair[p, 1])]


@nb.njit(cache=True)
def shape_features(gray: np.ndarray, shape: np.ndarray, mean: np.ndarray, anchor: np.ndarray,
                   offset: np.ndarray, pair: np.ndarray, out: np.ndarray) -> None:
    """One stage's features for one face and shape estimate (float32, n_pairs), as training needs them."""
    a, b = similarity_to(mean, shape)
    vals = np.empty(anchor.shape[0], np.float32)
    pixel_values(gray, shape, a, b, anchor, offset, vals)
    pair_differences(vals, pair, out)


@nb.njit(cache=True)
def trees_sum(x: np.ndarray, t0: int, t1: int, feature: np.ndarray, threshold: np.ndarray,
              value: np.ndarray) -> np.ndarray:
    """Sum of trees t0..t1-1 on one feature vector (scikit-learn's rule: x[f] <= threshold → left).

    Trees are complete and stored implicitly: node i has children 2i+1 and 2i+2, so every tree
    takes the same number of steps, without data-dependent loop exits or child-index loads.
    """
    n_inner = feature.shape[1]
    out = np.zeros(value.shape[2], np.float64)
    for t in range(t0, t1):
        i = 0
        while i < n_inner:
            i = 2 * i + (1 if x[np.uint64(feature[t, i])] <= threshold[t, i] else 2)
        leaf = value[t, np.uint64(i - n_inner)]
        for k in range(out.shape[0]):
            out[k] += leaf[k]
    return out


@nb.njit(cache=True)
def run_cascade(gray, shape, mean, anchor, offset, pair, feature, threshold, value, basis, basis_mean, stage_trees):
    """All stages on one face, in place on `shape` (68, 2) float64."""
    vals = np.empty(anchor.shape[1], np.float32)
    feats = np.empty(pair.shape[1], np.float32)
    t0 = 0
    for s in range(anchor.shape[0]):
        a, b = similarity_to(mean, shape)              # one fit per stage: for the reads and the update
        pixel_values(gray, shape, a, b, anchor[s], offset[s], vals)
        pair_differences(vals, pair[s], feats)
        coef = trees_sum(feats, t0, t0 + stage_trees[s], feature, threshold, value)
        t0 += stage_trees[s]
        delta = basis_mean[s] + coef @ basis[s]                 # (136,) in mean-shape units
        for i in range(shape.shape[0]):
            dx, dy = delta[2 * i], delta[2 * i + 1]
            shape[i, 0] += a * dx - b * dy
            shape[i, 1] += b * dx + a * dy


def face_region(frame: np.ndarray, box: np.ndarray, box_side: float):
    """Grey pixels within CROP_SCALE box sides of one face, shrunk by the whole factor n that brings the
    box side nearest `box_side` px (the scale the model was trained at; a whole-factor INTER_AREA shrink
    is exact and nearly free, unlike a warp). Returns the region, n, and its origin (x, y) in the frame."""
    side = float(np.max(box[2:] - box[:2]))
    n = max(1, int(round(side / box_side)))
    h, w = frame.shape[:2]
    centre = (box[:2] + box[2:]) / 2
    x0, y0 = np.clip(np.floor(centre - CROP_SCALE * side / 2).astype(int), 0, [w, h])
    x1, y1 = np.clip(np.ceil(centre + CROP_SCALE * side / 2).astype(int), 0, [w, h])
    x1, y1 = x0 + (x1 - x0) // n * n, y0 + (y1 - y0) // n * n
    if x1 <= x0 or y1 <= y0:  # the box lies outside the frame: nothing to read
        return np.zeros((1, 1), np.uint8), n, np.array([x0, y0], np.float64)
    roi = frame[y0:y1, x0:x1]
    gray = roi if roi.ndim == 2 else cv2.cvtColor(roi, cv2.COLOR_BGR2GRAY)
    if n > 1:
        gray = cv2.resize(gray, ((x1 - x0) // n, (y1 - y0) // n), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(gray), n, np.array([x0, y0], np.float64)


def to_region(points: np.ndarray, n: int, origin: np.ndarray) -> np.ndarray:
    """Frame pixel centres (..., 2) → pixel centres of a region from `face_region`."""
    return (points - origin + 0.5) / n - 0.5


def to_frame(points: np.ndarray, n: int, origin: np.ndarray) -> np.ndarray:
    """The inverse of `to_region`."""
    return (points + 0.5) * n - 0.5 + origin


@nb.njit(cache=True)
def run_starts(gray, shapes, mean, anchor, offset, pair, feature, threshold, value, basis, basis_mean, stage_trees):
    """Every start shape (K, 68, 2) through all stages, in place; returns their per-coordinate median."""
    for k in range(shapes.shape[0]):
        run_cascade(gray, shapes[k], mean, anchor, offset, pair, feature, threshold, value, basis, basis_mean,
                    stage_trees)
    out = np.empty((shapes.shape[1], 2))
    for i in range(shapes.shape[1]):
        for j in range(2):
            out[i, j] = np.median(shapes[:, i, j])
    return out


def start_boxes(box: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Boxes moved by (dx, dy) box sides and scaled by s about their centre, one per row of `starts` (K, 3)."""
    side = (box[2:] - box[:2]).max()
    centre = (box[:2] + box[2:]) / 2 + starts[:, :2] * side
    half = (box[2:] - box[:2]) / 2 * starts[:, 2:]
    return np.hstack([centre - half, centre + half])


def initial_shape(mean: np.ndarray, box: np.ndarray) -> np.ndarray:
    """The mean shape stretched to fill a face box (landmark-box convention) exactly: (68, 2) for a
    box (4,), (K, 68, 2) for boxes (K, 4)."""
    mb = landmark_box(mean)
    scale = (box[..., 2:] - box[..., :2]) / (mb[2:] - mb[:2])
    centre = (box[..., :2] + box[..., 2:]) / 2
    return (mean - (mb[:2] + mb[2:]) / 2) * scale[..., None, :] + centre[..., None, :]


class CascadeLandmarker(UnscoredModel):
    """`predict(frame, boxes)` with a cascade `.npz` (see LandmarkModel). Single-threaded by design.

    Each face runs from a few slightly moved start boxes (`start_boxes` in the file) and keeps the
    per-coordinate median: one start's result depends on where it began, the median much less.
    """

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
        self.box_side = float(self.arrays["box_side"].item())
        self.starts = self.arrays["start_boxes"].astype(np.float64).reshape(-1, 3)
        self._args = tuple(self.arrays[k] for k in RUN_KEYS)

    def predict(self, frame: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        if len(boxes) == 0:
            return np.empty((0, 68, 2), np.float32)
        out = np.empty((len(boxes), 68, 2))
        for i, box in enumerate(boxes):  # faces are few; each runs fully compiled
            gray, n, origin = face_region(frame, box, self.box_side)
            region_box = to_region(box.reshape(2, 2), n, origin).reshape(4)
            shapes = initial_shape(self.mean, start_boxes(region_box, self.starts))
            out[i] = to_frame(run_starts(gray, shapes, self.mean, *self._args), n, origin)
        return out.astype(np.float32)
