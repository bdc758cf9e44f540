"""The annotators on hand-made faces: exactly which pixels they paint, in place."""
import time

import numpy as np
import pytest

from rtalign.effects import Recolor
from rtalign.errors import InputError
from rtalign.landmarks import JAW
from rtalign.render import Compose, FpsAnnotator, MeshAnnotator, PointsAnnotator, PoseAnnotator, annotator_for
from rtalign.types import FaceLandmarks


def one_face(xy) -> FaceLandmarks:
    xy = np.asarray(xy, np.float32)[None]
    return FaceLandmarks(xy, np.zeros((1, 4)))


def grid_face():
    """68 points 12 px apart on a 10 x 7 grid, off-centre by sub-pixel amounts that round back to it."""
    ij = np.stack(np.meshgrid(np.arange(10), np.arange(7)), axis=-1).reshape(-1, 2)[:68]
    return 10 + 12 * ij + np.array([0.4, -0.4])


def test_points_paint_a_disk_around_each_rounded_point_and_nothing_else():
    scene = np.zeros((100, 130, 3), np.uint8)
    xy = grid_face()
    xy[0] = [-1.0, -1.0]                                           # outside: only its corner pixel is in the frame
    out = PointsAnnotator(color=(1, 2, 3), radius=1).annotate(scene, one_face(xy))
    assert out is scene                                            # in place
    expected = np.zeros((100, 130), bool)
    for x, y in np.rint(xy[1:]).astype(int):
        expected[y - 1:y + 2, x - 1:x + 2] = True                  # radius 1 is the 3 x 3 block
    expected[0, 0] = True
    np.testing.assert_array_equal(np.any(scene != 0, axis=2), expected)
    assert set(map(tuple, scene[expected])) == {(1, 2, 3)}


def test_points_on_a_view_of_a_larger_image_paint_that_image():
    big = np.zeros((100, 300, 3), np.uint8)
    view = big[:, 100:230]                                          # not contiguous: rows are 300 pixels apart
    xy = grid_face()
    PointsAnnotator(color=(1, 2, 3), radius=1).annotate(view, one_face(xy))
    alone = PointsAnnotator(color=(1, 2, 3), radius=1).annotate(np.zeros((100, 130, 3), np.uint8), one_face(xy))
    np.testing.assert_array_equal(view, alone)
    assert not big[:, :100].any() and not big[:, 230:].any()


def test_no_faces_leaves_the_scene_untouched():
    scene = np.full((20, 20, 3), 7, np.uint8)
    for annotator in (PointsAnnotator(), MeshAnnotator()):
        assert annotator.annotate(scene, FaceLandmarks.empty()) is scene
    assert np.all(scene == 7)


def test_mesh_draws_the_contours_between_the_points():
    xy = np.full((68, 2), 150.0)                                   # every other contour collapses to one spot
    xy[JAW] = np.stack([np.linspace(10, 90, 17), np.full(17, 50.0)], axis=1)
    scene = np.zeros((200, 200, 3), np.uint8)
    MeshAnnotator(color=(0, 0, 255)).annotate(scene, one_face(xy))
    painted = scene[..., 2] > 0
    assert painted[50, 12:89].all()                                # the jaw line, between the points too
    ys, xs = np.nonzero(painted)
    near_jaw = (np.abs(ys - 50) <= 1) & (xs >= 9) & (xs <= 91)
    near_spot = (np.abs(ys - 150) <= 1) & (np.abs(xs - 150) <= 1)
    assert np.all(near_jaw | near_spot)                            # nothing painted anywhere else


def test_fps_appears_from_the_second_frame_in_the_top_left_corner():
    fps = FpsAnnotator()
    scene = np.zeros((120, 200, 3), np.uint8)
    fps.annotate(scene, FaceLandmarks.empty())
    assert not scene.any()                                         # one frame: no rate yet
    time.sleep(0.01)
    fps.annotate(scene, FaceLandmarks.empty())
    ys, xs = np.nonzero(scene.any(axis=2))
    assert len(ys) > 50 and ys.max() < 40 and xs.max() < 150


def test_compose_applies_in_order_and_skips_none():
    scene = np.zeros((40, 40, 3), np.uint8)
    face = one_face(np.full((68, 2), 20.0))
    Compose([PointsAnnotator((255, 0, 0)), None, PointsAnnotator((0, 255, 0))]).annotate(scene, face)
    assert tuple(scene[20, 20]) == (0, 255, 0)


def test_draw_styles():
    assert isinstance(annotator_for("points"), PointsAnnotator)
    assert isinstance(annotator_for("mesh"), MeshAnnotator)
    assert annotator_for("none") is None
    with pytest.raises(ValueError, match="unknown draw style"):
        annotator_for("dots")


ANNOTATORS = [PointsAnnotator, MeshAnnotator, PoseAnnotator]


def faces_on(shape):
    """Two grid faces, the second one shifted: the whole drawing falls inside `shape`."""
    xy = np.stack([grid_face(), grid_face() + [130, 20]]).astype(np.float32)
    return FaceLandmarks(xy, np.zeros((2, 4)))


@pytest.mark.parametrize("make", ANNOTATORS)
@pytest.mark.parametrize("big_shape,view_of", [((120, 280, 3), lambda big: big[:, ::-1]),     # a mirrored selfie
                                               ((240, 560, 3), lambda big: big[::2, ::2]),
                                               ((120, 280, 3), lambda big: big[..., ::-1])])  # RGB order
def test_a_view_opencv_cannot_address_gets_the_drawing_of_its_own_pixels(make, big_shape, view_of):
    faces = faces_on((120, 280))
    expected = make().annotate(np.zeros((120, 280, 3), np.uint8), faces)
    big = np.zeros(big_shape, np.uint8)
    view = view_of(big)
    assert make().annotate(view, faces) is view
    np.testing.assert_array_equal(view, expected)
    assert np.count_nonzero(big) == np.count_nonzero(expected)       # nothing drawn outside the view


@pytest.mark.parametrize("make", ANNOTATORS)
def test_bgra_frames_get_the_colour_drawing_and_keep_their_alpha(make):
    faces = faces_on((120, 280))
    expected = make().annotate(np.zeros((120, 280, 3), np.uint8), faces)
    bgra = np.zeros((120, 280, 4), np.uint8)
    bgra[..., 3] = np.arange(280, dtype=np.uint8)
    make().annotate(bgra, faces)
    np.testing.assert_array_equal(bgra[..., :3], expected)
    np.testing.assert_array_equal(bgra[..., 3], np.broadcast_to(np.arange(280, dtype=np.uint8), (120, 280)))


@pytest.mark.parametrize("make", ANNOTATORS + [FpsAnnotator])
@pytest.mark.parametrize("scene", [np.zeros((50, 60), np.uint8), np.zeros((50, 60, 3), np.float32),
                                   np.zeros((50, 60, 2), np.uint8)])
def test_frames_without_colour_channels_are_refused_in_one_line(make, scene):
    with pytest.raises(InputError, match=r"annotators draw on uint8 BGR \(H, W, 3\) or BGRA \(H, W, 4\) frames, got"):
        annotator = make()
        for _ in range(2):                          # FpsAnnotator draws from its second frame
            annotator.annotate(scene, faces_on(scene.shape))


def _read_only(shape):
    scene = np.zeros(shape, np.uint8)
    scene.setflags(write=False)
    return scene


@pytest.mark.parametrize("make", ANNOTATORS + [FpsAnnotator, lambda: Recolor(lip_color="red")])
@pytest.mark.parametrize("scene, message", [(_read_only((120, 280, 3)), r"the frame is read-only .* pass a copy"),
                                            (np.zeros((0, 0, 3), np.uint8), r"annotators draw on uint8 BGR")])
def test_a_read_only_or_empty_frame_is_refused_in_one_line(make, scene, message):
    """Frames from np.frombuffer or a memory map reach users through rtalign.track: numpy's "assignment
    destination is read-only" or OpenCV's "Overload resolution failed" came out instead."""
    with pytest.raises(InputError, match=message):
        annotator = make()
        for _ in range(2):
            annotator.annotate(scene, faces_on((120, 280)))


@pytest.mark.parametrize("make", ANNOTATORS)
def test_a_face_with_a_nan_point_is_not_drawn_and_the_others_are(make):
    faces = faces_on((120, 280))
    bad = faces.xy.copy()
    bad[1, 7] = np.nan
    expected = make().annotate(np.zeros((120, 280, 3), np.uint8), FaceLandmarks(faces.xy[:1], np.zeros((1, 4))))
    got = make().annotate(np.zeros((120, 280, 3), np.uint8), FaceLandmarks(bad, np.zeros((2, 4))))
    np.testing.assert_array_equal(got, expected)
