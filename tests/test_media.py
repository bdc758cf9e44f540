"""Real-world media: a phone-style clip (rotation metadata, variable frame rate, audio), odd frame sizes,
output formats by extension, truncated input, and paths no text encoding can spell."""
import os
import shutil
import struct
import subprocess
import wave
from fractions import Fraction

import av
import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from helpers import assert_clean_error

import rtalign
from rtalign.cli import main
from rtalign.pipeline import build_tracker, process_video
from rtalign.pipeline.sinks import VideoFileSink
from rtalign.pipeline.sources import VideoFileSource
from rtalign.export import read_landmarks
from rtalign.synth import asset_frames, demo_clip, smooth_similarity_path

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="the ffmpeg command is not installed")

#: Frame durations (ms) of the phone clip: a phone's camera speeds up and slows down with the light.
DURATIONS_MS = np.tile([33, 33, 50, 33, 66, 40, 25, 100], 6)
FLASHES = (5, 23, 41)       # frames with a white corner, each with a 3 kHz beep starting at its time
RATE = 48000


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def ffmpeg(*args, quiet=False):
    subprocess.run(["ffmpeg", "-v", "error", "-y", *map(str, args)], check=True, capture_output=quiet)


def _flash_frames(upright):
    for i in FLASHES:
        upright[i][:40, :40] = 255
    return upright


def _beeps(seconds: float, times_s) -> np.ndarray:
    t = np.arange(int(RATE * seconds)) / RATE
    sound = 0.1 * np.sin(2 * np.pi * 440 * t)
    for i in FLASHES:
        k = round(times_s[i] * RATE)
        sound[k:k + 480] += 0.8 * np.sin(2 * np.pi * 3000 * np.arange(480) / RATE)
    return sound


@pytest.fixture(scope="module")
def phone_clip(tmp_path_factory):
    """A portrait clip as a phone stores it: pixels sideways (640x360) plus a display rotation of 90°,
    frames at irregular times, AAC audio with a beep at each flash. Returns (path, upright frames, times)."""
    if shutil.which("ffmpeg") is None:
        pytest.skip("the ffmpeg command is not installed")
    folder = tmp_path_factory.mktemp("phone")
    n = len(DURATIONS_MS)
    times_ms = np.concatenate([[0], np.cumsum(DURATIONS_MS)[:-1]])
    upright = _flash_frames([f.copy() for f, _ in asset_frames((360, 640), smooth_similarity_path(n, 3))])
    with av.open(str(folder / "v.mkv"), "w") as out:      # pixels as the sensor stored them: turned clockwise
        video = out.add_stream("libx264", rate=30)
        video.width, video.height, video.pix_fmt = 640, 360, "yuv420p"
        video.codec_context.time_base = Fraction(1, 1000)
        for image, t in zip(upright, times_ms):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(np.rot90(image, -1)), format="bgr24")
            frame.pts, frame.time_base = int(t), Fraction(1, 1000)
            out.mux(video.encode(frame))
        out.mux(video.encode())
    with wave.open(str(folder / "a.wav"), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(RATE)
        w.writeframes((_beeps(sum(DURATIONS_MS) / 1000, times_ms / 1000) * 32767).astype("<i2").tobytes())
    clip = folder / "phone.mp4"
    try:       # FFmpeg ≥ 6 sets the display matrix with an input option; 5.x reads the old 'rotate' tag
        ffmpeg("-display_rotation:v:0", 90, "-i", folder / "v.mkv", "-i", folder / "a.wav", "-c:v", "copy",
               "-c:a", "aac", clip, quiet=True)
    except subprocess.CalledProcessError:
        ffmpeg("-i", folder / "v.mkv", "-i", folder / "a.wav", "-c:v", "copy", "-c:a", "aac",
               "-metadata:s:v:0", "rotate=90", clip)
    ffmpeg("-i", clip, "-frames:v", 1, folder / "shown.png")   # FFmpeg's own player view: upright
    shown = cv2.imread(str(folder / "shown.png"))
    assert shown.shape == (640, 360, 3) and np.abs(shown.astype(int) - upright[0]).mean() < 4
    return clip, upright, times_ms / 1000


def _beep_onsets(path) -> np.ndarray:
    """Times (s) where the 3 kHz beeps start in the file's first audio track."""
    with av.open(str(path)) as c:
        chunks = [(f.time, f.to_ndarray().mean(axis=0)) for f in c.decode(c.streams.audio[0])]
    start = chunks[0][0]
    sound = np.concatenate([c for _, c in chunks])
    hp = np.abs(np.diff(sound))                       # the 440 Hz tone hardly changes sample to sample
    loud = np.flatnonzero(hp > 0.3)
    onsets = loud[np.concatenate([[True], np.diff(loud) > RATE // 10])]
    return start + onsets / RATE


def test_a_phone_clip_comes_out_upright_with_landmarks_each_frame_at_its_time_and_audio_in_sync(phone_clip,
                                                                                             tmp_path):
    clip, upright, times = phone_clip
    out = tmp_path / "out.mp4"
    stats = process_video(clip, out, tracker=build_tracker("cnn"), draw="none")
    assert stats.frames_with_faces == len(upright)          # a face on every frame: it was upright
    with av.open(str(out)) as c:
        frames = [(f.time, f.rotation, f.to_ndarray(format="bgr24")) for f in c.decode(c.streams.video[0])]
    assert len(frames) == len(upright)
    got_times = np.array([t for t, _, _ in frames])
    assert np.abs(got_times - times).max() <= 0.001                  # every frame at its input time ± 1 ms
    assert all(r == 0 for _, r, _ in frames)                         # upright pixels, no metadata needed
    assert all(np.abs(img.astype(int) - ref).mean() < 8 for (_, _, img), ref in zip(frames, upright))  # 2 encodes
    beeps_in, beeps_out = _beep_onsets(clip), _beep_onsets(out)
    assert len(beeps_out) == len(FLASHES)
    assert np.abs(beeps_out - beeps_in).max() <= 0.001              # audio where it was ...
    flashes_out = got_times[[i for i, (_, _, img) in enumerate(frames) if img[:30, :30].mean() > 200]]
    assert np.abs(beeps_out - flashes_out).max() < 0.03             # ... so each beep still meets its flash


def test_a_constant_rate_stays_exact_with_b_frames(tmp_path):
    clip = tmp_path / "ntsc.mp4"
    demo_clip(clip, n_frames=20, size=(320, 240), fps=30000 / 1001, audio=True)
    out = tmp_path / "o.mov"
    process_video(clip, out, tracker=build_tracker("cnn"), draw="none")
    with av.open(str(clip)) as a, av.open(str(out)) as b:
        t_in = [f.time for f in a.decode(video=0)]
        t_out = [f.time for f in b.decode(video=0)]
        assert b.streams.video[0].average_rate == Fraction(30000, 1001)
    assert np.abs(np.array(t_out) - t_in).max() <= 0.001


def test_odd_frame_sizes_are_padded_by_one_pixel_and_say_so(tmp_path, caplog):
    clip = tmp_path / "odd.mp4"
    frames = [f for f, _ in asset_frames((321, 241), smooth_similarity_path(6, 1))]
    with av.open(str(clip), "w") as out:          # 4:4:4 H.264 can be odd-sized; the output's 4:2:0 cannot
        v = out.add_stream("libx264", rate=30)
        v.width, v.height, v.pix_fmt = 321, 241, "yuv444p"
        for i, f in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(f, format="bgr24")
            frame.pts = i
            out.mux(v.encode(frame))
        out.mux(v.encode())
    out = tmp_path / "o.mp4"
    process_video(clip, out, tracker=build_tracker("cnn"), draw="none")
    assert "padded to 322x242" in caplog.text
    with av.open(str(out)) as c:
        got = [f.to_ndarray(format="bgr24") for f in c.decode(video=0)]
    assert len(got) == 6 and got[0].shape == (242, 322, 3)
    assert np.abs(got[3][:241, :321].astype(int) - frames[3]).mean() < 4
    assert np.array_equal(got[3][241, :321], got[3][240, :321]) or \
        np.abs(got[3][241].astype(int) - got[3][240]).mean() < 4            # the padding repeats the edge


@pytest.mark.parametrize("ext,codec,audio", [(".mkv", "h264", "aac"), (".mov", "h264", "aac"),
                                             (".webm", "vp9", "opus")])
def test_outputs_by_extension(face_clip, tmp_path, ext, codec, audio):
    out = tmp_path / f"o{ext}"
    result = run("video", face_clip, out, "--model", "cnn", "--preset", "ultrafast")
    assert result.exit_code == 0, result.output
    with av.open(str(out)) as c:
        assert c.streams.video[0].codec_context.name == codec
        assert c.streams.audio[0].codec_context.name == audio
        assert sum(1 for _ in c.decode(video=0)) == 45


@needs_ffmpeg
@pytest.mark.parametrize("fps", [Fraction(30), Fraction(30000, 1001)])
@pytest.mark.parametrize("ext,codec", [(".h264", "copy"), (".hevc", "libx265"), (".m2v", "mpeg2video")])
def test_a_raw_stream_keeps_its_own_frame_rate_in_times_and_output(tmp_path, fps, ext, codec):
    """A raw camera stream has no container timing: FFmpeg's average rate is its demuxer's default of 25, which
    slowed a 30 fps stream to 25 and put each landmark row 1/150 s later than the one before."""
    clip, raw = tmp_path / "c.mp4", tmp_path / f"c{ext}"
    demo_clip(clip, n_frames=12, size=(320, 240), fps=fps, audio=False)
    ffmpeg("-i", clip, "-c:v", codec, *(["-x265-params", "log-level=error"] if codec == "libx265" else []), raw)
    result = run("video", raw, tmp_path / "o.mp4", "--landmarks", tmp_path / "o.csv", "--model", "cnn")
    assert result.exit_code == 0, result.output
    with av.open(str(tmp_path / "o.mp4")) as c:
        assert c.streams.video[0].average_rate == fps and c.streams.video[0].frames == 12
    times = read_landmarks(tmp_path / "o.csv")["time_s"]
    np.testing.assert_allclose(np.diff(times), float(1 / fps), atol=2e-6)


@pytest.mark.skipif(not hasattr(av.codec.Codec("mp3", "r"), "canonical_name"), reason="PyAV < 15 names decoders only")
@needs_ffmpeg
def test_mp3_audio_is_copied_where_the_container_takes_it_and_named_as_mp3_where_not(face_clip, tmp_path, caplog):
    clip = tmp_path / "mp3.mkv"      # FFmpeg decodes MP3 with "mp3float": the codec, not the decoder, decides
    ffmpeg("-i", face_clip, "-c:v", "copy", "-c:a", "libmp3lame", clip)
    packets = lambda path: [bytes(p) for p in av.open(str(path)).demux(audio=0) if p.size]
    for ext, copied in ((".mp4", True), (".mov", True), (".webm", False)):
        caplog.clear()
        out = tmp_path / f"o{ext}"
        process_video(clip, out, tracker=build_tracker("cnn", "cpu", 1), draw="none")
        warned = [r.getMessage() for r in caplog.records if "audio" in r.getMessage()]
        if copied:
            assert not warned and packets(out) == packets(clip)          # the same MP3 bytes, not re-encoded
        else:
            assert warned == ["audio: mp3 cannot go into this container as it is; converted to libopus"]
            assert av.open(str(out)).streams.audio[0].codec_context.name == "opus"


@pytest.mark.parametrize("name,text", [("o.gif", "cannot write video as .gif"), ("o.avi", "supported: .mp4"),
                                       ("o", "without extension"), ("o.mp4/", "is a folder")])
def test_unsupported_outputs_are_refused_before_any_work(face_clip, tmp_path, name, text):
    (tmp_path / "o.mp4").mkdir()
    result = run("video", face_clip, tmp_path / name, "--model", "no-such-model")   # the model is never loaded
    assert result.exit_code == 2 and text in result.output and len(result.output.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.mp4"]


def test_images_in_every_format_opencv_writes(astronaut_file, tmp_path):
    for ext in (".png", ".jpg", ".webp", ".bmp", ".tif", ".jp2", ".ppm", ".pgm", ".sr"):
        out = tmp_path / f"o{ext}"
        result = run("image", astronaut_file, out, "--model", "cnn")
        assert result.exit_code == 0, (ext, result.output)
        assert cv2.imdecode(np.fromfile(out, np.uint8), cv2.IMREAD_UNCHANGED).shape[:2] == (512, 512)
    result = run("image", astronaut_file, tmp_path / "o.xyz", "--model", "cnn")
    assert result.exit_code == 2 and "cannot write images as .xyz" in result.output


def test_a_one_bit_pbm_is_dithered_so_the_picture_survives(astronaut, tmp_path):
    """OpenCV's PBM writer keeps only pixels at exactly 0 black: the photo came out almost blank."""
    from rtalign.image import save_image
    save_image(tmp_path / "o.pbm", astronaut)
    bits = cv2.imread(str(tmp_path / "o.pbm"), cv2.IMREAD_GRAYSCALE)
    grey = cv2.cvtColor(astronaut, cv2.COLOR_BGR2GRAY)
    assert set(np.unique(bits)) == {0, 255}
    assert abs((bits == 0).mean() - (1 - grey.mean() / 255)) < 0.01             # as dark as the photo overall
    blur = lambda a: cv2.blur(a.astype(np.float32), (15, 15))
    assert np.corrcoef(blur(bits).ravel(), blur(grey).ravel())[0, 1] > 0.9       # and dark where the photo is


def test_names_that_are_not_utf8_or_very_long(astronaut_file, face_clip, tmp_path):
    folder = os.fsencode(tmp_path)
    odd_in, odd_out = folder + b"/in-\xff\xfe.png", folder + b"/out-\xe9t\xe9.png"
    shutil.copy(astronaut_file, odd_in)
    result = run("image", os.fsdecode(odd_in), os.fsdecode(odd_out), "--model", "cnn")
    assert result.exit_code == 0, result.output
    assert cv2.imdecode(np.fromfile(odd_out, np.uint8), cv2.IMREAD_COLOR).shape == (512, 512, 3)
    long_out = tmp_path / ("v" * 251 + ".mp4")       # 255 bytes: legal, but no longer name fits beside it
    result = run("video", face_clip, long_out, "--model", "cnn")
    assert result.exit_code == 0, result.output
    assert long_out.is_file() and sorted(os.listdir(tmp_path)) == sorted([os.fsdecode(odd_in).rsplit("/", 1)[1],
                                                                          os.fsdecode(odd_out).rsplit("/", 1)[1],
                                                                          long_out.name])


@pytest.mark.parametrize("spec,text", [(".", "is a folder, not a video file"),
                                       ("/dev/null", "is a device, pipe or socket"),
                                       ("EMPTY", "is empty (0 bytes), not a video file")])
def test_folders_devices_and_empty_files_as_input(spec, text, tmp_path):
    if spec == "EMPTY":
        spec = tmp_path / "empty.mp4"
        spec.touch()
    result = run("video", spec, tmp_path / "o.mp4")
    assert result.exit_code == 1 and text in result.output
    empty = tmp_path / "empty.jpg"
    empty.touch()
    assert "is empty (0 bytes), not an image file" in run("image", empty, tmp_path / "o.png").output


def _faststart_clip(path, n=45):
    """An MP4 whose index comes first, as phones and web tools write it: cut short, it still opens."""
    plain = path.with_name("plain.mp4")
    demo_clip(plain, n_frames=n, size=(320, 240), audio=True)
    with av.open(str(plain)) as src, av.open(str(path), "w", options={"movflags": "faststart"}) as dst:
        streams = {s.index: dst.add_stream_from_template(s) for s in src.streams}
        for packet in src.demux():
            if packet.dts is not None:
                packet.stream = streams[packet.stream.index]
                dst.mux(packet)


@pytest.fixture
def cut_clip(tmp_path):
    """A 45-frame faststart MP4 cut to 60 % of its bytes: it opens, then ends early."""
    whole = tmp_path / "whole.mp4"
    _faststart_clip(whole)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: int(whole.stat().st_size * 0.6)])
    return cut


@needs_ffmpeg
def test_a_trim_whose_edit_list_hides_a_single_frame_is_whole(face_clip, tmp_path):
    """Cut one frame after a keyframe: the header counts one hidden sample, which its duration rounds away, so
    only the packet before the stream's start tells a trim (refused: "32 of 33 frames decoded")."""
    gop, trimmed = tmp_path / "gop.mp4", tmp_path / "trimmed.mp4"
    ffmpeg("-i", face_clip, "-an", "-c:v", "libx264", "-g", 15, gop)
    ffmpeg("-ss", 0.51, "-i", gop, "-t", 1, "-c", "copy", trimmed)
    with VideoFileSource(str(trimmed)) as source:
        shown = sum(1 for _ in source)
        assert not source.truncated and shown < source.frames
    assert run("video", trimmed, "--landmarks", tmp_path / "t.csv", "--model", "cnn").exit_code == 0


@needs_ffmpeg
def test_an_input_that_lost_only_its_last_frame_is_truncated(face_clip, tmp_path):
    """A trim cut between frames may announce up to a frame more than it shows; a whole file may not: one
    frame missing at the end still makes a file truncated (no B-frames: the last packet is the last frame)."""
    whole = tmp_path / "whole.mp4"
    ffmpeg("-i", face_clip, "-an", "-c:v", "libx264", "-bf", 0, "-movflags", "faststart", whole)
    with av.open(str(whole)) as c:
        last = max((p for p in c.demux(video=0) if p.size), key=lambda p: p.pos)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[:last.pos])
    with VideoFileSource(str(cut)) as source:
        assert sum(1 for _ in source) == 44 and source.truncated and source.damage() == "44 of 45 frames decoded"


def test_a_truncated_input_says_how_much_decoded_and_keeps_it_as_partial(tmp_path, cut_clip):
    cut = cut_clip
    out = tmp_path / "o.mp4"
    result = run("video", cut, out, "--model", "cnn")
    assert result.exit_code == 1 and "of 45 frames decoded" in result.output, result.output
    assert not out.exists()
    partial = tmp_path / "o.partial.mp4"
    with av.open(str(partial)) as c:
        n = sum(1 for _ in c.decode(video=0))
    assert 10 < n < 45 and f"{n} of 45 frames decoded" in result.output
    result = run("video", cut, out, "--model", "cnn", "--allow-truncated")
    assert result.exit_code == 0 and f"{n} frames" in result.output
    assert out.is_file()


def test_analysis_only_on_a_truncated_input_is_refused_like_a_video(tmp_path, cut_clip):
    """`rtalign video IN --landmarks F` judges a cut input as `rtalign video IN OUT` does."""
    cut = cut_clip
    table = tmp_path / "lm.csv"
    result = run("video", cut, "--landmarks", table, "--model", "cnn")
    assert result.exit_code == 1 and "of 45 frames decoded" in result.output, result.output
    assert not table.exists()
    rows = read_landmarks(tmp_path / "lm.partial.csv")["frame"]
    assert 10 < len(rows) < 45
    result = run("video", cut, "--landmarks", table, "--model", "cnn", "--allow-truncated")
    assert result.exit_code == 0 and len(read_landmarks(table)["frame"]) == len(rows)


def test_an_mpeg_ts_cut_inside_a_frame_is_truncated_not_complete(tmp_path, face_clip):
    """A transport stream has no index that announces its end: the damaged last frame tells the cut."""
    ts = tmp_path / "whole.ts"
    with av.open(str(face_clip)) as src, av.open(str(ts), "w", format="mpegts") as dst:
        out = dst.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:
                packet.stream = out
                dst.mux(packet)
    cut = tmp_path / "cut.ts"
    data = ts.read_bytes()
    cut.write_bytes(data[: len(data) * 3 // 4])                 # inside a frame, shown before two B-frames
    assert run("video", ts, tmp_path / "whole.mp4", "--model", "cnn").exit_code == 0
    result = run("video", cut, tmp_path / "o.mp4", "--model", "cnn")
    assert_clean_error(result, r"cut.ts is truncated or corrupt: \d+ of about \d+ frames decoded \(its last frames are damaged\)")
    assert run("video", cut, tmp_path / "o.mp4", "--model", "cnn", "--allow-truncated").exit_code == 0
    from rtalign.pipeline.sources import VideoFileSource
    for _ in range(5):                     # read as fast as it decodes: the verdict must not depend on timing
        with VideoFileSource(str(cut)) as source:
            assert sum(1 for _ in source) > 0 and source.truncated


def test_a_truncated_input_names_both_partial_files(tmp_path, cut_clip):
    result = run("video", cut_clip, tmp_path / "o.mp4", "--model", "cnn", "--landmarks", tmp_path / "o.csv")
    assert result.exit_code == 1, result.output
    assert "they are in o.partial.mp4 and o.partial.csv" in result.output.replace(str(tmp_path) + os.sep, "")


@pytest.mark.parametrize("only, keep", [([], "OUT"), (["--only-landmarks"], "--landmarks F.csv")])
def test_batch_lists_a_truncated_input_as_failed_and_leaves_nothing_of_it(tmp_path, cut_clip, only, keep):
    """`rtalign batch` has no --allow-truncated: the file is failed with the command that keeps what
    decodes, and no partial file stays in OUT_DIR to pass for a result."""
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    shutil.move(cut_clip, src / "cut.mp4")
    result = run("batch", src, out, "--model", "cnn", "--landmarks", "csv", *only)
    assert result.exit_code == 1, result.output
    assert "truncated or corrupt:" in result.output and "of 45 frames decoded" in result.output
    assert f"`rtalign video {src / 'cut.mp4'} {keep} --allow-truncated` keeps what decodes" in result.output
    assert list(out.iterdir()) == []


def test_a_stream_says_when_its_file_was_truncated(cut_clip, face_clip, caplog):
    import rtalign
    with caplog.at_level("WARNING", logger="rtalign.stream"):
        with rtalign.track(cut_clip, model="cnn") as stream:
            n = sum(1 for _ in stream)
    assert 10 < n < 45 and stream.truncated
    assert f"cut.mp4 is truncated or corrupt: {n} of 45 frames decoded" in caplog.text
    with rtalign.track(face_clip, model="cnn") as stream:
        for _ in stream:
            pass
    assert not stream.truncated
    with rtalign.track(cut_clip, model="cnn") as stream:     # left early: nothing is known about the end
        next(iter(stream))
    assert not stream.truncated


@needs_ffmpeg
def test_a_trimmed_clip_is_not_mistaken_for_a_truncated_one(face_clip, tmp_path):
    """`ffmpeg -ss 0.5 -c copy` keeps every sample and hides the first ones with an edit list: the header
    still counts 45 frames, 30 are shown. That is a whole clip."""
    trimmed = tmp_path / "trimmed.mp4"
    ffmpeg("-ss", 0.5, "-i", face_clip, "-c", "copy", trimmed)
    with av.open(str(trimmed)) as c:
        shown = sum(1 for _ in c.decode(video=0))
        assert c.streams.video[0].frames > shown
    result = run("video", trimmed, tmp_path / "o.mp4", "--model", "cnn")
    assert result.exit_code == 0 and f"{shown} frames" in result.output, result.output


@needs_ffmpeg
@pytest.mark.parametrize("second", ["320:180", "480:360"])
def test_a_stream_that_changes_size_midway_gives_landmarks_of_the_frames_written(face_clip, tmp_path, second):
    """Joined MPEG-TS recordings change size mid-way: the output kept the first size (stretched), while the
    landmarks stayed in the decoded frame's pixels, so rows after the change missed the output's faces."""
    a, b, joined = tmp_path / "a.ts", tmp_path / "b.ts", tmp_path / "joined.ts"
    ffmpeg("-i", face_clip, "-an", "-c:v", "libx264", "-f", "mpegts", a)
    ffmpeg("-i", face_clip, "-an", "-vf", f"scale={second}", "-c:v", "libx264", "-output_ts_offset", 1.5, "-f", "mpegts", b)
    joined.write_bytes(a.read_bytes() + b.read_bytes())
    out, table = tmp_path / "o.mp4", tmp_path / "lm.csv"
    result = run("video", joined, out, "--draw", "none", "--landmarks", table, "--model", "cnn")
    assert result.exit_code == 0, result.output
    with av.open(str(out)) as c:
        frames = [f.to_ndarray(format="bgr24") for f in c.decode(video=0)]
    assert len(frames) == 90 and {f.shape for f in frames} == {(360, 640, 3)}
    rows = read_landmarks(table)
    aligner = rtalign.FaceAligner("cnn")
    for i in (60, 80):          # after the change
        nose = rows["xy"][list(rows["frame"]).index(i), 30]
        assert np.abs(aligner.align(frames[i]).xy[0, 30] - nose).max() < 4
    if second == "480:360":     # proportions kept: the narrower frames centred between black bars
        assert frames[80][:, :70].max() < 20 and frames[80][:, -70:].max() < 20 and frames[80][:, 100:540].mean() > 40


@needs_ffmpeg
def test_mpeg_ts_recordings_joined_end_to_end_play_one_after_the_other(face_clip, tmp_path):
    """Each recording's clock starts afresh: the second half's frames were written 1/90000 s apart at the first
    half's end (the output lasted half as long), half the audio was lost and `time_s` went back to 0."""
    part, joined, out, table = tmp_path / "part.ts", tmp_path / "joined.ts", tmp_path / "o.mp4", tmp_path / "lm.csv"
    ffmpeg("-i", face_clip, "-c", "copy", "-f", "mpegts", part)
    joined.write_bytes(part.read_bytes() * 2)
    result = run("video", joined, out, "--draw", "none", "--landmarks", table, "--model", "cnn")
    assert result.exit_code == 0, result.output
    assert "90/90" in result.output.split("\r")[-1]      # the progress bar ends at the count, not at 90/45
    with av.open(str(part)) as c:
        audio = sum(1 for p in c.demux(audio=0) if p.size)
    with av.open(str(out)) as c:
        shown = np.array([float(f.time) for f in c.decode(video=0)])
        c.seek(0)
        written = sum(1 for p in c.demux(audio=0) if p.size)
    assert len(shown) == 90 and np.allclose(np.diff(shown), 1 / 30, atol=1e-3)      # one frame on from the other
    assert written == 2 * audio                         # the packet overlapping the join moved just after it, not lost
    assert np.allclose(read_landmarks(table)["time_s"], shown, atol=1e-3)


@needs_ffmpeg
@pytest.mark.parametrize("second", [-100, 20])
def test_mpeg_ts_recordings_joined_across_a_clock_jump_are_whole(face_clip, tmp_path, second):
    """A later recording whose clock is 20 s on, or 100 s back: the header's end is on the clock as written, and
    the file was refused as "truncated or corrupt: 90 of about 658 frames decoded"."""
    a, b, joined = tmp_path / "a.ts", tmp_path / "b.ts", tmp_path / "joined.ts"
    ffmpeg("-i", face_clip, "-c", "copy", "-output_ts_offset", 200, "-f", "mpegts", a)
    ffmpeg("-i", face_clip, "-c", "copy", "-output_ts_offset", 200 + second, "-f", "mpegts", b)
    joined.write_bytes(a.read_bytes() + b.read_bytes())
    table = tmp_path / "lm.csv"
    result = run("video", joined, "--landmarks", table, "--model", "cnn")
    assert result.exit_code == 0, result.output
    times = np.unique(read_landmarks(table)["time_s"])
    assert len(times) == 90 and np.allclose(np.diff(times), 1 / 30, atol=1e-3)


@needs_ffmpeg
def test_an_audio_track_that_goes_quiet_for_long_stays_in_sync(tmp_path):
    """A 15 s dropout in an MPEG-TS audio track was taken for a jump of the file's clock: every later sound
    came 15 s early (the audio ended at 15 s of 30)."""
    full, gap, out = tmp_path / "full.ts", tmp_path / "gap.ts", tmp_path / "o.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=96x64:rate=10", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
           "-t", 30, "-c:v", "libx264", "-c:a", "aac", "-f", "mpegts", full)
    with av.open(str(full)) as src, av.open(str(gap), "w", format="mpegts") as dst:
        streams = {s.index: dst.add_stream_from_template(s) for s in src.streams}
        start = src.start_time / av.time_base
        for packet in src.demux():
            if packet.dts is None or (packet.stream.type == "audio" and 5 <= packet.pts * packet.time_base - start < 20):
                continue
            packet.stream = streams[packet.stream.index]
            dst.mux(packet)
    assert run("video", gap, out, "--draw", "none", "--model", "cnn").exit_code == 0
    with av.open(str(out)) as c:
        video, audio = c.streams.video[0], c.streams.audio[0]
        ends = [float((s.start_time + s.duration) * s.time_base) for s in (video, audio)]
    assert abs(ends[0] - ends[1]) < 0.5, ends


@needs_ffmpeg
def test_an_mpeg_ts_cut_across_its_clocks_wrap_keeps_every_frame_and_counts_time_from_its_start(face_clip, tmp_path):
    """A 33-bit MPEG-TS clock wraps every 26.5 h, and FFmpeg reads a clip cut across the wrap as starting before 0.
    Its start was taken as 0: the first frames went into the output at negative times (players hide them) and
    their rows had negative times."""
    clip, out, table = tmp_path / "wrap.ts", tmp_path / "o.mp4", tmp_path / "lm.csv"
    ffmpeg("-i", face_clip, "-c", "copy", "-output_ts_offset", 95442, "-f", "mpegts", clip)    # wraps at 2**33 / 90 kHz = 95443.7 s
    with av.open(str(clip)) as c:
        start = c.start_time / av.time_base
        times = [float(f.time) for f in c.decode(video=0)]
    assert start < times[0] < 0
    result = run("video", clip, out, "--draw", "none", "--landmarks", table, "--model", "cnn")
    assert result.exit_code == 0, result.output
    with av.open(str(out)) as c:
        shown = [float(f.time) for f in c.decode(video=0)]
    assert len(shown) == 45 and np.allclose(shown, np.subtract(times, start), atol=1e-3)
    assert np.allclose(read_landmarks(table)["time_s"], np.subtract(times, start), atol=1e-3)


@needs_ffmpeg
def test_analysis_of_a_stream_that_grows_midway_reads_each_frame_at_its_own_size(face_clip, tmp_path):
    """No output video, no one size to keep: a stream that starts small (adaptive streaming) was read at its
    first size throughout, its faces shrunk out of reach."""
    a, b, joined = tmp_path / "a.ts", tmp_path / "b.ts", tmp_path / "joined.ts"
    ffmpeg("-i", face_clip, "-an", "-vf", "scale=160:90", "-c:v", "libx264", "-f", "mpegts", a)
    ffmpeg("-i", face_clip, "-an", "-c:v", "libx264", "-output_ts_offset", 1.5, "-f", "mpegts", b)
    joined.write_bytes(a.read_bytes() + b.read_bytes())
    table = tmp_path / "lm.csv"
    assert run("video", joined, "--landmarks", table, "--model", "cnn").exit_code == 0
    rows = read_landmarks(table)
    later = np.array(rows["frame"]) >= 45
    assert later.sum() >= 40 and rows["xy"][later][..., 0].max() > 300      # found in the 640 px frames


@needs_ffmpeg
@pytest.mark.parametrize("start", [0.34, 0.51, 0.77])
def test_a_trim_cut_between_frames_is_whole_and_counts_the_frames_it_shows(face_clip, tmp_path, start):
    """`ffmpeg -ss X -t 0.6 -c copy` with X between two frames: the edit list announces up to a frame more than
    the frames cover, and the header counts the hidden samples too. Such a clip was refused as "truncated or
    corrupt: 18 of 38 frames decoded"."""
    trimmed = tmp_path / "trimmed.mp4"
    ffmpeg("-ss", start, "-i", face_clip, "-t", 0.6, "-c", "copy", trimmed)
    with av.open(str(trimmed)) as c:
        shown = sum(1 for _ in c.decode(video=0))
    with VideoFileSource(str(trimmed)) as source:
        assert shown <= source.expected <= shown + 3 < source.frames      # from the duration: not the hidden samples
        assert sum(1 for _ in source) == shown and not source.truncated
    result = run("video", trimmed, "--landmarks", tmp_path / "t.csv", "--model", "cnn")
    assert result.exit_code == 0 and f"{shown} frames" in result.output, result.output


def _mkv_with_longer_audio(clip, folder, tagged: bool):
    """`clip`'s 1.5 s of video with 3.5 s of audio in Matroska, the tracks' durations tagged as MKVToolNix tags
    them (DURATION-eng: FFmpeg names a tag with its language) or not at all (then only the file's duration is
    known: the audio's). FFmpeg's muxer adds its own language-less DURATION tags: renamed in place."""
    mkv = folder / "long_audio.mkv"
    tags = ["-metadata:s:v:0", "DURATION-eng=00:00:01.500000000", "-metadata:s:a:0", "DURATION-eng=00:00:03.500000000"]
    ffmpeg("-i", clip, "-f", "lavfi", "-t", 3.5, "-i", "sine=r=48000", "-map", "0:v", "-map", "1:a", "-c:v", "copy",
           "-c:a", "aac", *(tags if tagged else []), mkv)
    own = b"\x45\xa3\x88DURATION\x44\x87"        # TagName "DURATION" followed by its TagString: no TagLanguage
    mkv.write_bytes(mkv.read_bytes().replace(own, own.replace(b"DURATION", b"DURATIOX")))
    with av.open(str(mkv)) as c:
        durations = [k for k in c.streams.video[0].metadata if k.startswith("DURATION")]
        assert durations == (["DURATION-eng"] if tagged else [])
        assert c.duration / av.time_base > 3.4
    return mkv


@needs_ffmpeg
@pytest.mark.parametrize("tagged", [True, False], ids=["DURATION-eng", "untagged"])
def test_a_matroska_video_whose_audio_runs_on_is_whole_and_still_truncated_when_cut(face_clip, tmp_path, tagged):
    """The video's end was read from a DURATION tag only, else from the file's duration, which is where its
    longest stream ends: an intact file whose audio outlasts its video by 2 s was "truncated or corrupt: 45 of
    about 105 frames decoded". A cut copy of it is still truncated."""
    mkv = _mkv_with_longer_audio(face_clip, tmp_path, tagged)
    result = run("video", mkv, tmp_path / "o.mp4", "--model", "cnn")
    assert result.exit_code == 0 and "45 frames" in result.output, result.output
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(mkv.read_bytes()[: mkv.stat().st_size * 6 // 10])
    assert_clean_error(run("video", cut, tmp_path / "o.mp4", "--model", "cnn"),
                       r"cut.mkv is truncated or corrupt: \d+ of about \d+ frames decoded")


@pytest.fixture
def gop_clip(face_clip, tmp_path):
    """`face_clip` (45 frames) with a keyframe every 15 frames (x264's default interval, 250, gives it one)."""
    if shutil.which("ffmpeg") is None:
        pytest.skip("the ffmpeg command is not installed")
    clip = tmp_path / "gop.mp4"
    ffmpeg("-i", face_clip, "-c:v", "libx264", "-preset", "veryfast", "-g", 15, "-c:a", "copy", clip)
    return clip


def _damaged(clip, dst, pick):
    """A copy of `clip` whose video packets chosen by `pick` (from a list of them) are overwritten with 0xFF bytes,
    as by a bad sector: their NAL unit sizes become impossible and FFmpeg refuses them. Returns `dst`."""
    with av.open(str(clip)) as c:
        packets = [(p.pos, p.size, p.is_keyframe) for p in c.demux(video=0) if p.size]
    data = bytearray(clip.read_bytes())
    for pos, size, _ in pick(packets):
        data[pos:pos + size] = b"\xff" * size
    dst.write_bytes(data)
    return dst


@pytest.mark.parametrize("keyframe", [0, 1], ids=["first", "mid-file"])
def test_a_damaged_keyframe_is_skipped_and_the_frames_after_it_still_come(gop_clip, tmp_path, keyframe):
    """A packet FFmpeg refuses ended decoding there: a damaged first keyframe gave "no frames could be decoded"
    even with --allow-truncated, a damaged one mid-file cut the run short. FFmpeg skips the packet and decodes
    on; so does the source, and the file is still reported damaged."""
    from rtalign.pipeline.sources import VideoFileSource
    clip = _damaged(gop_clip, tmp_path / "damaged.mp4", lambda packets: [[p for p in packets if p[2]][keyframe]])
    with VideoFileSource(str(clip)) as source:
        shown = {round(frame.timestamp * 30) for frame in source}
    lost = set(range(15 * keyframe, 15 * keyframe + 15))           # at most the damaged keyframe's group
    assert set(range(45)) - lost <= shown <= set(range(45))
    n = len(shown)
    assert source.truncated and source.damage() == f"{n} of 45 frames decoded (1 damaged packet(s) skipped)"
    assert_clean_error(run("video", clip, tmp_path / "o.mp4", "--model", "cnn"), rf"damaged.mp4 is truncated or "
                       rf"corrupt: {n} of 45 frames decoded \(1 damaged packet\(s\) skipped\)")
    result = run("video", clip, tmp_path / "o.mp4", "--model", "cnn", "--allow-truncated")
    assert result.exit_code == 0, result.output
    for out in ("o.partial.mp4", "o.mp4"):
        with av.open(str(tmp_path / out)) as c:
            assert sum(1 for _ in c.decode(video=0)) == n


@needs_ffmpeg
def test_a_video_no_packet_of_which_decodes_is_given_up_on_in_one_line(tmp_path):
    """Video FFmpeg cannot decode at all (encrypted, mislabelled) fails every packet: the source stops after a
    run of failures (250) instead of reading the file to its end (300), and says why."""
    clip = tmp_path / "long.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x64:rate=30", "-frames:v", 300, "-c:v", "libx264", clip)
    clip = _damaged(clip, tmp_path / "undecodable.mp4", lambda packets: packets)
    result = run("video", clip, tmp_path / "o.mp4", "--model", "cnn", "--allow-truncated")
    assert_clean_error(result, r"undecodable.mp4: no frames could be decoded \(250 damaged packet\(s\) skipped; gave "
                               r"up after 250 undecodable packets in a row: Invalid data found when processing input\)")


def _metadata_first(mp4):
    """Move the metadata (udta, holding the cover) ahead of the tracks inside the MP4's moov box, as box order
    allows: FFmpeg then numbers the cover first. moov keeps its size, so no sample offset changes."""
    data = mp4.read_bytes()

    def boxes(start, end):
        while start < end:
            size, kind = struct.unpack(">I4s", data[start:start + 8])
            yield kind, start, size
            start += size
    _, at, size = next(b for b in boxes(0, len(data)) if b[0] == b"moov")
    inner = sorted(boxes(at + 8, at + size), key=lambda b: {b"mvhd": 0, b"udta": 1}.get(b[0], 2))
    mp4.write_bytes(data[:at + 8] + b"".join(data[s:s + n] for _, s, n in inner) + data[at + size:])


@needs_ffmpeg
@pytest.mark.parametrize("ext", [".mkv", ".mp4"])
def test_the_video_read_is_the_one_a_player_shows_not_a_cover_picture_before_it(face_clip, tmp_path, ext):
    """A cover picture (a thumbnail yt-dlp embeds, album art) listed first was read as the video: one 160x160
    frame. Matroska keeps it as a plain track before the video flagged default; MP4 flags it attached_pic."""
    cv2.imwrite(str(tmp_path / "thumb.jpg"), np.full((160, 160, 3), 90, np.uint8))
    clip = tmp_path / f"cover{ext}"
    ffmpeg("-i", tmp_path / "thumb.jpg", "-i", face_clip, "-map", 0, "-map", 1, "-c", "copy",
           "-disposition:v:0", "attached_pic", clip)
    if ext == ".mp4":
        _metadata_first(clip)
    with av.open(str(clip)) as c:
        assert c.streams.video[0].width == 160, "the cover must come first for this test to mean anything"
    result = run("video", clip, tmp_path / "o.mp4", "--model", "cnn")
    assert result.exit_code == 0 and "45 frames" in result.output, result.output
    with av.open(str(tmp_path / "o.mp4")) as c:
        assert (c.streams.video[0].width, c.streams.video[0].height) == (640, 360)


@pytest.mark.parametrize("option,value", [("--beta", "nan"), ("--min-cutoff", "inf"), ("--min-cutoff", "1e308"),
                                          ("--beta", "1e300"), ("--lip-strength", "nan"),
                                          ("--eye-strength", "-inf"), ("--preset", "warp"), ("--crf", "99")])
def test_bad_option_values_are_refused_in_one_line(face_clip, tmp_path, option, value):
    result = run("video", face_clip, tmp_path / "o.mp4", option, value)
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output
    assert option in result.output and not list(tmp_path.iterdir())


@pytest.mark.parametrize("args,text", [
    (["bench", "--json", "/no/such/dir/x.json"], "output folder does not exist"),
    (["bench", "--out", "/dev/null"], "is not a folder"),
    (["webcam", "--serve", "[::1]:99999"], "HOST:PORT"),
    (["webcam", "--serve", "no.such.host.invalid:8080"], "unknown host"),
])
def test_bad_destinations_are_refused_before_any_work(args, text):
    result = run(*args)
    assert result.exit_code == 2 and text in result.output and len(result.output.strip().splitlines()) == 1, \
        result.output


def _ipv6_loopback() -> bool:
    import socket
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_loopback(), reason="this machine has no IPv6 loopback")
def test_an_ipv6_address_in_brackets_is_understood():
    from rtalign.cli import Address
    assert Address().convert("[::1]:8765", None, None) == ("::1", 8765)
    assert Address().convert(":8765", None, None) == ("127.0.0.1", 8765)


def test_a_missing_camera_is_one_line(capfd):
    result = run("webcam", "--camera", "99", "--no-window")
    assert result.exit_code == 1 and "no camera at index 99" in result.output
    assert "WARN" not in capfd.readouterr().err                # OpenCV's probing log stays quiet


def test_a_phone_photo_is_read_upright_by_its_exif_orientation(astronaut, tmp_path):
    from PIL import Image
    sideways = tmp_path / "sideways.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6                                  # "rotate 90° clockwise to display"
    Image.fromarray(cv2.cvtColor(np.rot90(astronaut, 1), cv2.COLOR_BGR2RGB)).save(sideways, exif=exif, quality=95)
    from rtalign.image import load_image
    assert np.abs(load_image(sideways).astype(int) - astronaut).mean() < 6
    result = run("image", sideways, tmp_path / "o.png", "--model", "cnn")
    assert result.exit_code == 0 and "1 face(s)" in result.output


def test_a_stop_event_ends_the_run_with_a_partial_output_and_no_signal_handler_is_touched(face_clip, tmp_path):
    import signal
    import threading
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    stop = threading.Event()

    def progress(stats, total):
        if stats.frames_out == 10:
            stop.set()
    out = tmp_path / "o.mp4"
    stats = process_video(face_clip, out, tracker=build_tracker("cnn"), progress=progress, stop=stop)
    assert stats.interrupted and stats.partial == tmp_path / "o.partial.mp4" and not out.exists()
    with av.open(str(stats.partial)) as c:
        assert 10 <= sum(1 for _ in c.decode(video=0)) < 45
    assert {s: signal.getsignal(s) for s in handlers} == handlers
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.partial.mp4"]


def test_outputs_get_the_umask_mode_without_the_umask_being_touched(face_clip, tmp_path, monkeypatch):
    def forbidden(*_):
        raise AssertionError("os.umask changes process state")
    old = os.umask(0o027)
    try:
        monkeypatch.setattr(os, "umask", forbidden)
        process_video(face_clip, tmp_path / "o.mp4", tracker=build_tracker("cnn"), draw="none")
    finally:
        monkeypatch.undo()
        os.umask(old)
    assert (tmp_path / "o.mp4").stat().st_mode & 0o777 == 0o640


@pytest.mark.parametrize("stem", ["v" * 251, "é" * 125])      # 255 bytes with the extension, in 1- and 2-byte letters
def test_partial_and_temporary_names_fit_the_limit_beside_a_longest_legal_name(tmp_path, stem):
    from rtalign.io_safety import partial_path, temp_path_for
    dst = tmp_path / f"{stem}.mp4"
    assert len(os.fsencode(dst.name)) <= 255
    partial = partial_path(dst)
    assert partial.name.endswith(".partial.mp4") and len(os.fsencode(partial.name)) <= 255
    assert partial.name.startswith(stem[:100])               # shortened by whole letters
    tmp = temp_path_for(dst)
    assert tmp.is_file() and tmp.name.startswith(".") and tmp.suffix == ".mp4"
    assert len(os.fsencode(tmp.name)) <= 255


def test_frames_convert_to_bgr_like_ffmpeg(astronaut):
    from rtalign.pipeline.sources import to_bgr
    frame = av.VideoFrame.from_ndarray(astronaut, format="bgr24").reformat(format="yuv420p")
    diff = np.abs(to_bgr(frame).astype(int) - frame.to_ndarray(format="bgr24"))
    assert diff.max() <= 3 and diff.mean() < 1.5          # OpenCV's BT.601 path: chroma upsampled differently
    frame.colorspace = 1                                    # BT.709: FFmpeg's converter, exactly
    assert np.array_equal(to_bgr(frame), frame.to_ndarray(format="bgr24"))
    full = av.VideoFrame.from_ndarray(astronaut, format="bgr24").reformat(format="yuvj420p")    # full range
    assert np.array_equal(to_bgr(full), full.to_ndarray(format="bgr24"))


def test_written_colours_come_back_as_they_were(tmp_path):
    """The sink converts BGR to YUV 4:2:0 itself (BT.601, limited range, as FFmpeg assumes for untagged
    video): flat patches read back through FFmpeg's own conversion within 3 levels."""
    colours = [(0, 0, 255), (0, 255, 0), (255, 0, 0), (90, 140, 200), (30, 30, 30), (240, 240, 240)]
    image = np.zeros((128, 192, 3), np.uint8)
    for i, c in enumerate(colours):
        image[64 * (i // 3):64 * (i // 3 + 1), 64 * (i % 3):64 * (i % 3 + 1)] = c
    out = tmp_path / "flat.mp4"
    sink = VideoFileSink(out, (192, 128), Fraction(30))
    for _ in range(3):
        sink.write(image)
    sink.close()
    with av.open(str(out)) as c:
        got = [f.to_ndarray(format="bgr24") for f in c.decode(video=0)][-1]
    for i, c in enumerate(colours):
        patch = got[64 * (i // 3) + 16:64 * (i // 3) + 48, 64 * (i % 3) + 16:64 * (i % 3) + 48]
        assert np.abs(patch.reshape(-1, 3).mean(0) - c).max() < 3, (c, patch.reshape(-1, 3).mean(0))


def test_a_stream_url_that_never_answers_ends_with_a_clear_error(monkeypatch):
    """FFmpeg would wait forever (and Ctrl-C cannot reach it there): a silent server is given up on."""
    import socket
    import threading
    import rtalign.pipeline.sources as sources
    from rtalign.errors import InputError
    server = socket.create_server(("127.0.0.1", 0))
    held = []
    threading.Thread(target=lambda: held.append(server.accept()), daemon=True).start()
    monkeypatch.setattr(sources, "URL_TIMEOUT_S", 1.0)
    url = f"http://127.0.0.1:{server.getsockname()[1]}/clip.mp4"
    with pytest.raises(InputError, match=f"cannot read video {url}: no answer within 1 s"):
        sources.VideoFileSource(url)
    server.close()


def test_video_reads_a_url(tmp_path):
    """`rtalign video http://…/clip.mp4 OUT`: the URL reaches FFmpeg whole (a path would fold its "//").
    The clip is faststart: Python's test server cannot seek to an index at the end."""
    (tmp_path / "site").mkdir()
    face_clip = tmp_path / "site" / "clip.mp4"
    _faststart_clip(face_clip)
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(face_clip.parent)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/{face_clip.name}"
        result = run("video", url, "--landmarks", tmp_path / "lm.csv", "--model", "cnn")
    finally:
        server.shutdown()
    assert result.exit_code == 0, result.output
    rows = read_landmarks(tmp_path / "lm.csv")
    assert rows["file"][0] == face_clip.name and len(set(rows["frame"])) == 45
