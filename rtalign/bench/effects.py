"""The colour effects' figures (issue 19) on faces with ground-truth points, and a before | after sheet.

    python -m rtalign.bench.effects [--data DIR] [--split test_common] [--sheet benchmarks/effects.png]

Colour differences are CIEDE2000 (scikit-image, its own sRGB → Lab, independent of the effect's
OpenCV Lab). Every figure is at strength 1, the hardest case, averaged over the colours in COLORS.
Pixels are chosen from the ground-truth points only, never from what the effect decided:
- lip pixels: inside the outer lip line and outside the inner one, both by ≥ 2 px;
- halo: 2–6 px outside the outer lip line; "skin below" is its part below the mouth-corner line;
- teeth (faces whose mouth is open, inner-lip gap > 0.1 inter-ocular): ≥ 1 px inside the inner lip
  line, lighter and less chromatic than the median lip pixel;
- coverage: share of lip pixels whose Lab hue moves ≥ 70 % of the way to the target's (pixels
  already within 15° of it are not counted);
- dim light: the face at 35 % of its 8-bit values; recoloured minus original mean L* of the lip pixels;
- closed eyes: eyes with ground-truth eye aspect ratio < 0.15 with any pixel changed by the iris effect.
Lip figures are given for colour photos and, apart, for monochrome ones (black-and-white or toned,
where nothing but lightness tells lip from skin).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from ..color import parse_color
from ..data import data_root, list_samples, read_image
from ..effects import eye_aspect_ratio, recolor_irises, recolor_lips
from ..effects.common import signed_distance
from ..landmarks import INNER_LIPS, LEFT_EYE, OUTER_LIPS, RIGHT_EYE, interocular, landmark_box

COLORS = ("crimson", "purple", "darkorange")
LOWER_LIP = np.r_[55:60, 65:68]
OPEN_GAP = 0.10
DIM = 0.35
CLOSED_EAR = 0.15


def _lab(bgr: np.ndarray) -> np.ndarray:
    from skimage.color import rgb2lab
    return rgb2lab(bgr[..., ::-1])


def _delta_e(lab0: np.ndarray, lab1: np.ndarray) -> np.ndarray:
    from skimage.color import deltaE_ciede2000
    return deltaE_ciede2000(lab0, lab1)


def _hue(lab: np.ndarray) -> np.ndarray:
    return np.arctan2(lab[..., 2], lab[..., 1])


def _angle(a, b):
    return np.abs(np.angle(np.exp(1j * (a - b))))


def lowered_lip(points: np.ndarray, fraction: float = 0.04) -> np.ndarray:
    """The points with the lower lip moved `fraction` of the inter-ocular distance down the face."""
    eye = points[45] - points[36]
    down = np.array([-eye[1], eye[0]]) / np.linalg.norm(eye)
    out = points.copy()
    out[LOWER_LIP] += fraction * interocular(points) * down
    return out


def _regions(img, pts) -> dict:
    shape, origin = img.shape[:2], np.zeros(2)
    d_out = signed_distance(shape, origin, pts[OUTER_LIPS])
    d_in = signed_distance(shape, origin, pts[INNER_LIPS])
    eye = pts[45] - pts[36]
    ys, xs = np.mgrid[:shape[0], :shape[1]]
    mid = (pts[48] + pts[54]) / 2
    below = (xs - mid[0]) * -eye[1] + (ys - mid[1]) * eye[0] > 0
    halo = (d_out < -2) & (d_out >= -6)
    return dict(lips=(d_out >= 2) & (d_in <= -2), halo=halo, below=halo & below, opening=d_in >= 1)


def _mouth_crop(img, pts):
    """The image around the mouth (a margin of half the inter-ocular distance) and the points in it:
    the effect and every figure see the same pixels, at a fraction of the cost."""
    pad = 0.5 * interocular(pts)
    x0, y0 = np.maximum(np.floor(pts[OUTER_LIPS].min(0) - pad), 0).astype(int)
    x1, y1 = np.ceil(pts[OUTER_LIPS].max(0) + pad).astype(int)
    return img[y0:y1, x0:x1].copy(), pts - [x0, y0]


def lip_figures(samples, colors=COLORS) -> dict:
    """Teeth, halo, skin-below (lowered points), coverage and dim-light figures over `samples`."""
    acc = {k: [] for k in ("teeth", "halo", "below", "coverage", "dim")}
    for s in samples:
        img, pts = _mouth_crop(read_image(s.image), s.points)
        reg = _regions(img, pts)
        if reg["lips"].sum() < 20:
            continue
        lab0 = _lab(img)
        lip_lab = lab0[reg["lips"]]
        chroma0 = np.hypot(lab0[..., 1], lab0[..., 2])
        teeth = (reg["opening"] & (lab0[..., 0] > np.median(lip_lab[:, 0]))
                 & (chroma0 < np.median(np.hypot(lip_lab[:, 1], lip_lab[:, 2]))))
        is_open = np.linalg.norm(pts[66] - pts[62]) / interocular(pts) > OPEN_GAP and teeth.sum() >= 20
        dim = np.clip(img * DIM + 0.5, 0, 255).astype(np.uint8)
        dim_l = _lab(dim)[..., 0][reg["lips"]].mean()
        for color in colors:
            out = recolor_lips(img.copy(), pts, color, 1.0)
            lab1 = _lab(out)
            de = _delta_e(lab0, lab1)
            acc["halo"].append(de[reg["halo"]].mean())
            if is_open:
                acc["teeth"].append(de[teeth].mean())
            target = _hue(_lab(np.array(parse_color(color), np.uint8).reshape(1, 1, 3)))[0, 0]
            before, after = _hue(lab0[reg["lips"]]), _hue(lab1[reg["lips"]])
            far = _angle(before, target) > np.radians(15)
            if far.sum() >= 10:
                moved = 1 - _angle(after[far], target) / _angle(before[far], target)
                acc["coverage"].append(float((moved >= 0.7).mean()))
            low = recolor_lips(img.copy(), lowered_lip(pts), color, 1.0)
            acc["below"].append(_delta_e(lab0, _lab(low))[reg["below"]].mean())
            acc["dim"].append(_lab(recolor_lips(dim.copy(), pts, color, 1.0))[..., 0][reg["lips"]].mean() - dim_l)
    return {"lips_faces": len(acc["halo"]) // len(colors), "teeth_faces": len(acc["teeth"]) // len(colors),
            "teeth_de": _mean(acc["teeth"]), "halo_de": _mean(acc["halo"]), "below_de_lowered": _mean(acc["below"]),
            "coverage": _mean(acc["coverage"]), "dim_dl": _mean(acc["dim"]),
            "dim_dl_max": float(np.max(acc["dim"])) if acc["dim"] else float("nan")}


def iris_figures(samples, color="dodgerblue") -> dict:
    """Closed eyes (ground-truth EAR < 0.15) with any pixel changed; share of open eyes (EAR ≥ 0.25) recoloured."""
    closed = closed_changed = opened = opened_changed = 0
    for s in samples:
        pts = s.points
        ears = [eye_aspect_ratio(pts[RIGHT_EYE]), eye_aspect_ratio(pts[LEFT_EYE])]
        if min(ears) >= CLOSED_EAR and max(ears) < 0.25:
            continue
        img = read_image(s.image)
        changed = np.any(recolor_irises(img.copy(), pts, color, 1.0) != img, axis=2)
        half = changed[:, : int(round((pts[39, 0] + pts[42, 0]) / 2))].any(), \
            changed[:, int(round((pts[39, 0] + pts[42, 0]) / 2)):].any()
        for ear, hit in zip(ears, half):
            if ear < CLOSED_EAR:
                closed, closed_changed = closed + 1, closed_changed + int(hit)
            elif ear >= 0.25:
                opened, opened_changed = opened + 1, opened_changed + int(hit)
    return {"closed_eyes": closed, "closed_eyes_recoloured": closed_changed,
            "open_eyes": opened, "open_eyes_recoloured_share": opened_changed / max(opened, 1)}


def _mean(v) -> float:
    return float(np.mean(v)) if len(v) else float("nan")


def sheet_faces(samples, n: int = 12) -> list:
    """A varied dozen: the widest-open mouths, the most closed eyes, the darkest and the rest spread out."""
    pts = np.stack([s.points for s in samples])
    gap = np.linalg.norm(pts[:, 66] - pts[:, 62], axis=1) / interocular(pts)
    ear = np.minimum(*[np.array([eye_aspect_ratio(p[e]) for p in pts]) for e in (RIGHT_EYE, LEFT_EYE)])
    chosen = [*np.argsort(-gap)[:4], *[i for i in np.argsort(ear) if ear[i] < CLOSED_EAR][:2],
              *range(0, len(samples), max(1, len(samples) // n))]
    return [samples[i] for i in list(dict.fromkeys(int(i) for i in chosen))[:n]]


def contact_sheet(samples, lip="crimson", eye="dodgerblue", strength=0.7, tile=224) -> np.ndarray:
    """BGR image of before | after tiles (face box, ground-truth points), two pairs per row."""
    pairs = []
    for s in samples:
        img = read_image(s.image)
        x0, y0, x1, y1 = landmark_box(s.points)
        side = max(x1 - x0, y1 - y0) * 1.1
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        m = cv2.getAffineTransform(np.float32([[cx - side / 2, cy - side / 2], [cx + side / 2, cy - side / 2],
                                               [cx - side / 2, cy + side / 2]]),
                                   np.float32([[0, 0], [tile, 0], [0, tile]]))
        out = recolor_irises(recolor_lips(img.copy(), s.points, lip, strength), s.points, eye, strength)
        pairs.append(np.hstack([cv2.warpAffine(im, m, (tile, tile), flags=cv2.INTER_AREA) for im in (img, out)]))
    if len(pairs) % 2:
        pairs.append(np.zeros_like(pairs[0]))
    rows = [np.hstack([pairs[i], np.full((tile, 8, 3), 255, np.uint8), pairs[i + 1]]) for i in range(0, len(pairs), 2)]
    return np.vstack(rows)


def is_monochrome(sample) -> bool:
    """A black-and-white or toned photo (sepia, a colour cast): around the mouth, chroma hardly
    varies (std of a*, b* < 4), so the lip effect can tell lips from skin by lightness only."""
    img, _ = _mouth_crop(read_image(sample.image), sample.points)
    lab = _lab(img)
    return float(np.hypot(lab[..., 1].std(), lab[..., 2].std())) < 4.0


def effects_markdown(extras: dict) -> str:
    """The figures' lines for benchmarks/RESULTS.md."""
    f = {k: (f"{v:.3f}" if isinstance(v, float) else v) for k, v in extras.items()}
    return (f"Colour effects on test faces with ground-truth points (CIEDE2000, strength 1, {', '.join(COLORS)};"
            f" `python -m rtalign.bench.effects`, definitions in `rtalign/bench/effects.py`):\n"
            f"- colour photos ({f['lips_faces']} faces): teeth ΔE {f['teeth_de']} ({f['teeth_faces']} open mouths), "
            f"halo ΔE {f['halo_de']}, skin below with lowered points ΔE {f['below_de_lowered']}, "
            f"coverage {f['coverage']}, dim light ΔL* {f['dim_dl']} (worst face {f['dim_dl_max']})\n"
            f"- monochrome photos ({f['lips_faces_mono']} faces): teeth ΔE {f['teeth_de_mono']}, "
            f"halo ΔE {f['halo_de_mono']}, below ΔE {f['below_de_lowered_mono']}, coverage {f['coverage_mono']}, "
            f"dim ΔL* {f['dim_dl_mono']}\n"
            f"- closed eyes (EAR < 0.15) recoloured: {f['closed_eyes_recoloured']} of {f['closed_eyes']}; "
            f"open eyes (EAR ≥ 0.25) recoloured: {f['open_eyes_recoloured_share']}\n\n![effects](effects.png)\n")


def effect_figures(samples) -> dict:
    """All of the issue's figures except speed (see rtalign.bench.time_effects); lip figures for
    colour photos, and for monochrome ones apart (keys ending in _mono)."""
    mono = [is_monochrome(s) for s in samples]
    colour = lip_figures([s for s, m in zip(samples, mono) if not m])
    monochrome = lip_figures([s for s, m in zip(samples, mono) if m])
    return {**colour, **{f"{k}_mono": v for k, v in monochrome.items()}, **iris_figures(samples)}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=None, help="300-W root (default: RTALIGN_DATA or ../shared)")
    ap.add_argument("--split", default="test_common")
    ap.add_argument("--step", type=int, default=1, help="every n-th face")
    ap.add_argument("--sheet", type=Path, default=None, help="also write the before | after contact sheet here")
    args = ap.parse_args(argv)
    samples = list_samples((args.data or data_root()) / args.split)[:: args.step]
    for k, v in effect_figures(samples).items():
        print(f"{k:28} {v:.3f}" if isinstance(v, float) else f"{k:28} {v}")
    if args.sheet:
        args.sheet.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(args.sheet), contact_sheet(sheet_faces(samples)))


if __name__ == "__main__":
    main()
