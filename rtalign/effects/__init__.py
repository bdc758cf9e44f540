"""Lip and iris recolouring that keeps texture and shading and holds up on real faces.

The study filled the lip and eye polygons with a flat colour, which looks painted on. Here the
colour is moved in Lab space: chroma (a, b) goes to the target, lightness is shifted but its
detail kept, the target is lit like the face, and the result is blended through a per-pixel mask
(lips: decided by colour around the landmark polygon; irises: found, gated by how open the eye is
and tracked). Only a region of interest around each mouth and eye is touched.

    from rtalign.effects import recolor_lips, recolor_irises
    recolor_lips(frame, points, "crimson", 0.7)       # modifies frame in place and returns it
"""
from .common import STYLES
from .irises import EyeState, eye_aspect_ratio, iris_weight, recolor_irises
from .lips import LipMask, lip_mask, recolor_lips
from .recolor import Recolor

__all__ = ["Recolor", "STYLES", "recolor_lips", "recolor_irises", "lip_mask", "LipMask", "iris_weight",
           "EyeState", "eye_aspect_ratio"]
