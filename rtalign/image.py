"""`rtalign image`: one photo in, the annotated photo out. Files go through bytes (np.fromfile +
cv2.imdecode, cv2.imencode + write), so any name the OS accepts works, UTF-8 or not."""
from __future__ import annotations

import io
import warnings
from pathlib import Path

import cv2
import numpy as np

from .errors import InputError, shown
from .io_safety import check_input_file, check_output, write_bytes_atomic

#: Images larger than this many pixels are refused before decoding (a header can claim 60000x60000).
MAX_PIXELS = 1 << 28
#: Formats that take only one channel: the picture is written in grey.
_GREY_ONLY = {".pgm", ".pbm"}


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


def _header_pixels(data: np.ndarray) -> int:
    """Pixels the file header claims, read without decoding them (Pillow); 0 if it cannot tell."""
    from PIL import Image, UnidentifiedImageError
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data.tobytes())) as im:
                return im.size[0] * im.size[1]
        except Image.DecompressionBombError:
            return MAX_PIXELS + 1
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError):
            return 0


def load_image(path) -> np.ndarray:
    """Read a photo as BGR uint8, with one clear error for every way a file can be unusable.

    Raises:
        InputError: missing, a folder or device, not an image, or larger than MAX_PIXELS.
    """
    check_input_file(path, "image")
    try:
        data = np.fromfile(path, np.uint8)
    except OSError as e:
        raise InputError(f"cannot read {shown(path)}: {e.strerror}") from None
    if _header_pixels(data) > MAX_PIXELS:
        raise InputError(f"{shown(path)}: the image is larger than rtalign reads ({MAX_PIXELS >> 20} megapixels)")
    try:
        image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    except (cv2.error, MemoryError):
        image = None
    if image is None or image.size == 0:
        raise InputError(f"not a readable image: {shown(path)}")
    return image


def save_image(dst, image: np.ndarray) -> None:
    """Encode by the extension of `dst` and write it atomically (a temporary file, then a rename)."""
    check_image_output(dst)
    suffix = Path(dst).suffix.lower()
    if suffix in _GREY_ONLY and image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    try:
        ok, buf = cv2.imencode(suffix, image)
    except cv2.error:
        ok = False
    if not ok:
        raise InputError(f"cannot encode {image.shape[1]}x{image.shape[0]} image as {suffix} ({shown(dst)})")
    write_bytes_atomic(dst, buf.tobytes())


def process_image(src, dst, model="resnet", device="cpu", threads=2, draw="points", max_faces=4,
                  effects=()) -> int:
    """Find faces in `src`, draw them (and apply `effects`) and write `dst`. Returns the face count.

    Raises:
        InputError: unreadable input, no face found, or a bad output path.
    """
    from .align import FaceAligner
    from .render import annotator_for

    src, dst = Path(src), Path(dst)
    check_output(src, dst)
    check_image_output(dst)
    image = load_image(src)
    faces = FaceAligner(model, max_faces=max_faces, device=device, threads=threads).align(image)
    if len(faces) == 0:
        raise InputError(f"no face found in {shown(src)}")
    out = image.copy()
    for effect in effects:
        out = effect.annotate(out, faces)
    annotator = annotator_for(draw)
    if annotator is not None:
        out = annotator.annotate(out, faces)
    save_image(dst, out)
    return len(faces)
