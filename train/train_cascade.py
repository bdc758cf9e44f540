"""Train the cascade-regression model (random forests on shape-indexed pixel differences).

    python -m train.train_cascade --out exported/cascade.npz

Every face starts from the mean shape placed in a jittered copy of its box (several starts per
face, half of them on the mirrored image); each stage fits a scikit-learn random forest to the
remaining error, expressed in the mean-shape frame and compressed by a per-stage PCA. Training
shapes advance with the forest's out-of-bag predictions, so later stages learn from errors like
the ones they will meet at test time, not from memorized ones.
"""
from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import cv2
import numpy as np
from sklearn.ensemble import RandomForestRegressor

from rtalign.data import data_root, list_samples, read_image
from rtalign.landmarks import MEAN_SHAPE, interocular, landmark_box, mirror_points
from rtalign.metrics import nme_per_face
from rtalign.models.cascade import KEYS, initial_shape, run_cascade, shape_features, similarity_to

log = logging.getLogger("train_cascade")


def load(folder):
    samples = list_samples(folder)
    return [cv2.cvtColor(read_image(s.image), cv2.COLOR_BGR2GRAY) for s in samples], np.stack([s.points for s in samples]).astype(np.float64)


def sample_pixels(rng, n_px: int, n_pairs: int, radius: float):
    """Pixel anchors/offsets in a disc around landmarks, and pairs that favour nearby pixels (as ERT)."""
    anchor = rng.integers(0, 68, n_px).astype(np.int64)
    r = radius * np.sqrt(rng.random(n_px))
    t = rng.random(n_px) * 2 * np.pi
    offset = np.stack([r * np.cos(t), r * np.sin(t)], 1)
    pos = MEAN_SHAPE[anchor] + offset
    pairs = []
    while len(pairs) < n_pairs:
        i, j = rng.integers(0, n_px, 2)
        if i != j and rng.random() < np.exp(-np.linalg.norm(pos[i] - pos[j]) / radius):
            pairs.append((i, j))
    return anchor, offset, np.array(pairs, np.int64)


def to_mean_frame(mean, shapes, targets):
    """(targets − shapes) rotated and scaled into the mean-shape frame of each shape: (N, 136)."""
    out = np.empty((len(shapes), 136))
    for n, (s, g) in enumerate(zip(shapes, targets)):
        a, b = similarity_to(mean, s)
        d = (g - s)
        inv = 1.0 / (a * a + b * b)
        out[n, 0::2] = (a * d[:, 0] + b * d[:, 1]) * inv
        out[n, 1::2] = (-b * d[:, 0] + a * d[:, 1]) * inv
    return out


def apply_delta(mean, shapes, delta):
    for s, d in zip(shapes, delta):
        a, b = similarity_to(mean, s)
        s[:, 0] += a * d[0::2] - b * d[1::2]
        s[:, 1] += b * d[0::2] + a * d[1::2]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--stages", type=int, default=6)
    ap.add_argument("--trees", type=int, default=30)
    ap.add_argument("--depth", type=int, default=10)
    ap.add_argument("--min-leaf", type=int, default=6)
    ap.add_argument("--pixels", type=int, default=400)
    ap.add_argument("--pairs", type=int, default=600)
    ap.add_argument("--components", type=int, default=16)
    ap.add_argument("--max-features", type=float, default=0.1, help="share of features tried per split")
    ap.add_argument("--starts", type=int, default=6, help="initial shapes per face")
    ap.add_argument("--radius", type=float, default=0.45, help="first stage's pixel radius (inter-ocular units)")
    ap.add_argument("--decay", type=float, default=0.75, help="pixel radius factor from one stage to the next")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--limit", type=int, default=0, help="use only this many training faces (quick runs)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    rng = np.random.default_rng(args.seed)
    t_start = time.time()

    images, points = load(data_root() / "train")
    if args.limit:
        images, points = images[: args.limit], points[: args.limit]
    test_images, test_points = load(data_root() / "test_common")
    mean = MEAN_SHAPE.astype(np.float64)
    # training starts: jittered boxes, half on the mirrored image
    imgs, gts, shapes = [], [], []
    mirrored = [img[:, ::-1].copy() for img in images]
    for k, (img, pts) in enumerate(zip(images, points)):
        for s in range(args.starts):
            flip = s % 2 == 1
            g = mirror_points(pts, img.shape[1]) if flip else pts
            box = landmark_box(g)
            side = max(box[2] - box[0], box[3] - box[1])
            jitter = np.concatenate([rng.uniform(-0.06, 0.06, 2)] * 2) * side
            scale = rng.uniform(0.94, 1.06)
            c = (box[:2] + box[2:]) / 2 + jitter[:2]
            half = (box[2:] - box[:2]) / 2 * scale
            imgs.append(k * 2 + flip)
            gts.append(g)
            shapes.append(initial_shape(mean, np.concatenate([c - half, c + half])))
    pool = [m for pair in zip(images, mirrored) for m in pair]
    gts, shapes = np.stack(gts), np.stack(shapes)
    log.info("%d training starts from %d faces", len(shapes), len(images))

    model = {k: [] for k in ("anchor", "offset", "pair", "basis", "basis_mean", "stage_trees")}
    trees = []
    for stage in range(args.stages):
        radius = args.radius * args.decay ** stage
        anchor, offset, pair = sample_pixels(rng, args.pixels, args.pairs, radius)
        X = np.empty((len(shapes), args.pairs), np.float32)
        for n in range(len(shapes)):
            shape_features(pool[imgs[n]], shapes[n], mean, anchor, offset, pair, X[n])
        R = to_mean_frame(mean, shapes, gts)
        mu = R.mean(0)
        _, _, vt = np.linalg.svd(R - mu, full_matrices=False)
        basis = vt[: args.components]
        forest = RandomForestRegressor(n_estimators=args.trees, max_depth=args.depth, min_samples_leaf=args.min_leaf,
                                       max_features=args.max_features, oob_score=True, n_jobs=args.jobs, random_state=args.seed + stage)
        forest.fit(X, (R - mu) @ basis.T)
        oob = np.nan_to_num(forest.oob_prediction_)
        apply_delta(mean, shapes, mu + oob @ basis)
        model["anchor"].append(anchor); model["offset"].append(offset); model["pair"].append(pair)
        model["basis"].append(basis); model["basis_mean"].append(mu); model["stage_trees"].append(args.trees)
        trees.extend(est.tree_ for est in forest.estimators_)
        train_nme = (np.linalg.norm(shapes - gts, axis=2).mean(1) / interocular(gts)).mean() * 100
        log.info("stage %d (radius %.3f): train NME (out-of-bag) %.3f %%, %.1f min", stage, radius, train_nme,
                 (time.time() - t_start) / 60)

    arrays = export_arrays(mean, model, trees)
    np.savez_compressed(args.out, **arrays)
    pred = predict_all(arrays, test_images, test_points)
    log.info("test_common NME %.3f %%, file %.1f MB, %.1f min", nme_per_face(test_points, pred).mean(),
             args.out.stat().st_size / 1e6, (time.time() - t_start) / 60)


def export_arrays(mean, model, trees) -> dict:
    """Flatten the forests' node arrays (children relative to each tree's first node)."""
    starts, offset = [], 0
    for t in trees:
        starts.append(offset)
        offset += t.node_count
    cat = lambda f: np.concatenate([f(t) for t in trees])
    arrays = {
        "mean_shape": mean, "anchor": np.stack(model["anchor"]), "offset": np.stack(model["offset"]),
        "pair": np.stack(model["pair"]), "tree_start": np.array(starts, np.int64),
        "feature": cat(lambda t: t.feature).astype(np.int32),
        "threshold": cat(lambda t: t.threshold).astype(np.float32),
        "left": cat(lambda t: t.children_left).astype(np.int32),
        "right": cat(lambda t: t.children_right).astype(np.int32),
        "value": cat(lambda t: t.value[:, :, 0]).astype(np.float32),
        "basis": np.stack(model["basis"]), "basis_mean": np.stack(model["basis_mean"]),
        "stage_trees": np.array(model["stage_trees"], np.int64),
    }
    assert set(arrays) == set(KEYS)
    return arrays


def predict_all(arrays, images, points):
    args = tuple(arrays[k] for k in KEYS[1:])
    out = []
    for img, pts in zip(images, points):
        shape = initial_shape(arrays["mean_shape"], landmark_box(pts))
        run_cascade(img, shape, arrays["mean_shape"], *args)
        out.append(shape)
    return np.stack(out)


if __name__ == "__main__":
    main()
