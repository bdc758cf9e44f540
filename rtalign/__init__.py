"""rtalign: real-time 68-point face alignment on a laptop CPU.

    import rtalign
    faces = rtalign.FaceAligner("resnet").align(bgr_image)   # faces.xy: (n, 68, 2)
"""
# OpenCV before anything that may load PyAV: both wheels bundle X libraries under the same names,
# and the first loaded wins; PyAV's copies leave OpenCV's preview window blank (sinks.x11_clash).
import cv2  # noqa: F401  (import order matters)

from .align import FaceAligner
from .errors import RtalignError
from .models import MODEL_NAMES, load_model
from .types import FaceLandmarks, Frame

__version__ = "0.1.0"
__all__ = ["FaceAligner", "FaceLandmarks", "Frame", "MODEL_NAMES", "RtalignError", "load_model"]
