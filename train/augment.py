"""Training crops: the 300-W set decoded once into memory, and the augmentation a product needs.

The runtime's face box comes from a detector or from the previous frame, never the exact
ground truth, so every crop is taken from a jittered box; mirroring uses the landmark permutation.
Most crops are built as the tracker builds them: the face turned upright by its eye line, boxed by
its landmarks in that upright frame (`rtalign.align.predict_upright`), with a few degrees of error
on the roll; the rest keep the image's axes, as the ground-truth-box protocol and roll-less
detectors crop.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from rtalign.crop import apply_affine, compose_affine, crop_affine
from rtalign.data import list_samples, read_image
from rtalign.landmarks import eye_roll, landmark_box, mirror_points

#: The stored crops are 384 px with the face box at half their side; halving them keeps faces
#: near the networks' input scale, so cv2.warpAffine never aliases when shrinking.
STORE_SIZE = 192


@dataclass
class FaceSet:
    """Grey images (N, S, S) uint8 and their (N, 68, 2) points, 0-based pixel centres."""
    images: np.ndarray
    points: np.ndarray
    names: list


def load_faces(folder) -> FaceSet:
    samples = list_samples(folder)
    images, points = [], []
    for s in samples:
        img = cv2.cvtColor(read_image(s.image), cv2.COLOR_BGR2GRAY)
        k = STORE_SIZE / img.shape[1]
        images.append(cv2.resize(img, (STORE_SIZE, STORE_SIZE), interpolation=cv2.INTER_AREA))
        points.append((s.points + 0.5) * k - 0.5)
    return FaceSet(np.stack(images), np.stack(points).astype(np.float32), [s.image.stem for s in samples])


@dataclass(frozen=True)
class AugmentConfig:
    rotation_deg: float = 30.0          # axis-aligned crops: any roll within ±this
    p_upright: float = 0.8              # share of crops turned upright by the eye line, as the tracker does
    upright_error_deg: float = 8.0      # roll error of those: the tracker's and the detector's eye line
    scale: tuple = (0.88, 1.15)          # crop side multiplier
    shift: float = 0.08                  # of the crop side, each axis
    p_flip: float = 0.5
    p_blur: float = 0.2
    p_noise: float = 0.3
    p_occlude: float = 0.3
    p_photometric: float = 0.7


def normalize(gray: np.ndarray) -> np.ndarray:
    """uint8 grey → float32 in [-1, 1], the networks' input convention (recorded in the ONNX metadata)."""
    return gray.astype(np.float32) / 127.5 - 1.0


def eval_crop(image: np.ndarray, points: np.ndarray, crop_scale: float, size: int):
    """The evaluation-protocol crop (ground-truth landmark box, no jitter) and its affine."""
    m = crop_affine(landmark_box(points), crop_scale, size)
    return cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT), m


def augmented_crop(image: np.ndarray, points: np.ndarray, crop_scale: float, size: int,
                   cfg: AugmentConfig, rng: np.random.Generator):
    """One randomly transformed crop (uint8, size × size) and its points in crop pixels."""
    if rng.random() < cfg.p_flip:
        image = image[:, ::-1]
        points = mirror_points(points, image.shape[1])
    scale, shift = crop_scale * rng.uniform(*cfg.scale), tuple(rng.uniform(-cfg.shift, cfg.shift, 2))
    if rng.random() < cfg.p_upright:
        roll = eye_roll(points) + rng.uniform(-cfg.upright_error_deg, cfg.upright_error_deg)
        upright = crop_affine(landmark_box(points), 1.0, 1, roll)       # any similarity undoing the roll
        m = compose_affine(crop_affine(landmark_box(apply_affine(upright, points)), scale, size, shift=shift),
                           upright)
    else:
        m = crop_affine(landmark_box(points), scale, size,
                        angle_deg=rng.uniform(-cfg.rotation_deg, cfg.rotation_deg), shift=shift)
    crop = cv2.warpAffine(np.ascontiguousarray(image), m, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=int(rng.integers(0, 256)))
    pts = apply_affine(m, points)
    img = crop.astype(np.float32)
    if rng.random() < cfg.p_photometric:
        img = img * rng.uniform(0.6, 1.4) + rng.uniform(-40, 40)
        img = 255.0 * (np.clip(img, 0, 255) / 255.0) ** rng.uniform(0.7, 1.5)
    if rng.random() < cfg.p_blur:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, 2.0))
    if rng.random() < cfg.p_occlude:
        w, h = (rng.uniform(0.15, 0.45, 2) * size).astype(int)
        x, y = rng.integers(0, size - w), rng.integers(0, size - h)
        img[y:y + h, x:x + w] = rng.uniform(0, 255) if rng.random() < 0.5 else rng.uniform(0, 255, (h, w))
    if rng.random() < cfg.p_noise:
        img = img + rng.normal(0, rng.uniform(2, 10), img.shape)
    return np.clip(img, 0, 255).astype(np.uint8), pts.astype(np.float32)
