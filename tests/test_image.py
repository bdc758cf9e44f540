"""The photo path on real files: every face by default, transparency kept or shown over white, the pixel
limit on every format, wide greys, colour profiles, animations, and Pillow's warnings kept off stderr."""
import logging
import struct
import warnings
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from rtalign.effects import Recolor
from rtalign.errors import InputError
from rtalign.image import load_image, process_image


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


def _rgba(bgr: np.ndarray, alpha: np.ndarray) -> Image.Image:
    return Image.fromarray(np.dstack([cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), alpha]))


def test_a_cut_out_keeps_its_alpha_in_png_and_lies_on_white_in_jpeg(astronaut, tmp_path):
    alpha = np.zeros(astronaut.shape[:2], np.uint8)
    alpha[48:464, 48:464] = 255                         # the portrait opaque in a transparent frame
    hidden = astronaut.copy()
    hidden[alpha == 0] = 0                              # the frame's hidden colour: black
    src = tmp_path / "cut.png"
    _rgba(hidden, alpha).save(src)
    assert process_image(src, tmp_path / "o.png", effects=[Recolor(lip_color="crimson")]) == 1
    png = cv2.imread(str(tmp_path / "o.png"), cv2.IMREAD_UNCHANGED)
    assert png.shape == (512, 512, 4) and np.array_equal(png[:, :, 3], alpha)
    assert not np.array_equal(png[:, :, :3], hidden)    # drawn and recoloured, under the same alpha
    assert process_image(src, tmp_path / "o.jpg", draw="none") == 1
    jpg = cv2.imread(str(tmp_path / "o.jpg"))
    assert jpg[:40].min() > 240 and jpg[100:200, 150:300].mean() < 200   # white frame, the face as it was


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P"])
def test_transparency_is_read_as_bgra_or_shown_over_white(tmp_path, mode, recwarn):
    alpha = np.tile(np.uint8([0, 255]), (8, 4))         # columns alternately transparent and opaque
    src = tmp_path / f"{mode}.png"
    if mode == "P":                                     # index 0 transparent, 1 opaque, both dark grey
        im = Image.frombytes("P", (8, 8), (alpha // 255).tobytes())
        im.putpalette([40, 40, 40] * 2)
        im.save(src, transparency=bytes([0, 255]))      # Pillow warns on these bytes when it converts to RGB
    else:
        grey = np.full((8, 8, 3 if mode == "RGBA" else 1), 40, np.uint8)
        Image.fromarray(np.dstack([grey, alpha])).save(src)
    bgra = load_image(src, alpha=True)
    assert bgra.shape == (8, 8, 4) and np.array_equal(bgra[:, :, 3], alpha) and (bgra[:, 1::2, :3] == 40).all()
    shown = load_image(src)
    assert shown.shape == (8, 8, 3) and (shown[:, ::2] == 255).all() and (shown[:, 1::2] == 40).all()
    assert not recwarn.list


def test_faces_are_looked_for_in_what_the_user_sees(astronaut, tmp_path):
    face = cv2.resize(astronaut, (400, 400))
    alpha = np.zeros((400, 800), np.uint8)
    alpha[:, :400] = 255                                # a second copy hides under transparent pixels
    src = tmp_path / "one_visible.png"
    _rgba(np.hstack([face, face]), alpha).save(src)
    assert process_image(src, tmp_path / "o.png", draw="none") == 1


def _png_header(width: int, height: int) -> bytes:
    ihdr = b"IHDR" + struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + ihdr + struct.pack(">I", zlib.crc32(ihdr))
            + struct.pack(">I", 10000) + b"IDAT")


@pytest.mark.parametrize("name,header", [
    ("huge.hdr", b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 13000 +X 13000\n"),
    ("huge.pfm", b"PF\n13000 13000\n-1.0\n"),
    ("huge.pam", b"P7\nWIDTH 13000\nHEIGHT 13000\nDEPTH 3\nMAXVAL 255\nTUPLTYPE RGB\nENDHDR\n"),
    ("huge.png", _png_header(13000, 13000)),            # Pillow's path, for the same words
])
def test_a_header_above_the_pixel_limit_is_refused_before_decoding_in_every_format(tmp_path, name, header):
    src = tmp_path / name
    src.write_bytes(header + b"\x02\x02\x32\xc8" * 2500)    # 10 kB where an RLE .hdr needs a few MB
    with pytest.raises(InputError, match=r"huge\.\w+: the image is larger than rtalign reads \(150 megapixels\)$"):
        load_image(src)


@pytest.mark.parametrize("suffix", [".hdr", ".pfm", ".pam"])
def test_small_images_in_formats_only_opencv_reads_still_load(astronaut, tmp_path, suffix):
    src = tmp_path / f"small{suffix}"
    cv2.imwrite(str(src), astronaut if suffix == ".pam" else astronaut.astype(np.float32) / 255)
    assert load_image(src).shape == astronaut.shape


def test_a_pam_header_that_could_be_read_two_ways_is_not_read(tmp_path):
    src = tmp_path / "twice.pam"                        # OpenCV takes the last WIDTH: 13000 x 13000
    src.write_bytes(b"P7\nWIDTH 1\nHEIGHT 13000\nWIDTH 13000\nDEPTH 3\nMAXVAL 255\nENDHDR\n" + bytes(64))
    with pytest.raises(InputError, match="not a readable image"):
        load_image(src)


@pytest.mark.parametrize("values", [
    np.arange(256, dtype=np.int32),                     # "I" holding 8-bit values
    np.arange(256, dtype=np.int32) * 257,               # "I" holding 16-bit values
    np.arange(256, dtype=np.float32) / 255,             # "F" within 0-1
    np.arange(256, dtype=np.float32),                   # "F" within 0-255
])
def test_wide_grey_images_are_scaled_by_the_range_they_use(tmp_path, values):
    src = tmp_path / "grey.tif"
    Image.fromarray(values.reshape(16, 16)).save(src)
    expected = np.arange(256).reshape(16, 16, 1)
    assert np.abs(load_image(src).astype(int) - expected).max() <= 1


def _linear_rgb_profile() -> bytes:
    """An ICC v2 profile of linear-light RGB with sRGB's primaries (no files needed): its mid-grey 128 is
    sRGB 188, so a conversion shows plainly."""
    def xyz(*v):
        return b"XYZ \0\0\0\0" + b"".join(struct.pack(">i", round(x * 65536)) for x in v)
    linear = b"curv\0\0\0\0" + struct.pack(">I", 0)    # a curve of no points: identity
    tags = {b"wtpt": xyz(0.9642, 1.0, 0.8249), b"rXYZ": xyz(0.4361, 0.2225, 0.0139),
            b"gXYZ": xyz(0.3851, 0.7169, 0.0971), b"bXYZ": xyz(0.1431, 0.0606, 0.7141),
            b"rTRC": linear, b"gTRC": linear, b"bTRC": linear}
    start, table, body = 128 + 4 + 12 * len(tags), b"", b""
    for sig, data in tags.items():
        table += sig + struct.pack(">II", start + len(body), len(data))
        body += data + bytes(-len(data) % 4)
    header = (struct.pack(">I", start + len(body)) + bytes(4) + struct.pack(">I", 0x02100000) + b"mntrRGB XYZ "
              + bytes(12) + b"acsp" + bytes(28) + xyz(0.9642, 1.0, 0.8249)[8:] + bytes(48))
    return header + struct.pack(">I", len(tags)) + table + body


def test_an_embedded_colour_profile_is_converted_to_srgb_and_a_broken_one_ignored(tmp_path, caplog):
    grey = Image.new("RGB", (8, 8), (128, 128, 128))
    grey.save(tmp_path / "linear.jpg", icc_profile=_linear_rgb_profile(), quality=100)
    grey.save(tmp_path / "broken.png", icc_profile=b"not a colour profile")
    assert np.abs(load_image(tmp_path / "linear.jpg").astype(int) - 188).max() <= 1
    with caplog.at_level(logging.DEBUG, logger="rtalign.image"):
        assert (load_image(tmp_path / "broken.png") == 128).all()
    assert "colour profile not applied" in caplog.text


@pytest.mark.parametrize("fmt,video", [("GIF", True), ("WEBP", False), ("TIFF", False)])
def test_the_first_frame_of_an_animation_is_used_and_said(tmp_path, caplog, fmt, video):
    frames = [Image.new("RGB", (16, 16), (v, v, v)) for v in (0, 120, 240)]
    src = tmp_path / f"anim.{fmt.lower()}"
    frames[0].save(src, fmt, save_all=True, append_images=frames[1:])
    with caplog.at_level(logging.WARNING, logger="rtalign.image"):
        assert load_image(src).max() < 10               # the first, black frame
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert str(src) in caplog.text and "3 frames" in caplog.text and "first" in caplog.text
    assert ("`rtalign video` reads" in caplog.text) == video     # PyAV decodes GIF, not WebP or TIFF pages


def test_a_photo_carrying_more_pictures_is_read_without_a_warning(tmp_path, caplog):
    src = tmp_path / "phone.jpg"                        # MPO: a camera's photo with a preview or depth map
    Image.new("RGB", (16, 16), "grey").save(src, "MPO", save_all=True, append_images=[Image.new("RGB", (8, 8))])
    with caplog.at_level(logging.WARNING, logger="rtalign.image"):
        assert load_image(src).shape == (16, 16, 3)
    assert not caplog.records


def test_pillow_warnings_go_to_the_debug_log_and_the_filters_stay(tmp_path, recwarn, caplog):
    exif = b"II*\x00" + struct.pack("<IHHHIII", 8, 1, 0x010E, 2, 1000, 1000, 0)   # tag 270's text past the end
    src = tmp_path / "bad_exif.jpg"
    Image.new("RGB", (16, 16), "grey").save(src, exif=b"Exif\x00\x00" + exif)
    filters = list(warnings.filters)
    with caplog.at_level(logging.DEBUG, logger="rtalign.image"):
        assert load_image(src).shape == (16, 16, 3)
    assert not recwarn.list and "tag 270" in caplog.text and warnings.filters == filters


def test_a_dark_16_bit_pgm_stays_dark(tmp_path):
    # Pillow reads 16-bit PGM/PPM as "I" scaled to 0-65535, so values under 256 are dark, not 8-bit
    import cv2
    import numpy as np
    from rtalign.image import load_image
    dark = np.full((20, 20), 200, np.uint16)
    cv2.imwrite(str(tmp_path / "dark.pgm"), dark)
    cv2.imwrite(str(tmp_path / "dark.png"), dark)
    assert load_image(tmp_path / "dark.pgm").max() == load_image(tmp_path / "dark.png").max() == 1
