"""Fixed-memory samples of per-frame timings, so a live run of any length keeps its statistics bounded."""
from __future__ import annotations

import random

import numpy as np


class Reservoir:
    """A uniform random sample of at most `size` values from a stream of any length (Vitter's algorithm R).

    Until `size` values have arrived it holds all of them; after that each new value replaces a
    random one with probability size / count, so the sample's median and percentiles estimate the
    whole run's (not just its recent frames). `append` is the list method the runner calls.
    """

    def __init__(self, size: int = 4096, seed: int = 0):
        self.size, self.count = size, 0
        self._values = np.empty(size, np.float64)
        self._rng = random.Random(seed)

    def append(self, value: float) -> None:
        if self.count < self.size:
            self._values[self.count] = value
        else:
            j = self._rng.randrange(self.count + 1)
            if j < self.size:
                self._values[j] = value
        self.count += 1

    def __len__(self) -> int:
        return min(self.count, self.size)

    def values(self) -> np.ndarray:
        """The sampled values (a copy), in no particular order once the reservoir is full."""
        return self._values[:len(self)].copy()
