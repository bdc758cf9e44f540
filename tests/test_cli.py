"""The CLI end to end on real files, through click's runner."""
import json
import re

import cv2
import numpy as np
import pytest
from helpers import assert_clean_error, run_cli as run


def test_eval_json_on_a_small_subset(small_test_dir):
    result = run("eval", "--model", "cnn", "--data", small_test_dir, "--json", "--runs", 5)
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert {"n", "nme", "mse256", "fr10", "auc10", "ms_per_face"} <= out.keys()
    assert out["n"] == 12 and 0 < out["nme"] < 6.0 and out["ms_per_face"] > 0


def test_eval_reports_the_threads_the_model_uses(small_test_dir):
    """The cascade is single-threaded whatever --threads says; the report must say so."""
    result = run("eval", "--model", "cascade", "--threads", 2, "--data", small_test_dir, "--json", "--runs", 2)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["threads"] == 1


def test_eval_table(small_test_dir):
    result = run("eval", "--model", "resnet", "--data", small_test_dir, "--runs", 5)
    assert result.exit_code == 0 and "NME" in result.output and "resnet" in result.output


def test_image_draws_landmarks_on_a_real_face(astronaut_file, astronaut, tmp_path):
    out = tmp_path / "out.png"
    result = run("image", astronaut_file, out, "--draw", "points")
    assert result.exit_code == 0, result.output
    assert "1 face(s)" in result.output
    drawn = cv2.imread(str(out))
    changed = np.any(drawn != astronaut, axis=2)
    ys, xs = np.nonzero(changed)
    # the points land on the face (around x 180-270, y 80-200 in this portrait), nowhere else
    assert 68 * 5 < changed.sum() < 68 * 30
    assert 150 < xs.mean() < 300 and 80 < ys.mean() < 220


def test_output_gets_the_permissions_of_a_plainly_created_file(astronaut_file, tmp_path):
    """Outputs are written to a private temporary file and renamed: the result must not stay private."""
    plain = tmp_path / "plain"
    plain.touch()
    out = tmp_path / "out.jpg"
    assert run("image", astronaut_file, out).exit_code == 0
    assert out.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777


@pytest.mark.parametrize("args,text", [
    (["eval", "--model", "vgg"], "unknown model 'vgg'"),
    (["image", "missing.jpg", "out.png"], "no such file"),
])
def test_bad_arguments_give_one_clear_line(args, text, tmp_path):
    assert_clean_error(run(*args), text)


def test_missing_data_names_the_setting_and_a_root_given_as_data_names_its_folders(tmp_path, monkeypatch):
    monkeypatch.setenv("RTALIGN_DATA", str(tmp_path / "nowhere"))
    assert_clean_error(run("eval", "--model", "cnn"),
                       r"no such data folder: .*nowhere.test_common \(.*\$RTALIGN_DATA, now .*nowhere: set it")
    for name in ("train", "test_common"):
        (tmp_path / "300w" / name).mkdir(parents=True)
        (tmp_path / "300w" / name / "a.pts").write_text("")
    assert_clean_error(run("eval", "--model", "cnn", "--data", tmp_path / "300w"),
                       r"no annotated images .* give one of its folders \(test_common, train\)")


def test_bench_without_its_extra_says_how_to_install_it_before_any_work(monkeypatch):
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "skimage" else real(name, *a))
    result = run("bench", "--quick", "--models", "cnn", "--peers", "")
    assert_clean_error(result, r"needs scikit-image: pip install 'rtalign\[bench\]'")
    assert "bench:" not in result.output                 # no stage started


def test_version_is_the_installed_distributions():
    from importlib.metadata import version
    result = run("--version")
    assert result.exit_code == 0 and result.output.strip() == f"rtalign, version {version('rtalign')}"


def test_image_without_a_face(tmp_path):
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((240, 320, 3), 127, np.uint8))
    assert_clean_error(run("image", blank, tmp_path / "o.png"), "no face found")


def test_non_image_file(tmp_path):
    fake = tmp_path / "fake.jpg"
    fake.write_text("hello")
    assert_clean_error(run("image", fake, tmp_path / "o.png"), "not a readable image")


def test_output_equal_to_input_is_refused_and_input_untouched(astronaut_file):
    before = astronaut_file.read_bytes()
    assert_clean_error(run("image", astronaut_file, astronaut_file), "is the input")
    assert astronaut_file.read_bytes() == before


def test_eval_on_empty_folder_and_bad_pts(tmp_path, test_samples):
    assert_clean_error(run("eval", "--data", tmp_path, "--model", "cnn"), "no annotated images")
    (tmp_path / "x.jpg").symlink_to(test_samples[0].image)
    (tmp_path / "x.pts").write_text("version: 1\nn_points: 1\n{\n1 2\n}\n")
    assert_clean_error(run("eval", "--data", tmp_path, "--model", "cnn"), "expected 68 points")


def test_image_recolour_only_writes_a_lossless_recoloured_photo(astronaut_file, astronaut, tmp_path):
    out = tmp_path / "lips.png"
    result = run("image", astronaut_file, out, "--lip-color", "crimson", "--eye-color", "#1e90ff", "--draw", "none")
    assert result.exit_code == 0, result.output
    recoloured = cv2.imread(str(out))
    changed = np.any(recoloured != astronaut, axis=2)
    ys, xs = np.nonzero(changed)
    assert changed.sum() > 200                      # lips (and irises) changed ...
    assert ys.min() > 80 and ys.max() < 200 and xs.min() > 150 and xs.max() < 300   # ... and nothing else


def test_bad_colour_on_the_command_line(astronaut_file, tmp_path):
    assert_clean_error(run("image", astronaut_file, tmp_path / "o.png", "--lip-color", "notacolour"), "bad colour")


def test_eval_names_what_a_data_folder_leaves_out_and_counts_each_face_once(tmp_path, test_samples, caplog):
    """Faces without their image, images without their .pts and a second image of one name were left out or
    counted twice without a word, and NAME.JPG / NAME.jpeg were never found."""
    import json
    import shutil
    for k, sample in enumerate(test_samples[:4]):
        suffix = [".jpg", ".JPG", ".jpeg", ".jpg"][k]
        shutil.copy(sample.image, tmp_path / f"f{k}{suffix}")
        shutil.copy(sample.image.with_suffix(".pts"), tmp_path / f"f{k}.pts")
    shutil.copy(test_samples[0].image, tmp_path / "f0.png")          # the same face again
    shutil.copy(test_samples[4].image, tmp_path / "alone.jpg")
    shutil.copy(test_samples[5].image.with_suffix(".pts"), tmp_path / "orphan.pts")
    result = run("eval", "--data", tmp_path, "--model", "cnn", "--runs", "1", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output.splitlines()[-1])["n"] == 4
    said = caplog.text
    assert ("4 faces; left out 1 .pts without its image (orphan.pts); 1 image(s) without a .pts (alone.jpg); "
            "1 second image(s) of a name already used (f0.png)") in said


def test_eval_with_an_empty_data_name_is_refused_not_run_on_the_default_set():
    assert_clean_error(run("eval", "--data", "", "--model", "cnn"), "no data folder given")


@pytest.mark.parametrize("boxes", ["gt", "detector"])
def test_eval_json_stays_json_and_counts_nan_points_as_failures(small_test_dir, monkeypatch, boxes):
    """A model that gives NaN points: NME NaN went out as a bare NaN (no JSON parser takes it), and with
    --boxes detector such faces did not count as FR@10 failures."""
    import json
    from rtalign.models.onnx_landmarker import OnnxLandmarker
    real = OnnxLandmarker._predict_crops
    monkeypatch.setattr(OnnxLandmarker, "_predict_crops", lambda *a: (np.full_like(real(*a)[0], np.nan), real(*a)[1]))
    result = run("eval", "--data", small_test_dir, "--model", "cnn", "--runs", "1", "--json", "--boxes", boxes)
    assert result.exit_code == 0, result.output
    r = json.loads(result.output.splitlines()[-1], parse_constant=lambda c: pytest.fail(f"{c} is not JSON"))
    assert r["nme"] is None and r["mse256"] is None and r["fr10"] == 100.0 and r["auc10"] == 0.0


def test_eval_refuses_a_detector_it_would_not_use():
    assert_clean_error(run("eval", "--detector", "haar"), "--detector only applies with --boxes detector",
                       exit_code=2)


def test_python_dash_m_rtalign_is_the_cli():
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-m", "rtalign", "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "Real-time 68-point face alignment." in out.stdout and "webcam" in out.stdout


@pytest.mark.parametrize("args,text", [(["--models", "cnn,vgg"], "--models needs model names"),
                                       (["--models", ""], "--models needs model names"),
                                       (["--peers", "nosuch"], "the one peer is dlib")])
def test_bench_refuses_unknown_models_and_peers_before_measuring_anything(tmp_path, args, text):
    result = run("bench", "--quick", "--out", tmp_path / "b", *args)
    assert_clean_error(result, re.escape(text), exit_code=2)
    assert "bench:" not in result.output and not (tmp_path / "b").exists()


def test_a_signal_after_the_work_is_only_noted():
    """Ctrl-C pressed twice, the second as the run ended: raised then, it landed in the progress bar's finaliser,
    which printed it as a traceback. Once the work is settled a signal is only noted."""
    import os
    import signal
    import time
    from rtalign.cli import _Interrupted, _StopSignals
    with _StopSignals() as signals:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)                            # the handler runs in the main thread at its next bytecode
        assert signals.event.is_set() and signals.signum == signal.SIGINT
        with pytest.raises(_Interrupted):           # a second signal while the work runs unwinds it
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
        signals.settle()
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)                            # noted, not raised (the first signal's code stays)
    assert signals.exit_code == 128 + signal.SIGINT
