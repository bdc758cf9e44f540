"""The validation split: faces carved from `train` with a fixed seed, so settings are chosen on faces
the model did not learn from and `test_common` is used only for the final figure."""
from __future__ import annotations

import numpy as np

from train.augment import FaceSet


def validation_split(faces: FaceSet, share: float, seed: int) -> tuple[FaceSet, FaceSet]:
    """(training faces, validation faces): round(share × N) faces drawn by `seed`, both in file order.

    The same faces, share and seed always give the same split (it is recorded in checkpoints and
    exported metadata by its share and seed).
    """
    if not 0.0 <= share < 1.0:
        raise ValueError(f"validation share must be in [0, 1), got {share}")
    n = len(faces.images)
    val = np.zeros(n, bool)
    val[np.random.default_rng(seed).permutation(n)[: round(share * n)]] = True
    pick = lambda mask: FaceSet(faces.images[mask], faces.points[mask], [m for m, keep in zip(faces.names, mask) if keep])
    return pick(~val), pick(val)
