"""Fit the map from OpenCV Haar face boxes to tight landmark boxes on the 300-W training crops.

    python -m train.calibrate_detector

The landmark models are trained on crops around the landmark box; a Haar box sits elsewhere
(higher, tighter on the chin). The printed centre offset and side ratio go into rtalign/detect.py.
"""
import numpy as np

from rtalign.data import data_root, list_samples, read_image
from rtalign.detect import HaarDetector
from rtalign.landmarks import landmark_box


def main():
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


if __name__ == "__main__":
    main()
