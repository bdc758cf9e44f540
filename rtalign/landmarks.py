"""The iBUG 68-point scheme: index groups, the mirror permutation, the inter-ocular pair.

Everything that depends on *which* point is which lives here, so a flip or a
metric can never disagree with the renderer about point order.
"""
import numpy as np

N_POINTS = 68

JAW = np.arange(0, 17)
RIGHT_BROW = np.arange(17, 22)
LEFT_BROW = np.arange(22, 27)
NOSE = np.arange(27, 36)
RIGHT_EYE = np.arange(36, 42)  # the subject's right: the image's left
LEFT_EYE = np.arange(42, 48)
OUTER_LIPS = np.arange(48, 60)
INNER_LIPS = np.arange(60, 68)

#: Outer eye corners; their distance normalizes NME (300-W standard).
INTEROCULAR = (36, 45)


def _flip_permutation() -> np.ndarray:
    pairs = [(i, 16 - i) for i in range(8)]                      # jaw
    pairs += [(17 + i, 26 - i) for i in range(5)]                # brows
    pairs += [(31, 35), (32, 34)]                                # nostrils
    pairs += [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]  # eyes
    pairs += [(48, 54), (49, 53), (50, 52), (55, 59), (56, 58)]  # outer lips
    pairs += [(60, 64), (61, 63), (65, 67)]                      # inner lips
    perm = np.arange(N_POINTS)
    for a, b in pairs:
        perm[a], perm[b] = b, a
    return perm


#: After mirroring an image horizontally, point i of the mirrored face is point FLIP[i] of the original.
FLIP = _flip_permutation()

#: Polylines for drawing a wireframe: (indices, closed).
CONTOURS = (
    (JAW, False), (RIGHT_BROW, False), (LEFT_BROW, False),
    (np.arange(27, 31), False), (np.arange(30, 36), True),
    (RIGHT_EYE, True), (LEFT_EYE, True), (OUTER_LIPS, True), (INNER_LIPS, True),
)


def mirror_points(points: np.ndarray, width: int) -> np.ndarray:
    """Landmarks of the horizontally mirrored image of width `width` (0-based pixel centres).

    Works on (68, 2) or (N, 68, 2); returns a new array.
    """
    out = points[..., FLIP, :].copy()
    out[..., 0] = (width - 1) - out[..., 0]
    return out


def interocular(points: np.ndarray) -> np.ndarray:
    """Outer-eye-corner distance of (68, 2) or (N, 68, 2) points, in the points' units."""
    a, b = INTEROCULAR
    return np.linalg.norm(points[..., a, :] - points[..., b, :], axis=-1)


def landmark_box(points: np.ndarray) -> np.ndarray:
    """Tight [x0, y0, x1, y1] box of (68, 2) or (N, 68, 2) points (the 300-W evaluation box)."""
    return np.concatenate([points.min(axis=-2), points.max(axis=-2)], axis=-1)
