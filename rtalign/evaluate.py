"""The 300-W evaluation protocol: ground-truth landmark box in, metrics and speed out."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .data import Sample, list_samples, read_image
from .landmarks import landmark_box
from .metrics import summarize
from .models import LandmarkModel


def predict_samples(model: LandmarkModel, samples: list[Sample], progress: bool = False):
    """Predictions for annotated faces, each from its ground-truth landmark box.

    Returns (ground truth, predictions), both (N, 68, 2).
    """
    preds = [model.predict(read_image(s.image), landmark_box(s.points)[None])[0]
             for s in tqdm(samples, desc=f"eval {getattr(model, 'name', '')}", disable=not progress, leave=False)]
    return np.stack([s.points for s in samples]), np.stack(preds)


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


def evaluate(model: LandmarkModel, folder: str | Path, runs: int = 200, progress: bool = False) -> dict:
    """Metrics of `model` on a folder plus its ms per face (batch 1, median of `runs`)."""
    samples = list_samples(folder)
    gt, pred = predict_samples(model, samples, progress)
    result = summarize(gt, pred)
    first = samples[0]
    result["ms_per_face"] = time_per_face(model, read_image(first.image), landmark_box(first.points), runs)
    return result
