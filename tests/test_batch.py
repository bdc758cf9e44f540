"""Whole folders: resumable, one bad file never stops the others, the same bytes on every path."""
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from rtalign.batch import BatchOptions, plan, run_batch
from rtalign.cli import main
from rtalign.errors import InputError
from rtalign.export import read_landmarks
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
    with pytest.raises(InputError, match="is the input folder"):
        plan(folder, folder, BatchOptions())
    with pytest.raises(InputError, match="no such folder"):
        plan(folder / "nope", tmp_path, BatchOptions())


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


def test_cli_image_on_a_folder_without_photos_is_a_clear_error(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_clean_error(run_cli("image", empty, tmp_path / "out"), "no photos in", exit_code=2)
