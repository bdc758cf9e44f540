"""What `rtalign video` writes, as a player reads it: times from zero for inputs that start late, the colour
tags that match the pixels, and the audio track players would choose."""
import shutil
import subprocess

import av
import pytest
from helpers import run_cli

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="the ffmpeg command is not installed")


def ffmpeg(*args):
    subprocess.run(["ffmpeg", "-v", "error", "-y", *map(str, args)], check=True, capture_output=True)


def _streams(path):
    """kind → (start, end) seconds of each stream of a file, from its packets (Matroska keeps no duration)."""
    spans = {}
    with av.open(str(path)) as c:
        for packet in c.demux():
            if packet.pts is not None:
                t0, t1 = packet.pts * packet.time_base, (packet.pts + (packet.duration or 0)) * packet.time_base
                lo, hi = spans.get(packet.stream.type, (t0, t1))
                spans[packet.stream.type] = (min(lo, t0), max(hi, t1))
    return {kind: (float(lo), float(hi)) for kind, (lo, hi) in spans.items()}


@needs_ffmpeg
@pytest.mark.parametrize("ext", [".mp4", ".mkv"])
def test_an_input_that_starts_late_plays_from_zero(face_clip, tmp_path, ext):
    # an MPEG-TS camcorder clip starts at its clock (here 5000 s): the output used to open with 5000 s of nothing
    late = tmp_path / "late.ts"
    ffmpeg("-i", face_clip, "-c", "copy", "-f", "mpegts", "-output_ts_offset", 5000, late)
    out = tmp_path / f"out{ext}"
    result = run_cli("video", late, out, "--draw", "none")
    assert result.exit_code == 0, result.output
    streams = _streams(out)
    assert streams["video"][0] < 0.1 and streams["audio"][0] < 0.1
    assert 1.4 < streams["video"][1] < 1.7 and 1.4 < streams["audio"][1] < 1.7          # 45 frames at 30 fps
    with av.open(str(out)) as c:
        assert c.duration / av.time_base < 1.7


@needs_ffmpeg
@pytest.mark.parametrize("out", [True, False])
def test_the_landmarks_of_a_late_input_count_time_as_its_output_video_does(face_clip, tmp_path, out):
    """time_s was the raw presentation time (5000.0, 5000.033, ...) while the output video ran from 0."""
    from rtalign.export import read_landmarks
    late = tmp_path / "late.ts"
    ffmpeg("-i", face_clip, "-c", "copy", "-f", "mpegts", "-output_ts_offset", 5000, late)
    video = [tmp_path / "out.mp4"] if out else []
    result = run_cli("video", late, *video, "--landmarks", tmp_path / "lm.csv", "--model", "cnn")
    assert result.exit_code == 0, result.output
    rows = read_landmarks(tmp_path / "lm.csv")
    times = sorted(set(float(t) for t in rows["time_s"]))
    assert len(times) == 45 and 0 <= times[0] < 0.1 and abs(times[-1] - times[0] - 44 / 30) < 1e-3  # audio leads a little
    if out:
        with av.open(str(video[0])) as c:
            shown = [float(f.time) for f in c.decode(video=0)]
        assert max(abs(a - b) for a, b in zip(shown, times)) < 1e-3


def test_the_colours_are_tagged_as_written(face_clip, tmp_path):
    # untagged, players read HD video with BT.709's matrix: the BT.601 pixels then shift by up to 27 levels
    out = tmp_path / "out.mp4"
    assert run_cli("video", face_clip, out, "--draw", "none").exit_code == 0
    with av.open(str(out)) as c:
        ctx = c.streams.video[0].codec_context
        assert (int(ctx.colorspace), int(ctx.color_range)) == (6, 1)       # SMPTE 170M (BT.601), limited range


@needs_ffmpeg
def test_the_default_audio_track_is_the_one_kept(face_clip, tmp_path):
    # a commentary track first, the main (default) one second: players play the default one
    two = tmp_path / "two.mkv"
    ffmpeg("-i", face_clip, "-f", "lavfi", "-t", "1.5", "-i", "sine=f=200:r=8000", "-map", "0:v", "-map", "1:a",
           "-map", "0:a", "-c:v", "copy", "-c:a", "aac", "-disposition:a:0", "0", "-disposition:a:1", "default", two)
    out = tmp_path / "out.mp4"
    assert run_cli("video", two, out, "--draw", "none").exit_code == 0
    with av.open(str(out)) as c:
        assert c.streams.audio[0].codec_context.sample_rate == 44100      # the main track's, not the 8 kHz one


@needs_ffmpeg
def test_non_square_pixels_come_out_as_players_show_them(face_clip, tmp_path):
    # the same clip stored 480 wide with 4:3 pixels (DV, DVD): the output and the landmarks are 640 wide again,
    # and the model sees the face in its own proportions, so the points match the square-pixel clip's
    import numpy as np
    from rtalign.export import read_landmarks
    narrow = tmp_path / "narrow.mp4"
    ffmpeg("-i", face_clip, "-vf", "scale=480:360,setsar=4/3", "-c:v", "libx264", "-crf", "12", "-c:a", "copy", narrow)
    out, points, reference = tmp_path / "out.mp4", tmp_path / "narrow.csv", tmp_path / "square.csv"
    assert run_cli("video", narrow, out, "--landmarks", points, "--smooth", "none").exit_code == 0
    assert run_cli("video", face_clip, "--landmarks", reference, "--smooth", "none").exit_code == 0
    with av.open(str(out)) as c:
        assert (c.streams.video[0].width, c.streams.video[0].height) == (640, 360)
    got, want = read_landmarks(points), read_landmarks(reference)
    assert len(got["frame"]) == len(want["frame"]) == 45
    assert np.median(np.abs(got["xy"] - want["xy"])) < 1.5


@needs_ffmpeg
def test_an_audio_track_that_carries_nothing_is_left_out(face_clip, tmp_path):
    # an MPEG-TS declaring an audio PID with no packets (an unused recorder track): no audio can be copied
    ts = tmp_path / "silent.ts"
    ffmpeg("-i", face_clip, "-map", "0:v", "-map", "0:a", "-c", "copy", "-frames:a", "0", "-f", "mpegts", ts)
    out = tmp_path / "out.mp4"
    result = run_cli("video", ts, out, "--draw", "none")
    assert result.exit_code == 0, result.output
    with av.open(str(out)) as c:
        assert len(c.streams.video) == 1 and not c.streams.audio


@needs_ffmpeg
def test_a_cut_file_that_starts_late_and_only_knows_its_length_is_truncated(face_clip, tmp_path):
    # FLV keeps the input's clock (-copyts) and says only how long the file is: its end is start + length
    from rtalign.pipeline.sources import VideoFileSource
    late, flv = tmp_path / "late.ts", tmp_path / "late.flv"
    ffmpeg("-i", face_clip, "-c", "copy", "-f", "mpegts", "-output_ts_offset", 5000, late)
    ffmpeg("-i", late, "-c", "copy", "-copyts", flv)
    cut = tmp_path / "cut.flv"
    cut.write_bytes(flv.read_bytes()[:flv.stat().st_size * 6 // 10])
    with VideoFileSource(str(flv)) as whole:
        assert sum(1 for _ in whole) == 45 and not whole.truncated and 40 <= whole.expected <= 50
    with VideoFileSource(str(cut)) as part:
        assert sum(1 for _ in part) < 40 and part.truncated


@pytest.mark.parametrize("ext", [".mkv", ".webm", ".mp4"])
def test_the_same_input_gives_the_same_bytes_in_every_container(face_clip, tmp_path, ext):
    """Matroska wrote a random segment id: two runs of one batch differed in 44 bytes."""
    outs = [tmp_path / f"{k}{ext}" for k in range(2)]
    for out in outs:
        assert run_cli("video", face_clip, out, "--model", "cnn").exit_code == 0
    assert outs[0].read_bytes() == outs[1].read_bytes()


def test_one_process_encodes_the_same_frames_to_the_same_bytes_every_time(tmp_path):
    """x264's AVX-512 routines gave a different encoding from one run to the next in one process (a batch
    worker's second file differed on every run): on such CPUs it is held to AVX2."""
    from rtalign.pipeline.sinks import VideoFileSink
    from rtalign.pipeline.sources import VideoFileSource
    from rtalign.synth import demo_clip
    clip = tmp_path / "clip.mp4"
    demo_clip(clip, n_frames=45, size=(320, 240), seed=3, audio=False)
    with VideoFileSource(str(clip)) as source:
        frames = [(f.image, f.timestamp) for f in source]
        size, fps, time_base = source.size, source.fps, source.time_base
    outs = [tmp_path / f"{k}.mp4" for k in range(8)]
    for out in outs:
        sink = VideoFileSink(out, size, fps, time_base=time_base)
        for image, t in frames:
            sink.write(image, t)
        sink.close()
    assert len({out.read_bytes() for out in outs}) == 1
