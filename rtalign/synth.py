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

    Each landmark gets the depth `depth` (68,), in inter-ocular distances, away from the camera; the
    points are turned in 3-D and projected orthographically, and the image follows by a piecewise-affine
    warp (a ring around the face and the image's border stay put). A head-pose check with a known turn;
    needs scikit-image (the test extra).
    """
    from skimage.transform import PiecewiseAffineTransform, warp
    from .landmarks import interocular
    h, w = image.shape[:2]
    centre = points.mean(axis=0)
    p3 = np.c_[points - centre, (depth - depth.mean()) * float(interocular(points))]
    a = np.radians(yaw_deg)      # the person's left is the image's right: the nose (depth < 0) moves to +x
    turned = p3 @ np.array([[np.cos(a), 0, -np.sin(a)], [0, 1, 0], [np.sin(a), 0, np.cos(a)]]).T
    new = turned[:, :2] + centre
    radius = 1.6 * float(np.linalg.norm(points - centre, axis=1).max())
    ring = centre + radius * np.c_[np.cos(np.linspace(0, 2 * np.pi, 24, endpoint=False)),
                                   np.sin(np.linspace(0, 2 * np.pi, 24, endpoint=False))]
    border = np.array([[0, 0], [w - 1, 0], [0, h - 1], [w - 1, h - 1], [(w - 1) / 2, 0], [(w - 1) / 2, h - 1],
                       [0, (h - 1) / 2], [w - 1, (h - 1) / 2]], np.float64)
    tform = PiecewiseAffineTransform.from_estimate(np.vstack([new, ring, border]), np.vstack([points, ring, border]))
    out = warp(image, tform, output_shape=(h, w), order=1, mode="edge", preserve_range=True)
    return out.astype(image.dtype), new.astype(np.float32)


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
