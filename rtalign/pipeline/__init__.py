"""The real-time pipeline: video files in and out (`process_video`) and live sources (`run_live`)."""
from __future__ import annotations

import signal
import threading
from contextlib import ExitStack, contextmanager
from pathlib import Path

from ..detect import HaarDetector
from ..io_safety import check_output
from ..models import load_model
from ..render import Compose, FpsAnnotator, annotator_for
from ..smoothing import OneEuroOptions
from ..tracking import FaceTracker, TrackerOptions
from .runner import Runner, RunStats
from .sinks import MjpegServerSink, VideoFileSink, VirtualCameraSink, WindowSink
from .sources import SourceMode, VideoFileSource, open_source

__all__ = ["process_video", "run_live", "Runner", "RunStats", "SourceMode", "build_tracker"]


def build_tracker(model="resnet", device="cpu", threads=2, max_faces=4,
                  smoothing: OneEuroOptions | None = OneEuroOptions()) -> FaceTracker:
    """Model + Haar acquisition + per-face One Euro smoothing (None: raw landmarks)."""
    lm = load_model(model, device, threads) if isinstance(model, str) else model
    return FaceTracker(lm, HaarDetector(), options=TrackerOptions(max_faces=max_faces), smoothing=smoothing)


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
                  preset: str = "veryfast", crf: int = 20) -> RunStats:
    """Every frame of `src` through the tracker, drawn, into `dst` (H.264, same fps, audio copied).

    The output appears under its final name only when complete, or, after Ctrl-C / SIGTERM,
    finalized with the frames done so far (stats.interrupted is then True).

    Args:
        progress: optional callable(stats, total_frames) called after every frame.

    Raises:
        InputError: unusable input or output (nothing is left under `dst`).
    """
    src, dst = Path(src), Path(dst)
    check_output(src, dst)
    with ExitStack() as stack:
        source = stack.enter_context(VideoFileSource(str(src)))
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


def run_live(spec: str, *, tracker: FaceTracker, draw: str = "points", effects=(), window: bool = True,
             vcam: bool = False, serve: tuple[str, int] | None = None, on_frame=None) -> RunStats:
    """A camera index, stream URL or file played in real time, to a window / virtual camera / MJPEG server."""
    with ExitStack() as stack:
        source = stack.enter_context(open_source(spec, live=True))
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
