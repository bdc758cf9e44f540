"""Temporal stability (contract, see the bench issue): jitter of tracked landmarks on clips whose
true points are known in every frame.

Each clip warps a real test face with a smooth random similarity transform (or the identity for
*static* clips), adds Gaussian noise (σ = 4 grey levels) and JPEG compression (quality 80) per
frame, and runs through the real tracker (detector acquisition, landmark-driven boxes).
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


@dataclass
class Clip:
    frames: list          # BGR images
    truth: np.ndarray     # (T, 68, 2)


def face_frames(sample: Sample, n_frames: int, moving: bool, seed: int, size=FRAME_SIZE, face_height: float = 0.4):
    """(frame, affine) pairs of a test face centred in the frame, its box `face_height` × the frame height."""
    box = landmark_box(sample.points)
    zoom = face_height * size[1] / max(box[2] - box[0], box[3] - box[1])
    path = smooth_similarity_path(n_frames, seed) if moving else np.tile([0.0, 0.0, 1.0, 0.0], (n_frames, 1))
    return render_face_frames(read_image(sample.image), size, path, anchor=(box[:2] + box[2:]) / 2, zoom=zoom)


def make_clip(sample: Sample, n_frames: int, moving: bool, seed: int) -> Clip:
    """One stability clip of a test face in a 640x480 frame, noisy and JPEG-compressed."""
    rng = np.random.default_rng(seed)
    frames, truth = [], []
    for image, m in face_frames(sample, n_frames, moving, seed):
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


def stability(tracker_factory, samples: list[Sample], n_frames: int) -> dict:
    """static_jitter, motion_jitter and motion_nme (all %) over the given faces, plus lost-clip count."""
    static, motion, nme, lost = [], [], [], 0
    for k, s in enumerate(samples):
        for moving in (False, True):
            clip = make_clip(s, n_frames, moving, seed=k)
            pred = track_clip(tracker_factory, clip)
            if pred is None:
                lost += 1
                continue
            raw, excess = jitter(pred, clip.truth)
            if moving:
                motion.append(excess)
                nme.append(float(nme_per_face(clip.truth, pred).mean()))
            else:
                static.append(raw)
    mean = lambda v: float(np.mean(v)) if v else float("nan")
    return {"static_jitter": mean(static), "motion_jitter": mean(motion), "motion_nme": mean(nme), "lost_clips": lost}
