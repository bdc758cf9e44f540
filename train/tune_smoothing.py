"""Choose the One Euro defaults by measurement, on stability clips (as the bench makes them) of
faces drawn from `train` with a fixed seed: test_common only reports figures, it never chooses.

    python -m train.tune_smoothing --model resnet

The networks saw these training faces, so raw jitter on them is lower than on new faces; what
the grid needs is the ranking of settings, which is about the filter, not the face.

Smoothing only post-processes the tracker's output (boxes follow the raw landmarks), so the raw
tracks are recorded once and every (min_cutoff, beta) pair is replayed on them. Prints the grid
and the setting with the least static jitter whose motion NME rises by at most --max-rise; then, for the
shipped min_cutoff and beta, a grid of max_lag (the bound on how far a point trails its raw one) with the
mouth points' offset on fast clips (FAST_AMPLITUDE) against static jitter.
"""
import argparse

import numpy as np

from rtalign.bench.stability import FAST_AMPLITUDE, FPS, jitter, make_clip, mouth_offset, track_clip
from rtalign.data import data_root, list_samples
from rtalign.metrics import nme_per_face
from rtalign.models import load_model
from rtalign.smoothing import FaceSmoother, OneEuroOptions
from rtalign.tracking import FaceTracker
from rtalign.types import FaceLandmarks


def smooth_track(pred, opts):
    """One recorded track (T, 68, 2) through the tracker's own smoother with `opts`."""
    smoother = FaceSmoother(opts)
    box, track_id = np.zeros((1, 4)), np.zeros(1, np.int64)
    return np.stack([smoother.update(FaceLandmarks(p[None], box, track_id=track_id), i / FPS).xy[0]
                     for i, p in enumerate(pred)])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="resnet")
    ap.add_argument("--faces", type=int, default=20)
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--max-rise", type=float, default=0.05, help="allowed relative rise of motion NME")
    ap.add_argument("--seed", type=int, default=0, help="which training faces are drawn")
    args = ap.parse_args()
    model = load_model(args.model)
    samples = list_samples(data_root() / "train")
    samples = [samples[i] for i in np.random.default_rng(args.seed).choice(len(samples), args.faces, replace=False)]
    tracks = {False: [], True: [], "fast": []}
    for k, s in enumerate(samples):
        for kind in tracks:
            clip = make_clip(s, args.frames, bool(kind), seed=k, amplitude=FAST_AMPLITUDE if kind == "fast" else 1.0)
            pred = track_clip(lambda: FaceTracker(model, smoothing=None), clip)
            if pred is not None:
                tracks[kind].append((pred, clip.truth))
    base = np.mean([nme_per_face(g, p).mean() for p, g in tracks[True]])
    print(f"raw: static jitter {np.mean([jitter(p, g)[0] for p, g in tracks[False]]):.3f}, motion NME {base:.3f}")
    best = None
    for min_cutoff in (0.1, 0.2, 0.3, 0.5, 1.0, 2.0):
        for beta in (0.0, 1.0, 3.0, 10.0, 30.0, 100.0):
            o = OneEuroOptions(min_cutoff, beta)
            static = np.mean([jitter(smooth_track(p, o), g)[0] for p, g in tracks[False]])
            moved = [smooth_track(p, o) for p, _ in tracks[True]]
            motion_nme = np.mean([nme_per_face(g, m).mean() for m, (_, g) in zip(moved, tracks[True])])
            motion_jit = np.mean([jitter(m, g)[1] for m, (_, g) in zip(moved, tracks[True])])
            ok = motion_nme <= base * (1 + args.max_rise)
            print(f"min_cutoff {min_cutoff:4} beta {beta:5}: static {static:.3f} motion jitter {motion_jit:.3f} "
                  f"motion NME {motion_nme:.3f}{'' if ok else '  (too much lag)'}")
            if ok and (best is None or static < best[0]):
                best = (static, min_cutoff, beta)
    print(f"choice: min_cutoff {best[1]}, beta {best[2]} (static jitter {best[0]:.3f})")
    lag_grid(tracks)


def lag_grid(tracks):
    """Static jitter, motion NME and the fast clips' mouth offset (p95, max; % inter-ocular) per max_lag."""
    fast = np.concatenate([mouth_offset(p, g) for p, g in tracks["fast"]])
    print(f"raw: fast mouth offset p95 {np.percentile(fast, 95):.2f} max {fast.max():.2f}")
    for max_lag in (None, 0.1, 0.05, 0.03, 0.02, 0.01):
        o = OneEuroOptions(max_lag=max_lag)
        static = np.mean([jitter(smooth_track(p, o), g)[0] for p, g in tracks[False]])
        motion_nme = np.mean([nme_per_face(g, smooth_track(p, o)).mean() for p, g in tracks[True]])
        fast = np.concatenate([mouth_offset(smooth_track(p, o), g) for p, g in tracks["fast"]])
        print(f"max_lag {max_lag}: static {static:.3f} motion NME {motion_nme:.3f} "
              f"fast mouth offset p95 {np.percentile(fast, 95):.2f} max {fast.max():.2f}")


if __name__ == "__main__":
    main()
