"""Landmarks as data: the files hold what the API returned, and an interrupted run leaves a valid file."""
import json
import os
import shutil
import threading

import numpy as np
import pytest
from click.testing import CliRunner

from rtalign.cli import main
from rtalign.errors import InputError
from rtalign.export import COLUMNS, open_writer, read_landmarks
from rtalign.pipeline import analyze_video, build_tracker, process_video, run_live
from rtalign.pose import PoseTracker
from rtalign.types import FaceLandmarks


def two_faces(seed=0) -> FaceLandmarks:
    rng = np.random.default_rng(seed)
    return FaceLandmarks(rng.uniform(0, 640, (2, 68, 2)), np.zeros((2, 4)), [0.9, 0.25], track_id=[3, 8],
                         pose=[[12.345, -3.21, 0.5], [-40.0, 7.777, 179.9]])


def test_columns_are_the_contract():
    assert COLUMNS[:8] == ("file", "frame", "time_s", "face_id", "score", "yaw", "pitch", "roll")
    assert COLUMNS[8:12] == ("x0", "y0", "x1", "y1") and COLUMNS[-1] == "y67" and len(COLUMNS) == 8 + 136


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_round_trip_holds_every_face_and_frame(tmp_path, suffix):
    if suffix == ".parquet":
        pytest.importorskip("pyarrow", reason="Parquet is the optional [parquet] extra")
    frames = [two_faces(k) for k in range(3)]
    with open_writer(tmp_path / f"lm{suffix}") as w:
        for k, faces in enumerate(frames):
            w.write('odd, "name".mp4', k, k / 30, faces)
        w.write("empty.mp4", 3, 0.1, FaceLandmarks.empty())       # a frame without faces adds no row
    back = read_landmarks(tmp_path / f"lm{suffix}")
    assert back["file"] == ['odd, "name".mp4'] * 6
    np.testing.assert_array_equal(back["frame"], [0, 0, 1, 1, 2, 2])
    np.testing.assert_array_equal(back["face_id"], [3, 8] * 3)
    np.testing.assert_allclose(back["time_s"], np.repeat(np.arange(3) / 30, 2), atol=5e-7)
    tol = 1e-6 if suffix == ".parquet" else 1   # text keeps 0.001 px, 0.01°, 1e-4 of a score
    np.testing.assert_allclose(back["xy"], np.concatenate([f.xy for f in frames]), atol=5e-4 * tol + 1e-9, rtol=0)
    np.testing.assert_allclose(back["pose"], np.concatenate([f.pose for f in frames]), atol=5e-3 * tol + 1e-9, rtol=0)
    np.testing.assert_allclose(back["score"], [0.9, 0.25] * 3, atol=5e-5 * tol + 1e-9)


def test_text_formats_write_the_same_numbers(tmp_path):
    for suffix in (".csv", ".jsonl"):
        with open_writer(tmp_path / f"lm{suffix}") as w:
            w.write("a.mp4", 0, 0.0, two_faces())
    csv, jsonl = read_landmarks(tmp_path / "lm.csv"), read_landmarks(tmp_path / "lm.jsonl")
    for key in ("xy", "pose", "score", "time_s"):
        np.testing.assert_array_equal(csv[key], jsonl[key])
    first = (tmp_path / "lm.csv").read_text().splitlines()[1]
    assert first.startswith("a.mp4,0,0.000000,3,0.9000,12.35,-3.21,0.50,")


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_a_file_name_that_is_not_utf8_is_written_with_escapes_as_the_errors_show_it(tmp_path, suffix):
    if suffix == ".parquet":
        pytest.importorskip("pyarrow", reason="Parquet is the optional [parquet] extra")
    name = os.fsdecode(b"caf\xe9.mp4")                 # what Python makes of a Latin-1 name on Linux
    with open_writer(tmp_path / f"lm{suffix}") as w:
        w.write(name, 0, 0.0, two_faces())
    if suffix != ".parquet":
        (tmp_path / f"lm{suffix}").read_bytes().decode("utf-8")   # strict: valid UTF-8 throughout
    assert read_landmarks(tmp_path / f"lm{suffix}")["file"] == ["caf\\xe9.mp4"] * 2


def test_the_cli_writes_landmarks_of_a_video_whose_name_is_not_utf8(tmp_path, face_clip):
    src = tmp_path / os.fsdecode(b"clip-\xff.mp4")
    shutil.copy(face_clip, src)
    result = CliRunner().invoke(main, ["video", str(src), "--landmarks", str(tmp_path / "lm.csv"), "--model", "cnn"])
    assert result.exit_code == 0, result.output
    assert set(read_landmarks(tmp_path / "lm.csv")["file"]) == {"clip-\\xff.mp4"}


def test_non_finite_numbers_are_null_in_json_lines_and_nan_when_read_back(tmp_path):
    faces = two_faces()
    faces.xy[1, 5, 0], faces.pose[0, 2], faces.score[1] = np.nan, np.inf, -np.inf
    with open_writer(tmp_path / "lm.jsonl") as w:
        w.write("a.mp4", 0, 0.0, faces)
    def no_constants(token):
        raise AssertionError(f"{token} is not JSON")
    rows = [json.loads(line, parse_constant=no_constants) for line in (tmp_path / "lm.jsonl").read_text().splitlines()]
    assert rows[1]["x5"] is None and rows[0]["roll"] is None and rows[1]["score"] is None and rows[0]["x5"] is not None
    back = read_landmarks(tmp_path / "lm.jsonl")
    assert np.isnan(back["xy"][1, 5, 0]) and np.isnan(back["pose"][0, 2]) and np.isnan(back["score"][1])
    np.testing.assert_allclose(back["xy"][0], faces.xy[0], atol=5e-4)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_a_last_flush_that_fails_leaves_no_hidden_file(tmp_path, suffix):
    if suffix == ".parquet":
        pytest.importorskip("pyarrow", reason="Parquet is the optional [parquet] extra")
    writer = open_writer(tmp_path / f"lm{suffix}")
    writer.write("a.mp4", 0, 0.0, two_faces())
    finish = writer._finish

    def disk_full():
        finish()
        raise OSError(28, "No space left on device")
    writer._finish = disk_full
    with pytest.raises(OSError, match="No space left"):
        writer.close()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_a_stop_while_the_writer_opens_leaves_no_hidden_file(tmp_path, suffix, monkeypatch):
    """A stop between the temporary file's creation and the format's writer left `.NAME.tmp.EXT` for good."""
    if suffix == ".parquet":
        pq = pytest.importorskip("pyarrow.parquet", reason="Parquet is the optional [parquet] extra")

        def stopped(*args, **kwargs):
            raise KeyboardInterrupt
        monkeypatch.setattr(pq, "ParquetWriter", stopped)
    else:
        import rtalign.export

        def stopped(self):
            raise KeyboardInterrupt
        writer = {".csv": rtalign.export.CsvWriter, ".jsonl": rtalign.export.JsonlWriter}[suffix]
        monkeypatch.setattr(writer, "_header", stopped)
    with pytest.raises(KeyboardInterrupt):
        open_writer(tmp_path / f"lm{suffix}")
    assert list(tmp_path.iterdir()) == []


def test_unknown_extension_is_one_clear_error(tmp_path):
    with pytest.raises(InputError, match="expected one of .csv, .jsonl, .parquet"):
        open_writer(tmp_path / "lm.txt")


def test_a_file_that_cannot_be_put_in_place_is_a_clear_error_naming_where_the_rows_are(tmp_path):
    writer = open_writer(tmp_path / "lm.csv")
    writer.write("a.png", 0, 0.0, two_faces())
    (tmp_path / "lm.csv").mkdir()                  # the final name is taken by a folder meanwhile
    (tmp_path / "lm.csv" / "x").write_text("keeps the folder from being replaced")
    with pytest.raises(InputError, match=r"cannot write .*lm.csv: .*; the result is in .*\.lm\..*\.tmp\.csv") as e:
        writer.close()
    kept = [p for p in tmp_path.iterdir() if p.name != "lm.csv"]
    assert len(kept) == 1 and str(kept[0].name) in str(e.value)
    assert read_landmarks(kept[0])["file"] == ["a.png", "a.png"]


def test_a_killed_writer_leaves_whole_rows_in_its_temporary_file(tmp_path):
    w = open_writer(tmp_path / "lm.csv")
    w.write("a.mp4", 0, 0.0, two_faces())
    w.write("a.mp4", 1, 0.033, two_faces(1))     # never closed: as if the process were killed here
    assert not (tmp_path / "lm.csv").exists()
    hidden = list(tmp_path.glob(".lm.*.csv"))
    assert len(hidden) == 1 and len(read_landmarks(hidden[0])["frame"]) == 4
    w.abort()
    assert not list(tmp_path.iterdir())


class _Spy:
    """Records what the (pose-adding) tracker returned for every frame; sets `stop` at frame `stop_after`,
    as a signal handler or a UI would."""

    def __init__(self, tracker, stop_after=None):
        self.tracker, self.seen, self.stop_after = PoseTracker(tracker), [], stop_after
        self.stop = threading.Event()

    def update(self, frame):
        if frame.index == self.stop_after:
            self.stop.set()
        faces = self.tracker.update(frame)
        self.seen.append((frame.index, frame.timestamp, faces))
        return faces


def test_analysis_only_file_equals_what_the_tracker_returned(tmp_path, face_clip):
    spy = _Spy(build_tracker("cnn", threads=1))
    stats = analyze_video(face_clip, tmp_path / "lm.csv", tracker=spy)
    back = read_landmarks(tmp_path / "lm.csv")
    assert stats.frames_out == 45 and len(spy.seen) == 45 and not list(tmp_path.glob("*.mp4"))
    want = [(i, t, f) for i, t, f in spy.seen for _ in range(len(f))]
    assert len(back["frame"]) == len(want) >= 40
    np.testing.assert_array_equal(back["frame"], [i for i, _, _ in want])
    np.testing.assert_allclose(back["time_s"], [t for _, t, _ in want], atol=5e-7)
    np.testing.assert_allclose(back["xy"], np.concatenate([f.xy for _, _, f in spy.seen]), atol=5e-4 + 1e-6, rtol=0)
    np.testing.assert_allclose(back["pose"], np.concatenate([f.pose for _, _, f in spy.seen]), atol=5e-3 + 1e-4, rtol=0)
    assert set(back["file"]) == {face_clip.name}


def test_video_with_landmarks_writes_the_same_rows_as_analysis_only(tmp_path, face_clip):
    analyze_video(face_clip, tmp_path / "a.csv", tracker=build_tracker("cnn", threads=1))
    process_video(face_clip, tmp_path / "out.mp4", tracker=build_tracker("cnn", threads=1), draw="pose",
                  landmarks=tmp_path / "b.csv")
    assert (tmp_path / "out.mp4").stat().st_size > 0
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()


def test_interrupted_run_leaves_a_valid_file_with_the_frames_done(tmp_path, face_clip):
    spy = _Spy(build_tracker("cnn", threads=1), stop_after=20)
    stats = analyze_video(face_clip, tmp_path / "lm.csv", tracker=spy, stop=spy.stop)
    assert stats.interrupted and 20 < len(spy.seen) < 45
    assert stats.partial == tmp_path / "lm.partial.csv" and not (tmp_path / "lm.csv").exists()
    back = read_landmarks(stats.partial)
    np.testing.assert_array_equal(np.unique(back["frame"]), [i for i, _, f in spy.seen if len(f)])
    assert not list(tmp_path.glob(".*"))                 # no temporary file left behind


def test_cli_video_without_output_runs_analysis_only(tmp_path, face_clip):
    out = tmp_path / "lm.jsonl"
    result = CliRunner().invoke(main, ["video", str(face_clip), "--landmarks", str(out), "-m", "cnn"])
    assert result.exit_code == 0, result.output
    assert len(read_landmarks(out)["frame"]) >= 40 and list(tmp_path.iterdir()) == [out]
    result = CliRunner().invoke(main, ["video", str(face_clip)])
    assert result.exit_code == 2 and "give DST and/or --landmarks FILE" in result.output


def test_cli_image_landmarks(tmp_path, astronaut_file):
    out = tmp_path / "lm.csv"
    result = CliRunner().invoke(main, ["image", str(astronaut_file), "--landmarks", str(out), "-m", "cnn"])
    assert result.exit_code == 0, result.output
    back = read_landmarks(out)
    assert back["file"] == ["astronaut.png"] and back["frame"].tolist() == [0] and np.isfinite(back["pose"]).all()


def test_live_source_writes_the_frames_it_processed(tmp_path, face_clip):
    stats = run_live(str(face_clip), tracker=build_tracker("cnn", threads=1), window=False,
                     landmarks=tmp_path / "live.csv")
    back = read_landmarks(tmp_path / "live.csv")
    assert back["file"][0] == face_clip.name and 0 < len(set(back["frame"])) <= stats.frames_in   # as `video` names it
    assert np.all(np.diff(back["time_s"]) >= 0)


def test_an_interrupted_video_run_leaves_both_outputs_as_partials(tmp_path, face_clip):
    spy = _Spy(build_tracker("cnn", threads=1), stop_after=20)
    stats = process_video(face_clip, tmp_path / "o.mp4", tracker=spy, stop=spy.stop, landmarks=tmp_path / "lm.csv")
    assert stats.interrupted
    assert (stats.partial, stats.partial_landmarks) == (tmp_path / "o.partial.mp4", tmp_path / "lm.partial.csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lm.partial.csv", "o.partial.mp4"]
    assert set(read_landmarks(stats.partial_landmarks)["frame"]) <= {i for i, _, _ in spy.seen}
    # each file's own frame count (the landmarks stage runs ahead of the encoder)
    import av
    with av.open(str(stats.partial)) as c:
        encoded = sum(1 for _ in c.decode(video=0))
    assert stats.partial_frames == [(stats.partial, encoded), (stats.partial_landmarks, stats.landmark_frames)]
    assert stats.landmark_frames == len(set(read_landmarks(stats.partial_landmarks)["frame"])) >= encoded


def test_ctrl_c_while_a_photo_is_written_leaves_no_temporary_file(tmp_path, monkeypatch):
    import builtins
    import rtalign.io_safety as io_safety

    class Interrupted:
        def __init__(self, *args):
            self.f = builtins.open(*args)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, data):
            self.f.write(data[:10])
            raise KeyboardInterrupt
    monkeypatch.setattr(io_safety, "open", Interrupted, raising=False)
    with pytest.raises(KeyboardInterrupt):
        io_safety.write_bytes_atomic(tmp_path / "face.png", b"x" * 100)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("stop", [KeyboardInterrupt, type("Interrupted", (BaseException,), {})])
def test_a_writer_stopped_by_an_interrupt_keeps_its_rows_and_one_broken_by_an_error_does_not(tmp_path, stop):
    """A command's own stop exception (not an Exception, as KeyboardInterrupt is not) deleted the rows done."""
    from rtalign.types import FaceLandmarks
    with pytest.raises(stop):
        with open_writer(tmp_path / "lm.csv") as writer:
            writer.write("a.mp4", 0, 0.0, FaceLandmarks.empty())
            raise stop
    assert [p.name for p in tmp_path.iterdir()] == ["lm.partial.csv"]
    with pytest.raises(ValueError):
        with open_writer(tmp_path / "broken.csv"):
            raise ValueError("a bug")
    assert [p.name for p in tmp_path.iterdir()] == ["lm.partial.csv"]



@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_a_second_ctrl_c_while_the_rows_are_finished_keeps_them(tmp_path, suffix):
    """Ctrl-C pressed twice, the second while the writer finished its file: the rows done went with the temporary
    file (rarely seen as `rtalign video` saying only "interrupted"). They stay in OUT.partial.EXT, and the
    interrupt goes on."""
    if suffix == ".parquet":
        pytest.importorskip("pyarrow.parquet", reason="Parquet is the optional [parquet] extra")
    writer = open_writer(tmp_path / f"lm{suffix}")
    writer.write("a.mp4", 0, 0.0, two_faces())
    finish, calls = writer._finish, []

    def interrupted_once():
        calls.append(1)
        if len(calls) == 1:
            raise KeyboardInterrupt           # landed before the format's own closing step
        finish()
    writer._finish = interrupted_once
    with pytest.raises(KeyboardInterrupt):
        writer.close(partial=True)
    assert [p.name for p in tmp_path.iterdir()] == [f"lm.partial{suffix}"]
    assert len(read_landmarks(tmp_path / f"lm.partial{suffix}")["frame"]) == 2      # both faces' rows
