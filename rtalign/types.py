"""The values that flow between pipeline stages: a frame with its time, and the faces found in it."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .landmarks import N_POINTS


@dataclass(eq=False)     # identity: a generated __eq__ would compare arrays and raise
class Frame:
    """One BGR image (H, W, 3) uint8 with its presentation time in seconds and its index in the source."""
    image: np.ndarray
    timestamp: float
    index: int
    captured_at: float = 0.0  # time.perf_counter() when the source produced it (latency)


@dataclass(eq=False)     # identity: a generated __eq__ would compare arrays and raise
class FaceLandmarks:
    """Parallel arrays for the faces of one frame.

    Attributes:
        xy: (n, 68, 2) float32 landmarks, frame pixel centres.
        bbox: (n, 4) float64 [x0, y0, x1, y1] boxes the model was given.
        score: (n,) float32 face-presence / plausibility score in [0, 1].
        track_id: (n,) int64 stable ids, or None outside a tracker.
        pose: (n, 3) float32 head pose [yaw, pitch, roll] in degrees (see rtalign.pose), or None
            where it was not estimated.
    """
    xy: np.ndarray
    bbox: np.ndarray
    score: np.ndarray = None
    track_id: np.ndarray | None = field(default=None)
    pose: np.ndarray | None = field(default=None)

    def __post_init__(self):
        self.xy = np.asarray(self.xy, np.float32)
        if self.xy.ndim != 3 or self.xy.shape[1:] != (N_POINTS, 2):
            raise ValueError(f"FaceLandmarks.xy must have shape (n, {N_POINTS}, 2), got {self.xy.shape}")
        n = len(self.xy)
        self.bbox = np.asarray(self.bbox, np.float64)
        if self.bbox.shape != (n, 4):
            raise ValueError(f"FaceLandmarks.bbox must have shape ({n}, 4) for {n} faces, got {self.bbox.shape}")
        self.score = np.ones(n, np.float32) if self.score is None else np.asarray(self.score, np.float32)
        if self.score.shape != (n,):
            raise ValueError(f"FaceLandmarks.score must have shape ({n},) for {n} faces, got {self.score.shape}")
        if self.track_id is not None:
            self.track_id = np.asarray(self.track_id, np.int64)
            if self.track_id.shape != (n,):
                raise ValueError(f"FaceLandmarks.track_id must have shape ({n},) for {n} faces, got {self.track_id.shape}")
        if self.pose is not None:
            self.pose = np.asarray(self.pose, np.float32)
            if self.pose.shape != (n, 3):
                raise ValueError(f"FaceLandmarks.pose must have shape ({n}, 3) for {n} faces, got {self.pose.shape}")

    def __len__(self) -> int:
        return len(self.xy)

    def __getitem__(self, index) -> "FaceLandmarks":
        """Some of the faces as FaceLandmarks: `faces[0]` (one face), `faces[:2]`, `faces[mask]`. An index past
        the last face raises IndexError, which also ends `for face in faces` (an empty answer looped forever)."""
        index = [index] if isinstance(index, (int, np.integer)) else index
        pick = lambda a: None if a is None else a[index]
        return FaceLandmarks(self.xy[index], self.bbox[index], self.score[index], pick(self.track_id), pick(self.pose))

    def __repr__(self) -> str:
        """One line a face, not 68 × 2 numbers: the box, score, id and pose (read .xy for the points)."""
        faces = []
        for i in range(len(self)):
            parts = [f"box=[{', '.join(f'{v:.0f}' for v in self.bbox[i])}]", f"score={self.score[i]:.2f}"]
            if self.track_id is not None:
                parts.insert(0, f"id={self.track_id[i]}")
            if self.pose is not None:
                parts.append(f"yaw/pitch/roll=[{', '.join(f'{v:.1f}' for v in self.pose[i])}]")
            faces.append(f"\n  face({', '.join(parts)})")
        return f"FaceLandmarks({len(self)} face{'' if len(self) == 1 else 's'}, xy (n, 68, 2){''.join(faces)})"

    @classmethod
    def empty(cls, *, tracked: bool = False, posed: bool = False) -> "FaceLandmarks":
        """No faces; `tracked=True` (a tracker's output) gives an empty track_id array instead of None,
        `posed=True` (where pose is estimated) an empty (0, 3) pose."""
        return cls(np.empty((0, N_POINTS, 2), np.float32), np.empty((0, 4)),
                   track_id=np.empty(0, np.int64) if tracked else None,
                   pose=np.empty((0, 3), np.float32) if posed else None)
