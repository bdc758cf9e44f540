from fractions import Fraction

import numpy as np
import pytest

from rtalign.smoothing import OneEuroFilter, OneEuroOptions


def run(filter_, signal, times, scale=1.0):
    return np.array([filter_.update(x, t, scale) for x, t in zip(signal, times)])


def test_a_constant_signal_passes_unchanged():
    f = OneEuroFilter()
    out = run(f, [np.full((68, 2), 5.0)] * 10, np.arange(10) / 30)
    np.testing.assert_allclose(out, 5.0)


def test_jitter_at_rest_is_reduced_several_fold():
    rng = np.random.default_rng(0)
    noisy = 100.0 + rng.normal(0, 1.0, (300, 68, 2))
    out = run(OneEuroFilter(OneEuroOptions(min_cutoff=1.0, beta=0.0)), noisy, np.arange(300) / 30, scale=60.0)
    raw_jitter = np.abs(np.diff(noisy, axis=0)).mean()
    assert np.abs(np.diff(out[30:], axis=0)).mean() < raw_jitter / 5


def test_beta_cuts_lag_during_fast_motion():
    t = np.arange(60) / 30
    ramp = (t * 200.0)[:, None, None] * np.ones((1, 68, 2))       # 200 px/s, ~3 face sizes per second
    slow = run(OneEuroFilter(OneEuroOptions(min_cutoff=1.0, beta=0.0, max_lag=None)), ramp, t, scale=60.0)
    fast = run(OneEuroFilter(OneEuroOptions(min_cutoff=1.0, beta=5.0, max_lag=None)), ramp, t, scale=60.0)
    lag = lambda out: (ramp - out)[-1].mean()
    assert lag(fast) < lag(slow) / 3


def test_behaviour_follows_timestamps_not_frame_counts():
    """The same motion sampled at 30 and at 60 fps ends at nearly the same filtered value."""
    signal = lambda t: 50.0 * np.sin(2 * np.pi * 0.5 * t)
    ends = []
    for fps in (30, 60):
        t = np.arange(int(2 * fps) + 1) / fps
        out = run(OneEuroFilter(OneEuroOptions(1.0, 0.5, max_lag=None)), [np.full((1, 2), signal(x)) for x in t], t,
                  scale=50.0)
        ends.append(out[-1, 0, 0])
    # within 4 % of the amplitude (discretization); a per-frame filter would lag twice as long at 30 fps
    assert ends[0] == pytest.approx(ends[1], abs=2.0)
    assert abs(ends[0] - signal(2.0)) > 2.0          # and it does smooth (lags the raw signal)


@pytest.mark.parametrize("bad", [dict(min_cutoff=0.0), dict(min_cutoff=1e308), dict(min_cutoff=float("nan")),
                                 dict(d_cutoff=5e-324), dict(beta=-1.0), dict(beta=1e300), dict(max_lag=0.0),
                                 dict(max_lag=float("inf"))])
def test_invalid_options_are_rejected(bad):
    with pytest.raises(ValueError, match="One Euro needs"):
        OneEuroOptions(**bad)


def test_the_extreme_allowed_settings_filter_without_overflow():
    t = np.arange(30) / 30
    noisy = [np.full((68, 2), v) for v in np.random.default_rng(0).normal(0, 1e3, 30)]
    with np.errstate(all="raise"):               # an overflow would raise here
        for o in (OneEuroOptions(1e4, 1e6, 1e4), OneEuroOptions(1e-4, 0.0, 1e-4)):
            assert np.isfinite(run(OneEuroFilter(o), noisy, t, scale=1e-3)).all()


def test_face_smoother_keeps_one_filter_per_track_id():
    from rtalign.smoothing import FaceSmoother
    from rtalign.types import FaceLandmarks
    face = np.zeros((68, 2))
    face[45, 0] = 50.0                                   # inter-ocular distance 50 px
    opts = OneEuroOptions(min_cutoff=1.0, beta=0.0)

    def faces(offsets, ids):
        return FaceLandmarks(np.stack([face + o for o in offsets]), np.zeros((len(ids), 4)), track_id=ids)

    smoother, alone = FaceSmoother(opts), OneEuroFilter(opts)
    smoother.update(faces([0.0, 100.0], [0, 1]), 0.0)
    alone.update(face, 0.0, 50.0)
    out = smoother.update(faces([10.0, 100.0], [0, 1]), 1 / 30)
    np.testing.assert_allclose(out.xy[0], alone.update(face + 10.0, 1 / 30, 50.0), atol=1e-5)   # its own filter
    np.testing.assert_allclose(out.xy[1], face + 100.0, atol=1e-5)                             # the other did not move
    assert out.track_id.tolist() == [0, 1]
    new = smoother.update(faces([10.0], [2]), 2 / 30)    # id 2 is new: it starts where it is, unsmoothed
    np.testing.assert_allclose(new.xy[0], face + 10.0, atol=1e-5)
    with pytest.raises(ValueError, match="track ids"):
        smoother.update(FaceLandmarks(face[None], np.zeros((1, 4))), 3 / 30)


def test_max_lag_bounds_the_trail_after_a_step_and_leaves_a_still_face_alone():
    """A calm setting (beta 0) trails a sudden move of half an inter-ocular distance for many frames; the
    bound holds every point within max_lag of its raw position from the first frame, and noise far below
    the bound is filtered exactly as without it."""
    t = np.arange(40) / 30
    step = np.where(t >= 20 / 30, 30.0, 0.0)[:, None, None] * np.ones((1, 68, 2)) / np.sqrt(2)  # 30 px, scale 60
    trail = lambda o: np.linalg.norm(run(OneEuroFilter(o), step, t, scale=60.0) - step, axis=2).max(1)
    free, bounded = trail(OneEuroOptions(beta=0.0, max_lag=None)), trail(OneEuroOptions(beta=0.0, max_lag=0.03))
    assert (free[20:] > 6.0).sum() >= 3                                # > 0.1 inter-ocular for 3+ frames
    np.testing.assert_allclose(bounded[20], 0.03 * 60.0)               # held at the bound, not beyond
    assert bounded.max() <= 0.03 * 60.0 + 1e-9
    noisy = 100.0 + np.random.default_rng(0).normal(0, 0.3, (100, 68, 2))   # 0.5 % of the inter-ocular distance
    still = [run(OneEuroFilter(OneEuroOptions(max_lag=m)), noisy, np.arange(100) / 30, scale=60.0)
             for m in (None, 0.03)]
    np.testing.assert_array_equal(still[0], still[1])
    assert np.abs(np.diff(still[1][30:], axis=0)).mean() < np.abs(np.diff(noisy, axis=0)).mean() / 3


def test_invalid_max_lag_is_rejected():
    with pytest.raises(ValueError):
        OneEuroOptions(max_lag=0.0)


def test_time_going_back_starts_afresh_instead_of_freezing_the_points():
    """Recordings joined end to end: each one's clock starts at 0 again. The filter held its last output
    until the new clock passed the old one (a second of frozen points while the face moved 2.5 face widths)."""
    f = OneEuroFilter(OneEuroOptions(max_lag=None))
    for t in (0.0, 0.5, 1.0):
        f.update(np.array([0.0, 0.0]), t)
    moved = np.array([90.0, 10.0])
    np.testing.assert_array_equal(f.update(moved, 0.1), moved)                   # back in time: the new sample
    assert np.abs(f.update(moved + 1, 0.2) - (moved + 1)).max() < 1               # and on from there


def test_a_repeated_time_still_holds_the_lag_bound():
    f = OneEuroFilter(OneEuroOptions(max_lag=0.03))
    f.update(np.zeros((68, 2)), 0.0, scale=50.0)
    out = f.update(np.full((68, 2), 10.0), 0.0, scale=50.0)                       # same time: no speed known
    assert np.linalg.norm(out - 10.0, axis=1).max() <= 0.03 * 50 + 1e-9


def test_a_fraction_time_and_the_same_time_as_a_float_are_one_time():
    """PyAV gives times as Fractions (pts × time_base): Fraction(1, 5) < 0.2 exactly, yet 0.2 - 1/5 is 0.0 in
    floats, and the filter divided by it (ZeroDivisionError)."""
    f = OneEuroFilter(OneEuroOptions(max_lag=0.03))
    f.update(np.zeros(2), Fraction(1, 5))
    out = f.update(np.full(2, 10.0), 0.2)
    assert np.isfinite(out).all() and np.abs(out - 10.0).max() <= 0.03 + 1e-9


def test_non_finite_values_pass_through_without_poisoning_the_filter():
    f = OneEuroFilter()
    f.update(np.zeros(2), 0.0)
    bad = np.array([np.nan, 1.0])
    np.testing.assert_array_equal(f.update(bad, 0.1), bad)
    assert np.isfinite(f.update(np.ones(2), 0.2)).all()
    with pytest.raises(ValueError, match="finite times"):
        f.update(np.ones(2), float("nan"))


def test_face_smoother_keeps_the_pose_and_refuses_two_faces_with_one_id():
    from rtalign.smoothing import FaceSmoother
    from rtalign.types import FaceLandmarks
    xy = np.random.default_rng(0).uniform(0, 100, (2, 68, 2))
    faces = FaceLandmarks(xy, np.zeros((2, 4)), track_id=[1, 2], pose=[[1, 2, 3], [4, 5, 6]])
    assert FaceSmoother().update(faces, 0.0).pose.tolist() == [[1, 2, 3], [4, 5, 6]]
    with pytest.raises(ValueError, match="one face per track id"):
        FaceSmoother().update(FaceLandmarks(xy, np.zeros((2, 4)), track_id=[3, 3]), 0.0)
