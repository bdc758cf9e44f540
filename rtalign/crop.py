"""Face box → model crop geometry: the affine, its exact inverse, and batched crop extraction.

Coordinates are 0-based pixel centres throughout, which is also what cv2.warpAffine uses.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

_ADJUGATE_SIGNS = np.array([[1.0, -1.0], [-1.0, 1.0]])


def crop_affine(box: np.ndarray, scale: float, size: int, angle_deg: float = 0.0,
                shift: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """The 2x3 affine mapping frame pixel centres to crop pixel centres.

    The crop is a square of side `scale` × the larger side of `box` ([x0, y0, x1, y1]),
    centred on the box (moved by `shift`, in units of that side), rotated by `angle_deg`
    (counter-clockwise in the image), and resampled to `size` × `size`. Feed it to
    cv2.warpAffine as is; `invert_affine` maps predictions back.
    """
    x0, y0, x1, y1 = np.asarray(box, dtype=np.float64).reshape(4).tolist()   # plain floats: a tracker makes
    side = scale * max(x1 - x0, y1 - y0)                                       # several of these per frame
    cx = (x0 + x1) / 2 + shift[0] * side
    cy = (y0 + y1) / 2 + shift[1] * side
    k = size / side
    a = math.radians(angle_deg)
    c, s = k * math.cos(a), k * math.sin(a)
    half = size / 2 - 0.5
    return np.array([[c, s, half - c * cx - s * cy],
                     [-s, c, half + s * cx - c * cy]])


def invert_affine(m: np.ndarray) -> np.ndarray:
    """Exact inverse of a 2x3 affine, or of each of a batch (N, 2, 3) (so crop → frame undoes frame → crop).
    The 2x2 part by its adjugate: one set of array operations for the whole batch."""
    m = np.asarray(m, dtype=np.float64)
    lin = m[..., :2]
    det = lin[..., 0, 0] * lin[..., 1, 1] - lin[..., 0, 1] * lin[..., 1, 0]
    inv = np.swapaxes(lin[..., ::-1, ::-1], -1, -2) * _ADJUGATE_SIGNS / det[..., None, None]  # [[d, -b], [-c, a]] / det
    return np.concatenate([inv, -inv @ m[..., 2:]], -1)


def apply_affine(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine (or a batch (N, 2, 3)) to points (..., 2) / (N, K, 2)."""
    m = np.asarray(m)
    if m.ndim == 3:
        return points @ m[:, :, :2].transpose(0, 2, 1) + m[:, None, :, 2]
    return points @ m[:, :2].T + m[:, 2]


def _regions(affines: np.ndarray, size: int, shape) -> tuple[np.ndarray, np.ndarray]:
    """Block sides (N,) and regions (N, 4) [x0, y0, x1, y1] for (N, 2, 3) crops, all in one set of array
    operations (a Python loop over crops cost more than the warps themselves).

    Block side n: bilinear warping aliases when shrinking by more than ~1.5×, and the models were trained on
    area-resampled faces, so big faces get the same treatment: a crop's region is averaged in n × n blocks,
    n the whole factor nearest the shrink (OpenCV's block path costs a quarter of a fractional area resize),
    and the warp does the rest, between 0.8× and 1.33×; 1 when not shrinking (or for a frame under n pixels).

    Region: the frame pixels a crop reaches, clipped to the frame, in whole n × n blocks aligned on the
    frame's own grid (so a crop's pixels do not depend on the other crops beside it).
    """
    a = affines[:, :, :2]
    k = np.sqrt(np.abs(a[:, 0, 0] * a[:, 1, 1] - a[:, 0, 1] * a[:, 1, 0]))
    n = np.where(k < 0.75, np.maximum(2, np.round(1 / np.maximum(k, 1e-12))), 1)
    n = np.where(n <= min(shape[:2]), n, 1).astype(np.int64)[:, None]
    corners = apply_affine(invert_affine(affines),
                           np.array([[-0.5, -0.5], [size, -0.5], [-0.5, size], [size, size]])[None])
    lo = np.floor(corners.min(1)).astype(np.int64)
    hi = np.ceil(corners.max(1)).astype(np.int64) + 1
    limit = np.array([shape[1], shape[0]], np.int64)
    start = np.minimum(np.maximum(lo, 0) // n * n, (limit - n) // n * n)
    count = np.maximum(1, np.minimum(-(-(hi - start) // n), (limit - start) // n))
    return n[:, 0], np.concatenate([start, start + count * n], axis=1)


def compose_affine(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """The 2x3 affine of `outer(inner(p))`; either or both may be a batch (N, 2, 3)."""
    return np.concatenate([outer[..., :2] @ inner[..., :2], outer[..., :2] @ inner[..., 2:] + outer[..., 2:]], -1)


def warp_crops(image: np.ndarray, affines: np.ndarray, size: int, gray: bool = False) -> np.ndarray:
    """One `size` × `size` crop per 2x3 affine (N, 2, 3) frame → crop, block-averaged first when shrinking
    a lot (see `_regions`). Each crop reads only the pixels it reaches (converted to grey there when `gray`:
    a whole 720p conversion costs more than a crop).

    Returns (N, size, size) uint8, (N, size, size, C) for a colour image kept in colour."""
    n = len(affines)
    channels = () if gray or image.ndim == 2 else image.shape[2:]
    crops = np.empty((n, size, size) + channels, np.uint8)
    affines = np.asarray(affines, np.float64).reshape(-1, 2, 3)
    blocks, regions = _regions(affines, size, image.shape)
    for i, (m, k, (x0, y0, x1, y1)) in enumerate(zip(affines, blocks.tolist(), regions.tolist())):  # one warp per face
        roi = image[y0:y1, x0:x1]
        if gray and roi.ndim == 3:
            roi = cv2.cvtColor(roi, cv2.COLOR_BGR2GRAY)
        if k > 1:
            roi = cv2.resize(roi, ((x1 - x0) // k, (y1 - y0) // k), interpolation=cv2.INTER_AREA)
        to_frame = np.array([[k, 0, k / 2 - 0.5 + x0], [0, k, k / 2 - 0.5 + y0]])   # region pixel → frame pixel
        cv2.warpAffine(roi, compose_affine(m, to_frame), (size, size), dst=crops[i], flags=cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_CONSTANT)
    return crops


def box_affines(boxes: np.ndarray, scale: float, size: int) -> np.ndarray:
    """(N, 2, 3) affines frame → crop for (N, 4) face boxes (see `crop_affine`)."""
    return np.array([crop_affine(box, scale, size) for box in boxes]).reshape(-1, 2, 3)


def frame_crops(frame: np.ndarray, affines: np.ndarray, size: int) -> np.ndarray:
    """Grey crops from a BGR or grey frame (`warp_crops` with gray=True). Returns (N, size, size) uint8."""
    return warp_crops(frame, affines, size, gray=True)


def upright_affines(centres: np.ndarray, sides: np.ndarray, rolls: np.ndarray, box_px: float,
                    tile: int) -> np.ndarray:
    """(N, 2, 3) similarity transforms frame → `tile` × `tile` square that put each face's centre (N, 2)
    at the square's centre, scale its side (N,) to `box_px` and undo its roll (N,) degrees (the angle of
    the eye line in the image), so the face stands upright. `invert_affine` maps points back exactly."""
    half = np.asarray(sides, np.float64)[:, None] / 2
    boxes = np.concatenate([centres - half, centres + half], axis=1)
    return np.array([crop_affine(b, tile / box_px, tile, a) for b, a in zip(boxes, rolls)]).reshape(-1, 2, 3)


def upright_canvas(frame: np.ndarray, affines: np.ndarray, tile: int) -> tuple[np.ndarray, np.ndarray]:
    """Each face turned upright (see `upright_affines`) in its own `tile` × `tile` grey square, the squares
    stacked vertically into one (N·tile, tile) image, so a landmark model sees every face in one call.

    Only the grey pixels the squares reach are converted. Returns the canvas and (N, 2, 3) affines
    frame → canvas (`affines` with square i moved down by i·tile rows).
    """
    n = len(affines)
    canvas = frame_crops(frame, affines, tile).reshape(n * tile, tile)
    to_canvas = affines.copy()
    to_canvas[:, 1, 2] += np.arange(n) * tile
    return canvas, to_canvas
