"""Face detectors by name: `load_detector("blazeface")` gives an object with `detect(frame)` (boxes) and
`detect_faces(frame)` (Detections with roll). The CLI's `--detector` choices are the registry's keys."""
from __future__ import annotations

from ..detect import HaarDetector
from ..errors import ModelError
from .base import Detections, box_iou, detect_faces
from .blazeface import REBUILD, BlazeFaceDetector

#: Landmark-box sides, input pixels, that each network finds at any roll within ±45° (one pass, own threshold,
#: `python -m train.calibrate_detector --sizes` on train faces): short range 97–100 % from 20 to 128 px, full
#: range 91–98 % from 32 to 80 px only.
SHORT_PX, FULL_PX = (20, 128), (32, 80)


def _blazeface(folder, threads):
    """The short-range network over two whole-frame scales (720p: 544×320 and 256×128 inputs), each face
    confirmed by the full-range network in an upright square of its own (their false faces differ)."""
    full = BlazeFaceDetector(folder / "blazeface_full.onnx", threads=threads)
    return BlazeFaceDetector(folder / "blazeface_short.onnx", min_face=48, face_px=SHORT_PX, threads=threads,
                             verifier=full)


#: name → (factory(models folder, threads), what it is). blazeface: MediaPipe's two networks, faces from
#: 48 px, wide shots and near faces; blazeface-full: the full-range network alone over its pyramid (slower,
#: misses more small and rolled faces); blazeface-short: the short-range network on the whole frame in its
#: 128 px input (MediaPipe's selfie way: near faces only, cheapest).
DETECTORS = {
    "blazeface": (_blazeface, "MediaPipe BlazeFace short range over two scales, confirmed by full range (any roll)"),
    "blazeface-full": (lambda folder, threads: BlazeFaceDetector(folder / "blazeface_full.onnx", min_face=48,
                                                                 face_px=FULL_PX, threads=threads),
                       "MediaPipe BlazeFace full range over a pyramid"),
    "blazeface-short": (lambda folder, threads: BlazeFaceDetector(folder / "blazeface_short.onnx", threads=threads),
                        "MediaPipe BlazeFace short range, one 128 px pass (near faces)"),
    "haar": (lambda folder, threads: HaarDetector(), "OpenCV Haar cascade (upright frontal faces)"),
}
DETECTOR_NAMES = tuple(DETECTORS)
DEFAULT_DETECTOR = "blazeface"


def load_detector(name: str = DEFAULT_DETECTOR, threads: int = 1):
    """A detector by registry name, its file read from the models folder ($RTALIGN_MODELS or exported/).

    Raises:
        ModelError: unknown name, or a missing/corrupt file (naming the command that rebuilds it).
    """
    from ..models import models_dir
    if name not in DETECTORS:
        raise ModelError(f"unknown detector {name!r}; choose one of {', '.join(DETECTOR_NAMES)}")
    return DETECTORS[name][0](models_dir(), threads)


__all__ = ["BlazeFaceDetector", "DEFAULT_DETECTOR", "DETECTORS", "DETECTOR_NAMES", "Detections", "HaarDetector",
           "REBUILD", "box_iou", "detect_faces", "load_detector"]
