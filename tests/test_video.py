"""`rtalign video` end to end on generated clips: counts, rate, audio, landmarks, and every failure mode."""
import shutil
import signal
import subprocess
import sys
import time
from fractions import Fraction

import av
import pytest
from helpers import assert_clean_error, run_cli as run
from hostile_sweep import audio_only_file
from rtalign.pipeline import build_tracker, process_video
from rtalign.synth import ASSET, demo_clip


def probe(path):
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        n = sum(1 for _ in c.decode(v))
        return n, v.average_rate, len(c.streams.audio), v.codec_context.name


def test_output_keeps_frame_count_rate_and_audio_and_every_frame_has_a_face(face_clip, tmp_path):
    out = tmp_path / "out.mp4"
    stats = process_video(face_clip, out, tracker=build_tracker("resnet"), draw="mesh")
    n, rate, n_audio, codec = probe(out)
    assert (n, rate, n_audio, codec) == (45, 30, 1, "h264")
    assert stats.frames_with_faces == 45
    assert stats.detector_runs <= 0.1 * 45 + 1
    assert not list(tmp_path.glob(".out*"))             # no temporary file left behind


def test_cli_video_with_lip_colour_and_stats(face_clip, tmp_path):
    out = tmp_path / "lips.mkv"
    result = run("video", face_clip, out, "--lip-color", "crimson", "--stats", "--smooth", "none", "--model", "cnn")
    assert result.exit_code == 0, result.output
    assert "45 frames" in result.output and "per-stage median ms" in result.output
    assert probe(out)[:3] == (45, 30, 1)


def test_a_non_integer_frame_rate_is_kept_exactly(tmp_path):
    clip = tmp_path / "ntsc.mp4"
    demo_clip(clip, n_frames=12, size=(320, 240), fps=30000 / 1001, audio=False)
    out = tmp_path / "o.mp4"
    process_video(clip, out, tracker=build_tracker("cnn"))
    n, rate, n_audio, _ = probe(out)
    assert (n, n_audio) == (12, 0)
    assert rate == Fraction(30000, 1001)


def test_missing_input(tmp_path):
    assert_clean_error(run("video", tmp_path / "none.mp4", tmp_path / "o.mp4"), "no such file")


def test_not_a_video(tmp_path):
    fake = tmp_path / "fake.mp4"
    fake.write_text("definitely not a video")
    assert_clean_error(run("video", fake, tmp_path / "o.mp4"), "cannot read video")
    assert not (tmp_path / "o.mp4").exists()


def test_truncated_video_is_refused_and_leaves_nothing(face_clip, tmp_path):
    cut = tmp_path / "cut.mp4"
    data = face_clip.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    assert_clean_error(run("video", cut, tmp_path / "o.mp4"), "cannot read video|corrupt")
    assert not (tmp_path / "o.mp4").exists()
    assert cut.read_bytes() == data[: len(data) // 2]


def test_audio_only_file_has_no_video_stream(tmp_path):
    path = tmp_path / "tone.m4a"
    audio_only_file(path)
    assert_clean_error(run("video", path, tmp_path / "o.mp4"), "has no video stream")


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="the ffmpeg command is not installed")
@pytest.mark.parametrize("ext, cover", [(".m4a", ["-i", ASSET, "-map", "0:a", "-map", "1", "-disposition:v:0", "attached_pic"]),
                                        (".mkv", ["-map", "0:a", "-attach", ASSET, "-metadata:s:t", "mimetype=image/jpeg"])])
def test_a_song_with_its_cover_picture_has_no_video_stream(tmp_path, ext, cover):
    """The cover is a video stream of one picture (attached_pic): it was read as a 90,000 fps video, said to be
    truncated, and left OUT.partial.mp4."""
    tone, song = tmp_path / "tone.m4a", tmp_path / f"song{ext}"
    audio_only_file(tone)
    subprocess.run(["ffmpeg", "-v", "error", "-i", tone, *cover, "-c", "copy", song], check=True)
    assert_clean_error(run("video", song, tmp_path / "o.mp4"), r"has no video stream \(only a cover picture\)")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([tone.name, song.name])


def test_zero_frames(tmp_path):
    empty = tmp_path / "empty.mp4"
    out = av.open(str(empty), "w")
    v = out.add_stream("libx264", rate=30)
    v.width, v.height, v.pix_fmt = 64, 64, "yuv420p"
    out.start_encoding()
    out.close()
    # FFmpeg drops a video track without samples, so this reads as "no video stream"
    assert_clean_error(run("video", empty, tmp_path / "o.mp4"), "no video stream|no frames")
    assert not (tmp_path / "o.mp4").exists()


def test_output_equal_to_input_and_unwritable_output(face_clip, tmp_path):
    before = face_clip.read_bytes()
    assert_clean_error(run("video", face_clip, face_clip), "is the input")
    assert face_clip.read_bytes() == before
    assert_clean_error(run("video", face_clip, tmp_path / "no" / "such" / "dir.mp4"), "output folder does not exist", exit_code=2)


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory):
    clip = tmp_path_factory.mktemp("long") / "long.mp4"
    demo_clip(clip, n_frames=900, size=(640, 360), audio=True)
    return clip


@pytest.mark.parametrize("signum,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_a_signal_stops_quickly_and_leaves_a_playable_partial_beside_an_untouched_output(long_clip, tmp_path,
                                                                                      signum, code):
    out = tmp_path / "out.mp4"
    out.write_bytes(b"an earlier, finished result")
    proc = subprocess.Popen([sys.executable, "-m", "rtalign.cli", "video", str(long_clip), str(out), "--model", "cnn"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 30
    while not list(tmp_path.glob(".out.*")) and time.time() < deadline:   # the sink has opened
        time.sleep(0.05)
    time.sleep(1.0)                                   # some frames written
    assert proc.poll() is None, proc.communicate()
    t0 = time.perf_counter()
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=10)
    assert time.perf_counter() - t0 < 1.5
    partial = tmp_path / "out.partial.mp4"
    assert proc.returncode == code and f"in {partial}" in err, err
    assert out.read_bytes() == b"an earlier, finished result"
    n, rate, n_audio, _ = probe(partial)
    assert 0 < n < 900 and rate == 30 and n_audio == 1
    assert f"interrupted: {n} frames in {partial}" in err          # the count is the file's own
    with av.open(str(partial)) as c:                  # the audio stops with the last frame
        v_end = float(c.streams.video[0].duration * c.streams.video[0].time_base)
        a_end = float(c.streams.audio[0].duration * c.streams.audio[0].time_base)
    assert abs(a_end - v_end) < 0.1, (a_end, v_end)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4", "out.partial.mp4"]


def test_demo_command_runs_without_camera_or_data(tmp_path):
    out = tmp_path / "demo.mp4"
    result = run("demo", out, "--model", "cnn")
    assert result.exit_code == 0, result.output
    assert "150 frames, face found on 150" in result.output
    assert probe(out)[:3] == (150, 30, 1)
    assert "FPS" in result.output and "latency" not in result.output   # a file's queueing is not lag


def test_webcam_command_on_a_file_played_live(face_clip):
    import socket
    with socket.socket() as s:                            # a free port
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = run("webcam", "--camera", face_clip, "--no-window", "--stats", "--model", "cnn", "--lip-color", "red",
                 "--serve", f"127.0.0.1:{port}")
    assert result.exit_code == 0, result.output
    assert "latency p50" in result.output
    assert result.output.count(f"preview at http://127.0.0.1:{port}/") == 1


def test_a_photo_played_as_a_camera_says_to_use_the_image_command(astronaut_file, tmp_path, caplog):
    """Its one frame goes out before the background detector answers: the run must say why no face came."""
    csv = tmp_path / "points.csv"
    with caplog.at_level("WARNING", logger="rtalign.pipeline"):
        result = run("webcam", "--camera", astronaut_file, "--no-window", "--model", "cnn", "--landmarks", csv)
    assert result.exit_code == 0, result.output
    said = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(said) == 1 and "single frame" in said[0] and "rtalign image" in said[0], said
    assert len(csv.read_text().splitlines()) == 1                    # the header: no frame had a face


def test_a_clip_played_as_a_camera_gives_no_single_frame_warning(face_clip, caplog):
    with caplog.at_level("WARNING", logger="rtalign.pipeline"):
        result = run("webcam", "--camera", face_clip, "--no-window", "--model", "cnn")
    assert result.exit_code == 0, result.output
    assert not any("single frame" in r.getMessage() for r in caplog.records)


def test_webcam_errors(face_clip):
    assert_clean_error(run("webcam", "--camera", "7", "--no-window"), "no camera at index 7")
    result = run("webcam", "--camera", "7", "--no-window", "--serve", "127.0.0.1:8765")
    assert_clean_error(result, "no camera at index 7")
    assert "preview at" not in result.output              # no address for a preview that never started
    assert_clean_error(run("webcam", "--camera", face_clip, "--no-window", "--serve", "127.0.0.1:99999"), "HOST:PORT",
                       exit_code=2)


def test_a_face_after_a_faceless_stretch_gets_the_same_rows_on_every_run_however_busy_the_machine(tmp_path):
    """Searches go by frames (TrackerOptions.search_every), not by the clock: with a wall-clock budget an
    analysis at hundreds of frames a second skipped dozens of frames after a fade-in, a different number
    each run, sometimes all of them."""
    import numpy as np
    from rtalign.export import read_landmarks
    from rtalign.synth import asset_frames, smooth_similarity_path, write_clip
    face = [f for f, _ in asset_frames((480, 360), smooth_similarity_path(40, 1))]
    clip = tmp_path / "fade_in.mp4"
    write_clip(clip, [np.zeros_like(face[0])] * 4 + face[4:], audio=False)      # face from frame 4
    rows = []
    for run_ in range(3):
        out = tmp_path / f"rows{run_}.csv"
        result = run("video", clip, "--landmarks", out, "--model", "cnn")
        assert result.exit_code == 0, result.output
        rows.append(read_landmarks(out))
    frames = sorted(set(rows[0]["frame"].tolist()))
    assert frames[0] <= 4 + 2 and frames == list(range(frames[0], 40))   # found within 2 frames, then every one
    for other in rows[1:]:
        assert other["frame"].tolist() == rows[0]["frame"].tolist()
        np.testing.assert_array_equal(other["xy"], rows[0]["xy"])
