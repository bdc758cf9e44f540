"""FaceAligner (the still-image API) and the FaceLandmarks container it returns."""
import cv2
import numpy as np
import pytest

import rtalign
from rtalign import FaceAligner, FaceLandmarks
from rtalign.models import load_model
from rtalign.synth import ASSET, ASSET_FACE

#: 68 points spanning the unit square (their landmark box is exactly [0, 0, 1, 1])
UNIT = np.stack([np.linspace(0, 1, 68), np.linspace(1, 0, 68)], axis=1)


class BoxModel:
    """A stand-in model that lays its points across each box it is given, so the result shows which boxes it saw."""
    name, threads = "box", 1

    def __init__(self):
        self.calls = 0

    def predict(self, frame, boxes):
        return self.predict_scored(frame, boxes)[0]

    def predict_scored(self, frame, boxes):
        self.calls += 1
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        pts = boxes[:, None, :2] + UNIT[None] * (boxes[:, None, 2:] - boxes[:, None, :2])
        return pts.astype(np.float32), np.full(len(boxes), 0.9, np.float32)


class FixedDetector:
    def __init__(self, boxes):
        self.boxes, self.calls = np.asarray(boxes, np.float64).reshape(-1, 4), 0

    def detect(self, image):
        self.calls += 1
        return self.boxes


BOXES = [[10, 10, 110, 110], [200, 20, 260, 80], [300, 300, 340, 340]]
IMAGE = np.zeros((400, 400, 3), np.uint8)


def test_max_faces_keeps_the_first_detections():
    detector = FixedDetector(BOXES)
    faces = FaceAligner(BoxModel(), max_faces=2, detector=detector).align(IMAGE)
    assert detector.calls == 1 and len(faces) == 2
    np.testing.assert_allclose(faces.bbox, BOXES[:2])
    np.testing.assert_allclose(faces.xy[1, 0], [200, 80])          # UNIT's first point: the box's bottom left
    np.testing.assert_allclose(faces.score, [0.9, 0.9])
    assert faces.track_id is None                                 # ids belong to trackers


def test_by_default_every_face_found_is_aligned():
    many = [[x, y, x + 40, y + 40] for x in range(0, 400, 60) for y in (0, 200)]      # 14 faces
    faces = FaceAligner(BoxModel(), detector=FixedDetector(many)).align(IMAGE)
    assert len(faces) == 14
    np.testing.assert_allclose(faces.bbox, many)


def test_given_boxes_bypass_the_detector_and_max_faces():
    detector = FixedDetector(np.empty((0, 4)))
    faces = FaceAligner(BoxModel(), max_faces=1, detector=detector).align(IMAGE, boxes=np.array(BOXES))
    assert detector.calls == 0 and len(faces) == 3
    np.testing.assert_allclose(faces.bbox, BOXES)


def test_no_face_gives_an_empty_result_without_running_the_model():
    model = BoxModel()
    for aligner, boxes in ((FaceAligner(model, detector=FixedDetector(np.empty((0, 4)))), None),
                           (FaceAligner(model, detector=FixedDetector(BOXES)), np.empty((0, 4)))):
        faces = aligner.align(IMAGE, boxes=boxes)
        assert len(faces) == 0 and faces.xy.shape == (0, 68, 2) and faces.track_id is None
        assert faces.pose.shape == (0, 3)                         # `faces.pose.shape` works with no face too
    assert model.calls == 0


def test_max_faces_keeps_the_largest_faces_whatever_order_the_detector_gives():
    smaller_first = [BOXES[2], BOXES[0], BOXES[1]]                  # sides 40, 100, 60 (a detector's score order)
    faces = FaceAligner(BoxModel(), max_faces=2, detector=FixedDetector(smaller_first)).align(IMAGE)
    np.testing.assert_allclose(faces.bbox, BOXES[:2])


def test_a_model_file_given_as_a_path_object_loads_like_its_string(astronaut):
    from pathlib import Path
    from rtalign.models import models_dir
    path = models_dir() / "cnn.onnx"
    by_path, by_str = FaceAligner(path).align(astronaut), FaceAligner(str(path)).align(astronaut)
    assert len(by_path) == 1
    np.testing.assert_array_equal(by_path.xy, by_str.xy)
    assert load_model(Path(path)).name == load_model(str(path)).name


def test_one_aligner_shared_by_threads_gives_each_call_its_own_answer(astronaut):
    """Threads may share an aligner (onnxruntime sessions are thread-safe): each call has its own crop buffer."""
    from concurrent.futures import ThreadPoolExecutor
    aligner = FaceAligner("cnn")
    images = [np.roll(astronaut, 7 * k, axis=1) for k in range(6)]
    alone = [aligner.align(img).xy for img in images]
    with ThreadPoolExecutor(4) as pool:
        for _ in range(5):
            shared = list(pool.map(lambda img: aligner.align(img).xy, images))
            for a, b in zip(alone, shared):
                np.testing.assert_array_equal(a, b)


def test_face_landmarks_compare_by_identity_instead_of_raising():
    a = FaceLandmarks(np.zeros((2, 68, 2)), np.zeros((2, 4)))
    assert a == a and a != FaceLandmarks(np.zeros((2, 68, 2)), np.zeros((2, 4)))


def test_a_real_face_from_a_given_box():
    (cx, cy), side = ASSET_FACE
    box = np.array([[cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2]])
    image = cv2.imread(str(ASSET))
    faces = FaceAligner(load_model("cnn", threads=1), detector=FixedDetector(np.empty((0, 4)))).align(image, boxes=box)
    assert len(faces) == 1
    lo, hi = faces.xy[0].min(axis=0), faces.xy[0].max(axis=0)
    assert np.all(lo > box[0, :2] - 0.3 * side) and np.all(hi < box[0, 2:] + 0.3 * side)
    assert hi[0] - lo[0] > 0.6 * side                               # a face-sized shape, not a collapsed one


@pytest.mark.parametrize("kwargs,field", [
    (dict(xy=np.zeros((34, 4)), bbox=np.zeros((1, 4))), "xy"),       # as many numbers as one face: still refused
    (dict(xy=np.zeros((68, 2)), bbox=np.zeros((1, 4))), "xy"),
    (dict(xy=np.zeros((2, 68, 2)), bbox=np.zeros((1, 4))), "bbox"),
    (dict(xy=np.zeros((2, 68, 2)), bbox=np.zeros((2, 4)), score=np.ones(3)), "score"),
    (dict(xy=np.zeros((2, 68, 2)), bbox=np.zeros((2, 4)), track_id=[1]), "track_id"),
])
def test_face_landmarks_refuse_arrays_of_the_wrong_shape(kwargs, field):
    with pytest.raises(ValueError, match=f"FaceLandmarks.{field} must have shape"):
        FaceLandmarks(**kwargs)


def test_face_landmarks_defaults_and_empty():
    faces = FaceLandmarks(np.zeros((2, 68, 2)), np.zeros((2, 4)))
    assert faces.xy.dtype == np.float32 and faces.score.tolist() == [1.0, 1.0] and faces.track_id is None
    assert FaceLandmarks.empty().track_id is None
    assert FaceLandmarks.empty(tracked=True).track_id.shape == (0,)
    assert FaceLandmarks.empty().pose is None and FaceLandmarks.empty(posed=True).pose.shape == (0, 3)


class SeeingModel(BoxModel):
    """BoxModel that keeps the images it was given."""

    def predict_scored(self, frame, boxes):
        self.seen = frame
        return super().predict_scored(frame, boxes)


def test_grey_and_bgra_images_are_read_as_bgr():
    grey = np.arange(400 * 400, dtype=np.uint32).reshape(400, 400).astype(np.uint8)
    bgr = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)
    for image in (grey, grey[:, :, None], cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA)):
        model = SeeingModel()
        FaceAligner(model, detector=FixedDetector(BOXES)).align(image, boxes=np.array(BOXES))
        assert model.seen.shape == (400, 400, 3) and (model.seen == bgr).all()


@pytest.mark.parametrize("image, message", [
    (IMAGE.astype(np.float32) / 255, "expected uint8 pixels .*got float32"),
    (IMAGE.astype(np.uint16), "expected uint8 pixels .*got uint16"),
    (IMAGE > 0, "expected uint8 pixels .*got bool"),
    (IMAGE.transpose(2, 0, 1)[:2], r"got shape \(2, 400, 400\)"),
    (IMAGE[None], r"got shape \(1, 400, 400, 3\)"),
    (np.zeros((0, 0, 3), np.uint8), r"got shape \(0, 0, 3\)"),
    (None, "expected a numpy image, got NoneType"),
    (IMAGE.tolist(), "expected a numpy image, got list"),
])
def test_images_that_are_not_8_bit_pictures_are_clear_errors(image, message):
    from rtalign.errors import InputError
    model = BoxModel()
    with pytest.raises(InputError, match=message):
        FaceAligner(model, detector=FixedDetector(BOXES)).align(image)
    assert model.calls == 0


@pytest.mark.parametrize("boxes, message", [
    (np.array([1.0, 2, 3]), r"expected \(N, 4\) boxes"),
    (np.array([[10, 10, 10, 50]]), "finite x0 < x1 and y0 < y1"),
    (np.array([[np.nan, 10, 50, 50]]), "finite x0 < x1 and y0 < y1"),
    ("abc", r"expected \(N, 4\) boxes x0, y0, x1, y1, got str 'abc'"),        # numpy's own ValueError came out
])
def test_unusable_boxes_are_clear_errors(boxes, message):
    from rtalign.errors import InputError
    with pytest.raises(InputError, match=message):
        FaceAligner(BoxModel(), detector=FixedDetector(BOXES)).align(IMAGE, boxes=boxes)


@pytest.mark.parametrize("n", [0, -1, 1.5, "2"])
def test_max_faces_below_one_or_not_whole_is_refused(n):
    with pytest.raises(ValueError, match=f"max_faces must be a whole number ≥ 1 or None, got {n!r}"):
        FaceAligner(BoxModel(), max_faces=n, detector=FixedDetector(BOXES))


@pytest.mark.parametrize("model", [None, 3, object()])
def test_what_is_no_model_is_refused_when_the_aligner_and_the_stream_are_made(model):
    """None was taken, then failed at the first image with "'NoneType' object has no attribute 'predict_scored'"."""
    from rtalign.errors import ModelError
    message = rf"model must be a name \(resnet, cnn, cascade\), a .onnx/.npz path or a LandmarkModel, got {type(model).__name__}"
    with pytest.raises(ModelError, match=message):
        FaceAligner(model, detector=FixedDetector(BOXES))
    with pytest.raises(ModelError, match=message):
        rtalign.track(IMAGE, model=model, detector=FixedDetector(BOXES))


def test_a_model_path_may_be_bytes_as_a_video_path_may():
    assert load_model(b"cnn").name == "cnn"


def test_face_landmarks_print_one_line_a_face_not_every_point():
    faces = FaceLandmarks(np.zeros((2, 68, 2)), np.array([[1, 2, 3, 4], [5, 6, 7, 8.4]]), track_id=[3, 7],
                          pose=[[1, 2, 3], [4, 5, 6]])
    assert repr(faces).splitlines() == ["FaceLandmarks(2 faces, xy (n, 68, 2)",
                                        "  face(id=3, box=[1, 2, 3, 4], score=1.00, yaw/pitch/roll=[1.0, 2.0, 3.0])",
                                        "  face(id=7, box=[5, 6, 7, 8], score=1.00, yaw/pitch/roll=[4.0, 5.0, 6.0]))"]
    assert repr(FaceLandmarks.empty()) == "FaceLandmarks(0 faces, xy (n, 68, 2))"


class PresenceModel(BoxModel):
    """BoxModel whose presence score is 0.2 for the face in the first square of the upright canvas (the
    largest detection: a 'false face') and 0.9 for the others."""
    min_score = 0.5

    def predict_scored(self, frame, boxes):
        from rtalign.align import TILE
        pts, _ = super().predict_scored(frame, boxes)
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        return pts, np.where(boxes[:, 1] < TILE, 0.2, 0.9).astype(np.float32)


def test_detected_faces_the_model_scores_below_its_presence_threshold_are_left_out_before_max_faces():
    detector = FixedDetector(BOXES)                                   # BOXES[0] (side 100) is the 'false face'
    faces = FaceAligner(PresenceModel(), detector=detector).align(IMAGE)
    np.testing.assert_allclose(faces.bbox, BOXES[1:])
    capped = FaceAligner(PresenceModel(), max_faces=1, detector=detector).align(IMAGE)
    np.testing.assert_allclose(capped.bbox, BOXES[1:2])              # the largest real face, not the false one
    given = FaceAligner(PresenceModel(), detector=detector).align(IMAGE, boxes=np.array(BOXES))
    assert len(given) == 3                                            # boxes the caller gives are taken as faces


def test_a_large_photo_gives_its_one_face_not_a_false_one_beside_it(astronaut):
    """BlazeFace found a second, false face in the portrait upscaled to 2048 px; the resnet scores it 0.60
    against its 0.708 threshold (the real face 0.84)."""
    big = cv2.resize(astronaut, (2048, 2048))
    faces = FaceAligner("resnet").align(big)
    assert len(faces) == 1 and faces.score[0] > 0.8
    (cx, cy), side = ASSET_FACE
    np.testing.assert_allclose((faces.bbox[0, :2] + faces.bbox[0, 2:]) / 2 / 4, (cx, cy), atol=side / 4)


def test_face_landmarks_select_faces_by_index_slice_or_mask():
    faces = FaceLandmarks(np.arange(3 * 136).reshape(3, 68, 2), np.zeros((3, 4)), [0.1, 0.2, 0.3],
                          track_id=[4, 5, 6], pose=np.ones((3, 3)))
    assert faces[1].track_id.tolist() == [5] and faces[-1].score.tolist() == [np.float32(0.3)]
    assert faces[:2].track_id.tolist() == [4, 5] and faces[:None] is not faces and len(faces[:None]) == 3
    picked = faces[np.array([True, False, True])]
    assert picked.track_id.tolist() == [4, 6] and picked.pose.shape == (2, 3) and picked.xy[1, 0, 0] == 272
    # one at a time, and no further: an index past the last face gave an empty answer, so a loop never ended
    assert [face.track_id.tolist() for face in faces] == [[4], [5], [6]]
    with pytest.raises(IndexError):
        faces[3]
