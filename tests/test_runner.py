"""The threaded runner with stand-in stages: errors reach the caller, LIVE drops stale frames, FILE never does."""
import threading
import time

import numpy as np
import pytest

from rtalign.pipeline.runner import Runner
from rtalign.pipeline.sinks import Sink
from rtalign.pipeline.sources import SourceMode
from rtalign.render import Compose
from rtalign.types import FaceLandmarks, Frame


class ListSource:
    """`n` tiny frames whose first pixel holds the frame index, produced as fast as asked for."""

    def __init__(self, n, mode):
        self.n, self.mode = n, mode

    def __iter__(self):
        for i in range(self.n):
            image = np.zeros((4, 4, 3), np.uint8)
            image[0, 0, 0] = i % 256
            yield Frame(image, i / 30, i, time.perf_counter())


class SlowTracker:
    def __init__(self, seconds=0.0, fail_at=None):
        self.seconds, self.fail_at = seconds, fail_at

    def update(self, frame):
        if frame.index == self.fail_at:
            raise RuntimeError(f"model broke on frame {frame.index}")
        time.sleep(self.seconds)
        return FaceLandmarks.empty(tracked=True)


class RecordingSink(Sink):
    def __init__(self, fail_at=None):
        self.indices, self.fail_at = [], fail_at

    def write(self, image, timestamp=None):
        if len(self.indices) == self.fail_at:
            raise OSError("disk full")
        self.indices.append(int(image[0, 0, 0]))


def run(source, tracker, sink):
    return Runner(source, tracker, Compose([]), [sink]).run()


def test_file_mode_delivers_every_frame_in_order_even_behind_a_slow_stage():
    sink = RecordingSink()
    stats = run(ListSource(40, SourceMode.FILE), SlowTracker(0.005), sink)
    assert sink.indices == list(range(40))
    assert (stats.frames_in, stats.frames_out, stats.dropped) == (40, 40, 0)


def test_live_mode_drops_stale_frames_and_keeps_the_newest():
    sink = RecordingSink()
    stats = run(ListSource(200, SourceMode.LIVE), SlowTracker(0.01), sink)
    assert stats.dropped > 100                                    # the source outruns a 10 ms stage
    assert stats.frames_in == 200 and stats.frames_out + stats.dropped == 200
    assert sink.indices == sorted(set(sink.indices))               # never out of order or repeated
    assert sink.indices[-1] == 199                                 # the last frame is never the one dropped


@pytest.mark.parametrize("tracker,sink,error", [
    (SlowTracker(fail_at=5), RecordingSink(), "model broke on frame 5"),
    (SlowTracker(), RecordingSink(fail_at=3), "disk full"),
])
def test_an_error_in_any_stage_reaches_the_caller_and_stops_the_run(tracker, sink, error):
    t0 = time.perf_counter()
    with pytest.raises((RuntimeError, OSError), match=error):
        run(ListSource(10_000, SourceMode.FILE), tracker, sink)
    assert time.perf_counter() - t0 < 2.0                          # the other threads did not run on
    assert len(sink.indices) <= 5


def test_timing_samples_stay_bounded_and_estimate_the_whole_run():
    from rtalign.pipeline.reservoir import Reservoir
    small = Reservoir(size=8)
    for v in (5.0, 1.0, 3.0):
        small.append(v)
    assert len(small) == 3 and sorted(small.values()) == [1.0, 3.0, 5.0]     # exact until full
    r = Reservoir(size=1000)
    stream = np.r_[np.full(50_000, 10.0), np.arange(50_000, dtype=float)]      # a slow second half
    for v in stream:
        r.append(v)
    assert len(r) == 1000 and r.count == 100_000
    share_late = np.mean(r.values() != 10.0)
    assert 0.45 < share_late < 0.55                                         # both halves represented, not the last 1000


def test_a_long_run_keeps_a_fixed_number_of_timings():
    stats = run(ListSource(5000, SourceMode.FILE), SlowTracker(), RecordingSink())
    assert stats.frames_out == 5000 and stats.latency_ms.count == 5000
    assert {len(v) for v in (stats.latency_ms, *stats.stage_ms.values())} == {4096}
    s = stats.summary()
    assert s["frames_out"] == 5000 and 0 < s["latency_ms_p50"] <= s["latency_ms_p95"]


def test_ctrl_c_while_the_stages_start_leaves_no_stage_running(monkeypatch):
    """The caller closes the source and sinks as soon as run() returns: no stage may still be using them."""
    started, real_start = [], threading.Thread.start

    def start(thread):
        if len(started) == 2:
            raise KeyboardInterrupt
        started.append(thread)
        real_start(thread)
    monkeypatch.setattr(threading.Thread, "start", start)
    stats = run(ListSource(10_000, SourceMode.FILE), SlowTracker(0.001), RecordingSink())
    assert stats.interrupted and len(started) == 2
    assert not any(t.is_alive() for t in started)


def test_a_second_ctrl_c_while_the_stages_end_waits_for_them_before_it_is_raised():
    """A second Ctrl-C landing in run()'s wait for its stages ended the wait: the caller closed the encoder's
    container under the output stage, still inside its last write, and the process crashed (exit 139)."""
    import os
    import signal
    writing = threading.Event()

    class SlowSink(Sink):
        """Its second write takes 0.6 s, as an encoder's last call may (the others none: a Ctrl-C lost under
        load fails the test instead of leaving it to write 10,000 slow frames)."""
        def __init__(self):
            self.finished = 0

        def write(self, image, timestamp=None):
            if self.finished == 1:
                writing.set()
                time.sleep(0.6)
            self.finished += 1

    def press_ctrl_c_twice():
        writing.wait(5)
        for _ in range(2):
            os.kill(os.getpid(), signal.SIGINT)          # a real signal: it wakes the main thread's waits
            time.sleep(0.15)

    sink = SlowSink()
    threading.Thread(target=press_ctrl_c_twice, daemon=True).start()
    runner = Runner(ListSource(10_000, SourceMode.FILE), SlowTracker(), Compose([]), [sink])
    with pytest.raises(KeyboardInterrupt):
        runner.run()
    assert sink.finished == 2 and runner.stats.interrupted      # the write under way ended before run() did


def test_a_stage_stuck_in_a_call_does_not_make_the_run_deaf_to_ctrl_c():
    """A camera read that never returns: the second Ctrl-C is held a few seconds for the stage, then goes
    through; it was held for good, and no further Ctrl-C ended the process."""
    import os
    import signal
    from rtalign.pipeline import runner as runner_module
    reading = threading.Event()

    class Stalled:
        mode = SourceMode.LIVE

        def __iter__(self):
            yield Frame(np.zeros((4, 4, 3), np.uint8), 0.0, 0, time.perf_counter())
            reading.set()
            time.sleep(60)

    def press_ctrl_c_twice():
        reading.wait(5)
        for _ in range(2):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.2)

    threading.Thread(target=press_ctrl_c_twice, daemon=True).start()
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        Runner(Stalled(), SlowTracker(), Compose([]), [RecordingSink()]).run()
    assert time.monotonic() - t0 < runner_module._HOLD_S + 3

