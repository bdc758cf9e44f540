"""Colour strings users type (CSS names, #rrggbb) → BGR triples."""
from __future__ import annotations

from PIL import ImageColor

from .errors import InputError


def parse_color(text: str) -> tuple[int, int, int]:
    """A CSS colour name ("crimson") or hex ("#b0306a", "#f00") as a BGR tuple.

    Raises:
        InputError: the string is neither.
    """
    try:
        r, g, b = ImageColor.getrgb(text.strip())[:3]
    except (ValueError, AttributeError):
        raise InputError(f"bad colour {text!r}: use a CSS colour name such as 'crimson' or a hex value '#rrggbb'") from None
    return b, g, r
