"""Annotators: draw landmarks (and the FPS) on a frame. Each has one method, `annotate(scene, faces) -> scene`,
which draws **in place** (pass `frame.copy()` to keep the original) on a BGR or BGRA uint8 frame, or any
view of one (a mirrored `frame[:, ::-1]` too)."""
from __future__ import annotations

import time
from contextlib import contextmanager

import cv2
import numpy as np

from .errors import InputError
from .landmarks import CONTOURS, interocular
from .pose import head_pose, rotation_from_angles
from .types import FaceLandmarks

DRAW_STYLES = ("points", "mesh", "pose", "none")


@contextmanager
def colour_canvas(scene: np.ndarray):
    """The colour pixels of `scene` as an array OpenCV can draw on; what is drawn lands in `scene`.

    A (H, W, 3) frame whose pixels OpenCV can address (rows may be a view of a larger image) is used as it
    is. Otherwise (a BGRA frame's colour channels, a mirrored or strided view) drawing goes to a contiguous
    copy that is written back afterwards: alpha is never touched.

    Raises:
        InputError: not a uint8 (H, W, 3) or (H, W, 4) image (a grey frame has no colour to draw in: convert
            it with cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)), an image without pixels, or a read-only one.
    """
    if not (isinstance(scene, np.ndarray) and scene.dtype == np.uint8 and scene.ndim == 3 and scene.shape[2] in (3, 4)
            and scene.size):
        raise InputError(f"annotators draw on uint8 BGR (H, W, 3) or BGRA (H, W, 4) frames, got "
                         f"{getattr(scene, 'dtype', type(scene).__name__)} {getattr(scene, 'shape', '')}")
    if not scene.flags.writeable:
        raise InputError("the frame is read-only (from np.frombuffer, a memory map, a frozen array): annotators "
                         "draw in place, so pass a copy (frame.copy())")
    colour = scene[:, :, :3]
    rows, columns, channels = colour.strides
    if channels == 1 and columns == 3 and rows >= 3 * colour.shape[1]:
        yield colour
        return
    canvas = np.ascontiguousarray(colour)
    yield canvas
    np.copyto(colour, canvas)


def finite(faces: FaceLandmarks) -> np.ndarray:
    """(N,) bools: the faces whose every point is finite, the only ones drawn or recoloured (a NaN would be
    drawn at the integer minimum, lines to the edge, and makes no region to recolour)."""
    return np.isfinite(faces.xy).all(axis=(1, 2))


def _disk(radius: int) -> np.ndarray:
    r = np.arange(-radius, radius + 1)
    dy, dx = np.meshgrid(r, r, indexing="ij")
    keep = dx ** 2 + dy ** 2 <= radius ** 2 + radius
    return np.stack([dx[keep], dy[keep]], axis=1)


class PointsAnnotator:
    """Each landmark as a small filled disk (vectorized: no per-point drawing calls)."""

    def __init__(self, color=(0, 255, 0), radius: int = 2):
        self.color = np.asarray(color, np.uint8)
        self._offsets = _disk(radius)

    def annotate(self, scene: np.ndarray, faces: FaceLandmarks) -> np.ndarray:
        xy = faces.xy[finite(faces)]
        if len(xy) == 0:
            return scene
        with colour_canvas(scene) as canvas:
            h, w = canvas.shape[:2]
            centres = np.rint(xy.reshape(-1, 2)).astype(np.int64)
            x, y = centres[:, :1] + self._offsets[:, 0], centres[:, 1:] + self._offsets[:, 1]   # (points, disk)
            ok = (x >= 0) & (x < w) & (y >= 0) & (y < h)
            if canvas.flags.c_contiguous:        # one index per pixel: half the time of (row, column) pairs
                canvas.reshape(h * w, 3)[(y * w + x)[ok]] = self.color
            else:
                canvas[y[ok], x[ok]] = self.color
        return scene


class MeshAnnotator:
    """The face wireframe: jaw, brows, nose, eyes and lips as anti-aliased polylines."""

    def __init__(self, color=(255, 200, 0), thickness: int = 1):
        self.color, self.thickness = tuple(int(c) for c in color), thickness

    def annotate(self, scene: np.ndarray, faces: FaceLandmarks) -> np.ndarray:
        shift = 4  # sub-pixel precision for cv2 drawing
        with colour_canvas(scene) as canvas:
            for xy in faces.xy[finite(faces)]:
                fixed = np.rint(xy * (1 << shift)).astype(np.int32)
                for closed in (False, True):
                    polys = [fixed[idx] for idx, c in CONTOURS if c == closed]
                    cv2.polylines(canvas, polys, closed, self.color, self.thickness, cv2.LINE_AA, shift)
        return scene


class PoseAnnotator:
    """The landmarks as points plus the head's axes from the nose tip: red to the person's left,
    green up, blue forward (out of the face); each axis as long as the inter-ocular distance,
    drawn in orthographic projection. Uses `faces.pose`, or estimates it when absent."""

    def __init__(self, thickness: int = 2):
        self.thickness = thickness
        self._points = PointsAnnotator()

    def annotate(self, scene: np.ndarray, faces: FaceLandmarks) -> np.ndarray:
        self._points.annotate(scene, faces)
        drawn = finite(faces)
        pose = faces.pose if faces.pose is not None else head_pose(faces.xy, scene.shape[1::-1])
        with colour_canvas(scene) as canvas:
            for xy, angles in zip(faces.xy[drawn], np.asarray(pose)[drawn]):
                # face axes: left (+x), up (-y), forward (-z), as columns; the camera's image plane is x, y
                axes = rotation_from_angles(*angles) @ np.diag([1.0, -1.0, -1.0]) * float(interocular(xy))
                shift = 4
                start = np.rint(xy[30] * (1 << shift)).astype(np.int32)
                for axis, color in zip(axes.T, ((0, 0, 255), (0, 255, 0), (255, 0, 0))):
                    end = np.rint((xy[30] + axis[:2]) * (1 << shift)).astype(np.int32)
                    cv2.line(canvas, tuple(start.tolist()), tuple(end.tolist()), color, self.thickness, cv2.LINE_AA,
                             shift)
        return scene


def annotator_for(style: str):
    """The annotator for a --draw style, or None for "none"."""
    if style not in DRAW_STYLES:
        raise ValueError(f"unknown draw style {style!r}; expected one of {DRAW_STYLES}")
    return {"points": PointsAnnotator, "mesh": MeshAnnotator, "pose": PoseAnnotator}.get(style, lambda: None)()


class FpsAnnotator:
    """Frames per second (from the sink's point of view: frames finished per second), top left."""

    def __init__(self, window: int = 30):
        self._times: list[float] = []
        self.window = window

    def annotate(self, scene: np.ndarray, faces: FaceLandmarks) -> np.ndarray:
        self._times = (self._times + [time.perf_counter()])[-self.window:]
        if len(self._times) > 1:
            fps = (len(self._times) - 1) / (self._times[-1] - self._times[0])
            with colour_canvas(scene) as canvas:
                for colour, thickness in (((0, 0, 0), 4), ((255, 255, 255), 1)):
                    cv2.putText(canvas, f"{fps:4.1f} FPS", (10, 28), cv2.FONT_HERSHEY_SIMPLEX, 0.8, colour, thickness,
                                cv2.LINE_AA)
        return scene


class Compose:
    """Several annotators applied in order, as one."""

    def __init__(self, annotators):
        self.annotators = [a for a in annotators if a is not None]

    def annotate(self, scene: np.ndarray, faces: FaceLandmarks) -> np.ndarray:
        for a in self.annotators:
            scene = a.annotate(scene, faces)
        return scene
