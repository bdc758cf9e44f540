"""Shared fixtures: the real 300-W folders (skipped with a reason when absent) and the real face that ships with the package."""
from pathlib import Path

import cv2
import numpy as np
import pytest

from rtalign.data import data_root, list_samples


def _folder(split: str) -> Path:
    folder = data_root() / split
    if not folder.is_dir():
        pytest.skip(f"300-W data not found at {folder} (set RTALIGN_DATA)")
    return folder


@pytest.fixture(scope="session")
def test_folder() -> Path:
    return _folder("test_common")


@pytest.fixture(scope="session")
def test_samples(test_folder):
    return list_samples(test_folder)


@pytest.fixture(scope="session")
def small_test_dir(tmp_path_factory, test_samples) -> Path:
    """A folder with links to the first 12 test faces: the CLI's real input, made small."""
    folder = tmp_path_factory.mktemp("subset")
    for s in test_samples[:12]:
        for src in (s.image, s.image.with_suffix(".pts")):
            (folder / src.name).symlink_to(src)
    return folder


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """The package's public-domain astronaut portrait (one face, 512x512), as BGR."""
    from rtalign.synth import ASSET
    return cv2.imread(str(ASSET))


@pytest.fixture(scope="session")
def astronaut_file(tmp_path_factory, astronaut) -> Path:
    path = tmp_path_factory.mktemp("img") / "astronaut.png"
    cv2.imwrite(str(path), astronaut)
    return path


@pytest.fixture(scope="session")
def face_clip(tmp_path_factory) -> Path:
    """A 640x360, 30 fps, 45-frame H.264 clip of a real face drifting, with an AAC track."""
    from rtalign.synth import demo_clip
    path = tmp_path_factory.mktemp("clips") / "face.mp4"
    demo_clip(path, n_frames=45, size=(640, 360), fps=30.0, seed=1)
    return path
