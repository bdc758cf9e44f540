"""Rotation-aware crops and tracking: the upright similarity transform and its exact inverse, a rolled
face tracked as well as an upright one, two faces with stable ids, and Haar still acquiring."""
import cv2
import numpy as np
import pytest

from rtalign.bench.detector import place_face
from rtalign.crop import (apply_affine, box_affines, compose_affine, frame_crops, invert_affine, upright_affines,
                          upright_canvas)
from rtalign.data import read_image
from rtalign.detectors import Detections, load_detector
from rtalign.metrics import nme_per_face
from rtalign.models import load_model
from rtalign.landmarks import eye_roll, landmark_box
from rtalign.tracking import SEARCH_EVERY, FaceTracker, TrackerOptions
from rtalign.types import Frame


@pytest.fixture(scope="module")
def resnet():
    return load_model("resnet", threads=1)


def test_upright_transform_turns_the_eye_line_level_and_round_trips_exactly():
    rng = np.random.default_rng(0)
    centres = rng.uniform(50, 600, (5, 2))
    sides = rng.uniform(40, 400, 5)
    rolls = np.array([0.0, 30.0, -45.0, 60.0, 170.0])
    m = upright_affines(centres, sides, rolls, 128.0, 320)
    # the centre lands on the square's centre (pixel centres: 159.5), a side of `sides` becomes 128 px
    np.testing.assert_allclose(apply_affine(m, centres[:, None])[:, 0], 159.5, atol=1e-9)
    np.testing.assert_allclose(np.sqrt(np.abs(np.linalg.det(m[:, :, :2]))), 128.0 / sides)
    # two eyes on a line at angle `roll` end up level, the subject's right eye (image left) still on the left
    a = np.radians(rolls)
    eyes = centres[:, None] + np.stack([-np.cos(a), -np.sin(a), np.cos(a), np.sin(a)], 1).reshape(5, 2, 2) * 20
    up = apply_affine(m, eyes)
    np.testing.assert_allclose(up[:, 0, 1], up[:, 1, 1], atol=1e-9)
    assert (up[:, 0, 0] < up[:, 1, 0]).all()
    np.testing.assert_allclose(eye_roll(_eyes_only(eyes)), rolls, atol=1e-9)
    # frame → square → frame is the identity to rounding
    pts = rng.uniform(0, 700, (5, 68, 2))
    back = np.stack([invert_affine(x) for x in m])
    np.testing.assert_allclose(apply_affine(back, apply_affine(m, pts)), pts, atol=1e-9)


def _eyes_only(eyes):
    """(N, 68, 2) points whose right-eye ring (36-41) sits on eyes[:, 0] and left-eye ring on eyes[:, 1]."""
    pts = np.zeros((len(eyes), 68, 2))
    pts[:, 36:42] = eyes[:, :1]
    pts[:, 42:48] = eyes[:, 1:]
    return pts


def test_canvas_holds_each_face_upright_in_its_own_square(test_samples):
    s = test_samples[3]
    image = read_image(s.image)
    frame, pts = place_face(image, s.points, np.zeros((480, 640, 3), np.uint8), 150, 40, (320, 240))
    c = pts.mean(0)
    m = upright_affines(np.stack([c, c]), np.array([150.0, 150.0]), np.array([eye_roll(pts[None])[0], 0.0]), 128.0, 320)
    canvas, to_canvas = upright_canvas(frame, m, 320)
    assert canvas.shape == (640, 320)
    mapped = apply_affine(to_canvas, np.stack([pts, pts]))
    assert mapped[1, :, 1].min() >= 320                       # the second face lies in the second square
    assert abs(eye_roll(mapped[:1])[0]) < 1e-6                # the first stands upright
    # and the pixels there are the frame's, moved: the canvas at the mapped nose tip equals the frame's
    nose = np.round(mapped[0, 30]).astype(int)
    src = np.round(pts[30]).astype(int)
    assert abs(int(canvas[nose[1], nose[0]]) - int(frame[src[1], src[0]].mean())) < 40


def test_a_network_cuts_a_turned_face_straight_from_the_frame(resnet, test_samples):
    """predict_turned on a frame turned a quarter, with the view that turns it back, sees the crop that
    predict_scored sees on the upright frame, and its points are those points, turned."""
    for s in test_samples[:3]:
        image = cv2.resize(read_image(s.image), None, fx=0.6, fy=0.6, interpolation=cv2.INTER_AREA)
        box = landmark_box(((s.points + 0.5) * 0.6 - 0.5)[None])
        turned = np.ascontiguousarray(np.rot90(image))                      # (x, y) → (y, W-1-x)
        to_turned = np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, image.shape[1] - 1.0]])
        to_view = invert_affine(to_turned)[None]
        straight = box_affines(box, resnet.crop_scale, resnet.input_size)
        through = compose_affine(straight[0], to_view[0])[None]
        diff = np.abs(frame_crops(image, straight, resnet.input_size).astype(int)
                      - frame_crops(turned, through, resnet.input_size).astype(int))
        assert diff.max() <= 3 and diff.mean() < 0.05                      # bilinear rounding only
        want, _ = resnet.predict_scored(image, box)
        got, score = resnet.predict_turned(turned, to_view, box)
        assert np.abs(got[0] - apply_affine(to_turned, want[0])).mean() < 0.15
        assert score[0] > resnet.min_score


@pytest.mark.parametrize("roll", [0, 45, 60])
def test_a_rolled_face_is_acquired_and_tracked_as_well_as_an_upright_one(resnet, test_samples, roll):
    det = load_detector("blazeface")
    errors = []
    for s in test_samples[:6]:
        frame, pts = place_face(read_image(s.image), s.points, np.full((720, 1280, 3), 90, np.uint8), 180, roll,
                                (640, 360))
        tracker = FaceTracker(resnet, det, options=TrackerOptions(max_faces=1), smoothing=None)
        for i in range(3):
            faces = tracker.update(Frame(frame, i / 30, i))
        if len(faces) == 1:
            errors.append(nme_per_face(pts[None], faces.xy)[0])
    assert len(errors) >= 5 and np.mean(errors) < 4.5


class _SpinningFace:
    """A detector double that knows nothing of roll: one fixed box (Haar-like)."""

    def __init__(self, box):
        self.box = np.asarray(box, float)

    def detect(self, frame):
        return self.box[None]


def test_a_face_that_turns_is_followed_by_the_landmark_roll(resnet, test_samples):
    s = test_samples[1]
    image = read_image(s.image)
    bg = np.full((480, 640, 3), 90, np.uint8)
    frame, pts = place_face(image, s.points, bg, 160, 0, (320, 240))
    from rtalign.landmarks import landmark_box
    tracker = FaceTracker(resnet, _SpinningFace(landmark_box(pts)), options=TrackerOptions(max_faces=1, redetect_every=1000),
                          smoothing=None)
    for i, roll in enumerate(range(0, 64, 4)):   # 4° per frame up to 60°, never re-detected
        frame, pts = place_face(image, s.points, bg, 160, roll, (320, 240))
        faces = tracker.update(Frame(frame, i / 30, i))
        assert len(faces) == 1 and faces.track_id[0] == 0
        if roll == 0:
            upright = nme_per_face(pts[None], faces.xy)[0]
    assert nme_per_face(pts[None], faces.xy)[0] < 1.15 * upright
    assert tracker.detector_runs == 1


def test_two_faces_keep_their_ids_and_new_faces_get_new_ones(resnet, test_samples):
    det = load_detector("blazeface")
    bg = np.full((720, 1280, 3), 90, np.uint8)
    a, b = (read_image(s.image) for s in test_samples[:2])
    tracker = FaceTracker(resnet, det, options=TrackerOptions(max_faces=2), smoothing=None)
    ids_a, ids_b = set(), set()
    for i in range(8):
        frame, pa = place_face(a, test_samples[0].points, bg, 150, 10 * np.sin(i / 3), (350 + 5 * i, 360))
        frame, pb = place_face(b, test_samples[1].points, frame, 150, -20, (900 - 5 * i, 360))
        faces = tracker.update(Frame(frame, i / 30, i))
        assert len(faces) == 2
        for truth, ids in ((pa, ids_a), (pb, ids_b)):
            which = int(np.argmin(np.linalg.norm(faces.xy.mean(1) - truth.mean(0), axis=1)))
            assert nme_per_face(truth[None], faces.xy[which][None])[0] < 6
            ids.add(int(faces.track_id[which]))
    assert len(ids_a) == 1 and len(ids_b) == 1 and ids_a != ids_b


def test_haar_still_acquires_through_the_tracker(resnet, astronaut_file):
    import cv2
    image = cv2.imread(str(astronaut_file))
    tracker = FaceTracker(resnet, load_detector("haar"), smoothing=None)
    assert len(tracker.update(Frame(image, 0.0, 0))) == 1


def test_upright_detections_from_plain_boxes():
    d = Detections.upright(np.array([[0, 0, 10, 20]]))
    assert d.roll.tolist() == [0.0] and d.keypoints.shape == (1, 0, 2) and len(d[:0]) == 0


class _Slow:
    """A detector that finds nothing and moves a fake clock on by `seconds` a call, noting the frame of each."""

    def __init__(self, clock, seconds):
        self.clock, self.seconds, self.frames = clock, seconds, []

    def detect(self, frame):
        self.clock[0] += self.seconds
        self.frames.append(int(frame[0, 0, 0]))
        return np.empty((0, 4))


def _blank_frames(n):
    for i in range(n):
        frame = np.zeros((360, 640, 3), np.uint8)
        frame[0, 0] = i                                   # the frame's index, for the detector to note
        yield Frame(frame, i / 30, i)


def test_without_a_background_detector_searches_go_by_frames_not_by_how_long_the_detector_takes(resnet):
    """A file's rows must not depend on the machine: a slow and a fast detector search the same frames."""
    runs = []
    for seconds in (0.0, 0.1, 1.0):
        clock = [0.0]
        det = _Slow(clock, seconds)
        tracker = FaceTracker(resnet, det, smoothing=None, clock=lambda: clock[0])
        for frame in _blank_frames(20):
            clock[0] += 1 / 30
            assert len(tracker.update(frame)) == 0
        runs.append(det.frames)
    assert runs == [list(range(0, 20, SEARCH_EVERY))] * 3
    det = _Slow([0.0], 0.0)
    tracker = FaceTracker(resnet, det, options=TrackerOptions(search_every=1), smoothing=None)
    for frame in _blank_frames(5):
        tracker.update(frame)
    assert det.frames == [0, 1, 2, 3, 4]


def test_a_slow_background_detector_takes_at_most_its_share_of_the_time_and_a_fast_one_runs_every_frame(resnet):
    for seconds, share, expected in ((0.1, 0.25, None), (0.0, 0.25, 60), (0.1, 1.0, 60)):
        clock = [0.0]
        det = _Slow(clock, seconds)
        options = TrackerOptions(detector_share=share, background=True)
        with FaceTracker(resnet, det, options=options, smoothing=None, clock=lambda: clock[0]) as tracker:
            for frame in _blank_frames(60):
                clock[0] += 1 / 30                     # the rest of the pipeline's time per frame
                assert len(tracker.update(frame)) == 0
                if tracker._pending is not None:
                    tracker._pending.result()          # the run ends before the next frame: a fixed order
        if expected is not None:
            assert len(det.frames) == expected
        else:   # 0.1 s per call, then 0.3 s of other frames: one call per 0.1 + 10/30 s
            assert len(det.frames) * seconds / clock[0] <= share + 0.02 and len(det.frames) >= 4