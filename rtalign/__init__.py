"""rtalign: real-time 68-point face alignment on a laptop CPU.

    import rtalign
    faces = rtalign.FaceAligner("resnet").align(bgr_image)        # one image: faces.xy is (n, 68, 2)
    with rtalign.track("in.mp4", model="cnn") as stream:           # a video, camera index or arrays
        for frame, faces in stream:
            rtalign.MeshAnnotator().annotate(frame.image, faces)  # draws in place
"""
# OpenCV before anything that may load PyAV: both wheels bundle X libraries under the same names,
# and the first loaded wins; PyAV's copies leave OpenCV's preview window blank (sinks.x11_clash).
import cv2  # noqa: F401  (import order matters)

from .align import FaceAligner
from .effects import Recolor
from .errors import DeviceError, InputError, ModelError, RtalignError
from .models import MODEL_NAMES, LandmarkModel, load_model
from .render import Compose, FpsAnnotator, MeshAnnotator, PointsAnnotator
from .runtime import RuntimeOptions
from .smoothing import OneEuroFilter, OneEuroOptions
from .stream import FaceStream, track
from .tracking import FaceTracker, TrackerOptions
from .types import FaceLandmarks, Frame

__version__ = "0.1.0"
__all__ = [
    "Compose", "DeviceError", "FaceAligner", "FaceLandmarks", "FaceStream", "FaceTracker", "FpsAnnotator", "Frame",
    "InputError", "LandmarkModel", "MODEL_NAMES", "MeshAnnotator", "ModelError", "OneEuroFilter", "OneEuroOptions",
    "PointsAnnotator", "Recolor", "RtalignError", "RuntimeOptions", "TrackerOptions", "load_model", "track",
]
