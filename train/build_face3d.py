"""Recover the generic 3-D 68-point face that head pose is measured against (rtalign/pose.py FACE_3D).

    python -m train.build_face3d

Rigid structure from motion (Tomasi & Kanade's affine factorization with the orthographic metric
upgrade) over the 1,215 300-W training faces and their mirror images: each face is one view of
an average head, so the rank-3 factorization of the centred landmarks gives the head's shape up
to an affine map, and the constraint that every view's two camera rows are orthogonal and of
equal length fixes it up to a rotation. The result is turned to face the camera (x, y matching
the mean 2-D shape), made exactly left/right symmetric, and scaled to inter-ocular distance 1.
Printed as the array literal that rtalign/pose.py holds.
"""
import numpy as np

from rtalign.data import data_root, list_samples
from rtalign.landmarks import FLIP, interocular


def mirror3d(points: np.ndarray) -> np.ndarray:
    out = points[..., FLIP, :].copy()
    out[..., 0] *= -1
    return out


def _sym_products(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Rows r with r · vech(L) = aᵀ L b for a symmetric 3x3 L (vech: L00 L01 L02 L11 L12 L22)."""
    return np.stack([a[:, 0] * b[:, 0], a[:, 0] * b[:, 1] + a[:, 1] * b[:, 0], a[:, 0] * b[:, 2] + a[:, 2] * b[:, 0],
                     a[:, 1] * b[:, 1], a[:, 1] * b[:, 2] + a[:, 2] * b[:, 1], a[:, 2] * b[:, 2]], axis=1)


def factorize(shapes: np.ndarray) -> np.ndarray:
    """(F, 68, 2) views → (68, 3) metric shape (any rotation, any sign of depth)."""
    s = shapes - shapes.mean(axis=1, keepdims=True)
    s = s / interocular(s)[:, None, None]
    n = len(s)
    u, sv, vt = np.linalg.svd(np.concatenate([s[..., 0], s[..., 1]]), full_matrices=False)
    motion, shape = u[:, :3] * np.sqrt(sv[:3]), np.sqrt(sv[:3])[:, None] * vt[:3]
    m, k = motion[:n], motion[n:]
    a = np.concatenate([_sym_products(m, m) - _sym_products(k, k), _sym_products(m, k), _sym_products(m[:1], m[:1])])
    rhs = np.zeros(len(a))
    rhs[-1] = 1.0
    l = np.linalg.lstsq(a, rhs, rcond=None)[0]
    gram = np.array([[l[0], l[1], l[2]], [l[1], l[3], l[4]], [l[2], l[4], l[5]]])
    w, v = np.linalg.eigh(gram)
    if w.min() <= 0:
        raise SystemExit(f"metric upgrade failed: eigenvalues {w}")
    return (np.linalg.inv(v * np.sqrt(w)) @ shape).T


def frontal(points3d: np.ndarray, mean2d: np.ndarray) -> np.ndarray:
    """Rotate so x, y best match the mean 2-D shape (image axes) and the nose points at the camera (−z)."""
    b = np.linalg.lstsq(points3d, mean2d, rcond=None)[0].T
    r1 = b[0] / np.linalg.norm(b[0])
    r2 = b[1] - r1 * (r1 @ b[1])
    r2 /= np.linalg.norm(r2)
    out = points3d @ np.stack([r1, r2, np.cross(r1, r2)]).T
    if out[30, 2] > out[0, 2]:          # the nose tip is nearer the camera than the jaw's ends
        out[:, 2] *= -1
    out = (out + mirror3d(out)) / 2
    out -= out.mean(axis=0)
    return out / np.linalg.norm(out[36, :2] - out[45, :2])


def main():
    shapes = np.stack([s.points for s in list_samples(data_root() / "train")]).astype(np.float64)
    views = np.concatenate([shapes, mirror3d(np.concatenate([shapes, np.zeros_like(shapes[..., :1])], -1))[..., :2]])
    s = views - views.mean(axis=1, keepdims=True)
    face = frontal(factorize(views), (s / interocular(s)[:, None, None]).mean(0))
    face = np.round(face, 3) + 0.0     # + 0.0: no "-0.000"
    print("FACE_3D = np.array([")
    for i in range(0, 68, 4):
        print("    " + " ".join(f"[{x:.3f}, {y:.3f}, {z:.3f}]," for x, y, z in face[i:i + 4]))
    print("])")


if __name__ == "__main__":
    main()
