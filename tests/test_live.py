"""The live path: a file played as a camera, the MJPEG preview over real HTTP, the virtual camera."""
import socket
import struct
import threading
import time
import urllib.request
from fractions import Fraction

import av
import cv2
import numpy as np
import pytest

from rtalign.errors import DeviceError
from rtalign.pipeline import build_tracker, run_live
from rtalign.pipeline.sinks import MjpegServerSink, VirtualCameraSink
from rtalign.pipeline.sources import CameraSource, LiveFileSource, SourceMode


def test_a_file_played_as_a_camera_runs_in_real_time(face_clip):
    source = LiveFileSource(str(face_clip))
    assert source.mode is SourceMode.LIVE
    stats = run_live(str(face_clip), tracker=build_tracker("cnn"), window=False)
    assert stats.frames_in == 45
    assert stats.frames_out + stats.dropped >= 45 - 2
    assert stats.frames_with_faces >= stats.frames_out - 1
    assert 1.2 < stats.wall_s < 4.0                  # 1.5 s of video, paced at its frame rate
    assert len(stats.latency_ms) == stats.frames_out


def test_mjpeg_server_serves_a_page_and_a_real_stream():
    sink = MjpegServerSink("127.0.0.1", 0)
    host, port = sink.address
    try:
        page = urllib.request.urlopen(f"http://{host}:{port}/", timeout=5).read().decode()
        assert '<img src="/stream"' in page
        frame = np.zeros((120, 160, 3), np.uint8)
        frame[:, :80] = (0, 0, 255)
        stop = threading.Event()

        def feed():
            while not stop.is_set():
                sink.write(frame)
                stop.wait(0.02)
        threading.Thread(target=feed, daemon=True).start()
        with urllib.request.urlopen(f"http://{host}:{port}/stream", timeout=5) as resp:
            assert resp.headers["Content-Type"].startswith("multipart/x-mixed-replace")
            data = b""
            while data.count(b"\xff\xd9") < 2:
                chunk = resp.read1(65536)
                assert chunk, "stream ended early"
                data += chunk
        stop.set()
        start = data.index(b"\xff\xd8")
        jpeg = data[start:data.index(b"\xff\xd9", start) + 2]
        decoded = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert decoded.shape == frame.shape
        assert decoded[60, 20, 2] > 200 and decoded[60, 140, 2] < 50      # red left half survived
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(f"http://{host}:{port}/nothing", timeout=5)
    finally:
        sink.close()
        sink.close()                                   # safe twice


def test_port_in_use_is_a_clear_error():
    first = MjpegServerSink("127.0.0.1", 0)
    try:
        with pytest.raises(DeviceError, match="cannot serve on 127.0.0.1"):
            MjpegServerSink("127.0.0.1", first.address[1])
    finally:
        first.close()


def test_a_live_run_that_cannot_start_leaves_an_existing_landmarks_file_as_it_was(face_clip, tmp_path):
    """Its rows go to FILE however a run stops; but one that never ran (a busy port, no display) moved an
    empty table over the user's file."""
    table = tmp_path / "mine.csv"
    table.write_text("the user's own data\n")
    first = MjpegServerSink("127.0.0.1", 0)
    try:
        with pytest.raises(DeviceError, match="cannot serve on 127.0.0.1"):
            run_live(str(face_clip), tracker=build_tracker("cnn"), window=False, landmarks=table,
                     serve=("127.0.0.1", first.address[1]))
    finally:
        first.close()
    assert table.read_text() == "the user's own data\n" and sorted(p.name for p in tmp_path.iterdir()) == ["mine.csv"]


def test_virtual_camera_missing_says_how_to_get_one():
    """This machine has neither pyvirtualcam's device nor v4l2loopback: the message must say what to do."""
    with pytest.raises(DeviceError) as e:
        VirtualCameraSink((640, 360), 30.0)
    assert "pip install" in str(e.value) or "modprobe v4l2loopback" in str(e.value)


def test_no_camera_at_index():
    with pytest.raises(DeviceError, match="no camera at index 7"):
        CameraSource(7)


def test_a_camera_index_beyond_a_c_int_is_no_camera():
    with pytest.raises(DeviceError, match="no camera at index 2147483648"):       # was a cv2.error traceback
        CameraSource(2 ** 31)


@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="display detection is for Linux")
def test_a_display_nobody_answers_on_is_a_clear_error_not_an_abort(monkeypatch):
    """A stale `ssh -X` DISPLAY: Qt aborted the process (exit 134, a hidden temporary file left)."""
    from rtalign.pipeline.sinks import WindowSink
    free = next(n for n in range(400, 500) if not __import__("os").path.exists(f"/tmp/.X11-unix/X{n}"))
    monkeypatch.setenv("DISPLAY", f":{free}")
    with pytest.raises(DeviceError, match=rf"cannot reach the display :{free} \(no X server at .*--no-window"):
        WindowSink()


@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="display detection is for Linux")
def test_a_wayland_session_without_an_x_display_is_a_clear_error_not_an_abort(monkeypatch):
    from rtalign.pipeline import sinks
    if sinks._qt_has("wayland"):
        pytest.skip("this OpenCV's Qt can draw on Wayland")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-0")
    with pytest.raises(DeviceError, match=r"Wayland session without an X display .*--no-window"):
        sinks.WindowSink()
    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.setenv("QT_QPA_PLATFORM", "wayland;wayland-egl")             # Sway's setting: same abort
    with pytest.raises(DeviceError, match=r"QT_QPA_PLATFORM=wayland;wayland-egl, but this OpenCV's Qt has only xcb"):
        sinks.WindowSink()


def test_a_live_run_never_writes_its_landmarks_over_the_file_it_plays(face_clip, tmp_path):
    from rtalign.errors import InputError
    clip = tmp_path / "clip.csv"
    clip.write_bytes(face_clip.read_bytes())
    with pytest.raises(InputError, match="is the input file"):
        run_live(str(clip), tracker=build_tracker("cnn"), window=False, landmarks=clip)
    assert clip.read_bytes() == face_clip.read_bytes()


def test_a_live_run_however_it_ends_leaves_its_rows_in_the_landmarks_file(face_clip, tmp_path):
    """A second Ctrl-C reaches the run as an exception of the command's own (not an Exception): the rows done
    were deleted, though a live run's rows always go to FILE."""
    from rtalign.export import read_landmarks

    class Stopped(BaseException):
        pass

    def stop_at_the_twentieth(stats):
        if stats.frames_out == 20:
            raise Stopped
    table = tmp_path / "live.csv"
    with pytest.raises(Stopped):
        run_live(str(face_clip), tracker=build_tracker("cnn"), window=False, landmarks=table,
                 on_frame=stop_at_the_twentieth)
    assert len(set(read_landmarks(table)["frame"])) >= 10 and not list(tmp_path.glob(".*"))


def test_a_window_without_a_display_is_a_clear_error(monkeypatch):
    from rtalign.pipeline.sinks import WindowSink
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    if not __import__("sys").platform.startswith("linux"):
        pytest.skip("display detection is for Linux")
    with pytest.raises(DeviceError, match="--no-window"):
        WindowSink()


def test_mjpeg_server_on_an_ipv6_address():
    try:
        sink = MjpegServerSink("::1", 0)
    except DeviceError as e:
        pytest.skip(f"no IPv6 loopback here: {e}")
    try:
        page = urllib.request.urlopen(f"http://[::1]:{sink.address[1]}/", timeout=5).read().decode()
        assert '<img src="/stream"' in page
    finally:
        sink.close()


def _feeding(sink, stop):
    frame = np.zeros((120, 160, 3), np.uint8)
    while not stop.is_set():
        sink.write(frame)
        stop.wait(0.02)


def test_mjpeg_server_takes_query_strings_and_head_requests():
    sink = MjpegServerSink("127.0.0.1", 0)
    url = "http://%s:%d" % sink.address
    stop = threading.Event()
    threading.Thread(target=_feeding, args=(sink, stop), daemon=True).start()
    try:
        assert '<img src="/stream"' in urllib.request.urlopen(f"{url}/?x=1", timeout=5).read().decode()
        with urllib.request.urlopen(f"{url}/stream?t=123", timeout=5) as resp:    # a viewer's cache-buster
            assert resp.headers["Content-Type"].startswith("multipart/x-mixed-replace")
            assert b"\xff\xd8" in resp.read1(65536) + resp.read1(65536)
        for path, kind in (("/", "text/html"), ("/stream", "multipart/x-mixed-replace")):
            with urllib.request.urlopen(urllib.request.Request(url + path, method="HEAD"), timeout=5) as resp:
                assert resp.status == 200 and resp.headers["Content-Type"].startswith(kind)
                assert resp.read() == b""
    finally:
        stop.set()
        sink.close()


def test_viewers_that_reset_their_connection_print_nothing(capfd):
    sink = MjpegServerSink("127.0.0.1", 0)
    stop = threading.Event()
    threading.Thread(target=_feeding, args=(sink, stop), daemon=True).start()
    try:
        for k in range(40):
            s = socket.create_connection(sink.address, timeout=5)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))    # close = reset
            s.sendall(f"GET {'/stream' if k % 2 else '/'} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            if k % 4 == 3:
                s.recv(100)
            s.close()
        time.sleep(0.5)
    finally:
        stop.set()
        sink.close()
    assert capfd.readouterr().err == ""


def test_a_connection_that_never_sends_a_request_is_closed(monkeypatch):
    import rtalign.pipeline.sinks as sinks
    monkeypatch.setattr(sinks, "CLIENT_TIMEOUT_S", 0.3)
    sink = MjpegServerSink("127.0.0.1", 0)
    try:
        idle = [socket.create_connection(sink.address, timeout=5) for _ in range(5)]
        for s in idle:
            assert s.recv(100) == b""                      # the server hung up on it
            s.close()
    finally:
        sink.close()


@pytest.mark.parametrize("at_once", [b"", b"GET / HTTP/1.1\r\n"])
def test_a_connection_that_trickles_its_request_is_closed(monkeypatch, at_once):
    """Its request line, or its headers after a whole request line (they are read after it)."""
    import rtalign.pipeline.sinks as sinks
    monkeypatch.setattr(sinks, "CLIENT_TIMEOUT_S", 0.5)
    sink = MjpegServerSink("127.0.0.1", 0)
    try:
        with socket.create_connection(sink.address, timeout=5) as s:
            s.sendall(at_once)
            t0 = time.monotonic()
            with pytest.raises(OSError):            # a byte every 0.2 s: each read is within the timeout
                for byte in (b"GET / HTTP/1.1\r\nHost: x" if not at_once else b"Host: x") + b"y" * 100:
                    s.sendall(bytes([byte]))
                    time.sleep(0.2)
                    if time.monotonic() - t0 > 5:
                        break
            assert time.monotonic() - t0 < 2
            assert s.recv(100) == b""                      # the server hung up on it
    finally:
        sink.close()


def _timed_clip(path, times_s, fmt=None):
    """A small H.264 clip whose frames have exactly these times."""
    with av.open(str(path), "w", format=fmt) as out:
        video = out.add_stream("libx264", rate=30)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        video.time_base = Fraction(1, 90000)
        for t in times_s:
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 128, np.uint8), format="bgr24")
            frame.pts, frame.time_base = round(t * 90000), video.time_base
            out.mux(video.encode(frame))
        out.mux(video.encode())


def _played(path) -> tuple[int, float]:
    source = LiveFileSource(str(path))
    t0 = time.perf_counter()
    try:
        n = sum(1 for _ in source)
    finally:
        source.close()
    return n, time.perf_counter() - t0


def test_a_file_played_live_paces_afresh_after_a_jump_in_its_times(tmp_path):
    """A paused recording (a minute with no frames) must not be slept through: a stop would wait that long.
    Two recordings joined end to end (times go back) must still play in real time, not all at once."""
    _timed_clip(tmp_path / "gap.mkv", [k / 30 for k in range(10)] + [60 + k / 30 for k in range(10)])
    n, seconds = _played(tmp_path / "gap.mkv")
    assert n == 20 and seconds < 5
    _timed_clip(tmp_path / "one.ts", [k / 30 for k in range(10)], fmt="mpegts")
    (tmp_path / "twice.ts").write_bytes((tmp_path / "one.ts").read_bytes() * 2)
    n, seconds = _played(tmp_path / "twice.ts")
    assert n == 20 and seconds >= 18 / 30          # every frame after the first at its own pace


def _stalling_server(clip, folder):
    """An HTTP server (started, with its URL) that sends the first 40 % of `clip` as MPEG-TS, then nothing:
    a camera's stream that hung."""
    import http.server
    ts = folder / "face.ts"
    with av.open(str(clip)) as src, av.open(str(ts), "w", format="mpegts") as dst:
        out = dst.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(video=0):
            if packet.dts is not None:
                packet.stream = out
                dst.mux(packet)
    data = ts.read_bytes()

    class Stalling(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "video/mp2t")
            self.end_headers()
            self.wfile.write(data[: len(data) * 2 // 5])
            self.wfile.flush()
            time.sleep(5)

        def log_message(self, *args):
            pass
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Stalling)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}/x.ts"


def test_a_stream_that_stops_sending_ends_with_a_warning_not_silently(face_clip, tmp_path, monkeypatch, caplog):
    """A stream URL that stalls mid-way: the live run ended after the read timeout with exit 0 and not a word."""
    from rtalign.pipeline import sources
    server, url = _stalling_server(face_clip, tmp_path)
    monkeypatch.setattr(sources, "URL_TIMEOUT_S", 1.0)
    try:
        stats = run_live(url, tracker=build_tracker("cnn"), window=False)
    finally:
        server.shutdown()
    assert stats.frames_in > 5 and "x.ts ended early: no data for 1 s" in caplog.text


def test_closing_a_source_while_a_thread_waits_in_its_read_leaves_it_to_that_read(face_clip):
    """A second Ctrl-C gives up on a stage stuck in a read (a stream that stopped sending); its caller then
    closes the source: "generator already executing" came out as a traceback (and freeing the container
    under the read would crash)."""
    import inspect
    from rtalign.pipeline.sources import VideoFileSource
    source = VideoFileSource(str(face_clip))
    data_comes = threading.Event()

    def stuck_read():
        data_comes.wait(10)
        yield from ()
    source._decoder = reads = stuck_read()
    reader = threading.Thread(target=lambda: next(reads, None), daemon=True)
    reader.start()
    while inspect.getgeneratorstate(reads) != inspect.GEN_RUNNING:
        time.sleep(0.01)
    source.close()
    assert reader.is_alive()
    data_comes.set()
    reader.join(5)

