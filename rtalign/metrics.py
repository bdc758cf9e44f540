"""300-W accuracy metrics, exactly as defined in DESIGN.md.

All functions take ground truth `gt` and predictions `pred` as (N, 68, 2) arrays in the same
pixel frame; the per-face normalizations make the frame itself irrelevant.
"""
from __future__ import annotations

import numpy as np

from .landmarks import interocular, landmark_box

#: CED / AUC threshold, in % of the inter-ocular distance.
FAILURE_THRESHOLD = 10.0


def _check(gt: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    gt, pred = np.asarray(gt, np.float64), np.asarray(pred, np.float64)
    if gt.shape != pred.shape or gt.ndim != 3 or gt.shape[2] != 2:
        raise ValueError(f"expected two (N, K, 2) arrays of one shape, got {gt.shape} and {pred.shape}")
    return gt, pred


def nme_per_face(gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Mean point-to-point error of each face divided by its outer-eye-corner distance, in %."""
    gt, pred = _check(gt, pred)
    return np.linalg.norm(pred - gt, axis=2).mean(axis=1) / interocular(gt) * 100.0


def mse256(gt: np.ndarray, pred: np.ndarray) -> float:
    """Mean squared coordinate error (px²) after scaling each face's standard crop to 256 px.

    The standard crop has side 2 × the larger side of the ground-truth landmark box.
    """
    gt, pred = _check(gt, pred)
    box = landmark_box(gt)
    side = 2.0 * np.maximum(box[:, 2] - box[:, 0], box[:, 3] - box[:, 1])
    k = 256.0 / side
    return float((((pred - gt) * k[:, None, None]) ** 2).mean())


def ced(nme: np.ndarray, threshold: float = FAILURE_THRESHOLD, steps: int = 1001):
    """Cumulative error distribution: (thresholds in %, share of faces with NME ≤ threshold)."""
    x = np.linspace(0.0, threshold, steps)
    y = (np.asarray(nme)[None, :] <= x[:, None]).mean(axis=1)
    return x, y


def auc(nme: np.ndarray, threshold: float = FAILURE_THRESHOLD) -> float:
    """Area under the CED curve on [0, threshold], divided by threshold (1.0 = every face perfect).

    Computed exactly: the CED is a step function, so its integral is the mean over faces of
    (threshold − min(nme, threshold)).
    """
    nme = np.nan_to_num(np.asarray(nme, np.float64), nan=np.inf)     # a NaN face is a failure
    return float(np.mean(threshold - np.minimum(nme, threshold)) / threshold)


def failure_rate(nme: np.ndarray, threshold: float = FAILURE_THRESHOLD) -> float:
    """Share of faces (in %) whose NME exceeds the threshold or is not a number (a model that gave NaN)."""
    return float(np.mean(~(np.asarray(nme) <= threshold)) * 100.0)


def summarize(gt: np.ndarray, pred: np.ndarray) -> dict:
    """NME, MSE@256, FR@10 and AUC@10 of a set of faces, as plain floats."""
    per_face = nme_per_face(gt, pred)
    return {"n": int(len(per_face)), "nme": float(per_face.mean()), "mse256": mse256(gt, pred),
            "fr10": failure_rate(per_face), "auc10": auc(per_face)}
