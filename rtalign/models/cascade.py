"""The cascade-regression model: gradient-boosted regression trees on shape-indexed pixel
differences (the ERT recipe), evaluated by Numba.

Each stage reads pixels at offsets attached to landmarks of the current estimate (in the frame
of a similarity fit of the mean shape, so the features move, turn and scale with the face),
takes differences of pixel pairs, and the sum of the stage's trees predicts the shape correction
as coefficients of a per-stage basis. The file is a plain `.npz` of arrays (loaded with
allow_pickle=False), so a model file can never run code.

Tree layout: all trees complete to the same depth D and stored implicitly (`feature`, `threshold`:
(trees, 2^D − 1) inner nodes in breadth-first order; `value`: (trees, 2^D, components) int16 leaves,
already multiplied by the learning rate, in units of the stage's `leaf_step` (stages, components)).
"""
from __future__ import annotations

import math
import zipfile

import cv2
import numba as nb
import numpy as np

from ..errors import ModelError
from ..landmarks import FLIP
from .base import UnscoredModel

#: Arrays a cascade file must hold (see train/train_cascade.py for how they are made).
KEYS = ("mean_shape", "anchor", "offset", "pair", "feature", "threshold", "value", "leaf_step", "basis",
        "basis_mean", "stage_trees", "box_side", "start_boxes", "start_mirror")
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


@nb.njit(cache=True, fastmath={"contract"})
def pixel_values(gray: np.ndarray, shape: np.ndarray, a: float, b: float, anchor: np.ndarray,
                 offset: np.ndarray, out: np.ndarray) -> None:
    """The pixels one stage reads, written into `out` (float32, n_pixels).

    Pixel k sits at landmark anchor[k] plus offset[k] (mean-shape units) turned and scaled by the
    face's similarity (a, b) (see `similarity_to`); bilinear reads (features that move smoothly with
    the shape: measured better than nearest-pixel reads), 0 outside the image. `gray` may be uint8 or
    float32 with the same results; float32 is faster (no conversions), as are float32 weights with
    fused multiply-adds (0.14 → 0.10 ms per start).
    Indices computed from data are unsigned: Numba then emits no negative-index wraparound code.
    """
    h, w = gray.shape
    one = np.uint64(1)
    for k in range(anchor.shape[0]):
        j = np.uint64(anchor[k])
        x = np.float32(shape[j, 0] + a * offset[k, 0] - b * offset[k, 1])
        y = np.float32(shape[j, 1] + b * offset[k, 0] + a * offset[k, 1])
        if x >= 0.0 and y >= 0.0 and x < w - 1 and y < h - 1:
            x0, y0 = np.uint64(x), np.uint64(y)
            fx, fy = x - np.float32(x0), y - np.float32(y0)
            g00, g01 = np.float32(gray[y0, x0]), np.float32(gray[y0, x0 + one])
            g10, g11 = np.float32(gray[y0 + one, x0]), np.float32(gray[y0 + one, x0 + one])
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
def _leaf(vals, node_pixels, threshold, t) -> int:
    """The leaf index of tree t: node i splits on the difference of two pixels; scikit-learn's rule
    x <= threshold → left; children of node i are 2i+1 and 2i+2 (complete trees stored implicitly)."""
    n_inner = threshold.shape[1]
    i = 0
    while i < n_inner:
        x = vals[np.uint64(node_pixels[t, i, 0])] - vals[np.uint64(node_pixels[t, i, 1])]
        i = 2 * i + (1 if x <= threshold[t, i] else 2)
    return i - n_inner


@nb.njit(cache=True)
def trees_sum(vals: np.ndarray, t0: int, t1: int, node_pixels: np.ndarray, threshold: np.ndarray,
              value: np.ndarray, step: np.ndarray, out: np.ndarray) -> None:
    """Sum of trees t0..t1-1 into `out`, on one stage's pixel values `vals`: leaves are int16 counts of
    the stage's `step` (per output), summed exactly in integers and scaled once.

    Each inner node splits on the difference of two pixels (`node_pixels`, resolved from the file's
    `feature` and `pair` at load), so the differences no tree visits are never computed. Trees go four
    at a time, written out: four independent chains of dependent loads for the CPU to overlap (−30 %
    against one tree at a time); every tree takes the same number of steps (complete trees).
    """
    n_inner = threshold.shape[1]
    leaves = np.empty(t1 - t0, np.uint64)
    t = t0
    while t + 4 <= t1:
        i0 = i1 = i2 = i3 = 0
        while i0 < n_inner:
            x0 = vals[np.uint64(node_pixels[t, i0, 0])] - vals[np.uint64(node_pixels[t, i0, 1])]
            x1 = vals[np.uint64(node_pixels[t + 1, i1, 0])] - vals[np.uint64(node_pixels[t + 1, i1, 1])]
            x2 = vals[np.uint64(node_pixels[t + 2, i2, 0])] - vals[np.uint64(node_pixels[t + 2, i2, 1])]
            x3 = vals[np.uint64(node_pixels[t + 3, i3, 0])] - vals[np.uint64(node_pixels[t + 3, i3, 1])]
            i0 = 2 * i0 + (1 if x0 <= threshold[t, i0] else 2)
            i1 = 2 * i1 + (1 if x1 <= threshold[t + 1, i1] else 2)
            i2 = 2 * i2 + (1 if x2 <= threshold[t + 2, i2] else 2)
            i3 = 2 * i3 + (1 if x3 <= threshold[t + 3, i3] else 2)
        leaves[t - t0], leaves[t - t0 + 1] = i0 - n_inner, i1 - n_inner
        leaves[t - t0 + 2], leaves[t - t0 + 3] = i2 - n_inner, i3 - n_inner
        t += 4
    while t < t1:
        leaves[t - t0] = _leaf(vals, node_pixels, threshold, t)
        t += 1
    total = np.zeros(out.shape[0], np.int32)
    for t in range(t0, t1):  # a second pass: the leaf rows' addresses are all known, so their loads overlap
        row = value[t, leaves[t - t0]]
        for k in range(out.shape[0]):
            total[k] += row[k]
    for k in range(out.shape[0]):
        out[k] = total[k] * step[k]


@nb.njit(cache=True)
def run_cascade(gray, shape, mean, anchor, offset, node_pixels, threshold, value, leaf_step, basis, basis_mean,
                stage_trees):
    """All stages on one start shape (68, 2) float64, in place."""
    vals = np.empty(anchor.shape[1], np.float32)
    coef = np.empty(value.shape[2])
    delta = np.empty(basis.shape[2])
    t0 = 0
    for s in range(anchor.shape[0]):
        a, b = similarity_to(mean, shape)                # one fit per stage: for the reads and the update
        pixel_values(gray, shape, a, b, anchor[s], offset[s], vals)
        trees_sum(vals, t0, t0 + stage_trees[s], node_pixels, threshold, value, leaf_step[s], coef)
        t0 += stage_trees[s]
        delta[:] = basis_mean[s]                         # (136,) in mean-shape units; plain loops: a BLAS
        for c in range(coef.shape[0]):                   # call this small costs more than it computes
            for j in range(delta.shape[0]):
                delta[j] += coef[c] * basis[s, c, j]
        for i in range(shape.shape[0]):
            dx, dy = delta[2 * i], delta[2 * i + 1]
            shape[i, 0] += a * dx - b * dy
            shape[i, 1] += b * dx + a * dy


@nb.njit(cache=True)
def initial_shape(template: np.ndarray, box: np.ndarray) -> np.ndarray:
    """`template` (68, 2) stretched to fill a face box [x0, y0, x1, y1] (landmark-box convention) exactly."""
    lo0, lo1 = template[:, 0].min(), template[:, 1].min()
    sx = (box[2] - box[0]) / (template[:, 0].max() - lo0)
    sy = (box[3] - box[1]) / (template[:, 1].max() - lo1)
    out = np.empty_like(template)
    out[:, 0] = (template[:, 0] - lo0) * sx + box[0]
    out[:, 1] = (template[:, 1] - lo1) * sy + box[1]
    return out


@nb.njit(cache=True)
def _mirrored(shape: np.ndarray, width: int, flip: np.ndarray) -> np.ndarray:
    """Points (68, 2) of the left-right mirror image of a `width`-pixel region (as landmarks.mirror_points)."""
    out = np.empty_like(shape)
    for i in range(shape.shape[0]):
        out[i, 0], out[i, 1] = width - 1 - shape[flip[i], 0], shape[flip[i], 1]
    return out


@nb.njit(cache=True)
def align_region(gray, mirrored, box, start_boxes, start_mirror, flip, mean, anchor, offset, node_pixels, threshold,
                 value, leaf_step, basis, basis_mean, stage_trees):
    """One face's points (68, 2) in a region from `face_region` (and `mirrored`, the region flipped
    left-right), its box in region pixels: the per-coordinate median of the cascade run from each start
    (`start_boxes` (K, 3): dx, dy in box sides and scale about the centre; `start_mirror` (K,): the start
    seen in the mirror, run on the mirrored region, its points mirrored back through the permutation `flip`).
    Each start runs through all stages before the next begins, so its image stays in cache. One compiled
    call: small numpy operations around it cost more than the cascade's arithmetic."""
    side = max(box[2] - box[0], box[3] - box[1])
    width = gray.shape[1]
    shapes = np.empty((start_boxes.shape[0],) + mean.shape)
    for k in range(start_boxes.shape[0]):
        cx = (box[0] + box[2]) / 2 + start_boxes[k, 0] * side
        cy = (box[1] + box[3]) / 2 + start_boxes[k, 1] * side
        hw, hh = (box[2] - box[0]) / 2 * start_boxes[k, 2], (box[3] - box[1]) / 2 * start_boxes[k, 2]
        shape = initial_shape(mean, np.array([cx - hw, cy - hh, cx + hw, cy + hh]))
        if start_mirror[k]:
            shape = _mirrored(shape, width, flip)
            run_cascade(mirrored, shape, mean, anchor, offset, node_pixels, threshold, value, leaf_step, basis,
                        basis_mean, stage_trees)
            shapes[k] = _mirrored(shape, width, flip)
        else:
            run_cascade(gray, shape, mean, anchor, offset, node_pixels, threshold, value, leaf_step, basis,
                        basis_mean, stage_trees)
            shapes[k] = shape
    return median_shape(shapes)


@nb.njit(cache=True)
def median_shape(shapes: np.ndarray) -> np.ndarray:
    """Per-coordinate median of K shapes (K, 68, 2), as np.median (the mean of the middle two for even K),
    by insertion sort of K values: np.median's per-call allocation cost more than the sorting."""
    n = shapes.shape[0]
    out = np.empty(shapes.shape[1:])
    buf = np.empty(n)
    for i in range(shapes.shape[1]):
        for j in range(2):
            for k in range(n):
                v = shapes[k, i, j]
                m = k
                while m > 0 and buf[m - 1] > v:
                    buf[m] = buf[m - 1]
                    m -= 1
                buf[m] = v
            out[i, j] = buf[n // 2] if n % 2 else 0.5 * (buf[n // 2 - 1] + buf[n // 2])
    return out


def runtime_arrays(arrays: dict) -> tuple:
    """A cascade file's arrays as `run_cascade` takes them after the mean shape, each inner node's
    feature resolved to the pixel pair it reads (uint16 indices into its stage's pixels)."""
    if arrays["value"].dtype != np.int16:
        raise ValueError(f"leaf values are {arrays['value'].dtype}, not int16 (a file from an older rtalign)")
    stage_trees = arrays["stage_trees"]
    stage_of_tree = np.repeat(np.arange(len(stage_trees)), stage_trees)
    node_pixels = arrays["pair"][stage_of_tree[:, None], arrays["feature"]]
    if node_pixels.size and (node_pixels.min() < 0 or node_pixels.max() >= min(arrays["anchor"].shape[1], 2 ** 16)):
        raise ValueError("pixel pair indices out of range")
    value, leaf_step, basis = _line_aligned_leaves(arrays["value"], arrays["leaf_step"], arrays["basis"])
    return (arrays["anchor"], arrays["offset"], np.ascontiguousarray(node_pixels, np.uint16),
            arrays["threshold"], value, leaf_step, basis, arrays["basis_mean"], stage_trees)


def _line_aligned_leaves(value, leaf_step, basis, line: int = 64):
    """Leaf rows padded with zero outputs to whole cache lines, in memory that starts on one, so every
    leaf read touches a single line (30 int16 outputs straddled two lines on most leaves); the step and
    basis get matching zero outputs."""
    trees, leaves, k = value.shape
    k_pad = -(-k * value.itemsize // line) * line // value.itemsize
    buf = np.zeros(trees * leaves * k_pad + line, value.dtype)
    start = (-buf.ctypes.data % line) // value.itemsize
    padded = buf[start: start + trees * leaves * k_pad].reshape(trees, leaves, k_pad)
    padded[..., :k] = value
    pad = [(0, 0), (0, k_pad - k)]
    return padded, np.pad(leaf_step, pad), np.pad(basis, pad + [(0, 0)])


def face_region(frame: np.ndarray, box: np.ndarray, box_side: float):
    """Grey pixels within CROP_SCALE box sides of one face, shrunk by the whole factor n that brings the
    box side nearest `box_side` px (the scale the model was trained at; a whole-factor INTER_AREA shrink
    is exact and nearly free, unlike a warp). Returns the region (float32: what `pixel_values` reads
    fastest), n, and its origin (x, y) in the frame. Box arithmetic on Python floats: numpy's per-call
    cost on 4-element arrays was half this function's time."""
    bx0, by0, bx1, by1 = (float(v) for v in box)
    side = max(bx1 - bx0, by1 - by0)
    n = max(1, round(side / box_side))
    h, w = frame.shape[:2]
    reach = CROP_SCALE * side / 2
    cx, cy = (bx0 + bx1) / 2, (by0 + by1) / 2
    x0, x1 = (min(max(v, 0), w) for v in (math.floor(cx - reach), math.ceil(cx + reach)))
    y0, y1 = (min(max(v, 0), h) for v in (math.floor(cy - reach), math.ceil(cy + reach)))
    x1, y1 = x0 + (x1 - x0) // n * n, y0 + (y1 - y0) // n * n
    origin = np.array([x0, y0], np.float64)
    if x1 <= x0 or y1 <= y0:  # the box lies outside the frame: nothing to read
        return np.zeros((1, 1), np.float32), n, origin
    roi = frame[y0:y1, x0:x1]
    gray = roi if roi.ndim == 2 else cv2.cvtColor(roi, cv2.COLOR_BGR2GRAY)
    if n > 1:
        gray = cv2.resize(gray, ((x1 - x0) // n, (y1 - y0) // n), interpolation=cv2.INTER_AREA)
    return gray.astype(np.float32), n, origin


def to_region(points: np.ndarray, n: int, origin: np.ndarray) -> np.ndarray:
    """Frame pixel centres (..., 2) → pixel centres of a region from `face_region`."""
    return (points - origin + 0.5) / n - 0.5


def to_frame(points: np.ndarray, n: int, origin: np.ndarray) -> np.ndarray:
    """The inverse of `to_region`."""
    return (points + 0.5) * n - 0.5 + origin


class CascadeLandmarker(UnscoredModel):
    """`predict(frame, boxes)` with a cascade `.npz` (see LandmarkModel). Single-threaded by design.

    Each face runs from a few starts (`start_boxes` in the file: the box, or one moved and scaled;
    `start_mirror`: on the face as it is, or mirrored) and keeps the per-coordinate median: one start's
    result depends on where it began and on the trees' chance errors, the median much less. A mirrored
    start sees the same face with other pixels under each tree, so its errors are less alike than
    those of a moved box.
    """

    def __init__(self, path, threads: int = 1, name: str = "cascade"):
        self.name, self.threads = name, 1     # `threads` is accepted for a common signature; one is used
        try:
            with open(path, "rb") as f:
                if f.read(4) != b"PK\x03\x04":      # np.load would call anything else pickled data
                    raise ModelError(f"{path}: not a cascade model (not an .npz archive)")
            with np.load(path, allow_pickle=False) as f:
                missing = [k for k in KEYS if k not in f.files]
                if missing:
                    raise ModelError(f"{path}: not a cascade model (missing {', '.join(missing)})")
                self.arrays = {k: np.ascontiguousarray(f[k]) for k in KEYS}
            self._args = runtime_arrays(self.arrays)
        except (OSError, ValueError, IndexError, EOFError, zipfile.BadZipFile) as e:
            raise ModelError(f"cannot load cascade model {path}: {e}") from None
        self.mean = self.arrays["mean_shape"].astype(np.float64)
        self.box_side = float(self.arrays["box_side"].item())
        self.starts = self.arrays["start_boxes"].astype(np.float64).reshape(-1, 3)
        self.mirror = self.arrays["start_mirror"].astype(bool).reshape(-1)

    def predict(self, frame: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        out = np.empty((len(boxes), 68, 2), np.float32)
        for i, box in enumerate(boxes):  # faces are few; each runs fully compiled
            gray, n, origin = face_region(frame, box, self.box_side)
            mirrored = cv2.flip(gray, 1) if self.mirror.any() else gray
            region_box = to_region(box.reshape(2, 2), n, origin).reshape(4)
            points = align_region(gray, mirrored, region_box, self.starts, self.mirror, FLIP, self.mean, *self._args)
            out[i] = to_frame(points, n, origin)
        return out
