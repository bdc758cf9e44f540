"""Lip and iris recolouring that keeps texture and shading.

The study filled the lip and eye polygons with a flat colour, which looks painted on. Here the
colour is moved in Lab space: chroma (a, b) goes to the target, lightness is shifted but its
detail kept, and the result is blended through a feathered mask. Only a region of interest
around each mouth and eye is touched; every pixel outside the feather band stays bit-identical.

    from rtalign.effects import recolor_lips, recolor_irises
    recolor_lips(frame, points, "crimson", 0.7)       # modifies frame in place and returns it
"""
from __future__ import annotations

import cv2
import numpy as np

from .color import parse_color
from .landmarks import INNER_LIPS, LEFT_EYE, OUTER_LIPS, RIGHT_EYE, interocular
from .types import FaceLandmarks

STYLES = ("natural", "flat")
_SHIFT = 4  # fixed-point bits for sub-pixel polygon filling


def _target_lab(color) -> np.ndarray:
    bgr = np.array(parse_color(color) if isinstance(color, str) else color, np.float32).reshape(1, 1, 3) / 255.0
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2Lab)[0, 0]


def _roi(points: np.ndarray, margin: float, shape) -> tuple[int, int, int, int] | None:
    h, w = shape[:2]
    x0, y0 = np.floor(points.min(0) - margin).astype(int)
    x1, y1 = np.ceil(points.max(0) + margin).astype(int) + 1
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def _polygon_mask(shape, origin, polygons, values) -> np.ndarray:
    """uint8 mask of the ROI with each polygon filled in turn with its value (anti-aliased)."""
    mask = np.zeros(shape, np.uint8)
    for poly, value in zip(polygons, values):
        fixed = np.rint((poly - origin) * (1 << _SHIFT)).astype(np.int32)
        cv2.fillPoly(mask, [fixed], int(value), cv2.LINE_AA, _SHIFT)
    return mask


def _blend_lab(roi: np.ndarray, weight: np.ndarray, target: np.ndarray, chroma_keep: float,
               lightness_pull: float) -> None:
    """Recolour `roi` (BGR uint8, in place) where `weight` (float32 in [0, 1]) is positive.

    a, b go to the target's chroma, keeping `chroma_keep` of each pixel's deviation from the
    masked mean; L moves by `lightness_pull` of the gap between the target and the masked mean,
    so the lightness detail (texture, shading) is kept exactly.
    """
    sel = weight > 0
    if not sel.any():
        return
    lab = cv2.cvtColor(roi.astype(np.float32) / 255.0, cv2.COLOR_BGR2Lab)
    w = weight[sel][:, None]
    px = lab[sel]
    mean = np.average(px, axis=0, weights=w[:, 0])
    new = np.empty_like(px)
    new[:, 0] = px[:, 0] + lightness_pull * (target[0] - mean[0])
    new[:, 1:] = target[1:] + chroma_keep * (px[:, 1:] - mean[1:])
    lab[sel] = px + w * (new - px)
    out = cv2.cvtColor(lab, cv2.COLOR_Lab2BGR)
    roi[sel] = np.clip(out[sel] * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _feather(face_points: np.ndarray) -> float:
    """Feather width in pixels: a few pixels, growing with the face."""
    return float(max(1.0, 0.025 * interocular(face_points)))


def lip_weight(shape, points: np.ndarray):
    """(roi box, float32 weight) of one face's lips: outer polygon minus inner, feathered; None if off-frame."""
    feather = _feather(points)
    box = _roi(points[OUTER_LIPS], 3 * feather + 2, shape)
    if box is None:
        return None
    x0, y0, x1, y1 = box
    mask = _polygon_mask((y1 - y0, x1 - x0), np.array([x0, y0]), [points[OUTER_LIPS], points[INNER_LIPS]], [255, 0])
    soft = cv2.GaussianBlur(mask.astype(np.float32) / 255.0, (0, 0), feather)
    # the soft edge falls off outside the lip line: full colour up to the line itself
    return box, np.minimum(soft * 2.0, 1.0)


def recolor_lips(frame: np.ndarray, points: np.ndarray, color, strength: float = 0.6,
                 style: str = "natural") -> np.ndarray:
    """Recolour the lips of one face, keeping teeth and tongue of an open mouth.

    Args:
        frame: (H, W, 3) BGR uint8, **modified in place**.
        points: (68, 2) landmarks in frame pixels.
        color: CSS name, '#rrggbb' or a BGR tuple.
        strength: 0 (no change) to 1 (full target colour).
        style: "natural" (Lab shift, texture kept) or "flat" (the study's polygon fill).

    Returns:
        frame.
    """
    if style == "flat":
        return _flat_fill(frame, [points[OUTER_LIPS]], [points[INNER_LIPS]], color, strength)
    found = lip_weight(frame.shape, points)
    if found is not None:
        (x0, y0, x1, y1), weight = found
        _blend_lab(frame[y0:y1, x0:x1], weight * float(strength), _target_lab(color),
                   chroma_keep=0.5, lightness_pull=0.3)
    return frame


def iris_weight(gray: np.ndarray, eye: np.ndarray, feather: float):
    """(roi box, float32 weight) of the iris inside one eye contour; None when the eye is off-frame or closed.

    The 68 points give the lids, not the iris: the iris is the darkest disc of radius ≈ 0.21 ×
    eye width between the lids. The pupil (darkest core) and catch-lights / sclera (brightest
    pixels) get no colour.
    """
    width = np.linalg.norm(eye[3] - eye[0])
    radius = 0.21 * width
    box = _roi(eye, radius + 2 * feather + 2, gray.shape)
    if box is None or radius < 1.5:
        return None
    x0, y0, x1, y1 = box
    lids = _polygon_mask((y1 - y0, x1 - x0), np.array([x0, y0]), [eye], [255]).astype(np.float32) / 255.0
    if lids.sum() < np.pi * radius ** 2 * 0.25:
        return None  # eye (nearly) closed
    g = gray[y0:y1, x0:x1].astype(np.float32)
    r = int(np.ceil(radius))
    disc = (np.hypot(*np.mgrid[-r:r + 1, -r:r + 1]) <= radius).astype(np.float32)
    darkness = cv2.filter2D((255.0 - g) * lids, -1, disc / disc.sum(), borderType=cv2.BORDER_CONSTANT)
    cy, cx = np.unravel_index(np.argmax(np.where(lids > 0.5, darkness, -1.0)), darkness.shape)
    iris = np.zeros_like(g)
    cv2.circle(iris, (int(cx) << _SHIFT, int(cy) << _SHIFT), int(radius * (1 << _SHIFT)), 1.0, -1, cv2.LINE_AA, _SHIFT)
    iris = cv2.GaussianBlur(iris * lids, (0, 0), feather * 0.5)
    inside = g[iris > 0.5]
    if inside.size == 0:
        return None
    sclera = g[(lids > 0.5) & (iris < 0.05)]
    bright = np.median(sclera) if sclera.size else 255.0
    dark = np.percentile(inside, 5)
    mid = np.median(inside)
    # 0 at the pupil's darkness, 1 half way to the iris median; 1 below the sclera, 0 at it
    keep_pupil = np.clip((g - dark) / max(mid - dark, 1.0) * 2.0 - 0.3, 0, 1)
    keep_bright = np.clip((bright - g) / max(bright - mid, 1.0) * 2.0, 0, 1)
    return box, iris * keep_pupil * keep_bright


def recolor_irises(frame: np.ndarray, points: np.ndarray, color, strength: float = 0.6,
                   style: str = "natural") -> np.ndarray:
    """Recolour both irises of one face; pupils stay dark, sclera and catch-lights unchanged.

    Same arguments as `recolor_lips`; "flat" fills the whole eye contour, as the study did.
    Modifies `frame` in place and returns it.
    """
    eyes = [points[RIGHT_EYE], points[LEFT_EYE]]
    if style == "flat":
        return _flat_fill(frame, eyes, [], color, strength)
    target = _target_lab(color)
    feather = _feather(points)
    for eye in eyes:
        box = _roi(eye, 0.21 * np.linalg.norm(eye[3] - eye[0]) + 2 * feather + 2, frame.shape)
        if box is None:
            continue
        x0, y0, x1, y1 = box
        gray = cv2.cvtColor(frame[y0:y1, x0:x1], cv2.COLOR_BGR2GRAY)
        found = iris_weight(gray, eye - [x0, y0], feather)
        if found is None:
            continue
        (a0, b0, a1, b1), weight = found
        _blend_lab(frame[y0 + b0:y0 + b1, x0 + a0:x0 + a1], weight * float(strength), target,
                   chroma_keep=0.6, lightness_pull=0.35)
    return frame


def _flat_fill(frame, polygons, holes, color, strength) -> np.ndarray:
    """The study's look: polygons filled with a flat colour (blended by strength), for comparison."""
    bgr = np.array(parse_color(color) if isinstance(color, str) else color, np.float32)
    pts = np.concatenate(polygons)
    box = _roi(pts, 2, frame.shape)
    if box is None:
        return frame
    x0, y0, x1, y1 = box
    mask = _polygon_mask((y1 - y0, x1 - x0), np.array([x0, y0]), polygons + holes,
                         [255] * len(polygons) + [0] * len(holes))
    sel = mask > 0
    roi = frame[y0:y1, x0:x1]
    w = (mask[sel].astype(np.float32) / 255.0 * float(strength))[:, None]
    roi[sel] = np.clip(roi[sel] * (1 - w) + bgr * w + 0.5, 0, 255).astype(np.uint8)
    return frame


class Recolor:
    """Annotator applying lip and/or iris colour to every face: `annotate(scene, faces) -> scene` (in place).

    Args:
        lip_color, eye_color: CSS name / '#rrggbb' / None to skip. Validated here, at construction.
        lip_strength, eye_strength: 0..1.
        style: "natural" or "flat".
    """

    def __init__(self, lip_color=None, eye_color=None, lip_strength: float = 0.6, eye_strength: float = 0.6,
                 style: str = "natural"):
        if style not in STYLES:
            raise ValueError(f"unknown style {style!r}; expected one of {STYLES}")
        for c in (lip_color, eye_color):
            if c is not None:
                parse_color(c)
        self.lip_color, self.eye_color = lip_color, eye_color
        self.lip_strength, self.eye_strength, self.style = lip_strength, eye_strength, style

    def annotate(self, scene: np.ndarray, faces: FaceLandmarks) -> np.ndarray:
        for xy in faces.xy:
            if self.lip_color is not None:
                recolor_lips(scene, xy, self.lip_color, self.lip_strength, self.style)
            if self.eye_color is not None:
                recolor_irises(scene, xy, self.eye_color, self.eye_strength, self.style)
        return scene
