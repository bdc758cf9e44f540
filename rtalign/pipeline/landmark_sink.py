"""Landmarks to a file as the pipeline runs: a stage that wraps the tracker, so every frame's faces
(with head pose) reach the writer in frame order, on the thread that computed them."""
from __future__ import annotations

from ..pose import PoseTracker
from ..types import FaceLandmarks, Frame


class LandmarkRecorder:
    """`update(frame) -> FaceLandmarks`: the wrapped tracker's faces, with pose, also written as rows.

    Args:
        tracker: anything with `update(frame) -> FaceLandmarks`.
        writer: a landmarks writer (rtalign.export), or None to add pose only.
        label: the `file` column's value.
        start: seconds taken off each frame's timestamp: a file's `VideoFileSource.start`, so that `time_s`
            counts from the file's start as players and the output video do (an MPEG-TS clip's first frame
            is at 1.4 s, a camcorder's hours in).
    """

    def __init__(self, tracker, writer=None, label: str = "", start: float = 0.0):
        self.tracker = tracker if isinstance(tracker, PoseTracker) else PoseTracker(tracker)
        self.writer, self.label, self.start = writer, label, start

    @property
    def detector_runs(self) -> int:
        return self.tracker.detector_runs

    def update(self, frame: Frame) -> FaceLandmarks:
        faces = self.tracker.update(frame)
        if self.writer is not None:
            self.writer.write(self.label, frame.index, frame.timestamp - self.start, faces)
        return faces
