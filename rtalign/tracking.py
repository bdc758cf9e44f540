"""Landmark-driven face tracking: the detector only acquires; each face's next box comes from
its previous landmarks, and each face keeps a stable id (and, through FaceSmoother, its own
temporal filter).

Every face is turned upright before the landmark model sees it (the models were trained on faces within
±30° of upright): at acquisition by the roll the detector reads from the eyes, while tracking by the roll
of the previous frame's eye landmarks. The faces are warped side by side into one canvas by similarity
transforms, the model runs once on it, and the points go back through the exact inverse transforms."""
from __future__ import annotations

import logging
import math
import numbers
import os
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import count

import numpy as np

from .align import as_bgr, predict_upright, upright_from_detections
from .crop import apply_affine, upright_affines
from .detectors import DEFAULT_DETECTOR, load_detector
from .detectors.base import Detections, box_iou, detect_faces, distinct, not_known
from .errors import InputError
from .landmarks import eye_roll, landmark_box, shape_residual
from .models import LandmarkModel, as_model
from .runtime import RuntimeOptions
from .smoothing import FaceSmoother, OneEuroOptions
from .types import FaceLandmarks, Frame

log = logging.getLogger(__name__)

#: TrackerOptions.search_every's default: the fewest frames between searches that keep `rtalign video` on a
#: faceless 720p clip at ≥ 0.75× its codec-only FPS on 2 cores (measured: every frame 0.37×, 2nd 0.65×, 3rd 0.78×,
#: 4th 0.80×); a face that comes into view is found within 2 frames.
SEARCH_EVERY = 3
#: A face that moved less than this share of its size since the last frame is followed from where it was:
#: the models were trained on crops shifted by up to 8 %, and a small step is partly their own noise (at
#: 2 % the bench's motion jitter rose from 0.339 to 0.372 % of the eye distance; at 5 % it stays 0.339).
STILL = 0.05
#: A face found farther than this share of its size from where its crop expected it is read a second time.
REREAD = 0.1
#: A face detected within this share of its size from where a track lost in the last few frames would be
#: by now (its last step repeated), of about its size, and ahead of it (a moving track), or anywhere near
#: (a track too young to have a step), is that track's face: it keeps its id and step. A model that loses
#: a fast face (the cnn at 40 px a frame on a 100 px face) otherwise gave it a new id on every frame. A still
#: track that is lost was not outrun but left or was hidden: someone appearing beside it is someone else.
RESUME = 0.6
#: A track lost to an occluder (a hand, a sign; its last step is often the occluder's drag) keeps its id for
#: a face found again within this share of its size from where it was, at about its size, for
#: TrackerOptions.redetect_every frames (a face hidden for 5 frames came back as a new person). Not one lost
#: beside another face (two crossing people): which of them comes out first is not known.
RETURN = 0.25
#: A model that cannot tell a face from background (the cascade: every score 1.0) fits a face shape anywhere,
#: so a track it lost stayed on the background for good. Every CONFIRM_EVERY frames the detector's network
#: looks at each of its faces (`confirm`, about 1 ms a face) and a face it does not see is lost: faces score
#: 0.72 and more there, background crops 0.46 and less, against a threshold of 0.5 (120 test faces, 22 crops).
CONFIRM_EVERY = 5


@dataclass(frozen=True)
class TrackerOptions:
    """max_faces: faces tracked at once (None: every face found; faces left out are logged, once per
    tracker). redetect_every: frames between detector runs while fewer
    than max_faces are tracked; 60 picks up a
    new face within 2 s at 30 fps and keeps the detector's cost off the throughput (measured:
    pipeline/codec 0.67-0.71 at 30, 0.72-0.75 at 60 on 2 cores); for redetect_every frames after a track is
    lost while others stay, every search_every frames instead (a face that ducked out of view, or was hidden
    by another, came back up to 2 s late). search_every: frames between detector
    runs while no face is tracked (the first frame, and the frame on which the last track is lost, run it
    at once); counted in frames, so which frame a face starts on depends on the video alone: a file gives
    the same rows on every run, however fast the machine. min_score: a
    track whose model score falls below this is lost (None: the model's own `min_score`, measured
    when it was exported). max_residual: a track whose shape is this
    far from a face (see landmarks.shape_residual) is lost. min_face: smallest face, pixels.
    background: run the detector on a thread of its own, for live sources. `update` then never waits for
    it (a call costs about 15 ms on a 720p frame here, up to 30 ms under load, as long as a 30 fps frame
    interval: without it the picture stutters while the tracker looks for faces); faces it finds start tracks on the frame that
    is current when it returns, boxed by where they were, then refined from their own landmarks. Off for
    files: which frame a face starts on then depends on timing, and a file's results must be the same
    on every run. detector_share (background only, where runs go by the clock, not by frames): the most
    of the tracker's wall time the detector may take while it looks for faces: after a detector call of t
    seconds the next waits until t·(1/share − 1) seconds have passed, so a slow detector (the full-range
    network's pyramid, `blazeface-full`, on a 720p frame) cannot take more than its share of the cores when no face is in view, and a
    fast one still runs every frame. 1.0: no limit."""
    max_faces: int | None = 4
    redetect_every: int = 60
    search_every: int = SEARCH_EVERY
    detector_share: float = 0.25
    min_score: float | None = None
    max_residual: float = 0.5
    min_face: float = 24.0
    background: bool = False

    def __post_init__(self):
        counts = (self.redetect_every, self.search_every) + (() if self.max_faces is None else (self.max_faces,))
        if not all(isinstance(n, numbers.Integral) and n >= 1 for n in counts):
            raise ValueError(f"max_faces, redetect_every and search_every must be whole numbers ≥ 1, got {self}")
        if not 0 < self.detector_share <= 1:
            raise ValueError(f"detector_share must be in (0, 1], got {self.detector_share}")


@dataclass
class _Track:
    id: int
    points: np.ndarray                      # raw (unsmoothed) landmarks of the last frame
    score: float
    box: np.ndarray = field(default=None)
    motion: np.ndarray = field(default_factory=lambda: np.zeros(2))    # the face's last step, frame pixels


@dataclass
class _Lost:
    """A track lost in the last few frames: where its face was, its size and step, for `RESUME`."""
    id: int
    centre: np.ndarray
    side: float
    motion: np.ndarray                       # zero for a track that has not made a step yet
    crowded: bool = False                    # lost where it overlapped another tracked face
    frames: int = 1                          # frames since its last landmarks

    @property
    def still(self) -> bool:
        """It had made a step, and a small one: lost where it stood."""
        return bool(self.motion.any()) and np.hypot(*self.motion) < STILL * self.side

    def continued_by(self, centre: np.ndarray, side: float, window: int) -> float | None:
        """How far (pixels) a face at `centre`, `side` px, lies from where this track was (RETURN) or, within
        `window` frames of its loss, would be by now (RESUME), if it can be this track's face; None if not."""
        if not 0.7 <= side / self.side <= 1.4:
            return None
        back = float(min(np.linalg.norm(centre - self.centre), np.linalg.norm(centre - self.centre + self.motion)))
        if back <= RETURN * self.side and not self.crowded:      # where it was, or before the occluder's drag
            return back
        if self.still or self.frames > window:
            return None
        if self.motion.any() and float(np.dot(centre - self.centre, self.motion)) <= 0:
            return None
        d = float(np.linalg.norm(centre - self.centre - self.motion * self.frames))
        return d if d <= RESUME * self.side else None


class FaceTracker:
    """`update(frame) -> FaceLandmarks`: smoothed landmarks of every tracked face, with ids. With
    `TrackerOptions(background=True)`, `close()` it (or use it in a `with` block) to end the detector's thread.

    Args:
        model: a model name or file (loaded on `runtime`), or a LandmarkModel; its `predict_scored`
            score tells a lost face.
        detector: a name from rtalign.detectors.DETECTOR_NAMES (default: blazeface), or any object with
            `detect(image) -> (N, 4) boxes`, largest first (and optionally `detect_faces(image)`, for the roll;
            see rtalign.detectors.detect_faces for `skips_known`, which spares it the tracked faces).
        options: TrackerOptions.
        smoothing: One Euro options, or None for raw landmarks.
        runtime: where a model loaded here runs.
        clock: seconds, for the background detector's time budget (TrackerOptions.detector_share); tests pass
            a fake.
    """

    def __init__(self, model: str | os.PathLike | LandmarkModel = "resnet", detector=DEFAULT_DETECTOR, *,
                 options: TrackerOptions = TrackerOptions(), smoothing: OneEuroOptions | None = OneEuroOptions(),
                 runtime: RuntimeOptions = RuntimeOptions(), clock=time.perf_counter):
        self.model = as_model(model, runtime)
        detector = DEFAULT_DETECTOR if detector is None else detector
        self.detector = load_detector(detector) if isinstance(detector, str) else detector
        self.clock = clock
        self.options, self.smoothing = options, smoothing
        self._smoother = FaceSmoother(smoothing) if smoothing else None
        self.tracks: list[_Track] = []
        self._lost: list[_Lost] = []        # tracks lost lately (see _Lost.continued_by)
        self.detector_runs = 0
        self._frames = 0
        # who tells a lost face: the model's own score, else the detector's network (None: neither can)
        self._confirm = None if getattr(self.model, "has_score", True) else getattr(self.detector, "confirm", None)
        self._since_detect = max(options.redetect_every, options.search_every)   # the first frame runs it
        self._reacquire = 0                 # frames left in which a lost face is looked for every search_every
        self._detector_free_at = 0.0        # clock() time before which the detector budget is spent
        self._ids = count()
        self._capped = False                # a face was left out for max_faces (logged once)
        self._pool: ThreadPoolExecutor | None = None     # the background detector's thread, made when first used
        self._pending: Future | None = None               # its run under way

    def _alive(self, points: np.ndarray, scores: np.ndarray, shape, box: np.ndarray) -> np.ndarray:
        """Which faces still look like faces: (N,) bools from points, scores and their landmark boxes."""
        o = self.options
        side = np.maximum(box[:, 2] - box[:, 0], box[:, 3] - box[:, 1])
        h, w = shape[:2]
        centre = (box[:, :2] + box[:, 2:]) / 2
        inside = (centre[:, 0] >= 0) & (centre[:, 0] < w) & (centre[:, 1] >= 0) & (centre[:, 1] < h)
        min_score = o.min_score if o.min_score is not None else getattr(self.model, "min_score", 0.0)
        return (scores >= min_score) & (shape_residual(points) <= o.max_residual) & (side >= o.min_face) & inside

    def _read(self, image, points: np.ndarray, shift: np.ndarray):
        """One model pass per face, upright, boxed by its landmarks `points` (N, 68, 2) moved by `shift` (N, 2)."""
        moved = points + shift[:, None]
        boxes = landmark_box(moved)
        centres, sides = (boxes[:, :2] + boxes[:, 2:]) / 2, np.max(boxes[:, 2:] - boxes[:, :2], axis=1)
        return predict_upright(self.model, image, centres, sides, eye_roll(points),
                               lambda to_canvas: landmark_box(apply_affine(to_canvas, moved)))

    def _follow(self, image) -> None:
        """Move every track to this frame: the model sees its face upright, boxed by its own last landmarks
        moved by the face's last step (a face crossing the frame in a second would otherwise leave its crop
        behind: NME 10 % and a new id every 3 frames at 50 px a frame, measured). A face found far from where
        its crop expected it (a turn of direction, a jolt) is read once more from where it was found."""
        if not self.tracks:
            return
        prev = np.stack([t.points for t in self.tracks]).astype(np.float64)
        was, before = prev.mean(1), landmark_box(prev)
        sides = np.max(np.ptp(prev, axis=1), axis=1)
        motion = np.stack([t.motion for t in self.tracks])
        step = motion.copy()
        step[np.linalg.norm(step, axis=1) < STILL * sides] = 0       # a still face's crop stays where it was
        pts, scores = self._read(image, prev, step)
        far = np.linalg.norm(pts.mean(1) - was - step, axis=1) > REREAD * sides
        if far.any():
            pts[far], scores[far] = self._read(image, pts[far].astype(np.float64), np.zeros((int(far.sum()), 2)))
        now = landmark_box(pts)
        alive = self._alive(pts, scores, image.shape, now)
        if self._confirm is not None and self._frames % CONFIRM_EVERY == 0:
            alive &= self._seen(image, pts.astype(np.float64))
        if not alive.all():
            overlaps = box_iou(before, before) > 0
            self._lost += [_Lost(t.id, was[i], float(sides[i]), t.motion, bool(overlaps[i, alive].any()))
                           for i, t in enumerate(self.tracks) if not alive[i]]
        keep = np.flatnonzero(alive)
        for t, p, s, b, c in zip(self.tracks, pts, scores, before, was):
            t.motion, t.points, t.score, t.box = p.mean(0) - c, p, float(s), b
        # two tracks that converged onto one face: the one that went where its own step led stays (the other
        # slid onto it; keeping the older, or the one the model is surer of, let a face passing in front of
        # another take its id, 4 and 6 of 9 crossings)
        missed = np.linalg.norm(pts.mean(1) - was - motion, axis=1) / sides
        by_fit = keep[np.argsort(missed[keep], kind="stable")]
        kept = set(by_fit[distinct(now[by_fit])].tolist())
        if len(kept) < len(self.tracks):
            self._reacquire = self.options.redetect_every
        self.tracks = [self.tracks[i] for i in keep if i in kept]

    def _seen(self, image, points: np.ndarray) -> np.ndarray:
        """(N,) bools: whether the detector's network sees a face on each of (N, 68, 2) landmarks, each turned
        upright by its eye line and boxed by its upright extent."""
        roll = eye_roll(points)
        centre = (points.min(1) + points.max(1)) / 2
        turned = apply_affine(upright_affines(centre, np.ones(len(points)), roll, 1.0, 1), points)   # roll undone
        side = np.ptp(turned, axis=1).max(axis=1)
        scores, _ = self._confirm(image, np.concatenate([centre - side[:, None] / 2, centre + side[:, None] / 2], 1),
                                  roll)
        return scores >= self.detector.min_score

    def _known(self) -> np.ndarray | None:
        """(N, 4) landmark boxes of the tracked faces, None without any."""
        return landmark_box(np.stack([t.points for t in self.tracks])) if self.tracks else None

    def _detect(self, image, known: np.ndarray | None) -> tuple[Detections, float]:
        """One detector run for faces other than the `known` boxes (the tracked faces when it started) and how
        long it took (seconds of `clock`); safe on the detector's thread."""
        t0 = self.clock()
        found = detect_faces(self.detector, image, known)
        return found, self.clock() - t0

    def _spent(self, seconds: float) -> None:
        """A background detector run took `seconds`: the next waits until the share of time allows
        (detector_share)."""
        self._detector_free_at = self.clock() + seconds * (1 / self.options.detector_share - 1)

    def _acquire(self, image) -> None:
        """Run the detector now, or (TrackerOptions.background) start it on its thread on a copy of the frame."""
        self.detector_runs += 1
        self._since_detect = 0
        known = self._known()
        if not self.options.background:
            self._start_tracks(image, detect_faces(self.detector, image, known))
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="rtalign-detector")
        self._pending = self._pool.submit(self._detect, image.copy(), known)

    def _collect(self, image) -> None:
        """Take up a finished background run: its faces start tracks on this frame. Every field is written
        here, on the caller's thread; a detector error is raised here, once, and the next run may start."""
        job, self._pending = self._pending, None
        self._detector_free_at = self.clock()
        found, seconds = job.result()
        self._spent(seconds)
        self._start_tracks(image, found)

    def close(self) -> None:
        """Wait for a background detector run under way and end its thread (a no-op without one)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool, self._pending = None, None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _start_tracks(self, image, found: Detections) -> None:
        """Detected faces not already tracked start new tracks, turned upright by the detector's roll. With
        max_faces, the largest first, as many at a time as there is room for: a detection whose landmarks
        do not look like a face (`_alive`) leaves its room to the next one instead of taking it."""
        o = self.options
        found = found[not_known(found.boxes, self._known())]      # tracks started since a background run began
        if o.max_faces is not None:
            found = found.largest_first()
        while len(found):
            room = len(found) if o.max_faces is None else o.max_faces - len(self.tracks)
            if room <= 0:
                if not self._capped:
                    self._capped = True
                    log.warning("more faces than max_faces=%d in view: tracking %d "
                                "(TrackerOptions.max_faces or --max-faces raises it)", o.max_faces, o.max_faces)
                return
            self._start_each(image, found[:room])
            found = found[room:]

    def _start_each(self, image, found: Detections) -> None:
        """A track for each detected face whose landmarks look like a face and are no face tracked already,
        nor one of these faces before it (one face detected twice: base.distinct)."""
        pts, scores = upright_from_detections(self.model, image, found)
        alive = np.flatnonzero(self._alive(pts, scores, image.shape, landmark_box(pts)))
        known = self._known()
        earlier = 0 if known is None else len(known)
        boxes = landmark_box(pts[alive])
        for i in distinct(boxes if known is None else np.concatenate([known, boxes])):
            if i >= earlier:
                j = alive[i - earlier]
                self.tracks.append(self._resumed(pts[j]) or _Track(next(self._ids), pts[j], float(scores[j])))
                self.tracks[-1].score, self.tracks[-1].box = float(scores[j]), found.boxes[j]

    def _resumed(self, points: np.ndarray) -> _Track | None:
        """The track a new face continues (RESUME), taken off the lost ones, with the step that brought it
        here; None for a new face."""
        centre = points.mean(0)
        side = float(np.max(np.ptp(points, axis=0)))
        best, gap = None, np.inf
        for lost in self._lost:
            d = lost.continued_by(centre, side, 2 * self.options.search_every + 1)
            if d is not None and d < gap:
                best, gap = lost, d
        if best is None:
            return None
        self._lost.remove(best)
        return _Track(best.id, points, 0.0, motion=(centre - best.centre) / best.frames)

    def update(self, frame: Frame) -> FaceLandmarks:
        """The faces of the next frame (a Frame: its timestamp drives the smoothing).

        Raises:
            InputError: `frame` is not a Frame (a bare image has no time: use FaceAligner.align for one
                image, rtalign.track for a sequence), its image is not a uint8 BGR, grey or BGRA image, or
                its timestamp is not a finite number.
        """
        if not isinstance(frame, Frame):
            raise InputError(f"FaceTracker.update takes an rtalign.Frame(image, timestamp, index), got "
                             f"{type(frame).__name__}: for one image use FaceAligner.align, for a sequence rtalign.track")
        if not (isinstance(frame.timestamp, numbers.Real) and math.isfinite(frame.timestamp)):
            raise InputError(f"a frame's timestamp must be a finite number of seconds, got {frame.timestamp!r}")
        image = as_bgr(frame.image)       # grey and BGRA converted; other arrays raise InputError
        self._frames += 1
        self._since_detect += 1
        for lost in self._lost:
            lost.frames += 1
        self._lost = [lost for lost in self._lost if lost.frames <= self.options.redetect_every]
        self._reacquire = max(0, self._reacquire - 1)
        tracked = bool(self.tracks)
        self._follow(image)
        if tracked and not self.tracks:
            self._since_detect = self.options.search_every      # the last face was lost: look again at once
        if self._pending is not None and self._pending.done():
            self._collect(image)
        o = self.options
        if self.tracks:
            every = o.search_every if self._reacquire else o.redetect_every
            wanted = (o.max_faces is None or len(self.tracks) < o.max_faces) and self._since_detect >= every
        elif o.background:
            wanted = self.clock() >= self._detector_free_at
        else:
            wanted = self._since_detect >= o.search_every
        if wanted and self._pending is None:
            self._acquire(image)
        if self.tracks:
            faces = FaceLandmarks(np.stack([t.points for t in self.tracks]), np.stack([t.box for t in self.tracks]),
                                  np.array([t.score for t in self.tracks]), np.array([t.id for t in self.tracks]))
        else:
            faces = FaceLandmarks.empty(tracked=True)
        return self._smoother.update(faces, frame.timestamp) if self._smoother else faces
