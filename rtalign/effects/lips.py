"""Lip recolouring whose mask follows the real lip edge, not just the landmark polygon.

Points are often a few pixels off the true lip line, and the inner line sits on the teeth of a
smile. So the polygon only proposes: in a band around its outline, each pixel is decided by colour,
comparing a model of the lip (the polygon's confident core) with one of the skin just outside.
Teeth and the mouth's dark cavity fall on the skin side of that comparison or are unlike both, and
pixels unlike both lip and skin (a hand, a microphone, moustache hair) are left alone.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from ..landmarks import INNER_LIPS, OUTER_LIPS
from ..render import colour_canvas
from .common import (blend_lab, check_effect, clamp, eye_white_lightness, face_points, flat_fill, full_chroma,
                     interocular, lab8, light_gain, lit_target, quantiles, roi, signed_distance)

#: Band half-width around the polygon's outline, in inter-ocular distances: how far off the points may be.
BAND = 0.05
#: Log-odds the polygon adds for "lip" deep inside it (and against, a band's width outside).
PRIOR = 4.0
#: Share of each pixel's chroma deviation kept (texture), and of the lightness gap to the target closed.
CHROMA_KEEP, LIGHTNESS_PULL = 0.5, 0.3
#: Factor on the colour models' log-likelihood ratio: lip and skin pixels are not independent draws,
#: a whole neighbourhood agrees, so the per-pixel evidence is worth more than one sample's.
SHARPNESS = 4.0
#: Squared separation of the lip and skin models below which the polygon's prior gains weight.
SEPARATION = 100.0
#: Depth from which polygon pixels sample the lip colour: this share of the deepest, or of the
#: band, whichever is less (so full lips are sampled along their length, not only at the centre,
#: where a microphone or finger would dominate).
CORE = (0.6, 0.5)
#: How far (in bands) the outer line is moved in when lip and skin have the same chroma (a monochrome
#: photo: only lightness tells them apart, which the chin's shadow shares, so the points alone decide and
#: they often sit low); the inset fades out as the chroma gap (a*, b*) grows to MONO_CHROMA. Chosen on
#: every 4th training face (36 monochrome): below ΔE with lowered points 8.5 → 2.3, coverage 0.99 → 0.93
#: (0.6: 2.8 and 0.96; 0.8: 2.0 and 0.89).
INSET, MONO_CHROMA = 0.7, 2.0
#: Pixels inside the inner lip line that may still be lip.
INNER_REACH = 1.5
#: Mahalanobis distances to the nearer of lip and skin between which a pixel fades out as "unlike both".
UNLIKE = (4.0, 6.0)
#: Lab variance added to each colour model (JPEG noise, few samples).
REGULARIZE = 4.0
#: Inter-ocular distance (px) at which larger faces' lip masks are computed, and at which smaller ones than
#: MIN_WORK_IOD are (upsampled, the mask then averaged back down): below it the band would be narrower than
#: 2 px, and a 2 px band, 1.5 px inner reach and 0.7 px blur on a 20 px face's 2 px thick lips painted
#: 1.7× the lip area (the skin around the mouth with it).
WORK_IOD, MIN_WORK_IOD = 110.0, 2.0 / BAND
#: At most this upsampling: eye corners that all but coincide (a profile, a bad fit) under a mouth of normal
#: size made the working image thousands of pixels wide (40 / inter-ocular), and took the memory.
MAX_UPSCALE = 4.0

#: The robust centre and spread of a colour model come from at most this many of its pixels (an even
#: stride through them): as good a median for rejecting outliers, at a fraction of the sorting.
ROBUST_SAMPLES = 256

_REGULARIZE = REGULARIZE * np.eye(3)
_SUM = np.ones((1, 3), np.float32)     # cv2.transform: the sum of three channels


@dataclass
class LipMask:
    """box: (x0, y0, x1, y1) in the frame; weight: float32 (h, w) in [0, 1];
    skin_lightness: median L* of the skin around the mouth (the face's light)."""
    box: tuple
    weight: np.ndarray
    skin_lightness: float


def _model(pixels: np.ndarray):
    """(mean, covariance, whitening matrix) of Lab pixels, fitted to those within 3 robust standard
    deviations of the median (not highlights, stray skin or an occluder over part of the sample).
    The whitening W makes |W (x - mean)|² the Mahalanobis distance."""
    probe = pixels[:: -(-len(pixels) // ROBUST_SAMPLES)]
    median = quantiles(probe, [0.5])[0]
    spread = 1.4826 * quantiles(np.abs(probe - median), [0.5])[0] + np.sqrt(REGULARIZE)
    kept = pixels[_distance2(pixels[None], median, np.diag(1.0 / spread))[0] < 9.0]   # a row: see lab8
    if len(kept) >= 8:
        pixels = kept
    cov, mean = cv2.calcCovarMatrix(pixels, None, cv2.COVAR_NORMAL | cv2.COVAR_ROWS | cv2.COVAR_SCALE)
    cov += _REGULARIZE
    _, values, vectors = cv2.eigen(cov)
    return mean[0], cov, vectors / np.sqrt(values)


def _affine(matrix: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """[M | -M mean] as float32 for cv2.transform: M (x - mean) per pixel."""
    out = np.empty((len(matrix), 4), np.float32)
    out[:, :3] = matrix
    out[:, 3] = -(matrix @ mean)
    return out


def _discriminant(m_lip, c_lip, m_skin, c_skin) -> np.ndarray:
    """1x4 affine map of a Lab pixel to its log-likelihood ratio lip : skin (shared covariance)."""
    w = cv2.solve((c_lip + c_skin) / 2, (m_lip - m_skin)[:, None], flags=cv2.DECOMP_CHOLESKY)[1][:, 0]
    return _affine(w[None, :], (m_skin + m_lip) / 2)


def _distance2(image: np.ndarray, mean, white) -> np.ndarray:
    y = cv2.transform(image, _affine(white, mean))
    return cv2.transform(y * y, _SUM)


def lip_mask(image: np.ndarray, points: np.ndarray) -> LipMask | None:
    """The per-pixel lip weight of one face; None when the mouth is off-frame or degenerate.

    Large faces are decided at a resolution where the inter-ocular distance is WORK_IOD px (the
    weight is smooth, the cost stays flat), tiny ones where it is MIN_WORK_IOD px, then the weight is scaled
    back to the frame.

    Args:
        image: (H, W, 3) BGR uint8 frame (read only).
        points: (68, 2) landmarks in frame pixels.
    """
    iod = max(interocular(points), 1e-6)
    scale = min(min(WORK_IOD, max(MIN_WORK_IOD, iod)) / iod, MAX_UPSCALE)
    unit = min(scale, 1.0)          # working pixels a frame pixel spans; tiny faces: the working pixel itself
    band = max(2.0 * unit, BAND * iod * scale)                              # working pixels
    box = roi(points[OUTER_LIPS], 2 * band / scale + 2, image.shape)
    if box is None:
        return None
    x0, y0, x1, y1 = box
    size = (max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale)))
    part = image[y0:y1, x0:x1]
    if scale != 1.0:
        part = cv2.resize(part, size, interpolation=cv2.INTER_LINEAR)
    k = np.array([size[0] / (x1 - x0), size[1] / (y1 - y0)])
    pts = (points - [x0, y0] + 0.5) * k - 0.5
    reach_in = INNER_REACH * unit
    lab = lab8(part)                                     # 8-bit Lab: precise enough to decide
    smooth = cv2.GaussianBlur(lab, (0, 0), 0.8)          # decide with less JPEG noise
    d_out = signed_distance(size[::-1], np.zeros(2), pts[OUTER_LIPS])
    d_in = signed_distance(size[::-1], np.zeros(2), pts[INNER_LIPS])
    d_lip = np.minimum(d_out, -d_in)                     # > 0 on the lips
    if d_lip.max() <= 0.0:
        return None
    core = smooth[d_lip >= min(CORE[0] * d_lip.max(), CORE[1] * band)]
    ring = (d_out <= -band) & (d_out >= -2 * band)
    skin_lightness = float(quantiles(smooth[..., 0][ring] if ring.any() else lab[..., 0].ravel(), [0.5])[0])
    # skin above and below the mouth apart: the chin under the lower lip is often in shadow
    corner = pts[OUTER_LIPS[6]] - pts[OUTER_LIPS[0]]
    left = pts[OUTER_LIPS[0]]
    below = ((np.arange(size[0], dtype=np.float32) - left[0]) * corner[1])[None, :] < (
        (np.arange(size[1], dtype=np.float32) - left[1]) * corner[0])[:, None]
    skins = [smooth[ring & below], smooth[ring & ~below]]
    skins = [sk for sk in skins if len(sk) >= 8] or ([smooth[ring]] if ring.sum() >= 8 else [])
    if len(core) >= 8 and skins:
        m_lip, c_lip, w_lip = _model(core)
        llr, nearer, separation, chroma_gap = None, _distance2(smooth, m_lip, w_lip), np.inf, np.inf
        for sk in skins:
            m_skin, c_skin, w_skin = _model(sk)
            affine = _discriminant(m_lip, c_lip, m_skin, c_skin)
            side = cv2.transform(smooth, affine)              # log-likelihood ratio lip : this skin
            llr = side if llr is None else np.minimum(llr, side)
            nearer = np.minimum(nearer, _distance2(smooth, m_skin, w_skin))
            separation = min(separation, float(affine[0, :3] @ (m_lip - m_skin)))  # squared Mahalanobis
            chroma_gap = min(chroma_gap, math.hypot(*(m_lip - m_skin)[1:].tolist()))
        boost = min(max(SEPARATION / max(separation, 1e-6), 1.0), 4.0)  # alike models: trust the points
        inset = INSET * band * max(0.0, 1.0 - chroma_gap / MONO_CHROMA)
        prior = PRIOR * boost * clamp(np.minimum(d_out - inset, -d_in) / band, -1.0, 1.0)
        alike = clamp((UNLIKE[1] - np.sqrt(nearer)) / (UNLIKE[1] - UNLIKE[0]), 0.0, 1.0)
        logit = clamp(SHARPNESS * llr, -10.0, 10.0) + prior
    else:
        alike, logit = 1.0, 2 * PRIOR * clamp(d_lip / band, -1.0, 1.0)
    # nothing beyond the band outside; inside the mouth, only a pixel or two (the inner line errs
    # towards the teeth, and the tongue is lip-coloured)
    reach = clamp(np.minimum((d_out + band) / (0.5 * band), reach_in - d_in), 0.0, 1.0)
    weight = cv2.GaussianBlur((alike * reach / (1.0 + np.exp(-logit))).astype(np.float32), (0, 0), 0.7 * unit)
    if scale != 1.0:
        weight = cv2.resize(weight, (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA if scale > 1 else cv2.INTER_LINEAR)
    return LipMask(box, weight, skin_lightness)


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
    check_effect(color, strength, style)
    points = face_points(points)
    if points is None:
        return frame
    with colour_canvas(frame) as canvas:
        if style == "flat":
            flat_fill(canvas, [points[OUTER_LIPS]], [points[INNER_LIPS]], color, strength)
            return frame
        mask = lip_mask(canvas, points)
        if mask is not None:
            x0, y0, x1, y1 = mask.box
            light = mask.skin_lightness, eye_white_lightness(canvas, points)
            blend_lab(canvas[y0:y1, x0:x1], mask.weight * float(strength),
                      lit_target(color, *light), chroma_keep=CHROMA_KEEP,
                      lightness_pull=LIGHTNESS_PULL * light_gain(*light),  # dim: own lightness
                      chroma_limit=full_chroma(color))
    return frame
