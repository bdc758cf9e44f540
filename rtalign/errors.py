"""The package's exceptions: one base class, so the CLI can turn any of them into one clear line."""
from __future__ import annotations

import os


class RtalignError(Exception):
    """Base of every error rtalign raises on purpose; its message is meant for the user."""


class InputError(RtalignError):
    """A file, folder or value given by the user cannot be used (missing, unreadable, malformed)."""


class TruncatedInputError(InputError):
    """The input ended early or stopped decoding; what did decode was written to `partial`. `damage`
    says how far decoding got ("30 of 45 frames decoded (reason)"); `expected` is 0 when unknown."""

    def __init__(self, message: str, done: int, expected: int, partial, damage: str = ""):
        super().__init__(message)
        self.done, self.expected, self.partial, self.damage = done, expected, partial, damage


class ModelError(RtalignError):
    """A model file is missing, malformed, or asks for a runtime that is not available."""


class DeviceError(RtalignError):
    """A camera, virtual camera, GPU or port that was asked for is not available."""


def reason(e: Exception) -> str:
    """Why an OS or FFmpeg call failed, in its own words (its strerror, without PyAV's error code and
    function name), else the error itself."""
    return f"{getattr(e, 'strerror', None) or e}"


def shown(path) -> str:
    """A path as text that any terminal can print: bytes that are not UTF-8 appear as \\xNN escapes."""
    return os.fsencode(os.fspath(path)).decode("utf-8", "backslashreplace")
