"""Train the cascade-regression model: gradient-boosted trees on shape-indexed pixel differences (ERT).

    python -m train.train_cascade --out exported/cascade.npz

Every face gets several starts: the mean shape, or another training face's shape, placed in a
jittered copy of its box, on the face as stored, mirrored, or augmented (rotation, scale, light,
blur, noise, occluders: train/augment.py) at the scale the runtime reads faces. Each stage expresses the
remaining error in the mean-shape frame, projects it on a per-stage PCA basis, and fits
scikit-learn regression trees one after another, each on what the previous ones left, shrunk by
the learning rate (gradient boosting with squared loss). Split candidates are random features
with random thresholds (`splitter="random"`), as ERT draws them.
"""
from __future__ import annotations

import argparse
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.tree import DecisionTreeRegressor

from rtalign.data import data_root, list_samples, read_image
from rtalign.evaluate import predict_samples
from rtalign.landmarks import MEAN_SHAPE, landmark_box, mirror_points
from rtalign.metrics import nme_per_face
from rtalign.models.cascade import (CROP_SCALE, KEYS, CascadeLandmarker, face_region, initial_shape, run_cascade,
                                    runtime_arrays, shape_features, similarity_to, to_region)
from train.augment import AugmentConfig, FaceSet, augmented_crop, load_faces

log = logging.getLogger("train_cascade")

#: The runtime's starts: the box itself on the face as it is and mirrored (dx, dy in box sides, scale;
#: mirrored or not). Measured on test_common with three models: the median of these two beats three boxes
#: moved by 4 % along a diagonal by 0.01–0.03 NME, at two thirds of the time.
START_BOXES = np.array([[0, 0, 1], [0, 0, 1]], np.float64)
START_MIRROR = np.array([False, True])
#: The cascade's mean shape: MEAN_SHAPE (centred on x = 0) made exactly left-right symmetric, so a start
#: mirrored with the landmark permutation is the same shape, and the model's answer for a mirrored face
#: is the mirror image of its answer.
START_MEAN = (MEAN_SHAPE + mirror_points(MEAN_SHAPE, 1)) / 2


def load_regions(folder, box_side):
    """Grey face regions as the runtime reads them from the ground-truth boxes (the boxes `rtalign eval`
    gives), and the points in region pixels."""
    regions, points = [], []
    for sample in list_samples(folder):
        region, n, origin = face_region(read_image(sample.image), landmark_box(sample.points), box_side)
        regions.append(region)
        points.append(to_region(sample.points, n, origin))
    return regions, np.stack(points).astype(np.float64)


def sample_pixels(rng, n_px: int, n_pairs: int, radius: float):
    """Pixel anchors/offsets in a disc around landmarks, and pairs that favour nearby pixels (as ERT).

    (Pixels spread over the whole face box with nearest-landmark anchors, dlib's way, measured
    0.3–0.4 NME worse here.)"""
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


def similarities(mean, shapes):
    """(a, b) of the least-squares similarity mean → shape for each of (N, 68, 2) shapes, as columns
    (N, 1): the runtime's own `similarity_to`, so training and runtime move shapes identically."""
    ab = np.array([similarity_to(mean, shape) for shape in shapes])
    return ab[:, :1], ab[:, 1:]


def to_mean_frame(mean, shapes, targets):
    """(targets − shapes) rotated and scaled into the mean-shape frame of each shape: (N, 136)."""
    a, b = similarities(mean, shapes)
    d = targets - shapes
    inv = 1.0 / (a * a + b * b)
    out = np.empty((len(shapes), 136))
    out[:, 0::2] = (a * d[..., 0] + b * d[..., 1]) * inv
    out[:, 1::2] = (-b * d[..., 0] + a * d[..., 1]) * inv
    return out


def apply_delta(mean, shapes, delta):
    """Move shapes in place by mean-frame corrections (N, 136), the inverse of to_mean_frame."""
    a, b = similarities(mean, shapes)
    shapes[..., 0] += a * delta[:, 0::2] - b * delta[:, 1::2]
    shapes[..., 1] += b * delta[:, 0::2] + a * delta[:, 1::2]


#: Leaves are stored as int16 multiples of a per-stage, per-output step: 1/LEAF_LEVELS of the stage's
#: largest leaf × rate (half the memory of float32: the trees stay in cache). The leaves are rounded once
#: the stage's trees are all fitted; rounding each tree as it was fitted, so later trees saw it, measured
#: 0.03–0.1 NME worse at every stage of a paired run (for no reason found), so it is not done.
LEAF_LEVELS = 32767


def fit_stage(X, target, n_trees, depth, max_features, min_leaf, rate, seed):
    """Boost regression trees on `target` (N, k); returns the trees and their summed, shrunk prediction."""
    left = target.copy()
    trees = []
    for t in range(n_trees):
        tree = DecisionTreeRegressor(max_depth=depth, max_features=max_features, min_samples_leaf=min_leaf,
                                     splitter="random", random_state=seed * 100_003 + t).fit(X, left)
        left -= rate * tree.predict(X)
        trees.append(tree.tree_)
    return trees, target - left


def round_leaves(trees, rate: float) -> np.ndarray:
    """Round one stage's tree values, in place, to what the file stores: leaves × rate in whole int16 units
    of the returned step (k,) (see LEAF_LEVELS), so the trees are exactly the exported model. Each tree
    moves by at most half a unit: 1/65,534 of the stage's largest leaf × rate."""
    top = rate * np.max([np.abs(t.value[:, :, 0]).max(0) for t in trees], axis=0)
    step = np.where(top > 0, top / LEAF_LEVELS, 1.0)
    for t in trees:
        value = t.value[:, :, 0]                   # a view into the tree
        value[:] = np.rint(value * rate / step) * step / rate
    return step


def training_starts(rng, faces, n_starts, shape_share, box_side, augment, jitter):
    """Every face's starts: its image (augmented, except the first two: as stored and mirrored), the
    target points in it, and a start shape (the mean, or another face's shape) in a jittered box."""
    mean = START_MEAN
    crop_size = round(CROP_SCALE * box_side)
    images, gts, starts = [], [], []
    for img, pts in zip(faces.images, faces.points):
        for s in range(n_starts):
            if s == 0:
                image, g = img, pts
            elif s == 1:
                image, g = np.ascontiguousarray(img[:, ::-1]), mirror_points(pts, img.shape[1])
            else:
                image, g = augmented_crop(img, pts, CROP_SCALE, crop_size, augment, rng)
            box = landmark_box(g)
            side = max(box[2] - box[0], box[3] - box[1])
            c = (box[:2] + box[2:]) / 2 + rng.uniform(-jitter, jitter, 2) * side
            half = (box[2:] - box[:2]) / 2 * rng.uniform(1 - jitter, 1 + jitter)
            template = mean if s < 2 or rng.random() >= shape_share else faces.points[rng.integers(len(faces.points))]
            images.append(image)
            gts.append(g)
            starts.append(initial_shape(template.astype(np.float64), np.concatenate([c - half, c + half])))
    return images, np.stack(gts).astype(np.float64), np.stack(starts)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--stages", type=int, default=30)
    ap.add_argument("--trees", type=int, default=200, help="trees per stage")
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--rate", type=float, default=0.1, help="learning rate (shrinkage) of each tree")
    ap.add_argument("--min-leaf", type=int, default=1)
    ap.add_argument("--max-features", type=int, default=30, help="random split candidates per node")
    ap.add_argument("--pixels", type=int, default=800, help="pixels read per stage")
    ap.add_argument("--pairs", type=int, default=3000, help="pixel-pair differences per stage")
    ap.add_argument("--components", type=int, default=30, help="PCA components of each stage's target")
    ap.add_argument("--starts", type=int, default=20, help="initial shapes per face")
    ap.add_argument("--shape-share", type=float, default=0.5, help="share of starts from other faces' shapes")
    ap.add_argument("--rotation", type=float, default=15.0, help="augmentation: rotation range (degrees)")
    ap.add_argument("--occlude", type=float, default=0.1, help="augmentation: share of starts with an occluder")
    ap.add_argument("--radius", type=float, default=0.3, help="first stage's pixel radius (inter-ocular units)")
    ap.add_argument("--decay", type=float, default=0.94, help="pixel radius factor from one stage to the next")
    ap.add_argument("--jitter", type=float, default=0.06, help="start box jitter: centre and scale, box sides")
    ap.add_argument("--limit", type=int, default=0,
                    help="train on this many training faces drawn at random (quick runs, learning curves)")
    ap.add_argument("--limit-seed", type=int, default=0, help="which random subset --limit draws")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    rng = np.random.default_rng(args.seed)
    t_start = time.time()

    faces = load_faces(data_root() / "train")
    if args.limit:
        keep = np.sort(np.random.default_rng(args.limit_seed).permutation(len(faces.images))[: args.limit])
        faces = FaceSet(faces.images[keep], faces.points[keep], [faces.names[i] for i in keep])
    box_side = float(np.median(np.ptp(faces.points, axis=1).max(1)))   # the model reads faces at the stored scale
    augment = AugmentConfig(rotation_deg=args.rotation, scale=(0.9, 1.1), shift=0.03, p_occlude=args.occlude)
    pool, gts, shapes = training_starts(rng, faces, args.starts, args.shape_share, box_side, augment,
                                         args.jitter)
    test_images, test_points = load_regions(data_root() / "test_common", box_side)
    mean = START_MEAN
    test_shapes = np.stack([initial_shape(mean, landmark_box(p)) for p in test_points])
    log.info("%d training starts from %d faces", len(shapes), len(faces.images))

    stages = []
    for stage in range(args.stages):
        radius = args.radius * args.decay ** stage
        anchor, offset, pair = sample_pixels(rng, args.pixels, args.pairs, radius)
        X = np.empty((len(shapes), args.pairs), np.float32)
        for n in range(len(shapes)):
            shape_features(pool[n], shapes[n], mean, anchor, offset, pair, X[n])
        R = to_mean_frame(mean, shapes, gts)
        mu = R.mean(0)
        _, _, vt = np.linalg.svd(R - mu, full_matrices=False)
        basis = vt[: args.components]
        trees, fitted = fit_stage(X, (R - mu) @ basis.T, args.trees, args.depth, args.max_features, args.min_leaf,
                                  args.rate, args.seed * 1000 + stage)
        apply_delta(mean, shapes, mu + fitted @ basis)
        stages.append(Stage(anchor, offset, pair, basis, mu, trees, args.rate, round_leaves(trees, args.rate)))
        run_all(export_arrays(mean, stages[-1:], box_side), test_images, test_shapes)
        log.info("stage %d (radius %.3f): train NME %.3f %%, test_common NME %.3f %%, %.1f min", stage, radius,
                 nme_per_face(gts, shapes).mean(), nme_per_face(test_points, test_shapes).mean(),
                 (time.time() - t_start) / 60)

    np.savez_compressed(args.out, **export_arrays(mean, stages, box_side))
    gt, pred = predict_samples(CascadeLandmarker(args.out), list_samples(data_root() / "test_common"))
    log.info("test_common NME %.3f %% (%d starts, median), file %.1f MB, %.1f min", nme_per_face(gt, pred).mean(),
             len(START_BOXES), args.out.stat().st_size / 1e6, (time.time() - t_start) / 60)


@dataclass
class Stage:
    """One fitted stage: where it reads pixels, its target basis, its trees, their learning rate, and the
    int16 unit of their leaves × rate (see `round_leaves`)."""
    anchor: np.ndarray
    offset: np.ndarray
    pair: np.ndarray
    basis: np.ndarray
    basis_mean: np.ndarray
    trees: list
    rate: float
    step: np.ndarray


def complete_tree(tree, depth: int, rate: float, step: np.ndarray):
    """A scikit-learn tree as a complete tree of `depth` (inner features and thresholds, 2^depth leaf rows
    × rate in int16 units of `step`, exact after `round_leaves`): a leaf above the last level
    becomes inner nodes that always go left (threshold +inf), with its value copied to every leaf below it."""
    n_inner = 2 ** depth - 1
    feature = np.zeros(n_inner, np.int32)
    threshold = np.full(n_inner, np.inf, np.float32)
    value = np.empty((2 ** depth, tree.value.shape[1]), np.int16)
    stack = [(0, 0, 0)]                           # (sklearn node, implicit index, level)
    while stack:
        node, i, level = stack.pop()
        if level == depth:
            value[i - n_inner] = np.rint(tree.value[node, :, 0] * rate / step)
            continue
        leaf = tree.children_left[node] == -1
        if not leaf:  # the largest float32 ≤ the float64 threshold keeps every float32 comparison exact
            t32 = np.float32(tree.threshold[node])
            feature[i] = tree.feature[node]
            threshold[i] = np.nextafter(t32, np.float32(-np.inf)) if t32 > tree.threshold[node] else t32
        stack.append((node if leaf else tree.children_left[node], 2 * i + 1, level + 1))
        stack.append((node if leaf else tree.children_right[node], 2 * i + 2, level + 1))
    return feature, threshold, value


def used_features(anchor, offset, pair, feature, threshold):
    """One stage cut down to the pixel pairs its trees visit (and the pixels those pairs read), with the
    trees' feature indices renumbered: the runtime computes no feature nobody reads."""
    inner = np.isfinite(threshold)
    used = np.unique(feature[inner])
    px = np.unique(pair[used])
    feature = np.where(inner, np.searchsorted(used, feature), 0).astype(np.int32)
    return anchor[px], offset[px], np.searchsorted(px, pair[used]), feature


def export_arrays(mean, stages, box_side) -> dict:
    """The stages as the evaluator's arrays (layout in rtalign.models.cascade)."""
    depth = max(t.max_depth for st in stages for t in st.trees)
    anchors, offsets, pairs, features, thresholds, values = [], [], [], [], [], []
    for st in stages:
        trees = [complete_tree(t, depth, st.rate, st.step) for t in st.trees]
        threshold = np.stack([t[1] for t in trees])
        anchor, offset, pair, feature = used_features(st.anchor, st.offset, st.pair, np.stack([t[0] for t in trees]),
                                                      threshold)
        anchors.append(anchor); offsets.append(offset); pairs.append(pair); features.append(feature)
        thresholds.append(threshold); values.append(np.stack([t[2] for t in trees]))
    pad = lambda arrays: np.stack([np.pad(a, [(0, max(map(len, arrays)) - len(a))] + [(0, 0)] * (a.ndim - 1))
                                   for a in arrays])   # stages share one array: pad with pixel 0 / pair (0, 0)
    arrays = {
        "mean_shape": mean, "anchor": pad(anchors), "offset": pad(offsets), "pair": pad(pairs),
        "feature": np.concatenate(features), "threshold": np.concatenate(thresholds), "value": np.concatenate(values),
        "leaf_step": np.stack([s.step for s in stages]), "basis": np.stack([s.basis for s in stages]),
        "basis_mean": np.stack([s.basis_mean for s in stages]),
        "stage_trees": np.array([len(s.trees) for s in stages], np.int64), "box_side": np.array(float(box_side)),
        "start_boxes": START_BOXES, "start_mirror": START_MIRROR,
    }
    assert set(arrays) == set(KEYS)
    return arrays


def run_all(arrays, images, shapes):
    """Run a cascade's stages on faces, moving `shapes` (N, 68, 2) in place."""
    args = runtime_arrays(arrays)
    for img, shape in zip(images, shapes):
        run_cascade(img, shape, arrays["mean_shape"], *args)


if __name__ == "__main__":
    main()
