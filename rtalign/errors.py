"""The package's exceptions: one base class, so the CLI can turn any of them into one clear line."""


class RtalignError(Exception):
    """Base of every error rtalign raises on purpose; its message is meant for the user."""


class InputError(RtalignError):
    """A file, folder or value given by the user cannot be used (missing, unreadable, malformed)."""


class ModelError(RtalignError):
    """A model file is missing, malformed, or asks for a runtime that is not available."""


class DeviceError(RtalignError):
    """A camera, virtual camera, GPU or port that was asked for is not available."""
