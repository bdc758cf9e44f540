"""The real-time pipeline: video files in and out (`process_video`) and live sources (`run_live`)."""
from __future__ import annotations

import signal
import threading
from contextlib import ExitStack, contextmanager
from pathlib import Path

from ..detect import HaarDetector
from ..export import open_writer
from ..io_safety import check_output
from ..models import load_model
from ..pose import PoseTracker
from ..render import Compose, FpsAnnotator, annotator_for
from ..smoothing import OneEuroOptions
from ..track import FaceTracker, TrackerOptions
from .landmark_sink import LandmarkRecorder
from .runner import Runner, RunStats
from .sinks import MjpegServerSink, VideoFileSink, VirtualCameraSink, WindowSink
from .sources import SourceMode, VideoFileSource, open_source

__all__ = ["process_video", "analyze_video", "run_live", "Runner", "RunStats", "SourceMode", "build_tracker"]


def build_tracker(model="resnet", device="cpu", threads=2, max_faces=4,
                  smoothing: OneEuroOptions | None = OneEuroOptions()) -> FaceTracker:
    """Model + Haar acquisition + per-face One Euro smoothing (None: raw landmarks)."""
    lm = load_model(model, device, threads) if isinstance(model, str) else model
    return FaceTracker(lm, HaarDetector(), TrackerOptions(max_faces=max_faces), smoothing)


def _landmark_stage(stack: ExitStack, tracker, landmarks, label: str, draw: str):
    """The tracker, wrapped to add head pose and write rows to the `landmarks` file when asked."""
    if landmarks is not None:
        return LandmarkRecorder(tracker, stack.enter_context(open_writer(landmarks)), label)
    return PoseTracker(tracker) if draw == "pose" else tracker


@contextmanager
def _stop_on_sigterm(runner: Runner):
    """SIGTERM stops the runner like Ctrl-C does (only the main thread may install handlers)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, lambda *_: runner.stop())
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def process_video(src, dst, *, tracker: FaceTracker, draw: str = "points", effects=(), progress=None,
                  preset: str = "veryfast", crf: int = 20, landmarks=None) -> RunStats:
    """Every frame of `src` through the tracker, drawn, into `dst` (H.264, same fps, audio copied).

    The output appears under its final name only when complete, or, after Ctrl-C / SIGTERM,
    finalized with the frames done so far (stats.interrupted is then True).

    Args:
        progress: optional callable(stats, total_frames) called after every frame.
        landmarks: optional .csv / .jsonl / .parquet path for every frame's landmarks and head pose
            (rtalign.export), finalized like `dst`.

    Raises:
        InputError: unusable input or output (nothing is left under `dst`).
    """
    src, dst = Path(src), Path(dst)
    check_output(src, dst)
    if landmarks is not None:
        check_output(src, Path(landmarks))
    with ExitStack() as stack:
        source = stack.enter_context(VideoFileSource(str(src)))
        tracker = _landmark_stage(stack, tracker, landmarks, src.name, draw)
        sink = VideoFileSink(dst, source.size, source.fps, audio_from=str(src) if source.has_audio else None,
                             preset=preset, crf=crf)
        renderer = Compose([*effects, annotator_for(draw)])
        on_frame = (lambda stats: progress(stats, source.frames)) if progress else None
        runner = Runner(source, tracker, renderer, [sink], on_frame)
        try:
            with _stop_on_sigterm(runner):
                stats = runner.run()
        except BaseException:
            sink.abort()
            raise
        sink.close(complete=not stats.interrupted)
    return stats


def analyze_video(src, landmarks, *, tracker: FaceTracker, progress=None) -> RunStats:
    """Analysis only: every frame of `src` decoded and tracked, landmarks and head pose written to
    `landmarks` (rtalign.export); nothing drawn, nothing encoded.

    After Ctrl-C / SIGTERM the file holds the frames done (stats.interrupted is then True).

    Raises:
        InputError: unusable input or landmarks path (nothing is left under `landmarks`).
    """
    src = Path(src)
    check_output(src, Path(landmarks))
    with ExitStack() as stack:
        source = stack.enter_context(VideoFileSource(str(src)))
        tracker = _landmark_stage(stack, tracker, landmarks, src.name, "none")
        on_frame = (lambda stats: progress(stats, source.frames)) if progress else None
        runner = Runner(source, tracker, Compose([]), [], on_frame)
        with _stop_on_sigterm(runner):
            return runner.run()


def run_live(spec: str, *, tracker: FaceTracker, draw: str = "points", effects=(), window: bool = True,
             vcam: bool = False, serve: tuple[str, int] | None = None, on_frame=None, landmarks=None) -> RunStats:
    """A camera index, stream URL or file played in real time, to a window / virtual camera / MJPEG server
    (and every processed frame's landmarks to the `landmarks` file, when given)."""
    with ExitStack() as stack:
        source = stack.enter_context(open_source(spec, live=True))
        tracker = _landmark_stage(stack, tracker, landmarks, spec, draw)
        sinks = []
        if window:
            sinks.append(stack.enter_context(WindowSink()))
        if vcam:
            sinks.append(stack.enter_context(VirtualCameraSink(source.size, float(source.fps))))
        if serve:
            sinks.append(stack.enter_context(MjpegServerSink(*serve)))
        renderer = Compose([*effects, annotator_for(draw), FpsAnnotator()])
        runner = Runner(source, tracker, renderer, sinks, on_frame)
        with _stop_on_sigterm(runner):
            return runner.run()
