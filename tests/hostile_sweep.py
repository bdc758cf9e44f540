"""A sweep of hostile and unusual inputs through the real `rtalign` command, one process per case, as a
new user would meet them: mutated photos and videos (truncated, bit-flipped, zeroed, spliced, lying
headers), awkward paths (not UTF-8, 251 bytes long, folders, devices), unsupported outputs, bad option
values and signals mid-run.

Every case must end within its time limit without a traceback or a crash; a failure must be one line
on stderr (progress bars aside) with a non-zero exit code; nothing may be left behind except files the
command names; the inputs must be unchanged; and a success must leave a readable output.

    python tests/hostile_sweep.py            # the full sweep (a few minutes), a summary, failures listed
    python tests/hostile_sweep.py --short    # every 8th case, as CI runs it (tests/test_hostile.py)
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import av
import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
MODEL = ["--model", "cnn"]
TRUNCATE_AT = (0.0, 0.02, 0.2, 0.5, 0.8, 0.98)


@dataclass
class Case:
    """One command run in a fresh folder holding `files` (names may be bytes)."""
    name: str
    args: list                                   # after `rtalign`; str or bytes
    files: dict = field(default_factory=dict)    # name → bytes
    expect: str = "any"                          # "ok", "fail" or "any"
    text: str = ""                               # must appear in the output (failures: the one line)
    code: int | None = None                      # exact exit code wanted
    signal_after_start: int | None = None        # send this signal once the output has been opened
    timeout: float = 90.0


@dataclass
class Verdict:
    case: str
    problems: list
    code: int | None
    seconds: float
    tail: str


# --- seed files ------------------------------------------------------------------------------------------

def _encode(image, ext: str) -> bytes:
    return cv2.imencode(ext, image)[1].tobytes()


def _clip(path: Path, n: int = 10, size=(192, 144), fps: float = 30.0, audio: bool = True, options=None,
          video_codec="libx264", audio_codec="aac") -> bytes:
    """A short clip of the shipped portrait drifting, written with PyAV (no ffmpeg command needed)."""
    from rtalign.synth import asset_frames, smooth_similarity_path
    frames = [f for f, _ in asset_frames(size, smooth_similarity_path(n, 2), face_height=0.6)]
    with av.open(str(path), "w", options=options or {}) as out:
        video = out.add_stream(video_codec, rate=int(fps))
        video.width, video.height, video.pix_fmt = size[0], size[1], "yuv420p"
        sound = out.add_stream(audio_codec, rate=48000) if audio else None
        for i, f in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(f, format="bgr24")
            vf.pts = i
            out.mux(video.encode(vf))
        out.mux(video.encode())
        if sound is not None:
            samples = (0.2 * np.sin(np.arange(int(48000 * n / fps)) / 10)).astype(np.float32)[None]
            step = sound.codec_context.frame_size or 1024
            for k in range(0, samples.shape[1] - step + 1, step):
                af = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[:, k:k + step]), format="fltp",
                                                layout="mono")
                af.sample_rate, af.pts = 48000, k
                out.mux(sound.encode(af))
            out.mux(sound.encode())
    return path.read_bytes()


def _png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height (CRC correct), with a tiny body."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def seeds(folder: Path) -> dict:
    """name → bytes of every well-formed file the mutations start from."""
    face = cv2.imread(str(REPO / "rtalign" / "assets" / "astronaut.jpg"))
    small = cv2.resize(face, (256, 256), interpolation=cv2.INTER_AREA)
    out = {"photo.jpg": (REPO / "rtalign" / "assets" / "astronaut.jpg").read_bytes(),
           "photo.png": _encode(small, ".png"), "photo.webp": _encode(small, ".webp"),
           "photo.bmp": _encode(small, ".bmp")}
    out["clip.mp4"] = _clip(folder / "clip.mp4")
    out["fast.mp4"] = _clip(folder / "fast.mp4", options={"movflags": "faststart"})
    out["clip.mkv"] = _clip(folder / "clip.mkv")
    out["clip.webm"] = _clip(folder / "clip.webm", video_codec="libvpx-vp9", audio_codec="libopus")
    out["odd.mkv"] = _odd_clip(folder / "odd.mkv")
    out["tone.m4a"] = audio_only_file(folder / "tone.m4a")
    if shutil.which("ffmpeg"):          # display rotations are written by the ffmpeg command
        for degrees in (90, 180, 270):
            out[f"rot{degrees}.mp4"] = _rotated(folder, out["clip.mp4"], degrees)
    return out


def audio_only_file(path: Path) -> bytes:
    """An audio-only file (a short AAC silence), written to `path`; returns its bytes."""
    with av.open(str(path), "w") as out:
        s = out.add_stream("aac", rate=48000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 48000, 0
        out.mux(s.encode(frame))
        out.mux(s.encode())
    return path.read_bytes()


def _rotated(folder: Path, clip: bytes, degrees: int) -> bytes:
    """`clip` with a display rotation (FFmpeg ≥ 6 takes an input option, 5.x the old 'rotate' tag)."""
    src, dst = folder / "plain-for-rotation.mp4", folder / f"rot{degrees}.mp4"
    src.write_bytes(clip)
    attempts = (["-display_rotation:v:0", str(degrees), "-i", str(src), "-c", "copy"],
                ["-i", str(src), "-c", "copy", "-metadata:s:v:0", f"rotate={degrees}"])
    for args in attempts:
        if subprocess.run(["ffmpeg", "-v", "error", "-y", *args, str(dst)], capture_output=True).returncode == 0:
            return dst.read_bytes()
    raise RuntimeError("ffmpeg could not write a display rotation")


def _odd_clip(path: Path) -> bytes:
    """A 161x121 clip (4:4:4, so odd sides are legal) without audio."""
    from rtalign.synth import asset_frames, smooth_similarity_path
    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264", rate=25)
        v.width, v.height, v.pix_fmt = 161, 121, "yuv444p"
        for i, (f, _) in enumerate(asset_frames((161, 121), smooth_similarity_path(8, 4), face_height=0.6)):
            vf = av.VideoFrame.from_ndarray(f, format="bgr24")
            vf.pts = i
            out.mux(v.encode(vf))
        out.mux(v.encode())
    return path.read_bytes()


def _pillow(jpeg: bytes, mode: str) -> bytes:
    """The photo converted by Pillow into an unusual pixel mode (CMYK JPEG, palette, 1-bit, grey+alpha, 16-bit)."""
    import io
    from PIL import Image
    im = Image.open(io.BytesIO(jpeg))
    im = im.convert("I").point(lambda v: v * 256).convert("I;16") if mode == "I;16" else im.convert(mode)
    buf = io.BytesIO()
    im.save(buf, format="JPEG" if mode == "CMYK" else "TIFF")
    return buf.getvalue()


def _exif_rotated(jpeg: bytes) -> bytes:
    """The photo stored sideways with EXIF orientation 8 (turn 90° counter-clockwise to view)."""
    import io
    from PIL import Image
    im = Image.open(io.BytesIO(jpeg)).transpose(Image.Transpose.ROTATE_270)
    exif = Image.Exif()
    exif[0x0112] = 8
    buf = io.BytesIO()
    im.save(buf, format="JPEG", exif=exif)
    return buf.getvalue()


def _animated_gif(png: bytes) -> bytes:
    import io
    from PIL import Image
    first = Image.open(io.BytesIO(png)).convert("RGB")
    buf = io.BytesIO()
    first.save(buf, format="GIF", save_all=True, append_images=[first.rotate(20), first.rotate(40)])
    return buf.getvalue()


# --- mutations -------------------------------------------------------------------------------------------

def truncated(data: bytes, fraction: float) -> bytes:
    return data[: int(len(data) * fraction)]


def bit_flipped(data: bytes, flips: int, seed: int, skip_header: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    buf = bytearray(data)
    at = rng.integers(min(skip_header, len(buf) - 1), len(buf), flips)
    for i, bit in zip(at, rng.integers(0, 8, flips)):
        buf[i] ^= 1 << int(bit)
    return bytes(buf)


def zeroed(data: bytes, start: float, length: float) -> bytes:
    a, b = int(len(data) * start), int(len(data) * min(1.0, start + length))
    return data[:a] + bytes(b - a) + data[b:]


def spliced(a: bytes, b: bytes, at: float) -> bytes:
    return a[: int(len(a) * at)] + b[int(len(b) * at):]


# --- the cases -------------------------------------------------------------------------------------------

def cases(seed_files: dict) -> list[Case]:
    s = seed_files
    out: list[Case] = []
    photos = ("photo.jpg", "photo.png", "photo.webp", "photo.bmp")
    clips = ("clip.mp4", "fast.mp4", "clip.mkv", "clip.webm")

    def image(name, data, ext=None, **kw):
        src = "in" + (ext or Path(name).suffix)
        out.append(Case(f"image/{name}", ["image", src, "out.png", *MODEL], {src: data}, **kw))

    def video(name, data, ext=None, dst="out.mp4", extra=(), **kw):
        src = "in" + (ext or Path(name).suffix)
        out.append(Case(f"video/{name}", ["video", src, dst, *MODEL, "--preset", "ultrafast", *extra],
                        {src: data}, **kw))

    # photos: truncated, bit-flipped, zeroed, spliced
    for p in photos:
        for f in TRUNCATE_AT:
            image(f"{p} cut at {f:.0%}", truncated(s[p], f))
        for k, (flips, seed) in enumerate([(1, 1), (4, 2), (16, 3), (64, 4), (256, 5), (4, 6)]):
            image(f"{p} {flips} bits flipped #{k}", bit_flipped(s[p], flips, seed, skip_header=16 if k == 5 else 0))
        for start, length in [(0.0, 0.05), (0.3, 0.2), (0.9, 0.1)]:
            image(f"{p} zeroed {start:.0%}+{length:.0%}", zeroed(s[p], start, length))
    for a, b in [("photo.jpg", "photo.png"), ("photo.png", "photo.jpg"), ("photo.webp", "photo.bmp"),
                 ("photo.bmp", "photo.jpg")]:
        for at in (0.3, 0.7):
            image(f"{a} spliced with {b} at {at:.0%}", spliced(s[a], s[b], at), ext=Path(a).suffix)
    # photos with odd shapes and lying headers
    image("PNG header claiming 60000x60000", _png_claiming(60000, 60000), ext=".png", expect="fail",
          text="larger than rtalign reads")
    image("PNG header claiming 20000x20000", _png_claiming(20000, 20000), ext=".png", expect="fail")
    image("PNG header claiming 0x0", _png_claiming(0, 0), ext=".png", expect="fail")
    for w, h in [(5000, 1), (1, 5000), (1, 1), (2, 2), (3000, 7)]:
        image(f"{w}x{h} strip", _encode(np.full((h, w, 3), 120, np.uint8), ".png"), ext=".png", expect="fail",
              text="no face found")
    image("grey PNG", _encode(cv2.cvtColor(cv2.imdecode(np.frombuffer(s["photo.png"], np.uint8), 1),
                                           cv2.COLOR_BGR2GRAY), ".png"), ext=".png", expect="ok")
    image("16-bit PNG", _encode((cv2.imdecode(np.frombuffer(s["photo.png"], np.uint8), 1).astype(np.uint16) * 257),
                                ".png"), ext=".png", expect="ok")
    image("RGBA PNG", _encode(cv2.cvtColor(cv2.imdecode(np.frombuffer(s["photo.png"], np.uint8), 1),
                                           cv2.COLOR_BGR2BGRA), ".png"), ext=".png", expect="ok")
    image("PNG named .jpg", s["photo.png"], ext=".jpg", expect="ok")
    for mode in ("CMYK", "P", "1", "LA", "I;16"):
        image(f"Pillow {mode} image", _pillow(s["photo.jpg"], mode), ext=".tif" if mode != "CMYK" else ".jpg")
    image("EXIF-rotated JPEG", _exif_rotated(s["photo.jpg"]), ext=".jpg", expect="ok")
    image("animated GIF", _animated_gif(s["photo.png"]), ext=".gif")
    image("a video named .jpg", s["clip.mp4"], ext=".jpg", expect="fail", text="not a readable image")
    image("empty file", b"", ext=".jpg", expect="fail", text="is empty (0 bytes), not an image file")
    image("text", b"hello, world\n" * 10, ext=".png", expect="fail", text="not a readable image")
    image("random bytes", np.random.default_rng(7).bytes(5000), ext=".jpg", expect="fail")

    # videos: truncated, bit-flipped, zeroed, spliced
    for c in clips:
        for f in TRUNCATE_AT:
            video(f"{c} cut at {f:.0%}", truncated(s[c], f))
        for k, (flips, seed) in enumerate([(1, 11), (4, 12), (16, 13), (64, 14), (256, 15), (8, 16)]):
            video(f"{c} {flips} bits flipped #{k}", bit_flipped(s[c], flips, seed, skip_header=4096 if k == 5 else 0))
        for start, length in [(0.0, 0.02), (0.4, 0.1), (0.9, 0.1)]:
            video(f"{c} zeroed {start:.0%}+{length:.0%}", zeroed(s[c], start, length))
    for a, b in [("clip.mp4", "clip.mkv"), ("fast.mp4", "clip.mp4"), ("clip.mkv", "clip.webm"),
                 ("clip.webm", "fast.mp4"), ("fast.mp4", "odd.mkv"), ("clip.mkv", "odd.mkv")]:
        video(f"{a} spliced with {b}", spliced(s[a], s[b], 0.5), ext=Path(a).suffix)
    video("fast.mp4 cut at 60%, allowed", truncated(s["fast.mp4"], 0.6), extra=["--allow-truncated"])
    video("odd-sized 161x121", s["odd.mkv"], expect="ok")
    for dst in ("out.mkv", "out.mov", "out.webm"):
        video(f"clip.mp4 to {dst}", s["clip.mp4"], dst=dst, expect="ok")
    for dst, text in [("out.gif", "cannot write video as .gif"), ("out.avi", "supported: .mp4"),
                      ("out", "without extension"), ("out.MP4.", "without extension"), ("out.xyz", ".xyz")]:
        video(f"clip.mp4 to {dst}", s["clip.mp4"], dst=dst, expect="fail", text=text, code=2)
    for name in ("rot90.mp4", "rot180.mp4", "rot270.mp4"):
        if name in s:
            video(f"display rotation {name}", s[name], expect="ok")
    video("audio only", s["tone.m4a"], ext=".m4a", expect="fail", text="has no video stream")
    video("a photo named .mp4", s["photo.jpg"], ext=".mp4")       # FFmpeg reads a JPEG as a one-frame video
    video("empty file", b"", ext=".mp4", expect="fail", text="is empty (0 bytes), not a video file")
    video("text", b"not a video\n" * 50, ext=".mp4", expect="fail", text="cannot read video")
    video("random bytes", np.random.default_rng(8).bytes(20000), ext=".mkv", expect="fail")

    # paths
    jpg, mp4 = s["photo.jpg"], s["clip.mp4"]
    out.append(Case("path/input not UTF-8", ["image", b"in-\xff\xfe.jpg", "out.png", *MODEL],
                    {b"in-\xff\xfe.jpg": jpg}, expect="ok"))
    out.append(Case("path/output not UTF-8", ["image", "in.jpg", b"out-\xe9\xff.png", *MODEL], {"in.jpg": jpg},
                    expect="ok"))
    out.append(Case("path/video names not UTF-8", ["video", b"in-\xff.mp4", b"out-\xfe.mkv", *MODEL],
                    {b"in-\xff.mp4": mp4}, expect="ok"))
    out.append(Case("path/251-char image output", ["image", "in.jpg", "o" * 251 + ".png", *MODEL], {"in.jpg": jpg},
                    expect="ok"))
    out.append(Case("path/251-char video output", ["video", "in.mp4", "v" * 251 + ".mp4", *MODEL], {"in.mp4": mp4},
                    expect="ok"))
    out.append(Case("path/252-char input", ["video", "i" * 251 + ".mp4", "o.mp4", *MODEL], {"i" * 251 + ".mp4": mp4},
                    expect="ok"))
    out.append(Case("path/256-char output", ["image", "in.jpg", "o" * 252 + ".png", *MODEL], {"in.jpg": jpg},
                    expect="fail", text="too long", code=2))
    for cmd, src, data in (("image", "in.jpg", jpg), ("video", "in.mp4", mp4)):
        out.append(Case(f"path/300-char {cmd} landmarks", [cmd, src, "--landmarks", "l" * 296 + ".csv", *MODEL],
                        {src: data}, expect="fail", text="too long", code=1))
    for cmd, src in (("image", "in.jpg"), ("video", "in.mp4")):
        files = {src: jpg if cmd == "image" else mp4}
        dst = "out.png" if cmd == "image" else "out.mp4"
        out += [
            Case(f"path/{cmd} input is a folder", [cmd, ".", dst, *MODEL], {},   # `image` takes folders of photos
                 "fail" if cmd == "video" else "any", "is a folder, not a" if cmd == "video" else ""),
            Case(f"path/{cmd} input is /dev/null", [cmd, "/dev/null", dst, *MODEL], {}, "fail", "is a device"),
            Case(f"path/{cmd} input is /dev/zero", [cmd, "/dev/zero", dst, *MODEL], {}, "fail", "is a device"),
            Case(f"path/{cmd} input missing", [cmd, "missing" + Path(src).suffix, dst, *MODEL], {}, "fail",
                 "no such file"),
            Case(f"path/{cmd} output is a folder", [cmd, src, ".", *MODEL], files, "fail", "is a folder"),
            Case(f"path/{cmd} output is /dev/null", [cmd, src, "/dev/null", *MODEL], files, "fail", "is a device"),
            Case(f"path/{cmd} output is /dev/full", [cmd, src, "/dev/full", *MODEL], files, "fail", "is a device"),
            Case(f"path/{cmd} output folder missing", [cmd, src, "no/such/" + dst, *MODEL], files, "fail",
                 "output folder does not exist"),
            Case(f"path/{cmd} output is the input", [cmd, src, src, *MODEL], files, "fail", "is the input"),
            Case(f"path/{cmd} output is ./", [cmd, src, "./", *MODEL], files, "fail", "is a folder"),
        ]
    out.append(Case("path/image to .xyz", ["image", "in.jpg", "out.xyz", *MODEL], {"in.jpg": jpg}, "fail",
                    "cannot write images as .xyz", code=2))
    out.append(Case("path/image to .exr (disabled codec)", ["image", "in.jpg", "out.exr", *MODEL], {"in.jpg": jpg},
                    "fail", "cannot write images as .exr", code=2))
    for ext in (".jpg", ".webp", ".bmp", ".tif", ".jp2", ".pgm", ".pbm", ".ppm", ".ras", ".hdr", ".gif", ".avif"):
        out.append(Case(f"path/image to {ext}", ["image", "in.jpg", "out" + ext, *MODEL], {"in.jpg": jpg}, "ok"))

    # option values
    for cmd, src, dst, data in (("video", "in.mp4", "out.mp4", mp4), ("image", "in.jpg", "out.png", jpg)):
        for opt, value in [("--lip-strength", "nan"), ("--eye-strength", "inf"), ("--lip-strength", "2"),
                           ("--lip-color", "notacolour"), ("--max-faces", "0"), ("--threads", "0"),
                           ("--model", "nosuchmodel"), ("--draw", "sparkles")]:
            bad_colour = opt == "--lip-color"
            out.append(Case(f"option/{cmd} {opt} {value}", [cmd, src, dst, *MODEL, opt, value], {src: data}, "fail",
                            "bad colour" if bad_colour else opt if opt != "--model" else "nosuchmodel",
                            code=None if bad_colour or opt == "--model" else 2))
    for opt, value in [("--beta", "nan"), ("--beta", "-1"), ("--min-cutoff", "0"), ("--min-cutoff", "inf"),
                       ("--preset", "warp"), ("--crf", "99"), ("--smooth", "kalman")]:
        out.append(Case(f"option/video {opt} {value}", ["video", "in.mp4", "out.mp4", *MODEL, opt, value],
                        {"in.mp4": mp4}, "fail", opt, code=2))
    out.append(Case("option/model file that is text", ["image", "in.jpg", "out.png", "--model", "m.onnx"],
                    {"in.jpg": jpg, "m.onnx": b"not a model"}, "fail"))
    out.append(Case("option/model file that is a folder", ["image", "in.jpg", "out.png", "--model", "."],
                    {"in.jpg": jpg}, "fail"))
    for serve, text in [("127.0.0.1:99999", "HOST:PORT"), ("[::1]", "HOST:PORT"), ("localhost:http", "HOST:PORT"),
                        ("no.such.host.invalid:8080", "unknown host"), ("8.8.8.8:8080", "cannot serve"),
                        ("1.2.3.4.5:80", "unknown host")]:
        out.append(Case(f"option/--serve {serve}", ["webcam", "--no-window", "--serve", serve, *MODEL], {}, "fail",
                        text, code=2))
    out.append(Case("option/--camera 99", ["webcam", "--camera", "99", "--no-window", *MODEL], {}, "fail",
                    "no camera at index 99"))
    out.append(Case("option/--camera missing file", ["webcam", "--camera", "nope.mp4", "--no-window", *MODEL], {},
                    "fail", "no such file"))
    out.append(Case("option/--camera unreachable stream", ["webcam", "--camera", "rtsp://127.0.0.1:9/x",
                                                           "--no-window", *MODEL], {}, "fail", "cannot read video"))
    out.append(Case("option/bench --json into a missing folder", ["bench", "--json", "no/such/x.json"], {}, "fail",
                    "output folder does not exist", code=2))
    out.append(Case("option/bench --json is a folder", ["bench", "--json", "."], {}, "fail", "is a folder", code=2))
    out.append(Case("option/bench --out is a file", ["bench", "--out", "f.txt"], {"f.txt": b"x"}, "fail",
                    "is not a folder", code=2))
    out.append(Case("option/eval --data missing", ["eval", "--data", "nothere", *MODEL], {}, "fail",
                    "no such data folder"))

    # signals while a video is being written: exit 128 + signal, the partial named, nothing else left
    long_clip = _long_clip()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        out.append(Case(f"signal/{sig.name} mid-run", ["video", "in.mp4", "out.mp4", *MODEL], {"in.mp4": long_clip,
                                                                                             "out.mp4": b"older"},
                        "fail", "interrupted", code=128 + sig, signal_after_start=sig))
    return out


_LONG: list = []


def _long_clip() -> bytes:
    if not _LONG:
        with tempfile.TemporaryDirectory() as tmp:
            _LONG.append(_clip(Path(tmp) / "long.mp4", n=1200, size=(320, 240)))
    return _LONG[0]


# --- running and judging ---------------------------------------------------------------------------------

def _is_progress(line: str) -> bool:
    return "\r" in line or line.startswith(("video:", "bench:"))


def _readable(path: Path) -> bool:
    if path.suffix.lower() in (".mp4", ".mkv", ".mov", ".webm"):
        try:
            with av.open(str(path)) as c:
                return any(True for _ in c.decode(video=0))
        except (av.error.FFmpegError, ValueError):
            return False
    return cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_UNCHANGED) is not None


def run_case(case: Case, root: Path) -> Verdict:
    folder = root / hashlib.sha1(case.name.encode()).hexdigest()[:12]
    folder.mkdir()
    for name, data in case.files.items():
        (Path(os.fsdecode(os.path.join(os.fsencode(folder), os.fsencode(name))))).write_bytes(data)
    before = {n: hashlib.sha1((folder / n).read_bytes()).hexdigest() for n in os.listdir(folder)}
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-m", "rtalign.cli", *case.args]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    problems = []
    if case.signal_after_start:
        deadline = time.time() + 60
        while proc.poll() is None and time.time() < deadline and not any(
                n.startswith(".out.") for n in os.listdir(folder)):
            time.sleep(0.05)
        time.sleep(0.2)                  # some frames written; a fast machine reads the whole clip in ~3 s
        proc.send_signal(case.signal_after_start)
    try:
        out, err = proc.communicate(timeout=case.timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        problems.append("hang")
    seconds = time.perf_counter() - t0
    text = (out + err).decode("utf-8", "replace")
    code = proc.returncode
    if code is not None and code < 0:
        problems.append(f"crash (signal {-code})")
    if "Traceback" in text or "Fatal Python error" in text:
        problems.append("traceback")
    after = set(os.listdir(folder))
    changed = [n for n, h in before.items() if n not in after or
               hashlib.sha1((folder / n).read_bytes()).hexdigest() != h]
    if changed and not case.signal_after_start:
        problems.append(f"input changed: {changed}")
    new = sorted(after - set(before))
    hidden = [n for n in new if n.startswith(".")]
    if hidden:
        problems.append(f"left behind: {hidden}")
    lines = [ln for ln in err.decode("utf-8", "replace").splitlines() if ln.strip() and not _is_progress(ln)]
    if code == 0:
        if case.expect == "fail":
            problems.append("succeeded, expected a failure")
        outputs = [folder / os.fsdecode(n) for n in new]
        if case.args[0] in ("image", "video") and not any(_readable(p) for p in outputs):
            problems.append("exit 0 without a readable output")
    elif code is not None and code > 0:
        if case.expect == "ok":
            problems.append("failed, expected success")
        if len(lines) != 1 and not case.signal_after_start:
            problems.append(f"{len(lines)} lines on stderr")
        named = [n for n in new if os.fsencode(n).decode("utf-8", "backslashreplace") not in text]
        if named:
            problems.append(f"left behind (not named): {named}")
    if case.text and case.text not in text:
        problems.append(f"expected text {case.text!r} missing")
    if case.code is not None and code != case.code:
        problems.append(f"exit {code}, expected {case.code}")
    shutil.rmtree(folder, ignore_errors=True)
    return Verdict(case.name, problems, code, seconds, text.strip().splitlines()[-1][:200] if text.strip() else "")


def sweep(short: bool = False, jobs: int = 3, only: str = "", root: Path | None = None) -> list[Verdict]:
    """Build the seeds and cases, run them (every 8th case when short; those whose name contains `only`),
    return one verdict per case."""
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(root or tmp)
        seed_dir = base / "seeds"
        seed_dir.mkdir(exist_ok=True)
        all_cases = cases(seeds(seed_dir))
        chosen = all_cases
        if short:       # every 8th, and one case stopped by a signal (once, when it is among them)
            chosen = all_cases[::8]
            chosen += [c for c in all_cases if c.signal_after_start and c not in chosen][:1]
        chosen = [c for c in chosen if only in c.name]
        runs = base / "runs"
        runs.mkdir(exist_ok=True)
        with ThreadPoolExecutor(jobs) as pool:
            return list(pool.map(lambda c: run_case(c, runs), chosen))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--short", action="store_true", help="every 8th case only")
    parser.add_argument("--jobs", type=int, default=3)
    parser.add_argument("-k", dest="only", default="", help="only cases whose name contains this")
    parser.add_argument("-v", dest="verbose", action="store_true", help="one line per case: exit code, name, last line")
    args = parser.parse_args()
    t0 = time.perf_counter()
    verdicts = sweep(args.short, args.jobs, args.only)
    if args.verbose:
        for v in verdicts:
            print(f"{v.code!s:>4} {v.seconds:5.1f}s {v.case}: {v.tail}")
    bad = [v for v in verdicts if v.problems]
    kinds = {}
    for v in bad:
        for p in v.problems:
            kinds[p.split(":")[0].split(" (")[0]] = kinds.get(p.split(":")[0].split(" (")[0], 0) + 1
    for v in bad:
        print(f"FAIL {v.case}: {'; '.join(v.problems)} [exit {v.code}] {v.tail}")
    ok = sum(v.code == 0 for v in verdicts)
    print(f"{len(verdicts)} cases in {time.perf_counter() - t0:.0f} s: {ok} succeeded, {len(verdicts) - ok} refused "
          f"cleanly or failed; problems: {len(bad)} cases {kinds or ''}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
