"""The 300-W evaluation protocol: ground-truth landmark box in, metrics and speed out; and the
end-to-end variant where the shipped detector finds each face first."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .data import Sample, list_samples, read_image
from .landmarks import landmark_box
from .metrics import auc, failure_rate, nme_per_face, summarize
from .models import LandmarkModel


def predict_samples(model: LandmarkModel, samples: list[Sample], progress: bool = False):
    """Predictions for annotated faces, each from its ground-truth landmark box.

    Returns (ground truth, predictions), both (N, 68, 2).
    """
    preds = [model.predict(read_image(s.image), landmark_box(s.points)[None])[0]
             for s in tqdm(samples, desc=f"eval {getattr(model, 'name', '')}", disable=not progress, leave=False)]
    return np.stack([s.points for s in samples]), np.stack(preds)


def detect_samples(model: LandmarkModel, detector, samples: list[Sample], progress: bool = False):
    """Predictions through the runtime's own acquisition: the detector runs on each image, the detection
    nearest the annotated face (centre within half its landmark box side) is turned upright and refined as
    the tracker does. Returns (ground truth (N, 68, 2), predictions (N, 68, 2), found (N,) bool); a missed
    face's prediction is NaN."""
    from .align import upright_from_detections
    from .detectors import detect_faces
    preds, found = [], []
    for s in tqdm(samples, desc="eval detector", disable=not progress, leave=False):
        image = read_image(s.image)
        dets = detect_faces(detector, image)
        box = landmark_box(s.points)
        centre, side = (box[:2] + box[2:]) / 2, max(box[2] - box[0], box[3] - box[1])
        dist = np.linalg.norm((dets.boxes[:, :2] + dets.boxes[:, 2:]) / 2 - centre, axis=1)
        if len(dets) == 0 or dist.min() > side / 2:
            preds.append(np.full((68, 2), np.nan, np.float32))
            found.append(False)
            continue
        preds.append(upright_from_detections(model, image, dets[[int(np.argmin(dist))]])[0][0])
        found.append(True)
    return np.stack([s.points for s in samples]), np.stack(preds), np.array(found)


def summarize_detected(gt: np.ndarray, pred: np.ndarray, found: np.ndarray) -> dict:
    """Metrics over the detected faces, plus the miss rate (%); FR@10 and AUC@10 count a miss as a failure.
    With no face detected, NME and MSE@256 are None (there is nothing to average)."""
    result = summarize(gt[found], pred[found]) if found.any() else {"nme": None, "mse256": None}
    nme = np.where(found, 0.0, np.inf)
    nme[found] = nme_per_face(gt[found], pred[found])
    result.update(n=int(len(gt)), detected=int(found.sum()), miss_rate=float(100 * (1 - found.mean())),
                  fr10=failure_rate(nme), auc10=auc(np.minimum(nme, 1e9)))       # NaN (a broken model): failed
    return result


def time_per_face(model: LandmarkModel, image: np.ndarray, box: np.ndarray, runs: int = 200, warmup: int = 20) -> float:
    """Median ms of one `predict` call for one face (crop + inference + mapping back)."""
    box = np.asarray(box, np.float64)[None]
    for _ in range(warmup):
        model.predict(image, box)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        model.predict(image, box)
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1000.0)


def evaluate(model: LandmarkModel, folder: str | Path, runs: int = 200, progress: bool = False,
             detector=None) -> dict:
    """Metrics of `model` on a folder plus its ms per face (batch 1, median of `runs`).

    detector: None for the standard protocol (ground-truth boxes); a detector object for the end-to-end
    protocol (see `detect_samples` and `summarize_detected`)."""
    samples = list_samples(folder)
    if detector is None:
        gt, pred = predict_samples(model, samples, progress)
        result = summarize(gt, pred)
    else:
        result = summarize_detected(*detect_samples(model, detector, samples, progress))
    first = samples[0]
    result["ms_per_face"] = time_per_face(model, read_image(first.image), landmark_box(first.points), runs)
    return result
