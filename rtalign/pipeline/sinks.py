"""Frame sinks: a video file (H.264 + the input's audio), a preview window, a virtual camera and
an MJPEG-over-HTTP preview. Each is a context manager with one method, `write(image)`; `close()`
is safe to call twice."""
from __future__ import annotations

import logging
import os
import re
import socket
import sys
import threading
from fractions import Fraction
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import av
import cv2
import numpy as np

from ..errors import DeviceError, InputError, reason, shown
from ..io_safety import move_into_place, partial_path, temp_path_for
from .sources import letterbox
from .timeline import Timeline

log = logging.getLogger(__name__)


class Sink:
    """What the runner expects of a sink: `write(image, timestamp)`, `poll()`, and two flags.

    `timestamp` is the frame's time in seconds (a file's presentation time, or seconds since a live
    source started); sinks that show frames as they come ignore it."""
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


#: FFmpeg's colour tags for what OpenCV's BGR → I420 conversion writes: the BT.601 (SMPTE 170M) matrix, limited range.
_BT601_MATRIX, _LIMITED_RANGE = 6, 1
#: Output extension → (video codec, audio codecs the container takes as they are (None: any), audio
#: codec to convert the others to).
VIDEO_FORMATS = {
    ".mp4": ("libx264", frozenset({"aac", "mp3", "alac", "opus", "flac", "ac3", "eac3"}), "aac"),
    ".mov": ("libx264", frozenset({"aac", "mp3", "alac", "ac3", "pcm_s16le", "pcm_s16be", "pcm_s24le"}), "aac"),
    ".mkv": ("libx264", None, "aac"),
    ".webm": ("libvpx-vp9", frozenset({"opus", "vorbis"}), "libopus"),
}
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo")


def check_video_output(dst) -> None:
    """Refuse, before any work, an output whose extension names no format rtalign writes."""
    suffix = Path(dst).suffix.lower()
    if suffix not in VIDEO_FORMATS:
        raise InputError(f"cannot write video as {suffix or 'a file without extension'} ({shown(dst)}); "
                         "supported: .mp4, .mov, .mkv (H.264), .webm (VP9)")


def _has_avx512() -> bool:
    """Whether this CPU runs AVX-512 (numpy's own runtime check: OpenCV's wheels do not expose theirs)."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__
    except ImportError:         # numpy 1.x
        from numpy.core._multiarray_umath import __cpu_features__
    return bool(__cpu_features__.get("AVX512F"))


#: x264's AVX-512 routines make its output differ from one encode to the next within a process (a batch
#: worker's second file came out different on every run; measured on an AMD EPYC, Zen 4): on CPUs that have
#: AVX-512, x264 is held to AVX2, at the same speed (codec-only FPS of a 720p clip, 5 alternating runs:
#: median 173.9 against 172.9).
_X264_CPU = {"x264-params": "asm=AVX2"} if _has_avx512() else {}


def _encoder_options(codec: str, preset: str, crf: int) -> dict:
    """x264's preset and CRF as they are (_X264_CPU: the same bytes on every run); for VP9 the preset picks
    cpu-used and CRF is scaled to 0-63."""
    if codec == "libx264":
        return {"preset": preset, "crf": str(crf), **_X264_CPU}
    speed = 8 - min(X264_PRESETS.index(preset), 8)
    return {"deadline": "good", "cpu-used": str(speed), "row-mt": "1", "crf": str(round(crf * 63 / 51)), "b": "0"}


def _codec_name(ctx) -> str:
    """The codec's own name ("mp3"), which containers accept or refuse, not its decoder's ("mp3float"). PyAV
    before 15 lacks `canonical_name` and gives the decoder's (MP3 is then converted, as before)."""
    return getattr(ctx.codec, "canonical_name", None) or ctx.name


class _Audio:
    """The audio of `src` (its main track, as players choose it), copied packet by packet into `out` (or
    converted when the container cannot take its codec), interleaved with the video as it advances, its
    times counted from `start` seconds as the video's are. A damaged audio track just ends early."""

    def __init__(self, src: str, out, allowed, fallback: str, start: float = 0.0):
        self._in = av.open(src, "r")
        try:
            stream = self._in.streams.best("audio")
            if stream is None:      # audio streams, none playable (an MPEG-TS audio PID that carries nothing)
                raise ValueError("no playable audio track")
            self._copy = allowed is None or _codec_name(stream.codec_context) in allowed
            if self._copy:
                self._stream = out.add_stream_from_template(stream)
            else:
                ctx = stream.codec_context
                rate = 48000 if fallback == "libopus" else ctx.sample_rate or 48000
                self._stream = out.add_stream(fallback, rate=rate)
                self._stream.layout = "mono" if ctx.channels == 1 else "stereo"
                log.warning("audio: %s cannot go into this container as it is; converted to %s", _codec_name(ctx),
                            fallback)
        except BaseException:
            self._in.close()
            raise
        self._packets = self._packets_of(stream)
        self._pending = None
        self._last_dts = None
        self._out = out
        self._start = start
        self._shift = round(start / stream.time_base) if stream.time_base else 0      # in the track's own unit

    def _packets_of(self, stream):
        """The track's packets, on the file's continuous timeline (see Timeline: where the clock can jump, every
        packet is read to move the audio as the video is moved)."""
        timeline = Timeline(self._in)
        if not timeline.active:
            yield from self._in.demux(stream)
            return
        for packet in self._in.demux():
            timeline.place(packet)
            if packet.stream is stream:
                yield packet

    def _next(self):
        packet, self._pending = self._pending or next(self._packets, None), None
        return packet

    def mux_until(self, t: float | None) -> None:
        """Write the audio whose time is ≤ t seconds (all that is left when t is None)."""
        try:
            while self._packets is not None:
                packet = self._next()
                if packet is None:
                    self._packets = None
                    break
                if packet.dts is None and packet.pts is None:
                    continue
                if t is not None and packet.pts is not None and packet.pts * packet.time_base - self._start > t:
                    self._pending = packet
                    return
                if packet.dts is not None:
                    if self._last_dts is not None and packet.dts <= self._last_dts:
                        # overlaps the audio before a join (Timeline) by a few ms: moved just after it (muxers take
                        # no step back), as FFmpeg's tools do
                        shift = self._last_dts + 1 - packet.dts
                        packet.dts += shift
                        if packet.pts is not None:
                            packet.pts += shift
                    self._last_dts = packet.dts
                if self._copy:
                    packet.stream = self._stream
                    self._out.mux(self._moved(packet))
                else:
                    for frame in packet.decode():
                        self._out.mux(self._stream.encode(self._moved(frame)))
        except (av.error.FFmpegError, ValueError) as e:
            log.warning("audio ends early: %s", reason(e))
            self._packets = None

    def _moved(self, item):
        """A packet or decoded frame with its times counted from the start."""
        if self._shift:
            for key in ("pts", "dts") if isinstance(item, av.Packet) else ("pts",):
                if getattr(item, key) is not None:
                    setattr(item, key, getattr(item, key) - self._shift)
        return item

    def finish(self) -> None:
        """Flush a converting encoder (a copy has nothing buffered)."""
        if not self._copy:
            self._out.mux(self._stream.encode())

    def close(self) -> None:
        self._in.close()


class VideoFileSink(Sink):
    """A video file by its extension (see VIDEO_FORMATS), with the audio of `audio_from` kept in sync.

    Each frame is written at the time it is given (its input's presentation time, counted from `start`:
    a camcorder's MPEG-TS clip that starts hours into its clock plays from 0, not after an empty stretch of
    that length), so a variable frame rate stays variable; without times, frames follow each other at
    exactly `fps`. The colours are tagged as what they are (BT.601 matrix, limited range: OpenCV's
    conversion): untagged, players read HD video with BT.709's matrix and shift its colours. Odd frame
    sizes are padded by one replicated pixel (4:2:0 video needs even sides) and say so in the log.
    Written under a temporary name beside `path`: `close()` renames it to `path`, `close(partial=True)`
    to `OUT.partial.EXT` (a finished file is never replaced by a partial one), `abort()` removes it.
    """

    def __init__(self, path, size: tuple[int, int], fps: Fraction, audio_from: str | None = None,
                 preset: str = "veryfast", crf: int = 20, time_base: Fraction | None = None, start: float = 0.0):
        check_video_output(path)
        if preset not in X264_PRESETS:
            raise InputError(f"unknown preset {preset!r}; choose one of {', '.join(X264_PRESETS)}")
        self.path = Path(path)
        codec, allowed, audio_fallback = VIDEO_FORMATS[self.path.suffix.lower()]
        self.fps = Fraction(fps)
        self.time_base = Fraction(time_base or 1 / self.fps)
        self.start = start
        self.size = tuple(size)
        w, h = self.size
        self._pad = (w % 2, h % 2)
        if any(self._pad):
            log.warning("frame size %dx%d is odd: %s is padded to %dx%d (4:2:0 video needs even sides)",
                        w, h, shown(self.path), w + w % 2, h + h % 2)
        self._tmp = temp_path_for(self.path)
        self._out = self._audio = None
        try:
            # bitexact: no random ids (Matroska's segment UID), so the same input always gives the same bytes
            self._out = av.open(str(self._tmp), "w", container_options={"fflags": "+bitexact"})
            self._video = self._out.add_stream(codec, rate=self.fps)
            self._video.width, self._video.height = w + self._pad[0], h + self._pad[1]
            self._video.pix_fmt = "yuv420p"
            self._video.codec_context.colorspace = _BT601_MATRIX
            self._video.codec_context.color_range = _LIMITED_RANGE
            self._video.codec_context.time_base = self.time_base
            self._video.time_base = self.time_base
            self._video.options = _encoder_options(codec, preset, crf)
            if audio_from:
                self._audio = self._open_audio(audio_from, allowed, audio_fallback, start)
        except BaseException as e:
            self._discard()
            if isinstance(e, (av.error.FFmpegError, ValueError)):
                raise InputError(f"cannot write video {shown(path)}: {reason(e)}") from None
            raise
        self.frames = 0
        self._last_pts = None
        self._last_t = 0.0
        self._closed = False

    def _open_audio(self, src: str, allowed, fallback: str, start: float):
        """The input's audio track, or None (with a warning) when it cannot be read: the video still gets made."""
        try:
            return _Audio(src, self._out, allowed, fallback, start)
        except (av.error.FFmpegError, ValueError) as e:
            log.warning("%s: audio left out (%s)", shown(self.path), reason(e))
            return None

    def __exit__(self, exc_type, *exc):
        self.abort() if exc_type else self.close()

    def _failed(self, e: Exception):
        self.abort()
        return InputError(f"cannot write video {shown(self.path)}: {reason(e)}")

    def write(self, image: np.ndarray, timestamp: float | None = None) -> None:
        """Encode one BGR frame shown at `timestamp` seconds (default: the next frame at `fps`)."""
        image = letterbox(image, self.size)     # frames of another size (a stream that changed size mid-way)
        if any(self._pad):
            image = cv2.copyMakeBorder(image, 0, self._pad[1], 0, self._pad[0], cv2.BORDER_REPLICATE)
        t = self.frames / float(self.fps) if timestamp is None else timestamp - self.start
        pts = round(t / self.time_base)
        if self._last_pts is not None and pts <= self._last_pts:   # times must increase: nudge, never reorder
            pts = self._last_pts + 1
        # BGR → YUV 4:2:0 (BT.601, as FFmpeg's default) in OpenCV, not in the encoder's own swscale
        # conversion: about 2 ms less CPU a 720p frame (`rtalign video` on a 90-frame clip, measured here)
        frame = av.VideoFrame.from_ndarray(cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420), format="yuv420p")
        frame.pts, frame.time_base = pts, self.time_base
        try:
            self._out.mux(self._video.encode(frame))
            self._last_pts, self._last_t = pts, float(pts * self.time_base)
            self.frames += 1
            if self._audio:
                self._audio.mux_until(self._last_t)
        except (av.error.FFmpegError, ValueError) as e:
            raise self._failed(e) from None

    def close(self, partial: bool = False) -> Path | None:
        """Flush and rename into place; returns where the file went (None if there was nothing to keep).

        partial=True: the run did not finish; audio stops with the last frame and the file goes to
        OUT.partial.EXT, so an existing OUT is never replaced by it."""
        if self._closed:
            return None
        if partial and self.frames == 0:
            self.abort()
            return None
        try:
            self._out.mux(self._video.encode())
            if self._audio:
                self._audio.mux_until(self._last_t + 1 / float(self.fps) if partial else None)
                self._audio.finish()
            self._out.close()
        except (av.error.FFmpegError, ValueError) as e:
            raise self._failed(e) from None
        self._closed = True
        if self._audio:
            self._audio.close()
        final = partial_path(self.path) if partial else self.path
        move_into_place(self._tmp, final)
        return final

    def _discard(self) -> None:
        for thing in (self._out, self._audio):
            if thing is not None:
                try:
                    thing.close()
                except (av.error.FFmpegError, ValueError, OSError):
                    pass
        self._tmp.unlink(missing_ok=True)

    def abort(self) -> None:
        """Give up: close and delete the temporary file, leaving nothing under the final name."""
        if not getattr(self, "_closed", False):
            self._closed = True
            self._discard()


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
            display = os.environ.get("DISPLAY")
            asked = os.environ.get("QT_QPA_PLATFORM")
            if asked and not any(_qt_has(name.split(":")[0]) for name in asked.split(";")):
                raise DeviceError(f"QT_QPA_PLATFORM={asked}, but this OpenCV's Qt has only "
                                  f"{', '.join(_qt_platforms())}: unset it, or use --no-window (with --vcam or --serve)")
            if not asked and not display and not _qt_has("wayland"):
                raise DeviceError("a Wayland session without an X display (no DISPLAY): this OpenCV's window "
                                  "needs X11 (XWayland); use --no-window (with --vcam or --serve)")
            why = unreachable_display(display) if display else None
            if why:
                raise DeviceError(f"cannot reach the display {display} ({why}); use --no-window "
                                  "(with --vcam or --serve)")
        if threading.current_thread() is not threading.main_thread():
            raise DeviceError("the preview window must be created and run from the main thread "
                              "(OpenCV's Qt and macOS windows work only there)")
        try:    # no Qt tool and status bars: they took their height from the picture, shown scaled down
            cv2.namedWindow(title, cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO | cv2.WINDOW_GUI_NORMAL)
        except cv2.error:
            raise DeviceError("cannot open a preview window; use --no-window (with --vcam or --serve)") from None
        self._closed = self._sized = False

    def write(self, image: np.ndarray, timestamp: float | None = None) -> None:
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


def _qt_platforms() -> list[str] | None:
    """The platform plugins of the Qt that OpenCV's wheel bundles ("xcb": the wheels ship it alone), None for
    an OpenCV without a bundled Qt (a system build: its Qt is not ours to inspect)."""
    folder = Path(cv2.__file__).parent / "qt" / "plugins" / "platforms"
    if not folder.is_dir():
        return None
    return sorted(p.name.removeprefix("libq").split(".")[0] for p in folder.iterdir() if p.name.startswith("libq"))


def _qt_has(name: str) -> bool:
    """Whether Qt can run on the platform `name` ("wayland" is any of its "wayland-*" plugins): Qt aborts the
    whole process when it cannot, so look before asking it."""
    platforms = _qt_platforms()
    return platforms is None or any(p == name or p.startswith(name + "-") for p in platforms)


def unreachable_display(display: str) -> str | None:
    """Why no X server answers at `display` ([host]:N[.S]), None when one does or when the name has another
    form. Qt aborts the whole process on a display it cannot reach (a stale `ssh -X` DISPLAY): look first."""
    m = re.fullmatch(r"(?:unix|([^:/]*)):(\d+)(?:\.\d+)?", display)
    if not m:
        return None
    host, number = m.group(1), int(m.group(2))
    try:
        if host:
            socket.create_connection((host, 6000 + number), timeout=2).close()
            return None
        path = f"/tmp/.X11-unix/X{number}"
        for address in ("\0" + path, path):       # Linux's abstract socket first, as Xlib tries them
            with socket.socket(socket.AF_UNIX) as sock:
                sock.settimeout(2)
                try:
                    sock.connect(address)
                    return None
                except OSError as e:
                    last = e
        return f"no X server at {path}: {last.strerror or last}"
    except OSError as e:
        return e.strerror or str(e)


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

    def write(self, image: np.ndarray, timestamp: float | None = None) -> None:
        self._cam.send(image)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._cam.close()


_PAGE = b"""<!doctype html><html><head><meta charset="utf-8"><title>rtalign</title>
<style>body{margin:0;background:#111;display:flex;height:100vh;align-items:center;justify-content:center}
img{max-width:100%;max-height:100%}</style></head><body><img src="/stream" alt="rtalign live"></body></html>"""


#: Seconds a preview client may take to send its request, or stop reading (during the stream), before its
#: connection is closed: idle or trickling connections otherwise each held a thread for good.
CLIENT_TIMEOUT_S = 10.0


class _PreviewServer(ThreadingHTTPServer):
    """The preview's HTTP server. A listen queue of 64, not 5: a burst of viewers connecting at once was
    made to wait a second each. A viewer that drops its connection is no error: the standard server
    printed a traceback for each."""
    request_queue_size = 64
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        error = sys.exc_info()[1]
        if not isinstance(error, (ConnectionError, TimeoutError)):
            log.warning("preview client %s: %s", client_address[0], error)


class _PreviewServer6(_PreviewServer):
    """The same server on an IPv6 address (`[::1]:8080`): the standard one binds IPv4 only."""
    address_family = socket.AF_INET6


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
            timeout = CLIENT_TIMEOUT_S

            def handle_one_request(self):
                """A request must be complete within CLIENT_TIMEOUT_S: the socket's timeout alone is per read,
                so a client trickling a byte at a time held a thread for good."""
                self._deadline = threading.Timer(CLIENT_TIMEOUT_S, self._hang_up)
                self._deadline.start()
                try:
                    super().handle_one_request()
                finally:
                    self._deadline.cancel()

            def parse_request(self):
                parsed = super().parse_request()       # reads the headers too
                self._deadline.cancel()
                return parsed

            def _hang_up(self):
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:     # already gone
                    pass

            def log_message(self, *args):
                pass

            def do_GET(self):
                self._answer(body=True)

            def do_HEAD(self):
                self._answer(body=False)

            def _answer(self, body: bool):
                path = urlsplit(self.path).path      # viewers add ?t=… to get past caches
                if path == "/":
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html; charset=utf-8")
                    self.send_header("Content-Length", str(len(_PAGE)))
                    self.end_headers()
                    if body:
                        self.wfile.write(_PAGE)
                elif path == "/stream":
                    sink._stream_to(self, body)
                else:
                    self.send_error(404)

        try:
            server_class = _PreviewServer6 if ":" in host else _PreviewServer
            self._server = server_class((host, port), Handler)
        except OSError as e:
            raise DeviceError(f"cannot serve on {host}:{port}: {e.strerror}") from None
        self.address = self._server.server_address[:2]
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
        log.info("MJPEG preview on http://%s:%d/", *self.address)

    def _stream_to(self, handler: BaseHTTPRequestHandler, body: bool = True) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        handler.send_header("Cache-Control", "no-cache")
        handler.end_headers()
        if not body:
            return
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

    def write(self, image: np.ndarray, timestamp: float | None = None) -> None:
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
