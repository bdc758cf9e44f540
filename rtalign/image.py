"""`rtalign image`: one photo in, the annotated photo out."""
from __future__ import annotations

import logging
from pathlib import Path

from .align import FaceAligner
from .data import read_image
from .errors import InputError
from .io_safety import check_output, write_image_atomic
from .render import annotator_for

log = logging.getLogger(__name__)


def process_image(src, dst, model="resnet", device="cpu", threads=2, draw="points", max_faces=None,
                  effects=()) -> int:
    """Find faces in `src`, draw them (and apply `effects`) and write `dst`. Returns the face count.

    Every face is processed unless `max_faces` caps them (the largest first); faces left out that
    way are reported with a warning, never skipped silently.

    Raises:
        InputError: unreadable input, no face found, or a bad output path.
    """
    src, dst = Path(src), Path(dst)
    check_output(src, dst)
    image = read_image(src)
    aligner = FaceAligner(model, max_faces, device, threads)
    boxes = aligner.detector.detect(image)
    if max_faces is not None and len(boxes) > max_faces:
        log.warning("%d faces found in %s; processing the largest %d (--max-faces)", len(boxes), src, max_faces)
        boxes = boxes[:max_faces]
    faces = aligner.align(image, boxes)
    if len(faces) == 0:
        raise InputError(f"no face found in {src}")
    out = image.copy()
    for effect in effects:
        out = effect.annotate(out, faces)
    annotator = annotator_for(draw)
    if annotator is not None:
        out = annotator.annotate(out, faces)
    write_image_atomic(dst, out)
    return len(faces)
