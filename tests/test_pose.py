"""Head pose: exact on projected 3-D faces, and on real faces rotated, turned and mirrored by known amounts."""
import cv2
import numpy as np
import pytest

from rtalign import FaceAligner, FaceLandmarks, Frame
from rtalign.landmarks import FLIP, landmark_box
from rtalign.pose import (FACE_3D, PoseTracker, angles_from_rotation, camera_matrix, head_pose,
                          rotation_from_angles)
from rtalign.render import annotator_for
from rtalign.synth import turn_face

SIZE = (1280, 720)


def project(yaw, pitch, roll, distance=8.0, shift=(0.0, 0.0)):
    """FACE_3D seen by the default camera with the given pose: (68, 2) pixel points."""
    cam = camera_matrix(SIZE)
    p = FACE_3D @ rotation_from_angles(yaw, pitch, roll).T + [shift[0], shift[1], distance]
    return p[:, :2] / p[:, 2:] * cam[0, 0] + cam[:2, 2]


def test_generic_face_is_symmetric_and_faces_the_camera():
    mirrored = FACE_3D[FLIP] * [-1, 1, 1]
    np.testing.assert_allclose(mirrored, FACE_3D, atol=1e-9)
    assert FACE_3D[30, 2] == FACE_3D[:, 2].min()          # the nose tip is nearest the camera
    assert np.linalg.norm(FACE_3D[36, :2] - FACE_3D[45, :2]) == pytest.approx(1.0, abs=2e-3)


@pytest.mark.parametrize("angles", [(0, 0, 0), (20, 0, 0), (-35, 12, 5), (10, -15, -25), (5, 5, 170)])
def test_pose_of_a_projected_face_is_exact(angles):
    np.testing.assert_allclose(head_pose(project(*angles, shift=(0.7, -0.4))[None], SIZE)[0], angles, atol=0.01)
    np.testing.assert_allclose(angles_from_rotation(rotation_from_angles(*angles)), angles, atol=1e-9)


def test_signs_follow_the_documented_axes():
    base = project(0, 0, 0)
    nose_dx = lambda p: p[30, 0] - p[[36, 45], 0].mean()
    nose_dy = lambda p: p[30, 1] - p[[36, 45], 1].mean()
    assert nose_dx(project(20, 0, 0)) > nose_dx(base) + 10     # yaw > 0: the nose moves to the image's right
    assert nose_dy(project(0, 20, 0)) < nose_dy(base) - 10     # pitch > 0: the nose moves up
    eyes = project(0, 0, 20)[45] - project(0, 0, 20)[36]
    assert eyes[1] > 0                                          # roll > 0: clockwise in the image


@pytest.fixture(scope="module")
def aligner():
    return FaceAligner("resnet")


@pytest.fixture(scope="module")
def reference(aligner, astronaut):
    faces = aligner.align(astronaut)
    assert len(faces) == 1 and faces.pose is not None
    return faces


@pytest.mark.parametrize("angle", [-30, -15, 15, 30])
def test_roll_follows_an_image_rotation(aligner, astronaut, reference, angle):
    xy = reference.xy[0]
    m = cv2.getRotationMatrix2D(tuple(float(v) for v in xy.mean(0)), angle, 1.0)   # counter-clockwise
    rotated = cv2.warpAffine(astronaut, m, astronaut.shape[1::-1], borderMode=cv2.BORDER_REPLICATE)
    box = landmark_box(np.c_[xy, np.ones(68)] @ m.T)
    pose = aligner.align(rotated, box[None]).pose[0]
    assert pose[2] - reference.pose[0, 2] == pytest.approx(-angle, abs=2.0)


def test_mirrored_face_has_opposite_yaw_and_roll(aligner, astronaut, reference):
    w = astronaut.shape[1]
    box = reference.bbox[0]
    pose = aligner.align(astronaut[:, ::-1].copy(), np.array([[w - 1 - box[2], box[1], w - 1 - box[0], box[3]]])).pose[0]
    own = reference.pose[0]
    assert pose[0] == pytest.approx(-own[0], abs=2.0)
    assert pose[2] == pytest.approx(-own[2], abs=2.0)
    assert pose[1] == pytest.approx(own[1], abs=2.0)


def test_yaw_sign_and_size_follow_a_known_turn(aligner, astronaut, reference):
    xy = reference.xy[0]
    turns = np.array([-30, -20, -10, 0, 10, 20, 30])
    yaws = []
    for turn in turns:
        image, moved = turn_face(astronaut, xy, turn, FACE_3D[:, 2])
        yaws.append(aligner.align(image, landmark_box(moved)[None]).pose[0, 0])
    change = np.array(yaws) - yaws[3]
    assert np.all(np.diff(yaws) > 0), yaws                            # monotone in the true angle
    assert np.all(np.sign(change) == np.sign(turns)), change           # the right sign
    assert np.all(np.abs(change[[0, 6]]) > 18)                          # and most of the turn


def test_turned_face_render_moves_only_the_head(astronaut, reference):
    xy = reference.xy[0]
    same, still = turn_face(astronaut, xy, 0, FACE_3D[:, 2])
    np.testing.assert_array_equal(still, xy)
    assert np.abs(same.astype(int) - astronaut).mean() < 0.5
    turned, moved = turn_face(astronaut, xy, 30, FACE_3D[:, 2])
    assert moved[30, 0] - xy[30, 0] > 0.25 * np.linalg.norm(xy[45] - xy[36])    # the nose swings to the right
    rows, cols = np.indices(astronaut.shape[:2])
    far = np.hypot(cols - xy[:, 0].mean(), rows - xy[:, 1].mean())
    ring = 1.6 * np.linalg.norm(xy - xy.mean(0), axis=1).max()
    assert (turned[far > ring + 2] == astronaut[far > ring + 2]).all()         # outside the head's ring: untouched


class _Replay:
    """A tracker that replays fixed landmarks (track id 7), counting nothing."""

    def __init__(self, points):
        self.points = points

    def update(self, frame):
        return FaceLandmarks(self.points[frame.index][None], landmark_box(self.points[frame.index])[None],
                             track_id=[7])


def test_pose_tracker_fills_pose_per_frame_and_remembers_each_track():
    points = np.stack([project(yaw, 0, 0) for yaw in np.linspace(-20, 20, 9)]).astype(np.float32)
    tracker = PoseTracker(_Replay(points))
    image = np.zeros((SIZE[1], SIZE[0], 3), np.uint8)
    yaws = [tracker.update(Frame(image, i / 30, i)).pose[0, 0] for i in range(len(points))]
    np.testing.assert_allclose(yaws, np.linspace(-20, 20, 9), atol=0.05)
    assert list(tracker._last) == [7]


def test_a_frame_whose_points_are_nan_does_not_poison_the_next_poses_of_its_track():
    points = np.stack([project(10, 0, 0)] * 4).astype(np.float32)
    points[1] = np.nan
    tracker = PoseTracker(_Replay(points))
    image = np.zeros((SIZE[1], SIZE[0], 3), np.uint8)
    poses = [tracker.update(Frame(image, i / 30, i)).pose[0] for i in range(4)]
    assert np.isnan(poses[1]).all()
    np.testing.assert_allclose(poses[2:], [[10, 0, 0]] * 2, atol=0.05)


def test_pose_drawing_marks_the_frame(reference, astronaut):
    plain = astronaut.copy()
    annotator_for("points").annotate(plain, reference)
    drawn = annotator_for("pose").annotate(astronaut.copy(), reference)
    assert (drawn != plain).any(axis=2).sum() > 100        # the three axes on top of the points
