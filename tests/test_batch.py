"""Whole folders: resumable, one bad file never stops the others, the same bytes on every path."""
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from rtalign.batch import BatchOptions, plan, run_batch
from rtalign.cli import main
from rtalign.errors import InputError
from rtalign.export import read_landmarks
from rtalign.smoothing import OneEuroOptions
from rtalign.synth import demo_clip
from helpers import assert_clean_error, run_cli

OPTS = BatchOptions(model="cnn", landmarks=".csv", media=False)


@pytest.fixture(scope="module")
def folder(tmp_path_factory, astronaut_file) -> Path:
    """Two short clips, a photo, a corrupt video, a file that is no media, and a hidden clip."""
    d = tmp_path_factory.mktemp("in")
    for k in range(2):
        demo_clip(d / f"clip{k}.mp4", n_frames=12, size=(640, 360), seed=k, audio=False)
    (d / "sub").mkdir()
    shutil.copy(astronaut_file, d / "sub" / "face.png")
    (d / "broken.mp4").write_bytes(b"not a video at all")
    (d / "notes.txt").write_text("ignored")
    shutil.copy(d / "clip0.mp4", d / ".hidden.mp4")
    return d


def test_plan_maps_every_input_to_its_outputs(folder, tmp_path):
    jobs = plan(folder, tmp_path, BatchOptions(landmarks=".jsonl"))
    assert [j.label for j in jobs] == ["broken.mp4", "clip0.mp4", "clip1.mp4", "sub/face.png"]
    assert jobs[1].media == tmp_path / "clip0.mp4" and jobs[1].landmarks == tmp_path / "clip0.mp4.jsonl"
    assert [j.is_video for j in jobs] == [True, True, True, False]
    with pytest.raises(InputError, match="is or holds the input folder"):
        plan(folder, folder, BatchOptions())
    with pytest.raises(InputError, match="is or holds the input folder"):       # drawn outputs could land on inputs
        plan(folder / "sub", folder, BatchOptions())
    with pytest.raises(InputError, match="no such folder"):
        plan(folder / "nope", tmp_path, BatchOptions())


def test_parquet_without_pyarrow_is_refused_before_any_file_is_touched(folder, tmp_path, monkeypatch):
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "pyarrow" else real(name, *a))
    result = run_cli("batch", folder, tmp_path / "out", "--landmarks", "parquet", "--model", "cnn")
    assert_clean_error(result, r"Parquet output needs pyarrow: pip install 'rtalign\[parquet\]'")
    assert not (tmp_path / "out").exists()


def test_a_video_in_a_subfolder_is_labelled_by_its_path_in_the_input_folder(tmp_path):
    """The landmarks' `file` column is the path relative to IN_DIR for videos as for photos (videos had
    their bare file name)."""
    src = tmp_path / "in" / "sub"
    src.mkdir(parents=True)
    demo_clip(src / "c.mp4", n_frames=6, size=(320, 180), audio=False)
    for media in (False, True):
        out = tmp_path / f"out{media}"
        opts = BatchOptions(model="cnn", landmarks=".csv", media=media)
        assert all(r.ok for r in run_batch(plan(tmp_path / "in", out, opts), opts))
        assert set(read_landmarks(out / "sub" / "c.mp4.csv")["file"]) == {"sub/c.mp4"}


def test_bad_file_is_reported_and_the_rest_done_then_skipped_on_rerun(folder, tmp_path):
    jobs = plan(folder, tmp_path, OPTS)
    seen = []
    results = run_batch(jobs, OPTS, progress=seen.append)
    assert len(seen) == 4 and [r.ok for r in results] == [False, True, True, True]
    assert "broken.mp4" in results[0].reason and "\n" not in results[0].reason
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["clip0.mp4.csv", "clip1.mp4.csv", "face.png.csv"]
    assert read_landmarks(tmp_path / "sub" / "face.png.csv")["file"] == ["sub/face.png"]
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.csv")}
    again = run_batch(jobs, OPTS)
    assert [r.skipped for r in again] == [False, True, True, True] and not again[0].ok
    assert stamps == {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.csv")}


def test_an_output_name_too_long_for_its_folder_fails_that_file_only_on_every_run(tmp_path):
    """NAME.mp4.csv can pass the 255-byte limit that NAME.mp4 fits: the file failed with a raw OSError, and
    once OUT_DIR existed every later run died on it before doing any file."""
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    demo_clip(src / "short.mp4", n_frames=6, size=(320, 180), audio=False)
    shutil.copy(src / "short.mp4", src / ("b" * 249 + ".mp4"))
    for new in ("first.mp4", "second.mp4"):
        shutil.copy(src / "short.mp4", src / new)
        result = run_cli("batch", src, out, "--landmarks", "csv", "--only-landmarks", "--model", "cnn")
        assert result.exit_code == 1 and "Traceback" not in result.output
        assert re.search(r"failed: .*b{249}\.mp4: output name is too long: 257 bytes", result.output), result.output
        assert (out / f"{new}.csv").exists()


def test_each_failure_is_one_line_naming_its_file_once_as_a_terminal_can_print_it(tmp_path):
    """A name holding a newline split its "one line" in two, a name that is not UTF-8 printed as '\\udcfe', and
    reasons that start with the path named it twice ("X: X is empty")."""
    src = tmp_path / "in"
    src.mkdir()
    for name in (b"zero\xfe.jpg", b"new\nline.jpg", b"esc\x1b[31m.jpg"):
        open(os.fsencode(src) + b"/" + name, "wb").close()
    result = run_cli("batch", src, tmp_path / "out", "-m", "cnn")
    lines = [line for line in result.output.splitlines() if line.startswith("failed: ")]
    assert sorted(line.removeprefix(f"failed: {src}/") for line in lines) == [
        "esc\\x1b[31m.jpg is empty (0 bytes), not an image file", "new\\nline.jpg is empty (0 bytes), not an image file",
        "zero\\xfe.jpg is empty (0 bytes), not an image file"]
    assert "\x1b" not in result.output
    assert_clean_error(run_cli("batch", src / "zero\udcfe.jpg", tmp_path / "o"), r".*zero\\xfe.jpg is not a folder")


def test_a_link_to_nothing_or_a_pipe_named_as_media_fails_and_a_folder_in_an_outputs_place_is_no_output(folder, tmp_path):
    """Such inputs were left out without a word, and a folder where an output belongs counted as that output
    (skipped as "already complete", exit 0, nothing written)."""
    src, out = tmp_path / "in", tmp_path / "out"
    shutil.copytree(folder, src)
    (src / "gone.jpg").symlink_to(src / "nowhere.jpg")
    (src / "loop.mp4").symlink_to(src / "loop.mp4")
    os.mkfifo(src / "pipe.png")
    (out / "clip0.mp4").mkdir(parents=True)
    result = run_cli("batch", src, out, "-m", "cnn")
    assert result.exit_code == 1
    for name, why in (("gone.jpg", "a symbolic link to nothing"), ("loop.mp4", "a symbolic link to nothing"),
                      ("pipe.png", "not a regular file"), ("clip0.mp4", "is a folder")):
        assert re.search(rf"failed: .*{re.escape(name)}: .*{why}", result.output), result.output
    assert re.search(r"\d+ done, 0 skipped \(already complete\), 5 failed", result.output)    # broken.mp4 too


def test_landmarks_beside_the_inputs_read_every_input(folder):
    """Only landmark files (named INPUT.csv) may go into IN_DIR itself: every input is still read."""
    assert [j.label for j in plan(folder, folder, OPTS)] == ["broken.mp4", "clip0.mp4", "clip1.mp4", "sub/face.png"]
    assert [j.label for j in plan(folder / "sub", folder, OPTS)] == ["face.png"]


def test_an_output_subfolder_that_cannot_be_made_fails_that_file_only(folder, tmp_path):
    (tmp_path / "sub").write_text("a file where the photo's folder must go")
    results = run_batch(plan(folder, tmp_path, OPTS), OPTS)
    assert [r.ok for r in results] == [False, True, True, False]
    assert results[3].reason == f"cannot create {tmp_path / 'sub'}: a file of that name is in the way"


@pytest.mark.parametrize("below", ["", "deeper/still"])
def test_cli_batch_and_image_refuse_an_output_folder_they_cannot_make(folder, tmp_path, below):
    (tmp_path / "out").write_text("a file where the folder must go")
    target = tmp_path / "out" / below
    pattern = f"{tmp_path / 'out'} exists and is not a folder"
    assert_clean_error(run_cli("batch", folder, target, "--landmarks", "csv"), pattern, exit_code=2)
    assert_clean_error(run_cli("image", folder / "sub", target), pattern, exit_code=2)


def test_cli_image_folder_makes_a_nested_output_folder(folder, tmp_path):
    result = run_cli("image", folder / "sub", tmp_path / "results" / "2026" / "run1", "-m", "cnn")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "results" / "2026" / "run1" / "face.png").is_file()


def test_cli_image_folder_with_only_a_landmarks_file(folder, tmp_path):
    table = tmp_path / "faces.csv"
    result = run_cli("image", folder / "sub", "--landmarks", table, "-m", "cnn")
    assert result.exit_code == 0, result.output
    assert read_landmarks(table)["file"] == ["face.png"]


def test_cli_image_folder_stopped_says_where_the_rows_so_far_are(astronaut_file, tmp_path, monkeypatch):
    """The rows of the photos done stay in FILE.partial.csv, as a stopped video's do; it said only "interrupted"."""
    import rtalign.batch
    photos = tmp_path / "photos"
    photos.mkdir()
    for k in range(3):
        shutil.copy(astronaut_file, photos / f"p{k}.png")
    real, done = rtalign.batch._run_image, []

    def stopped_on_the_third(job, options, writer=None):
        if len(done) == 2:
            raise KeyboardInterrupt
        done.append(job.src.name)
        return real(job, options, writer)
    monkeypatch.setattr(rtalign.batch, "_run_image", stopped_on_the_third)
    result = run_cli("image", photos, "--landmarks", tmp_path / "faces.csv", "-m", "cnn")
    assert result.exit_code == 130, result.output
    assert f"interrupted: the rows of the photos done in {tmp_path / 'faces.partial.csv'}" in result.output
    assert read_landmarks(tmp_path / "faces.partial.csv")["file"] == ["p0.png", "p1.png"]


def test_worker_processes_write_the_same_bytes_as_one_by_one(folder, tmp_path):
    run_batch(plan(folder, tmp_path / "one", OPTS), OPTS, workers=1)
    run_batch(plan(folder, tmp_path / "two", OPTS), OPTS, workers=2)
    for name in ("clip0.mp4.csv", "clip1.mp4.csv", "sub/face.png.csv"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()


def test_ray_writes_the_same_bytes_as_local(folder, tmp_path, monkeypatch):
    pytest.importorskip("ray", reason="Ray is the optional [ray] extra: pip install -e '.[ray]'")
    # Ray's worker processes must import this checkout of rtalign, not another installed copy
    root = str(Path(__file__).resolve().parents[1])
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
    run_batch(plan(folder, tmp_path / "local", OPTS), OPTS)
    results = run_batch(plan(folder, tmp_path / "ray", OPTS), OPTS, workers=2, ray_address=None)
    assert [r.ok for r in results] == [False, True, True, True]
    for name in ("clip0.mp4.csv", "clip1.mp4.csv", "sub/face.png.csv"):
        assert (tmp_path / "local" / name).read_bytes() == (tmp_path / "ray" / name).read_bytes()


def test_cli_batch_lists_failures_and_exits_1(folder, tmp_path):
    result = CliRunner().invoke(main, ["batch", str(folder), str(tmp_path), "-m", "cnn", "--draw", "pose",
                                       "--landmarks", "csv"])
    assert result.exit_code == 1
    assert f"failed: {folder / 'broken.mp4'}: cannot read video" in result.output
    assert "3 done, 0 skipped (already complete), 1 failed" in result.output
    assert "Traceback" not in result.output
    assert (tmp_path / "clip1.mp4").stat().st_size > 0 and (tmp_path / "sub" / "face.png").is_file()


def test_cli_image_folder_writes_photos_and_one_landmarks_file(folder, tmp_path, astronaut_file):
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(astronaut_file, photos / "a.png")
    shutil.copy(astronaut_file, photos / "b.png")
    (photos / "blank.png").write_bytes((photos / "a.png").read_bytes()[:100])    # truncated: unreadable
    out, table = tmp_path / "out", tmp_path / "all.csv"
    result = CliRunner().invoke(main, ["image", str(photos), str(out), "-m", "cnn", "--landmarks", str(table)])
    assert result.exit_code == 1 and "blank.png" in result.output
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png"]
    assert read_landmarks(table)["file"] == ["a.png", "b.png"]


@pytest.mark.parametrize("args, address", [([], False), (["--ray"], None), (["--ray=10.0.0.5:6379"], "10.0.0.5:6379"),
                                           (["--ray", "--workers", "3"], None)])
def test_cli_batch_passes_the_ray_address(folder, tmp_path, monkeypatch, args, address):
    import rtalign.batch
    seen = {}

    def fake(jobs, options, workers, ray_address, progress):
        seen.update(n=len(jobs), workers=workers, address=ray_address, options=options)
        return []
    monkeypatch.setattr(rtalign.batch, "run_batch", fake)
    result = CliRunner().invoke(main, ["batch", str(folder), str(tmp_path), "--landmarks", "jsonl", "--only-landmarks",
                                       *args])
    assert result.exit_code == 0, result.output
    assert seen["address"] == address and seen["n"] == 4
    assert seen["options"].landmarks == ".jsonl" and not seen["options"].media
    assert seen["workers"] == (3 if "3" in args else 1)


def test_ray_before_the_folders_says_it_took_the_input_folder_as_its_address(folder, tmp_path):
    result = run_cli("batch", "--ray", folder, tmp_path / "out")
    assert_clean_error(result, r"is a folder, not a Ray address: put --ray after the folders, or write --ray=ADDRESS",
                       exit_code=2)
    assert not (tmp_path / "out").exists()


def test_cli_image_on_a_folder_without_photos_is_a_clear_error(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_clean_error(run_cli("image", empty, tmp_path / "out"), "no photos in", exit_code=2)


def test_a_photo_without_a_face_is_done_as_a_videos_faceless_frames_are(tmp_path, astronaut_file, caplog):
    """It failed ("no face found") on every rerun, so a folder holding one never finished with exit 0."""
    photos, out = tmp_path / "in", tmp_path / "out"
    photos.mkdir()
    shutil.copy(astronaut_file, photos / "a.png")
    cv2.imwrite(str(photos / "wall.png"), np.full((120, 160, 3), 200, np.uint8))
    first = run_cli("batch", photos, out, "-m", "cnn", "--landmarks", "csv")
    assert first.exit_code == 0 and "2 done" in first.output, first.output
    assert re.search(r"no face found in .*wall\.png: written as it is, with no landmark rows", caplog.text)
    assert cv2.imread(str(out / "wall.png")).mean() == 200
    assert len(read_landmarks(out / "wall.png.csv")["frame"]) == 0 and len(read_landmarks(out / "a.png.csv")["frame"]) == 1
    again = run_cli("batch", photos, out, "-m", "cnn", "--landmarks", "csv")
    assert again.exit_code == 0 and "2 skipped" in again.output, again.output


def test_plan_follows_links_to_folders_and_reads_each_folder_once(tmp_path, astronaut_file):
    """A linked folder of photos was skipped without a word; a link back up must not loop."""
    root, elsewhere = tmp_path / "in", tmp_path / "elsewhere"
    (root / "real").mkdir(parents=True)
    elsewhere.mkdir()
    shutil.copy(astronaut_file, root / "real" / "a.png")
    shutil.copy(astronaut_file, elsewhere / "b.png")
    (root / "linked").symlink_to(elsewhere, target_is_directory=True)
    (root / "real" / "up").symlink_to(root, target_is_directory=True)         # a loop
    (root / "a_best").symlink_to(root / "real", target_is_directory=True)    # read before real/ by name order
    jobs = plan(root, tmp_path / "out", BatchOptions())
    assert [j.label for j in jobs] == ["linked/b.png", "real/a.png"]      # each file under its own name


def test_an_output_where_another_input_needs_a_folder_is_refused_before_any_work(tmp_path, astronaut_file):
    """clip.avi is drawn to clip.mp4 while a folder clip.mp4/ holds photos: the run wrote clip.mp4, then failed
    every photo in that folder, on every rerun."""
    root = tmp_path / "in"
    (root / "clip.mp4").mkdir(parents=True)
    shutil.copy(astronaut_file, root / "clip.mp4" / "a.png")
    demo_clip(root / "clip.avi", n_frames=3, size=(64, 48), seed=0, audio=False)
    with pytest.raises(InputError, match=r"clip\.avi would be written to .*clip\.mp4, the folder that clip\.mp4/a\.png's "
                                         r"output needs; rename one"):
        plan(root, tmp_path / "out", BatchOptions())


def test_plan_writes_containers_the_sink_cannot_write_as_mp4(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for name in ("a.webm", "b.AVI", "c.m4v", "d.mkv", "e.MTS", "f.mpg"):      # camcorder MPEG-TS, MPEG-PS were skipped
        (src / name).write_bytes(b"")
    jobs = plan(src, tmp_path / "out", BatchOptions(landmarks=".csv"))
    assert [(j.label, j.media.name, j.landmarks.name) for j in jobs] == [
        ("a.webm", "a.webm", "a.webm.csv"), ("b.AVI", "b.mp4", "b.AVI.csv"), ("c.m4v", "c.mp4", "c.m4v.csv"),
        ("d.mkv", "d.mkv", "d.mkv.csv"), ("e.MTS", "e.mp4", "e.MTS.csv"), ("f.mpg", "f.mp4", "f.mpg.csv")]
    (src / "b.mp4").write_bytes(b"")
    with pytest.raises(InputError, match="b.AVI and b.mp4 would both be drawn to"):
        plan(src, tmp_path / "out", BatchOptions())
    assert len(plan(src, tmp_path / "out", BatchOptions(media=False, landmarks=".csv"))) == 7


def test_an_avi_input_is_drawn_as_mp4(tmp_path):
    import av
    src = tmp_path / "in"
    src.mkdir()
    demo_clip(src / "old.avi", n_frames=8, size=(320, 240), audio=False)
    opts = BatchOptions(model="cnn", landmarks=".csv")
    results = run_batch(plan(src, tmp_path / "out", opts), opts)
    assert [r.ok for r in results] == [True], results
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["old.avi.csv", "old.mp4"]
    with av.open(str(tmp_path / "out" / "old.mp4")) as f:
        assert sum(1 for _ in f.decode(video=0)) == 8


def test_detector_is_loaded_once_per_process_and_used_for_photos_and_videos(folder, tmp_path, monkeypatch):
    import rtalign.batch
    import rtalign.detectors
    real, names = rtalign.detectors.load_detector, []

    def counting(name, *args, **kwargs):
        names.append(name)
        return real(name, *args, **kwargs)
    monkeypatch.setattr(rtalign.detectors, "load_detector", counting)
    monkeypatch.setattr(rtalign.batch, "_LOADED", {})
    opts = BatchOptions(model="cnn", landmarks=".csv", media=False, detector="haar")
    jobs = [j for j in plan(folder, tmp_path, opts) if j.label != "broken.mp4"]
    jobs = jobs + [rtalign.batch.Job(j.src, j.label, None, tmp_path / "again" / j.landmarks.name) for j in jobs]
    assert [r.ok for r in run_batch(jobs, opts)] == [True] * 6
    assert names == ["haar"]


def test_cli_batch_passes_detector_and_smoothing(folder, tmp_path, monkeypatch):
    import rtalign.batch
    seen = []
    monkeypatch.setattr(rtalign.batch, "run_batch", lambda jobs, options, *a: seen.append(options) or [])
    for args in (["--detector", "haar", "--min-cutoff", "0.5", "--beta", "0.25", "--max-faces", "2"], ["--smooth", "none"]):
        result = CliRunner().invoke(main, ["batch", str(folder), str(tmp_path), *args])
        assert result.exit_code == 0, result.output
    assert seen[0].detector == "haar" and seen[0].smoothing == OneEuroOptions(0.5, 0.25) and seen[0].max_faces == 2
    assert seen[1].detector == "blazeface" and seen[1].smoothing is None
    assert seen[1].max_faces is None            # offline: every face, as `rtalign image` does


def test_cli_image_folder_passes_the_detector(folder, tmp_path, monkeypatch):
    import rtalign.batch
    seen = []
    monkeypatch.setattr(rtalign.batch, "align_folder", lambda src, dst, options, *a: seen.append(options) or [])
    result = CliRunner().invoke(main, ["image", str(folder / "sub"), str(tmp_path), "--detector", "haar"])
    assert result.exit_code == 0, result.output
    assert [o.detector for o in seen] == ["haar"]


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory) -> Path:
    """A folder holding one clip long enough to be stopped half way."""
    d = tmp_path_factory.mktemp("long")
    demo_clip(d / "long.mp4", n_frames=300, size=(640, 360), audio=False)
    return d


def _when_encoding(out: Path, then, timeout: float = 120.0) -> None:
    """Call `then()` once the hidden temporary video in `out` holds encoded frames (the run is mid-video)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if any(p.stat().st_size > 20_000 for p in out.glob(".*.tmp.mp4") if p.is_file()):
            then()
            return
        time.sleep(0.02)
    raise AssertionError("the video never started encoding")


def test_interrupted_video_leaves_no_output_no_partial_no_temporary(long_clip, tmp_path, request):
    import _thread
    # interrupt_main does nothing while SIGINT is ignored or at SIG_DFL (as an earlier test or a library
    # may leave it): Python's own handler for this test
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    request.addfinalizer(lambda: signal.signal(signal.SIGINT, previous))
    opts = BatchOptions(model="cnn", landmarks=".csv")
    jobs = plan(long_clip, tmp_path, opts)
    watcher = threading.Thread(target=_when_encoding, args=(tmp_path, _thread.interrupt_main), daemon=True)
    watcher.start()
    with pytest.raises(KeyboardInterrupt):
        run_batch(jobs, opts)
    watcher.join()
    assert [p.name for p in tmp_path.rglob("*")] == []


def test_only_the_first_stop_signal_unwinds_a_batch():
    """The batch's cleanup (stop the workers, delete what they wrote) must not be cut short by the next signal."""
    from rtalign.cli import _SignalsAsCtrlC
    signals = _SignalsAsCtrlC()
    with pytest.raises(KeyboardInterrupt):
        signals._handle(signal.SIGTERM, None)
    signals._handle(signal.SIGINT, None)
    assert signals.signum == signal.SIGTERM


def test_a_third_stop_signal_ends_a_batch_at_once(monkeypatch):
    """A worker stuck in one call would hold the cleanup for good: the third signal goes without it."""
    from rtalign.cli import _SignalsAsCtrlC
    exits = []
    monkeypatch.setattr(os, "_exit", exits.append)
    signals = _SignalsAsCtrlC()
    with pytest.raises(KeyboardInterrupt):
        signals._handle(signal.SIGINT, None)
    signals._handle(signal.SIGINT, None)
    signals._handle(signal.SIGTERM, None)
    assert exits == [128 + signal.SIGINT]


def _ctrl_c_twice(proc):
    """What a terminal does when Ctrl-C is pressed twice: SIGINT to the whole process group, 20 ms apart."""
    for _ in range(2):
        os.killpg(proc.pid, signal.SIGINT)
        time.sleep(0.02)


@pytest.mark.parametrize("signum, args", [(signal.SIGTERM, []), (signal.SIGHUP, []), (signal.SIGTERM, ["--workers", "2"]),
                                          (signal.SIGTERM, ["--ray", "--workers", "2"]), ("twice", []),
                                          ("twice", ["--workers", "2"]), ("hangup", ["--workers", "2"])])
def test_cli_batch_stopped_by_a_signal_leaves_no_file_and_exits_128_plus_signal(long_clip, tmp_path, signum, args):
    """Ctrl-C pressed twice: the second one cut the cleanup short; with workers the run then never ended (its
    workers left running), without them the encoder's container was closed under it (a crash, exit 139).
    A closed terminal (SIGHUP to the whole group) killed multiprocessing's resource tracker: its tracebacks."""
    if "--ray" in args:
        pytest.importorskip("ray", reason="Ray is the optional [ray] extra: pip install -e '.[ray]'")
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen([sys.executable, "-m", "rtalign.cli", "batch", str(long_clip), str(tmp_path), "-m", "cnn",
                             "--landmarks", "csv", *args], cwd=root, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    try:
        _when_encoding(tmp_path, lambda: _ctrl_c_twice(proc) if signum == "twice" else
                       os.killpg(proc.pid, signal.SIGHUP) if signum == "hangup" else proc.send_signal(signum))
        signum = signal.SIGHUP if signum == "hangup" else signum
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)         # workers too, should the run have hung
    # a second Ctrl-C that comes once the run is over (its handler restored) ends the process by SIGINT itself:
    # the same status to a shell (130)
    allowed = (128 + signal.SIGINT, -signal.SIGINT) if signum == "twice" else (128 + signum,)
    assert proc.returncode in allowed, err.decode()
    assert b"Traceback" not in err and b"interrupted" in err
    assert [p.name for p in tmp_path.rglob("*")] == []


def _children(pid: int) -> list[int]:
    """Processes whose parent is `pid` (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the worker processes through Linux's /proc")
def test_ctrl_c_while_the_workers_start_is_one_line(long_clip, tmp_path):
    """A spawned worker imports OpenCV and onnxruntime for a second before it ignores Ctrl-C: a Ctrl-C then
    printed a traceback from every worker."""
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen([sys.executable, "-m", "rtalign.cli", "batch", str(long_clip), str(tmp_path), "-m", "cnn",
                             "--workers", "2"], cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        end = time.monotonic() + 60
        while len(_children(proc.pid)) < 2 and time.monotonic() < end:      # the workers (and a resource tracker)
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130 and b"Traceback" not in err, err.decode()


def test_video_stopped_by_ctrl_c_twice_says_where_its_rows_went(long_clip, tmp_path):
    """The second Ctrl-C unwinds the run: the rows done are kept in F.partial.csv, and it said only "interrupted"."""
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen([sys.executable, "-m", "rtalign.cli", "video", str(long_clip / "long.mp4"),
                             str(tmp_path / "o.mp4"), "--landmarks", str(tmp_path / "lm.csv"), "-m", "cnn"],
                            cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        _when_encoding(tmp_path, lambda: _ctrl_c_twice(proc))
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode in (130, -signal.SIGINT), err.decode()
    if proc.returncode == 130:          # (a second Ctrl-C after the process had ended its work kills by SIGINT)
        # the second Ctrl-C unwound the run, or came as it ended and was only noted: either way, where the rows are
        said = err.decode()
        assert (f"interrupted: the rows of the frames done in {tmp_path / 'lm.partial.csv'}" in said
                or re.search(rf"interrupted: \d+ frames in \S*o\.partial\.mp4 and \d+ frames in "
                             rf"{re.escape(str(tmp_path / 'lm.partial.csv'))}", said)), said
        assert (tmp_path / "lm.partial.csv").exists()
    assert b"Traceback" not in err and not list(tmp_path.glob(".*"))


def test_a_worker_killed_mid_file_fails_its_files_and_the_run_ends(long_clip, tmp_path):
    """The out-of-memory killer takes a worker: the batch must neither hang (a multiprocessing.Event's set()
    waited for the dead worker) nor print a traceback (BrokenProcessPool); a rerun does the file."""
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    args = [sys.executable, "-m", "rtalign.cli", "batch", str(long_clip), str(tmp_path), "-m", "cnn", "--workers", "2"]
    proc = subprocess.Popen(args, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def kill_the_busy_worker():
        for child in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split():
            if any(".tmp.mp4" in os.readlink(fd) for fd in Path(f"/proc/{child}/fd").iterdir()
                   if fd.is_symlink()):
                os.kill(int(child), signal.SIGKILL)
                return
        raise AssertionError("no worker holds the temporary video")
    try:
        _when_encoding(tmp_path, kill_the_busy_worker)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 1 and b"Traceback" not in err, err.decode()
    assert b"long.mp4: a worker process died" in err and b"0 done, 0 skipped (already complete), 1 failed" in out
    assert not (tmp_path / "long.mp4").exists()
    rerun = run_cli("batch", long_clip, tmp_path, "-m", "cnn")
    assert rerun.exit_code == 0 and (tmp_path / "long.mp4").exists()


def test_a_cut_video_leaves_nothing_where_another_inputs_output_is_named_like_its_partial(tmp_path):
    """x.mkv's unfinished output would be x.partial.mkv, which is also the output of an input named so
    (what an interrupted `rtalign video` leaves): batch writes no partial, so it never replaces that one."""
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    demo_clip(src / "x.partial.mkv", n_frames=60, size=(320, 240), audio=False)
    whole = (src / "x.partial.mkv").read_bytes()
    (src / "x.mkv").write_bytes(whole[: len(whole) // 2])                  # cut: a truncated input
    for _ in range(2):
        result = run_cli("batch", src, out, "-m", "cnn")
        assert result.exit_code == 1 and "x.mkv: truncated or corrupt" in result.output
        assert sorted(p.name for p in out.iterdir()) == ["x.partial.mkv"]
        with av.open(str(out / "x.partial.mkv")) as c:
            assert sum(1 for _ in c.decode(video=0)) == 60


def test_ctrl_c_while_the_encoder_flushes_leaves_no_temporary_file(long_clip, tmp_path, monkeypatch):
    from rtalign.pipeline import build_tracker, process_video
    from rtalign.pipeline.sinks import VideoFileSink

    def interrupted(self, partial=False):
        raise KeyboardInterrupt
    monkeypatch.setattr(VideoFileSink, "close", interrupted)
    for keep_partial in (True, False):
        with pytest.raises(KeyboardInterrupt):
            process_video(long_clip / "long.mp4", tmp_path / "o.mp4", tracker=build_tracker("cnn"),
                          landmarks=tmp_path / "o.csv", keep_partial=keep_partial)
        left = sorted(p.name for p in tmp_path.iterdir())
        assert left == ([] if not keep_partial else ["o.partial.csv"])       # rtalign video keeps the rows
        for p in tmp_path.iterdir():
            p.unlink()


def test_a_folder_that_cannot_be_listed_is_a_failure_not_a_silent_gap(folder, tmp_path, monkeypatch):
    real = os.walk

    def locked(top, onerror=None, **kwargs):
        for root, dirs, files in real(top, onerror=onerror, **kwargs):
            if Path(root).name == "sub":
                onerror(PermissionError(13, "Permission denied", root))
                dirs[:] = []
                continue
            yield root, dirs, files
    monkeypatch.setattr(os, "walk", locked)
    result = run_cli("batch", folder, tmp_path, "-m", "cnn", "--landmarks", "csv", "--only-landmarks")
    assert result.exit_code == 1
    assert f"failed: {folder / 'sub'}: cannot list this folder: Permission denied" in result.output
    assert not (tmp_path / "sub").exists() and (tmp_path / "clip0.mp4.csv").exists()


@pytest.mark.parametrize("command", ["batch", "image"])
@pytest.mark.parametrize("option,text", [(("--model", "vgg"), "unknown model 'vgg'"),
                                         (("--model", "cnn", "--device", "cuda"), "--device cuda needs")])
def test_a_bad_model_or_device_for_a_folder_is_one_line_before_any_work(folder, tmp_path, command, option, text):
    if "cuda" in option:
        import onnxruntime
        if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
            pytest.skip("this machine has CUDA")
    result = run_cli(command, folder / "sub" if command == "image" else folder, tmp_path / "out", *option)
    assert_clean_error(result, re.escape(text))
    assert "failed:" not in result.output and not (tmp_path / "out").exists()


def test_a_ray_address_nobody_answers_on_is_one_line_at_once(folder, tmp_path):
    pytest.importorskip("ray", reason="Ray is the optional [ray] extra: pip install -e '.[ray]'")
    result = run_cli("batch", folder, tmp_path, "-m", "cnn", "--ray=127.0.0.1:1")      # nothing listens on port 1
    assert_clean_error(result, r"cannot reach the Ray cluster at 127\.0\.0\.1:1: Connection refused")
