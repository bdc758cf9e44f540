"""Synthetic test clips made from a real face photo: smooth head motion, known ground truth.

Used by the tests, the benchmark and `rtalign demo`, so nothing depends on a camera or on
video files that would have to ship with the package.
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

ASSET = Path(__file__).resolve().parent / "assets" / "astronaut.jpg"
#: Centre and side (pixels) of the face in ASSET: the demo puts this centre mid-frame.
ASSET_FACE = ((225.0, 126.0), 85.0)


def smooth_similarity_path(n: int, seed: int = 0, amplitude: float = 1.0) -> np.ndarray:
    """(n, 4) per-frame [dx, dy, scale, angle_deg]: slow random sinusoids, like a head drifting and nodding."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)[:, None]
    periods = rng.uniform(60, 150, (1, 4))
    phases = rng.uniform(0, 2 * np.pi, (1, 4))
    amp = np.array([[0.12, 0.06, 0.08, 8.0]]) * amplitude
    wave = np.sin(2 * np.pi * t / periods + phases) - np.sin(phases)   # starts at rest
    path = wave * amp
    path[:, 2] += 1.0
    return path


def similarity(centre, dx, dy, scale, angle_deg) -> np.ndarray:
    """2x3 affine: rotate/scale about `centre`, then shift by (dx, dy) pixels."""
    m = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), float(angle_deg), float(scale))
    m[:, 2] += (dx, dy)
    return m


def render_face_frames(face: np.ndarray, size: tuple[int, int], path: np.ndarray, anchor=None,
                       zoom: float = 1.0, background: int = 90):
    """Yield (frame, affine) with `face` zoomed, its point `anchor` put mid-frame, then moved along `path`.

    `path` rows are [dx, dy, scale, angle] with dx, dy in units of the frame height; the affine
    maps `face` pixels to frame pixels (so known points can be carried along).
    """
    w, h = size
    fh, fw = face.shape[:2]
    ax, ay = anchor if anchor is not None else ((fw - 1) / 2, (fh - 1) / 2)
    base = np.array([[zoom, 0, (w - 1) / 2 - zoom * ax], [0, zoom, (h - 1) / 2 - zoom * ay]])
    centre = (w / 2, h / 2)
    for dx, dy, scale, angle in path:
        move = similarity(centre, dx * h, dy * h, scale, angle)
        m = np.vstack([move, [0, 0, 1]]) @ np.vstack([base, [0, 0, 1]])
        frame = cv2.warpAffine(face, m[:2], (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                               borderValue=(background,) * 3)
        yield frame, m[:2]


def asset_frames(size: tuple[int, int], path: np.ndarray, face_height: float = 0.3):
    """`render_face_frames` of the shipped portrait, its face centred and `face_height` × the frame height."""
    (cx, cy), side = ASSET_FACE
    return render_face_frames(cv2.imread(str(ASSET)), size, path, anchor=(cx, cy), zoom=face_height * size[1] / side)


def turn_face(image: np.ndarray, points: np.ndarray, yaw_deg: float, depth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`image` with its face (landmarks `points`, (68, 2)) turned by `yaw_deg` about the vertical axis
    (> 0: towards the person's left, the image's right), and the turned landmarks.

    A 2.5-D render: the landmarks get the depth `depth` (68,), in inter-ocular distances away from the
    camera, a forehead row above the brows and a fixed ring around the head (the background) close the
    mesh; the face is turned in 3-D, projected orthographically and drawn triangle by triangle from the
    farthest to the nearest, so the nose hides the far cheek instead of folding the image over it, and
    triangles turned away from the camera are not drawn. A head-pose check with a known turn; needs
    SciPy (with scikit-image, the test extra).
    """
    from scipy.spatial import Delaunay
    from .landmarks import interocular
    h, w = image.shape[:2]
    iod = float(interocular(points))
    centre = points.mean(axis=0)
    eyes = points[45] - points[36]
    up = np.array([eyes[1], -eyes[0]]) / max(float(np.hypot(*eyes)), 1e-6)
    brows = slice(17, 27)
    src = np.vstack([points, points[brows] + 0.6 * iod * up])
    z = np.r_[depth, depth[brows] + 0.1] * iod
    p3 = np.c_[src - centre, z - z[:68].mean()]
    a = np.radians(yaw_deg)      # the person's left is the image's right: the nose (depth < 0) moves to +x
    turned = p3 @ np.array([[np.cos(a), 0, -np.sin(a)], [0, 1, 0], [np.sin(a), 0, np.cos(a)]]).T
    radius = 1.6 * float(np.linalg.norm(points - centre, axis=1).max())
    ring = centre + radius * np.c_[np.cos(np.linspace(0, 2 * np.pi, 24, endpoint=False)),
                                   np.sin(np.linspace(0, 2 * np.pi, 24, endpoint=False))]
    border = np.array([[0, 0], [w - 1, 0], [0, h - 1], [w - 1, h - 1]], np.float64)
    fixed = np.vstack([ring, border])
    src_all, dst_all = np.vstack([src, fixed]), np.vstack([turned[:, :2] + centre, fixed])
    far = np.r_[turned[:, 2], np.full(len(fixed), np.inf)]          # the background lies behind the head
    tris = Delaunay(src_all).simplices
    tris = tris[np.sign(_signed_area(dst_all[tris])) == np.sign(_signed_area(src_all[tris]))]   # facing the camera
    out = image.copy()
    for tri in tris[np.argsort(-far[tris].mean(axis=1), kind="stable")]:
        _draw_triangle(image, out, src_all[tri], dst_all[tri])
    return out, (turned[:68, :2] + centre).astype(np.float32)


def _signed_area(tris: np.ndarray) -> np.ndarray:
    """Twice the signed area of (n, 3, 2) triangles: its sign flips when a triangle turns its back."""
    u, v = tris[:, 1] - tris[:, 0], tris[:, 2] - tris[:, 0]
    return u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0]


def _draw_triangle(image: np.ndarray, out: np.ndarray, src: np.ndarray, dst: np.ndarray) -> None:
    """Paint the triangle `dst` of `out` with the triangle `src` of `image` (an affine map between them)."""
    h, w = out.shape[:2]
    x0, y0 = np.maximum(np.floor(dst.min(axis=0)).astype(int), 0)
    x1, y1 = np.minimum(np.ceil(dst.max(axis=0)).astype(int) + 1, [w, h])
    if x1 <= x0 or y1 <= y0:
        return
    m = cv2.getAffineTransform((dst - [x0, y0]).astype(np.float32), src.astype(np.float32))
    patch = cv2.warpAffine(image, m, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                           borderMode=cv2.BORDER_REPLICATE)
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillConvexPoly(mask, np.round((dst - [x0, y0]) * 16).astype(np.int32), 1, cv2.LINE_8, 4)
    region = out[y0:y1, x0:x1]
    region[mask > 0] = patch[mask > 0]


def write_clip(path, frames, fps: float = 30.0, audio: bool = True, crf: int = 18) -> int:
    """Encode BGR frames (all one size) as H.264 (+ a 440 Hz AAC tone). Returns the frame count."""
    fps_q = Fraction(fps).limit_denominator(1001)
    out = av.open(str(path), "w")
    video = None
    n = 0
    for frame in frames:
        if video is None:
            video = out.add_stream("libx264", rate=fps_q)
            video.height, video.width = frame.shape[:2]
            video.pix_fmt = "yuv420p"
            video.options = {"preset": "veryfast", "crf": str(crf)}
            sound = out.add_stream("aac", rate=44100) if audio else None
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="bgr24")
        vf.pts = n
        out.mux(video.encode(vf))
        n += 1
    out.mux(video.encode())
    if audio:
        t = np.arange(int(44100 * n / float(fps_q))) / 44100
        samples = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
        for k in range(0, samples.shape[1], 1024):
            af = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[:, k:k + 1024]), format="fltp", layout="mono")
            af.sample_rate, af.pts = 44100, k
            out.mux(sound.encode(af))
        out.mux(sound.encode())
    out.close()
    return n


def demo_clip(path, n_frames: int = 90, size=(1280, 720), fps: float = 30.0, seed: int = 0, audio: bool = True) -> int:
    """The shipped portrait drifting smoothly, its face about a third of the frame height, written to `path`."""
    frames = (f for f, _ in asset_frames(size, smooth_similarity_path(n_frames, seed)))
    return write_clip(path, frames, fps, audio)
