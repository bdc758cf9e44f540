"""Temporal stability (contract, see the bench issue): jitter of tracked landmarks on clips whose
true points are known in every frame.

Each clip warps a real test face with a smooth random similarity transform (or the identity for
*static* clips), adds Gaussian noise (σ = 4 grey levels) and JPEG compression (quality 80) per
frame, and runs through the real tracker (detector acquisition, landmark-driven boxes).
*Fast* clips take the same path at FAST_AMPLITUDE times the amplitude (peaks of 2–7 inter-ocular
distances per second, a quick head turn): there the offset of the mouth points, where the lip colour
is drawn, is measured.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..crop import apply_affine
from ..data import Sample, read_image
from ..landmarks import interocular, landmark_box
from ..metrics import nme_per_face
from ..synth import render_face_frames, smooth_similarity_path
from ..types import Frame

NOISE_SIGMA = 4.0
JPEG_QUALITY = 80
FRAME_SIZE = (640, 480)
FPS = 30.0
FAST_AMPLITUDE = 3.0
MOUTH = slice(48, 68)


@dataclass
class Clip:
    frames: list          # BGR images
    truth: np.ndarray     # (T, 68, 2)


def face_frames(sample: Sample, n_frames: int, moving: bool, seed: int, size=FRAME_SIZE, face_height: float = 0.4,
                amplitude: float = 1.0):
    """(frame, affine) pairs of a test face centred in the frame, its box `face_height` × the frame height."""
    box = landmark_box(sample.points)
    zoom = face_height * size[1] / max(box[2] - box[0], box[3] - box[1])
    path = (smooth_similarity_path(n_frames, seed, amplitude) if moving
            else np.tile([0.0, 0.0, 1.0, 0.0], (n_frames, 1)))
    return render_face_frames(read_image(sample.image), size, path, anchor=(box[:2] + box[2:]) / 2, zoom=zoom)


def make_clip(sample: Sample, n_frames: int, moving: bool, seed: int, amplitude: float = 1.0) -> Clip:
    """One stability clip of a test face in a 640x480 frame, noisy and JPEG-compressed."""
    rng = np.random.default_rng(seed)
    frames, truth = [], []
    for image, m in face_frames(sample, n_frames, moving, seed, amplitude=amplitude):
        noise = rng.standard_normal(image.shape, dtype=np.float32) * NOISE_SIGMA
        noisy = np.clip(image + noise, 0, 255).astype(np.uint8)
        ok, jpeg = cv2.imencode(".jpg", noisy, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        frames.append(cv2.imdecode(jpeg, cv2.IMREAD_COLOR))
        truth.append(apply_affine(m, sample.points))
    return Clip(frames, np.stack(truth))


def track_clip(tracker_factory, clip: Clip) -> np.ndarray | None:
    """(T, 68, 2) tracked points of the clip's face, or None when it was lost on some frame."""
    tracker = tracker_factory()
    out = []
    for i, image in enumerate(clip.frames):
        faces = tracker.update(Frame(image, i / FPS, i))
        if len(faces) == 0:
            return None
        # the face nearest the true one (a second spurious track must not be scored)
        centre = clip.truth[i].mean(0)
        out.append(faces.xy[np.argmin(np.linalg.norm(faces.xy.mean(1) - centre, axis=1))])
    return np.stack(out)


def jitter(pred: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(raw frame-to-frame motion, motion beyond the true motion), both in % of the inter-ocular distance."""
    io = interocular(truth[1:])[:, None]
    dp, dg = np.diff(pred, axis=0), np.diff(truth, axis=0)
    raw = (np.linalg.norm(dp, axis=2) / io).mean() * 100
    excess = (np.linalg.norm(dp - dg, axis=2) / io).mean() * 100
    return float(raw), float(excess)


def mouth_offset(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(T,) mean distance of the mouth points from the truth per frame, in % of the inter-ocular distance:
    how far the lip colour is drawn from the lips."""
    return np.linalg.norm(pred[:, MOUTH] - truth[:, MOUTH], axis=2).mean(1) / interocular(truth) * 100


def stability(tracker_factory, samples: list[Sample], n_frames: int) -> dict:
    """static_jitter, motion_jitter and motion_nme (all %) over the given faces, the mouth points' offset
    on fast clips (fast_mouth_p95, fast_mouth_max: % of the inter-ocular distance over all their
    frames), plus lost-clip count."""
    static, motion, nme, fast, lost = [], [], [], [], 0
    for k, s in enumerate(samples):
        for moving, amplitude in ((False, 1.0), (True, 1.0), (True, FAST_AMPLITUDE)):
            clip = make_clip(s, n_frames, moving, seed=k, amplitude=amplitude)
            pred = track_clip(tracker_factory, clip)
            if pred is None:
                lost += 1
            elif amplitude != 1.0:
                fast.append(mouth_offset(pred, clip.truth))
            elif moving:
                motion.append(jitter(pred, clip.truth)[1])
                nme.append(float(nme_per_face(clip.truth, pred).mean()))
            else:
                static.append(jitter(pred, clip.truth)[0])
    mean = lambda v: float(np.mean(v)) if v else float("nan")
    fast = np.concatenate(fast) if fast else np.full(1, np.nan)
    return {"static_jitter": mean(static), "motion_jitter": mean(motion), "motion_nme": mean(nme),
            "fast_mouth_p95": float(np.percentile(fast, 95)), "fast_mouth_max": float(fast.max()), "lost_clips": lost}
