"""Face box → model crop geometry: the affine, its exact inverse, and batched crop extraction.

Coordinates are 0-based pixel centres throughout, which is also what cv2.warpAffine uses.
"""
from __future__ import annotations

import cv2
import numpy as np

def crop_affine(box: np.ndarray, scale: float, size: int, angle_deg: float = 0.0,
                shift: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """The 2x3 affine mapping frame pixel centres to crop pixel centres.

    The crop is a square of side `scale` × the larger side of `box` ([x0, y0, x1, y1]),
    centred on the box (moved by `shift`, in units of that side), rotated by `angle_deg`
    (counter-clockwise in the image), and resampled to `size` × `size`. Feed it to
    cv2.warpAffine as is; `invert_affine` maps predictions back.
    """
    box = np.asarray(box, dtype=np.float64)
    side = scale * max(box[2] - box[0], box[3] - box[1])
    cx = (box[0] + box[2]) / 2 + shift[0] * side
    cy = (box[1] + box[3]) / 2 + shift[1] * side
    k = size / side
    a = np.deg2rad(angle_deg)
    c, s = k * np.cos(a), k * np.sin(a)
    half = size / 2 - 0.5
    return np.array([[c, s, half - c * cx - s * cy],
                     [-s, c, half + s * cx - c * cy]])


def invert_affine(m: np.ndarray) -> np.ndarray:
    """Exact inverse of a 2x3 affine (so crop → frame undoes frame → crop)."""
    a = np.asarray(m, dtype=np.float64)[:, :2]
    inv = np.linalg.inv(a)
    return np.hstack([inv, -inv @ np.asarray(m, dtype=np.float64)[:, 2:]])


def apply_affine(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine (or a batch (N, 2, 3)) to points (..., 2) / (N, K, 2)."""
    m = np.asarray(m)
    if m.ndim == 3:
        return np.einsum("nij,nkj->nki", m[:, :, :2], points) + m[:, None, :, 2]
    return points @ m[:, :2].T + m[:, 2]


def _prescale(gray: np.ndarray, m: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Area-resample the crop's region first when the warp would shrink it a lot.

    Bilinear warping aliases when shrinking by more than ~1.5×; models were trained on
    area-resampled faces, so big faces get the same treatment. Returns (image, affine) to warp.
    """
    k = np.sqrt(abs(np.linalg.det(m[:, :2])))
    if k >= 0.75:
        return gray, m
    corners = apply_affine(invert_affine(m), np.array([[-0.5, -0.5], [size, -0.5], [-0.5, size], [size, size]]))
    h, w = gray.shape[:2]
    x0, y0 = np.clip(np.floor(corners.min(0)).astype(int), 0, [w - 1, h - 1])
    x1, y1 = np.clip(np.ceil(corners.max(0)).astype(int) + 1, [x0 + 1, y0 + 1], [w, h])
    roi = gray[y0:y1, x0:x1]
    rw, rh = max(1, round((x1 - x0) * k)), max(1, round((y1 - y0) * k))
    small = cv2.resize(roi, (rw, rh), interpolation=cv2.INTER_AREA)
    sx, sy = rw / (x1 - x0), rh / (y1 - y0)
    # p_frame = (p_small + 0.5) / s - 0.5 + origin
    to_frame = np.array([[1 / sx, 0, 0.5 / sx - 0.5 + x0], [0, 1 / sy, 0.5 / sy - 0.5 + y0]])
    return small, compose_affine(m, to_frame)


def compose_affine(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """The 2x3 affine of `outer(inner(p))`."""
    return np.hstack([outer[:, :2] @ inner[:, :2], outer[:, :2] @ inner[:, 2:] + outer[:, 2:]])


def warp_crops(gray: np.ndarray, affines: np.ndarray, size: int, out: np.ndarray | None = None) -> np.ndarray:
    """One `size` × `size` crop per 2x3 affine (N, 2, 3) frame → crop, area-prescaled when shrinking a lot.

    Returns (N, size, size) uint8, (N, size, size, C) for a colour frame (a view of `out` when given: a
    reusable buffer of at least N crops)."""
    n = len(affines)
    crops = out[:n] if out is not None else np.empty((n, size, size) + gray.shape[2:], np.uint8)
    for i, m in enumerate(affines):  # one warp per face, not per pixel
        src, warp = _prescale(gray, m, size)
        cv2.warpAffine(src, warp, (size, size), dst=crops[i], flags=cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_CONSTANT)
    return crops


def box_affines(boxes: np.ndarray, scale: float, size: int) -> np.ndarray:
    """(N, 2, 3) affines frame → crop for (N, 4) face boxes (see `crop_affine`)."""
    return np.array([crop_affine(box, scale, size) for box in boxes]).reshape(-1, 2, 3)


def frame_crops(frame: np.ndarray, affines: np.ndarray, size: int, out: np.ndarray | None = None) -> np.ndarray:
    """`warp_crops` straight from a BGR or grey frame: only the pixels the crops reach are converted to
    grey (a whole 720p conversion costs more than a crop). Returns (N, size, size) uint8."""
    corners = np.array([[-0.5, -0.5], [size, -0.5], [-0.5, size], [size, size]])
    reach = np.concatenate([apply_affine(invert_affine(m), corners) for m in affines])
    h, w = frame.shape[:2]
    x0, y0 = np.clip(np.floor(reach.min(0)).astype(int), 0, [w - 1, h - 1])
    x1, y1 = np.clip(np.ceil(reach.max(0)).astype(int) + 1, [x0 + 1, y0 + 1], [w, h])
    roi = frame[y0:y1, x0:x1]
    gray = roi if roi.ndim == 2 else cv2.cvtColor(roi, cv2.COLOR_BGR2GRAY)
    local = np.array(affines, np.float64)
    local[:, :, 2] += local[:, :, :2] @ np.array([x0, y0], np.float64)     # frame → region coordinates
    return warp_crops(gray, local, size, out)


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
