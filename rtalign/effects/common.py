"""What lip and iris recolouring share: regions of interest, polygon masks and distances, and the
Lab blend with a target adapted to the face's lighting."""
from __future__ import annotations

import functools
import math
import numbers

import cv2
import numpy as np

from ..color import parse_color
from ..errors import InputError
from ..landmarks import INTEROCULAR, LEFT_EYE, N_POINTS, RIGHT_EYE

STYLES = ("natural", "flat")

_SHIFT = 4  # fixed-point bits for sub-pixel polygon filling
#: Luminance Y of well-lit skin (L* ≈ 65): a face lit like this gets the target colour as given.
REFERENCE_SKIN_Y = 0.34
#: L* of the eye whites (eye_white_lightness) of well-lit faces: the median over the colour train faces
#: whose skin is at least L* 65 (`python /work/ckpt/s20/light.py`, measured in session 20).
REFERENCE_EYE_WHITE = 72.0
#: Eyes open at least this much (aspect ratio) and holding this many pixels show enough white to read.
EYE_WHITE_EAR, EYE_WHITE_PIXELS = 0.2, 20
#: 8-bit grey from which an eye pixel is a reflection, not the eye's white (L* 94 and up).
GLARE = 240
_WHITE = np.array([0.950456, 1.0, 1.088754], np.float32)       # D65, as OpenCV's Lab
#: OpenCV's 8-bit Lab → L* 0..100, a*, b* (one cv2.transform: numpy broadcasting over a last axis
#: of 3 channels costs several times more than the conversion itself)
_FROM_LAB8 = np.array([[100 / 255, 0, 0, 0], [0, 1, 0, -128], [0, 0, 1, -128]], np.float32)
_XYZ_TO_RGB = np.array([[3.2404542, -1.5371385, -0.4985314], [-0.9692660, 1.8760108, 0.0415560],
                        [0.0556434, -0.2040259, 1.0572252]], np.float32)


def target_bgr(color) -> np.ndarray:
    """A colour string or BGR triple as float32 BGR in [0, 1].

    Raises:
        InputError: a string that does not parse, or a triple that is not three numbers in 0..255.
    """
    if isinstance(color, str):
        return np.array(parse_color(color), np.float32) / 255.0
    try:
        bgr = np.asarray(color, np.float64)
    except (TypeError, ValueError):
        bgr = np.empty(0)
    if bgr.shape != (3,) or not (np.isfinite(bgr).all() and (bgr >= 0).all() and (bgr <= 255).all()):
        raise InputError(f"bad colour {color!r}: a CSS colour name such as 'crimson', '#rrggbb', or three BGR "
                         "numbers within 0-255")
    return (bgr / 255.0).astype(np.float32)


def check_effect(color, strength, style: str, name: str = "strength") -> None:
    """Refuse in one line what the recolouring cannot apply: Recolor checks once, when it is made, and
    recolor_lips / recolor_irises on every call (strength 2 extrapolated into flat paint, an unknown style ran
    as "natural").

    Raises:
        ValueError: an unknown style.
        InputError: a colour target_bgr refuses, or a strength that is not a number in 0..1.
    """
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}; expected one of {STYLES}")
    if color is not None:
        target_bgr(color)
    if not (isinstance(strength, numbers.Real) and math.isfinite(strength) and 0 <= strength <= 1):
        raise InputError(f"{name} must be a number in 0..1, got {strength!r}")


def face_points(points) -> np.ndarray | None:
    """One face's (68, 2) landmarks as an array, None when one is not finite (such a face is left as it is).

    Raises:
        InputError: not 68 (x, y) points.
    """
    points = np.asarray(points, np.float64)
    if points.shape != (N_POINTS, 2):
        raise InputError(f"expected one face's ({N_POINTS}, 2) landmarks, got shape {points.shape}")
    return points if np.isfinite(points).all() else None


def lab_of(bgr01: np.ndarray) -> np.ndarray:
    """Lab (L in 0..100) of BGR float32 in [0, 1], any leading shape."""
    return cv2.cvtColor(np.asarray(bgr01, np.float32).reshape(-1, 1, 3), cv2.COLOR_BGR2Lab).reshape(np.shape(bgr01))


def quantiles(values: np.ndarray, qs) -> np.ndarray:
    """Quantiles (0..1) of a 1-D array, or per column of a 2-D one, by one partition: np.percentile
    and np.median cost more than the rest of an eye's work on these small samples."""
    ks = [min(int(q * len(values)), len(values) - 1) for q in qs]
    return np.partition(values, ks, axis=0)[ks]


def clamp(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """np.clip of a temporary array, in place, without np.clip's Python-level dispatch (which costs more
    than the clipping itself on the small arrays of a face)."""
    return np.minimum(np.maximum(values, lo, out=values), hi, out=values)


def grey_lightness(grey: float) -> float:
    """L* of an 8-bit sRGB grey level."""
    y = _decode(grey / 255.0)
    return 116.0 * y ** (1 / 3) - 16.0 if y > 0.008856 else 903.3 * y


def _luminance(lightness: float) -> float:
    """Luminance Y of an L* (floored at L* 8: the darkest faces count as very dim, not black)."""
    return ((max(float(lightness), 8.0) + 16.0) / 116.0) ** 3


def eye_aspect_ratio(eye: np.ndarray) -> float:
    """(|p1 − p5| + |p2 − p4|) / (2 |p0 − p3|) of one eye's six points: ≈ 0.3 open, < 0.15 closed."""
    p = eye.tolist()           # six points: plain floats cost less than numpy here
    return (math.dist(p[1], p[5]) + math.dist(p[2], p[4])) / max(2.0 * math.dist(p[3], p[0]), 1e-6)


def eye_white_lightness(frame: np.ndarray, points: np.ndarray) -> float | None:
    """L* of the brightest tenth of both eyes' pixels: their whites, which reflect the same for every skin
    tone. Pixels at GLARE or above are left out: catch-lights, and a screen's reflection on glasses (which
    made a dim room read as well lit). None when an eye is closed (aspect ratio below EYE_WHITE_EAR) or the
    eyes hold too few pixels."""
    eyes = [points[RIGHT_EYE], points[LEFT_EYE]]
    if min(eye_aspect_ratio(eye) for eye in eyes) < EYE_WHITE_EAR:
        return None
    values = []
    for eye in eyes:
        box = roi(eye, 1, frame.shape)
        if box is not None:
            x0, y0, x1, y1 = box
            inside = polygon_mask((y1 - y0, x1 - x0), np.array([x0, y0]), [eye], [1], antialias=False)
            values.append(cv2.cvtColor(frame[y0:y1, x0:x1], cv2.COLOR_BGR2GRAY)[inside > 0])
    values = np.concatenate(values) if values else np.empty(0, np.uint8)
    values = values[values < GLARE]
    return grey_lightness(float(quantiles(values, [0.9])[0])) if len(values) >= EYE_WHITE_PIXELS else None


def light_gain(skin_lightness: float, eye_white: float | None = None) -> float:
    """The face's light relative to a well-lit face (luminance ratio, at most 1): from its skin's L*, or
    from its eye whites' (eye_white_lightness) where they say brighter. Skin alone took dark skin in good
    light for a dim scene: the lipstick came out dimmed and a third less saturated than on light skin."""
    gain = min(max(_luminance(skin_lightness) / REFERENCE_SKIN_Y, 0.02), 1.0)
    if eye_white is not None:
        gain = max(gain, min(_luminance(eye_white) / _luminance(REFERENCE_EYE_WHITE), 1.0))
    return gain


def lit_target(color, skin_lightness: float, eye_white: float | None = None) -> np.ndarray:
    """Lab of the target colour as it would look under the face's light (light_gain).

    A face lit less than a well-lit one scales the target's linear RGB down by the same factor (never
    up), so in a dim scene the lipstick is dim too and loses chroma the way real colours do,
    instead of glowing at full brightness.
    """
    gain = light_gain(skin_lightness, eye_white)
    srgb = [_encode(_decode(v) * gain) for v in target_bgr(color).tolist()]
    return lab_of(np.array(srgb, np.float32))


def full_chroma(color) -> float:
    """Chroma (Lab) of the target colour in full light: what `blend_lab` lets a pixel reach at most."""
    lab = lab_of(target_bgr(color))
    return math.hypot(float(lab[1]), float(lab[2]))


def _decode(v: float) -> float:
    """sRGB → linear, one channel in [0, 1]."""
    return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4


def _encode(v: float) -> float:
    """linear → sRGB, one channel in [0, 1]."""
    return v * 12.92 if v <= 0.0031308 else 1.055 * v ** (1 / 2.4) - 0.055


def interocular(points: np.ndarray) -> float:
    """Inter-ocular distance (outer eye corners) of (68, 2) points, in their pixels."""
    return math.dist(points[INTEROCULAR[0]].tolist(), points[INTEROCULAR[1]].tolist())


def roi(points: np.ndarray, margin: float, shape) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) box around `points` grown by `margin` px and clipped to the frame; None if empty."""
    h, w = shape[:2]
    (xa, ya), (xb, yb) = points.min(0).tolist(), points.max(0).tolist()      # plain floats: cheaper here
    x0, y0 = max(math.floor(xa - margin), 0), max(math.floor(ya - margin), 0)
    x1, y1 = min(math.ceil(xb + margin) + 1, w), min(math.ceil(yb + margin) + 1, h)
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def polygon_mask(shape, origin, polygons, values, antialias: bool = True) -> np.ndarray:
    """uint8 mask of the ROI with each polygon filled in turn with its value."""
    mask = np.zeros(shape, np.uint8)
    for poly, value in zip(polygons, values):
        fixed = np.rint((poly - origin) * (1 << _SHIFT)).astype(np.int32)
        cv2.fillPoly(mask, [fixed], int(value), cv2.LINE_AA if antialias else cv2.LINE_8, _SHIFT)
    return mask


def signed_distance(shape, origin, polygon) -> np.ndarray:
    """float32 distance in px to the polygon's outline: positive inside, negative outside."""
    inside = polygon_mask(shape, origin, [polygon], [1], antialias=False)
    d_in = cv2.distanceTransform(inside, cv2.DIST_L2, cv2.DIST_MASK_3)          # 0 outside
    d_out = cv2.distanceTransform(1 - inside, cv2.DIST_L2, cv2.DIST_MASK_3)     # 0 inside
    d_in -= d_out
    d_in += 0.5 - inside           # -0.5 inside, +0.5 outside: the outline lies between pixels
    return d_in


def lab8(bgr: np.ndarray) -> np.ndarray:
    """Lab (L in 0..100) of BGR uint8 pixels (any leading shape) through OpenCV's 8-bit conversion: a
    table lookup, several times cheaper than the float one, and within half an L* step of it.

    Pixel lists go to OpenCV as one row (1, N, 3), never as a column (N, 1, 3): its colour conversions
    and blends work row by row, and a column of one-pixel rows costs about seven times as much."""
    lab = cv2.cvtColor(bgr.reshape(1, -1, 3), cv2.COLOR_BGR2Lab).astype(np.float32)
    return cv2.transform(lab, _FROM_LAB8).reshape(bgr.shape)


def blend_lab(roi_bgr: np.ndarray, weight: np.ndarray, target: np.ndarray, chroma_keep: float,
              lightness_pull: float, chroma_limit: float | None = None) -> None:
    """Recolour `roi_bgr` (BGR uint8, in place) where `weight` (float32 in [0, 1]) is positive.

    Each pixel's fully recoloured version is made in Lab: a, b take the target's hue and chroma, scaled
    by the pixel's saturation relative to the weighted mean (`chroma_keep` of that variation kept); L
    moves by `lightness_pull` of the gap between the target and the weighted mean, so the lightness
    detail (texture, shading, gloss) is kept exactly. The pixel then moves `weight` of the way to it
    (in BGR, so a pixel of weight 0 stays exactly as it was).

    With `chroma_limit` (the colour's chroma in full light, `full_chroma`), the chroma follows the
    lightness as a lit colour's does (dimming light scales L*, a* and b* alike): a pixel lighter than the
    (dimmed) target gets the chroma the colour has at that lightness, up to the limit. The light read
    round a mouth in shadow or a beard was darker than the lips themselves, and they came out grey.
    """
    idx = np.flatnonzero(weight > 1 / 255.0)     # less can not move a pixel by half a level
    if not len(idx):
        return
    block = roi_bgr.copy()          # contiguous: integer gathers and scatters cost a third of boolean ones
    pixels = block.reshape(-1, 3)
    w = weight.ravel().take(idx)
    orig = pixels.take(idx, axis=0)
    px = lab8(orig)
    mean = (w @ px) / float(w.sum())
    lightness = px[:, 0] + lightness_pull * (target[0] - mean[0])
    # the hue becomes the target's; each pixel keeps `chroma_keep` of its relative saturation
    ratio = np.hypot(px[:, 1], px[:, 2]) / max(math.hypot(mean[1], mean[2]), 1.0)
    saturation = 1.0 + chroma_keep * (np.minimum(ratio, 3.0) - 1.0)
    if chroma_limit is not None:
        most = max(chroma_limit / max(math.hypot(float(target[1]), float(target[2])), 1e-6), 1.0)
        saturation = saturation * clamp(lightness / max(float(target[0]), 1.0), 1.0, most)
    full = cv2.convertScaleAbs(_in_gamut_bgr(lightness, target[1:], saturation), alpha=255.0)
    pixels[idx] = cv2.blendLinear(orig[None], full[None], (1.0 - w)[None], w[None])[0]
    np.copyto(roi_bgr, block)


def _linear_rgb(lab: np.ndarray, chroma=1.0) -> np.ndarray:
    """Linear RGB of (N, 3) Lab (D65, sRGB primaries) with a*, b* scaled by `chroma` (scalar or (N,)),
    unclipped: OpenCV's Lab → BGR clips to [0, 1], which hides how far outside the gamut a colour lies."""
    fy = (lab[:, 0] + 16.0) / 116.0
    f = np.stack([fy + chroma * lab[:, 1] / 500.0, fy, fy - chroma * lab[:, 2] / 200.0], 1)
    xyz = np.where(f > 6 / 29, f * f * f, 3 * (6 / 29) ** 2 * (f - 4 / 29)) * _WHITE
    return xyz @ _XYZ_TO_RGB.T


@functools.cache
def _max_chroma() -> np.ndarray:
    """(101, 360) float32: the largest chroma inside sRGB at each integer L* and hue degree, lowered to
    the least of its neighbours so that a nearest-entry lookup never overshoots (bisection, to 0.01)."""
    light, hue = np.meshgrid(np.arange(101, dtype=np.float32), np.radians(np.arange(360, dtype=np.float32)),
                             indexing="ij")
    unit = np.stack([light.ravel(), np.cos(hue).ravel(), np.sin(hue).ravel()], 1)
    lo, hi = np.zeros(len(unit), np.float32), np.full(len(unit), 200.0, np.float32)
    for _ in range(15):
        mid = (lo + hi) / 2
        rgb = _linear_rgb(unit, mid)
        ok = ((rgb >= 0) & (rgb <= 1)).all(1)
        lo, hi = np.where(ok, mid, lo), np.where(ok, hi, mid)
    table = lo.reshape(light.shape)
    wrapped = cv2.erode(np.hstack([table[:, -1:], table, table[:, :1]]), np.ones((3, 3), np.uint8),
                        borderType=cv2.BORDER_REPLICATE)
    return np.ascontiguousarray(wrapped[:, 1:-1])


def _in_gamut_bgr(lightness: np.ndarray, ab, scale: np.ndarray) -> np.ndarray:
    """BGR in [0, 1] of N colours of one hue: L* `lightness` (N,), a*, b* = `ab` × `scale` (N,), float32.

    Colours outside sRGB lose chroma (hue and lightness kept) instead of being clipped per channel,
    which would shift their hue. The chroma limit comes from a table by L* and hue (a per-pixel search
    costs more than the rest of the blend); with one hue for all pixels it is one column of it.
    """
    a, b = float(ab[0]), float(ab[1])
    column = round(math.degrees(math.atan2(b, a))) % 360
    row = clamp(lightness + 0.5, 0, 100).astype(np.intp)
    limit = _max_chroma()[:, column].take(row)
    scale = np.minimum(scale, limit / max(math.hypot(a, b), 1e-6))
    lab = cv2.merge([lightness, a * scale, b * scale])             # all float32
    return cv2.cvtColor(lab.reshape(1, -1, 3), cv2.COLOR_Lab2BGR)[0]


def flat_fill(frame, polygons, holes, color, strength) -> np.ndarray:
    """The study's look: polygons filled with a flat colour (blended by strength), for comparison."""
    bgr = target_bgr(color) * 255.0
    box = roi(np.concatenate(polygons), 2, frame.shape)
    if box is None:
        return frame
    x0, y0, x1, y1 = box
    mask = polygon_mask((y1 - y0, x1 - x0), np.array([x0, y0]), polygons + holes,
                        [255] * len(polygons) + [0] * len(holes))
    sel = mask > 0
    part = frame[y0:y1, x0:x1]
    w = (mask[sel].astype(np.float32) / 255.0 * float(strength))[:, None]
    part[sel] = np.clip(part[sel] * (1 - w) + bgr * w + 0.5, 0, 255).astype(np.uint8)
    return frame
