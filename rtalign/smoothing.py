"""One Euro filter (Casiez, Roussel & Vogel, CHI 2012), vectorized over all points of a face.

A low-pass filter whose cutoff rises with speed: strong smoothing when the face is still (no
jitter), little lag when it moves. Driven by timestamps, so a dropped frame does not change its
behaviour. Speeds are measured in face sizes per second, so one setting suits near and far faces.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from .landmarks import interocular
from .types import FaceLandmarks

SMOOTHERS = ("oneeuro", "none")
#: Default bound on a filtered point's lag behind the raw one, in inter-ocular distances.
MAX_LAG = 0.03
#: Cutoffs (Hz) a setting may ask for: far below any frame rate up to far above it ("no smoothing"). Outside,
#: the filter's arithmetic leaves floating point (1e308 Hz overflowed to inf and NaN points).
CUTOFF_RANGE = (1e-4, 1e4)
#: The largest speed coefficient: at 1e6 a face moving 0.001 of its size a second already gets 1 kHz.
MAX_BETA = 1e6


@dataclass(frozen=True)
class OneEuroOptions:
    """min_cutoff in Hz (lower: less jitter, more lag at rest); beta per (inter-ocular distance / s)
    of speed (higher: less lag in motion); d_cutoff in Hz for the speed estimate itself; max_lag: the
    farthest a filtered point may trail its raw one, in inter-ocular distances (None: no bound).

    max_lag decouples lag from smoothing: the speed estimate is itself low-passed, so when a still face
    starts a fast turn the cutoff rises a few frames late, and with a low beta (chosen for calm points)
    the points trail for many frames, which shows as lip colour smeared onto the cheek. A bound far
    above the jitter (≈ 0.005) leaves a still face alone. MAX_LAG: `python -m train.tune_smoothing`
    (its max_lag grid, fast clips of training faces).
    """
    min_cutoff: float = 0.5
    beta: float = 30.0
    d_cutoff: float = 1.0
    max_lag: float | None = MAX_LAG

    def __post_init__(self):
        lo, hi = CUTOFF_RANGE
        if not (lo <= self.min_cutoff <= hi and lo <= self.d_cutoff <= hi and 0 <= self.beta <= MAX_BETA
                and (self.max_lag is None or 0 < self.max_lag < float("inf"))):
            raise ValueError(f"One Euro needs min_cutoff and d_cutoff in [{lo:g}, {hi:g}] Hz, beta in [0, {MAX_BETA:g}] "
                             f"and max_lag > 0 (finite); got {self}")


def _alpha(cutoff, dt: float):
    tau = 1.0 / (2.0 * np.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """Filters an array of any fixed shape (e.g. (68, 2) points) sample by sample.

    `update(x, t, scale)` returns the filtered array; `scale` (e.g. the inter-ocular distance in
    pixels) normalizes the speed that drives the adaptive cutoff.

    Time going back (recordings joined end to end) starts the filter afresh from `x`; a repeated time
    carries no speed, so the output only moves to within max_lag of `x`; a sample with a non-finite value
    passes through as it is and leaves the filter as it was.
    """

    def __init__(self, options: OneEuroOptions = OneEuroOptions()):
        self.options = options
        self._x = self._dx = None
        self._t = 0.0

    def update(self, x: np.ndarray, t: float, scale: float = 1.0) -> np.ndarray:
        """Raises: ValueError: `t` is not a finite number."""
        if not math.isfinite(t):
            raise ValueError(f"a One Euro filter needs finite times in seconds, got {t!r}")
        t = float(t)     # a Fraction (PyAV's pts × time_base) and a float of one time compared unequal, then divided by 0
        x = np.asarray(x, np.float64)
        if not np.isfinite(x).all():
            return x.copy()
        if self._x is None or t < self._t:
            self._x, self._dx, self._t = x.copy(), np.zeros_like(x), t
            return x.copy()
        o = self.options
        if t > self._t:
            dt = t - self._t
            dx = (x - self._x) / dt
            self._dx += _alpha(o.d_cutoff, dt) * (dx - self._dx)
            cutoff = o.min_cutoff + o.beta * np.abs(self._dx) / max(scale, 1e-6)
            self._x = self._x + _alpha(cutoff, dt) * (x - self._x)
            self._t = t
        if o.max_lag is not None:        # pull each point (last axis: its coordinates) back within the bound
            gap = self._x - x
            norm = np.linalg.norm(gap, axis=-1, keepdims=True) if gap.ndim else np.abs(gap)
            self._x = x + gap * np.minimum(1.0, o.max_lag * scale / np.maximum(norm, 1e-12))
        return self._x.copy()


class FaceSmoother:
    """`update(faces, t) -> faces`: each tracked face's points through its own OneEuroFilter.

    Filters are keyed by track id: a new id starts a fresh filter, an id that is gone drops its
    filter. Speeds are measured in inter-ocular distances per second, so one setting suits near
    and far faces. The tracker smooths its output with this; train/tune_smoothing.py replays
    recorded tracks through it.
    """

    def __init__(self, options: OneEuroOptions = OneEuroOptions()):
        self.options = options
        self._filters: dict[int, OneEuroFilter] = {}

    def update(self, faces: FaceLandmarks, t: float) -> FaceLandmarks:
        """Smoothed copy of `faces` (a tracker's output, with track ids) at time `t` in seconds.

        Raises:
            ValueError: `faces` has no track ids, or two faces share one (each id has its own filter).
        """
        if faces.track_id is None:
            raise ValueError("FaceSmoother needs track ids: smooth a tracker's output, not single images")
        ids = faces.track_id.tolist()
        if len(set(ids)) < len(ids):
            raise ValueError(f"FaceSmoother needs one face per track id, got ids {ids}")
        self._filters = {i: self._filters.get(i) or OneEuroFilter(self.options) for i in ids}
        if not ids:
            return faces
        xy = np.stack([self._filters[i].update(p, t, float(interocular(p))) for i, p in zip(ids, faces.xy)])
        return replace(faces, xy=xy)
