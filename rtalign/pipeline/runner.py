"""The threaded runner: capture → landmarks (detect/track, infer, smooth) → render → sinks.

Three stages joined by bounded queues. A LIVE source's queue holds one frame and the newest
frame replaces a waiting one (low latency); a FILE source blocks instead (every frame, in order).
Stages are plain objects (`tracker.update`, `renderer.annotate`, `sink.write`); the runner only
wires them, times them, and stops everything within a fraction of a second when asked.

Capture and landmarks always run on worker threads. The output stage runs on the thread that
calls `run()` when a sink must be driven from it (`on_caller_thread`: GUI toolkits such as
OpenCV's Qt and macOS Cocoa windows work only from the main thread), else on a third worker.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .reservoir import Reservoir
from .sources import SourceMode

log = logging.getLogger(__name__)
_END = object()
_POLL = 0.05  # seconds between checks of the stop flag
#: seconds a second interrupt waits for the stages to end (an encoder's last call takes well under one)
_HOLD_S = 3.0


@dataclass
class RunStats:
    """What a run measured. Times are per frame, in ms, kept as fixed-size random samples (Reservoir)
    so that memory stays bounded however long a live run lasts; counts are exact.

    Latency runs from capture until every sink has accepted the frame; `events` is the sinks' event
    pumping after it (a window paints there), off the latency path.
    """
    frames_in: int = 0
    frames_out: int = 0
    dropped: int = 0
    wall_s: float = 0.0
    stage_ms: dict = field(default_factory=lambda: {k: Reservoir() for k in
                                                    ("capture", "landmarks", "render", "sink", "events")})
    latency_ms: Reservoir = field(default_factory=Reservoir)
    detector_runs: int = 0
    frames_with_faces: int = 0
    interrupted: bool = False
    #: where a stopped or truncated run's output went (OUT.partial.EXT), when it wrote one
    partial: Path | None = None
    #: the same for its landmarks file
    partial_landmarks: Path | None = None
    #: frames written to the landmarks file (a frame without a face is counted, though it has no row): a
    #: stopped run's can be a few more than frames_out, as the landmarks stage writes before the encoder
    landmark_frames: int = 0

    @property
    def fps(self) -> float:
        return self.frames_out / self.wall_s if self.wall_s else 0.0

    @property
    def partial_files(self) -> list[Path]:
        """The partial outputs this run left, each once (analysis alone writes one file as both)."""
        return [p for p, _ in self.partial_frames]

    @property
    def partial_frames(self) -> list[tuple[Path, int]]:
        """Each partial output with the frames it holds (the landmarks file's own count: see landmark_frames)."""
        out = {}
        if self.partial is not None:
            out[self.partial] = self.frames_out
        if self.partial_landmarks is not None:
            out[self.partial_landmarks] = self.landmark_frames
        return list(out.items())

    def summary(self) -> dict:
        """Medians per stage plus throughput, latency and detector use, as plain numbers."""
        def pct(sample: Reservoir, q: float) -> float:
            return float(np.percentile(sample.values(), q)) if len(sample) else float("nan")
        out = {f"{k}_ms": pct(v, 50) for k, v in self.stage_ms.items()}
        out.update(frames_in=self.frames_in, frames_out=self.frames_out, dropped=self.dropped, fps=self.fps,
                   latency_ms_p50=pct(self.latency_ms, 50), latency_ms_p95=pct(self.latency_ms, 95),
                   latency_ms_p99=pct(self.latency_ms, 99),
                   frames_with_faces=self.frames_with_faces,
                   detector_share=self.detector_runs / self.frames_out if self.frames_out else 0.0)
        return out


class Runner:
    """Run `source` through `tracker` and `renderer` into every sink, on three threads.

    Args:
        source: iterable of Frame with a `mode` (SourceMode).
        tracker: `update(frame) -> FaceLandmarks`.
        renderer: `annotate(image, faces) -> image` (draws in place).
        sinks: `sinks.Sink`s (`write(image, timestamp)`, `poll()`); a sink whose `wants_stop` turns true ends the run.
        on_frame: optional callback after each written frame (progress bars).
    """

    def __init__(self, source, tracker, renderer, sinks, on_frame=None):
        self.source, self.tracker, self.renderer, self.sinks = source, tracker, renderer, list(sinks)
        self.on_frame = on_frame
        self.live = source.mode is SourceMode.LIVE
        self.stats = RunStats()
        self._stop = threading.Event()
        self._errors: list[BaseException] = []
        self._in: queue.Queue = queue.Queue(maxsize=1 if self.live else 8)
        self._out: queue.Queue = queue.Queue(maxsize=1 if self.live else 8)

    def stop(self) -> None:
        """Interrupt the run: every thread finishes within ~0.1 s (safe from a signal handler)."""
        self.stats.interrupted = True
        self._stop.set()

    # --- queue helpers that never block past a stop request -------------------------------
    def _put(self, q: queue.Queue, item, drop_stale: bool) -> bool:
        while not self._stop.is_set():
            if drop_stale and item is not _END:
                try:
                    q.get_nowait()
                    self.stats.dropped += 1
                except queue.Empty:
                    pass
            try:
                q.put(item, timeout=_POLL)
                return True
            except queue.Full:
                continue
        return False

    def _get(self, q: queue.Queue, idle=None):
        """The next item, or _END once stopped; `idle()` runs after each empty wait."""
        while not self._stop.is_set():
            try:
                return q.get(timeout=_POLL)
            except queue.Empty:
                if idle:
                    idle()
        return _END

    def _guard(self, body, done: threading.Event | None = None):
        """`body` with its errors kept for run() to raise; `done` is set once it is out (see _join)."""
        def run():
            try:
                body()
            except KeyboardInterrupt:  # only the calling thread receives it: Ctrl-C stops the run
                self.stop()
            except BaseException as e:  # surfaced by run() in the calling thread
                self._errors.append(e)
                self._stop.set()
            finally:
                if done is not None:
                    done.set()
        return run

    # --- the three stages --------------------------------------------------------------------
    def _capture(self):
        times = self.stats.stage_ms["capture"]
        it = iter(self.source)
        while not self._stop.is_set():
            t0 = time.perf_counter()
            frame = next(it, _END)
            if frame is _END:
                break
            times.append((time.perf_counter() - t0) * 1000)
            self.stats.frames_in += 1
            if not self._put(self._in, frame, drop_stale=self.live):
                return
        self._put(self._in, _END, drop_stale=False)

    def _process(self):
        t_lm, t_render = self.stats.stage_ms["landmarks"], self.stats.stage_ms["render"]
        while (frame := self._get(self._in)) is not _END:
            t0 = time.perf_counter()
            faces = self.tracker.update(frame)
            t1 = time.perf_counter()
            self.stats.frames_with_faces += len(faces) > 0
            self.renderer.annotate(frame.image, faces)
            t2 = time.perf_counter()
            t_lm.append((t1 - t0) * 1000)
            t_render.append((t2 - t1) * 1000)
            if not self._put(self._out, frame, drop_stale=self.live):
                return
        self._put(self._out, _END, drop_stale=False)

    def _poll_sinks(self) -> None:
        """Let sinks handle their events while no frame comes (a window stays responsive)."""
        for sink in self.sinks:
            sink.poll()
        if any(s.wants_stop for s in self.sinks):
            self._stop.set()

    def _output(self):
        t_sink, t_events = self.stats.stage_ms["sink"], self.stats.stage_ms["events"]
        while (frame := self._get(self._out, idle=self._poll_sinks)) is not _END:
            t0 = time.perf_counter()
            for sink in self.sinks:
                sink.write(frame.image, frame.timestamp)
            done = time.perf_counter()
            t_sink.append((done - t0) * 1000)
            self.stats.latency_ms.append((done - frame.captured_at) * 1000)
            self.stats.frames_out += 1
            if self.on_frame:
                self.on_frame(self.stats)
            self._poll_sinks()
            t_events.append((time.perf_counter() - done) * 1000)
        self._stop.set()

    @staticmethod
    def _join(stages) -> None:
        """Wait for every started stage, (thread, done event) pairs: each sees the stop flag within _POLL,
        unless it is inside one long call (a decode, an encode), and the caller may close the source or
        the sinks only once it is out. Events, not Thread.join: a KeyboardInterrupt landing inside
        join() can mark a running thread finished (CPython gh-90882), and the caller would then close
        the encoder under it (seen as a hang when Ray cancels a task). For the same reason an exception a
        signal handler raises meanwhile (a second Ctrl-C) is held until every stage is out, then raised
        (it used to end the wait, and the container closed under the encoder crashed the process); but for
        _HOLD_S at most, and not past a third: a stage stuck in a call that never returns (a dead camera)
        must not make the process deaf to Ctrl-C."""
        held, deadline, warned = None, 0.0, False
        while not all(done.is_set() for _, done in stages):
            if held is not None and time.monotonic() > deadline:
                raise held
            try:
                for _, done in stages:
                    done.wait(_POLL if held is not None else 1.0)
                late = [t.name for t, done in stages if not done.is_set()]
                if late and not warned:
                    warned = True
                    log.warning("waiting for %s to finish its current call", ", ".join(late))
            except BaseException as e:
                if held is not None:
                    raise           # asked once more: go now
                held, deadline = e, time.monotonic() + _HOLD_S
        if held is not None:
            raise held

    def run(self) -> RunStats:
        """Run to the end of the source or until stopped; re-raises the first error of any thread.

        KeyboardInterrupt in the calling thread stops the run cleanly (stats.interrupted is set).
        A sink with `on_caller_thread` is written from the calling thread, which should then be
        the main thread.
        """
        on_caller = any(s.on_caller_thread for s in self.sinks)
        stages = (self._capture, self._process) if on_caller else (self._capture, self._process, self._output)
        done = [threading.Event() for _ in stages]
        threads = [threading.Thread(target=self._guard(f, d), name=f.__name__, daemon=True)
                   for f, d in zip(stages, done)]
        t0 = time.perf_counter()
        try:
            try:
                for t in threads:
                    t.start()
                if on_caller:
                    self._guard(self._output)()
                while not all(d.is_set() for d in done):
                    done[-1].wait(_POLL)
                    if self._stop.is_set():
                        break
            except KeyboardInterrupt:
                self.stop()
        finally:
            # whatever way out (even Ctrl-C while the stages start), no stage may outlive this call: the
            # caller closes the containers they use
            self._stop.set()
            self._join([(t, d) for t, d in zip(threads, done) if t.ident is not None])
        self.stats.wall_s = time.perf_counter() - t0
        self.stats.detector_runs = getattr(self.tracker, "detector_runs", 0)
        if self._errors:
            raise self._errors[0]
        return self.stats
