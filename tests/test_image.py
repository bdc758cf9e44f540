"""`process_image` on a real group photo: every face by default, and a word when --max-faces leaves some out."""
import logging

import cv2
import numpy as np

from rtalign.effects import Recolor
from rtalign.image import process_image


def test_every_face_by_default_and_a_warning_when_capped(astronaut, tmp_path, caplog):
    face = cv2.resize(astronaut, (400, 400))
    group = tmp_path / "group.png"
    cv2.imwrite(str(group), np.hstack([face] * 3))
    with caplog.at_level(logging.WARNING, logger="rtalign.image"):
        assert process_image(group, tmp_path / "all.png", draw="none", effects=[Recolor(lip_color="crimson")]) == 3
    assert not caplog.records
    with caplog.at_level(logging.WARNING, logger="rtalign.image"):
        assert process_image(group, tmp_path / "two.png", draw="none", max_faces=2) == 2
    assert "3 faces found" in caplog.text and "largest 2" in caplog.text
