"""Whole folders: every video and photo under a folder, one by one, in local worker processes, or as
Ray tasks on a cluster. `process_file` is the one per-file function all three paths run, so their
results are the same bytes.

An output appears under its final name only when complete, so a rerun skips every input whose
outputs all exist (resumable); an input that fails is reported with a one-line reason and never
stops the others. Ctrl-C (KeyboardInterrupt) stops the run and leaves no temporary file; a video cut
short leaves nothing (no OUT.partial.EXT either: that name may be another input's output), so the rerun
does it again. Worker processes leave Ctrl-C to the parent, which stops them through a shared flag and
waits for their cleanup; a worker that dies (the out-of-memory killer) fails its file and the ones
queued behind it, which a rerun picks up. Ray tasks are cancelled (a KeyboardInterrupt in the task) and
waited for.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import shlex
import signal
import socket
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from .detectors import DEFAULT_DETECTOR
from .errors import InputError, RtalignError, TruncatedInputError, shown
from .export import check_format, open_writer
from .io_safety import partial_path
from .pipeline.sinks import VIDEO_FORMATS
from .smoothing import OneEuroOptions

log = logging.getLogger(__name__)

#: Videos are written back under the same name (H.264; VP9 for .webm), except containers the video sink
#: does not write (.m4v, .avi): those become NAME.mp4. Other files are ignored.
#: Videos a batch reads; those the sink cannot write (all after .webm) are drawn to NAME.mp4: MPEG-TS from
#: camcorders (.mts, .m2ts) and broadcasts, MPEG-PS (.mpg, .vob), and older containers.
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".m4v", ".avi", ".ts", ".mts", ".m2ts", ".mpg", ".mpeg", ".vob",
                  ".flv", ".wmv", ".3gp", ".ogv")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
_POLL_S = 0.1     # longest wait on Ray before a stop signal is acted on


@dataclass(frozen=True)
class BatchOptions:
    """What to do with every file. `landmarks`: a format (".csv", ".jsonl", ".parquet") for one landmarks
    file per input, named after it (`clip.mp4` → `clip.mp4.csv`), or None. `media`: also write the drawn
    photo / video. `effects`: keyword arguments of rtalign.effects.Recolor as (name, value) pairs, or ().
    `detector`: a name from rtalign.detectors.DETECTOR_NAMES. `max_faces`: None (every face) as offline work
    wants; live video keeps 4 for speed."""
    model: str = "resnet"
    detector: str = DEFAULT_DETECTOR
    device: str = "cpu"
    threads: int = 1
    max_faces: int | None = None
    draw: str = "points"
    smoothing: OneEuroOptions | None = field(default_factory=OneEuroOptions)
    effects: tuple = ()
    landmarks: str | None = None
    media: bool = True
    preset: str = "veryfast"
    crf: int = 20

    def __post_init__(self):
        if self.landmarks is not None:
            check_format(self.landmarks)


@dataclass(frozen=True)
class Job:
    """One input and the outputs it should produce (None: not wanted). `unreadable`: why `src` cannot be read
    (a folder under the input folder that could not be listed, a link to nothing, a pipe): the job then
    fails with that reason, never silently."""
    src: Path
    label: str                  # the landmarks' `file` column: the path relative to the input folder
    media: Path | None
    landmarks: Path | None
    unreadable: str | None = None

    @property
    def is_video(self) -> bool:
        return self.src.suffix.lower() in VIDEO_SUFFIXES

    @property
    def done(self) -> bool:
        return not self.unreadable and all(_is_file(p) for p in (self.media, self.landmarks) if p is not None)


def _is_file(path: Path) -> bool:
    """Path.is_file (a folder where an output belongs is no output: the run then fails on it with its reason),
    False too where the name cannot be looked up (too long for its folder)."""
    try:
        return path.is_file()
    except OSError:
        return False


@dataclass(frozen=True)
class FileResult:
    """What became of one input: ok, skipped (outputs already there), or failed with `reason`."""
    src: str
    ok: bool
    reason: str = ""
    skipped: bool = False
    frames: int = 0
    seconds: float = 0.0


def _media_name(rel: Path) -> Path:
    """Where the drawn copy of input `rel` goes: the same name, or NAME.mp4 for a video container the
    sink cannot write."""
    suffix = rel.suffix.lower()
    return rel.with_suffix(".mp4") if suffix in VIDEO_SUFFIXES and suffix not in VIDEO_FORMATS else rel


def plan(in_dir, out_dir, options: BatchOptions, suffixes=VIDEO_SUFFIXES + IMAGE_SUFFIXES) -> list[Job]:
    """Every file with one of `suffixes` under `in_dir` (sorted; hidden files, and `out_dir` when it lies
    inside `in_dir`, left out), its outputs at the same relative path under `out_dir` (a drawn .avi /
    .m4v video as NAME.mp4); a folder that cannot be listed is a job that fails with the reason.

    Raises:
        InputError: `in_dir` is not a folder, `out_dir` is `in_dir` or above it while drawn outputs are on, or two
            inputs would be drawn to the same file (clip.avi and clip.mp4).
    """
    in_dir, out_dir = Path(in_dir), Path(out_dir)
    if not in_dir.is_dir():
        raise InputError(f"{shown(in_dir)} is not a folder" if in_dir.exists() else f"no such folder: {shown(in_dir)}")
    inside = out_dir.resolve() == in_dir.resolve() or out_dir.resolve() in in_dir.resolve().parents
    if options.media and inside:
        raise InputError(f"output folder {out_dir} is or holds the input folder; choose another")
    # what is in OUT_DIR is output, not input; with OUT_DIR at or above IN_DIR only landmark files
    # (INPUT.csv) are written there, and no input has their suffixes
    skip = None if inside else out_dir.resolve()
    jobs, unreadable = [], []
    for src in sorted(_walk(in_dir, unreadable)):
        rel = src.relative_to(in_dir)
        if (src.suffix.lower() not in suffixes or any(p.startswith(".") for p in rel.parts)
                or (skip is not None and skip in Path(os.path.realpath(src)).parents)):     # no raise on a link loop
            continue
        jobs.append(Job(src, rel.as_posix(), out_dir / _media_name(rel) if options.media else None,
                        out_dir / f"{rel}{options.landmarks}" if options.landmarks else None,
                        None if src.is_file() else _not_a_file(src)))
    jobs += [Job(Path(e.filename), shown(Path(e.filename).relative_to(in_dir)), None, None,
                 f"cannot list this folder: {e.strerror}") for e in unreadable]
    written: dict[Path, Job] = {}
    for job in jobs:
        if job.media is not None and written.setdefault(job.media, job) is not job:
            raise InputError(f"{written[job.media].label} and {job.label} would both be drawn to {job.media}; "
                             "rename one")
        if job.landmarks is not None:
            written[job.landmarks] = job
    for path, job in written.items():       # clip.avi drawn to clip.mp4 beside a folder clip.mp4/ of inputs
        taken = next((p for p in path.parents if p in written), None)
        if taken is not None:
            raise InputError(f"{written[taken].label} would be written to {shown(taken)}, the folder that "
                             f"{job.label}'s output needs; rename one")
    return jobs


def _not_a_file(path: Path) -> str:
    """Why a name with a photo or video suffix is no file to read (a link to nothing, a pipe): said as the
    file's failure, not skipped without a word."""
    if path.is_symlink() and not path.exists():
        return "a symbolic link to nothing (or to itself)"
    return "not a regular file (a pipe, socket or device)"


def _walk(folder: Path, errors: list) -> list[Path]:
    """Every file under `folder` outside hidden folders, through symbolic links to folders elsewhere too (they
    were skipped without a word): a link into `folder` itself, or to a folder read already, is left out (its
    files are read under their own names; a link back up is no loop). Each folder that cannot be listed is
    appended to `errors` as its OSError (Path.rglob left those out without a word)."""
    top = os.path.realpath(folder)
    paths, seen = [], {top}
    for root, dirs, files in os.walk(folder, onerror=errors.append, followlinks=True):
        kept = []
        for name in dirs:
            path = os.path.join(root, name)
            if name.startswith("."):
                continue
            if os.path.islink(path):
                real = os.path.realpath(path)
                if real == top or real.startswith(top + os.sep) or real in seen:
                    log.info("%s: a link to a folder read under another name; skipped", shown(Path(path)))
                    continue
                seen.add(real)
            kept.append(name)
        dirs[:] = kept
        paths += [Path(root) / name for name in files]
    return paths


_LOADED: dict = {}


def _model(options: BatchOptions):
    """The landmark model, loaded once per process (workers run many files)."""
    from .models import load_model
    key = ("model", options.model, options.device, options.threads)
    if key not in _LOADED:
        _LOADED[key] = load_model(*key[1:])
    return _LOADED[key]


def preload(options: BatchOptions) -> None:
    """Load the model into this process's cache before any file: a bad name or device is then one error, not
    one per file, and a one-process run reuses it."""
    _model(options)


def _detector(options: BatchOptions):
    """The face detector, loaded once per process like the model."""
    from .detectors import load_detector
    key = ("detector", options.detector)
    if key not in _LOADED:
        _LOADED[key] = load_detector(options.detector)
    return _LOADED[key]


def _effects(options: BatchOptions) -> list:
    from .effects import Recolor
    return [Recolor(**dict(options.effects))] if options.effects else []


_STOP = None    # in a local worker process: the parent's stop flag (see _init_worker)


class _StopFlag:
    """A stop flag the parent and its worker processes share, with threading.Event's is_set / set / wait.

    Not a multiprocessing.Event: its set() waits until every process waiting on it has woken, so a worker
    killed while waiting (the out-of-memory killer) made the next set() hang for good."""

    def __init__(self, context):
        self._value = context.RawValue("b", 0)

    def set(self) -> None:
        self._value.value = 1

    def is_set(self) -> bool:
        return bool(self._value.value)

    def wait(self, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while not self.is_set() and time.monotonic() < end:
            time.sleep(0.01)
        return self.is_set()


def _init_worker(stop) -> None:
    """A local worker ignores Ctrl-C (the terminal sends it to every process: an idle worker killed by it
    would break the pool and get the busy ones killed mid-file) and stops its file when `stop` is set: by
    the parent, or by a SIGTERM / SIGHUP sent to the whole process group. It starts with Ctrl-C and SIGHUP
    blocked (_spawning), which it then lets through to be ignored or handled."""
    global _STOP
    _STOP = stop
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda *_: stop.set())
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _HELD)


#: Signals held back while helper processes start (_spawning)
_HELD = {signal.SIGINT, getattr(signal, "SIGHUP", signal.SIGINT)}


@contextmanager
def _spawning():
    """Ctrl-C and SIGHUP held back in this thread while it starts helper processes, which inherit the block:
    a spawned worker spends its first second importing (OpenCV, onnxruntime) before _init_worker runs, and a
    Ctrl-C then printed each worker's traceback; multiprocessing's resource tracker ignores Ctrl-C and
    SIGTERM but not SIGHUP, and a closed terminal killed it (tracebacks of its KeyErrors at the end). The
    parent gets its signals when the block ends."""
    if not hasattr(signal, "pthread_sigmask"):     # Windows: no signal masks
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _HELD)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _run_video(job: Job, options: BatchOptions) -> int:
    from .pipeline import analyze_video, build_tracker, process_video
    tracker = build_tracker(_model(options), max_faces=options.max_faces, smoothing=options.smoothing,
                            detector=_detector(options))
    # keep_partial=False: a file cut short leaves nothing, to be redone whole by the rerun
    try:
        if job.media is not None:
            stats = process_video(job.src, job.media, tracker=tracker, draw=options.draw, effects=_effects(options),
                                  preset=options.preset, crf=options.crf, landmarks=job.landmarks, stop=_STOP,
                                  label=job.label, keep_partial=False)
        else:
            stats = analyze_video(job.src, job.landmarks, tracker=tracker, stop=_STOP, label=job.label,
                                  keep_partial=False)
    except TruncatedInputError as e:    # listed as failed
        keep = "OUT" if job.media is not None else "--landmarks F.csv"
        raise InputError(f"truncated or corrupt: {e.damage}; `rtalign video {shlex.quote(str(job.src))} {keep} "
                         "--allow-truncated` keeps what decodes") from None
    if stats.interrupted:
        raise KeyboardInterrupt
    return stats.frames_out


def _run_image(job: Job, options: BatchOptions, writer=None) -> int:
    from .align import FaceAligner
    from .image import annotate_image
    aligner = FaceAligner(_model(options), max_faces=options.max_faces, detector=_detector(options))
    try:
        with open_writer(job.landmarks) if job.landmarks is not None else nullcontext(writer) as out:
            annotate_image(job.src, job.media, aligner, options.draw, _effects(options), out, job.label,
                           need_face=False)     # as a video's faceless frames: done, not failed on every rerun
    except KeyboardInterrupt:    # one photo is all or nothing: no partial rows left for the rerun to trip on
        if job.landmarks is not None:
            partial_path(job.landmarks).unlink(missing_ok=True)
        raise
    return 1


def _attempt(job: Job, work) -> FileResult:
    """Make `job`'s output folders and run `work()`, turning any failure into a one-line reason (Ctrl-C
    still stops everything)."""
    if job.unreadable:
        return FileResult(str(job.src), False, job.unreadable)
    t0 = time.perf_counter()
    try:
        _make_folders(job)
        frames = work()
    except RtalignError as e:
        return FileResult(str(job.src), False, str(e))
    except Exception as e:  # one bad file must never stop the batch
        log.debug("%s failed", job.src, exc_info=True)
        first = (str(e).strip().splitlines() or [""])[0]
        return FileResult(str(job.src), False, f"{type(e).__name__}: {first}" if first else type(e).__name__)
    return FileResult(str(job.src), True, frames=frames, seconds=time.perf_counter() - t0)


def process_file(job: Job, options: BatchOptions) -> FileResult:
    """The per-file work, the same in-process, in a worker process and in a Ray task."""
    if _STOP is not None and _STOP.is_set():      # queued in a worker before the stop: not started
        raise KeyboardInterrupt
    return _attempt(job, lambda: (_run_video if job.is_video else _run_image)(job, options))


def _make_folders(job: Job) -> None:
    for p in (job.media, job.landmarks):
        if p is not None:
            try:
                p.parent.mkdir(parents=True, exist_ok=True)
            except (FileExistsError, NotADirectoryError):
                raise InputError(f"cannot create {shown(p.parent)}: a file of that name is in the way") from None
            except OSError as e:
                raise InputError(f"cannot create {shown(p.parent)}: {e.strerror}") from None


def _local(jobs, options, workers, report):
    if workers == 1:
        for i, job in enumerate(jobs):
            report(i, process_file(job, options))
        return
    # spawn: a forked child would inherit the parent's ONNX / OpenCV thread pools mid-state
    context = multiprocessing.get_context("spawn")
    stop = _StopFlag(context)
    with _spawning():               # the pool's queues start multiprocessing's resource tracker
        pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker, initargs=(stop,))
    with pool:
        with _spawning():           # workers start as files are submitted
            futures = {pool.submit(process_file, job, options): i for i, job in enumerate(jobs)}
        try:
            for f in as_completed(futures):
                try:
                    result = f.result()
                except BrokenProcessPool:     # a worker died: its file, and those not yet started, fail
                    result = FileResult(str(jobs[futures[f]].src), False,
                                        "a worker process died (killed, out of memory?); run again to do it")
                report(futures[f], result)
        except BaseException:
            stop.set()          # the files under way end early and delete what they wrote ...
            pool.shutdown(wait=True, cancel_futures=True)       # ... before this process goes
            raise


def _check_reachable(address: str) -> None:
    """Refuse a HOST:PORT (or ray://HOST:PORT) nobody answers on, in a few seconds: ray.init retries such an
    address for minutes and holds Ctrl-C for half a minute meanwhile. "auto" is Ray's to resolve."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except OSError as e:
        raise InputError(f"cannot reach the Ray cluster at {address}: {e.strerror or e}") from None


def _ray(jobs, options, workers, address, report):
    try:
        import ray
    except ImportError:
        raise InputError("--ray needs Ray: pip install 'rtalign[ray]'") from None
    local = address is None
    if not local:
        _check_reachable(address)
    main_thread = threading.current_thread() is threading.main_thread()
    sigterm = signal.getsignal(signal.SIGTERM) if main_thread else None
    try:
        ray.init(address=address, num_cpus=workers if local else None, include_dashboard=False,
                 log_to_driver=False, configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise InputError(f"cannot reach the Ray cluster at {address}: {str(e).splitlines()[0]}") from None
    finally:
        if sigterm is not None:     # ray.init installs its own (exit at once, no cleanup): the caller's stays
            signal.signal(signal.SIGTERM, sigterm)
    try:
        task = ray.remote(num_cpus=1)(process_file)
        pending = {task.remote(job, options): i for i, job in enumerate(jobs)}
        try:
            while pending:    # in short waits: a signal's handler runs only between them (a blocking wait
                # held a SIGTERM for up to 0.9 s, long enough for the file under way to finish and be kept)
                done, _ = ray.wait(list(pending), num_returns=1, timeout=_POLL_S)
                for ref in done:
                    report(pending.pop(ref), ray.get(ref))
        except BaseException:
            for ref in pending:       # a KeyboardInterrupt in each task: it deletes what it wrote ...
                ray.cancel(ref)
            ray.wait(list(pending), num_returns=len(pending), timeout=60)    # ... before Ray stops
            raise
    finally:
        ray.shutdown()


def run_batch(jobs: list[Job], options: BatchOptions, workers: int = 1, ray_address: str | None | bool = False,
              progress=None) -> list[FileResult]:
    """Process every job not already done; returns one FileResult per job, in job order.

    Args:
        workers: local processes (1: in this process); with Ray, the CPUs of a local Ray instance.
        ray_address: False for local processes; None for a new local Ray instance; "HOST:PORT" or
            "auto" for an existing cluster (its nodes need rtalign installed and the same paths).
        progress: optional callable(FileResult) after each file, skipped ones included.
    """
    results: list[FileResult | None] = [None] * len(jobs)
    todo = []
    for i, job in enumerate(jobs):
        if job.done:
            results[i] = FileResult(str(job.src), True, skipped=True)
            if progress:
                progress(results[i])
        else:
            todo.append(i)

    def report(k: int, result: FileResult) -> None:
        results[todo[k]] = result
        if progress:
            progress(result)

    pending = [jobs[i] for i in todo]
    if pending and ray_address is not False:
        _ray(pending, options, workers, ray_address, report)
    elif pending:
        _local(pending, options, workers, report)
    return results


def align_folder(in_dir, out_dir, options: BatchOptions, landmarks=None, progress=None) -> list[FileResult]:
    """`rtalign image` on a folder: every photo drawn into `out_dir` (when `options.media`) and, when
    `landmarks` names a file, every photo's rows in that one file (`file` = the photo's relative path).

    Without a landmarks file, photos whose output exists are skipped; with one, every photo is read
    again so the file is whole.
    """
    jobs = plan(in_dir, out_dir, options, IMAGE_SUFFIXES)
    if landmarks is None:
        return run_batch(jobs, options, progress=progress)
    results = []
    with open_writer(landmarks) as writer:
        for job in jobs:
            results.append(_attempt(job, lambda: _run_image(job, options, writer)))
            if progress:
                progress(results[-1])
    return results
