"""Detector figures: recall on annotated faces placed into 1280×720 frames at many sizes and rolls, false
faces on face-free frames, cost per call, and landmark NME of rolled faces through detector → tracker.

    python -m rtalign.bench.detector [--detectors blazeface,haar] [--quick] [--no-nme]
    python -m rtalign.bench.detector --video      # the two-face clip through `rtalign video`
    python -m rtalign.bench.detector --cost       # ms per call of each detector and part, interleaved
"""
from __future__ import annotations

import argparse
import json
import time

import cv2
import numpy as np

from ..data import data_root, list_samples, read_image
from ..landmarks import landmark_box
from ..metrics import nme_per_face

FRAME = (1280, 720)
#: skimage's bundled images that hold no human face (textures, objects, scenes, text), plus made ones
FACE_FREE = ("brick", "grass", "gravel", "rocket", "coffee", "coins", "moon", "page", "text", "hubble_deep_field",
             "immunohistochemistry", "retina", "clock", "cell", "colorwheel")


def upright_box(points: np.ndarray, roll_deg: float) -> np.ndarray:
    """The landmark box of (68, 2) points turned upright by -roll about their box centre, placed at that centre."""
    box = landmark_box(points)
    c = (box[:2] + box[2:]) / 2
    a = np.radians(roll_deg)
    r = np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])      # rotates by -roll (y down)
    up = landmark_box((points - c) @ r.T)
    return np.concatenate([c + up[:2], c + up[2:]])


def place_face(image: np.ndarray, points: np.ndarray, background: np.ndarray, side: float, roll: float,
               centre) -> tuple[np.ndarray, np.ndarray]:
    """`image` scaled so its landmark box's larger side is `side` px (INTER_AREA), rolled by `roll` degrees
    (the eye line turns clockwise on screen for positive roll) and pasted with its face centred on `centre`.
    Returns the frame and the face's points in it."""
    box = landmark_box(points)
    k = side / max(box[2] - box[0], box[3] - box[1])
    small = cv2.resize(image, None, fx=k, fy=k, interpolation=cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR)
    kx, ky = small.shape[1] / image.shape[1], small.shape[0] / image.shape[0]
    pts = (points + 0.5) * [kx, ky] - 0.5
    b = landmark_box(pts)
    m = cv2.getRotationMatrix2D(((b[0] + b[2]) / 2, (b[1] + b[3]) / 2), -roll, 1.0)
    m[:, 2] += np.asarray(centre) - (b[:2] + b[2:]) / 2
    frame = background.copy()
    cv2.warpAffine(small, m, (frame.shape[1], frame.shape[0]), dst=frame, flags=cv2.INTER_LINEAR,
                   borderMode=cv2.BORDER_TRANSPARENT)
    return frame, pts @ m[:, :2].T + m[:, 2]


def backgrounds(samples, n: int, seed: int = 0) -> list[np.ndarray]:
    """Face-free 1280×720 frames: skimage's textures and scenes, blanks, noise and a gradient."""
    import skimage.data
    rng = np.random.default_rng(seed)
    out = []
    for name in FACE_FREE:
        img = np.asarray(getattr(skimage.data, name)())
        img = img if img.ndim == 3 else np.repeat(img[..., None], 3, 2)
        out.append(cv2.resize(np.ascontiguousarray(img[..., 2::-1]), FRAME, interpolation=cv2.INTER_LINEAR))
    out += [np.full((FRAME[1], FRAME[0], 3), v, np.uint8) for v in (0, 128, 255)]
    out.append(rng.integers(0, 256, (FRAME[1], FRAME[0], 3), dtype=np.uint8))
    out.append(cv2.GaussianBlur(rng.integers(0, 256, (FRAME[1], FRAME[0], 3), dtype=np.uint8), (0, 0), 8) * 4)
    out.append(np.repeat(np.linspace(0, 255, FRAME[0], dtype=np.uint8)[None, :, None], FRAME[1], 0).repeat(3, 2))
    return out[:n] if n else out


def recall_frames(samples, n_per_face: int, seed: int = 0):
    """(frame, upright ground-truth box, size, roll) per placement: face side log-uniform in 48–400 px,
    roll uniform in ±45°, centre anywhere the face fits, over a face-free background."""
    rng = np.random.default_rng(seed)
    bgs = backgrounds(samples, 0, seed)
    for s in samples:
        img = read_image(s.image)
        for _ in range(n_per_face):
            side = float(np.exp(rng.uniform(np.log(48), np.log(400))))
            roll = float(rng.uniform(-45, 45))
            reach = side * 0.8
            centre = rng.uniform([reach, reach], [FRAME[0] - reach, FRAME[1] - reach])
            frame, pts = place_face(img, s.points, bgs[rng.integers(len(bgs))], side, roll, centre)
            yield frame, upright_box(pts, roll), side, roll


def _iou(a, b) -> float:
    lt, rb = np.maximum(a[:2], b[:2]), np.minimum(a[2:], b[2:])
    inter = np.prod(np.clip(rb - lt, 0, None))
    return inter / (np.prod(a[2:] - a[:2]) + np.prod(b[2:] - b[:2]) - inter)


def detector_figures(detector, samples, n_per_face: int = 2, seed: int = 0) -> dict:
    """Recall at IoU ≥ 0.5 (upright boxes), by face size, false faces per face-free frame, ms per call."""
    from ..detectors import detect_faces
    hits, sizes, times = [], [], []
    for frame, gt, side, _ in recall_frames(samples, n_per_face, seed):
        t0 = time.perf_counter()
        found = detect_faces(detector, frame)
        times.append(time.perf_counter() - t0)
        hits.append(any(_iou(b, gt) >= 0.5 for b in found.boxes))
        sizes.append(side)
    hits, sizes = np.array(hits), np.array(sizes)
    free = backgrounds(samples, 0, seed + 1)
    false = [len(detect_faces(detector, f)) for f in free]
    bins = [48, 64, 100, 200, 401]
    return {"recall": float(hits.mean()), "faces": len(hits),
            "recall_by_size": {f"{lo}-{hi - 1}": float(hits[(sizes >= lo) & (sizes < hi)].mean())
                               for lo, hi in zip(bins, bins[1:])},
            "false_per_frame": float(np.mean(false)), "face_free_frames": len(free),
            "ms_per_call": float(np.median(times) * 1000)}


def rolled_nme(model, detector, samples, rolls=(0, 30, 45, 60), side: float = 200.0, frames: int = 3) -> dict:
    """Mean NME (%) of test faces rolled by each angle, in a 1280×720 frame, through the real runtime path:
    a fresh tracker acquires with `detector`, then follows for `frames` − 1 more frames. NME of the tracked
    face nearest the annotated one (a 300-W crop can hold part of another person) over the faces tracked at
    the end; `missed` counts the others."""
    from ..tracking import FaceTracker, TrackerOptions
    from ..types import Frame
    bg = np.full((FRAME[1], FRAME[0], 3), 96, np.uint8)
    out = {}
    for roll in rolls:
        nmes, missed = [], 0
        for s in samples:
            frame, pts = place_face(read_image(s.image), s.points, bg, side, roll, (FRAME[0] / 2, FRAME[1] / 2))
            tracker = FaceTracker(model, detector, options=TrackerOptions(max_faces=4), smoothing=None)
            for i in range(frames):
                faces = tracker.update(Frame(frame, i / 30, i))
            near = np.linalg.norm(faces.xy.mean(1) - pts.mean(0), axis=1) < 0.5 * np.ptp(pts[:, 0]) if len(faces) else []
            if np.any(near):   # the annotated face (a 300-W crop can hold part of another person)
                nmes.append(float(nme_per_face(pts[None], faces.xy[np.argmax(near)][None])[0]))
            else:
                missed += 1
        out[str(roll)] = {"nme": float(np.mean(nmes)) if nmes else float("nan"), "missed": missed}
    return out


def two_face_frames(samples, n: int, seed: int = 0):
    """n 1280×720 frames with two test faces: one drifting gently, one that moves across, grows and
    rolls from 0° to 60° and back (the other way for the second half). Yields (frame, 2)."""
    rng = np.random.default_rng(seed)
    bg = cv2.GaussianBlur(rng.integers(60, 200, (FRAME[1], FRAME[0], 3), dtype=np.uint8), (0, 0), 25)
    (ia, pa), (ib, pb) = (_face_only(s) for s in samples[:2])
    for i in range(n):
        t = i / max(1, n - 1)
        frame, _ = place_face(ia, pa, bg, 170 + 10 * np.sin(6 * t), 5 * np.sin(9 * t), (330 + 20 * np.sin(5 * t), 360))
        roll = 60 * np.sin(2 * np.pi * t)
        frame, _ = place_face(ib, pb, frame, 140 + 80 * t, roll, (760 + 250 * t, 330 + 40 * np.sin(7 * t)))
        yield frame


def _face_only(sample):
    """The sample's image cut to 0.3 landmark-box sides around its face (the 300-W crops can hold a
    second person at the edge), and its points in the cut."""
    box = landmark_box(sample.points)
    m = 0.3 * max(box[2] - box[0], box[3] - box[1])
    x0, y0 = np.maximum(np.floor(box[:2] - m).astype(int), 0)
    x1, y1 = np.ceil(box[2:] + m).astype(int)
    return read_image(sample.image)[y0:y1, x0:x1], sample.points - [x0, y0]


class _Counting:
    """A tracker wrapper that counts the faces it returns (faces per frame of a run)."""

    def __init__(self, tracker):
        self.tracker, self.faces, self.frames = tracker, 0, 0

    @property
    def detector_runs(self):
        return self.tracker.detector_runs

    def update(self, frame):
        out = self.tracker.update(frame)
        self.faces += len(out)
        self.frames += 1
        return out


def two_face_video(model_name: str = "resnet", detector: str = "blazeface", n: int = 150, pairs: int = 7) -> dict:
    """`rtalign video` (the library call behind it, one inference thread) on a generated two-face clip in
    which one face turns and tilts: faces per frame against the truth (2), pipeline FPS against the
    codec-only FPS of the same clip in the same run (alternating pairs of runs: the median FPS of each and
    the median of the pairs' ratios, and the lowest and highest of them), detector share of frames."""
    import tempfile
    from pathlib import Path
    from ..pipeline import build_tracker, process_video
    from ..synth import write_clip
    from . import _NoLandmarks
    samples = list_samples(data_root() / "test_common")
    with tempfile.TemporaryDirectory() as tmp:
        clip, out = Path(tmp) / "two.mp4", Path(tmp) / "out.mp4"
        write_clip(clip, two_face_frames(samples, n), audio=True)
        runs = []
        for _ in range(pairs):      # codec and pipeline alternate: this machine's speed drifts between stretches
            codec = process_video(clip, out, tracker=_NoLandmarks(), draw="none").fps
            counting = _Counting(build_tracker(model_name, "cpu", 1, 4, detector=detector))
            stats = process_video(clip, out, tracker=counting, draw="points")
            runs.append((stats.fps, codec, stats.fps / codec, counting.faces / counting.frames,
                         stats.summary()["detector_share"]))
    fps, codec, ratio, faces, share = np.median(np.array(runs), axis=0)
    ratios = [r[2] for r in runs]
    return {"faces_per_frame": float(faces), "truth": 2, "pipeline_fps": float(fps), "codec_fps": float(codec),
            "fps_ratio": float(ratio), "fps_ratio_low": float(min(ratios)), "fps_ratio_high": float(max(ratios)),
            "detector_share": float(share)}


def detector_costs(samples, runs: int = 5, scenes: int = 8) -> dict:
    """Median ms per call on 1280×720 frames, every setting's calls interleaved with the others' so that a
    changing machine load touches all alike: on `scenes` recall frames (a test face over a face-free scene:
    Haar's cost grows with texture) and on one face over plain grey. Each registry detector plus the
    default's parts: its short-range passes alone and the full-range network's confirmation of one face."""
    from ..detectors import DETECTOR_NAMES, load_detector
    frames = {"scene": [f for f, *_ in recall_frames(samples[:scenes], 1, seed=2)],
              "plain": [place_face(read_image(samples[0].image), samples[0].points,
                                   np.full((FRAME[1], FRAME[0], 3), 90, np.uint8), 150, 0, (600, 300))[0]]}
    dets = {name: load_detector(name) for name in DETECTOR_NAMES}
    default = dets["blazeface"]
    face = default.detect_faces(frames["plain"][0])[:1]
    calls = {**{name: d.detect for name, d in dets.items()}, "blazeface passes only": default.raw_faces,
             "blazeface confirm 1 face": lambda f: default.verifier.confirm(f, face.boxes, face.roll)}
    times = {(name, kind): [] for name in calls for kind in frames}
    for r in range(runs + 1):
        for kind, fs in frames.items():
            for f in fs:
                for name, call in calls.items():
                    t0 = time.perf_counter()
                    call(f)
                    if r:               # the first round warms up
                        times[name, kind].append(time.perf_counter() - t0)
    ms = {k: float(np.median(v) * 1000) for k, v in times.items()}
    return {kind: {name: round(ms[name, kind], 2) for name in calls} |
            {"blazeface / haar": round(ms["blazeface", kind] / ms["haar", kind], 3)} for kind in frames}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--detectors", default="blazeface,haar")
    ap.add_argument("--model", default="resnet")
    ap.add_argument("--quick", action="store_true", help="every 8th test face")
    ap.add_argument("--no-nme", action="store_true", help="detector figures only")
    ap.add_argument("--video", action="store_true", help="only the two-face clip through `rtalign video`")
    ap.add_argument("--cost", action="store_true", help="only ms per call of each detector (and the default's parts) on 720p frames")
    args = ap.parse_args(argv)
    from ..detectors import load_detector
    from ..models import load_model
    if args.cost:
        print(json.dumps(detector_costs(list_samples(data_root() / "test_common"))))
        return
    if args.video:
        for name in args.detectors.split(","):
            print(json.dumps({"detector": name, **two_face_video(args.model, name)}))
        return
    samples = list_samples(data_root() / "test_common")[:: 8 if args.quick else 1]
    model = None if args.no_nme else load_model(args.model, threads=1)
    for name in args.detectors.split(","):
        det = load_detector(name)
        row = {"detector": name, **detector_figures(det, samples)}
        if model is not None:
            row["rolled_nme"] = rolled_nme(model, det, samples)
        print(json.dumps(row))


if __name__ == "__main__":
    main()
