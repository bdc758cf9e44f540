import cv2
import numpy as np
import pytest

from rtalign.crop import apply_affine, box_affines, crop_affine, frame_crops, invert_affine, warp_crops
from rtalign.data import read_image, read_pts, write_pts
from rtalign.errors import InputError
from rtalign.landmarks import FLIP, LEFT_EYE, RIGHT_EYE, landmark_box, mirror_points


def test_pts_round_trip_keeps_values_and_one_based_convention(tmp_path):
    pts = np.random.default_rng(0).uniform(0, 300, (68, 2)).astype(np.float32)
    write_pts(tmp_path / "a.pts", pts)
    first = (tmp_path / "a.pts").read_text().splitlines()[3].split()
    assert float(first[0]) == pytest.approx(pts[0, 0] + 1, abs=1e-5)   # 1-based on disk
    np.testing.assert_allclose(read_pts(tmp_path / "a.pts"), pts, atol=1e-5)


def test_pts_with_wrong_point_count_is_a_clear_error(tmp_path):
    (tmp_path / "b.pts").write_text("version: 1\nn_points: 2\n{\n1 2\n3 4\n}\n")
    with pytest.raises(InputError, match=r"expected 68 points \(x y\), found 2 rows of 2 numbers"):
        read_pts(tmp_path / "b.pts")
    (tmp_path / "c.pts").write_text("version: 1\nn_points: 68\n{\n" + "1 2 3\n" * 68 + "}\n")
    with pytest.raises(InputError, match="found 68 rows of 3 numbers"):      # said "expected 68 points, found 68"
        read_pts(tmp_path / "c.pts")


@pytest.mark.parametrize("edit, message", [
    (lambda text: b"\xff\xfe" + text.encode(), "not a .pts file \\(not text\\)"),
    (lambda text: text.replace(text.splitlines()[5], "nan 3").encode(), "not a finite number"),
    (lambda text: text.replace(text.splitlines()[5], "1e39 3").encode(), "not a finite number"),   # inf as float32
    (lambda text: "\n".join(["101 101" if i == 3 + 36 else "101.000001 101" if i == 3 + 45 else line
                              for i, line in enumerate(text.splitlines())]).encode(),
     "outer eye corners \\(points 37 and 46\\) coincide"),            # 1e-6 px apart: 0 as float32
    (lambda text: text.replace(text.splitlines()[3 + 45], text.splitlines()[3 + 36]).encode(),
     "outer eye corners \\(points 37 and 46\\) coincide"),
])
def test_pts_that_no_face_can_be_measured_against_are_clear_errors(tmp_path, edit, message):
    write_pts(tmp_path / "a.pts", np.random.default_rng(0).uniform(0, 300, (68, 2)))
    (tmp_path / "a.pts").write_bytes(edit((tmp_path / "a.pts").read_text()))
    with pytest.raises(InputError, match=message):
        read_pts(tmp_path / "a.pts")


def test_flip_is_an_involution_that_swaps_left_and_right():
    assert (FLIP[FLIP] == np.arange(68)).all()
    assert set(FLIP[RIGHT_EYE]) == set(LEFT_EYE)
    assert FLIP[36] == 45 and FLIP[48] == 54 and FLIP[0] == 16 and FLIP[30] == 30


def test_flip_maps_left_eye_onto_right_eye_of_a_real_mirrored_face(test_samples):
    s = test_samples[0]
    img = read_image(s.image)
    mirrored = mirror_points(s.points, img.shape[1])
    # the subject's right eye (image left) of the mirrored face is where the left eye was, reflected
    right_eye_after = mirrored[RIGHT_EYE].mean(0)
    left_eye_before = s.points[LEFT_EYE].mean(0)
    assert right_eye_after[0] == pytest.approx(img.shape[1] - 1 - left_eye_before[0], abs=1e-4)
    assert right_eye_after[0] < mirrored[LEFT_EYE].mean(0)[0]    # still on the image's left
    # the pixels agree too: the mirrored image at the mirrored points is the original at the original points
    flipped = img[:, ::-1]
    p, q = np.rint(mirrored[36]).astype(int), np.rint(s.points[45]).astype(int)
    np.testing.assert_array_equal(flipped[p[1], p[0]], img[q[1], q[0]])


@pytest.mark.parametrize("angle,shift", [(0.0, (0.0, 0.0)), (23.0, (0.1, -0.07)), (-90.0, (0.0, 0.2))])
def test_crop_affine_then_inverse_is_identity(angle, shift):
    m = crop_affine([30.0, 40.0, 130.0, 170.0], 1.3, 128, angle, shift)
    pts = np.random.default_rng(1).uniform(-50, 400, (68, 2))
    np.testing.assert_allclose(apply_affine(invert_affine(m), apply_affine(m, pts)), pts, atol=1e-9)


def test_crop_centres_the_box_with_the_requested_scale():
    box = np.array([10.0, 20.0, 110.0, 100.0])      # 100 x 80: side 1.5 × 100 = 150 px → 128
    m = crop_affine(box, 1.5, 128)
    centre = apply_affine(m, np.array([[60.0, 60.0]]))[0]
    np.testing.assert_allclose(centre, [63.5, 63.5])  # the centre of a 128 px crop
    edge = apply_affine(m, np.array([[60.0 - 75.0, 60.0]]))[0]
    assert edge[0] == pytest.approx(-0.5)            # 75 px left of centre is the crop's left pixel edge


def test_frame_crops_put_a_marked_pixel_where_the_affine_says(tmp_path):
    gray = np.zeros((400, 600), np.uint8)
    cv2.circle(gray, (300, 180), 6, 255, -1)
    boxes = np.array([[250.0, 120.0, 350.0, 240.0], [100.0, 100.0, 500.0, 380.0]])  # the 2nd shrinks > 2x
    affines = box_affines(boxes, 1.3, 128)
    crops = frame_crops(gray, affines, 128)
    for crop, m in zip(crops, affines):
        expected = apply_affine(m, np.array([[300.0, 180.0]]))[0]
        ys, xs = np.nonzero(crop > 100)
        np.testing.assert_allclose([xs.mean(), ys.mean()], expected, atol=0.6)


def test_a_shrunk_crop_is_an_area_resample_and_does_not_depend_on_its_neighbours():
    rng = np.random.default_rng(0)
    frame = cv2.GaussianBlur(rng.integers(0, 256, (720, 1280, 3), dtype=np.uint8), (0, 0), 1.0)
    big = box_affines(np.array([[300.0, 100.0, 700.0, 500.0]]), 1.3, 128)      # shrinks 4x: 4 x 4 blocks
    other = box_affines(np.array([[803.0, 211.0, 1101.0, 509.0]]), 1.3, 128)
    alone = frame_crops(frame, big, 128)[0]
    together = frame_crops(frame, np.concatenate([other, big]), 128)[1]
    np.testing.assert_array_equal(alone, together)
    # the reference: the whole frame area-resampled by the exact factor, then warped without shrinking
    k = np.sqrt(np.linalg.det(big[0, :, :2]))
    gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    small = cv2.resize(gray, None, fx=k, fy=k, interpolation=cv2.INTER_AREA)
    to_small = np.array([[k, 0, 0.5 * k - 0.5], [0, k, 0.5 * k - 0.5]])         # frame pixel → small pixel
    m = big[0] @ np.vstack([invert_affine(to_small), [0, 0, 1]])
    reference = cv2.warpAffine(small, m, (128, 128), flags=cv2.INTER_LINEAR)
    assert np.abs(alone.astype(int) - reference).mean() < 4.0     # 2.5; plain bilinear (aliased): 6.5
    colour = warp_crops(frame, big, 128)[0]                                      # a colour crop stays colour
    assert colour.shape == (128, 128, 3) and np.abs(cv2.cvtColor(colour, cv2.COLOR_BGR2GRAY).astype(int) - alone).max() <= 2


def test_crop_regions_are_whole_blocks_on_the_frame_grid_clipped_to_the_frame():
    from rtalign.crop import _regions
    halved = box_affines(np.array([[100.0, 100.0, 356.0, 356.0]]), 1.0, 128)    # 256 px → 128: 2 × 2 blocks
    same = box_affines(np.array([[10.0, 20.0, 138.0, 148.0]]), 1.0, 128)       # no shrink: single pixels
    both = np.concatenate([halved, same])
    blocks, regions = _regions(both, 128, (720, 1280))
    np.testing.assert_array_equal(blocks, [2, 1])
    # crop corners -0.5 and 128 map back to 100 and 357 (10 and 138.5); the far edge reaches one pixel more, then whole blocks
    np.testing.assert_array_equal(regions, [[100, 100, 358, 358], [10, 20, 140, 150]])
    blocks, regions = _regions(halved, 128, (300, 300))                         # the frame ends at 300
    np.testing.assert_array_equal(regions, [[100, 100, 300, 300]])
    blocks, regions = _regions(halved, 128, (1, 1))                             # smaller than a block: none
    np.testing.assert_array_equal(blocks, [1])


def test_landmark_box_is_min_max():
    pts = np.array([[1.0, 5.0], [3.0, -2.0]] * 34)
    np.testing.assert_array_equal(landmark_box(pts), [1.0, -2.0, 3.0, 5.0])


def test_a_dataset_image_is_read_as_stored_though_a_photo_is_turned_by_its_exif(tmp_path):
    """.pts points lie on the stored pixels: an orientation tag must not turn a dataset image away from them."""
    from PIL import Image
    from rtalign.data import read_image
    from rtalign.image import load_image
    stored = np.zeros((40, 60, 3), np.uint8)
    stored[5:10, 50:55] = 255                                   # a white square near the top right
    exif = Image.Exif()
    exif[0x0112] = 6                                            # "turn 90° clockwise to view"
    path = tmp_path / "face.jpg"
    Image.fromarray(stored).save(path, exif=exif, quality=100)
    as_stored = read_image(path)
    assert as_stored.shape == (40, 60, 3) and as_stored[7, 52].min() > 200
    assert load_image(path).shape == (60, 40, 3)                # a photo comes upright
