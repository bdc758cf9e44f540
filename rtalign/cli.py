"""The `rtalign` command line: parse options, call the library, report. No logic lives here."""
from __future__ import annotations

import json
import logging
import math
import os
import re
import shlex
import signal
import socket
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import click

from .detectors import DEFAULT_DETECTOR, DETECTOR_NAMES
from . import __version__
from .errors import ModelError, RtalignError, shown
from .io_safety import partial_path
from .models import MODEL_NAMES
from .models.session import DEVICES
from .pipeline.sinks import X264_PRESETS
from .effects import STYLES
from .render import DRAW_STYLES
from .runtime import MAX_THREADS
from .smoothing import CUTOFF_RANGE, MAX_BETA, SMOOTHERS, OneEuroOptions


class _UsageLine(click.ClickException):
    """A bad argument, said in one line (click's own usage errors print the usage block too)."""
    exit_code = 2


class _Interrupted(BaseException):
    """A stop signal (SIGTERM, SIGHUP) where the work has nothing to finalise: unwind, then exit 128 + signum."""

    def __init__(self, signum: int):
        self.signum = signum


class _Group(click.Group):
    """Turns the package's own errors into one line on stderr and exit code 1, never a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except RtalignError as e:
            raise click.ClickException(str(e)) from None
        except click.UsageError as e:
            hint = f" (see '{e.ctx.command_path} --help')" if e.ctx else ""
            raise _UsageLine(e.format_message() + hint) from None
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except _Interrupted as e:
            click.echo("interrupted", err=True)
            sys.exit(128 + e.signum)


class _StopSignals:
    """SIGINT, SIGTERM and SIGHUP set `event` instead of killing the process, so the work can finish what
    it wrote; `signum` remembers which arrived (exit code 128 + signum). With `unwind`, the signal raises
    _Interrupted at once instead (work with nothing to finalise). A second signal always raises at once (a
    running pipeline gives its stages up to 3 s to leave their calls, and goes at a third: Runner._join)."""

    NAMES = ("SIGINT", "SIGTERM", "SIGHUP")

    def __init__(self, unwind: bool = False):
        self.event, self.signum, self.unwind = threading.Event(), None, unwind
        self._previous = {}
        self._settled = False

    def _handle(self, signum, _frame):
        if self._settled:
            self.signum = self.signum or signum
            self.event.set()
            return
        if self.unwind or self.event.is_set():
            raise _Interrupted(signum)
        self.signum = signum
        self.event.set()

    def settle(self) -> None:
        """The work is over, only reporting is left: a signal from now on is only noted. Raised there (Ctrl-C
        pressed twice, the second as the run ended), it could land in a finaliser (the progress bar's), which
        prints it as a traceback and goes on."""
        self._settled = True

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():   # only the main thread may install them
            for name in self.NAMES:
                if hasattr(signal, name):
                    self._previous[name] = signal.signal(getattr(signal, name), self._handle)
        return self

    def __exit__(self, *exc):
        for name, handler in self._previous.items():
            signal.signal(getattr(signal, name), handler)

    @property
    def exit_code(self) -> int:
        return 128 + (self.signum or signal.SIGINT)


class FiniteFloat(click.FloatRange):
    """A float in range that is also finite: click's FloatRange lets nan through any bound."""

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


class OutputFile(click.Path):
    """An output file checked before any work: its folder exists and is writable, it is not a folder or a
    device, and `check` (e.g. the format by extension) accepts it."""

    def __init__(self, check=None):
        super().__init__()
        self.check = check

    def convert(self, value, param, ctx):
        from .io_safety import check_destination
        value = super().convert(value, param, ctx)
        try:
            check_destination(value)
            if self.check:
                self.check(value)
        except RtalignError as e:
            self.fail(str(e), param, ctx)
        return value


class OutputFolder(click.Path):
    """A folder to write into: it exists, or the nearest folder above it that exists lets it be made."""

    def __init__(self):
        super().__init__()

    def convert(self, value, param, ctx):
        import os
        value = super().convert(value, param, ctx)
        existing = Path(os.path.abspath(value))
        while not existing.exists():
            existing = existing.parent
        if not existing.is_dir():
            self.fail(f"{existing} exists and is not a folder", param, ctx)
        if not os.access(existing, os.W_OK):
            self.fail(f"{existing} is not writable", param, ctx)
        return value


def _video_output(dst):
    from .pipeline.sinks import check_video_output
    check_video_output(dst)


def _image_output(dst):
    from .image import check_image_output
    check_image_output(dst)


class Address(click.ParamType):
    """HOST:PORT, [IPV6]:PORT or :PORT (loopback), checked by binding to it once: a bad host, a busy or
    forbidden port is reported before any work starts."""
    name = "HOST:PORT"
    _FORM = re.compile(r"\[(?P<v6>[^\]]+)\]:(?P<p6>\d+)|(?P<host>[^:\[\]]*):(?P<port>\d+)")

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        m = self._FORM.fullmatch(value.strip())
        port = int(m["p6"] or m["port"]) if m else 0
        if not 0 < port < 65536:
            self.fail(f"expected HOST:PORT such as 127.0.0.1:8080 or [::1]:8080 (port 1-65535), got {value!r}",
                      param, ctx)
        host = m["v6"] or m["host"] or "127.0.0.1"
        try:
            family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
            with socket.socket(family, kind, proto) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind(address)
        except socket.gaierror as e:
            self.fail(f"unknown host {host!r} ({e.strerror})", param, ctx)
        except OSError as e:
            self.fail(f"cannot serve on {value}: {e.strerror}", param, ctx)
        return host, port


def model_option(f=None, threads: int = 2):
    """--model/--device/--threads. Video commands default to 1 inference thread: decoding and
    H.264 encoding keep the other cores busy, and measured throughput drops with 2 on 2 cores."""
    def wrap(f):
        f = click.option("--model", "-m", default="resnet", show_default=True,
                         help=f"landmark model: {', '.join(MODEL_NAMES)}, or a .onnx/.npz file")(f)
        f = click.option("--device", type=click.Choice(DEVICES), default="cpu", show_default=True)(f)
        return click.option("--threads", type=click.IntRange(1, MAX_THREADS), default=threads, show_default=True,
                            help="inference threads (the cascade model uses one)")(f)
    return wrap(f) if f else wrap


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="rtalign")
@click.option("-v", "--verbose", is_flag=True, help="log what is loaded and chosen")
def main(verbose: bool):
    """Real-time 68-point face alignment."""
    # a user reads "WARNING: …"; with --verbose the module that said it helps more
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(name)s: %(message)s" if verbose else "%(levelname)s: %(message)s")
    if not verbose:   # OpenCV's own log (a dozen lines while probing a missing camera) only with --verbose
        import cv2
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)


def detector_option(f):
    """--detector: the face detector that acquires faces (choices: the detector registry's keys)."""
    return click.option("--detector", type=click.Choice(DETECTOR_NAMES), default=DEFAULT_DETECTOR, show_default=True,
                        help="face detector: blazeface (CNNs, faces from 48 px, heads rolled up to about ±90°), blazeface-full (full-range "
                             "network alone, slower), blazeface-short (near faces, cheapest), haar (upright frontal faces)")(f)


@main.command("eval")
@model_option
@click.option("--data", type=click.Path(), default=None,
              help="folder of NAME.jpg + NAME.pts [default: $RTALIGN_DATA/test_common, the 300-W test faces]")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object instead of a table")
@click.option("--runs", type=click.IntRange(1), default=200, show_default=True, help="timing runs")
@click.option("--boxes", type=click.Choice(["gt", "detector"]), default="gt", show_default=True,
              help="gt: the 300-W protocol (ground-truth box); detector: --detector finds each face first "
                   "(NME over found faces, misses reported and counted as FR@10 failures)")
@detector_option
def eval_cmd(model, device, threads, data, as_json, runs, boxes, detector):
    """Accuracy (NME, MSE@256, FR@10, AUC@10) and ms/face on an annotated folder."""
    from .data import data_root
    from .detectors import load_detector
    from .evaluate import evaluate
    from .models import load_model

    given = click.get_current_context().get_parameter_source("detector") is click.core.ParameterSource.COMMANDLINE
    if given and boxes != "detector":
        raise click.UsageError("--detector only applies with --boxes detector (the default protocol gives "
                               "each model the ground-truth box)")
    folder = data_root() / "test_common" if data is None else data
    lm = load_model(model, device, threads)
    det = load_detector(detector) if boxes == "detector" else None
    result = {"model": model, "data": str(folder), "threads": lm.threads, "boxes": boxes,
              **({"detector": detector} if det else {}), **evaluate(lm, folder, runs, progress=not as_json, detector=det)}
    if as_json:       # strict JSON: a figure that is not a number (a model that gave NaN points) is null
        click.echo(json.dumps({k: None if isinstance(v, float) and not math.isfinite(v) else v
                               for k, v in result.items()}, allow_nan=False))
        return
    click.echo(f"{'model':10} {'n':>5} {'NME %':>7} {'MSE@256':>8} {'FR@10 %':>8} {'AUC@10':>7} {'ms/face':>8}")
    na = lambda v, fmt: "n/a" if v is None else format(v, fmt)     # no face detected: nothing to average
    click.echo(f"{model:10} {result['n']:5d} {na(result['nme'], '.3f'):>7} {na(result['mse256'], '.2f'):>8} "
               f"{result['fr10']:8.2f} {result['auc10']:7.4f} {result['ms_per_face']:8.3f}")
    if det:
        click.echo(f"{detector} found {result['detected']} of {result['n']} faces (miss rate {result['miss_rate']:.2f} %)")


def effect_options(f):
    """--lip-color/--eye-color and friends, shared by image, video and webcam."""
    for opt in reversed([
        click.option("--lip-color", default=None, help="recolour lips: CSS name or #rrggbb"),
        click.option("--lip-strength", type=FiniteFloat(0, 1), default=0.6, show_default=True),
        click.option("--eye-color", default=None, help="recolour irises: CSS name or #rrggbb"),
        click.option("--eye-strength", type=FiniteFloat(0, 1), default=0.6, show_default=True),
        click.option("--style", type=click.Choice(STYLES), default="natural", show_default=True,
                     help="natural: texture kept; flat: the study's polygon fill"),
    ]):
        f = opt(f)
    return f


def landmarks_option(f):
    """--landmarks FILE, shared by image, video and webcam."""
    return click.option("--landmarks", type=click.Path(dir_okay=False), default=None,
                        help="also write every face's landmarks and head pose, one row per face per frame "
                             "(.csv, .jsonl, or .parquet with pyarrow)")(f)


def _effect_pairs(effects: dict) -> tuple:
    """The colour options as the (name, value) pairs BatchOptions carries to worker processes."""
    return tuple(sorted(effects.items())) if make_effects(**effects) else ()


def make_effects(lip_color, lip_strength, eye_color, eye_strength, style) -> list:
    from .effects import Recolor
    if lip_color is None and eye_color is None:
        return []
    return [Recolor(lip_color, eye_color, lip_strength, eye_strength, style)]


@main.command("image")
@click.argument("src", type=click.Path())
@click.argument("dst", type=click.Path(), required=False)
@model_option
@click.option("--draw", type=click.Choice(DRAW_STYLES), default="points", show_default=True)
@click.option("--max-faces", type=click.IntRange(1), default=None, help="at most this many faces [default: all]")
@landmarks_option
@detector_option
@effect_options
def image_cmd(src, dst, model, device, threads, draw, max_faces, landmarks, detector, **effects):
    """Draw the landmarks of every face found in photo SRC into DST (a .png DST is lossless).

    SRC may be a folder of photos: DST is then a folder (same names; a photo whose output exists is
    skipped, as batch does: delete it to redo it), and --landmarks one file for all."""
    from .image import process_image

    if Path(src).is_dir():
        _image_folder(src, dst, model, device, threads, draw, max_faces, landmarks, detector, effects)
        return
    if dst is None and landmarks is None:
        raise click.UsageError("give DST and/or --landmarks FILE")
    if dst is not None:
        OutputFile(_image_output).convert(dst, None, click.get_current_context())
    with _StopSignals(unwind=True):
        n = process_image(src, dst, model=model, device=device, threads=threads, draw=draw, max_faces=max_faces,
                          effects=make_effects(**effects), landmarks=landmarks, detector=detector)
    click.echo(f"{n} face(s) → {', '.join(shown(p) for p in (dst, landmarks) if p)}")


def _image_folder(src, dst, model, device, threads, draw, max_faces, landmarks, detector, effects):
    from .batch import IMAGE_SUFFIXES, BatchOptions, align_folder, plan, preload
    if dst is None and landmarks is None:
        raise click.UsageError("give an output folder and/or --landmarks FILE")
    if dst is not None:
        OutputFolder().convert(dst, None, click.get_current_context())
    opts = BatchOptions(model=model, device=device, threads=threads, max_faces=max_faces, draw=draw,
                        effects=_effect_pairs(effects), media=dst is not None, detector=detector)
    preload(opts)
    total = len(plan(src, dst or src, opts, IMAGE_SUFFIXES))
    if not total:
        raise click.UsageError(f"no photos in {shown(src)}")
    with _rows_kept_on_interrupt(landmarks, "the rows of the photos done"):
        results = _with_bar(total, lambda bar: align_folder(src, dst or src, opts, landmarks, bar))
    _report_files(results)


@contextmanager
def _rows_kept_on_interrupt(landmarks, what: str):
    """A run that a signal unwinds (_Interrupted: a photo folder's, a video's second Ctrl-C) keeps the landmark
    rows done in FILE.partial.EXT, as one stopped by a single signal does: say where (it said "interrupted")."""
    began = time.time()
    try:
        yield
    except _Interrupted as e:
        kept = partial_path(Path(landmarks)) if landmarks is not None else None
        if kept is None or not kept.exists() or kept.stat().st_mtime < began - 1:      # not this run's
            raise
        click.echo(f"interrupted: {what} in {shown(kept)}", err=True)
        sys.exit(128 + e.signum)


class _SignalsAsCtrlC(_StopSignals):
    """SIGTERM and SIGHUP raise KeyboardInterrupt, as Ctrl-C does, so the cleanup the batch code runs for
    Ctrl-C (temporary and partial files deleted) runs for them too; `signum` remembers which arrived. Only
    the first does: a second one (Ctrl-C pressed twice) cut that cleanup short, and the worker pool's
    shutdown then hung for good, its workers left running. A third ends the process at once, cleanup or not
    (a worker stuck in one call)."""

    _seen = 0

    def _handle(self, signum, _frame):
        self._seen += 1
        if self._seen == 3:
            os._exit(128 + self.signum)
        if self._seen == 1:
            self.signum = signum
            raise KeyboardInterrupt


def _with_bar(total: int, run):
    """Call run(progress) with a progress bar over files; returns what run returns. Ctrl-C, SIGTERM and
    SIGHUP stop it, leave no temporary file behind and exit 128 + the signal."""
    from tqdm import tqdm
    with _SignalsAsCtrlC() as signals, tqdm(total=total, unit="file", desc="files", dynamic_ncols=True) as bar:
        try:
            return run(lambda result: bar.update(1))
        except KeyboardInterrupt:
            raise _Interrupted(signals.signum or signal.SIGINT) from None


#: Control characters as escapes: a file name may hold a newline (a "one-line" failure split in two) or a
#: terminal's escape sequence.
_CONTROL = {**{c: f"\\x{c:02x}" for c in (*range(32), 127)}, 9: "\\t", 10: "\\n", 13: "\\r"}


def _report_files(results) -> None:
    """One line per failed file with its reason (the file named once), a summary line, and exit code 1 if
    any failed."""
    failed = [r for r in results if not r.ok]
    for r in failed:
        src = shown(r.src)
        said = r.reason if r.reason.startswith(src + " ") else f"{src}: {r.reason}"   # "X is empty", not "X: X is empty"
        click.echo(f"failed: {said}".translate(_CONTROL), err=True)
    skipped = sum(r.skipped for r in results)
    click.echo(f"{len(results) - len(failed) - skipped} done, {skipped} skipped (already complete), "
               f"{len(failed)} failed")
    if failed:
        sys.exit(1)


def smoothing_options(f):
    """--smooth/--min-cutoff/--beta, shared by video, webcam and batch."""
    for opt in reversed([
        click.option("--smooth", type=click.Choice(SMOOTHERS), default="oneeuro", show_default=True,
                     help="temporal smoothing of the landmarks"),
        click.option("--min-cutoff", type=FiniteFloat(*CUTOFF_RANGE), default=OneEuroOptions.min_cutoff,
                     show_default=True, help="One Euro cutoff at rest, Hz (lower: steadier, more lag)"),
        click.option("--beta", type=FiniteFloat(0, MAX_BETA), default=OneEuroOptions.beta, show_default=True,
                     help="One Euro speed coefficient (higher: less lag in motion)"),
    ]):
        f = opt(f)
    return f


def tracking_options(f):
    """Faces, smoothing and drawing options shared by video and webcam."""
    for opt in reversed([
        click.option("--draw", type=click.Choice(DRAW_STYLES), default="points", show_default=True),
        click.option("--max-faces", type=click.IntRange(1), default=4, show_default=True),
        smoothing_options,
        click.option("--stats", is_flag=True, help="print per-stage timings at the end"),
        detector_option,
    ]):
        f = opt(f)
    return f


def _tracker(model, device, threads, max_faces, smooth, min_cutoff, beta, detector=DEFAULT_DETECTOR, live=False):
    from .pipeline import build_tracker
    smoothing = OneEuroOptions(min_cutoff, beta) if smooth == "oneeuro" else None
    return build_tracker(model, device, threads, max_faces, smoothing, detector, background=live)


def _report(stats, show: bool, live: bool = False) -> None:
    """--stats: per-stage times, throughput, detector use; latency for live sources only (a file's frames
    wait in the stages' queues by design, so their capture → output time says nothing of lag)."""
    if show:
        s = stats.summary()
        click.echo("per-stage median ms: " + ", ".join(f"{k[:-3]} {s[k]:.2f}" for k in
                                                       ("capture_ms", "landmarks_ms", "render_ms", "sink_ms",
                                                        "events_ms")), err=True)
        latency = (f", latency p50 {s['latency_ms_p50']:.1f} ms p95 {s['latency_ms_p95']:.1f} ms "
                   f"p99 {s['latency_ms_p99']:.1f} ms" if live else "")
        click.echo(f"frames {s['frames_out']} (dropped {s['dropped']}), {s['fps']:.1f} FPS{latency}, detector on "
                   f"{100 * s['detector_share']:.1f} % of frames", err=True)


@main.command("video")
@click.argument("src", type=click.Path())
@click.argument("dst", type=OutputFile(_video_output), required=False)
@model_option(threads=1)
@tracking_options
@effect_options
@landmarks_option
@click.option("--preset", type=click.Choice(X264_PRESETS), default="veryfast", show_default=True,
              help="encoder speed (x264 preset; for .webm it sets VP9's cpu-used)")
@click.option("--crf", type=click.IntRange(0, 51), default=20, show_default=True, help="x264 quality (lower: better)")
@click.option("--allow-truncated", is_flag=True,
              help="accept an input that ends early or stops decoding: write DST from the frames that decode")
def video_cmd(src, dst, model, device, threads, draw, max_faces, smooth, min_cutoff, beta, stats, detector, landmarks, preset,
              crf, allow_truncated, **effects):
    """Landmarks (and colour effects) on every frame of SRC, written to DST (.mp4/.mov/.mkv H.264, .webm VP9)
    with SRC's audio, each frame at its input time. Interrupted (Ctrl-C, SIGTERM, SIGHUP): what was done
    goes to DST.partial.EXT.

    With --landmarks F.csv and no DST: analysis only (no drawing, no encoding), much faster."""
    from tqdm import tqdm
    from .io_safety import check_input_file, check_output
    from .pipeline import analyze_video, process_video

    if dst is None and landmarks is None:
        raise click.UsageError("give DST and/or --landmarks FILE")
    if "://" not in src:                        # both before the model loads
        check_input_file(src)
    if dst is not None:
        check_output(src, dst)
    bars = []

    def progress(run_stats, total):  # the bar appears with the first frame, not before an input error
        if not bars:
            bars.append(tqdm(total=total or None, unit="frame", desc="video", dynamic_ncols=True))
        if bars[0].total and bars[0].n >= bars[0].total:    # an estimate that fell short (joined recordings)
            bars[0].total = None
        bars[0].update(1)
    with _StopSignals() as signals, _rows_kept_on_interrupt(landmarks, "the rows of the frames done"):
        tracker = _tracker(model, device, threads, max_faces, smooth, min_cutoff, beta, detector)
        try:
            if dst is None:
                result = analyze_video(src, landmarks, tracker=tracker, progress=progress, stop=signals.event,
                                       allow_truncated=allow_truncated)
            else:
                result = process_video(src, dst, tracker=tracker, draw=draw, effects=make_effects(**effects),
                                       progress=progress, preset=preset, crf=crf, stop=signals.event,
                                       allow_truncated=allow_truncated, landmarks=landmarks)
            if bars and not result.interrupted:     # all read: the count is known (audio may outlast the video)
                bars[0].total = bars[0].n
        finally:
            signals.settle()
            for bar in bars:
                bar.close()
            bars.clear()        # the bar's finaliser runs here, where a signal no longer raises
    _report(result, stats)
    _exit_if_interrupted(result, signals)
    outputs = ", ".join(shown(p) for p in (dst, landmarks) if p)
    click.echo(f"{result.frames_out} frames → {outputs} ({result.fps:.1f} FPS)")


def _exit_if_interrupted(result, signals: _StopSignals) -> None:
    """Say where the partial output went (never under the final name), then exit 128 + the signal."""
    if result.interrupted:
        where = [f"{n} frames in {shown(p)}" for p, n in result.partial_frames]
        done = " and ".join(where) if where else "nothing written"
        click.echo(f"interrupted: {done}", err=True)
        sys.exit(signals.exit_code)


def _ray_address(ctx, param, value):
    """--ray's address, refused when it names a folder: `--ray IN_DIR OUT_DIR` took IN_DIR as the address
    (click would only say that OUT_DIR is missing)."""
    if value not in (None, "local") and Path(value).is_dir():
        raise click.BadParameter(f"{value!r} is a folder, not a Ray address: put --ray after the folders, or "
                                 "write --ray=ADDRESS")
    return value


@main.command("batch")
@click.argument("in_dir", type=click.Path())
@click.argument("out_dir", type=OutputFolder())
@model_option(threads=1)
@click.option("--draw", type=click.Choice(DRAW_STYLES), default="points", show_default=True)
@click.option("--max-faces", type=click.IntRange(1), default=None, help="at most this many faces [default: all]")
@smoothing_options
@detector_option
@effect_options
@click.option("--landmarks", type=click.Choice(["csv", "jsonl", "parquet"]), default=None,
              help="one landmarks file per input, named after it (clip.mp4 → clip.mp4.csv)")
@click.option("--only-landmarks", is_flag=True, help="write the landmarks files only: no drawn photos or videos")
@click.option("--workers", type=click.IntRange(1, 256), default=1, show_default=True,
              help="local worker processes (with --ray on a local instance: its CPUs)")
@click.option("--ray", "ray_address", is_flag=False, flag_value="local", default=None, metavar="[ADDRESS]",
              callback=_ray_address,
              help="run the files as Ray tasks: a new local Ray instance, or the cluster at --ray=ADDRESS (or 'auto'); "
                   "after the folders, since it takes a following word as its address")
def batch_cmd(in_dir, out_dir, model, device, threads, draw, max_faces, smooth, min_cutoff, beta, detector, landmarks,
              only_landmarks, workers, ray_address, **effects):
    """Every video and photo under IN_DIR, drawn into OUT_DIR (same relative paths; .avi and .m4v videos
    as NAME.mp4) and/or as landmarks.

    Resumable: inputs whose outputs all exist are skipped. A file that fails is listed with its reason
    at the end, after all the others ran; the exit code is then 1. Ctrl-C, SIGTERM, SIGHUP stop it and
    leave no temporary or partial file; the files done stay."""
    from .batch import BatchOptions, plan, preload, run_batch

    if only_landmarks and landmarks is None:
        raise click.UsageError("--only-landmarks needs --landmarks csv|jsonl|parquet")
    opts = BatchOptions(model=model, device=device, threads=threads, max_faces=max_faces, draw=draw,
                        smoothing=OneEuroOptions(min_cutoff, beta) if smooth == "oneeuro" else None,
                        effects=_effect_pairs(effects), landmarks=f".{landmarks}" if landmarks else None,
                        media=not only_landmarks, detector=detector)
    preload(opts)
    jobs = plan(in_dir, out_dir, opts)
    if not jobs:
        raise click.UsageError(f"no videos or photos in {in_dir}")
    address = False if ray_address is None else (None if ray_address == "local" else ray_address)
    _report_files(_with_bar(len(jobs), lambda bar: run_batch(jobs, opts, workers, address, bar)))


@main.command("demo")
@click.argument("dst", type=OutputFile(_video_output), default="rtalign_demo.mp4")
@model_option(threads=1)
def demo_cmd(dst, model, device, threads):
    """No camera needed: a generated 720p clip of the shipped portrait, tracked, lips and irises recoloured, the mesh drawn."""
    import tempfile
    from .effects import Recolor
    from .pipeline import process_video
    from .synth import demo_clip

    with tempfile.TemporaryDirectory() as tmp, _StopSignals() as signals:
        clip = Path(tmp) / "demo_input.mp4"
        demo_clip(clip, n_frames=150)
        tracker = _tracker(model, device, threads, 4, "oneeuro", OneEuroOptions.min_cutoff, OneEuroOptions.beta)
        result = process_video(clip, dst, tracker=tracker, draw="mesh", stop=signals.event,
                               effects=[Recolor(lip_color="crimson", eye_color="dodgerblue")])
        signals.settle()
    _report(result, True)
    _exit_if_interrupted(result, signals)
    click.echo(f"{result.frames_out} frames, face found on {result.frames_with_faces} → {dst}")


@main.command("webcam")
@click.option("--camera", default="0", show_default=True, help="camera index, or a video file / stream URL played live")
@model_option(threads=1)
@tracking_options
@effect_options
@click.option("--vcam", is_flag=True, help="send the result to a virtual camera (for video calls)")
@click.option("--serve", type=Address(), default=None,
              help="MJPEG preview over HTTP, e.g. 127.0.0.1:8080 or [::1]:8080")
@click.option("--no-window", is_flag=True, help="no preview window")
@landmarks_option
def webcam_cmd(camera, model, device, threads, draw, max_faces, smooth, min_cutoff, beta, stats, detector, vcam, serve,
               no_window, landmarks, **effects):
    """Live landmarks from a camera to a window, a virtual camera and/or a browser."""
    from .pipeline import run_live

    with _StopSignals() as signals, _tracker(model, device, threads, max_faces, smooth, min_cutoff, beta, detector,
                                             live=True) as tracker:
        def announce(progress):     # on the first frame out: the camera gives frames and the server listens
            if serve and progress.frames_out == 1:
                host = f"[{serve[0]}]" if ":" in serve[0] else serve[0]
                click.echo(f"preview at http://{host}:{serve[1]}/", err=True)
        result = run_live(camera, tracker=tracker, draw=draw, effects=make_effects(**effects), window=not no_window,
                          vcam=vcam, serve=serve, stop=signals.event, landmarks=landmarks, on_frame=announce)
        signals.settle()
    _report(result, stats, live=True)
    if signals.signum not in (None, signal.SIGINT):   # Ctrl-C is how a live session normally ends: exit 0
        sys.exit(signals.exit_code)


@main.command("bench")
@click.option("--models", default=",".join(MODEL_NAMES), show_default=True, help="comma-separated model names")
@click.option("--peers", default="dlib", show_default=True, help="comma-separated peers ('' for none)")
@click.option("--quick", is_flag=True, help="a reduced run (≤ 2 min) for CI")
@click.option("--device", type=click.Choice(DEVICES), default="cpu", show_default=True)
@click.option("--json", "json_path", type=OutputFile(), default=None, help="also write the rows as JSON")
@click.option("--out", "out_dir", type=OutputFolder(), default="benchmarks", show_default=True,
              help="folder for RESULTS.md and the CED plot")
@detector_option
def bench_cmd(models, peers, quick, device, json_path, out_dir, detector):
    """Accuracy, speed, pipeline FPS, latency and jitter per model, dlib beside them."""
    from .bench import BenchOptions, run_bench
    from .bench.report import markdown_table, plot_ced, write_json, write_results

    opts = BenchOptions(models=tuple(m for m in models.split(",") if m), peers=tuple(p for p in peers.split(",") if p),
                        quick=quick, device=device, detector=detector)
    from .models import model_path
    try:
        for m in opts.models or [""]:       # "" names no model
            model_path(m)
    except ModelError as e:
        raise click.UsageError(f"--models needs model names from {', '.join(MODEL_NAMES)} or .onnx/.npz files, "
                               f"got {models!r} ({e})") from None
    if set(opts.peers) - {"dlib"}:
        raise click.UsageError(f"--peers: the one peer is dlib ('' for none), got {peers!r}")
    rows, curves, extras = run_bench(opts, progress=lambda msg: click.echo(f"bench: {msg}", err=True))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plot = "ced.png" if plot_ced(out / "ced.png", curves) else None
    command = (f"rtalign bench{' --quick' if quick else ''} --models {shlex.quote(models)} --peers {shlex.quote(peers)}"
               f"{' --device ' + device if device != 'cpu' else ''}"
               f"{' --detector ' + detector if detector != DEFAULT_DETECTOR else ''}")
    write_results(out / "RESULTS.md", rows, extras, command, plot, quick)
    if json_path:
        write_json(Path(json_path), rows)
    click.echo(markdown_table(rows))
    click.echo(f"lips + irises: {extras['effects_ms_per_face_1t']:.2f} ms per face (1280x720, one thread)")


if __name__ == "__main__":
    main()
