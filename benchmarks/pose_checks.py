"""Head-pose figures: roll under in-plane rotation, yaw under known 3-D turns, mirror symmetry.

    python benchmarks/pose_checks.py [MODEL]

Faces: scikit-image's astronaut and the first 20 near-frontal faces among every 10th 300-W *training*
face (|yaw| <= 8°, |pitch| <= 15° by the pose of their ground-truth landmarks), so a turn by t degrees
gives a face at about t degrees. Rotations: cv2.getRotationMatrix2D about the face centre by ±15°, ±30°
(true roll change: minus the angle). Turns: rtalign.synth.turn_face (a 2.5-D render with the generic
face's depths) by -35…35° in 5° steps; the label is the turn, the reading yaw(turn) - yaw(0). Mirror:
the image flipped left-right. The model is given the moved landmark box (no detector).
"""
import sys

import cv2
import numpy as np

from rtalign import FaceAligner
from rtalign.data import data_root, list_samples, read_image
from rtalign.landmarks import landmark_box
from rtalign.pose import FACE_3D, head_pose
from rtalign.synth import turn_face

TURNS = np.arange(-35, 36, 5)


def faces():
    from skimage import data
    yield "astronaut", cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    kept = 0
    for s in list_samples(data_root() / "train")[::10]:
        img = read_image(s.image)
        yaw, pitch, _ = head_pose(s.points[None], img.shape[1::-1])[0]
        if abs(yaw) <= 8 and abs(pitch) <= 15:
            yield s.image.name, img
            kept += 1
            if kept == 20:
                return


def main(model: str):
    al = FaceAligner(model)
    roll_err, turn_yaws, mirror_err = [], [], []
    for name, img in faces():
        f = al.align(img)
        if len(f) == 0:
            continue
        box, p0, xy0 = f.bbox[0], f.pose[0], f.xy[0]
        c = xy0.mean(0)
        for a in (-30, -15, 15, 30):
            m = cv2.getRotationMatrix2D((float(c[0]), float(c[1])), a, 1.0)
            r = cv2.warpAffine(img, m, img.shape[1::-1], borderMode=cv2.BORDER_REPLICATE)
            p = al.align(r, landmark_box(np.c_[xy0, np.ones(68)] @ m.T)[None]).pose[0]
            roll_err.append((p[2] - p0[2] + a + 180) % 360 - 180)
        ys = []
        for t in TURNS:
            turned, new = turn_face(img, xy0, t, FACE_3D[:, 2])
            ys.append(al.align(turned, landmark_box(new)[None]).pose[0, 0])
        turn_yaws.append(np.array(ys) - ys[len(TURNS) // 2])
        w = img.shape[1]
        pm = al.align(img[:, ::-1].copy(), np.array([[w - 1 - box[2], box[1], w - 1 - box[0], box[3]]])).pose[0]
        mirror_err.append([pm[0] + p0[0], pm[1] - p0[1], pm[2] + p0[2]])
        print(f"{name}: pose {np.round(p0, 1)} yaw(turn)-yaw(0) {np.round(turn_yaws[-1], 1)}", flush=True)
    re, me, d = np.abs(roll_err), np.abs(mirror_err), np.array(turn_yaws)
    print(f"faces {len(d)}; roll error: MAE {re.mean():.2f} max {re.max():.2f} deg over {len(re)} rotations, "
          f"{(re <= 2).sum()} within 2 deg")
    for lim in (15, 30, 35):
        cols = np.abs(TURNS) <= lim
        mono = np.all(np.diff(d[:, cols], axis=1) > 0, axis=1)
        sign = np.all(np.sign(d[:, cols]) == np.sign(TURNS[cols]), axis=1)
        err = np.abs(d[:, cols] - TURNS[cols])
        print(f"turns within ±{lim}°: yaw MAE {err.mean():.2f} max {err.max():.2f} deg; monotone in {mono.sum()}/{len(d)},"
              f" sign right in {sign.sum()}/{len(d)}")
    print(f"mirror: |yaw+yaw'| MAE {me[:, 0].mean():.2f} max {me[:, 0].max():.2f}; |pitch-pitch'| MAE "
          f"{me[:, 1].mean():.2f} max {me[:, 1].max():.2f}; |roll+roll'| MAE {me[:, 2].mean():.2f} max {me[:, 2].max():.2f}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "resnet")
