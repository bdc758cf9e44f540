"""`rtalign image`: one photo in, the annotated photo (and/or its landmarks as data) out. Files go
through bytes (read + decode, cv2.imencode + write), so any name the OS accepts works, UTF-8 or not."""
from __future__ import annotations

from contextlib import nullcontext
import io
import logging
import struct
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from .errors import InputError, shown
from .export import open_writer
from .io_safety import check_input_file, check_output, write_bytes_atomic

if TYPE_CHECKING:
    from .align import FaceAligner

#: Images larger than this many pixels are refused before decoding (a header can claim 60000x60000);
#: below Pillow's own decompression-bomb limit (about 179 million).
MAX_PIXELS = 150_000_000
#: Formats that take only one channel: the picture is written in grey.
_GREY_ONLY = {".pgm", ".pbm"}
#: First bytes of PNG, JPEG, GIF, BMP, TIFF and WebP files, which Pillow decodes.
_PILLOW_SIGNATURES = (b"\x89PNG", b"\xff\xd8", b"GIF8", b"BM", b"II*\x00", b"MM\x00*", b"RIFF")

log = logging.getLogger(__name__)

def check_image_output(dst) -> None:
    """Refuse, before any work, an output whose extension OpenCV cannot write."""
    suffix = Path(dst).suffix.lower()
    try:
        ok = bool(suffix) and cv2.haveImageWriter("x" + suffix)
    except cv2.error:  # a codec compiled in but disabled (OpenEXR) raises instead of answering
        ok = False
    if not ok:
        raise InputError(f"cannot write images as {suffix or 'a file without extension'!s} ({shown(dst)}); "
                         "use .png (lossless), .jpg, .webp, .bmp, .tif or another format OpenCV writes")


def _to_bgr(im) -> np.ndarray:
    """A decoded Pillow image as BGR uint8: 16-bit and float greys scaled down, palettes and alpha resolved."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        grey = (np.asarray(im, np.uint32) >> 8).clip(0, 255).astype(np.uint8)
    elif im.mode == "F":
        grey = np.asarray(im).clip(0, 255).astype(np.uint8)
    else:
        return cv2.cvtColor(np.asarray(im.convert("RGB")), cv2.COLOR_RGB2BGR)
    return cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)


def _decode(data: bytes, path) -> np.ndarray:
    """Pillow first: it is quiet about damaged files (libpng and libjpeg inside OpenCV print to stderr),
    refuses truncated ones, and applies the EXIF orientation phones write. OpenCV for formats only it reads."""
    from PIL import Image, ImageOps, UnidentifiedImageError
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                if im.size[0] * im.size[1] > MAX_PIXELS:
                    raise Image.DecompressionBombError
                return _to_bgr(ImageOps.exif_transpose(im))
    except Image.DecompressionBombError:
        raise InputError(f"{shown(path)}: the image is larger than rtalign reads ({MAX_PIXELS // 10**6} megapixels)") \
            from None
    except UnidentifiedImageError:
        if data.startswith(_PILLOW_SIGNATURES):      # a format Pillow reads, too damaged to identify
            raise InputError(f"not a readable image: {shown(path)}") from None
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError, struct.error, ZeroDivisionError) as e:
        raise InputError(f"not a readable image: {shown(path)} ({e})") from None
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    except (cv2.error, MemoryError):
        image = None
    if image is None or image.size == 0:
        raise InputError(f"not a readable image: {shown(path)}")
    return image


def load_image(path) -> np.ndarray:
    """Read a photo as BGR uint8, upright by its EXIF orientation, with one clear error for every way a
    file can be unusable.

    Raises:
        InputError: missing, a folder or device, not an image, damaged, or larger than MAX_PIXELS.
    """
    check_input_file(path, "image")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise InputError(f"cannot read {shown(path)}: {e.strerror}") from None
    return _decode(data, path)


def save_image(dst, image: np.ndarray) -> None:
    """Encode by the extension of `dst` and write it atomically (a temporary file, then a rename)."""
    check_image_output(dst)
    suffix = Path(dst).suffix.lower()
    if suffix in _GREY_ONLY and image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if suffix == ".pbm":    # one bit a pixel: OpenCV keeps only pixels at exactly 0 black; dither instead
        from PIL import Image
        image = np.asarray(Image.fromarray(image).convert("1"), np.uint8) * np.uint8(255)
    try:
        ok, buf = cv2.imencode(suffix, image)
    except cv2.error:
        ok = False
    if not ok:
        raise InputError(f"cannot encode {image.shape[1]}x{image.shape[0]} image as {suffix} ({shown(dst)})")
    write_bytes_atomic(dst, buf.tobytes())


def annotate_image(src, dst, aligner: FaceAligner, draw="points", effects=(), writer=None, label=None) -> int:
    """Faces of photo `src` (with head pose) drawn into `dst` and/or written as rows to `writer`
    (frame 0, time 0, `file` = `label` or the file name). Returns the face count.

    Every face is processed unless the aligner's `max_faces` caps them (the largest first); faces left
    out that way are reported with a warning, never skipped silently.

    Raises:
        InputError: unreadable input, no face found, or a bad output path.
    """
    from .detectors import detect_faces
    from .render import annotator_for

    src = Path(src)
    if dst is not None:
        check_output(src, Path(dst))
        check_image_output(dst)
    image = load_image(src)
    faces = aligner.align(image, detections=detect_faces(aligner.detector, image).largest_first())   # uncapped
    if aligner.max_faces is not None and len(faces) > aligner.max_faces:
        log.warning("%d faces found in %s; processing the largest %d (--max-faces)", len(faces), shown(src),
                    aligner.max_faces)
        faces = faces[: aligner.max_faces]
    if len(faces) == 0:
        raise InputError(f"no face found in {shown(src)}")
    if writer is not None:
        writer.write(label or src.name, 0, 0.0, faces)
    if dst is not None:
        out = image.copy()
        for effect in effects:
            out = effect.annotate(out, faces)
        annotator = annotator_for(draw)
        if annotator is not None:
            out = annotator.annotate(out, faces)
        save_image(dst, out)
    return len(faces)


def process_image(src, dst, model="resnet", device="cpu", threads=2, draw="points", max_faces=None,
                  effects=(), landmarks=None, detector=None) -> int:
    """Find faces in `src`, draw them (and apply `effects`) into `dst` (None: no image) and write their
    landmarks and head pose to the `landmarks` file (.csv/.jsonl/.parquet, optional). Returns the face count.
    `detector`: a name from rtalign.detectors (None: its default) or a detector object.

    Raises:
        InputError: unreadable input, no face found, or a bad output path.
    """
    if dst is None and landmarks is None:
        raise InputError("nothing to write: give an output image and/or a landmarks file")
    if landmarks is not None:
        check_output(Path(src), Path(landmarks))
    from .align import FaceAligner
    aligner = FaceAligner(model, max_faces=max_faces, device=device, threads=threads, detector=detector)
    with open_writer(landmarks) if landmarks is not None else nullcontext() as writer:
        return annotate_image(src, dst, aligner, draw, effects, writer)
