"""Frame sinks: a video file (H.264 + the input's audio), a preview window, a virtual camera and
an MJPEG-over-HTTP preview. Each is a context manager with one method, `write(image)`; `close()`
is safe to call twice."""
from __future__ import annotations

import logging
import os
import socket
import sys
import threading
from fractions import Fraction
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import av
import cv2
import numpy as np

from ..errors import DeviceError, InputError
from ..io_safety import temp_path_for

log = logging.getLogger(__name__)


class Sink:
    """What the runner expects of a sink: `write(image)`, `poll()`, and two flags."""
    #: set when the user asked to stop through this sink (window closed, q pressed)
    wants_stop = False
    #: written from the thread that calls `Runner.run()` (GUI toolkits need their main thread)
    on_caller_thread = False

    def poll(self) -> None:
        """Handle pending events between frames (called while the runner waits for one)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        pass


class VideoFileSink(Sink):
    """H.264 video at exactly the input's frame rate, with the audio of `audio_from` copied over.

    Written under a temporary name beside `path` and renamed on `close()`; `abort()` removes it.
    Audio packets are interleaved as the video advances, so a run stopped early still gets the
    audio of the frames it wrote.
    """

    def __init__(self, path, size: tuple[int, int], fps: Fraction, audio_from: str | None = None,
                 preset: str = "veryfast", crf: int = 20):
        self.path = Path(path)
        self._tmp = temp_path_for(self.path)
        try:
            self._out = av.open(str(self._tmp), "w")
        except av.error.FFmpegError as e:
            self._tmp.unlink(missing_ok=True)
            raise InputError(f"cannot write video {path}: {e.strerror or e}") from None
        self.fps = Fraction(fps)
        self._video = self._out.add_stream("libx264", rate=self.fps)
        self._video.width, self._video.height = size
        self._video.pix_fmt = "yuv420p"
        self._video.options = {"preset": preset, "crf": str(crf)}
        self._audio_in = self._audio_packets = self._audio_out = None
        self._pending = None
        if audio_from:
            src = av.open(audio_from, "r")
            if src.streams.audio:
                self._audio_in = src
                self._audio_out = self._out.add_stream_from_template(src.streams.audio[0])
                self._audio_packets = src.demux(src.streams.audio[0])
            else:
                src.close()
        self.frames = 0
        self._closed = False

    def _mux_audio_until(self, t: float | None) -> None:
        """Copy audio packets whose time is ≤ t seconds (all of them when t is None)."""
        if self._audio_packets is None:
            return
        while True:
            packet = self._pending or next(self._audio_packets, None)
            self._pending = None
            if packet is None:
                self._audio_packets = None
                return
            if packet.dts is None:
                continue
            if t is not None and packet.pts is not None and packet.pts * packet.time_base > t:
                self._pending = packet
                return
            packet.stream = self._audio_out
            self._out.mux(packet)

    def write(self, image: np.ndarray) -> None:
        frame = av.VideoFrame.from_ndarray(image, format="bgr24")
        frame.pts = self.frames
        frame.time_base = 1 / self.fps
        self._out.mux(self._video.encode(frame))
        self.frames += 1
        self._mux_audio_until(self.frames / float(self.fps))

    def close(self, complete: bool = True) -> None:
        """Flush the encoder and rename into place. `complete=False`: audio only up to the last frame."""
        if self._closed:
            return
        self._closed = True
        self._out.mux(self._video.encode())
        self._mux_audio_until(None if complete else self.frames / float(self.fps))
        self._out.close()
        if self._audio_in is not None:
            self._audio_in.close()
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        """Give up: close and delete the temporary file, leaving nothing under the final name."""
        if self._closed:
            return
        self._closed = True
        try:
            self._out.close()
        finally:
            self._tmp.unlink(missing_ok=True)
            if self._audio_in is not None:
                self._audio_in.close()


class WindowSink(Sink):
    """A preview window, driven from the thread that runs the runner (which must be the main thread).

    `q` or Esc, or the window's close button, asks the runner to stop.

    Raises:
        DeviceError: no display, not on the main thread, or a process whose X libraries clash (see
            `x11_clash`).
    """
    on_caller_thread = True
    _KEYS_THAT_STOP = (ord("q"), ord("Q"), 27)

    def __init__(self, title: str = "rtalign"):
        self.title = title
        # Qt aborts the whole process when it finds no display, so look before asking it
        if sys.platform.startswith("linux"):
            if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
                raise DeviceError("no display for a preview window; use --no-window (with --vcam or --serve)")
            clash = x11_clash()
            if clash:
                raise DeviceError(f"cannot open a preview window in this process: {clash}")
        if threading.current_thread() is not threading.main_thread():
            raise DeviceError("the preview window must be created and run from the main thread "
                              "(OpenCV's Qt and macOS windows work only there)")
        try:
            cv2.namedWindow(title, cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO)
        except cv2.error:
            raise DeviceError("cannot open a preview window; use --no-window (with --vcam or --serve)") from None
        self._closed = self._sized = False

    def write(self, image: np.ndarray) -> None:
        """Hand the frame to the toolkit; it is painted by the next `poll()`."""
        if self.wants_stop:
            return
        if not self._sized:  # a resizable window opens small: give it the picture's own size once
            cv2.resizeWindow(self.title, image.shape[1], image.shape[0])
            self._sized = True
        cv2.imshow(self.title, image)

    def poll(self) -> None:
        """Pump the window's events (painting included); a stop key or a closed window sets `wants_stop`."""
        key = cv2.pollKey()
        if key != -1 and key & 0xFF in self._KEYS_THAT_STOP:
            self.wants_stop = True
            return
        try:
            visible = cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) >= 1
        except cv2.error:  # Qt has already destroyed the closed window
            visible = False
        if not visible:
            self.wants_stop = True

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            cv2.destroyWindow(self.title)
            cv2.pollKey()  # let the toolkit actually take the window down
        except cv2.error:  # already closed by the user
            pass


def x11_clash() -> str | None:
    """Why OpenCV's Qt window would hang in this process, or None.

    Wheels bundle their own X libraries under hashed names. PyAV's copies of libxcb-shape/-shm/-xfixes
    carry the same names as OpenCV's but link to PyAV's private libxcb; whichever wheel loads first
    wins, so when `av` is imported before `cv2`, Qt talks to the X server through two libxcb copies
    and its window never appears. rtalign imports cv2 first; a host program must do the same.
    """
    cv2_libs = Path(cv2.__file__).resolve().parent.parent / "opencv_python.libs"
    if not cv2_libs.is_dir():
        return None
    ours = set(os.listdir(cv2_libs))
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split(None, 5)[-1].strip() for line in maps if "/" in line}
    except OSError:
        return None
    foreign = sorted(p for p in paths if os.path.basename(p) in ours and Path(p).parent.resolve() != cv2_libs.resolve())
    if not foreign:
        return None
    return (f"{foreign[0]} was loaded before OpenCV's own copy (a module such as 'av' was imported before "
            "'cv2'); import cv2 (or rtalign) first, or use --no-window with --serve")


class VirtualCameraSink(Sink):
    """Frames to a virtual camera (pyvirtualcam) that video-call apps can pick."""

    def __init__(self, size: tuple[int, int], fps: float):
        try:
            import pyvirtualcam
        except ImportError:
            raise DeviceError("--vcam needs pyvirtualcam: pip install 'rtalign[vcam]'") from None
        try:
            self._cam = pyvirtualcam.Camera(size[0], size[1], fps, fmt=pyvirtualcam.PixelFormat.BGR)
        except RuntimeError as e:
            raise DeviceError(f"no virtual camera device ({str(e).splitlines()[0]}). On Linux create one with "
                              "'sudo modprobe v4l2loopback devices=1 exclusive_caps=1'; on Windows and macOS "
                              "install OBS Studio and start its virtual camera once") from None
        log.info("virtual camera: %s", self._cam.device)
        self._closed = False

    def write(self, image: np.ndarray) -> None:
        self._cam.send(image)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._cam.close()


_PAGE = b"""<!doctype html><html><head><meta charset="utf-8"><title>rtalign</title>
<style>body{margin:0;background:#111;display:flex;height:100vh;align-items:center;justify-content:center}
img{max-width:100%;max-height:100%}</style></head><body><img src="/stream" alt="rtalign live"></body></html>"""


class MjpegServerSink(Sink):
    """Live preview over HTTP: `/` is a page showing the stream, `/stream` the MJPEG stream itself.

    JPEG encoding is skipped while nobody watches. Binds to loopback unless told otherwise.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 8080, quality: int = 80):
        self._cond = threading.Condition()
        self._jpeg: bytes | None = None
        self._seq = 0
        self.clients = 0
        self.quality = quality
        self._stopped = False
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                if self.path == "/":
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html; charset=utf-8")
                    self.send_header("Content-Length", str(len(_PAGE)))
                    self.end_headers()
                    self.wfile.write(_PAGE)
                elif self.path == "/stream":
                    sink._stream_to(self)
                else:
                    self.send_error(404)

        try:
            self._server = ThreadingHTTPServer((host, port), Handler)
        except OSError as e:
            raise DeviceError(f"cannot serve on {host}:{port}: {e.strerror}") from None
        self._server.daemon_threads = True
        self.address = self._server.server_address[:2]
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
        log.info("MJPEG preview on http://%s:%d/", *self.address)

    def _stream_to(self, handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        handler.send_header("Cache-Control", "no-cache")
        handler.end_headers()
        with self._cond:
            self.clients += 1
            seen = self._seq  # wait for the next frame: the first is encoded only once someone watches
        try:
            while True:
                with self._cond:
                    self._cond.wait_for(lambda: self._seq != seen or self._stopped, timeout=1.0)
                    if self._stopped:
                        return
                    if self._seq == seen:
                        continue
                    seen, jpeg = self._seq, self._jpeg
                handler.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: "
                                    + str(len(jpeg)).encode() + b"\r\n\r\n" + jpeg + b"\r\n")
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            pass
        finally:
            with self._cond:
                self.clients -= 1

    def write(self, image: np.ndarray) -> None:
        if self.clients == 0:
            return
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        with self._cond:
            self._jpeg, self._seq = buf.tobytes(), self._seq + 1
            self._cond.notify_all()

    def close(self) -> None:
        if self._stopped:
            return
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        self._server.shutdown()
        self._server.server_close()
