import numpy as np
import pytest

from rtalign.metrics import auc, ced, failure_rate, mse256, nme_per_face, summarize


def face(interocular=100.0):
    """A (68, 2) face whose outer eye corners are `interocular` apart and whose landmark box is 100 x 50."""
    g = np.zeros((68, 2))
    g[:, 0] = np.linspace(0, 100, 68)
    g[:, 1] = np.linspace(0, 50, 68)
    g[36] = [0.0, 0.0]
    g[45] = [interocular, 0.0]
    return g


def test_nme_of_a_uniform_shift_is_shift_over_interocular():
    g = face(100.0)[None]
    p = g + np.array([3.0, 4.0])  # every point 5 px off
    assert nme_per_face(g, p) == pytest.approx([5.0])


def test_nme_averages_points_then_faces():
    g = np.stack([face(100.0), face(50.0)])
    p = g.copy()
    p[0, :34, 0] += 2.0          # half the points of face 0 off by 2 px → mean 1 px → 1 %
    p[1, 0, 1] += 68.0           # one point of face 1 off by 68 px → mean 1 px → 2 %
    np.testing.assert_allclose(nme_per_face(g, p), [1.0, 2.0])
    assert summarize(g, p)["nme"] == pytest.approx(1.5)


def test_mse256_scales_by_twice_the_larger_box_side():
    g = face()[None]            # box 100 x 50 → standard crop 200 px → ×1.28 to reach 256
    p = g + np.array([1.0, 0.0])
    # x errors are 1.28 px, y errors 0: mean of squares over both coordinates = 1.28² / 2
    assert mse256(g, p) == pytest.approx(1.28 ** 2 / 2)


def test_failure_rate_and_auc_on_hand_made_nmes():
    nme = np.array([0.0, 5.0, 10.0, 20.0])
    assert failure_rate(nme) == 25.0           # only 20 > 10
    assert failure_rate(np.array([5.0, np.nan])) == 50.0 and auc(np.array([5.0, np.nan])) == 0.25  # NaN: failed
    # mean of (10 - min(nme, 10)) / 10 = (1 + 0.5 + 0 + 0) / 4
    assert auc(nme) == pytest.approx(0.375)
    x, y = ced(nme)
    assert y[0] == 0.25 and y[-1] == 0.75
    # the exact AUC agrees with integrating the CED numerically (trapezoids by hand: np.trapz is
    # gone from NumPy 2.x, np.trapezoid absent from 1.x, and setup.cfg allows both)
    assert ((y[1:] + y[:-1]) / 2 * np.diff(x)).sum() / 10.0 == pytest.approx(0.375, abs=2e-3)


def test_shapes_must_match():
    with pytest.raises(ValueError, match="same shape|one shape"):
        nme_per_face(np.zeros((1, 68, 2)), np.zeros((2, 68, 2)))
