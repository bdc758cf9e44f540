"""The real-time pipeline: video files in and out (`process_video`) and live sources (`run_live`)."""
from __future__ import annotations

import logging
import threading
from contextlib import ExitStack, contextmanager
from pathlib import Path

from ..detectors import DEFAULT_DETECTOR
from ..errors import TruncatedInputError, shown
from ..export import open_writer
from ..io_safety import check_output
from ..pose import PoseTracker
from ..render import Compose, FpsAnnotator, annotator_for
from ..runtime import RuntimeOptions
from ..smoothing import OneEuroOptions
from ..tracking import FaceTracker, TrackerOptions
from .landmark_sink import LandmarkRecorder
from .runner import Runner, RunStats
from .sinks import MjpegServerSink, VideoFileSink, VirtualCameraSink, WindowSink, check_video_output
from .sources import LiveFileSource, SourceMode, VideoFileSource, open_source

__all__ = ["process_video", "analyze_video", "run_live", "Runner", "RunStats", "SourceMode", "build_tracker"]

log = logging.getLogger(__name__)


def build_tracker(model="resnet", device="cpu", threads=2, max_faces=4,
                  smoothing: OneEuroOptions | None = OneEuroOptions(), detector=DEFAULT_DETECTOR,
                  background: bool = False) -> FaceTracker:
    """Model + face acquisition (a name from rtalign.detectors, or a detector object) + per-face One Euro
    smoothing (None: raw landmarks). `background`: the detector on its own thread, for live sources
    (see TrackerOptions)."""
    return FaceTracker(model, detector, options=TrackerOptions(max_faces=max_faces, background=background),
                       smoothing=smoothing, runtime=RuntimeOptions(device, threads))


def _landmark_stage(stack: ExitStack, tracker, landmarks, label: str, draw: str, keep_partial: bool = True,
                    start: float = 0.0):
    """(stage, writer): the tracker, wrapped to add head pose and write rows to the `landmarks` file when
    asked (times counted from `start`), and that file's writer (None without one). Without `keep_partial`, a
    run that ends on an exception (Ctrl-C included) deletes the file instead of keeping its rows in
    LANDMARKS.partial.EXT."""
    if landmarks is not None:
        writer = stack.enter_context(open_writer(landmarks))
        if not keep_partial:
            stack.callback(writer.abort)        # runs before the writer's own exit; a no-op once it is closed
        return LandmarkRecorder(tracker, writer, label, start), writer
    return (PoseTracker(tracker) if draw == "pose" else tracker), None


def _close_landmarks(writer, stats: RunStats, unfinished: bool, keep_partial: bool = True) -> None:
    """Close the landmarks file (to LANDMARKS.partial.EXT when the run did not finish, or deleted then
    without `keep_partial`) and note it in `stats`."""
    stats.landmark_frames = writer.frames
    if unfinished and not keep_partial:
        writer.abort()
        return
    written = writer.close(partial=unfinished)
    stats.partial_landmarks = written if unfinished else None


def _check_decoding(source: VideoFileSource, src: str, stats: RunStats, refused: bool, dst: Path) -> None:
    """Say what the decoder could not do: frames it concealed (a warning) and an input that ends early
    (TruncatedInputError when `refused`, else a warning)."""
    if source.corrupt:
        log.warning("%s: %d frame(s) had decoding errors (shown as the decoder concealed them)",
                    shown(src), source.corrupt)
    if not source.truncated:
        return
    damage = source.damage()
    if refused:
        where = " and ".join(shown(p) for p in stats.partial_files)
        raise TruncatedInputError(
            f"{shown(src)} is truncated or corrupt: {damage}" + (f"; they are in {where}" if where else "")
            + f" (--allow-truncated writes {shown(dst)})", source.decoded, source.expected, stats.partial, damage)
    if not stats.interrupted:
        log.warning("%s is truncated or corrupt: %s; written as it is", shown(src), damage)


@contextmanager
def _stopped_by(event: threading.Event | None, runner: Runner):
    """Relay `event` (set by the caller, e.g. the CLI's signal handlers) to `runner.stop()`."""
    if event is None:
        yield
        return
    done = threading.Event()

    def relay():
        while not done.is_set():
            if event.wait(0.05):
                runner.stop()
                return
    thread = threading.Thread(target=relay, name="stop-relay", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def process_video(src, dst, *, tracker: FaceTracker, draw: str = "points", effects=(), progress=None,
                  preset: str = "veryfast", crf: int = 20, stop: threading.Event | None = None,
                  allow_truncated: bool = False, landmarks=None, label: str | None = None,
                  keep_partial: bool = True) -> RunStats:
    """Every frame of `src` through the tracker, drawn, into `dst` (format by extension, audio kept in sync,
    each frame at its input time, rotation metadata applied to the pixels).

    The output appears under its final name only when complete. When `stop` is set (the run then ends
    within a fraction of a second, stats.interrupted is True) what was done goes to OUT.partial.EXT
    (`stats.partial`), playable, audio up to the last frame.

    Args:
        progress: optional callable(stats, total_frames) called after every frame.
        stop: set it to end the run early (from a signal handler, another thread, a UI).
        allow_truncated: accept an input that ends early or stops decoding: write `dst` from the
            frames that decoded (with a logged warning) instead of raising TruncatedInputError.
        landmarks: optional .csv / .jsonl / .parquet path for every frame's landmarks and head pose
            (rtalign.export), holding the frames done when the run ends for any reason.
        label: the landmarks' `file` column (default: the input's file name).
        keep_partial: False: a run that does not finish leaves nothing at all (no OUT.partial.EXT): what
            `rtalign batch` wants, which redoes such a file whole.

    Raises:
        InputError: unusable input or output (nothing is left behind).
        TruncatedInputError: the input ended early; the frames that decoded are in `err.partial`.
    """
    spec, src, dst = str(src), Path(src), Path(dst)      # spec: as given (a URL keeps its "//")
    check_output(src, dst)
    check_video_output(dst)
    if landmarks is not None:
        check_output(src, Path(landmarks))
    with ExitStack() as stack:
        source = stack.enter_context(VideoFileSource(spec, fixed_size=True))     # one size for the output
        tracker, writer = _landmark_stage(stack, tracker, landmarks, label or src.name, draw, keep_partial,
                                          source.start)
        sink = VideoFileSink(dst, source.size, source.fps, audio_from=spec if source.has_audio else None,
                             preset=preset, crf=crf, time_base=source.time_base, start=source.start)
        try:
            renderer = Compose([*effects, annotator_for(draw)])
            on_frame = (lambda stats: progress(stats, source.expected)) if progress else None
            runner = Runner(source, tracker, renderer, [sink], on_frame)
            with _stopped_by(stop, runner):
                stats = runner.run()
            refused = source.truncated and not allow_truncated and not stats.interrupted
            unfinished = stats.interrupted or refused
            if unfinished and not keep_partial:
                sink.abort()
            else:       # inside the try: Ctrl-C while the encoder flushes leaves no temporary file either
                written = sink.close(partial=unfinished)
                stats.partial = written if unfinished else None
        except BaseException:
            sink.abort()
            raise
        if writer is not None:
            _close_landmarks(writer, stats, unfinished, keep_partial)
    _check_decoding(source, spec, stats, refused, dst)
    return stats


def analyze_video(src, landmarks, *, tracker: FaceTracker, progress=None, stop: threading.Event | None = None,
                  allow_truncated: bool = False, label: str | None = None, keep_partial: bool = True) -> RunStats:
    """Analysis only: every frame of `src` decoded and tracked, landmarks and head pose written to
    `landmarks` (rtalign.export, its `file` column `label`, default the input's file name); nothing drawn,
    nothing encoded.

    When `stop` is set, or the input is truncated (unless `allow_truncated`), the frames done go to
    LANDMARKS.partial.EXT (`stats.partial`), as `process_video` does with its video (without `keep_partial`,
    nowhere).

    Raises:
        InputError: unusable input or landmarks path (nothing is left under `landmarks`).
        TruncatedInputError: the input ended early; the rows of the frames that decoded are in `err.partial`.
    """
    spec, src = str(src), Path(src)
    check_output(src, Path(landmarks))
    with ExitStack() as stack:
        source = stack.enter_context(VideoFileSource(spec))
        tracker, writer = _landmark_stage(stack, tracker, landmarks, label or src.name, "none", keep_partial,
                                          source.start)
        on_frame = (lambda stats: progress(stats, source.expected)) if progress else None
        runner = Runner(source, tracker, Compose([]), [], on_frame)
        with _stopped_by(stop, runner):
            stats = runner.run()
        refused = source.truncated and not allow_truncated and not stats.interrupted
        unfinished = stats.interrupted or refused
        _close_landmarks(writer, stats, unfinished, keep_partial)
        stats.partial = stats.partial_landmarks        # the landmarks file is this run's one output
    _check_decoding(source, spec, stats, refused, Path(landmarks))
    return stats


def run_live(spec: str, *, tracker: FaceTracker, draw: str = "points", effects=(), window: bool = True,
             vcam: bool = False, serve: tuple[str, int] | None = None, on_frame=None,
             stop: threading.Event | None = None, landmarks=None) -> RunStats:
    """A camera index, stream URL or file played in real time, to a window / virtual camera / MJPEG server
    (and every processed frame's landmarks to the `landmarks` file, when given).

    Set `stop` to end the run (from a signal handler, another thread, a UI)."""
    with ExitStack() as stack:
        source = stack.enter_context(open_source(spec, live=True))
        label = Path(spec).name if Path(spec).is_file() else spec     # a file by its name, as `video` writes
        if landmarks is not None and Path(spec).is_file():
            check_output(Path(spec), Path(landmarks))
        tracker, writer = _landmark_stage(stack, tracker, landmarks, label, draw)
        sinks = []
        if window:
            sinks.append(stack.enter_context(WindowSink()))
        if vcam:
            sinks.append(stack.enter_context(VirtualCameraSink(source.size, float(source.fps))))
        if serve:
            sinks.append(stack.enter_context(MjpegServerSink(*serve)))
        renderer = Compose([*effects, annotator_for(draw), FpsAnnotator()])
        runner = Runner(source, tracker, renderer, sinks, on_frame)
        if writer is not None:   # once running, a live run has no end but its stop: its rows go to FILE however
            stack.callback(writer.close)       # it stops (a run that could not start leaves FILE as it was)
        with _stopped_by(stop, runner):
            stats = runner.run()
    if isinstance(source, LiveFileSource) and source.error and not stats.interrupted:      # ended, not stopped
        log.warning("%s ended early: %s", shown(spec), source.error)
    if isinstance(source, LiveFileSource) and stats.frames_in == 1 and not stats.frames_with_faces:
        log.warning("%s has a single frame (a still image?): a live run looks for faces beside the frames, "
                    "so its only frame went out before any was found; for a photo use `rtalign image` "
                    "(its --landmarks writes the points)", shown(spec))
    return stats
