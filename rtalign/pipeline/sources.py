"""Frame sources. A file is read frame by frame (FILE mode: nothing dropped, timestamps from the
frame index); a camera, stream or file-as-camera is LIVE (real time, the newest frame wins)."""
from __future__ import annotations

import enum
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2

from ..errors import DeviceError, InputError
from ..types import Frame


class SourceMode(enum.Enum):
    FILE = "file"
    LIVE = "live"


def _open_video(spec: str):
    """(container, video stream) with one clear error for every way a file can be unusable."""
    if "://" not in spec and not Path(spec).is_file():
        raise InputError(f"no such video file: {spec}")
    try:
        container = av.open(spec, "r")
    except (av.error.FFmpegError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read video {spec}: {e.strerror or e}") from None
    if not container.streams.video:
        container.close()
        raise InputError(f"{spec} has no video stream")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    return container, stream


class _Source:
    """Sources are context managers that release their file or device on exit."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class VideoFileSource(_Source):
    """Every frame of a video file, in order, as BGR `Frame`s (FILE mode).

    Attributes:
        fps: exact frame rate (Fraction). size: (width, height). frames: count from the header (0 if unknown).
    """
    mode = SourceMode.FILE

    def __init__(self, path: str):
        self.path = str(path)
        self._container, self._stream = _open_video(self.path)
        rate = self._stream.average_rate or self._stream.guessed_rate or Fraction(30)
        self.fps = Fraction(rate)
        self.size = (self._stream.codec_context.width, self._stream.codec_context.height)
        self.frames = int(self._stream.frames or 0)
        self.has_audio = bool(self._container.streams.audio)
        self.decoded = 0

    def _decoded_frames(self):
        try:
            for frame in self._container.decode(self._stream):
                yield frame
        except av.error.FFmpegError as e:
            raise InputError(f"{self.path}: video data is corrupt after frame {self.decoded}: {e.strerror or e}") from None

    def __iter__(self):
        fps = float(self.fps)
        for frame in self._decoded_frames():
            image = frame.to_ndarray(format="bgr24")
            yield Frame(image, self.decoded / fps, self.decoded, time.perf_counter())
            self.decoded += 1
        if self.decoded == 0:
            raise InputError(f"{self.path}: no frames could be decoded")

    def close(self) -> None:
        self._container.close()


class LiveFileSource(VideoFileSource):
    """A video file or stream URL played in real time, as if it were a camera (LIVE mode).

    Frames are released at their presentation time; the runner keeps only the newest, so a slow
    consumer sees fresh frames (and drops), exactly as with a camera. Ends at the end of the file.
    """
    mode = SourceMode.LIVE

    def __iter__(self):
        start = time.perf_counter()
        for frame in super().__iter__():
            delay = start + frame.timestamp - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            frame.captured_at = time.perf_counter()
            frame.timestamp = frame.captured_at - start
            yield frame


class CameraSource(_Source):
    """A local camera through OpenCV (LIVE mode), timestamps from the monotonic clock."""
    mode = SourceMode.LIVE

    def __init__(self, index: int, size: tuple[int, int] | None = None):
        self._cap = cv2.VideoCapture(index)
        if not self._cap.isOpened():
            raise DeviceError(f"no camera at index {index}")
        if size:
            self._cap.set(cv2.CAP_PROP_FRAME_WIDTH, size[0])
            self._cap.set(cv2.CAP_PROP_FRAME_HEIGHT, size[1])
        ok, first = self._cap.read()
        if not ok:
            raise DeviceError(f"camera {index} opened but delivered no frame")
        self._first = first
        self.size = (first.shape[1], first.shape[0])
        self.fps = Fraction(round(self._cap.get(cv2.CAP_PROP_FPS) or 30))
        self.frames = 0
        self.has_audio = False

    def __iter__(self):
        start = time.perf_counter()
        image, index = self._first, 0
        while True:
            now = time.perf_counter()
            yield Frame(image, now - start, index, now)
            ok, image = self._cap.read()
            if not ok:
                return
            index += 1

    def close(self) -> None:
        self._cap.release()


def open_source(spec: str, live: bool):
    """A camera index ("0"), or a file / URL read frame by frame (live=False) or in real time (live=True)."""
    if spec.isdigit():
        return CameraSource(int(spec))
    return LiveFileSource(spec) if live else VideoFileSource(spec)
