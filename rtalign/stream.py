"""Faces in a stream of frames, from Python: a video file, a camera, or numpy arrays.

    import rtalign
    with rtalign.track("in.mp4", model="cnn") as stream:
        for frame, faces in stream:            # frame: Frame (BGR image, timestamp, index)
            print(frame.index, faces.xy.shape, faces.track_id)

One frame at a time in the caller's thread (MediaPipe's VIDEO mode): every frame of a file is
processed, in order. For real-time display with dropped frames, threads and sinks, use
`rtalign.pipeline.run_live`.
"""
from __future__ import annotations

import logging
import math
import numbers
import os
import time
from collections.abc import Iterable, Iterator

import numpy as np

from .align import as_bgr
from .errors import InputError, shown
from .models import LandmarkModel
from .pose import PoseTracker
from .runtime import RuntimeOptions, resolve_runtime
from .smoothing import OneEuroOptions
from .tracking import FaceTracker, TrackerOptions
from .types import FaceLandmarks, Frame

log = logging.getLogger(__name__)


def _array_frames(images: Iterable[np.ndarray], fps: float) -> Iterator[Frame]:
    """Frames of arrays, each checked and made BGR as FaceAligner.align does (grey and BGRA converted; nested
    lists taken as arrays)."""
    for i, image in enumerate(images):
        try:
            image = as_bgr(np.asarray(image) if isinstance(image, (list, tuple)) else image)
        except InputError as e:
            raise InputError(f"frame {i}: {e}") from None
        yield Frame(image, i / fps, i, time.perf_counter())


class FaceStream:
    """(frame, faces) for every frame of a source; a context manager that closes the source it opened (a
    file, a stream URL, a camera). Arrays or an iterable you give stay yours: a generator of yours is not
    closed (read on from it after the stream, or close it yourself).

    Iterating to the end, or leaving the loop, also closes it; `close()` is safe to call twice; a closed
    stream refuses to be iterated again. Made by `track()`.

    Attributes:
        tracker: the FaceTracker (its `options`, `detector_runs`); head pose is added to its output here.
        fps: frames per second of the source (the `fps` given for arrays).
        truncated: after the end, True when a video file stopped decoding before its last frame
            (a damaged or cut file; logged as a warning too).
    """

    def __init__(self, frames: Iterable[Frame], tracker: FaceTracker, fps: float, source=None):
        self._frames, self.tracker, self.fps, self._source = frames, tracker, fps, source
        self._posed = PoseTracker(tracker)
        self.truncated, self._closed = False, False

    def __iter__(self) -> Iterator[tuple[Frame, FaceLandmarks]]:
        if self._closed:
            raise InputError("this stream is closed (its frames ran out, or the loop was left): "
                             "call rtalign.track again to go through the source again")
        try:
            for frame in self._frames:
                yield frame, self._posed.update(frame)
            if getattr(self._source, "truncated", False):     # only known once the frames have run out
                self.truncated = True
                log.warning("%s is truncated or corrupt: %s", shown(self._source.path), self._source.damage())
        finally:
            self.close()

    def close(self) -> None:
        """Close the source and end the tracker's background detector thread (when it has one)."""
        self._closed = True
        source, self._source = self._source, None
        if source is not None:
            source.close()
        self.tracker.close()

    def __enter__(self) -> "FaceStream":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def track(source, *, model: str | os.PathLike | LandmarkModel = "resnet", options: TrackerOptions = TrackerOptions(),
          smoothing: OneEuroOptions | None = OneEuroOptions(), runtime: RuntimeOptions | None = None,
          live: bool = False, fps: float = 30.0, detector=None, device: str | None = None,
          threads: int | None = None) -> FaceStream:
    """Track the faces of `source`, frame by frame, with stable ids and One Euro smoothing.

    Args:
        source: a video file path or stream URL; an int camera index; one uint8 image ((H, W, 3) BGR,
            (H, W) grey or (H, W, 4) BGRA, as FaceAligner.align takes), an (N, H, W, 3) array, or any
            iterable of such images.
        model: "resnet", "cnn", "cascade", a .onnx/.npz path, or a loaded LandmarkModel.
        options: how faces are found and lost (TrackerOptions). smoothing: None for raw points.
        runtime: where the model runs (device=/threads= are its older spelling).
        live: play a file in real time as if it were a camera (timestamps from the clock).
        fps: frame rate of array input, which gives its timestamps (index / fps); a positive number.
        detector: a name from rtalign.detectors (None: the default, BlazeFace) or a detector object.

    Returns:
        A FaceStream yielding (Frame, FaceLandmarks); FaceLandmarks.xy is (n, 68, 2) in frame pixels and
        .pose (n, 3) the head's yaw, pitch and roll in degrees (rtalign.pose).

    Raises:
        InputError: a file that cannot be read, or arrays that are not BGR images.
        DeviceError: no camera at that index, or a missing runtime provider.
        ModelError: an unknown or broken model.
        ValueError: arrays with an fps that is not a positive number.
    """
    from .pipeline.sources import CameraSource, LiveFileSource, VideoFileSource

    arrays = isinstance(source, Iterable) and not isinstance(source, (str, bytes))
    if arrays and (not isinstance(fps, numbers.Real) or not 0 < fps < math.inf):
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    if isinstance(source, bool):
        raise InputError("cannot track a bool: give a path, a camera index or BGR images")
    tracker = FaceTracker(model, detector, options=options, smoothing=smoothing,
                          runtime=resolve_runtime(runtime, device, threads))
    if isinstance(source, (str, bytes, os.PathLike, numbers.Integral)):     # numpy integers too
        opened = (CameraSource(int(source)) if isinstance(source, numbers.Integral)
                  else (LiveFileSource if live else VideoFileSource)(os.fsdecode(source)))
        return FaceStream(opened, tracker, float(opened.fps), opened)
    if isinstance(source, np.ndarray):
        if source.ndim not in (2, 3, 4):
            raise InputError(f"expected one (H, W, 3) BGR, (H, W) grey or (H, W, 4) BGRA image, or an (N, H, W, 3) "
                             f"array, got shape {source.shape}")
        source = source[None] if source.ndim < 4 else source
    elif not isinstance(source, Iterable):
        raise InputError(f"cannot track {type(source).__name__}: give a path, a camera index or BGR images")
    return FaceStream(_array_frames(source, fps), tracker, fps)
