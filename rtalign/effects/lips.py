"""Lip recolouring whose mask follows the real lip edge, not just the landmark polygon.

Points are often a few pixels off the true lip line, and the inner line sits on the teeth of a
smile. So the polygon only proposes: in a band around its outline, each pixel is decided by colour,
comparing a model of the lip (the polygon's confident core) with one of the skin just outside.
Teeth and the mouth's dark cavity fall on the skin side of that comparison or are unlike both, and
pixels unlike both lip and skin (a hand, a microphone, moustache hair) are left alone.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..landmarks import INNER_LIPS, OUTER_LIPS, interocular
from .common import blend_lab, flat_fill, lit_target, roi, signed_distance

#: Band half-width around the polygon's outline, in inter-ocular distances: how far off the points may be.
BAND = 0.06
#: Log-odds the polygon adds for "lip" deep inside it (and against, a band's width outside).
PRIOR = 4.0
#: Share of each pixel's chroma deviation kept (texture), and of the lightness gap to the target closed.
CHROMA_KEEP, LIGHTNESS_PULL = 0.5, 0.3
#: Factor on the colour models' log-likelihood ratio: lip and skin pixels are not independent draws,
#: a whole neighbourhood agrees, so the per-pixel evidence is worth more than one sample's.
SHARPNESS = 4.0
#: Depth (share of the deepest) from which polygon pixels sample the lip colour.
CORE = 0.5
#: Pixels inside the inner lip line that may still be lip.
INNER_REACH = 1.5
#: Mahalanobis distances to the nearer of lip and skin between which a pixel fades out as "unlike both".
UNLIKE = (4.0, 6.0)
#: Lab variance added to each colour model (JPEG noise, few samples).
REGULARIZE = 4.0


@dataclass
class LipMask:
    """box: (x0, y0, x1, y1) in the frame; weight: float32 (h, w) in [0, 1]; lab: the ROI in Lab;
    skin_lightness: median L* of the skin around the mouth (the face's light)."""
    box: tuple
    weight: np.ndarray
    lab: np.ndarray
    skin_lightness: float


def _model(pixels: np.ndarray):
    """(mean, inverse covariance) of Lab pixels, refitted once without the outliers (highlights, stray skin)."""
    mean = np.median(pixels, axis=0)
    icov = np.linalg.inv(np.cov(pixels, rowvar=False) + REGULARIZE * np.eye(3))
    kept = pixels[_mahalanobis2(pixels, mean, icov) < 9.0]
    if len(kept) >= 8:
        mean = kept.mean(0)
        icov = np.linalg.inv(np.cov(kept, rowvar=False) + REGULARIZE * np.eye(3))
    return mean, icov


def _mahalanobis2(lab: np.ndarray, mean, icov) -> np.ndarray:
    d = lab - mean
    return np.einsum("...i,ij,...j->...", d, icov, d)


def lip_mask(image: np.ndarray, points: np.ndarray) -> LipMask | None:
    """The per-pixel lip weight of one face; None when the mouth is off-frame or degenerate.

    Args:
        image: (H, W, 3) BGR uint8 frame (read only).
        points: (68, 2) landmarks in frame pixels.
    """
    band = max(2.0, BAND * float(interocular(points)))
    box = roi(points[OUTER_LIPS], 2 * band + 2, image.shape)
    if box is None:
        return None
    x0, y0, x1, y1 = box
    shape, origin = (y1 - y0, x1 - x0), np.array([x0, y0])
    lab = cv2.cvtColor(image[y0:y1, x0:x1].astype(np.float32) * (1 / 255.0), cv2.COLOR_BGR2Lab)
    smooth = cv2.GaussianBlur(lab, (0, 0), 0.8)          # classify with less JPEG noise, recolour the original
    d_out = signed_distance(shape, origin, points[OUTER_LIPS])
    d_in = signed_distance(shape, origin, points[INNER_LIPS])
    d_lip = np.minimum(d_out, -d_in)                     # > 0 on the lips
    if d_lip.max() < 1.0:
        return None
    prior = PRIOR * np.clip(d_lip / band, -1.0, 1.0)
    core = smooth[d_lip >= CORE * d_lip.max()]
    skin = smooth[(d_out <= -band) & (d_out >= -2 * band)]
    skin_lightness = float(np.median(skin[:, 0])) if len(skin) else float(np.median(lab[..., 0]))
    if len(core) >= 8 and len(skin) >= 8:
        (m_lip, i_lip), (m_skin, i_skin) = _model(core), _model(skin)
        pooled = np.linalg.inv((np.linalg.inv(i_lip) + np.linalg.inv(i_skin)) / 2)
        w = pooled @ (m_lip - m_skin)
        span = float((m_lip - m_skin) @ w)                 # squared separation of the two models
        llr = (smooth - m_skin) @ w - span / 2                 # log-likelihood ratio lip : skin
        nearer = np.sqrt(np.minimum(_mahalanobis2(smooth, m_lip, i_lip), _mahalanobis2(smooth, m_skin, i_skin)))
        alike = np.clip((UNLIKE[1] - nearer) / (UNLIKE[1] - UNLIKE[0]), 0.0, 1.0)
        logit = np.clip(SHARPNESS * llr, -10.0, 10.0) + prior
    else:
        alike, logit = 1.0, 2 * prior
    # nothing beyond the band outside; inside the mouth, only a pixel or two (the inner line errs
    # towards the teeth, and the tongue is lip-coloured)
    reach = np.clip(np.minimum((d_out + band) / (0.5 * band), INNER_REACH - d_in), 0.0, 1.0)
    weight = (alike * reach / (1.0 + np.exp(-logit))).astype(np.float32)
    weight = cv2.GaussianBlur(weight, (0, 0), 0.7)
    return LipMask(box, weight, lab, skin_lightness)


def recolor_lips(frame: np.ndarray, points: np.ndarray, color, strength: float = 0.6,
                 style: str = "natural") -> np.ndarray:
    """Recolour the lips of one face, keeping teeth, tongue, occluders and the skin around them.

    Args:
        frame: (H, W, 3) BGR uint8, **modified in place**.
        points: (68, 2) landmarks in frame pixels.
        color: CSS name, '#rrggbb' or a BGR tuple.
        strength: 0 (no change) to 1 (full target colour).
        style: "natural" (Lab shift, texture kept, lit like the face) or "flat" (the study's polygon fill).

    Returns:
        frame.
    """
    if style == "flat":
        return flat_fill(frame, [points[OUTER_LIPS]], [points[INNER_LIPS]], color, strength)
    mask = lip_mask(frame, points)
    if mask is not None:
        x0, y0, x1, y1 = mask.box
        blend_lab(frame[y0:y1, x0:x1], mask.lab, mask.weight * float(strength),
                  lit_target(color, mask.skin_lightness), chroma_keep=CHROMA_KEEP, lightness_pull=LIGHTNESS_PULL)
    return frame
