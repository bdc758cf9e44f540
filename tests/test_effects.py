"""Lip and iris recolouring on real 300-W crops with their ground-truth points."""
import cv2
import numpy as np
import pytest

from rtalign.color import parse_color
from rtalign.data import read_image
from rtalign.effects import Recolor, recolor_irises, recolor_lips
from rtalign.errors import InputError
from rtalign.landmarks import INNER_LIPS, LEFT_EYE, OUTER_LIPS, RIGHT_EYE, interocular


def polygon_mask(shape, *polys, holes=()):
    m = np.zeros(shape[:2], np.uint8)
    cv2.fillPoly(m, [np.rint(p).astype(np.int32) for p in polys], 1)
    cv2.fillPoly(m, [np.rint(p).astype(np.int32) for p in holes], 0)
    return m.astype(bool)


def hue_angle(bgr_pixels):
    hsv = cv2.cvtColor(bgr_pixels.reshape(-1, 1, 3), cv2.COLOR_BGR2HSV_FULL).reshape(-1, 3).astype(np.float64)
    a = hsv[:, 0] / 256.0 * 2 * np.pi
    return np.angle(np.average(np.exp(1j * a), weights=hsv[:, 1] + 1e-6))  # saturation-weighted circular mean


def ang(a, b):
    return abs(np.angle(np.exp(1j * (a - b))))


@pytest.fixture(scope="module")
def faces(test_samples):
    return [(read_image(s.image), s.points) for s in test_samples[:30]]


@pytest.mark.parametrize("color", ["purple", "#c71585", "darkorange", "crimson"])
def test_lip_hue_moves_to_target_and_lightness_detail_survives(faces, color):
    target = hue_angle(np.array(parse_color(color), np.uint8))
    moved, corr = [], []
    for img, pts in faces:
        out = recolor_lips(img.copy(), pts, color, 1.0)
        inside = polygon_mask(img.shape, pts[OUTER_LIPS], holes=[pts[INNER_LIPS]])
        before, after = hue_angle(img[inside]), hue_angle(out[inside])
        if ang(before, target) < 0.2:
            continue  # lips already of that hue: the ratio is meaningless
        moved.append(1.0 - ang(after, target) / max(ang(before, target), 1e-6))
        l0 = cv2.cvtColor(img, cv2.COLOR_BGR2Lab)[..., 0][inside].astype(float)
        l1 = cv2.cvtColor(out, cv2.COLOR_BGR2Lab)[..., 0][inside].astype(float)
        corr.append(np.corrcoef(l0, l1)[0, 1])
    assert np.mean(moved) >= 0.7, np.round(moved, 2)
    assert np.mean(corr) >= 0.9 and np.min(corr) >= 0.8, np.round(corr, 3)


def test_pixels_beyond_the_feather_band_are_bit_identical(faces):
    for img, pts in faces[:10]:
        out = img.copy()
        recolor_lips(out, pts, "crimson", 1.0)
        recolor_irises(out, pts, "dodgerblue", 1.0)
        band = int(np.ceil(3 * 0.025 * interocular(pts))) + 3
        near = polygon_mask(img.shape, pts[OUTER_LIPS], pts[RIGHT_EYE], pts[LEFT_EYE]).astype(np.uint8)
        near = cv2.dilate(near, np.ones((2 * band + 1, 2 * band + 1), np.uint8)).astype(bool)
        assert (out[~near] == img[~near]).all()
        assert (out[near] != img[near]).any()


def test_open_mouth_keeps_teeth_untouched(test_samples):
    gaps = [np.linalg.norm(s.points[66] - s.points[62]) / interocular(s.points) for s in test_samples]
    s = test_samples[int(np.argmax(gaps))]
    assert max(gaps) > 0.15, "expected an open mouth in test_common"
    img, pts = read_image(s.image), s.points
    out = recolor_lips(img.copy(), pts, "purple", 1.0)
    band = int(np.ceil(3 * 0.025 * interocular(pts))) + 2
    mouth = polygon_mask(img.shape, pts[INNER_LIPS]).astype(np.uint8)
    core = cv2.erode(mouth, np.ones((2 * band + 1, 2 * band + 1), np.uint8)).astype(bool)
    assert core.sum() > 50
    assert (out[core] == img[core]).all()


def test_iris_recolour_leaves_the_sclera_at_the_eye_corners(faces):
    changed_iris, changed_corner = [], []
    for img, pts in faces:
        out = recolor_irises(img.copy(), pts, "dodgerblue", 1.0)
        diff = np.abs(out.astype(int) - img.astype(int)).sum(axis=2)
        for eye in (pts[RIGHT_EYE], pts[LEFT_EYE]):
            inside = polygon_mask(img.shape, eye)
            ys, xs = np.nonzero(inside)
            t = (xs - eye[0, 0]) / (eye[3, 0] - eye[0, 0])     # 0 at one corner, 1 at the other
            corners = (t < 0.12) | (t > 0.88)
            changed_corner.append(diff[ys[corners], xs[corners]].mean() if corners.any() else 0.0)
            changed_iris.append(diff[ys[~corners], xs[~corners]].mean())
    assert np.mean(changed_iris) > 15                  # the iris really changes ...
    assert np.median(changed_corner) < 2.0             # ... the sclera by the corners does not


def test_bad_colour_is_a_clear_error():
    with pytest.raises(InputError, match="bad colour 'notacolour'"):
        Recolor(lip_color="notacolour")
    assert parse_color("#ff8000") == (0, 128, 255) and parse_color("red") == (0, 0, 255)


@pytest.mark.parametrize("dx,dy", [(-150, 0), (0, 200), (400, 400)])
def test_face_at_or_beyond_the_frame_edge_is_clipped_without_error(faces, dx, dy):
    img, pts = faces[0]
    moved = pts + [dx, dy]
    out = img.copy()
    recolor_lips(out, moved, "red", 1.0)
    recolor_irises(out, moved, "green", 1.0)
    assert out.shape == img.shape


def test_flat_style_paints_the_study_polygon(faces):
    img, pts = faces[0]
    out = recolor_lips(img.copy(), pts, "#0000ff", 1.0, style="flat")
    inside = polygon_mask(img.shape, pts[OUTER_LIPS], holes=[pts[INNER_LIPS]])
    inside = cv2.erode(inside.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)  # past the AA edges
    assert (out[inside] == [255, 0, 0]).all()
