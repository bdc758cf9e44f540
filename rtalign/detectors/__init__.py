"""Face detectors by name: `load_detector("blazeface")` gives an object with `detect(frame)` (boxes) and
`detect_faces(frame)` (Detections with roll). The CLI's `--detector` choices are the registry's keys."""
from __future__ import annotations

from ..detect import HaarDetector
from ..errors import ModelError
from .base import Detections, box_iou, detect_faces
from .blazeface import REBUILD, BlazeFaceDetector

#: name → (factory(models folder, threads), what it is). blazeface: MediaPipe's full-range model (faces
#: from far away and near, wide shots); blazeface-short: the short-range model (near faces, selfie view).
DETECTORS = {
    "blazeface": (lambda folder, threads: BlazeFaceDetector(folder / "blazeface_full.onnx", min_face=48, threads=threads),
                  "MediaPipe BlazeFace full range (CNN, any roll)"),
    "blazeface-short": (lambda folder, threads: BlazeFaceDetector(folder / "blazeface_short.onnx", threads=threads),
                        "MediaPipe BlazeFace short range (near faces)"),
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
