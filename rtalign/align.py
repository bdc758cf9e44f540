"""The one-call API for still images: find every face, then its 68 landmarks.

    from rtalign import FaceAligner
    faces = FaceAligner("resnet").align(image_bgr)   # FaceLandmarks, faces.xy is (n, 68, 2)
"""
from __future__ import annotations

import numbers
import os

import cv2
import numpy as np

from .crop import apply_affine, invert_affine, upright_affines, upright_canvas
from .detectors import DEFAULT_DETECTOR, Detections, detect_faces, load_detector
from .errors import InputError
from .landmarks import landmark_box
from .models import LandmarkModel, as_model, refine
from .pose import head_pose
from .runtime import RuntimeOptions, resolve_runtime
from .types import FaceLandmarks


#: Each face is scaled so its box side is BOX_PX in a TILE × TILE square of the canvas: no model crop
#: (1.3 box sides for the networks, 2 for the cascade, after refinement) reaches a neighbour's square.
BOX_PX, TILE = 128.0, 320


def predict_upright(model: LandmarkModel, frame: np.ndarray, centres: np.ndarray, sides: np.ndarray,
                    rolls: np.ndarray, boxes_of, refined: bool = False):
    """Landmarks of faces turned upright: each face (centre (N, 2), side (N,), roll (N,) degrees) gets an
    upright view, `boxes_of(to_view)` gives the model's boxes there (`to_view`: (N, 2, 3) frame → view),
    and the points come back through the exact inverse. `refined`: one more pass from the predicted
    landmark box (for detector boxes). Returns points (N, 68, 2) in the frame and scores (N,).

    A network cuts its rotated crop straight from the frame (`predict_turned`); any other model reads
    one canvas that holds every face upright."""
    to_view = upright_affines(centres, sides, rolls, BOX_PX, TILE)
    if hasattr(model, "predict_turned"):
        def run(boxes):
            return model.predict_turned(frame, to_view, boxes)
    else:
        canvas, to_view = upright_canvas(frame, to_view, TILE)
        back = invert_affine(to_view)

        def run(boxes):
            pts, scores = model.predict_scored(canvas, boxes)
            return apply_affine(back, pts.astype(np.float64)).astype(np.float32), scores
    pts, scores = run(boxes_of(to_view))
    if refined:
        pts, scores = run(landmark_box(apply_affine(to_view, pts.astype(np.float64))))
    return pts, scores


def upright_from_detections(model: LandmarkModel, frame: np.ndarray, found: Detections):
    """Landmarks (N, 68, 2) and scores (N,) of detected faces, each turned upright by its detected roll
    with the detector's upright box on it, refined once from its own landmarks."""
    boxes = found.boxes
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    sides = np.max(boxes[:, 2:] - boxes[:, :2], axis=1)
    half = (boxes[:, 2:] - boxes[:, :2]) * (BOX_PX / sides)[:, None] / 2

    def boxes_of(to_canvas):   # the detector's upright box, scaled like the face, on each square's centre
        c = apply_affine(to_canvas, centres[:, None])[:, 0]
        return np.concatenate([c - half, c + half], axis=1)
    return predict_upright(model, frame, centres, sides, found.roll, boxes_of, refined=True)


def as_bgr(image) -> np.ndarray:
    """A uint8 image as (H, W, 3) BGR: grey (H, W) or (H, W, 1) and BGRA (H, W, 4) converted.

    Raises:
        InputError: anything else (float or 16-bit pixels, other shapes, an empty image), said in one line
            instead of a detector or runtime error from deep inside.
    """
    if not isinstance(image, np.ndarray):
        raise InputError(f"expected a numpy image, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise InputError(f"expected uint8 pixels (0-255), got {image.dtype}: scale to 0-255 and "
                         "convert with .astype(np.uint8)")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)) or 0 in image.shape:
        raise InputError(f"expected an (H, W, 3) BGR, (H, W) grey or (H, W, 4) BGRA image, got shape {image.shape}")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR) if image.shape[2] == 4 else image


def _checked_boxes(boxes) -> np.ndarray:
    try:
        boxes = np.asarray(boxes, np.float64)
    except (TypeError, ValueError):
        raise InputError(f"expected (N, 4) boxes x0, y0, x1, y1, got {type(boxes).__name__} {boxes!r:.40}") from None
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise InputError(f"expected (N, 4) boxes x0, y0, x1, y1, got shape {boxes.shape}")
    if not np.isfinite(boxes).all() or (boxes[:, 2:] <= boxes[:, :2]).any():
        raise InputError("every box needs finite x0 < x1 and y0 < y1")
    return boxes


class FaceAligner:
    """Detector + landmark model for single images.

    Args:
        model: a model name ("resnet", "cnn", "cascade"), a file path, or a loaded LandmarkModel.
        max_faces: at most this many faces, largest first (None, the default: every face, as `rtalign image`).
        runtime: where a model loaded here runs (device=/threads= are its older spelling).
        detector: a name from rtalign.detectors.DETECTOR_NAMES (default: blazeface), or any object with
            `detect(image) -> (N, 4) boxes`, largest first (and optionally `detect_faces(image)` for the roll).
    """

    def __init__(self, model: str | os.PathLike | LandmarkModel = "resnet", *, max_faces: int | None = None,
                 runtime: RuntimeOptions | None = None, device: str | None = None, threads: int | None = None,
                 detector=DEFAULT_DETECTOR):
        if max_faces is not None and not (isinstance(max_faces, numbers.Integral) and max_faces >= 1):
            raise ValueError(f"max_faces must be a whole number ≥ 1 or None, got {max_faces!r}")
        self.model = as_model(model, resolve_runtime(runtime, device, threads))
        detector = DEFAULT_DETECTOR if detector is None else detector
        self.detector = load_detector(detector) if isinstance(detector, str) else detector
        self.max_faces = max_faces

    def align(self, image: np.ndarray, boxes: np.ndarray | None = None,
              detections: Detections | None = None) -> FaceLandmarks:
        """Landmarks and head pose of the faces in a BGR image, each face turned upright by the roll the
        detector reads from its eyes; pass (N, 4) `boxes` (upright faces) or the detector's own `detections`
        to skip detection (and max_faces).

        A detected face whose landmarks the model scores below its presence threshold (`min_score`, the
        tracker's test for a lost face) is left out: the detector's rare false faces on large photos score
        far lower (resnet 0.40-0.69 against its 0.708; no face of test_common or train below it). Given
        `boxes` are always aligned.

        `track_id` of the result is None: ids belong to a tracker (see FaceTracker). Grey and BGRA
        images are converted (see `as_bgr`); other arrays raise InputError.
        """
        image = as_bgr(image)
        if boxes is not None:
            if len(boxes) == 0:
                return FaceLandmarks.empty(posed=True)
            pts, used, scores = refine(self.model, image, _checked_boxes(boxes))
        else:
            found = detect_faces(self.detector, image).largest_first() if detections is None else detections
            if len(found) == 0:
                return FaceLandmarks.empty(posed=True)
            (pts, scores), used = upright_from_detections(self.model, image, found), found.boxes
            face = scores >= getattr(self.model, "min_score", 0.0)
            if not face.any():
                return FaceLandmarks.empty(posed=True)
            pts, scores, used = pts[face], scores[face], used[face]
        faces = FaceLandmarks(pts, used, scores, pose=head_pose(pts, image.shape[1::-1]))
        return faces[: self.max_faces] if boxes is None and detections is None else faces
