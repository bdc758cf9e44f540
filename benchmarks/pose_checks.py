"""Head-pose figures: roll under in-plane rotation, yaw under known 3-D turns, mirror symmetry.

    python benchmarks/pose_checks.py [MODEL]

Faces: scikit-image's astronaut and every 50th 300-W *training* face (the first 20; those the Haar
detector finds). Rotations: cv2.getRotationMatrix2D about the face centre by ±15°, ±30° (true roll
change: minus the angle). Turns: rtalign.synth.turn_face by -25…25° (the generic face's depths). Mirror:
the image flipped left-right. The model is given the moved landmark box (no detector).
"""
import sys
import cv2, numpy as np
from rtalign import FaceAligner
from rtalign.landmarks import landmark_box
from rtalign.pose import FACE_3D
from rtalign.synth import turn_face
from rtalign.data import data_root, list_samples, read_image
model = sys.argv[1] if len(sys.argv) > 1 else "resnet"
al = FaceAligner(model)
def pose_of(img, box):
    f = al.align(img, box[None]); return f.pose[0], f.xy[0]
def faces():
    from skimage import data
    yield "astronaut", cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    for s in list_samples(data_root() / "train")[:: 50][:20]:
        yield s.image.name, read_image(s.image)
roll_err, yaw_err, mirror_err, mono, mono15, sign = [], [], [], [], [], []
angles = (-25, -15, -5, 0, 5, 15, 25)
for name, img in faces():
    f = al.align(img)
    if len(f) == 0:
        continue
    box = f.bbox[0]; p0 = f.pose[0]; xy0 = f.xy[0]
    c = xy0.mean(0)
    rolls = []
    for a in (-30, -15, 15, 30):
        m = cv2.getRotationMatrix2D((float(c[0]), float(c[1])), a, 1.0)
        r = cv2.warpAffine(img, m, img.shape[1::-1], borderMode=cv2.BORDER_REPLICATE)
        pts = np.c_[xy0, np.ones(68)] @ m.T
        p, _ = pose_of(r, landmark_box(pts))
        d = (p[2] - p0[2] + 180) % 360 - 180
        roll_err.append(d + a); rolls.append(round(float(d), 1))
    ys = []
    for a in angles:
        t, new = turn_face(img, xy0, a, FACE_3D[:, 2])
        p, xy = pose_of(t, landmark_box(new))
        ys.append(p[0])
    ys = np.array(ys)
    d = ys - ys[3]
    mono.append(bool(np.all(np.diff(ys) > 0)))
    mono15.append(bool(np.all(np.diff(ys[1:-1]) > 0)))
    sign.append(bool(np.all(np.sign(d) == np.sign(angles))))
    yaw_err += list(d - np.array(angles))
    fl = img[:, ::-1].copy(); w = img.shape[1]
    mb = np.array([w - 1 - box[2], box[1], w - 1 - box[0], box[3]])
    pm, _ = pose_of(fl, mb)
    mirror_err.append([pm[0] + p0[0], pm[1] - p0[1], pm[2] + p0[2]])
    print(f"{name}: pose {np.round(p0,1)} rolls {rolls} yaw(turn)-yaw(0) {np.round(d,1)} mirror {np.round(pm,1)}")
re, ye, me = np.abs(roll_err), np.abs(yaw_err), np.abs(mirror_err)
print(f"faces {len(mono)}; roll error: MAE {re.mean():.2f} max {re.max():.2f} deg over {len(re)} rotations, {(re <= 2).sum()} within 2 deg")
print(f"yaw vs known turn (relative to turn 0): MAE {ye.mean():.2f} max {ye.max():.2f} deg; sign right in {sum(sign)}/{len(sign)}, monotone over ±25° in {sum(mono)}/{len(mono)}, over ±15° in {sum(mono15)}/{len(mono15)}")
y15 = np.abs(np.array(yaw_err).reshape(-1, 7)[:, 1:-1])
print(f"yaw vs known turn within ±15°: MAE {y15.mean():.2f} max {y15.max():.2f} deg")
print(f"mirror: |yaw+yaw'| MAE {me[:,0].mean():.2f} max {me[:,0].max():.2f}; |pitch-pitch'| MAE {me[:,1].mean():.2f} max {me[:,1].max():.2f}; |roll+roll'| MAE {me[:,2].mean():.2f} max {me[:,2].max():.2f}")
