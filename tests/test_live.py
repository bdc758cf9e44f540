"""The live path: a file played as a camera, the MJPEG preview over real HTTP, the virtual camera."""
import threading
import urllib.request

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


def test_virtual_camera_missing_says_how_to_get_one():
    """This machine has neither pyvirtualcam's device nor v4l2loopback: the message must say what to do."""
    with pytest.raises(DeviceError) as e:
        VirtualCameraSink((640, 360), 30.0)
    assert "pip install" in str(e.value) or "modprobe v4l2loopback" in str(e.value)


def test_no_camera_at_index():
    with pytest.raises(DeviceError, match="no camera at index 7"):
        CameraSource(7)


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
