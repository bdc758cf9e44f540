"""Training crops are built as the runtime builds them: upright by the eye line, boxed by the landmarks."""
import numpy as np

from rtalign.crop import apply_affine, crop_affine
from rtalign.landmarks import eye_roll, landmark_box
from train.augment import AugmentConfig, augmented_crop

EXACT = AugmentConfig(p_upright=1.0, upright_error_deg=0.0, scale=(1.0, 1.0), shift=0.0, p_flip=0.0,
                      p_blur=0.0, p_noise=0.0, p_occlude=0.0, p_photometric=0.0)


def _rolled_face(roll_deg: float):
    """The mean-shape-like points of a test face, turned by `roll_deg` about the image centre, on a 192 px image."""
    from rtalign.landmarks import MEAN_SHAPE
    pts = MEAN_SHAPE * 40.0 + 96.0
    turn = crop_affine(np.array([0.0, 0.0, 191.0, 191.0]), 1.0, 192, -roll_deg)   # frame → frame, about the centre
    return apply_affine(turn, pts).astype(np.float32)


def test_upright_crop_undoes_the_eye_roll_and_centres_the_upright_box():
    image = np.zeros((192, 192), np.uint8)
    for roll in (-35.0, -10.0, 0.0, 22.0):
        points = _rolled_face(roll)
        assert abs(eye_roll(points) - roll) < 0.1                  # the face really is rolled (the mean shape: ~0.07°)
        _, pts = augmented_crop(image, points, 1.3, 128, EXACT, np.random.default_rng(0))
        assert abs(eye_roll(pts)) < 1e-3
        box = landmark_box(pts)
        np.testing.assert_allclose((box[:2] + box[2:]) / 2, [63.5, 63.5], atol=1e-3)
        assert abs(max(box[2] - box[0], box[3] - box[1]) * 1.3 - 128) < 1e-3


def test_axis_aligned_crops_keep_any_roll_within_the_range():
    cfg = AugmentConfig(p_upright=0.0, rotation_deg=30.0, p_flip=0.0)
    points = _rolled_face(0.0)
    rolls = [eye_roll(augmented_crop(np.zeros((192, 192), np.uint8), points, 1.3, 128, cfg,
                                     np.random.default_rng(s))[1]) for s in range(40)]
    assert max(np.abs(rolls)) <= 30.0 + 1e-3 and np.ptp(rolls) > 30.0
