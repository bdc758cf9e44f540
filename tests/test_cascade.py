"""The cascade model: Numba evaluator vs scikit-learn, stage behaviour, file round trip and bad files."""
import cv2
import numpy as np
import pytest

from rtalign.data import read_image
from rtalign.errors import ModelError
from rtalign.landmarks import MEAN_SHAPE, landmark_box, mirror_points
from rtalign.metrics import nme_per_face
from rtalign.models import load_model, models_dir
from rtalign.models.cascade import (KEYS, CascadeLandmarker, face_region, initial_shape, median_shape, pixel_values,
                                    run_cascade, runtime_arrays, shape_features, similarity_to, to_frame, to_region,
                                    trees_sum)
from train.train_cascade import (Stage, apply_delta, export_arrays, fit_stage, round_leaves, sample_pixels,
                                 to_mean_frame)


@pytest.fixture(scope="module")
def gray_faces(test_samples):
    return [(cv2.cvtColor(read_image(s.image), cv2.COLOR_BGR2GRAY), s.points.astype(np.float64)) for s in test_samples[:60]]


def test_numba_trees_match_sklearn_on_real_shape_indexed_features(gray_faces):
    rng = np.random.default_rng(0)
    anchor, offset, pair = sample_pixels(rng, 200, 300, 0.4)
    X = np.empty((len(gray_faces), 300), np.float32)
    starts = np.stack([initial_shape(MEAN_SHAPE, landmark_box(p)) for _, p in gray_faces])
    for n, (img, _) in enumerate(gray_faces):
        shape_features(img, starts[n], MEAN_SHAPE, anchor, offset, pair, X[n])
    y = to_mean_frame(MEAN_SHAPE, starts, np.stack([p for _, p in gray_faces]))[:, :8]
    trees, fitted = fit_stage(X, y, n_trees=7, depth=4, max_features=20, min_leaf=1, rate=0.3, seed=0)
    stage = Stage(anchor, offset, pair, np.eye(8, 136), np.zeros(136), trees, 0.3, round_leaves(trees, 0.3))
    a = export_arrays(MEAN_SHAPE, [stage], box_side=112)
    assert a["pair"].shape[1] < 300                                     # unused pairs were dropped
    anchor_, offset_, node_pixels, threshold, value, leaf_step = runtime_arrays(a)[:6]
    ours = np.zeros((len(gray_faces), 8))
    vals = np.empty(anchor_.shape[1], np.float32)
    for n, (img, _) in enumerate(gray_faces):                           # pixels as the exported file defines them
        pixel_values(img, starts[n], *similarity_to(MEAN_SHAPE, starts[n]), anchor_[0], offset_[0], vals)
        trees_sum(vals, 0, 7, node_pixels, threshold, value, leaf_step[0], ours[n])
    sklearn_sum = sum(0.3 * t.predict(X)[:, :, 0] for t in trees)      # scikit-learn's own traversal
    np.testing.assert_allclose(ours, sklearn_sum, atol=1e-9)            # of the trees as exported
    np.testing.assert_allclose(ours, fitted, atol=7 * leaf_step[0].max() / 2)  # before rounding: half a unit a tree
    assert np.abs(fitted).max() > 1e-3                                  # real, non-trivial trees
    assert min(t.node_count for t in trees) < 2 ** 5 - 1                # some needed completing


def test_pixel_reads_are_bilinear_and_zero_outside_the_image():
    yy, xx = np.mgrid[:20, :30]
    ramp = (3 * xx + 5 * yy).astype(np.uint8)                          # 0..182: exact in uint8
    shape = np.zeros((68, 2))
    shape[7] = [10.25, 4.5]
    offset = np.array([[0.0, 0.0], [1.0, 2.0], [-20.0, 0.0], [19.0, 0.0]])   # the last two fall outside
    out = np.empty(4, np.float32)
    pixel_values(ramp, shape, 1.0, 0.0, np.full(4, 7), offset, out)   # identity similarity
    np.testing.assert_allclose(out, [3 * 10.25 + 5 * 4.5, 3 * 11.25 + 5 * 6.5, 0, 0], rtol=1e-6)
    pixel_values(ramp, shape, 0.0, 2.0, np.full(1, 7), offset[1:2], out[:1])  # turned 90° and scaled 2×
    np.testing.assert_allclose(out[0], 3 * (10.25 - 4) + 5 * (4.5 + 2), rtol=1e-6)


def test_median_of_starts_is_numpys_median_for_odd_and_even_counts():
    rng = np.random.default_rng(1)
    for k in range(1, 7):
        shapes = rng.normal(size=(k, 68, 2)) * 50
        np.testing.assert_array_equal(median_shape(shapes), np.median(shapes, axis=0))


def test_initial_shape_fills_the_box_exactly():
    box = np.array([12.5, -3.0, 140.25, 160.0])
    np.testing.assert_allclose(landmark_box(initial_shape(MEAN_SHAPE, box)), box, atol=1e-9)


def test_mean_frame_round_trip(gray_faces):
    gt = np.stack([p for _, p in gray_faces])
    start = np.stack([initial_shape(MEAN_SHAPE, landmark_box(p) + 7.0) for p in gt])
    moved = start.copy()
    apply_delta(MEAN_SHAPE, moved, to_mean_frame(MEAN_SHAPE, start, gt))
    np.testing.assert_allclose(moved, gt, atol=1e-9)


@pytest.fixture(scope="module")
def shipped():
    return CascadeLandmarker(models_dir() / "cascade.npz")


def test_the_first_stage_reduces_the_error_of_the_mean_shape_start(shipped, test_samples):
    a = shipped.arrays
    first = int(a["stage_trees"][0])
    stage_keys = ("anchor", "offset", "pair", "leaf_step", "basis", "basis_mean", "stage_trees")
    tree_keys = ("feature", "threshold", "value")
    one = runtime_arrays({**{k: a[k][:1] for k in stage_keys}, **{k: a[k][:first] for k in tree_keys}})
    gt, start, after = [], [], []
    for sample in test_samples[:60]:
        box = landmark_box(sample.points)
        region, n, origin = face_region(read_image(sample.image), box, shipped.box_side)
        gt.append(sample.points)
        start.append(initial_shape(shipped.mean, to_region(box.reshape(2, 2), n, origin).reshape(4)))
        after.append(start[-1].copy())
        run_cascade(region, after[-1], shipped.mean, *one)
        start[-1], after[-1] = to_frame(start[-1], n, origin), to_frame(after[-1], n, origin)
    assert nme_per_face(np.stack(gt), np.stack(after)).mean() < 0.85 * nme_per_face(np.stack(gt), np.stack(start)).mean()


def test_colour_and_grey_frames_give_the_same_points(shipped, test_samples):
    frame = read_image(test_samples[0].image)
    box = landmark_box(test_samples[0].points)[None]
    np.testing.assert_array_equal(shipped.predict(frame, box), shipped.predict(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), box))


def test_shipped_cascade_is_accurate_on_real_test_faces(shipped, test_samples):
    faces = test_samples[:60]
    pred = np.concatenate([shipped.predict(read_image(f.image), landmark_box(f.points)[None]) for f in faces])
    assert nme_per_face(np.stack([f.points for f in faces]), pred).mean() < 4.5


def test_a_face_twice_as_large_gets_the_same_points_twice_as_far(shipped, test_samples):
    frame = read_image(test_samples[1].image)
    box = landmark_box(test_samples[1].points)
    big = cv2.resize(frame, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)
    small_pts = shipped.predict(frame, box[None])[0]
    big_pts = shipped.predict(big, (box * 2 + 0.5)[None])[0]      # pixel centres: x' = 2x + 0.5
    iod = np.linalg.norm(small_pts[36] - small_pts[45])
    assert np.linalg.norm((big_pts - 0.5) / 2 - small_pts, axis=1).mean() < 0.015 * iod


def test_a_mirrored_face_gets_the_mirrored_points(shipped, test_samples):
    """The shipped starts are the face and its mirror image, so mirroring the frame swaps their roles."""
    frame = read_image(test_samples[2].image)
    box = landmark_box(test_samples[2].points)
    w = frame.shape[1]
    pts = shipped.predict(frame, box[None])[0]
    mirrored_box = np.array([[w - 1 - box[2], box[1], w - 1 - box[0], box[3]]])
    flipped = shipped.predict(np.ascontiguousarray(frame[:, ::-1]), mirrored_box)[0]
    np.testing.assert_allclose(mirror_points(flipped, w), pts, atol=1e-3)   # pixels


def test_boxes_at_and_beyond_the_frame_edge_give_finite_points(shipped, test_samples):
    frame = read_image(test_samples[0].image)
    h, w = frame.shape[:2]
    boxes = np.array([[-60, -40, 100, 120], [w - 90, h - 80, w + 70, h + 90], [w + 50, 10, w + 200, 160]], float)
    pts = shipped.predict(frame, boxes)
    assert pts.shape == (3, 68, 2) and np.isfinite(pts).all()


def test_file_round_trip_gives_identical_predictions(shipped, tmp_path, gray_faces):
    copy = tmp_path / "copy.npz"
    np.savez(copy, **shipped.arrays)
    img, pts = gray_faces[0]
    box = landmark_box(pts)[None]
    np.testing.assert_array_equal(CascadeLandmarker(copy).predict(img, box), shipped.predict(img, box))
    assert load_model(str(copy)).predict(img, box).shape == (1, 68, 2)


def test_truncated_and_foreign_files_are_clear_errors(tmp_path):
    data = (models_dir() / "cascade.npz").read_bytes()
    cut = tmp_path / "cut.npz"
    cut.write_bytes(data[: len(data) // 3])
    with pytest.raises(ModelError, match="cannot load cascade model|not a cascade model"):
        load_model(str(cut))
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, weights=np.zeros(3))
    with pytest.raises(ModelError, match="not a cascade model"):
        load_model(str(foreign))
    text = tmp_path / "text.npz"
    text.write_text("weights: none")
    with pytest.raises(ModelError, match=r"text.npz: not a cascade model \(not an .npz archive\)"):
        load_model(str(text))
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, **{k: np.array([object()], dtype=object) for k in KEYS})
    with pytest.raises(ModelError):
        load_model(str(pickled))
