"""Colour strings users type (CSS names, #rrggbb) → BGR triples."""
from __future__ import annotations

from PIL import ImageColor

from .errors import InputError


def parse_color(text: str) -> tuple[int, int, int]:
    """A CSS colour name ("crimson") or hex ("#b0306a", "#f00") as a BGR tuple.

    Raises:
        InputError: the string is neither, has a channel outside 0-255, or is not opaque.
    """
    try:
        rgba = ImageColor.getrgb(text.strip())
    except (ValueError, AttributeError):
        raise InputError(f"bad colour {text!r}: use a CSS colour name such as 'crimson' or a hex value '#rrggbb'") from None
    if not all(0 <= c <= 255 for c in rgba):
        raise InputError(f"bad colour {text!r}: each channel must be within 0-255")
    if len(rgba) == 4 and rgba[3] != 255:
        raise InputError(f"colour {text!r} has transparency: give an opaque colour and set its strength instead")
    r, g, b = rgba[:3]
    return b, g, r
