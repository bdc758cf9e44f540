"""Fit the map from a detector's output to tight landmark boxes on the 300-W training crops.

    python -m train.calibrate_detector [--detector haar|blazeface]
    python -m train.calibrate_detector --sizes

--sizes: the share of training faces each BlazeFace network finds (IoU ≥ 0.5 against the landmark box, its
own threshold) by face size in its input pixels, one pass on a 256² crop of a face-free scene with the face
rolled within ±45°: the `face_px` ranges in rtalign/detectors/__init__.py.

The landmark models are trained on crops around the landmark box; a detector's box sits elsewhere
(Haar: higher, tighter on the chin). haar: the printed centre offset and side ratio go into
rtalign/detect.py. blazeface: every training face is rolled by a random angle in ±45° first; the
landmark box is measured in the face's upright frame from the keypoints, and the printed constants go
into rtalign/detectors/blazeface.py (BLAZEFACE_CALIBRATION).
"""
import argparse

import cv2
import numpy as np

from rtalign.data import data_root, list_samples, read_image
from rtalign.detect import HaarDetector
from rtalign.landmarks import landmark_box


def calibrate_haar():
    det = HaarDetector(calibration=(0.0, 0.0, 1.0))
    rows = []
    for s in list_samples(data_root() / "train"):
        boxes = det.detect(read_image(s.image))
        gt = landmark_box(s.points)
        if len(boxes) == 0:
            continue
        c = (gt[:2] + gt[2:]) / 2
        centres = (boxes[:, :2] + boxes[:, 2:]) / 2
        b = boxes[np.argmin(np.linalg.norm(centres - c, axis=1))]
        side = b[2] - b[0]
        bc = (b[:2] + b[2:]) / 2
        if np.linalg.norm(bc - c) > 0.5 * side:
            continue  # a detection of something else
        rows.append([*(c - bc) / side, max(gt[2] - gt[0], gt[3] - gt[1]) / side])
    rows = np.array(rows)
    med = np.median(rows, axis=0)
    print(f"{len(rows)} matched faces; calibration (dx, dy, side ratio) = "
          f"({med[0]:.4f}, {med[1]:.4f}, {med[2]:.4f}); spread {rows.std(0).round(4)}")


def calibrate_blazeface(step: int = 3, seed: int = 0):
    from rtalign.detectors import load_detector
    det = load_detector("blazeface")
    rng = np.random.default_rng(seed)
    rows = []
    for s in list_samples(data_root() / "train")[::step]:
        img = read_image(s.image)
        m = cv2.getRotationMatrix2D((img.shape[1] / 2 - 0.5, img.shape[0] / 2 - 0.5), rng.uniform(-45, 45), 1.0)
        img = cv2.warpAffine(img, m, (img.shape[1], img.shape[0]))
        pts = s.points @ m[:, :2].T + m[:, 2]
        kps = det.detect_faces(img).keypoints
        if not len(kps):
            continue
        gt = landmark_box(pts)
        k = kps[np.argmin(np.linalg.norm(kps[:, :2].mean(1) - (gt[:2] + gt[2:]) / 2, axis=1))]
        across = k[1] - k[0]
        u = across / np.linalg.norm(across)
        v = np.array([-u[1], u[0]])
        mid = (k[0] + k[1]) / 2
        d = abs((k[3] - mid) @ v) + 0.5 * np.linalg.norm(across)
        up = landmark_box(np.stack([(pts - mid) @ u, (pts - mid) @ v], axis=1))   # in the upright frame
        rows.append([(up[0] + up[2]) / 2 / d, (up[1] + up[3]) / 2 / d, max(up[2] - up[0], up[3] - up[1]) / d])
    rows = np.array(rows)
    med = np.median(rows, axis=0)
    print(f"{len(rows)} faces; BLAZEFACE_CALIBRATION (dx, dy, side ratio) = ({med[0]:.3f}, {med[1]:.3f}, "
          f"{med[2]:.3f}); spread {rows.std(0).round(3)}")


def measure_sizes(step: int = 12, seed: int = 3):
    from rtalign.bench.detector import backgrounds, place_face, upright_box
    from rtalign.detectors import BlazeFaceDetector, box_iou
    from rtalign.models import models_dir
    sizes, tile = (12, 16, 20, 24, 32, 48, 64, 80, 96, 128, 160), 256
    rng = np.random.default_rng(seed)
    scenes = backgrounds(None, 0, seed)
    # one pass at the square's own scale: a 1 px face is the first to find, a tile-sized one the last
    nets = {n: BlazeFaceDetector(models_dir() / f"blazeface_{n}.onnx", min_face=1, face_px=(1, tile))
            for n in ("short", "full")}
    found = {n: np.zeros(len(sizes)) for n in nets}
    samples = list_samples(data_root() / "train")[::step]
    for s in samples:
        img = read_image(s.image)
        for j, side in enumerate(sizes):
            roll, scene = rng.uniform(-45, 45), scenes[rng.integers(len(scenes))]
            y, x = rng.integers(0, 720 - tile), rng.integers(0, 1280 - tile)
            square, pts = place_face(img, s.points, np.ascontiguousarray(scene[y:y + tile, x:x + tile]), side, roll,
                                     tile / 2 + rng.uniform(-20, 20, 2))
            for n, det in nets.items():
                boxes = det.detect(square)
                found[n][j] += len(boxes) > 0 and box_iou(boxes, upright_box(pts, roll)[None]).max() >= 0.5
    for n, hits in found.items():
        print(f"{n}: " + "  ".join(f"{side} px {100 * h / len(samples):.0f} %" for side, h in zip(sizes, hits)))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--detector", choices=("haar", "blazeface"), default="haar")
    ap.add_argument("--sizes", action="store_true", help="BlazeFace networks' reliable face sizes instead")
    args = ap.parse_args(argv)
    if args.sizes:
        measure_sizes()
    else:
        calibrate_haar() if args.detector == "haar" else calibrate_blazeface()


if __name__ == "__main__":
    main()
