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


def eye_roll(points: np.ndarray) -> np.ndarray:
    """(N,) angle in degrees of the line from the subject's right eye to the left (means of 36-41, 42-47):
    the roll that the tracker and the training crops undo to see a face upright."""
    d = points[..., 42:48, :].mean(-2) - points[..., 36:42, :].mean(-2)
    return np.degrees(np.arctan2(d[..., 1], d[..., 0]))


#: Mean shape of the 1,215 300-W training faces after similarity (Procrustes) alignment,
#: centred, inter-ocular distance 1. Used to judge whether a prediction looks like a face.
MEAN_SHAPE = np.array([
    [-0.8181, -0.4123], [-0.8124, -0.1953], [-0.7880, 0.0206], [-0.7422, 0.2296],
    [-0.6566, 0.4224], [-0.5234, 0.5896], [-0.3620, 0.7271], [-0.1872, 0.8340],
    [0.0076, 0.8620], [0.1987, 0.8263], [0.3688, 0.7164], [0.5251, 0.5801],
    [0.6535, 0.4152], [0.7388, 0.2237], [0.7850, 0.0177], [0.8096, -0.1932],
    [0.8211, -0.4075], [-0.6694, -0.5709], [-0.5665, -0.6664], [-0.4214, -0.6962],
    [-0.2705, -0.6766], [-0.1330, -0.6226], [0.1293, -0.6314], [0.2749, -0.6821],
    [0.4241, -0.6983], [0.5664, -0.6639], [0.6615, -0.5688], [0.0024, -0.4542],
    [0.0023, -0.3163], [0.0028, -0.1810], [0.0042, -0.0413], [-0.1729, 0.0594],
    [-0.0872, 0.0889], [0.0013, 0.1123], [0.0887, 0.0886], [0.1668, 0.0622],
    [-0.5029, -0.4285], [-0.4099, -0.4794], [-0.3019, -0.4762], [-0.2113, -0.4084],
    [-0.3061, -0.3914], [-0.4148, -0.3915], [0.2050, -0.4091], [0.3032, -0.4799],
    [0.4099, -0.4783], [0.4971, -0.4285], [0.4167, -0.3935], [0.3104, -0.3911],
    [-0.3187, 0.3181], [-0.1982, 0.2669], [-0.0791, 0.2430], [-0.0040, 0.2634],
    [0.0810, 0.2440], [0.2006, 0.2705], [0.3134, 0.3164], [0.2027, 0.4296],
    [0.0874, 0.4796], [-0.0029, 0.4890], [-0.0861, 0.4804], [-0.2032, 0.4312],
    [-0.2699, 0.3229], [-0.0804, 0.3109], [-0.0037, 0.3194], [0.0818, 0.3108],
    [0.2659, 0.3225], [0.0825, 0.3755], [-0.0040, 0.3862], [-0.0825, 0.3771],
])


def shape_residual(points: np.ndarray) -> np.ndarray:
    """How far (N, 68, 2) shapes are from the mean face after the best similarity fit.

    RMS residual relative to the mean shape's own RMS size: about 0.15 for typical faces,
    0.37 for the most extreme training pose, ~1 for a shape unrelated to a face.

    With both shapes centred and read as complex numbers z and m, the best fit a·z has
    a = Σ z̄m / Σ|z|², which leaves Σ|az − m|² = Σ|m|² − |Σ z̄m|² / Σ|z|²: one product with the mean
    shape per face (the tracker checks every face on every frame).
    """
    z = np.asarray(points, np.float64)
    z = (z - z.mean(-2, keepdims=True)).reshape(z.shape[:-2] + (2 * z.shape[-2],))   # (..., 136): x0, y0, x1, …
    zm = z @ _FIT                                                          # (..., 2): Re, Im of Σ z̄m
    zz = np.maximum(np.einsum("...i,...i->...", z, z), 1e-12)
    left = 1.0 - (zm[..., 0] ** 2 + zm[..., 1] ** 2) / (zz * _MEAN_NORM2)
    return np.sqrt(np.maximum(left, 0.0))


_CENTRED_MEAN = MEAN_SHAPE - MEAN_SHAPE.mean(0)
_MEAN_NORM2 = float((_CENTRED_MEAN ** 2).sum())
#: Σ z̄m = Σ (x·mx + y·my) + i Σ (x·my − y·mx), as a (136, 2) matrix on interleaved (x, y)
_FIT = np.stack([_CENTRED_MEAN.ravel(), np.stack([_CENTRED_MEAN[:, 1], -_CENTRED_MEAN[:, 0]], 1).ravel()], 1)
