"""The cascade model: Numba evaluator vs scikit-learn, stage behaviour, file round trip and bad files."""
import numpy as np
import pytest
from sklearn.ensemble import RandomForestRegressor

from rtalign.data import read_image
from rtalign.errors import ModelError
from rtalign.landmarks import MEAN_SHAPE, landmark_box
from rtalign.metrics import nme_per_face
from rtalign.models import load_model, models_dir
from rtalign.models.cascade import KEYS, CascadeLandmarker, forest_predict, initial_shape, run_cascade, shape_features
from train.train_cascade import export_arrays, sample_pixels, to_mean_frame

import cv2


@pytest.fixture(scope="module")
def gray_faces(test_samples):
    return [(cv2.cvtColor(read_image(s.image), cv2.COLOR_BGR2GRAY), s.points.astype(np.float64)) for s in test_samples[:60]]


def test_numba_forest_matches_sklearn_on_real_shape_indexed_features(gray_faces):
    rng = np.random.default_rng(0)
    anchor, offset, pair = sample_pixels(rng, 200, 300, 0.4)
    X = np.empty((len(gray_faces), 300), np.float32)
    starts = np.stack([initial_shape(MEAN_SHAPE, landmark_box(p)) for _, p in gray_faces])
    for n, (img, _) in enumerate(gray_faces):
        shape_features(img, starts[n], MEAN_SHAPE, anchor, offset, pair, X[n])
    y = to_mean_frame(MEAN_SHAPE, starts, np.stack([p for _, p in gray_faces]))[:, :8]
    forest = RandomForestRegressor(n_estimators=7, max_depth=6, random_state=0).fit(X, y)
    model = {"anchor": [anchor], "offset": [offset], "pair": [pair], "basis": [np.eye(8, 136)],
             "basis_mean": [np.zeros(136)], "stage_trees": [7]}
    a = export_arrays(MEAN_SHAPE, model, [e.tree_ for e in forest.estimators_])
    ours = np.stack([forest_predict(x, a["tree_start"], 0, 7, a["feature"], a["threshold"], a["left"], a["right"],
                                    a["value"]) for x in X])
    np.testing.assert_allclose(ours, forest.predict(X), atol=1e-5)
    assert np.abs(forest.predict(X)).max() > 1e-3          # a real, non-trivial forest


@pytest.fixture(scope="module")
def shipped():
    return CascadeLandmarker(models_dir() / "cascade.npz")


def test_the_first_stage_reduces_the_error_of_the_mean_shape_start(shipped, gray_faces):
    a = shipped.arrays
    one = [a[k][:1] if k in ("anchor", "offset", "pair", "basis", "basis_mean", "stage_trees") else a[k] for k in KEYS[1:]]
    gt = np.stack([p for _, p in gray_faces])
    start = np.stack([initial_shape(shipped.mean, landmark_box(p)) for p in gt])
    after = start.copy()
    for (img, _), s in zip(gray_faces, after):
        run_cascade(img, s, shipped.mean, *one)
    assert nme_per_face(gt, after).mean() < 0.85 * nme_per_face(gt, start).mean()


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
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, **{k: np.array([object()], dtype=object) for k in KEYS})
    with pytest.raises(ModelError):
        load_model(str(pickled))
