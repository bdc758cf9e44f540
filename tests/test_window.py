"""The live previews as a person sees them: the window on a real X server (Xvfb) shows the annotated
frames, and a key, the close button or Ctrl-C ends `rtalign webcam` cleanly; the MJPEG page shows the
stream in a real browser (headless Chromium). Each skips only where its server or browser cannot be had."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import cv2
import numpy as np
import pytest

from rtalign.pipeline.runner import Runner
from rtalign.pipeline.sinks import Sink
from rtalign.pipeline.sources import SourceMode
from rtalign.types import FaceLandmarks, Frame

Xlib = pytest.importorskip("Xlib", reason="python-xlib drives the X server in these tests: pip install -e '.[test]'")
from Xlib import X, XK, display as xdisplay  # noqa: E402
from Xlib.ext import xtest  # noqa: E402
from Xlib.protocol import event as xevent  # noqa: E402

GREEN = np.array([0, 255, 0])      # PointsAnnotator's colour (BGR)


@pytest.fixture(scope="module")
def xvfb():
    """A private Xvfb server; yields its DISPLAY string."""
    if not shutil.which("Xvfb"):
        pytest.skip("no X server: Xvfb not installed (apt-get install xvfb)")
    read, write = os.pipe()
    # -noreset: by default the server resets when its last client leaves, between two tests, and a client
    # that connects meanwhile has its connection reset (seen under load)
    server = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-screen", "0", "1280x800x24", "-nolisten", "tcp",
                               "-noreset"],
                              pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write)
    with os.fdopen(read) as f:
        number = f.readline().strip()
    if not number:
        server.kill()
        pytest.skip("Xvfb did not start")
    yield f":{number}"
    server.terminate()
    server.wait(timeout=10)


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory):
    """60 s of a real face at 640x360 (10 fps): long enough that only the test ends the run, even on a
    machine so loaded that the window takes many seconds to appear."""
    from rtalign.synth import demo_clip
    path = tmp_path_factory.mktemp("window") / "face.mp4"
    demo_clip(path, n_frames=600, size=(640, 360), fps=10.0, seed=3, audio=False)
    return path


def _frames(clip, region):
    """`region` of each of the clip's decoded frames, BGR."""
    import av
    with av.open(str(clip)) as container:
        return [f.to_ndarray(format="bgr24")[region] for f in container.decode(video=0)]


def _find_window(d, name="rtalign", timeout=40.0):
    """The viewable top-level window called `name`, once it appears."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stack = [d.screen().root]
        while stack:
            w = stack.pop()
            try:
                if w.get_wm_name() == name and w.get_attributes().map_state == X.IsViewable:
                    return w
                stack.extend(w.query_tree().children)
            except Xlib.error.BadWindow:   # went away while we looked
                continue
        time.sleep(0.2)
    raise AssertionError(f"no window named {name!r} appeared within {timeout:.0f} s")


def _screenshot(d, window) -> np.ndarray:
    """What the X server shows inside `window`, as a BGR array."""
    geo = window.get_geometry()
    pos = window.translate_coords(d.screen().root, 0, 0)
    raw = d.screen().root.get_image(-pos.x, -pos.y, geo.width, geo.height, X.ZPixmap, 0xFFFFFFFF)
    return np.frombuffer(raw.data, np.uint8).reshape(geo.height, geo.width, 4)[:, :, :3]


def _start(xvfb, clip, *extra):
    env = {**os.environ, "DISPLAY": xvfb, "QT_QPA_PLATFORM": "xcb"}
    return subprocess.Popen([sys.executable, "-m", "rtalign.cli", "webcam", "--camera", str(clip), "--model", "cnn",
                             "--stats", *extra], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc, timeout=30.0):
    out, err = proc.communicate(timeout=timeout)
    assert "terminate called" not in err and "Traceback" not in err and "Aborted" not in err, err
    return proc.returncode, out, err


def _window_showing_the_face(d):
    """Wait until the window shows annotated frames; returns (window, screenshot)."""
    window = _find_window(d)
    deadline = time.monotonic() + 40
    while True:
        shot = _screenshot(d, window)
        if (shot == GREEN).all(axis=2).sum() > 50 or time.monotonic() > deadline:
            return window, shot
        time.sleep(0.2)


def _run_then(xvfb, clip, stop):
    """Start `rtalign webcam` on `clip`, wait for the face in its window, call stop(display, window, proc),
    and return (exit code, stderr, the screenshot taken before stopping)."""
    proc = _start(xvfb, clip)
    d = xdisplay.Display(xvfb)
    try:
        window, shot = _window_showing_the_face(d)
        stop(d, window, proc)
        d.sync()
        rc, _, err = _finish(proc)
    finally:
        proc.kill()
        d.close()
    return rc, err, shot


def _press_q(d, window, proc):
    d.set_input_focus(window, X.RevertToParent, X.CurrentTime)
    code = d.keysym_to_keycode(XK.string_to_keysym("q"))
    xtest.fake_input(d, X.KeyPress, code)
    xtest.fake_input(d, X.KeyRelease, code)


def _click_close(d, window, proc):
    """What a window manager sends when the user clicks the close button."""
    protocols, delete = d.intern_atom("WM_PROTOCOLS"), d.intern_atom("WM_DELETE_WINDOW")
    window.send_event(xevent.ClientMessage(window=window, client_type=protocols,
                                           data=(32, [delete, X.CurrentTime, 0, 0, 0])))


def _ctrl_c(d, window, proc):
    proc.send_signal(signal.SIGINT)


def test_the_window_shows_annotated_frames_and_q_ends_the_run(xvfb, long_clip):
    rc, err, shot = _run_then(xvfb, long_clip, _press_q)
    h, w = shot.shape[:2]
    assert (w, h) == (640, 360), f"the window ({w}x{h}) is not the 640x360 picture's size"
    picture = shot[h // 4:3 * h // 4, w // 4:3 * w // 4]      # the face is mid-frame
    assert picture.std() > 20, "the picture area is blank"
    corner = np.s_[250:360, 0:200]          # flag and suit: no points and no FPS text drawn there
    off = min(np.abs(shot[corner].astype(int) - frame).mean() for frame in _frames(long_clip, corner))
    assert off < 3, f"the picture is not shown pixel for pixel (mean difference {off:.1f} from the nearest frame)"
    assert (shot == GREEN).all(axis=2).sum() > 50, "no landmark points drawn in the window"
    assert rc == 0, err
    assert "latency p50" in err


def test_the_close_button_ends_the_run(xvfb, long_clip):
    rc, err, _ = _run_then(xvfb, long_clip, _click_close)
    assert rc == 0, err


def test_ctrl_c_ends_the_run_cleanly(xvfb, long_clip):
    rc, err, _ = _run_then(xvfb, long_clip, _ctrl_c)
    assert rc == 0, err
    assert "frames" in err       # the --stats report still comes after the stop


def test_pyav_loaded_before_opencv_is_refused_with_the_fix(xvfb):
    """PyAV's bundled X libraries, loaded first, would leave the window blank forever: say so instead."""
    code = ("import av, cv2\n"
            "from rtalign.pipeline.sinks import WindowSink\n"
            "from rtalign.errors import DeviceError\n"
            "try:\n    WindowSink()\nexcept DeviceError as e:\n    print('refused:', e)\n")
    env = {**os.environ, "DISPLAY": xvfb}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60).stdout
    assert out.startswith("refused:"), out
    assert "import cv2 (or rtalign) first" in out


class _RecordingSink(Sink):
    """A sink that must run on the caller's thread, and records where it ran."""
    on_caller_thread = True

    def __init__(self):
        self.threads, self.polls = set(), 0

    def write(self, image, timestamp=None):
        self.threads.add(threading.current_thread())

    def poll(self):
        self.polls += 1


class _Frames:
    mode = SourceMode.LIVE

    def __iter__(self):
        for i in range(5):
            yield Frame(np.zeros((8, 8, 3), np.uint8), i / 30, i, time.perf_counter())


class _NoFaces:
    def update(self, frame):
        return FaceLandmarks.empty()

    def annotate(self, image, faces):
        return image


def test_a_gui_sink_is_written_from_the_thread_that_runs_the_runner():
    sink = _RecordingSink()
    stats = Runner(_Frames(), _NoFaces(), _NoFaces(), [sink]).run()
    assert sink.threads == {threading.main_thread()}
    assert sink.polls >= stats.frames_out > 0          # events pumped after every frame


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_mjpeg_page_shows_the_stream_in_a_browser(long_clip, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if not browser:
        pytest.skip("no headless browser: chromium not installed (apt-get install chromium)")
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "rtalign.cli", "webcam", "--camera", str(long_clip), "--model",
                               "cnn", "--no-window", "--serve", f"127.0.0.1:{port}"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    shot = tmp_path / "page.png"
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:       # wait for the server to listen
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        # the stream never ends, so the page never finishes loading: screenshot after a fixed time
        subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        "--window-size=800,500", "--timeout=4000", f"--screenshot={shot}",
                        f"http://127.0.0.1:{port}/"], capture_output=True, timeout=60)
        server.send_signal(signal.SIGINT)
        rc, _, err = _finish(server)
    finally:
        server.kill()
    assert rc == 0, err
    page = cv2.imread(str(shot))
    assert page is not None, "the browser wrote no screenshot"
    assert page[100:400, 200:600].std() > 20, "the page shows no picture"
    # JPEG blurs pure green a little: count clearly green pixels (the landmark points)
    b, g, r = (page[:, :, i].astype(int) for i in range(3))
    assert ((g > 180) & (r < 90) & (b < 90)).sum() > 30, "no landmark points in the streamed picture"
