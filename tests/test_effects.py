"""Lip and iris recolouring: hand-made faces with exact expectations, and real 300-W crops with ground-truth points."""
import cv2
import numpy as np
import pytest

from rtalign.bench.effects import lip_figures, lowered_lip
from rtalign.color import parse_color
from rtalign.data import read_image
from rtalign.effects import EyeState, Recolor, eye_aspect_ratio, recolor_irises, recolor_lips
from rtalign.effects.common import _in_gamut_bgr, lab_of, lit_target
from rtalign.effects.irises import EAR_CLOSE, EAR_OPEN
from rtalign.errors import InputError
from rtalign.landmarks import INNER_LIPS, LEFT_EYE, OUTER_LIPS, RIGHT_EYE, interocular
from rtalign.types import FaceLandmarks

SKIN, LIP, TEETH = (150, 170, 215), (105, 95, 185), (232, 236, 240)


def polygon_mask(shape, *polys, holes=()):
    m = np.zeros(shape[:2], np.uint8)
    cv2.fillPoly(m, [np.rint(p).astype(np.int32) for p in polys], 1)
    cv2.fillPoly(m, [np.rint(p).astype(np.int32) for p in holes], 0)
    return m.astype(bool)


def ellipse_points(centre, axes, angles):
    return np.stack([centre[0] + axes[0] * np.cos(angles), centre[1] - axes[1] * np.sin(angles)], axis=1)


def synthetic_face(lip_axes, point_axes, mouth=(0, 0), point_mouth=(0, 0), seed=0):
    """A flat-skin face with elliptical lips of semi-axes `lip_axes` (and an opening of `mouth`, filled
    with teeth), and 68 points whose lip lines are ellipses of `point_axes` / `point_mouth`.

    Returns (image, points, true lip mask, true teeth mask).
    """
    img = np.empty((300, 320, 3), np.uint8)
    img[:] = SKIN
    centre = (160, 220)
    lips = np.zeros(img.shape[:2], np.uint8)
    cv2.ellipse(lips, centre, lip_axes, 0, 0, 360, 1, -1)
    teeth = np.zeros_like(lips)
    if mouth[1]:
        cv2.ellipse(teeth, centre, mouth, 0, 0, 360, 1, -1)
    img[lips > 0] = LIP
    img[teeth > 0] = TEETH
    noise = np.random.default_rng(seed).normal(0, 2.0, img.shape)
    img = np.clip(img + noise, 0, 255).astype(np.uint8)
    pts = np.zeros((68, 2))
    pts[36:42] = ellipse_points((100, 110), (20, 7), np.pi - np.arange(6) * np.pi / 3)
    pts[42:48] = ellipse_points((220, 110), (20, 7), np.pi - np.arange(6) * np.pi / 3)
    pts[OUTER_LIPS] = ellipse_points(centre, point_axes, np.pi - np.arange(12) * np.pi / 6)
    pts[INNER_LIPS] = ellipse_points(centre, (max(point_mouth[0], point_axes[0] - 4), point_mouth[1]),
                                     np.pi - np.arange(8) * np.pi / 4)
    return img, pts, (lips > 0) & (teeth == 0), teeth > 0


def changed(a, b):
    return np.abs(a.astype(int) - b.astype(int)).max(axis=2)


def eroded(mask, px):
    return cv2.erode(mask.astype(np.uint8), np.ones((2 * px + 1, 2 * px + 1), np.uint8)).astype(bool)


def test_points_outside_the_lips_leave_no_halo():
    img, pts, lips, _ = synthetic_face(lip_axes=(40, 15), point_axes=(44, 19))   # points 4 px too far out
    out = recolor_lips(img.copy(), pts, "purple", 1.0)
    skin = ~cv2.dilate(lips.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)  # ≥ 2 px outside the lip
    inside_points = polygon_mask(img.shape, pts[OUTER_LIPS])
    assert (skin & inside_points).sum() > 100                      # the polygon does cover skin ...
    assert changed(out, img)[skin].max() <= 2                      # ... which stays as it was
    assert (changed(out, img)[eroded(lips, 2)] > 20).mean() > 0.97


def test_points_inside_the_lips_still_cover_them():
    img, pts, lips, _ = synthetic_face(lip_axes=(44, 18), point_axes=(40, 14))   # points 4 px inside the edge
    out = recolor_lips(img.copy(), pts, "purple", 1.0)
    assert (changed(out, img)[eroded(lips, 1)] > 20).mean() > 0.95


def test_teeth_behind_a_tight_inner_line_stay_untouched():
    img, pts, lips, teeth = synthetic_face(lip_axes=(44, 20), point_axes=(44, 20), mouth=(34, 9), point_mouth=(30, 6))
    assert (teeth & ~polygon_mask(img.shape, pts[INNER_LIPS])).sum() > 100      # teeth inside the lip polygon
    out = recolor_lips(img.copy(), pts, "crimson", 1.0)
    assert changed(out, img)[eroded(teeth, 2)].max() <= 2 and changed(out, img)[teeth].mean() < 1.0
    assert (changed(out, img)[eroded(lips, 2)] > 20).mean() > 0.95


def test_an_occluder_over_the_lips_is_left_alone():
    img, pts, lips, _ = synthetic_face(lip_axes=(44, 18), point_axes=(44, 18))
    img[200:260, 150:170] = (70, 70, 70)                            # a dark microphone in front of the mouth
    bar = np.zeros(img.shape[:2], bool)
    bar[202:258, 152:168] = True
    out = recolor_lips(img.copy(), pts, "crimson", 1.0)
    assert changed(out, img)[bar].max() <= 2
    assert (changed(out, img)[eroded(lips, 2) & ~cv2.dilate(bar.astype(np.uint8), np.ones((9, 9))).astype(bool)]
            > 20).mean() > 0.95


@pytest.fixture(scope="module")
def faces(test_samples):
    return [(read_image(s.image), s.points) for s in test_samples[:30]]


def test_open_mouth_keeps_real_teeth_untouched(test_samples):
    gaps = [np.linalg.norm(s.points[66] - s.points[62]) / interocular(s.points) for s in test_samples]
    widest = [test_samples[i] for i in np.argsort(gaps)[-10:]]
    assert min(gaps[i] for i in np.argsort(gaps)[-10:]) > 0.15, "expected open mouths in test_common"
    figures = lip_figures(widest, colors=("crimson",))
    assert figures["teeth_faces"] >= 5 and figures["teeth_de"] <= 2.0, figures      # CIEDE2000


def test_lips_move_to_the_target_hue_and_keep_their_texture(faces):
    figures = lip_figures([s for s in faces_samples(faces)])
    assert figures["coverage"] >= 0.8, figures
    for color in ("purple", "#c71585"):
        corr = []
        for img, pts in faces[:10]:
            out = recolor_lips(img.copy(), pts, color, 1.0)
            inside = polygon_mask(img.shape, pts[OUTER_LIPS], holes=[pts[INNER_LIPS]])
            l0 = cv2.cvtColor(img, cv2.COLOR_BGR2Lab)[..., 0][inside].astype(float)
            l1 = cv2.cvtColor(out, cv2.COLOR_BGR2Lab)[..., 0][inside].astype(float)
            corr.append(np.corrcoef(l0, l1)[0, 1])
        assert np.mean(corr) >= 0.9 and np.min(corr) >= 0.8, np.round(corr, 3)


def faces_samples(faces):
    """The samples behind the `faces` fixture (lip_figures reads its own images)."""
    from rtalign.data import data_root, list_samples
    return list_samples(data_root() / "test_common")[:len(faces)][:10]


def test_dim_light_gives_dim_lips_and_lowered_points_spare_the_chin(test_samples):
    figures = lip_figures(test_samples[:8], colors=("crimson", "hotpink"))
    assert figures["dim_dl_max"] <= 3.0, figures                    # never brighter than the dim lips
    assert figures["halo_de"] <= 2.0, figures
    assert figures["below_de_lowered"] <= 5.0, figures


def test_black_and_white_photos_keep_the_chin_bare_when_the_points_sit_low(test_samples, tmp_path):
    """Grey versions of real faces: lip and skin share their chroma, so only the points tell the lip edge;
    with the lower lip 4 % of the inter-ocular distance too low the chin stays almost as it was."""
    from rtalign.bench.effects import is_monochrome
    from rtalign.data import Sample
    grey = []
    for s in test_samples[:8]:
        path = tmp_path / f"{s.image.stem}.png"
        cv2.imwrite(str(path), cv2.cvtColor(cv2.cvtColor(read_image(s.image), cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR))
        grey.append(Sample(path, s.points))
    assert all(is_monochrome(s) for s in grey)
    figures = lip_figures(grey, colors=("crimson",))
    assert figures["below_de_lowered"] <= 3.0 and figures["coverage"] >= 0.9, figures


def test_lowered_points_move_only_the_lower_lip(faces):
    img, pts = faces[0]
    low = lowered_lip(pts, 0.04)
    assert np.allclose(low[:55], pts[:55]) and np.allclose(low[60:65], pts[60:65])
    assert np.allclose(np.linalg.norm(low[55:60] - pts[55:60], axis=1), 0.04 * interocular(pts), rtol=1e-5)


def test_target_is_lit_like_the_face():
    well_lit = lit_target("crimson", 80.0)                          # brighter than the reference: unchanged
    assert np.allclose(well_lit, lab_of(np.array(parse_color("crimson"), np.float32) / 255), atol=0.05)
    # skin at a quarter of the reference luminance (0.34 → 0.085, L* 35.0): grey 128 at a quarter of its
    # linear value, 0.2158 / 4, is L* 27.85
    dim = lit_target("#808080", 116 * 0.085 ** (1 / 3) - 16)
    assert dim[0] == pytest.approx(27.85, abs=0.2) and abs(dim[1]) < 0.5 and abs(dim[2]) < 0.5


def test_lips_lighter_than_the_skin_round_them_get_the_colours_chroma_at_their_lightness():
    """The light is read from the skin round the mouth: dark skin under a top light, or a beard, read as a
    very dim scene, the target was dimmed to near black and the lips, which keep their own lightness, came
    out grey (chroma 20 → 10 on real faces). A lit colour's chroma follows its lightness."""
    img, pts, lips, _ = synthetic_face((60, 25), (60, 25))
    shadow = img.copy()
    shadow[~lips] = (shadow[~lips] * 0.12).astype(np.uint8)          # lips as they were, skin nearly black
    out = recolor_lips(shadow.copy(), pts, "crimson", 1.0)
    inside = eroded(lips, 3)
    lab0, lab1 = (cv2.cvtColor(x, cv2.COLOR_BGR2Lab)[inside].astype(float) - [0, 128, 128] for x in (shadow, out))
    chroma0, chroma1 = (np.hypot(lab[:, 1], lab[:, 2]).mean() for lab in (lab0, lab1))
    target = lab_of(np.array(parse_color("crimson"), np.float32) / 255)
    assert 1.3 * chroma0 < chroma1 <= np.hypot(*target[1:]) + 2      # never past the colour's own
    hue = np.degrees(np.arctan2(lab1[:, 2].mean(), lab1[:, 1].mean()) - np.arctan2(target[2], target[1]))
    assert abs((hue + 180) % 360 - 180) < 15


def gamut_bgr(lab):
    """_in_gamut_bgr of one Lab colour."""
    return _in_gamut_bgr(np.float32([lab[0]]), lab[1:], np.ones(1, np.float32))


def test_out_of_gamut_colours_lose_chroma_not_hue():
    lab = np.array([[50.0, 90.0, -90.0], [60.0, 20.0, 10.0]], np.float32)   # far outside sRGB; inside
    bgr = np.concatenate([gamut_bgr(c) for c in lab])
    assert ((bgr >= 0) & (bgr <= 1.001)).all()
    back = lab_of(bgr)
    assert abs(np.degrees(np.arctan2(back[0, 2], back[0, 1])) + 45) < 3 and abs(back[0, 0] - 50) < 3
    assert np.allclose(back[1], lab[1], atol=0.5)
    # a dark orange beyond the gamut on the blue side: OpenCV's Lab → BGR clips blue at 0, turning the hue
    # by 13°, so the gamut is judged on the unclipped linear RGB
    dark = gamut_bgr([33.0, 46.0, 72.0])
    hue = np.degrees(np.arctan2(*lab_of(dark)[0, 2:0:-1]))
    assert abs(hue - np.degrees(np.arctan2(72.0, 46.0))) < 1.5
    # one hue, many chromas: each lowered to the limit at its own lightness, none beyond it
    many = _in_gamut_bgr(np.float32([30, 50, 70]), (90.0, -90.0), np.float32([0.1, 1.0, 2.0]))
    chroma = np.hypot(*lab_of(many)[:, 1:].T)
    assert chroma[0] == pytest.approx(0.1 * np.hypot(90, 90), abs=0.5) and ((many >= 0) & (many <= 1.001)).all()


def test_pixels_away_from_lips_and_eyes_are_bit_identical(faces):
    for img, pts in faces[:10]:
        out = img.copy()
        recolor_lips(out, pts, "crimson", 1.0)
        recolor_irises(out, pts, "dodgerblue", 1.0)
        lips = cv2.dilate(polygon_mask(img.shape, pts[OUTER_LIPS]).astype(np.uint8),
                          np.ones((2 * int(0.06 * interocular(pts) + 4) + 1,) * 2, np.uint8))
        band = int(np.ceil(0.025 * interocular(pts))) + 3
        eyes = cv2.dilate(polygon_mask(img.shape, pts[RIGHT_EYE], pts[LEFT_EYE]).astype(np.uint8),
                          np.ones((2 * band + 1, 2 * band + 1), np.uint8))
        near = (lips | eyes).astype(bool)
        assert (out[~near] == img[~near]).all()
        assert (out[near] != img[near]).any()


@pytest.mark.parametrize("style", ["natural", "flat"])
def test_closed_eyes_get_no_colour(test_samples, style):
    """The flat style filled a closed eye's contour, its lid: a streak of colour across it."""
    closed = [s for s in test_samples
              if min(eye_aspect_ratio(s.points[RIGHT_EYE]), eye_aspect_ratio(s.points[LEFT_EYE])) < 0.15]
    assert len(closed) >= 5, "expected closed eyes in test_common"
    for s in closed:
        img = read_image(s.image)
        out = recolor_irises(img.copy(), s.points, "dodgerblue", 1.0, style=style)
        for eye in (RIGHT_EYE, LEFT_EYE):
            if eye_aspect_ratio(s.points[eye]) < 0.15:
                x0, y0 = np.floor(s.points[eye].min(0) - 10).astype(int)
                x1, y1 = np.ceil(s.points[eye].max(0) + 10).astype(int)
                assert (out[y0:y1, x0:x1] == img[y0:y1, x0:x1]).all(), s.image.name


def test_eye_gate_has_hysteresis():
    state = EyeState()
    seen = [state.gate(e) for e in (0.18, 0.21, 0.18, 0.17, 0.15, 0.18, 0.19, 0.20)]
    assert seen == [False, True, True, True, False, False, False, True]
    assert EAR_CLOSE < EAR_OPEN


def squint(pts, eye, ear):
    """The points with one eye's lids moved towards its corner line until its aspect ratio is `ear`."""
    out = pts.copy()
    e = out[eye]
    mid = (e[0] + e[3]) / 2
    k = ear / eye_aspect_ratio(e)
    for i in (1, 2, 4, 5):
        e[i] = mid + (e[i] - mid) * np.array([1.0, k])           # the face is roughly upright
    out[eye] = e
    return out


def test_a_half_closed_eye_keeps_its_colour_only_while_tracked(faces):
    img, pts = max(faces, key=lambda f: min(eye_aspect_ratio(f[1][RIGHT_EYE]), eye_aspect_ratio(f[1][LEFT_EYE])))
    half = squint(squint(pts, RIGHT_EYE, 0.18), LEFT_EYE, 0.18)
    assert recolor_irises(img.copy(), half, "dodgerblue", 1.0).tobytes() == img.tobytes()  # a photo: closed-ish
    effect = Recolor(eye_color="dodgerblue", eye_strength=1.0)
    seq = [pts, half, half]
    outs = [effect.annotate(img.copy(), FaceLandmarks(p[None], np.zeros((1, 4)), track_id=[7])) for p in seq]
    assert all((o != img).any() for o in outs)                      # still open through the squint
    other = effect.annotate(img.copy(), FaceLandmarks(half[None], np.zeros((1, 4)), track_id=[8]))
    assert (other == img).all()                                     # a new face starts closed


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
    assert np.mean(changed_iris) > 10                  # the iris really changes ...
    assert np.median(changed_corner) < 2.0             # ... the sclera by the corners does not


def test_bad_colour_is_a_clear_error():
    with pytest.raises(InputError, match="bad colour 'notacolour'"):
        Recolor(lip_color="notacolour")
    assert parse_color("#ff8000") == (0, 128, 255) and parse_color("red") == (0, 0, 255)
    assert parse_color("#ff8000ff") == (0, 128, 255) and parse_color("hsl(0, 100%, 50%)") == (0, 0, 255)
    with pytest.raises(InputError, match=r"bad colour 'rgb\(300,0,0\)': each channel must be within 0-255"):
        parse_color("rgb(300,0,0)")
    with pytest.raises(InputError, match="has transparency: give an opaque colour and set its strength"):
        parse_color("#ff000080")


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


def lips_and_eyes():
    img, pts, _, _ = synthetic_face((40, 18), (40, 18))
    return img, FaceLandmarks(pts[None].astype(np.float32), np.zeros((1, 4)))


def test_recolour_on_a_mirrored_view_or_bgra_frame_matches_a_plain_bgr_frame():
    img, faces = lips_and_eyes()
    recolor = lambda scene: Recolor(lip_color="red", eye_color="green", style="flat").annotate(scene, faces)
    expected = recolor(img.copy())
    assert changed(expected, img).any()
    mirrored = img[:, ::-1].copy()
    view = mirrored[:, ::-1]                                    # shows `img`, as a selfie preview would
    assert recolor(view) is view
    np.testing.assert_array_equal(view, expected)
    bgra = np.dstack([img, np.full(img.shape[:2], 77, np.uint8)])
    recolor(bgra)
    np.testing.assert_array_equal(bgra[..., :3], expected)
    assert (bgra[..., 3] == 77).all()


def test_a_face_with_a_nan_point_is_left_as_it_is():
    img, faces = lips_and_eyes()
    faces.xy[0, 50] = np.nan
    out = Recolor(lip_color="red", eye_color="green").annotate(img.copy(), faces)
    np.testing.assert_array_equal(out, img)


@pytest.mark.parametrize("strength", [float("nan"), float("inf"), -0.1, 1.5, 60, "0.5", None])
def test_a_strength_outside_0_to_1_is_a_clear_error(strength):
    for key in ("lip_strength", "eye_strength"):
        with pytest.raises(InputError, match=f"{key} must be a number in 0..1, got {strength!r}"):
            Recolor(lip_color="red", **{key: strength})
    Recolor(lip_color="red", lip_strength=np.float32(0.5), eye_strength=1)      # numpy numbers and ints are fine


@pytest.mark.parametrize("recolour", [recolor_lips, recolor_irises])
@pytest.mark.parametrize("kwargs, error, message", [
    ({"strength": 2.0}, InputError, r"strength must be a number in 0..1, got 2.0"),        # extrapolated to paint
    ({"strength": -1}, InputError, r"strength must be a number in 0..1, got -1"),          # silently nothing
    ({"style": "glam"}, ValueError, r"unknown style 'glam'"),                                # ran as "natural"
    ({"color": (0, 0, 300)}, InputError, r"bad colour \(0, 0, 300\): .* three BGR numbers within 0-255"),
    ({"color": "#zzz"}, InputError, r"bad colour '#zzz'"),
])
def test_the_functions_refuse_what_recolor_refuses(recolour, kwargs, error, message):
    img, faces = lips_and_eyes()
    args = {"color": "red", "strength": 0.6, **kwargs}
    with pytest.raises(error, match=message):
        recolour(img.copy(), faces.xy[0], **args)


@pytest.mark.parametrize("recolour", [recolor_lips, recolor_irises])
def test_the_functions_take_what_recolor_takes(recolour):
    """A BGRA frame (alpha kept), a BGR triple, a face with a NaN point (left as it is), a grey frame refused:
    they raised numpy's "cannot reshape", "cannot convert float NaN to integer" instead."""
    img, faces = lips_and_eyes()
    expected = recolour(img.copy(), faces.xy[0], (0, 0, 255), 1.0, style="flat")
    assert changed(expected, img).any()
    np.testing.assert_array_equal(expected, recolour(img.copy(), faces.xy[0], "red", 1.0, style="flat"))
    bgra = np.dstack([img, np.full(img.shape[:2], 77, np.uint8)])
    recolour(bgra, faces.xy[0], "red", 1.0, style="flat")
    np.testing.assert_array_equal(bgra[..., :3], expected)
    assert (bgra[..., 3] == 77).all()
    broken = faces.xy[0].copy()
    broken[50] = np.nan
    np.testing.assert_array_equal(recolour(img.copy(), broken, "red", 1.0), img)
    with pytest.raises(InputError, match="annotators draw on uint8 BGR"):
        recolour(img[..., 0].copy(), faces.xy[0], "red", 1.0)
    with pytest.raises(InputError, match=r"expected one face's \(68, 2\) landmarks, got shape \(2, 68, 2\)"):
        recolour(img.copy(), faces.xy[[0, 0]], "red", 1.0)


def test_dark_skin_in_good_light_gets_the_lipstick_light_skin_gets():
    """The light was read from the skin alone: dark skin counted as a dim scene, and its lipstick came out
    dimmed, a third less saturated. Eye whites reflect the same for every skin tone: they now say the light."""
    results = []
    for skin in ((150, 170, 215), (45, 60, 95)):                        # L* 73 and 29
        img, pts, lips, teeth = synthetic_face((40, 15), (40, 15))
        img[~lips & ~teeth] = skin
        for eye in (pts[RIGHT_EYE], pts[LEFT_EYE]):
            img[polygon_mask(img.shape, eye)] = (235, 235, 235)         # open eyes, their whites lit
        out = recolor_lips(img.copy(), pts, "red", 1.0)
        results.append(lab_of(out[eroded(lips, 3)].astype(np.float32) / 255).mean(0))
    (light_l, *light_ab), (dark_l, *dark_ab) = results
    assert abs(np.hypot(*dark_ab) - np.hypot(*light_ab)) < 0.1 * np.hypot(*light_ab) and abs(dark_l - light_l) < 5


@pytest.mark.parametrize("shrink", [0.1, 0.15])
def test_a_tiny_face_gets_the_lips_a_large_one_gets_scaled_down(shrink):
    """A 30 px face (inter-ocular 16 px): a 2 px band, 1.5 px inner reach and 0.7 px blur painted 1.7× the
    lip area that recolouring the face at full size and scaling it down paints, most of the extra on skin."""
    img, pts, _, _ = synthetic_face((40, 15), (40, 15))
    ideal = cv2.resize(recolor_lips(img.copy(), pts, "#00ff00", 1.0), None, fx=shrink, fy=shrink,
                       interpolation=cv2.INTER_AREA)
    small = cv2.resize(img, None, fx=shrink, fy=shrink, interpolation=cv2.INTER_AREA)
    got = recolor_lips(small.copy(), (pts + 0.5) * shrink - 0.5, "#00ff00", 1.0)
    painted, meant = changed(got, small) > 10, changed(ideal, small) > 10
    assert painted.sum() <= 1.3 * meant.sum() and (painted & (changed(ideal, small) <= 3)).sum() <= 0.2 * meant.sum()


def test_eye_corners_that_all_but_coincide_do_not_blow_the_lip_mask_up(monkeypatch):
    """A profile or a bad fit: eye corners 1 px apart under a 60 px mouth made the lip mask's working image
    40× the mouth (at 0.1 px: 400×, and the memory ran out)."""
    import rtalign.effects.lips as lips
    img, pts, _, _ = synthetic_face((40, 15), (40, 15))
    pts[45] = pts[36] + [1.0, 0.0]
    sizes, resize = [], cv2.resize
    monkeypatch.setattr(lips.cv2, "resize", lambda image, size, **kw: sizes.append(size) or resize(image, size, **kw))
    recolor_lips(img.copy(), pts, "red", 1.0)
    mouth = np.ptp(pts[OUTER_LIPS], axis=0)
    assert sizes and max(w for w, h in sizes) <= lips.MAX_UPSCALE * (mouth[0] + 20)


def test_glare_on_glasses_does_not_light_a_dim_face():
    """A screen reflected in glasses over a dim face read as lit eye whites: the lipstick came out at full
    brightness, as on a lit face (chroma 96 against 60)."""
    results = []
    for glare in (False, True):
        img, pts, lips, teeth = synthetic_face((40, 15), (40, 15))
        img[~lips & ~teeth] = (55, 62, 80)                                # a dim room
        for eye in (pts[RIGHT_EYE], pts[LEFT_EYE]):
            inside = polygon_mask(img.shape, eye)
            img[inside] = (85, 85, 85)
            if glare:
                ys = np.nonzero(inside)[0]
                inside[(ys.min() + ys.max()) // 2:] = False
                img[inside] = (250, 245, 240)                             # the upper half of each lens
        out = recolor_lips(img.copy(), pts, "red", 1.0)
        results.append(lab_of(out[eroded(lips, 3)].astype(np.float32) / 255).mean(0))
    np.testing.assert_allclose(results[1], results[0], atol=1.0)

