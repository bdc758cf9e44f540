"""Iris recolouring gated by how open the eye is, with the iris circle found, checked and tracked.

The 68 points give the lids, not the iris: the iris is the darkest disc of radius ≈ 0.21 × eye
width between the lids. Colour goes on only when the eye is open enough (eye aspect ratio, with
hysteresis across frames so a blink does not flicker), when the disc is clearly darker than the
white of the eye (a confident find), and only on pixels darker than the sclera and lighter than
the pupil, judged on a slightly blurred image so dark irises get a smooth, compact mask.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from ..landmarks import LEFT_EYE, RIGHT_EYE
from ..render import colour_canvas
from .common import (blend_lab, check_effect, clamp, eye_aspect_ratio, eye_white_lightness, face_points, flat_fill,
                     full_chroma, grey_lightness, interocular, light_gain, lit_target, polygon_mask, quantiles, roi)

#: Eye aspect ratio at which a closed eye counts as open again, and below which an open one closes.
EAR_OPEN, EAR_CLOSE = 0.20, 0.16
#: Iris radius in eye widths (corner to corner).
IRIS_RADIUS = 0.21
#: The disc must be this much darker than the sclera (grey levels) to be trusted.
MIN_CONTRAST = 12.0
#: Share of the disc that must lie between the lids.
MIN_VISIBLE = 0.3
#: Weight of each new circle in the tracked one (the rest is the previous); a jump of more than
#: half a radius (a saccade) is taken at once.
FOLLOW = 0.5


@dataclass
class EyeState:
    """What one eye carries from frame to frame: open or not, and the iris centre in eye coordinates
    (along and across the corner-to-corner axis, in eye widths)."""
    is_open: bool = False
    centre: np.ndarray | None = None

    def gate(self, ear: float) -> bool:
        self.is_open = ear >= (EAR_CLOSE if self.is_open else EAR_OPEN)
        if not self.is_open:
            self.centre = None
        return self.is_open


def _eye_open(eye: np.ndarray, state: EyeState | None) -> bool:
    """Whether the eye (its six points) is open enough for colour: judged with hysteresis across frames by
    its `state`, by the opening threshold alone for a still image (None)."""
    return (state or EyeState()).gate(eye_aspect_ratio(eye))


def _eye_axes(eye: np.ndarray):
    """(origin, 2x2 matrix whose rows are the eye's unit axes scaled by 1 / width)."""
    x = eye[3] - eye[0]
    width = max(float(np.linalg.norm(x)), 1e-6)
    ux = x / width
    return eye[0], np.array([ux, [-ux[1], ux[0]]]) / width


def _track(state: EyeState, eye: np.ndarray, centre: np.ndarray) -> np.ndarray:
    origin, axes = _eye_axes(eye)
    local = axes @ (centre - origin)
    if state.centre is not None and np.linalg.norm(local - state.centre) < 0.5 * IRIS_RADIUS:
        local = state.centre + FOLLOW * (local - state.centre)
    state.centre = local
    return origin + np.linalg.solve(axes, local)


def iris_weight(gray: np.ndarray, eye: np.ndarray, feather: float, state: EyeState | None = None):
    """(roi box, float32 weight) of the iris inside one eye contour; None when closed, off-frame or not found.

    Args:
        gray: the ROI's grey image (uint8 or float32); eye: its six points in ROI pixels;
        feather: softening in px; state: this eye's EyeState across frames, updated (None: a still image).
    """
    width = math.dist(eye[3].tolist(), eye[0].tolist())
    radius = IRIS_RADIUS * width
    if not _eye_open(eye, state) or radius < 1.5:
        return None
    box = roi(eye, feather + 2, gray.shape)     # the iris lies between the lids
    if box is None:
        return None
    x0, y0, x1, y1 = box
    lids = polygon_mask((y1 - y0, x1 - x0), np.array([x0, y0]), [eye], [255]).astype(np.float32) / 255.0
    g = cv2.GaussianBlur(gray[y0:y1, x0:x1].astype(np.float32), (0, 0), 0.8)
    side = 2 * int(round(0.9 * radius)) + 1        # a square of the disc's area: as good a probe, far cheaper
    darkness = cv2.blur((255.0 - g) * lids, (side, side), borderType=cv2.BORDER_CONSTANT)
    _, _, _, darkest = cv2.minMaxLoc(darkness, (lids > 0.5).view(np.uint8))
    if darkest[0] < 0:          # no pixel well inside the lids
        return None
    centre = np.array(darkest, np.float64)
    if state is not None:
        centre = _track(state, eye - [x0, y0], centre)
    dist = np.hypot(np.arange(x1 - x0, dtype=np.float32)[None, :] - np.float32(centre[0]),
                    np.arange(y1 - y0, dtype=np.float32)[:, None] - np.float32(centre[1])) / np.float32(radius)
    iris = clamp((1.0 - dist) * radius / max(feather, 0.5) + 0.5, 0.0, 1.0) * lids
    inside, sclera = g[iris > 0.5], g[(lids > 0.5) & (dist > 1.2)]
    if inside.size < MIN_VISIBLE * np.pi * radius ** 2 or sclera.size < 4:
        return None
    bright, (dark, mid) = quantiles(sclera, [0.5])[0], quantiles(inside, [0.05, 0.5])
    if bright - mid < MIN_CONTRAST:
        return None
    # the pupil: central and dark; catch-lights and sclera: well above the iris's median
    pupil_free = np.maximum(clamp((dist - 0.3) / 0.2, 0, 1),
                            clamp((g - dark) / max(mid - dark, 1.0) * 2 - 0.5, 0, 1))
    lo, hi = mid + 0.35 * (bright - mid), mid + 0.7 * (bright - mid)
    below_sclera = clamp((hi - g) / (hi - lo), 0, 1)
    return box, cv2.GaussianBlur(iris * pupil_free * below_sclera, (0, 0), 0.6)


def _surround_lightness(gray: np.ndarray) -> float:
    """L* of the median grey on the border of an eye's ROI (skin around the eye): the face's light."""
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    return grey_lightness(float(quantiles(border, [0.5])[0]))


def recolor_irises(frame: np.ndarray, points: np.ndarray, color, strength: float = 0.6,
                   style: str = "natural", states: tuple[EyeState, EyeState] | None = None) -> np.ndarray:
    """Recolour both irises of one face; pupils stay dark, sclera and catch-lights unchanged.

    Same arguments as `recolor_lips`; "flat" fills the whole eye contour, as the study did, of open eyes only
    (a closed eye's contour is its lid: it got a streak of colour).
    `states`: the face's (right, left) EyeState carried across video frames (None for a photo).
    Modifies `frame` in place and returns it.
    """
    check_effect(color, strength, style)
    points = face_points(points)
    if points is None:
        return frame
    eyes = [points[RIGHT_EYE], points[LEFT_EYE]]
    with colour_canvas(frame) as canvas:
        if style == "flat":
            shown = [eye for eye, state in zip(eyes, states or (None, None))
                     if _eye_open(eye, state)]
            if shown:
                flat_fill(canvas, shown, [], color, strength)
            return frame
        feather = max(1.0, 0.025 * interocular(points))
        whites = eye_white_lightness(canvas, points)
        for eye, state in zip(eyes, states or (None, None)):
            if state is None and not _eye_open(eye, None):
                continue                                      # a still image with a closed eye: nothing to find
            box = roi(eye, 2 * feather + 4, canvas.shape)
            if box is None:
                continue
            x0, y0, x1, y1 = box
            part = canvas[y0:y1, x0:x1]
            gray = cv2.cvtColor(part, cv2.COLOR_BGR2GRAY)
            found = iris_weight(gray, eye - [x0, y0], feather, state)
            if found is None:
                continue
            (a0, b0, a1, b1), weight = found
            light = _surround_lightness(gray)
            blend_lab(part[b0:b1, a0:a1], weight * float(strength), lit_target(color, light, whites), chroma_keep=0.6,
                      lightness_pull=0.35 * light_gain(light, whites), chroma_limit=full_chroma(color))
    return frame
