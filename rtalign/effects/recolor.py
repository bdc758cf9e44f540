"""The annotator the pipeline uses: lip and iris colour on every face, with per-track eye state."""
from __future__ import annotations

import numpy as np

from ..render import colour_canvas, finite
from ..types import FaceLandmarks
from .common import check_effect
from .irises import EyeState, recolor_irises
from .lips import recolor_lips


class Recolor:
    """Annotator applying lip and/or iris colour to every face: `annotate(scene, faces) -> scene` (in place).

    Eye state (open or closed, the tracked iris circle) is kept per track id, so blinks and iris
    positions are judged across frames in a video; faces without ids are judged frame by frame.

    Args:
        lip_color, eye_color: CSS name / '#rrggbb' / BGR triple / None to skip. Validated here, at construction.
        lip_strength, eye_strength: 0..1.
        style: "natural" or "flat".

    Raises:
        ValueError: an unknown style.
        InputError: a colour that does not parse, or a strength that is not a number in 0..1.
    """

    def __init__(self, lip_color=None, eye_color=None, lip_strength: float = 0.6, eye_strength: float = 0.6,
                 style: str = "natural"):
        check_effect(lip_color, lip_strength, style, "lip_strength")
        check_effect(eye_color, eye_strength, style, "eye_strength")
        self.lip_color, self.eye_color = lip_color, eye_color
        self.lip_strength, self.eye_strength, self.style = lip_strength, eye_strength, style
        self._eyes: dict[int, tuple[EyeState, EyeState]] = {}

    def annotate(self, scene: np.ndarray, faces: FaceLandmarks) -> np.ndarray:
        """Recolour in place on a BGR or BGRA frame or a view of one (see render.colour_canvas); a face with a
        non-finite point is left as it is."""
        ids = faces.track_id if faces.track_id is not None else [None] * len(faces)
        self._eyes = {i: self._eyes.get(i) or (EyeState(), EyeState()) for i in ids if i is not None}
        if len(faces) == 0:
            return scene
        with colour_canvas(scene) as canvas:
            for xy, i, ok in zip(faces.xy, ids, finite(faces)):
                if not ok:
                    continue
                if self.lip_color is not None:
                    recolor_lips(canvas, xy, self.lip_color, self.lip_strength, self.style)
                if self.eye_color is not None:
                    recolor_irises(canvas, xy, self.eye_color, self.eye_strength, self.style,
                                   None if i is None else self._eyes[i])
        return scene
